"""The one training loop: end-to-end smoke run, learning, exact resume, NaN handling, multi-device
equivalence and clean config errors."""
import json
import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from experiments import spring
from nlvae import train

ROOT = pathlib.Path(__file__).resolve().parent.parent


def test_smoke_run_writes_the_workdir_contract(tmp_path):
  config = spring.get_config("tiny")
  results = train.train_and_evaluate(config, tmp_path)
  for name in ("config.json", "metrics.jsonl", "eval.json", "figures/latent_space.png",
               "figures/training_curves.png", "figures/reconstructions.png",
               "videos/double_amplitude.gif", "videos/add_damping.gif"):
    assert (tmp_path / name).exists(), name
  assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["3", "6"]
  saved = json.loads((tmp_path / "eval.json").read_text())
  assert saved["num_steps"] == 6 and 0.0 <= saved["latent/abs_pearson_r"] <= 1.0
  for name in ("double_amplitude", "add_damping"):
    for kind in ("counterfactual", "unintervened"):
      assert np.isfinite(results[f"intervention/{name}/pixel_mse_{kind}"])
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows if "train/loss" in r] == [2, 4, 6]


def test_tiny_spring_learns_the_position(tmp_path):
  """A real learning test: about a minute on 2 CPU cores, |r| >= 0.9 on held-out clips."""
  config = spring.get_config("quick")
  config.train.update(num_steps=700, progress_bar=False, eval_every=700, checkpoint_every=700)
  config.model.interventions = {}
  results = train.train_and_evaluate(config, tmp_path)
  assert results["latent/abs_pearson_r"] >= 0.9, results


def _params(workdir):
  import orbax.checkpoint as ocp
  manager = ocp.CheckpointManager(pathlib.Path(workdir).absolute() / "checkpoints")
  restored = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())
  return manager.latest_step(), restored["params"], restored["opt_state"]


def test_resumed_run_ends_with_the_parameters_of_an_uninterrupted_run(tmp_path):
  config = spring.get_config("tiny")
  config.model.interventions = {}
  train.train_and_evaluate(config, tmp_path / "straight")
  assert train.train_and_evaluate(config, tmp_path / "interrupted", stop_after=4) == {}
  assert _params(tmp_path / "interrupted")[0] == 4
  train.train_and_evaluate(config, tmp_path / "interrupted")  # resumes at step 4
  step_a, params_a, opt_a = _params(tmp_path / "straight")
  step_b, params_b, opt_b = _params(tmp_path / "interrupted")
  assert step_a == step_b == 6
  jax.tree.map(np.testing.assert_array_equal, params_a, params_b)
  jax.tree.map(np.testing.assert_array_equal, opt_a, opt_b)


def test_nan_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
  config = spring.get_config("tiny")
  train.train_and_evaluate(config, tmp_path, stop_after=3)
  config.model.beta = float("nan")  # NaN from step 4 on; the workdir check would refuse beta
  monkeypatch.setattr(train, "HARMLESS_KEYS", train.HARMLESS_KEYS + ("model.beta",))
  with pytest.raises(train.TrainingDiverged, match=r"loss is nan at step 4; .*last good "
                     r"checkpoint \(step 3\)"):
    train.train_and_evaluate(config, tmp_path)
  assert _params(tmp_path)[0] == 3
  assert not (tmp_path / "eval.json").exists()


def test_one_step_on_four_devices_equals_one_device():
  script = textwrap.dedent("""
      import jax, numpy as np
      jax.config.update("jax_num_cpu_devices", 4)
      from experiments import spring
      from nlvae import datasets, models, train
      from data import pipeline
      config = spring.get_config("tiny")
      train_data, _, info = datasets.load(config.data)
      model = models.build(config.model, info)
      batch = pipeline.Batches(train_data, 4, seed=0).batch(0)
      params = model.init(jax.random.PRNGKey(0), batch)
      results = []
      for devices in (jax.devices()[:1], jax.devices()):
        mesh = jax.sharding.Mesh(np.array(devices), ("data",),
                                 axis_types=(jax.sharding.AxisType.Auto,))
        state = train.TrainState.create(apply_fn=None, params=jax.tree.map(np.array, params),
                                        tx=train.make_optimizer(config.train))
        state, _ = train.make_train_step(model, mesh)(state, train.global_batch(batch, mesh),
                                                      jax.random.PRNGKey(1))
        results.append(jax.device_get(state.params))
      assert len(jax.devices()) == 4
      jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6), *results)
      print("EQUAL")
  """)
  out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0 and "EQUAL" in out.stdout, out.stderr[-3000:]


@pytest.mark.parametrize("override, expected", [
    ("--config.train.num_stepz=5", "num_stepz"),
    ("--config.train.num_steps=many", "num_steps"),
])
def test_bad_config_gives_a_one_line_error_listing_valid_keys(tmp_path, override, expected):
  out = subprocess.run([sys.executable, "-m", "experiments.run",
                        "--config=experiments/spring.py:tiny", override,
                        f"--workdir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode != 0
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert len(lines) == 1, out.stderr
  assert expected in lines[0] and "train.num_steps" in lines[0] and "Traceback" not in out.stderr


def test_dispatch_plan_never_crosses_a_log_eval_or_checkpoint_step():
  plan = list(train.dispatch_plan(3, 20, 4, (5, 10, 20)))
  assert plan == [(3, 2), (5, 4), (9, 1), (10, 4), (14, 1), (15, 4), (19, 1)]
  assert list(train.dispatch_plan(10, 20, 4, (5, 10, 20))) == plan[3:]  # the same after a resume
  assert list(train.dispatch_plan(0, 3, 1, (2,))) == [(0, 1), (1, 1), (2, 1)]


def test_several_steps_per_dispatch_train_like_one_step_per_dispatch(tmp_path):
  """lax.scan over 3 stacked batches, interrupted and resumed, against one step per dispatch."""
  config = spring.get_config("tiny")
  config.model.interventions = {}
  config.train.update(num_steps=7, log_every=3)  # 6 steps of 7: no final evaluation
  train.train_and_evaluate(config, tmp_path / "one", stop_after=6)
  config.train.steps_per_dispatch = 3
  train.train_and_evaluate(config, tmp_path / "three", stop_after=3)
  train.train_and_evaluate(config, tmp_path / "three", stop_after=3)
  step_a, params_a, opt_a = _params(tmp_path / "one")
  step_b, params_b, opt_b = _params(tmp_path / "three")
  assert step_a == step_b == 6
  close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # noqa: E731
  jax.tree.map(close, params_a, params_b)
  jax.tree.map(close, opt_a, opt_b)
  rows = [json.loads(line) for line in (tmp_path / "three" / "metrics.jsonl").read_text()
          .splitlines()]
  assert [r["step"] for r in rows if "train/loss" in r] == [3, 6]
