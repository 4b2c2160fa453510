"""The one training loop of nlvae: `train_and_evaluate(config, workdir)`.

Every model (nlvae.models) is trained the same way:
  - data parallel: the global batch is sharded over all devices along a ('data',) mesh axis with
    jax.jit + NamedSharding (multi-host: every process feeds its own shard of each global batch,
    launched through jax.distributed; see README);
  - the batch of step s and the random key of step s are pure functions of (seed, s), so a run
    restarted from a checkpoint ends with exactly the parameters of an uninterrupted run;
  - orbax checkpoints every `train.checkpoint_every` steps (only finite states are saved), restored
    automatically from workdir/checkpoints;
  - metrics as JSON lines (workdir/metrics.jsonl) and TensorBoard events (workdir/tensorboard);
  - a NaN or Inf loss stops the run with a one-line message; the last good checkpoint is kept;
  - periodic evaluation on a held-out batch, then the model's final evaluation into eval.json.
"""
from __future__ import annotations

import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax.training import train_state
from jax.sharding import NamedSharding, PartitionSpec

from data import pipeline
from nlvae import datasets, models
from nlvae.metric_writer import MetricWriter


class TrainingDiverged(FloatingPointError):
  """The loss or the parameters became NaN or Inf."""


class TrainState(train_state.TrainState):
  pass


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


def make_train_step(model, mesh):
  """jit-compiled step (state, global batch, key) -> (state, metrics), sharded over `mesh`."""
  replicated = NamedSharding(mesh, PartitionSpec())
  data_sharded = NamedSharding(mesh, PartitionSpec("data"))

  def train_step(state, batch, rng):
    (_, metrics), grads = jax.value_and_grad(model.loss, has_aux=True)(state.params, batch, rng)
    return state.apply_gradients(grads=grads), metrics

  return jax.jit(train_step, in_shardings=(replicated, data_sharded, replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0)


def make_eval_step(model, mesh):
  replicated = NamedSharding(mesh, PartitionSpec())
  data_sharded = NamedSharding(mesh, PartitionSpec("data"))
  return jax.jit(lambda params, batch, rng: model.loss(params, batch, rng)[1],
                 in_shardings=(replicated, data_sharded, replicated), out_shardings=replicated)


def global_batch(local_batch: dict, mesh) -> dict:
  """This process's slice of the global batch -> global jax.Arrays sharded over 'data'."""
  sharding = NamedSharding(mesh, PartitionSpec("data"))
  return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def all_finite(tree) -> bool:
  """Whether every leaf of the pytree is finite (one compiled reduction)."""
  return bool(_all_finite(tree))


def checkpoint_manager(workdir: pathlib.Path, train_config) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=train_config.keep_checkpoints, create=True)
  return ocp.CheckpointManager((workdir / "checkpoints").absolute(), options=options)


def _truncate_metrics(path: pathlib.Path, last_step: int) -> None:
  """Drops JSONL rows written after the restored checkpoint (they will be written again)."""
  if not path.exists():
    return
  rows = [line for line in path.read_text().splitlines()
          if line.strip() and json.loads(line).get("step", 0) <= last_step]
  path.write_text("".join(row + "\n" for row in rows))


def _progress(total: int, initial: int, enabled: bool):
  from tqdm import tqdm
  return tqdm(total=total, initial=initial, disable=not enabled, dynamic_ncols=True,
              desc="train", unit="step")


def train_and_evaluate(config, workdir, *, stop_after: int | None = None) -> dict:
  """Trains config.model on config.data, checkpointing in workdir; returns the final evaluation.

  Args:
    config: an ml_collections.ConfigDict (see experiments/*.py).
    workdir: output folder (config.json, metrics.jsonl, checkpoints/, eval.json, figures/,
      videos/, tensorboard/).
    stop_after: stop (as if interrupted) after this many steps of this call, without the final
      evaluation; used to test exact resumption.
  Returns:
    The final evaluation dict (also written to workdir/eval.json), or {} when stopped early and on
    every process but process 0.
  """
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  is_main = jax.process_index() == 0
  if is_main:
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2) + "\n")

  train_data, test_data, info = datasets.load(config.data)
  model = models.build(config.model, info)
  num_devices = jax.device_count()
  mesh = jax.make_mesh((num_devices,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  batch_size = config.train.batch_size
  if batch_size % num_devices:
    raise ValueError(f"train.batch_size={batch_size} must be divisible by the {num_devices} "
                     f"devices; set --config.train.batch_size to a multiple of {num_devices}")
  batches = pipeline.Batches(train_data, batch_size, seed=config.seed)
  eval_batches = pipeline.Batches(test_data, min(batch_size, len(test_data["frames"])
                                                  // num_devices * num_devices), seed=config.seed)

  rng = jax.random.PRNGKey(config.seed)
  init_rng, train_rng, eval_rng = jax.random.split(rng, 3)
  params = model.init(init_rng, jax.tree.map(jnp.asarray, batches.batch(0)))
  tx = make_optimizer(config.train)
  replicated = NamedSharding(mesh, PartitionSpec())
  state = jax.device_put(TrainState.create(apply_fn=None, params=params, tx=tx), replicated)

  manager = checkpoint_manager(workdir, config.train)
  start_step = 0
  if manager.latest_step() is not None:
    start_step = manager.latest_step()
    state = manager.restore(start_step, args=ocp.args.StandardRestore(state))
    if is_main:
      print(f"Resumed from {workdir / 'checkpoints'} at step {start_step}.")
  writer = MetricWriter(workdir, enabled=is_main)
  if is_main:
    _truncate_metrics(workdir / "metrics.jsonl", start_step)

  train_step = make_train_step(model, mesh)
  eval_step = make_eval_step(model, mesh)
  num_steps = config.train.num_steps
  end_step = num_steps if stop_after is None else min(num_steps, start_step + stop_after)
  progress = _progress(num_steps, start_step, enabled=is_main and config.train.progress_bar)
  last_good_step = start_step
  window, window_start = [], time.perf_counter()
  for step in range(start_step, end_step):
    batch = global_batch(batches.batch(step), mesh)
    state, metrics = train_step(state, batch, jax.random.fold_in(train_rng, step))
    metrics = jax.device_get(metrics)
    if not np.isfinite(metrics["loss"]):
      manager.wait_until_finished()
      raise TrainingDiverged(
          f"loss is {metrics['loss']} at step {step}; stopped. The last good checkpoint (step "
          f"{manager.latest_step()}) is kept in {workdir / 'checkpoints'}; lower "
          f"--config.train.learning_rate or set --config.train.grad_clip_norm and rerun.")
    window.append(metrics)
    done = step + 1
    progress.update(1)
    if done % config.train.log_every == 0 or done == end_step:
      progress.set_postfix({k: f"{metrics[k]:.4g}" for k in ("loss", "recon", "kl")
                            if k in metrics})
      elapsed = time.perf_counter() - window_start
      row = {k: float(np.mean([m[k] for m in window])) for k in window[0]}
      row["steps_per_second"] = len(window) / max(elapsed, 1e-9)
      writer.write(done, row, prefix="train/")
      window, window_start = [], time.perf_counter()
    if done % config.train.eval_every == 0 or done == num_steps:
      eval_metrics = jax.device_get(eval_step(state.params,
                                              global_batch(eval_batches.batch(done), mesh),
                                              jax.random.fold_in(eval_rng, done)))
      writer.write(done, {k: float(v) for k, v in eval_metrics.items()}, prefix="eval/")
    if done % config.train.checkpoint_every == 0 or done == end_step:
      if not all_finite(state.params):
        raise TrainingDiverged(
            f"parameters became NaN/Inf by step {done}; not saved. The last good checkpoint "
            f"(step {last_good_step}) is kept; lower --config.train.learning_rate and rerun.")
      manager.save(done, args=ocp.args.StandardSave(state))
      last_good_step = done
  progress.close()
  manager.wait_until_finished()
  writer.close()
  if end_step < num_steps or not is_main:  # process 0 alone evaluates and writes figures
    return {}

  params = jax.device_get(state.params)
  results = model.evaluate(params, dict(train=train_data, test=test_data, info=info), workdir,
                           eval_rng)
  results["num_steps"] = num_steps
  (workdir / "eval.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
  return results
