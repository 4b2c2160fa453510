"""The one training loop of nlvae: `train_and_evaluate(config, workdir)` and `evaluate(config,
workdir)` (evaluation of a trained workdir, `--mode=eval`).

Every model (nlvae.models) is trained the same way:
  - data parallel: the global batch is sharded over all devices along a ('data',) mesh axis with
    jax.jit + NamedSharding (multi-host: every process feeds its own shard of each global batch,
    launched through jax.distributed; see README);
  - the batch of step s and the random key of step s are pure functions of (seed, s), so a run
    restarted from a checkpoint ends with exactly the parameters of an uninterrupted run;
  - the loop does not wait for the host: the next batches are built and put on the devices by a
    background thread while the step runs, metrics are read back only at log and checkpoint
    steps, and `train.steps_per_dispatch` > 1 runs several steps per dispatch (lax.scan);
  - orbax checkpoints every `train.checkpoint_every` steps (only finite states are saved), with a
    SHA-256 of every file of a saved step in workdir/checkpoint_checksums.json; on restore a
    corrupt, truncated or incomplete step is moved to workdir/corrupt_checkpoints/ with a one-line
    warning and the newest good step is used instead;
  - metrics as JSON lines (workdir/metrics.jsonl) and TensorBoard events (workdir/tensorboard);
  - a NaN or Inf loss stops the run with a one-line message at the next log or checkpoint step,
    before anything non-finite is saved; the last good checkpoint is kept;
  - SIGINT / SIGTERM finish the current step, save a checkpoint and raise TrainingInterrupted
    (exit code 130 / 143 in experiments.run);
  - periodic evaluation on a held-out batch, then the model's final evaluation into eval.json,
    figures/ and videos/ (written to a staging folder, then renamed into place).

The workdir is guarded (docs/workdir.md): every config and workdir problem is a UsageError with a
one-line message, raised before anything is written; a workdir records its config (config.json)
and refuses a rerun whose config changes training (train.restart=true starts over); a lock file
(workdir/run.lock) stops a second concurrent run.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import math
import os
import pathlib
import queue
import shutil
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax.training import train_state
from jax.sharding import NamedSharding, PartitionSpec

from data import pipeline
from nlvae import datasets, models, networks
from nlvae.metric_writer import MetricWriter, truncate_metrics, write_atomically

MIN_FREE_BYTES = 64 * 2**20  # a workdir on a disk with less free space is refused up front
CHECKSUMS = "checkpoint_checksums.json"
CORRUPT_CHECKPOINTS = "corrupt_checkpoints"
PREVIOUS_RUN = "previous_run"
LOCK_FILE = "run.lock"
# What train.restart=true moves to workdir/previous_run (the outputs of a run).
TIMING = "timing.json"  # wall seconds of the last training command's phases
RUN_OUTPUTS = ("config.json", "metrics.jsonl", "eval.json", "checkpoints", CHECKSUMS,
               CORRUPT_CHECKPOINTS, "figures", "videos", "tensorboard", TIMING)
# Config keys that change neither the trained parameters nor the checkpoints' contents: a rerun in
# the same workdir may change them (they are also left out of the default workdir name). A key
# matches itself and everything under it. train.num_steps is added when the schedule is constant
# (a longer run continues the shorter one exactly).
HARMLESS_KEYS = ("train.progress_bar", "train.log_every", "train.eval_every",
                 "train.checkpoint_every", "train.keep_checkpoints", "train.restart",
                 "train.prefetch", "model.interventions", "model.eval_scale", "model.eval_metrics",
                 "model.observations_per_call", "model.traversal_limit", "model.traversal_steps",
                 "model.traversal_examples", "model.calibrate_scale")
POSITIVE_INTEGER_KEYS = ("num_steps", "batch_size", "log_every", "eval_every", "checkpoint_every",
                         "keep_checkpoints", "steps_per_dispatch", "prefetch")
RESTART_HINT = "use another --workdir, or --config.train.restart=true to start over in it"
# Keys added to config.train after runs were recorded: a config.json without one trained with its
# default (so an older workdir still resumes).
ADDED_DEFAULTS = {"train.compute_dtype": networks.DEFAULT_COMPUTE_DTYPE}


class TrainingDiverged(FloatingPointError):
  """The loss or the parameters became NaN or Inf."""


class UsageError(ValueError):
  """A problem with the config or the workdir; the message is one line that says what to do."""


class TrainingInterrupted(Exception):
  """SIGINT or SIGTERM stopped the run; `exit_code` is 128 + the signal number (130, 143)."""

  def __init__(self, signum: int, message: str):
    super().__init__(message)
    self.exit_code = 128 + signum


TrainState = train_state.TrainState  # params, optimizer state and step of the one loop


# ----------------------------------------------------------------------------------------------
# Config validation and workdir identity.


def make_optimizer(train_config) -> optax.GradientTransformation:
  """Optimizer and learning-rate schedule from config.train."""
  lr = train_config.learning_rate
  if train_config.schedule == "constant":
    schedule = optax.constant_schedule(lr)
  elif train_config.schedule == "warmup_cosine":
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, train_config.warmup_steps,
                                                  max(train_config.num_steps, 1), lr * 0.01)
  else:
    raise ValueError(f"train.schedule must be 'constant' or 'warmup_cosine', got "
                     f"{train_config.schedule!r}")
  optimizers = {"adam": optax.adam, "rmsprop": optax.rmsprop, "adamw": optax.adamw}
  if train_config.optimizer not in optimizers:
    raise ValueError(f"train.optimizer must be one of {sorted(optimizers)}, got "
                     f"{train_config.optimizer!r}")
  chain = [optimizers[train_config.optimizer](schedule)]
  if train_config.grad_clip_norm:
    chain.insert(0, optax.clip_by_global_norm(train_config.grad_clip_norm))
  return optax.chain(*chain)


def _compute_dtype(train_config) -> str:
  return train_config.get("compute_dtype", networks.DEFAULT_COMPUTE_DTYPE)


def validate_config(config) -> None:
  """Raises UsageError (one line naming the key and a valid value) for a config.train that cannot
  train: zero or negative steps, intervals, batch sizes and learning rates, keep_checkpoints < 1
  (the final checkpoint is always kept), unknown optimizers, schedules and compute dtypes."""
  train = config.train
  try:
    networks.compute_dtype(_compute_dtype(train))
  except ValueError as error:
    raise UsageError(f"train.{error}; set --config.train.compute_dtype=float32 (or bfloat16, for "
                     "accelerators)") from None
  for key in POSITIVE_INTEGER_KEYS:
    value = train.get(key, 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise UsageError(f"train.{key} must be a positive integer, got {value!r}; set "
                       f"--config.train.{key}=N with N >= 1")
  for key, minimum in (("learning_rate", None), ("warmup_steps", 0), ("grad_clip_norm", 0)):
    value = train.get(key, 0)
    valid = math.isfinite(value) and (value > 0 if minimum is None else value >= minimum)
    if isinstance(value, bool) or not valid:
      relation = "> 0" if minimum is None else ">= 0"
      raise UsageError(f"train.{key} must be a finite number {relation}, got {value!r}; set "
                       f"--config.train.{key}")
  try:
    make_optimizer(train)
  except ValueError as error:
    raise UsageError(str(error)) from None


def flatten_config(config) -> dict[str, Any]:
  """ConfigDict or nested dict -> {"train.batch_size": 16, ...}, values normalised through JSON
  (tuples become lists), as they are in workdir/config.json."""
  if not isinstance(config, dict):
    config = json.loads(config.to_json_best_effort())
  flat = {}
  for key, value in config.items():
    if isinstance(value, dict) and value:
      flat.update({f"{key}.{k}": v for k, v in flatten_config(value).items()})
    else:
      flat[key] = value
  return flat


def training_differences(before, after) -> list[str]:
  """The keys (flattened, sorted) whose values differ between two configs and change training:
  every key but HARMLESS_KEYS (and train.num_steps under a constant schedule in both)."""
  before, after = flatten_config(before), flatten_config(after)
  harmless = HARMLESS_KEYS
  if before.get("train.schedule") == after.get("train.schedule") == "constant":
    harmless += ("train.num_steps",)
  missing = object()
  value = lambda flat, key: flat.get(key, ADDED_DEFAULTS.get(key, missing))  # noqa: E731
  return sorted(key for key in set(before) | set(after)
                if value(before, key) != value(after, key)
                and not any(key == h or key.startswith(h + ".") for h in harmless))


def _saved_steps(workdir: pathlib.Path) -> list[int]:
  """The steps of workdir/checkpoints (finalised step folders; orbax's tmp folders excluded)."""
  folder = workdir / "checkpoints"
  if not folder.is_dir():
    return []
  return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit() and p.is_dir())


def _nearest_existing(path: pathlib.Path) -> pathlib.Path:
  path = path.absolute()
  while not path.exists() and path != path.parent:
    path = path.parent
  return path


def check_workdir(config, workdir: pathlib.Path, mode: str) -> None:
  """Read-only checks of `workdir` before any work (UsageError, one line): writable, enough free
  space, its recorded config.json trains like `config` (in eval mode a difference is a warning),
  no checkpoint past train.num_steps, and (in eval mode) a checkpoint to evaluate."""
  existing = _nearest_existing(workdir)
  if not existing.is_dir():
    raise UsageError(f"workdir {workdir}: {existing} is not a folder; choose another --workdir")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise UsageError(f"workdir {workdir} is not writable (no write permission in {existing}); "
                     "choose another --workdir")
  disk = os.statvfs(existing)
  free = disk.f_bavail * disk.f_frsize
  if free < MIN_FREE_BYTES:
    raise UsageError(f"workdir {workdir}: only {free / 2**20:.1f} MiB free on its disk (at least "
                     f"{MIN_FREE_BYTES // 2**20} MiB needed); free some space or choose another "
                     "--workdir")
  restart = mode == "train" and config.train.get("restart", False)
  saved_config = workdir / "config.json"
  if saved_config.exists() and not restart:
    try:
      recorded = json.loads(saved_config.read_text())
    except (OSError, ValueError) as error:
      raise UsageError(f"{saved_config} is unreadable ({error}); {RESTART_HINT}") from None
    differences = training_differences(recorded, config)
    shown = ", ".join(differences[:8]) + (f" and {len(differences) - 8} more"
                                          if len(differences) > 8 else "")
    if differences and mode == "eval":  # the restore tells whether the checkpoint still fits
      print(f"warning: evaluating workdir {workdir} with a config that differs from its "
            f"config.json in {shown}.", file=sys.stderr, flush=True)
    elif differences:
      raise UsageError(f"workdir {workdir} holds a run with a different config ({shown}); "
                       f"{RESTART_HINT}")
  steps = [] if restart else _saved_steps(workdir)
  if mode == "eval" and not steps:
    raise UsageError(f"no checkpoint to evaluate in {workdir / 'checkpoints'}; train first "
                     "(without --mode=eval)")
  if mode == "train" and steps and steps[-1] > config.train.num_steps:
    raise UsageError(f"workdir {workdir} has a checkpoint at step {steps[-1]}, past "
                     f"train.num_steps={config.train.num_steps}; evaluate it with --mode=eval, or "
                     f"{RESTART_HINT}")


class WorkdirLock:
  """An exclusive flock on workdir/run.lock, held for the run (released by the kernel when the
  process dies, so a kill -9 never leaves a stale lock)."""

  def __init__(self, workdir: pathlib.Path):
    self.path = workdir / LOCK_FILE
    self._file = None

  def acquire(self) -> None:
    if self._file is not None:
      return
    handle = self.path.open("a+")
    try:
      fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      handle.seek(0)
      holder = handle.read().strip() or "another process"
      handle.close()
      raise UsageError(f"another run (pid {holder}) is using workdir {self.path.parent} (lock "
                       f"{self.path}); wait for it to finish or choose another --workdir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    self._file = handle

  def release(self) -> None:
    if self._file is not None:
      self._file.close()  # closing releases the flock
      self._file = None


# ----------------------------------------------------------------------------------------------
# Steps.


def _train_step_fn(model):
  def train_step(state, batch, rng):
    (_, metrics), grads = jax.value_and_grad(model.loss, has_aux=True)(state.params, batch, rng)
    return state.apply_gradients(grads=grads), metrics
  return train_step


def make_train_step(model, mesh, steps_per_dispatch: int = 1):
  """jit-compiled step (state, global batch, key) -> (state, metrics), sharded over `mesh`.

  With steps_per_dispatch > 1 it runs len(keys) steps in one dispatch (lax.scan):
  (state, batches stacked [n, B, ...], keys [n]) -> (state, metrics stacked [n]). On the CPU the
  scan is unrolled: XLA:CPU runs the convolutions of a rolled scan's loop body about 50x slower
  (spring quick step: 0.37 steps/s rolled, 17 unrolled, 20 one step per dispatch).
  """
  replicated = NamedSharding(mesh, PartitionSpec())
  one_step = _train_step_fn(model)
  if steps_per_dispatch == 1:
    step, batch_spec = one_step, PartitionSpec("data")
  else:
    unroll = jax.default_backend() == "cpu"

    def step(state, batches, keys):
      return jax.lax.scan(lambda s, xs: one_step(s, *xs), state, (batches, keys), unroll=unroll)
    batch_spec = PartitionSpec(None, "data")
  return jax.jit(step, in_shardings=(replicated, NamedSharding(mesh, batch_spec), replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def make_eval_step(model, mesh):
  replicated = NamedSharding(mesh, PartitionSpec())
  data_sharded = NamedSharding(mesh, PartitionSpec("data"))
  return jax.jit(lambda params, batch, rng: model.loss(params, batch, rng)[1],
                 in_shardings=(replicated, data_sharded, replicated), out_shardings=replicated)


def global_batch(local_batch: dict, mesh, spec: PartitionSpec = PartitionSpec("data")) -> dict:
  """This process's slice of the global batch -> global jax.Arrays sharded over 'data'."""
  sharding = NamedSharding(mesh, spec)
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def all_finite(tree) -> bool:
  """Whether every leaf of the pytree is finite (one compiled reduction)."""
  leaves = [x for x in jax.tree.leaves(tree) if jnp.issubdtype(jnp.result_type(x), jnp.inexact)]
  return bool(_all_finite(leaves)) if leaves else True


def dispatch_plan(start: int, end: int, steps_per_dispatch: int,
                  intervals: tuple[int, ...]) -> Iterator[tuple[int, int]]:
  """(first step, number of steps) of every dispatch from `start` to `end`: at most
  steps_per_dispatch steps, never across a multiple of an interval (log, eval, checkpoint), so
  the plan after any such step is the same whether or not the run was interrupted there."""
  step = start
  while step < end:
    boundary = min([end] + [(step // every + 1) * every for every in intervals])
    length = min(steps_per_dispatch, boundary - step)
    yield step, length
    step += length


class Prefetcher:
  """Runs `make(step, length)` for the dispatches of `plan` in a background thread, up to `depth`
  ahead, so that the next batch is built and on the devices while the current step runs."""

  def __init__(self, plan: Iterator[tuple[int, int]], make: Callable, depth: int = 2):
    self._queue = queue.Queue(maxsize=depth)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._fill, args=(plan, make), daemon=True,
                                    name="nlvae-prefetch")
    self._thread.start()

  def _fill(self, plan, make) -> None:
    try:
      for step, length in plan:
        item = (step, length, make(step, length))
        while not self._stop.is_set():
          try:
            self._queue.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if self._stop.is_set():
          return
      self._queue.put(None)
    except BaseException as error:  # noqa: BLE001 -- re-raised in the training thread
      self._queue.put(error)

  def __iter__(self):
    while (item := self._queue.get()) is not None:
      if isinstance(item, BaseException):
        raise item
      yield item

  def close(self) -> None:
    self._stop.set()
    self._thread.join(timeout=10)


# ----------------------------------------------------------------------------------------------
# Checkpoints you can trust.


def checkpoint_manager(workdir: pathlib.Path, train_config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=train_config.keep_checkpoints, create=True,
                                         cleanup_tmp_directories=True)
  return ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)


def _step_digest(step_dir: pathlib.Path) -> dict[str, str]:
  """{relative path: SHA-256} of every file of a saved step."""
  digest = {}
  for path in sorted(p for p in step_dir.rglob("*") if p.is_file()):
    sha = hashlib.sha256()
    with path.open("rb") as f:
      for block in iter(lambda: f.read(1 << 20), b""):
        sha.update(block)
    digest[str(path.relative_to(step_dir))] = sha.hexdigest()
  return digest


def _read_checksums(workdir: pathlib.Path) -> dict:
  try:
    return json.loads((workdir / CHECKSUMS).read_text())
  except (OSError, ValueError):
    return {}


def record_checksums(workdir: pathlib.Path, step: int) -> None:
  """Adds the digest of saved step `step` to workdir/checkpoint_checksums.json and drops steps
  orbax has deleted (written atomically)."""
  steps = set(_saved_steps(workdir))
  checksums = {k: v for k, v in _read_checksums(workdir).items() if int(k) in steps}
  checksums[str(step)] = _step_digest(workdir / "checkpoints" / str(step))
  write_atomically(workdir / CHECKSUMS, json.dumps(checksums, indent=1, sort_keys=True) + "\n")


def checkpoint_problem(workdir: pathlib.Path, step: int) -> str | None:
  """Why saved step `step` cannot be trusted (missing, changed or extra files against its
  recorded checksums; no commit marker), or None. A step saved without a record (killed between
  the save and the record) is checked by restoring it."""
  step_dir = workdir / "checkpoints" / str(step)
  if not (step_dir / "_CHECKPOINT_METADATA").is_file():
    return "incomplete: no _CHECKPOINT_METADATA"
  recorded = _read_checksums(workdir).get(str(step))
  if recorded is None:
    return None
  actual = _step_digest(step_dir)
  missing = sorted(set(recorded) - set(actual))
  changed = sorted(name for name in set(recorded) & set(actual) if recorded[name] != actual[name])
  if missing:
    return f"missing {missing[0]}" + (f" and {len(missing) - 1} more files" if len(missing) > 1
                                      else "")
  if changed:
    return f"checksum mismatch in {changed[0]}" + (f" and {len(changed) - 1} more files"
                                                   if len(changed) > 1 else "")
  return None


def _move_aside(workdir: pathlib.Path, step: int, reason: str, fallback: str) -> None:
  target = workdir / CORRUPT_CHECKPOINTS / str(step)
  suffix = 1
  while target.exists():
    target, suffix = workdir / CORRUPT_CHECKPOINTS / f"{step}.{suffix}", suffix + 1
  target.parent.mkdir(exist_ok=True)
  os.replace(workdir / "checkpoints" / str(step), target)
  print(f"warning: checkpoint step {step} in {workdir / 'checkpoints'} is unusable ({reason}); "
        f"moved to {target}, {fallback}.", file=sys.stderr, flush=True)


def _sync(name: str) -> None:
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices(name)


def restore_latest_good(workdir: pathlib.Path, train_config, state):
  """(manager, state, step) of the newest saved step that verifies and restores to finite values;
  unusable steps are moved aside with a one-line warning each; step 0 and `state` when none."""
  is_main = jax.process_index() == 0
  while True:
    if is_main:  # leftovers of a save cut short
      for leftover in (workdir / "checkpoints").glob("*orbax-checkpoint-tmp*"):
        shutil.rmtree(leftover, ignore_errors=True)
    _sync("checkpoints cleaned")
    manager = checkpoint_manager(workdir, train_config)
    steps = _saved_steps(workdir)
    if not steps:
      return manager, state, 0
    step = steps[-1]
    problem = checkpoint_problem(workdir, step)
    if problem is None:
      verified = str(step) in _read_checksums(workdir)
      try:
        restored = manager.restore(step, args=ocp.args.StandardRestore(state))
      except (TrainingInterrupted, KeyboardInterrupt):
        raise
      except Exception as error:  # noqa: BLE001 -- orbax raises many kinds on damaged files
        if verified:  # intact files that do not fit: the model changed, not the checkpoint
          raise UsageError(f"checkpoint step {step} in {workdir / 'checkpoints'} is intact but "
                           f"does not fit this model ({_first_line(error)}); the model's code "
                           f"changed since it was saved; {RESTART_HINT}") from None
        problem = f"restore failed: {_first_line(error)}"
      else:
        if all_finite(restored):
          return manager, restored, step
        problem = "non-finite values"
    manager.close()
    fallback = (f"falling back to step {steps[-2]}" if len(steps) > 1 else
                "starting from step 0")
    if is_main:
      _move_aside(workdir, step, problem, fallback)
    _sync("checkpoint moved aside")


def _first_line(error: BaseException, limit: int = 160) -> str:
  text = " ".join(str(error).split()) or type(error).__name__
  return text if len(text) <= limit else text[:limit - 3] + "..."


# ----------------------------------------------------------------------------------------------
# Clean stops.


class SignalStop:
  """SIGINT / SIGTERM handling for one run (single-process runs; in the main thread only).

  While `deferred` (inside the training loop) a first signal only records itself; the loop
  finishes the current step, saves and raises TrainingInterrupted. Elsewhere (set-up, evaluation)
  and on a second signal, TrainingInterrupted is raised at once with `outside_message(name)`.
  """

  SIGNALS = (signal.SIGINT, signal.SIGTERM)

  def __init__(self):
    self.signum = None
    self.deferred = False
    self.outside_message = lambda name: f"stopped by {name} before training started"
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread() and jax.process_count() == 1:
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def _handle(self, signum, frame):
    del frame
    if self.deferred and self.signum is None:
      self.signum = signum
      return
    raise TrainingInterrupted(signum, self.outside_message(signal.Signals(signum).name))


# ----------------------------------------------------------------------------------------------
# The run.


def _progress(total: int, initial: int, enabled: bool):
  from tqdm import tqdm
  return tqdm(total=total, initial=initial, disable=not enabled, dynamic_ncols=True,
              desc="train", unit="step")


@dataclasses.dataclass
class _Run:
  """Everything a run sets up before its first step."""
  workdir: pathlib.Path
  model: Any
  data: dict
  mesh: Any
  batches: pipeline.Batches
  eval_batches: pipeline.Batches
  train_rng: jax.Array
  eval_rng: jax.Array
  manager: ocp.CheckpointManager
  state: TrainState
  start_step: int


def _set_up(config, workdir: pathlib.Path, mode: str, lock: WorkdirLock) -> _Run:
  """Checks, then data, model, workdir, state and the newest good checkpoint.

  Nothing is written into the workdir before the config, the workdir, the data and the model
  have passed their checks (UsageError or the model's ValueError, one line each).
  """
  validate_config(config)
  check_workdir(config, workdir, mode)
  is_main = jax.process_index() == 0
  if is_main and workdir.is_dir():  # an existing workdir: refuse a second run before any work
    lock.acquire()

  train_data, test_data, info = datasets.load(config.data)
  model = models.build(config.model, info, _compute_dtype(config.train))
  num_devices = jax.device_count()
  batch_size = config.train.batch_size
  if batch_size % num_devices:
    raise UsageError(f"train.batch_size={batch_size} must be divisible by the {num_devices} "
                     f"devices; set --config.train.batch_size to a multiple of {num_devices}")

  if is_main:
    workdir.mkdir(parents=True, exist_ok=True)
    lock.acquire()
    check_workdir(config, workdir, mode)  # again: another run may have written it meanwhile
    if mode == "train" and config.train.get("restart", False):
      _move_previous_run(workdir)
    if mode == "train":  # config.json stays the config the checkpoints were trained with
      write_atomically(workdir / "config.json", config.to_json_best_effort(indent=2) + "\n")
  _sync("workdir ready")

  mesh = jax.make_mesh((num_devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  batches = pipeline.Batches(train_data, batch_size, seed=config.seed)
  eval_batches = pipeline.Batches(test_data, min(batch_size, len(test_data["frames"])
                                                  // num_devices * num_devices), seed=config.seed)
  rng = jax.random.PRNGKey(config.seed)
  init_rng, train_rng, eval_rng = jax.random.split(rng, 3)
  params = model.init(init_rng, jax.tree.map(jnp.asarray, batches.batch(0)))
  replicated = NamedSharding(mesh, PartitionSpec())
  state = jax.device_put(TrainState.create(apply_fn=None, params=params,
                                           tx=make_optimizer(config.train)), replicated)
  manager, state, start_step = restore_latest_good(workdir, config.train, state)
  if start_step and is_main:
    print(f"Resumed from {workdir / 'checkpoints'} at step {start_step}.", flush=True)
  return _Run(workdir, model, dict(train=train_data, test=test_data, info=info), mesh, batches,
              eval_batches, train_rng, eval_rng, manager, state, start_step)


def _move_previous_run(workdir: pathlib.Path) -> None:
  """train.restart=true: moves the outputs of the run in `workdir` to workdir/previous_run
  (replacing an older one)."""
  outputs = [name for name in RUN_OUTPUTS if (workdir / name).exists()]
  if not outputs:
    return
  previous = workdir / PREVIOUS_RUN
  shutil.rmtree(previous, ignore_errors=True)
  previous.mkdir()
  for name in outputs:
    os.replace(workdir / name, previous / name)
  print(f"train.restart=true: moved the previous run to {previous}.", flush=True)


def _write_evaluation(run: _Run, params, num_steps: int) -> dict:
  """The model's final evaluation: figures and videos go to a staging folder and are renamed into
  workdir/figures, workdir/videos; eval.json is written atomically."""
  workdir = run.workdir
  staging = workdir / ".evaluation.tmp"
  shutil.rmtree(staging, ignore_errors=True)
  staging.mkdir()
  if (workdir / "metrics.jsonl").exists():  # the training curves are drawn from it
    shutil.copyfile(workdir / "metrics.jsonl", staging / "metrics.jsonl")
  results = run.model.evaluate(params, run.data, staging, run.eval_rng)
  (staging / "metrics.jsonl").unlink(missing_ok=True)
  for path in sorted(p for p in staging.rglob("*") if p.is_file()):
    target = workdir / path.relative_to(staging)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
  shutil.rmtree(staging, ignore_errors=True)
  results["num_steps"] = num_steps
  write_atomically(workdir / "eval.json", json.dumps(results, indent=2, sort_keys=True) + "\n")
  return results


def _window_row(window: list[tuple[int, int, dict]], elapsed: float) -> dict:
  """Mean of every metric over the steps of a log window, with steps_per_second."""
  values = collections.defaultdict(list)
  for _, _, metrics in window:
    for key, value in metrics.items():
      values[key].append(np.asarray(value, np.float64).reshape(-1))
  row = {key: float(np.concatenate(parts).mean()) for key, parts in values.items()}
  row["steps_per_second"] = sum(length for _, length, _ in window) / max(elapsed, 1e-9)
  return row


def _first_non_finite(window: list[tuple[int, int, dict]]) -> tuple[int, float] | None:
  for step, _, metrics in window:
    losses = np.asarray(metrics["loss"]).reshape(-1)
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
      return step + int(bad[0]) + 1, float(losses[bad[0]])
  return None


@contextlib.contextmanager
def _opened(config, workdir: pathlib.Path, mode: str):
  """The workdir locked, signals caught and the run set up: yields (run, stop); releases the
  lock and closes the checkpoint manager however the block ends."""
  lock = WorkdirLock(workdir)
  with SignalStop() as stop, contextlib.ExitStack() as cleanup:
    cleanup.callback(lock.release)
    run = _set_up(config, workdir, mode, lock)
    cleanup.callback(run.manager.close)
    yield run, stop


def train_and_evaluate(config, workdir, *, stop_after: int | None = None) -> dict:
  """Trains config.model on config.data, checkpointing in workdir; returns the final evaluation.

  Args:
    config: an ml_collections.ConfigDict (see experiments/*.py).
    workdir: output folder (config.json, metrics.jsonl, checkpoints/, eval.json, figures/,
      videos/, tensorboard/; see docs/workdir.md).
    stop_after: stop (as if interrupted) after this many steps of this call, without the final
      evaluation; used to test exact resumption.
  Returns:
    The final evaluation dict (also written to workdir/eval.json), or {} when stopped early and on
    every process but process 0.
  Raises:
    UsageError: a config or workdir problem (one line), before anything is written.
    TrainingDiverged: a NaN / Inf loss or parameters; the last good checkpoint is kept.
    TrainingInterrupted: SIGINT / SIGTERM; a checkpoint of the last finished step is saved.
  """
  workdir = pathlib.Path(workdir)
  start = time.perf_counter()
  with _opened(config, workdir, "train") as (run, stop):
    timing = {"setup_s": time.perf_counter() - start}  # data, networks, restore
    num_steps = config.train.num_steps
    end_step = num_steps if stop_after is None else min(num_steps, run.start_step + stop_after)
    state = _train(config, run, stop, end_step)
    timing["train_s"] = time.perf_counter() - start - timing["setup_s"]  # compilation included
    if end_step < num_steps or jax.process_index() != 0:  # process 0 alone evaluates
      return {}
    stop.outside_message = lambda name: (
        f"stopped by {name} during the final evaluation; the trained checkpoint (step "
        f"{num_steps}) is saved in {workdir / 'checkpoints'}; rerun with --mode=eval to evaluate it")
    results = _write_evaluation(run, jax.device_get(state.params), num_steps)
    timing["evaluation_s"] = time.perf_counter() - start - timing["setup_s"] - timing["train_s"]
    timing.update(total_s=time.perf_counter() - start, steps=num_steps - run.start_step)
    write_atomically(workdir / TIMING, json.dumps(timing, indent=2) + "\n")
    print("Wall time: " + ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in timing.items()
                                    if k.endswith("_s")) + f" ({timing['steps']} steps).",
          flush=True)
    return results


def evaluate(config, workdir) -> dict:
  """--mode=eval: restores the newest good checkpoint of `workdir` and rewrites eval.json,
  figures/ and videos/ with `config` (e.g. other model.interventions, or after a code change; a
  config that differs from config.json in keys that change training is a one-line warning, and
  config.json is left as it is). Raises UsageError when there is no checkpoint."""
  workdir = pathlib.Path(workdir)
  with _opened(config, workdir, "eval") as (run, stop):
    if not run.start_step:
      raise UsageError(f"no usable checkpoint to evaluate in {workdir / 'checkpoints'}; train "
                       "first (without --mode=eval)")
    if jax.process_index() != 0:
      return {}
    stop.outside_message = lambda name: f"stopped by {name} during the evaluation; rerun it"
    print(f"Evaluating the checkpoint at step {run.start_step} of {workdir / 'checkpoints'}.",
          flush=True)
    return _write_evaluation(run, jax.device_get(run.state.params), run.start_step)


def _train(config, run: _Run, stop: SignalStop, end_step: int):
  """The loop: steps from run.start_step to end_step; returns the state."""
  train_config, workdir, manager = config.train, run.workdir, run.manager
  is_main = jax.process_index() == 0
  num_steps = train_config.num_steps
  start_step = run.start_step
  if is_main:
    truncate_metrics(workdir, start_step)
  writer = MetricWriter(workdir, enabled=is_main)
  steps_per_dispatch = train_config.get("steps_per_dispatch", 1)
  train_step = make_train_step(run.model, run.mesh, steps_per_dispatch)
  eval_step = make_eval_step(run.model, run.mesh)
  batch_spec = PartitionSpec("data") if steps_per_dispatch == 1 else PartitionSpec(None, "data")
  replicated = NamedSharding(run.mesh, PartitionSpec())

  def make_inputs(step: int, length: int):
    """The global batch(es) and key(s) of steps [step, step + length), on the devices."""
    if steps_per_dispatch == 1:
      local = run.batches.batch(step)
      keys = jax.random.fold_in(run.train_rng, step)
    else:
      local = pipeline.stack_examples([run.batches.batch(s) for s in range(step, step + length)])
      keys = jnp.stack([jax.random.fold_in(run.train_rng, s) for s in range(step, step + length)])
    return global_batch(local, run.mesh, batch_spec), jax.device_put(keys, replicated)

  intervals = (train_config.log_every, train_config.eval_every, train_config.checkpoint_every)
  plan = dispatch_plan(start_step, end_step, steps_per_dispatch, intervals + (num_steps,))
  prefetcher = Prefetcher(plan, make_inputs, depth=train_config.get("prefetch", 2))
  progress = _progress(num_steps, start_step, enabled=is_main and train_config.progress_bar)
  state, saved_step, pending_checksum = run.state, start_step, None

  def check_losses(window) -> None:
    bad = _first_non_finite(window)
    if bad is not None:
      finish_save()
      raise TrainingDiverged(
          f"loss is {bad[1]} at step {bad[0]}; stopped. The last good checkpoint (step "
          f"{manager.latest_step()}) is kept in {workdir / 'checkpoints'}; lower "
          f"--config.train.learning_rate or set --config.train.grad_clip_norm and rerun.")

  def save(done: int) -> None:
    """Saves the state after step `done` if it is finite (orbax writes in the background)."""
    nonlocal saved_step, pending_checksum
    finish_save()
    if not all_finite(state.params):
      raise TrainingDiverged(
          f"parameters became NaN/Inf by step {done}; not saved. The last good checkpoint "
          f"(step {saved_step}) is kept; lower --config.train.learning_rate and rerun.")
    manager.save(done, args=ocp.args.StandardSave(state))
    saved_step, pending_checksum = done, done

  def finish_save() -> None:
    """Waits for the save in flight, then records its checksums."""
    nonlocal pending_checksum
    manager.wait_until_finished()
    if pending_checksum is not None and is_main:
      record_checksums(workdir, pending_checksum)
    pending_checksum = None

  stop.outside_message = lambda name: (
      f"stopped by a second {name} without saving; rerun the same command to resume from the "
      f"last checkpoint (step {saved_step}) in {workdir / 'checkpoints'}")
  window, window_start, done = [], time.perf_counter(), start_step
  stop.deferred = True
  try:
    for step, length, (batch, keys) in prefetcher:
      if stop.signum is not None:
        break
      state, metrics = train_step(state, batch, keys)
      window.append((step, length, metrics))
      done = step + length
      progress.update(length)
      log_now = done % train_config.log_every == 0 or done == end_step
      save_now = done % train_config.checkpoint_every == 0 or done == end_step
      if log_now or save_now:  # the only reads of the metrics; one transfer per window
        window = jax.device_get(window)
        check_losses(window)
      if log_now and pending_checksum is not None and not manager.is_saving_in_progress():
        finish_save()  # record the checksums of a finished save without waiting for one
      if log_now:
        row = _window_row(window, time.perf_counter() - window_start)
        progress.set_postfix({k: f"{row[k]:.4g}" for k in ("loss", "recon", "kl") if k in row})
        writer.write(done, row, prefix="train/")
        window, window_start = [], time.perf_counter()
      if done % train_config.eval_every == 0 or done == num_steps:
        eval_metrics = jax.device_get(eval_step(
            state.params, global_batch(run.eval_batches.batch(done), run.mesh),
            jax.random.fold_in(run.eval_rng, done)))
        writer.write(done, {k: float(v) for k, v in eval_metrics.items()}, prefix="eval/")
      if save_now:
        save(done)
    if stop.signum is not None:
      name = signal.Signals(stop.signum).name
      if done > saved_step:
        check_losses(jax.device_get(window))
        save(done)
      finish_save()
      raise TrainingInterrupted(
          stop.signum, f"stopped by {name} at step {done} of {num_steps}; checkpoint saved in "
          f"{workdir / 'checkpoints'}; rerun the same command to resume")
    finish_save()
  finally:
    stop.deferred = False
    prefetcher.close()
    progress.close()
    writer.close()
  return state
