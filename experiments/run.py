r"""Trains and evaluates one experiment, or evaluates a trained workdir again.

  python -m experiments.run --config=experiments/spring.py [--config=experiments/spring.py:full]
      [--config.train.num_steps=2000 --config.seed=1 ...] [--workdir=runs/spring]
  python -m experiments.run --config=experiments/spring.py --mode=eval   # eval.json, figures again

Writes config.json, metrics.jsonl, checkpoints/, eval.json, figures/ and videos/ into --workdir
(default runs/<config name>[_<variants>][_<key>=<value> of every override that changes training],
e.g. runs/spring_sequential) and resumes from its latest good checkpoint when rerun; a workdir
holding a run with a config that trains differently is refused (docs/workdir.md).

Every user error is one line on stderr and exit code 1, before any work: a missing config file or
a syntax error in it (file and line), a wrong config key or value (the valid keys listed), an
unknown variant, invalid steps / intervals / batch sizes / learning rates, a read-only or full
workdir, a workdir in use by another run. --debug (or NLVAE_DEBUG=1) shows the traceback instead.
SIGINT / SIGTERM save a checkpoint of the last finished step, print one line and exit with 130 /
143; rerunning the command resumes.
"""
from __future__ import annotations

import errno
import hashlib
import os
import pathlib
import re
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file[:variant].",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Output folder (default runs/<config name>"
                               "[_<variants>][_<overrides that change training>]).")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "eval"],
                          "train: train (resuming) and evaluate; eval: evaluate the newest good "
                          "checkpoint of --workdir again (eval.json, figures, videos).")
_DEBUG = flags.DEFINE_bool("debug", False, "Show tracebacks instead of one-line errors (also "
                           "NLVAE_DEBUG=1).")
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

MAX_WORKDIR_NAME = 120


def debug_enabled(argv=()) -> bool:
  """--debug on the command line (also before flags are parsed) or NLVAE_DEBUG=1."""
  return (os.environ.get("NLVAE_DEBUG", "") not in ("", "0")
          or any(a in ("--debug", "--debug=true", "--debug=1") for a in argv))


def _keys(config, prefix=""):
  for key, value in config.items():
    if hasattr(value, "items"):
      yield from _keys(value, f"{prefix}{key}.")
    else:
      yield f"{prefix}{key}"


def _one_line(text) -> str:
  """`text` on one line (whitespace runs, newlines included, become one space)."""
  return " ".join(str(text).split())


def _flag_error_line(error) -> str:
  """absl's flag errors quote reprs (escaped newlines, backslashes, quotes): one plain line."""
  return _one_line(str(error).replace("\\n", " ").replace("\\", "").replace("'", ""))


def _config_argument(argv) -> str | None:
  """The value of --config (either --config=PATH[:VARIANT] or --config PATH[:VARIANT])."""
  for i, arg in enumerate(argv):
    if arg.startswith("--config="):
      return arg.split("=", 1)[1]
    if arg == "--config" and i + 1 < len(argv):
      return argv[i + 1]
  return None


def load_default_config(config_argument: str):
  """get_config of the file and variant in --config=PATH[:VARIANT] (as config_flags calls it)."""
  path, *variant = config_argument.split(":", 1)
  module = config_flags.config_flags._LoadConfigModule("config", path)  # noqa: SLF001
  return module.get_config(*variant)


def check_config_file(config_argument: str | None) -> None:
  """Exits with one line when --config is missing, names no file, has a syntax error (file and
  line) or its get_config raises (e.g. an unknown variant)."""
  if not config_argument:
    sys.exit("config error: --config=experiments/<name>.py[:variant] is required")
  path = config_argument.split(":", 1)[0]
  if not os.path.isfile(path):
    sys.exit(f"config error: config file {path} not found")
  try:
    compile(pathlib.Path(path).read_text(), path, "exec")
  except SyntaxError as error:
    sys.exit(f"config error: syntax error in {error.filename} line {error.lineno}: {error.msg}")
  try:
    load_default_config(config_argument)
  except Exception as error:  # noqa: BLE001 -- whatever get_config raises is the user's to fix
    sys.exit(f"config error: {path}: {_one_line(error) or type(error).__name__}")


def parse_flags_or_exit(argv):
  """absl flag parsing with one-line messages (valid keys listed) instead of a traceback."""
  if debug_enabled(argv):
    return flags.FLAGS(argv)
  config_argument = _config_argument(argv)
  if not any(a in ("--help", "--helpfull", "-h") for a in argv):
    check_config_file(config_argument)
  try:
    return flags.FLAGS(argv)
  except (flags.Error, KeyError, AttributeError, TypeError, ValueError) as error:
    message = _flag_error_line(error) or type(error).__name__
    hint = ""
    try:
      hint = "; valid keys: " + ", ".join(sorted(_keys(load_default_config(config_argument))))
    except Exception:  # noqa: BLE001 -- the hint is best effort
      pass
    sys.exit(f"config error: {message}{hint}")


def default_workdir(config_argument: str, config) -> str:
  """runs/<config name>[_<variants>][_<key>=<value>...]: the variants and the overrides that
  change training (nlvae.train.training_differences from the variant's defaults)."""
  from nlvae import train
  path, _, variant = config_argument.partition(":")
  parts = [os.path.splitext(os.path.basename(path))[0]]
  parts += [v for v in re.split(r"[,\s]+", variant) if v]
  flat = train.flatten_config(config)
  parts += [f"{key}={flat.get(key)}" for key in
            train.training_differences(load_default_config(config_argument), config)]
  name = re.sub(r"[^A-Za-z0-9._=+-]+", "-", "_".join(parts))
  if len(name) > MAX_WORKDIR_NAME:
    name = name[:MAX_WORKDIR_NAME - 9] + "_" + hashlib.sha1(name.encode()).hexdigest()[:8]
  return os.path.join("runs", name)


def _disk_full(error: BaseException) -> bool:
  while error is not None:
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
      return True
    error = error.__cause__ or error.__context__
  return False


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
  workdir = _WORKDIR.value or default_workdir(flags.FLAGS["config"].config_filename, config)
  debug = _DEBUG.value or debug_enabled()
  try:
    if _MODE.value == "eval":
      results = train.evaluate(config, workdir)
    else:
      results = train.train_and_evaluate(config, workdir)
  except train.TrainingInterrupted as error:
    if debug:
      raise
    print(str(error), file=sys.stderr, flush=True)
    sys.exit(error.exit_code)
  except KeyboardInterrupt:  # before the run installed its handlers
    if debug:
      raise
    print("stopped by SIGINT before training started", file=sys.stderr, flush=True)
    sys.exit(130)
  except Exception as error:  # noqa: BLE001 -- every error is one line unless --debug
    if debug:
      raise
    if _disk_full(error):
      sys.exit(f"error: no space left on the disk of workdir {workdir} ({_one_line(error)[:200]}); "
               "free some space and rerun to resume from the last checkpoint")
    if isinstance(error, (ValueError, KeyError, OSError, train.TrainingDiverged)):
      sys.exit(f"error: {_one_line(error)}")
    sys.exit(f"error: {type(error).__name__}: {_one_line(error)[:300]} (rerun with --debug for "
             "the traceback)")
  summary = {k: v for k, v in results.items() if isinstance(v, (int, float))}
  print(f"Done. Workdir: {workdir}. Evaluation: {summary}")


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags_or_exit)
