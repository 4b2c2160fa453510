r"""Loop efficiency: the training loop's steps/s divided by the bare jitted step's steps/s, measured
in the same run, alternating rounds.

  python -m experiments.bench_loop                        # physics quick + SlowVAE quick, CPU/GPU
  python -m experiments.bench_loop --configs=spring --steps=300 --rounds=3 --out=loop.json
  python -m experiments.bench_loop --steps_per_dispatch=4  # the loop with lax.scan dispatches
  python -m experiments.bench_loop --dry_run              # tiny sizes, seconds (tests)

The bare step is nlvae.train.make_train_step's jitted step called back to back on one batch that
is already on the device, with one block_until_ready at the end. The loop is
nlvae.train.train_and_evaluate (batches built by the background thread from the training set,
metrics read back at the config's log interval, the NaN checks, metrics.jsonl and TensorBoard
writes), timed from the steps_per_second of its metrics.jsonl rows after the first one (which
holds the compilation). Evaluation and checkpoints are put at the end, outside the timed windows;
the training set is cut to NUM_TRAIN examples (the step's cost does not depend on its size).
"""
from __future__ import annotations

import datetime
import json
import pathlib
import statistics
import tempfile
import time

from absl import flags

from data import cli

CONFIGS = {  # name -> (config module, variant)
    "spring": ("experiments.spring", "quick"),
    "slowvae": ("experiments.slowvae_sprites", ""),
}
NUM_TRAIN = 512

FLAGS = flags.FlagValues()  # private (data.cli): importing this module claims no global names
_CONFIGS = flags.DEFINE_list("configs", list(CONFIGS), f"Configs to measure, of {sorted(CONFIGS)}.",
                             flag_values=FLAGS)
_STEPS = flags.DEFINE_integer("steps", 200, "Timed steps per measurement.", flag_values=FLAGS)
_ROUNDS = flags.DEFINE_integer("rounds", 2, "Alternating (bare, loop) rounds.", flag_values=FLAGS)
_STEPS_PER_DISPATCH = flags.DEFINE_integer("steps_per_dispatch", 1, "train.steps_per_dispatch of "
                                           "the loop.", flag_values=FLAGS)
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Tiny sizes: a few seconds.", flag_values=FLAGS)
_OUT = flags.DEFINE_string("out", None, "Write the results JSON here.", flag_values=FLAGS)


def bench_config(name: str, steps: int, *, dry_run: bool, steps_per_dispatch: int = 1):
  """The config `name` for a loop of `steps` timed steps (+ one log window of compilation)."""
  import importlib
  module, variant = CONFIGS[name]
  if dry_run and name == "spring":
    variant = "tiny"
  config = importlib.import_module(module).get_config(variant)
  config.data.num_train = min(config.data.num_train, NUM_TRAIN)
  if dry_run:
    config.data.num_train, config.data.num_test = 16, 8
    config.train.update(batch_size=4, log_every=2)
  log_every = config.train.log_every
  total = log_every + -(-steps // log_every) * log_every  # whole log windows
  config.train.update(num_steps=total + 1, eval_every=total + 1, checkpoint_every=total,
                      progress_bar=False, steps_per_dispatch=steps_per_dispatch)
  return config


def time_bare_step(config, steps: int) -> float:
  """Steps/s of the jitted train step on one device-resident batch (compiled beforehand)."""
  import jax
  from data import pipeline
  from nlvae import datasets, models, train
  train_data, _, info = datasets.load(config.data)
  model = models.build(config.model, info)
  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  batches = pipeline.Batches(train_data, config.train.batch_size, seed=config.seed)
  params = model.init(jax.random.PRNGKey(0), jax.tree.map(jax.numpy.asarray, batches.batch(0)))
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  state = jax.device_put(train.TrainState.create(
      apply_fn=None, params=params, tx=train.make_optimizer(config.train)), replicated)
  batch = train.global_batch(batches.batch(0), mesh)
  key = jax.device_put(jax.random.PRNGKey(1), replicated)
  step = train.make_train_step(model, mesh)
  state, metrics = step(state, batch, key)  # compile
  jax.block_until_ready((state, metrics))
  start = time.perf_counter()
  for _ in range(steps):
    state, metrics = step(state, batch, key)
  jax.block_until_ready((state, metrics))
  return steps / (time.perf_counter() - start)


def time_loop(config, workdir: pathlib.Path) -> float:
  """Steps/s of train_and_evaluate's loop over its log windows after the first."""
  from nlvae import train
  from nlvae.metric_writer import read_metrics
  train.train_and_evaluate(config, workdir, stop_after=config.train.num_steps - 1)
  rows = [r for r in read_metrics(workdir) if "train/steps_per_second" in r][1:]
  previous = [config.train.log_every] + [r["step"] for r in rows]
  steps = [r["step"] - p for r, p in zip(rows, previous)]
  seconds = sum(n / r["train/steps_per_second"] for n, r in zip(steps, rows))
  return sum(steps) / seconds


def run(names, steps: int, rounds: int, *, dry_run: bool = False,
        steps_per_dispatch: int = 1) -> dict:
  """Alternating rounds (bare step, loop) per config -> JSON-able results."""
  import jax
  results = dict(date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                 backend=jax.default_backend(), device=str(jax.devices()[0].device_kind),
                 device_count=jax.device_count(), steps=steps, rounds=rounds, dry_run=dry_run,
                 steps_per_dispatch=steps_per_dispatch, configs={})
  for name in names:
    config = bench_config(name, steps, dry_run=dry_run, steps_per_dispatch=steps_per_dispatch)
    bare, loop = [], []
    for round_index in range(rounds):
      bare.append(time_bare_step(config, steps))
      with tempfile.TemporaryDirectory() as workdir:
        loop.append(time_loop(config, pathlib.Path(workdir) / f"round_{round_index}"))
      print(f"{name} round {round_index}: bare {bare[-1]:.2f} steps/s, loop {loop[-1]:.2f} "
            f"steps/s, ratio {loop[-1] / bare[-1]:.3f}", flush=True)
    results["configs"][name] = dict(
        batch_size=config.train.batch_size, log_every=config.train.log_every,
        bare_steps_per_second=bare, loop_steps_per_second=loop,
        ratio_per_round=[l / b for l, b in zip(loop, bare)],
        efficiency=statistics.median(loop) / statistics.median(bare))
  return results


def main(argv: list[str] | None = None) -> dict:
  """Measures and returns the results; argv (flags only) is parsed when given (a call from
  Python), else the flags are those of the command line."""
  if argv is not None:
    cli.parse(FLAGS, argv, "bench_loop")
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  from nlvae import xla_cpu
  xla_cpu.use_fast_flags()
  names = [n for n in _CONFIGS.value if n]
  unknown = sorted(set(names) - set(CONFIGS))
  if unknown:
    raise ValueError(f"--configs: unknown configs {unknown}; valid: {sorted(CONFIGS)}")
  steps = 4 if _DRY_RUN.value else _STEPS.value
  rounds = 1 if _DRY_RUN.value else _ROUNDS.value
  results = run(names, steps, rounds, dry_run=_DRY_RUN.value,
                steps_per_dispatch=_STEPS_PER_DISPATCH.value)
  for name, entry in results["configs"].items():
    print(f"{name}: loop efficiency {entry['efficiency']:.3f} (loop / bare jitted step, median "
          f"of {rounds} rounds, {results['backend']})")
  if _OUT.value:
    pathlib.Path(_OUT.value).write_text(json.dumps(results, indent=2) + "\n")
  return results


if __name__ == "__main__":
  cli.run(lambda argv: main(), FLAGS)
