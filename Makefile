# Two commands on a fresh machine: `make run` (main job) and `make test`.
# Each installs what it needs into .venv first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= experiments/spring.py
# Empty: experiments.run names the workdir after the config, its variants and overrides.
WORKDIR ?=
# Tests run on two pytest workers (JAX compilation is mostly single-threaded).
TEST_WORKERS ?= 2

.PHONY: install run test bench bench-gpu api-docs lock clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $(STAMP)

run: install
	$(PY) -m experiments.run --config=$(CONFIG) $(if $(WORKDIR),--workdir=$(WORKDIR))

test: install api-docs
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests

# The API reference of the maths library from its docstrings (build/api); a broken docstring or
# example fails it (make test runs it first).
API_MODULES := nlvae.priors nlvae.kl nlvae.gaussians nlvae.metrics
api-docs: install
	$(PY) -W error::UserWarning -m pdoc --docformat google -o build/api $(API_MODULES)
	$(PY) -m pytest -q -p no:cacheprovider --doctest-modules $(addsuffix .py,$(subst .,/,$(API_MODULES)))

bench: install
	$(PY) -m experiments.benchmark

# On a lent GPU machine (<= 10 min): CUDA wheels, benchmarks, 300 steps of spring:full, one JSON.
bench-gpu: install
	$(PY) -m experiments.bench_gpu --install --json=bench_gpu.json

lock: install
	(echo "# Exact versions of every package, resolved on Python 3.11 (they also install on 3.12)."; echo "# Regenerate with: make lock"; $(VENV)/bin/pip freeze --exclude-editable) > requirements.lock

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis
