"""experiments.bench_loop in its dry-run mode (tiny sizes), so the benchmark cannot rot before it
is run on a quiet CPU or a GPU."""
import json

from experiments import bench_loop
from nlvae import train


def test_dry_run_measures_the_loop_and_the_bare_step(tmp_path):
  out = tmp_path / "loop.json"
  results = bench_loop.main(["--dry_run", "--configs=spring", f"--out={out}"])
  assert json.loads(out.read_text()) == results
  entry = results["configs"]["spring"]
  assert len(entry["bare_steps_per_second"]) == len(entry["loop_steps_per_second"]) == 1
  assert entry["bare_steps_per_second"][0] > 0 and entry["loop_steps_per_second"][0] > 0
  assert entry["efficiency"] == entry["loop_steps_per_second"][0] / entry[
      "bare_steps_per_second"][0]


def test_every_benchmark_config_is_a_valid_training_config():
  for name in bench_loop.CONFIGS:
    for dry_run in (False, True):
      config = bench_loop.bench_config(name, 200, dry_run=dry_run, steps_per_dispatch=2)
      train.validate_config(config)
      log_every = config.train.log_every
      assert (config.train.num_steps - 1) % log_every == 0  # whole windows, the last one timed
      assert config.train.num_steps - 1 - log_every >= (4 if dry_run else 200)
