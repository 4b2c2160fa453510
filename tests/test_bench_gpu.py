"""experiments/bench_gpu.py --dry_run: the GPU script runs end to end on the CPU at tiny sizes.

One dry run of every phase (one process: the suite's time matters more than parallel phases),
checked phase by phase.
"""
import importlib.util
import json
import subprocess
import sys

import pytest

from experiments import bench_gpu

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _dry_run(tmp_path, skip):
  path = tmp_path / "bench_gpu.json"
  out = subprocess.run([sys.executable, "-m", "experiments.bench_gpu", "--dry_run",
                        f"--json={path}", f"--skip={skip}"], capture_output=True, text=True,
                       timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-3000:]
  results = json.loads(path.read_text())
  assert results["errors"] == {}, results["errors"]
  assert results["dry_run"] is True
  return results


def test_install_commands_pin_the_cuda_wheels():
  commands = [" ".join(c) for c in bench_gpu.install_commands("python")]
  assert commands == ["python -m pip install -q jax[cuda12]==0.9.2",
                      "python -m pip install -q torch==2.13.0"]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
  return _dry_run(tmp_path_factory.mktemp("bench_gpu"), skip="")


def test_dry_run_benchmarks(dry_run):
  results = dry_run
  assert results["install"] == {"commands": [" ".join(c) for c in bench_gpu.install_commands()],
                                "ran": False}
  assert results["environment"]["backend"] == "cpu"
  assert results["environment"]["jax"] == "0.9.2"
  assert set(results["phase_s"]) >= {"environment", "networks", "pytorch", "loop", "train"}
  network_rows = results["networks"]["batch_2"]["models"]
  assert set(network_rows) == {"slowvae", "slowvae_bf16", "physics_tiny"}
  for row in network_rows.values():
    assert row["images_per_s"] > 0 and 0 < row["fraction_of_matmul"]
    assert row["num_params"] > 0 and row["loss"] > 0
  # bfloat16 compute, float32 parameters: the same network (its loss: tests/test_mixed_precision).
  assert network_rows["slowvae_bf16"]["num_params"] == network_rows["slowvae"]["num_params"]
  assert results["networks"]["batch_2"]["bf16_speedup"] > 0
  pytorch = results["pytorch"]
  if not HAS_TORCH:
    assert "torch is not installed" in pytorch["skipped"]
    return
  batch = pytorch["batch_2"]
  nlvae, torch_row = batch["models"]["nlvae"], batch["models"]["pytorch"]
  assert nlvae["num_params"] == torch_row["num_params"]  # 32x32 images: a smaller hidden layer
  assert batch["initial_loss_relative_difference"] < 1e-4
  assert torch_row["initial_loss"] == pytest.approx(nlvae["initial_loss"], rel=1e-4)
  assert batch["nlvae_over_pytorch"]["median"] == pytest.approx(
      nlvae["images_per_s"] / torch_row["images_per_s"])
  assert torch_row["info"]["device"] == "cpu" and torch_row["info"]["threads"] == 2


def test_dry_run_loop_efficiency(dry_run):
  results = dry_run
  loop = results["loop"]
  if "skipped" in loop:  # its --help has no --dry_run
    assert "no --dry_run" in loop["skipped"]
    return
  assert list(loop) == ["default"]  # --steps_per_dispatch=4 only on a GPU
  assert loop["default"]["returncode"] == 0
  assert loop["default"]["command"].startswith("python -m experiments.bench_loop --")
  assert "--dry_run" in loop["default"]["command"]
  assert isinstance(loop["default"]["results"], dict) and loop["default"]["results"]


def test_dry_run_training(dry_run):
  results = dry_run
  train = results["train"]
  assert train["command"] == ("python -m experiments.run --config=experiments/spring.py:tiny "
                              "--config.train.num_steps=2")
  assert train["eval"]["num_steps"] == 2
  assert 0 <= train["eval"]["latent/abs_pearson_r"] <= 1
  assert train["wall_s"] > 0 and len(train["steps_per_second_logged"]) >= 1


def test_full_run_without_a_gpu_stops_after_the_environment(tmp_path):
  """Not a dry run and no GPU: the JSON says so and the command fails, instead of spending the
  lease on full-size CPU benchmarks."""
  path = tmp_path / "bench_gpu.json"
  out = subprocess.run([sys.executable, "-m", "experiments.bench_gpu", f"--json={path}",
                        "--skip=install"], capture_output=True, text=True, timeout=300,
                       check=False)
  assert out.returncode == 1
  results = json.loads(path.read_text())
  assert "no GPU backend" in results["errors"]["environment"]
  assert set(results["phase_s"]) == {"environment"}
