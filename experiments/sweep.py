r"""Grid sweep of one experiment config: train_and_evaluate for every grid point and seed.

  python -m experiments.sweep --config=experiments/circles_betavae.py \
      --grid=model.beta=0.001,0.01,0.1 [--grid=model.gamma=0,0.5,1] --seeds=0,1 \
      --workdir=runs/sweep_circles_betavae [--metrics=mcc,latent_corr_offdiag_sq] [--heatmap=mcc]

Every run trains in <workdir>/<key=value,...>/seed_<s>; a run with an eval.json is not repeated and
an interrupted one resumes from its checkpoint, so rerunning the command completes a sweep. Other
config overrides (--config.train.num_steps=...) apply to every run. Writes into --workdir:
  results.json  every run's scalar results, and mean / std over seeds per grid point;
  results.md    the same summary as a Markdown table (mean +- std over seeds), then one row per
                grid point and seed (seed by seed) with each run's training + evaluation wall time;
  heatmap.png   the --heatmap metric (mean over seeds) over the first one or two grid axes.
"""
from __future__ import annotations

import copy
import itertools
import json
import math
import os
import pathlib
import sys
import time

from absl import app
from absl import flags
from absl import logging

from experiments import run as run_lib  # defines --config and --workdir
from experiments import seeds as seeds_lib  # defines --seeds (config.seed values run at every grid point)

_GRID = flags.DEFINE_multi_string("grid", [], "key=v1,v2,... (repeatable): a config field and "
                                  "its values, e.g. model.beta=0.001,0.01.")
_METRICS = flags.DEFINE_list("metrics", [], "Scalar results in the table (default: all).")
_HEATMAP = flags.DEFINE_string("heatmap", "mcc", "Metric shown in heatmap.png.")


def _field(config, key: str):
  """The value of a dotted config key; ValueError naming the valid keys if absent."""
  node = config
  for part in key.split("."):
    if not hasattr(node, "keys") or part not in node:
      raise ValueError(f"--grid key {key!r} is not in the config; valid keys: "
                       f"{', '.join(sorted(run_lib._keys(config)))}")  # noqa: SLF001
    node = node[part]
  return node


def _parse_value(text: str, like, key: str):
  """Parses text as the type of the config's current value `like`."""
  try:
    if isinstance(like, bool):
      if text.lower() not in ("true", "false", "1", "0"):
        raise ValueError
      return text.lower() in ("true", "1")
    if isinstance(like, int):
      return int(text)
    if isinstance(like, float):
      return float(text)
  except ValueError:
    raise ValueError(f"--grid {key}: cannot read {text!r} as {type(like).__name__}") from None
  return text


def parse_grid(specs: list[str], config) -> dict[str, list]:
  """["model.beta=0.001,0.01", ...] -> {"model.beta": [0.001, 0.01], ...}, typed like the config."""
  grid = {}
  for spec in specs:
    key, sep, values = spec.partition("=")
    if not sep or not values:
      raise ValueError(f"--grid must look like key=v1,v2,..., got {spec!r}")
    if key in grid:
      raise ValueError(f"--grid key {key!r} given twice")
    like = _field(config, key)
    grid[key] = [_parse_value(v.strip(), like, key) for v in values.split(",")]
  return grid


def grid_points(grid: dict[str, list]) -> list[dict]:
  """Cartesian product, the last key varying fastest: [{key: value, ...}, ...]."""
  return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def point_config(config, point: dict, seed: int):
  """A copy of config with the grid point's values and the seed set."""
  config = copy.deepcopy(config)
  for key, value in point.items():
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    node[leaf] = value
  config.seed = seed
  return config


def point_name(point: dict) -> str:
  return ",".join(f"{k}={v}" for k, v in point.items()) or "default"


def scalars(results: dict) -> dict[str, float]:
  return {k: float(v) for k, v in results.items()
          if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "num_steps"}


def summarize(runs: list[dict], points: list[dict], metrics: list[str]) -> list[dict]:
  """Mean, std (ddof 0) and count over seeds of each metric at each grid point."""
  rows = []
  for point in points:
    values = {m: [r["results"][m] for r in runs if r["point"] == point and m in r["results"]]
              for m in metrics}
    rows.append(dict(point=point, metrics={
        m: dict(mean=sum(v) / len(v) if v else math.nan,
                std=math.sqrt(sum((x - sum(v) / len(v))**2 for x in v) / len(v)) if v else math.nan,
                n=len(v)) for m, v in values.items()}))
  return rows


def markdown_table(rows: list[dict], keys: list[str], metrics: list[str]) -> str:
  lines = ["| " + " | ".join(keys + metrics) + " |", "|" + "---|" * (len(keys) + len(metrics))]
  for row in rows:
    cells = [str(row["point"][k]) for k in keys]
    for m in metrics:
      s = row["metrics"][m]
      cells.append("n/a" if not s["n"] else
                   f"{s['mean']:.4g}" + (f" ± {s['std']:.2g}" if s["n"] > 1 else ""))
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def per_seed_table(runs: list[dict], keys: list[str], metrics: list[str]) -> str:
  """One Markdown row per run (grid point, seed): its metrics and wall time in seconds."""
  lines = ["| " + " | ".join(keys + ["seed"] + metrics + ["wall s"]) + " |",
           "|" + "---|" * (len(keys) + len(metrics) + 2)]
  for run in runs:
    cells = [str(run["point"][k]) for k in keys] + [str(run["seed"])]
    cells += [f"{run['results'][m]:.4g}" if m in run["results"] else "n/a" for m in metrics]
    wall = run.get("wall_s")
    cells.append("n/a" if wall is None else f"{wall:.0f}")
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def plot_heatmap(path: pathlib.Path, rows: list[dict], grid: dict[str, list], metric: str) -> bool:
  """Heatmap of metric means over the first two grid axes (one axis: a single row). Returns
  False (nothing written) with more than two axes or an unknown metric."""
  keys = list(grid)
  if not 1 <= len(keys) <= 2 or not rows or metric not in rows[0]["metrics"]:
    return False
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  import numpy as np
  row_key, col_key = (keys[0], keys[1]) if len(keys) == 2 else (None, keys[0])
  row_values = grid[row_key] if row_key else [None]
  table = np.full((len(row_values), len(grid[col_key])), np.nan)
  for row in rows:
    i = row_values.index(row["point"][row_key]) if row_key else 0
    table[i, grid[col_key].index(row["point"][col_key])] = row["metrics"][metric]["mean"]
  fig, ax = plt.subplots(figsize=(1.2 * table.shape[1] + 2.5, 0.9 * table.shape[0] + 1.6))
  image = ax.imshow(table, cmap="viridis", aspect="auto")
  middle = np.nanmean([np.nanmin(table), np.nanmax(table)])
  for (i, j), value in np.ndenumerate(table):  # dark text on the bright (high) cells
    ax.text(j, i, f"{value:.3g}", ha="center", va="center", fontsize=8,
            color="k" if value > middle else "w")
  ax.set_xticks(range(table.shape[1]), [str(v) for v in grid[col_key]])
  ax.set_xlabel(col_key)
  ax.set_yticks(range(table.shape[0]), [str(v) for v in row_values] if row_key else [""])
  ax.set_ylabel(row_key or "")
  ax.set_title(f"{metric} (mean over seeds)")
  fig.colorbar(image, ax=ax)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return True


def main(argv):
  del argv
  logging.set_verbosity(logging.WARNING)
  from nlvae import xla_cpu
  xla_cpu.use_fast_flags()  # before JAX's first computation starts the CPU backend
  import jax
  if os.environ.get("NLVAE_JAX_CACHE"):  # opt-in persistent compilation cache, as experiments.run
    jax.config.update("jax_compilation_cache_dir", os.environ["NLVAE_JAX_CACHE"])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  from nlvae import train
  config = run_lib._CONFIG.value  # noqa: SLF001 -- the shared --config flag
  if config is None:
    sys.exit("config error: --config=experiments/<name>.py is required")
  name = os.path.splitext(os.path.basename(flags.FLAGS["config"].config_filename))[0]
  root_flag = run_lib._WORKDIR.value  # noqa: SLF001 -- the shared --workdir flag
  root = pathlib.Path(root_flag or os.path.join("runs", f"sweep_{name}"))
  try:
    grid = parse_grid(_GRID.value, config)
    seeds = seeds_lib.parse_seeds(seeds_lib._SEEDS.value)
  except ValueError as error:
    sys.exit(f"config error: {error}")
  points = grid_points(grid)
  runs = []
  for point in points:
    for seed in seeds:
      workdir = root / point_name(point) / f"seed_{seed}"
      eval_path, wall_path = workdir / "eval.json", workdir / "sweep_wall.json"
      if eval_path.exists():
        results = json.loads(eval_path.read_text())
      else:
        print(f"[sweep] {point_name(point)} seed {seed} -> {workdir}", flush=True)
        start = time.perf_counter()
        try:
          results = train.train_and_evaluate(point_config(config, point, seed), workdir)
        except (ValueError, KeyError, FileNotFoundError, train.TrainingDiverged) as error:
          sys.exit(f"error in {workdir}: {error}")
        # Wall time of this call (a resumed run counts only its last part).
        wall_path.write_text(json.dumps(dict(wall_s=time.perf_counter() - start)) + "\n")
      wall = json.loads(wall_path.read_text())["wall_s"] if wall_path.exists() else None
      runs.append(dict(point=point, seed=seed, workdir=str(workdir), wall_s=wall,
                       results=scalars(results)))
  metrics = list(_METRICS.value) or sorted({m for r in runs for m in r["results"]})
  rows = summarize(runs, points, metrics)
  root.mkdir(parents=True, exist_ok=True)
  (root / "results.json").write_text(json.dumps(
      dict(config=name, grid=grid, seeds=seeds, runs=runs, summary=rows), indent=2) + "\n")
  table = markdown_table(rows, list(grid), metrics)
  seed_table = per_seed_table(runs, list(grid), metrics)
  (root / "results.md").write_text(f"Sweep of {name} (seeds {seeds}): mean ± std (ddof 0) over "
                                   f"seeds.\n\n{table}\nSeed by seed.\n\n{seed_table}")
  heatmap = plot_heatmap(root / "heatmap.png", rows, grid, _HEATMAP.value)
  print(table + "\n" + seed_table + f"Wrote {root / 'results.json'}, {root / 'results.md'}"
        + (f", {root / 'heatmap.png'}" if heatmap else " (no heatmap: needs 1-2 grid axes and "
           f"a known --heatmap metric)"))


if __name__ == "__main__":
  app.run(main, flags_parser=run_lib.parse_flags_or_exit)
