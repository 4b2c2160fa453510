r"""Trains and evaluates one experiment for several seeds, then aggregates the evaluations.

  python -m experiments.seeds --config=experiments/slowvae_sprites.py[:variant] --seeds=0,1,2 \
      [--workdir=runs/slowvae_sprites_seeds] [--config.train.num_steps=...]

Seed k sets config.seed (parameter initialisation, batch order and the evaluation's random draws)
and trains in workdir/seed_k with nlvae.train.train_and_evaluate (resuming from its checkpoint
when rerun; a seed whose eval.json exists for an identical config.json is not rerun). The data
config (and so the dataset) is the same for every seed. Then every numeric key of the eval.json
files is aggregated into workdir/summary.json,

  {"seeds": [0, 1, 2], "metrics": {key: {"mean": ..., "std": ..., "per_seed": [...]}}}

(std: sample standard deviation, ddof 1; 0 for a single seed; a key missing from a seed's
eval.json is left out of that key's mean and shows as null in per_seed), and printed as a
Markdown table.
"""
from __future__ import annotations

import json
import math
import pathlib
import sys

from absl import app
from absl import flags
from absl import logging

from experiments import run  # defines --config, --workdir, --distributed

_SEEDS = flags.DEFINE_string("seeds", "0,1,2", "Comma-separated non-negative integer seeds.")


def parse_seeds(text: str) -> list[int]:
  """"0,1,2" -> [0, 1, 2]; raises ValueError on anything but distinct non-negative integers."""
  try:
    seeds = [int(part) for part in text.split(",") if part.strip()]
  except ValueError:
    raise ValueError(f"--seeds must be comma-separated integers such as 0,1,2, got {text!r}")
  if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
    raise ValueError(f"--seeds must list distinct non-negative integers such as 0,1,2, got "
                     f"{text!r}")
  return seeds


def summarize(results_by_seed: dict[int, dict]) -> dict:
  """{seed: eval dict} -> {"seeds": [...], "metrics": {key: {"mean", "std", "per_seed"}}}.

  Keys: every key whose value is a real number (bools excluded) in at least one seed, sorted.
  """
  seeds = sorted(results_by_seed)
  keys = sorted({key for results in results_by_seed.values() for key, value in results.items()
                 if isinstance(value, (int, float)) and not isinstance(value, bool)})
  summary = {}
  for key in keys:
    per_seed = [results_by_seed[s].get(key) for s in seeds]
    values = [float(v) for v in per_seed if isinstance(v, (int, float))]
    mean = sum(values) / len(values)
    std = (math.sqrt(sum((v - mean)**2 for v in values) / (len(values) - 1))
           if len(values) > 1 else 0.0)
    summary[key] = {"mean": mean, "std": std,
                    "per_seed": [None if v is None else float(v) for v in per_seed]}
  return {"seeds": seeds, "metrics": summary}


def markdown_table(summary: dict) -> str:
  """The summary as a Markdown table: metric | mean +- std | one column per seed."""
  seeds = summary["seeds"]
  lines = ["| metric | mean ± std | " + " | ".join(f"seed {s}" for s in seeds) + " |",
           "|---|---|" + "---|" * len(seeds)]
  fmt = lambda v: "–" if v is None else f"{v:.4g}"
  for key, row in summary["metrics"].items():
    lines.append(f"| {key} | {row['mean']:.4g} ± {row['std']:.2g} | "
                 + " | ".join(fmt(v) for v in row["per_seed"]) + " |")
  return "\n".join(lines)


def run_seed(config, seed: int, workdir: pathlib.Path) -> dict:
  """Trains and evaluates config with config.seed = seed in workdir (or reads a finished run)."""
  from nlvae import train
  config = config.copy_and_resolve_references()
  with config.unlocked():
    config.seed = seed
  eval_path, config_path = workdir / "eval.json", workdir / "config.json"
  if (eval_path.exists() and config_path.exists()
      and config_path.read_text() == config.to_json_best_effort(indent=2) + "\n"):
    print(f"seed {seed}: reusing {eval_path}")
    return json.loads(eval_path.read_text())
  return train.train_and_evaluate(config, workdir)


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO
  from nlvae import xla_cpu
  xla_cpu.use_fast_flags()  # before JAX's first computation starts the CPU backend
  config = flags.FLAGS.config
  if config is None:
    sys.exit("config error: --config=experiments/<name>.py is required")
  try:
    seeds = parse_seeds(_SEEDS.value)
  except ValueError as error:
    sys.exit(f"error: {error}")
  if flags.FLAGS.distributed:
    import jax
    jax.distributed.initialize()
  config_name = pathlib.Path(flags.FLAGS["config"].config_filename).stem
  workdir = pathlib.Path(flags.FLAGS.workdir or f"runs/{config_name}_seeds")
  from nlvae import train
  results = {}
  for seed in seeds:
    try:
      results[seed] = run_seed(config, seed, workdir / f"seed_{seed}")
    except (ValueError, KeyError, FileNotFoundError, train.TrainingDiverged) as error:
      sys.exit(f"error (seed {seed}): {error}")
  summary = summarize(results)
  workdir.mkdir(parents=True, exist_ok=True)
  (workdir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
  print(markdown_table(summary))
  print(f"Summary: {workdir / 'summary.json'}")


if __name__ == "__main__":
  app.run(main, flags_parser=run.parse_flags_or_exit)
