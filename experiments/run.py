r"""Trains and evaluates one experiment.

  python -m experiments.run --config=experiments/spring.py [--config=experiments/spring.py:full]
      [--config.train.num_steps=2000 --config.seed=1 ...] [--workdir=runs/spring]

Writes config.json, metrics.jsonl, checkpoints/, eval.json, figures/ and videos/ into --workdir and
resumes from its latest checkpoint when rerun. A wrong config key or value stops with one line that
names it and lists the valid keys.
"""
from __future__ import annotations

import os
import sys

from absl import app
from absl import logging
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default runs/<config name>).")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() (multi-host / multi-process).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "With --distributed and no cluster launcher: host:port of "
                                   "process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None,
                                      "With --distributed and no cluster launcher: process count.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None,
                                   "With --distributed and no cluster launcher: this process's "
                                   "index in [0, num_processes).")


def _keys(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _keys(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def parse_flags_or_exit(argv):
  """absl flag parsing with a one-line message (valid keys listed) instead of a traceback."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as error:
    message = " ".join(str(error).replace("\\n", " ").replace("\\", "").replace("'", "").split()) or type(error).__name__
    hint = ""
    try:
      config_path = next(a.split("=", 1)[1] for a in argv if a.startswith("--config="))
      module = config_flags.config_flags._LoadConfigModule("config", config_path.split(":")[0])
      default = module.get_config(*config_path.split(":")[1:])
      hint = "; valid keys: " + ", ".join(sorted(_keys(default)))
    except Exception:  # noqa: BLE001 -- the hint is best effort
      pass
    sys.exit(f"config error: {message}{hint}")


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  from nlvae import xla_cpu
  xla_cpu.use_fast_flags()  # before JAX's first computation starts the CPU backend
  import jax
  if _DISTRIBUTED.value:
    # None values are left for jax.distributed to detect (SLURM, Open MPI, Kubernetes, TPU).
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value)
  if os.environ.get("NLVAE_JAX_CACHE"):  # opt-in persistent compilation cache (a folder)
    jax.config.update("jax_compilation_cache_dir", os.environ["NLVAE_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  from nlvae import train
  config = _CONFIG.value
  if config is None:
    sys.exit("config error: --config=experiments/<name>.py is required")
  workdir = _WORKDIR.value or os.path.join(
      "runs", os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename))[0])
  try:
    results = train.train_and_evaluate(config, workdir)
  except (ValueError, KeyError, FileNotFoundError, train.TrainingDiverged) as error:
    sys.exit(f"error: {error}")
  summary = {k: v for k, v in results.items() if isinstance(v, (int, float))}
  print(f"Done. Workdir: {workdir}. Evaluation: {summary}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags_or_exit)
