"""Training across processes with jax.distributed: two processes on one machine (CPU devices, gloo
collectives) train the tiny spring config, each feeding its own half of every global batch, with
an interruption and a resume from the checkpoint in between, and end with the parameters of one
uninterrupted single-process run on the same global batches (to float32 tolerance).

The worker is this file run as a script (`python -m tests.test_distributed WORKDIR OUT PORT
PROCESS_ID NUM_PROCESSES`); every subprocess has a timeout, so a stuck collective fails the test
instead of hanging CI.
"""
from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
GLOBAL_BATCH = 4      # clips per step over all processes
STEPS_PER_CALL = 2    # steps per train_and_evaluate call; two calls (the second resumes)
TIMEOUT_S = 240       # per subprocess (about 85 CPU-seconds for the three runs together)


def tiny_config():
  """The tiny spring config, 8 planned steps so that 2 + 2 steps stop before the evaluation."""
  from experiments import spring
  config = spring.get_config("tiny")
  config.model.interventions = {}
  config.train.update(batch_size=GLOBAL_BATCH, num_steps=8, log_every=1, eval_every=100,
                      checkpoint_every=STEPS_PER_CALL)
  return config


def final_params(workdir: pathlib.Path) -> dict:
  """Restores the latest checkpoint of `workdir` (on every process) -> {path: numpy array}."""
  import jax
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(workdir.absolute() / "checkpoints")
  restored = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())
  flat = jax.tree_util.tree_flatten_with_path(restored["params"])[0]
  return {jax.tree_util.keystr(path): np.asarray(jax.device_get(leaf)) for path, leaf in flat}


def run_training(workdir: pathlib.Path, out: pathlib.Path, calls: int) -> None:
  """Trains 2 * STEPS_PER_CALL steps in `calls` calls of train_and_evaluate (each call after the
  first resumes from the checkpoint, restored by every process); writes out/params_<process>.npz
  (the final checkpoint, restored by every process) and out/shard_<process>.json (this process's
  slice of global batch 0)."""
  import jax
  from data import pipeline
  from nlvae import datasets, train
  config = tiny_config()
  for _ in range(calls):
    assert train.train_and_evaluate(config, workdir, stop_after=2 * STEPS_PER_CALL // calls) == {}
  train_data = datasets.load(config.data)[0]
  shard = pipeline.Batches(train_data, GLOBAL_BATCH, seed=config.seed).indices(0)
  process = jax.process_index()
  (out / f"shard_{process}.json").write_text(json.dumps(
      dict(process_index=process, process_count=jax.process_count(),
           device_count=jax.device_count(), indices=shard.tolist())))
  np.savez(out / f"params_{process}.npz", **final_params(workdir))


def worker(workdir: str, out: str, port: int, process_id: int, num_processes: int) -> None:
  """One process of a jax.distributed job on CPU (one device per process, gloo collectives)."""
  import jax
  jax.config.update("jax_platforms", "cpu")
  jax.config.update("jax_num_cpu_devices", 1)
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  # The resumed call compiles the same train step again: load it from a per-process disk cache.
  jax.config.update("jax_compilation_cache_dir", str(pathlib.Path(out) / f"cache_{process_id}"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  jax.distributed.initialize(coordinator_address=f"localhost:{port}",
                             num_processes=num_processes, process_id=process_id,
                             initialization_timeout=60)
  run_training(pathlib.Path(workdir), pathlib.Path(out), calls=2)
  jax.distributed.shutdown()


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _launch(workdir, out, port: int, process_id: int, num_processes: int) -> subprocess.Popen:
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}
  env.pop("XLA_FLAGS", None)  # one CPU device per process
  return subprocess.Popen(
      [sys.executable, "-m", "tests.test_distributed", str(workdir), str(out), str(port),
       str(process_id), str(num_processes)],
      cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait(processes) -> list[str]:
  """Waits for every process (TIMEOUT_S each); kills them all on a timeout or a failure."""
  logs = []
  try:
    for process in processes:
      logs.append(process.communicate(timeout=TIMEOUT_S)[0])
      assert process.returncode == 0, f"worker failed:\n{logs[-1][-4000:]}"
  finally:
    for process in processes:
      if process.poll() is None:
        process.kill()
        process.communicate()
  return logs


@pytest.mark.slow
def test_two_processes_train_like_one_process_on_the_same_global_batch(tmp_path):
  port = _free_port()
  outs = {name: tmp_path / f"out_{name}" for name in ("two", "one")}
  for out in outs.values():
    out.mkdir()
  processes = [_launch(tmp_path / "two", outs["two"], port, p, 2) for p in range(2)]
  try:
    run_training(tmp_path / "one", outs["one"], calls=1)  # uninterrupted single process, in this one
  finally:
    _wait(processes)

  # Each process fed its own half of the global batch: disjoint halves whose concatenation is the
  # single-process batch.
  shards = [json.loads((outs["two"] / f"shard_{p}.json").read_text()) for p in range(2)]
  single = json.loads((outs["one"] / "shard_0.json").read_text())
  assert [(s["process_index"], s["process_count"], s["device_count"]) for s in shards] == [
      (0, 2, 2), (1, 2, 2)]
  assert (single["process_count"], single["device_count"]) == (1, 1)
  assert [len(s["indices"]) for s in shards] == [GLOBAL_BATCH // 2] * 2
  assert shards[0]["indices"] + shards[1]["indices"] == single["indices"]

  # Checkpoints and metrics written once (orbax's multi-process save; metrics by process 0 only).
  two = tmp_path / "two"
  assert sorted(int(p.name) for p in (two / "checkpoints").iterdir() if p.name.isdigit()) == [
      STEPS_PER_CALL, 2 * STEPS_PER_CALL]
  steps = [json.loads(line)["step"] for line in (two / "metrics.jsonl").read_text().splitlines()]
  assert steps == list(range(1, 2 * STEPS_PER_CALL + 1))

  # Both processes restored the same parameters, equal to the single-process run's.
  params = [dict(np.load(outs["two"] / f"params_{p}.npz")) for p in range(2)]
  reference = dict(np.load(outs["one"] / "params_0.npz"))
  assert sorted(params[0]) == sorted(params[1]) == sorted(reference) and reference
  for name, value in reference.items():
    np.testing.assert_array_equal(params[0][name], params[1][name])
    np.testing.assert_allclose(params[0][name], value, rtol=2e-5, atol=2e-6, err_msg=name)


if __name__ == "__main__":
  worker(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
