r"""Learning curves of SlowVAE and its baselines: MCC and per-factor |Spearman| at log-spaced steps.

  python -m experiments.slowvae_curves --workdir=runs/slowvae_curves            # the 60-min study
  python -m experiments.slowvae_curves --dry_run                                # the plan only
  python -m experiments.slowvae_curves --models=slowvae,beta_vae --transitions=laplace \
      --steps=1000 --first=50 --checkpoints=5 --workdir=runs/curves_tiny       # a tiny budget

For every model (--models: slowvae, beta_vae, adagvae; slowvae_reference is SlowVAE with
--config.model.kl_form=reference, the release's Laplace term) and transitions (--transitions: laplace,
uniform, natural) one run is trained with the `medium` config of experiments/<model>_sprites.py
(batch 32 pairs, Adam, warm-up to 1e-3 then cosine decay to 1e-5) but over --steps steps (the
cosine spans the whole curve, so an early point is not a finished shorter run; the warm-up is
500 steps, or a tenth of --steps if that is shorter). The default
--steps=25000 is about 53 minutes of training a run alone on 2 CPU cores (7.8 steps/s over whole
medium runs); two runs side by side, each pinned to one core (`taskset -c 0` / `-c 1`), took 76
minutes each (5.45 steps/s, measured 2026-12-02).

Training stops at --checkpoints log-spaced steps from --first to --steps (nlvae.train's
`stop_after`: the same loop, resumed from its checkpoint, so the parameters are those of one
uninterrupted run); at each stop the encoder mean is evaluated on fresh sprites: MCC and
"mcc_factor/<factor>" (|Spearman| of each factor's matched latent), at the config's quick sample
sizes. The last stop is the run's own final evaluation (eval.json: also MIG, SAP, modularity,
test losses). Output in --workdir:
  <model>_<transitions>/          the run (config.json, metrics.jsonl, checkpoints, eval.json)
  curves.jsonl                    one row per (run, step): mcc, mcc_factor/*, train_s, wall_s,
                                  and at the last step mig, sap, modularity
  curves.png                      MCC against step and against training time, one curve per run
  curves.md                       the rows as Markdown tables
train_s is the training loop's own time (from metrics.jsonl: steps over steps/s, compilation of
the step included); wall_s adds each resume's data generation, initialisation and checkpoint
restore, and at the last stop the run's final evaluation; the MCC evaluations of the other stops
are not counted in either. Rerunning continues where it stopped.
A persistent compilation cache (--jax_cache, default <workdir>/jax_cache) makes resumes cheap.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import pathlib
import time

from absl import app
from absl import flags

CONFIG_MODULES = {"slowvae": "experiments.slowvae_sprites", "beta_vae": "experiments.betavae_sprites",
                  "adagvae": "experiments.adagvae_sprites",
                  "slowvae_reference": "experiments.slowvae_sprites"}
# Model options a curve's name stands for (on top of the config module's medium config).
MODEL_OPTIONS = {"slowvae_reference": {"kl_form": "reference"}}
MODEL_LABELS = {"slowvae": "SlowVAE", "beta_vae": "beta-VAE (beta 4)", "adagvae": "Ada-GVAE",
                "slowvae_reference": "SlowVAE, release's Laplace term"}
# Training steps/s of the SlowVAE networks at 32 pairs, measured on 2 lightly shared CPU cores
# (docs/slowvae.md); only the --dry_run estimate uses it.
STEPS_PER_SECOND = 7.7


def log_spaced_steps(first: int, last: int, count: int) -> list[int]:
  """count (or fewer, when rounding merges some) distinct integer steps from first to last,
  evenly spaced in log(step), last included."""
  if not 1 <= first <= last or count < 1:
    raise ValueError(f"need 1 <= first <= last and count >= 1, got first={first}, last={last}, "
                     f"count={count}; set --first, --steps and --checkpoints.")
  if count == 1 or first == last:
    return [last]
  ratio = (last / first) ** (1.0 / (count - 1))
  return sorted({min(last, round(first * ratio**i)) for i in range(count)} | {last})


@dataclasses.dataclass(frozen=True)
class Run:
  model: str
  transitions: str

  @property
  def name(self) -> str:
    return f"{self.model}_{self.transitions}"


def make_runs(models, transitions) -> list[Run]:
  """The (model, transitions) grid; names checked, transitions aliases resolved."""
  from data import sprites
  unknown = sorted(set(models) - set(CONFIG_MODULES))
  if unknown or not models:
    raise ValueError(f"--models must name some of {sorted(CONFIG_MODULES)}, got {models}.")
  names = [sprites.TRANSITION_ALIASES.get(t, t) for t in transitions]
  if not names or not set(names) <= set(sprites.TRANSITIONS):
    raise ValueError(f"--transitions must name some of {sprites.TRANSITIONS} (or an alias "
                     f"{sorted(sprites.TRANSITION_ALIASES)}), got {transitions}.")
  return [Run(m, t) for m in models for t in dict.fromkeys(names)]


def run_config(run: Run, steps: int, seed: int, overrides: dict | None = None):
  """The medium config of run's model and transitions over `steps` steps; overrides: nested
  {"data": {...}, "model": {...}, "train": {...}} updates (tests use tiny ones)."""
  config = importlib.import_module(CONFIG_MODULES[run.model]).get_config(
      f"medium_{run.transitions}")
  config.seed = seed
  # The warm-up is at most a tenth of the curve (500 steps from 5,000 steps on); every stop is
  # saved anyway (a segment's end), so checkpoint_every is the whole run.
  config.train.update(num_steps=steps, progress_bar=False, keep_checkpoints=1,
                      checkpoint_every=steps,
                      warmup_steps=min(config.train.warmup_steps, steps // 10))
  config.model.update(MODEL_OPTIONS.get(run.model, {}))
  for section, values in (overrides or {}).items():
    config[section].update(values)
  return config


def training_seconds(metrics_path: pathlib.Path) -> float:
  """Time of the training loop from metrics.jsonl: sum over its log windows of steps / steps/s."""
  seconds, previous = 0.0, 0
  if not metrics_path.exists():
    return seconds
  for line in metrics_path.read_text().splitlines():
    row = json.loads(line)
    if "train/steps_per_second" in row:
      seconds += (row["step"] - previous) / row["train/steps_per_second"]
      previous = row["step"]
  return seconds


def evaluate_checkpoint(config, run_dir: pathlib.Path, step: int) -> dict:
  """MCC and mcc_factor/* of the encoder mean at checkpoint `step` (quick sample sizes)."""
  import jax
  import numpy as np
  import orbax.checkpoint as ocp
  from nlvae import datasets, models, train
  from nlvae.models import slowvae
  info_config = config.data.copy_and_resolve_references()
  info_config.update(num_train=1, num_test=1)  # only info (shapes, ground truth) is needed
  model = models.build(config.model, datasets.load(info_config)[2])
  manager = train.checkpoint_manager(run_dir, config.train)
  restored = manager.restore(step, args=ocp.args.StandardRestore())  # no target: plain arrays
  manager.close()
  params = jax.device_get(restored["params"])
  random_state = np.random.default_rng([config.seed, step])
  return slowvae.disentanglement_metrics(
      model.ground_truth, model.representation_fn(params), random_state,
      scale=model.eval_scale, groups=("mcc",),
      observations_per_call=int(config.model.get("observations_per_call", 2048)))


def read_rows(path: pathlib.Path) -> list[dict]:
  return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def train_curve(run: Run, workdir: pathlib.Path, stops: list[int], seed: int,
                overrides: dict | None = None, log=print) -> list[dict]:
  """Trains `run` up to stops[-1], evaluating at every stop; appends to workdir/curves.jsonl and
  returns this run's rows (rows already there are kept, not recomputed)."""
  from nlvae import train
  config = run_config(run, stops[-1], seed, overrides)
  run_dir = workdir / run.name
  curves_path = workdir / "curves.jsonl"
  done = {row["step"]: row for row in read_rows(curves_path) if row["run"] == run.name}
  wall = max([row["wall_s"] for row in done.values()], default=0.0)
  for step in stops:
    if step in done:
      continue
    manager = train.checkpoint_manager(run_dir, config.train)
    current = manager.latest_step() or 0
    manager.close()
    last = step == stops[-1]
    start = time.perf_counter()
    if step > current or (last and not (run_dir / "eval.json").exists()):
      # At the last step train_and_evaluate also runs the model's final evaluation (eval.json).
      train.train_and_evaluate(config, run_dir, stop_after=step - current)
    wall += time.perf_counter() - start
    start = time.perf_counter()
    if last:
      results = json.loads((run_dir / "eval.json").read_text())
      scores = {k: v for k, v in results.items() if k in ("mcc", "mig", "sap", "modularity",
                                                          "explicitness_test", "test_recon",
                                                          "test_kl") or k.startswith("mcc_factor/")}
    else:
      scores = evaluate_checkpoint(config, run_dir, step)
    row = dict(run=run.name, model=run.model, transitions=run.transitions, step=step,
               train_s=training_seconds(run_dir / "metrics.jsonl"), wall_s=wall,
               eval_s=time.perf_counter() - start, **scores)
    with curves_path.open("a") as f:
      f.write(json.dumps(row, sort_keys=True) + "\n")
    done[step] = row
    log(f"{run.name} step {step}: mcc {row['mcc']:.3f} "
        + " ".join(f"{k.split('/')[1]} {v:.2f}" for k, v in row.items()
                   if k.startswith("mcc_factor/")) + f" (train {row['train_s']:.0f} s)")
  return [done[s] for s in stops]


def plot_curves(rows: list[dict], path: pathlib.Path) -> None:
  """Top: MCC against step (log axis) and against training minutes, one line per run.
  Bottom: each factor's |Spearman| with its matched latent against step."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  from matplotlib import ticker
  from data import sprites
  figure, axes = plt.subplot_mosaic("AAAAABBBBB;CCDDEEFFGG", figsize=(13, 7.5),
                                    height_ratios=(1.2, 1))
  factor_axes = dict(zip(sprites.FACTOR_NAMES, "CDEFG"))
  colors = {"slowvae": "C0", "beta_vae": "C1", "adagvae": "C2", "slowvae_reference": "C3"}
  styles = {"laplace": "-", "uniform": "--", "natural": ":"}
  for name in dict.fromkeys(row["run"] for row in rows):
    run_rows = sorted((r for r in rows if r["run"] == name), key=lambda r: r["step"])
    model, transitions = run_rows[0]["model"], run_rows[0]["transitions"]
    style = dict(color=colors.get(model), linestyle=styles.get(transitions, "-"), marker="o",
                 markersize=3, label=f"{MODEL_LABELS.get(model, model)}, {transitions}")
    steps = [r["step"] for r in run_rows]
    axes["A"].plot(steps, [r["mcc"] for r in run_rows], **style)
    axes["B"].plot([r["train_s"] / 60 for r in run_rows], [r["mcc"] for r in run_rows], **style)
    for factor, key in factor_axes.items():
      axes[key].plot(steps, [r.get(f"mcc_factor/{factor}", float("nan")) for r in run_rows],
                     **style)
  evaluated = sorted({row["step"] for row in rows})
  for key in "ACDEFG":  # log step axes, ticked at the evaluated steps
    axes[key].set_xscale("log")
    axes[key].xaxis.set_major_locator(ticker.FixedLocator(evaluated))
    axes[key].xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axes[key].xaxis.set_minor_locator(ticker.NullLocator())
    if key != "A":
      axes[key].tick_params(axis="x", labelsize=7, labelrotation=60)
  axes["A"].set(xlabel="training step", ylabel="MCC (Spearman, Hungarian)")
  axes["B"].set(xlabel="training time (minutes, the loop's own time)")
  axes["B"].sharey(axes["A"])
  for factor, key in factor_axes.items():
    axes[key].set(title=factor, xlabel="step", ylim=(0, 1.02))
    if key != "C":
      axes[key].tick_params(labelleft=False)
  axes["C"].set_ylabel("|Spearman| of the matched latent")
  for ax in axes.values():
    ax.grid(alpha=0.3)
  axes["B"].legend(fontsize=8)
  figure.tight_layout()
  figure.savefig(path, dpi=110)
  plt.close(figure)


def markdown_tables(rows: list[dict]) -> str:
  """One table per run: step, train_s, MCC, per-factor |Spearman| (and MIG, SAP when there)."""
  from data import sprites
  lines = []
  for name in dict.fromkeys(row["run"] for row in rows):
    run_rows = sorted((r for r in rows if r["run"] == name), key=lambda r: r["step"])
    factors = [f"mcc_factor/{name}" for name in sprites.FACTOR_NAMES
               if f"mcc_factor/{name}" in run_rows[0]]
    lines += [f"\n{name}\n", "| step | train s | MCC | " + " | ".join(
        f.split("/")[1] for f in factors) + " | MIG | SAP |",
              "|---|---|---|" + "---|" * (len(factors) + 2)]
    fmt = lambda v: "–" if v is None else f"{v:.3f}"
    for r in run_rows:
      lines.append(f"| {r['step']} | {r['train_s']:.0f} | {r['mcc']:.3f} | "
                   + " | ".join(fmt(r.get(f)) for f in factors)
                   + f" | {fmt(r.get('mig'))} | {fmt(r.get('sap'))} |")
  return "\n".join(lines).strip() + "\n"


def run_curves(workdir, runs: list[Run], stops: list[int], seed: int = 0,
               overrides: dict | None = None, log=print) -> list[dict]:
  """Every run's curve (train_curve), then curves.png and curves.md from all rows."""
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  rows = [row for run in runs for row in train_curve(run, workdir, stops, seed, overrides, log)]
  plot_curves(rows, workdir / "curves.png")
  (workdir / "curves.md").write_text(markdown_tables(rows))
  return rows


def define_flags() -> dict:
  """The command-line flags (defined only when run as a program: experiments.run, imported by
  tests alongside this module, owns --workdir)."""
  return dict(
      workdir=flags.DEFINE_string("workdir", "runs/slowvae_curves", "Output folder."),
      models=flags.DEFINE_list("models", ["slowvae", "beta_vae", "adagvae"],
                               f"Models, of {sorted(CONFIG_MODULES)}."),
      transitions=flags.DEFINE_list("transitions", ["laplace", "uniform"],
                                    "Transitions: laplace, uniform, natural (or an alias)."),
      steps=flags.DEFINE_integer("steps", 25_000, "Training steps of every run (the last point)."),
      first=flags.DEFINE_integer("first", 100, "First evaluated step."),
      checkpoints=flags.DEFINE_integer("checkpoints", 9, "Number of log-spaced evaluated steps."),
      seed=flags.DEFINE_integer("seed", 0, "config.seed of every run."),
      jax_cache=flags.DEFINE_string("jax_cache", None, "Persistent compilation cache folder "
                                    "(default <workdir>/jax_cache; empty string: none)."),
      dry_run=flags.DEFINE_bool("dry_run", False, "Print the runs, steps and time estimate only."),
  )


def main(argv, flag_values: dict):
  del argv
  value = {name: holder.value for name, holder in flag_values.items()}
  runs = make_runs(value["models"], value["transitions"])
  stops = log_spaced_steps(value["first"], value["steps"], value["checkpoints"])
  minutes = len(runs) * value["steps"] / STEPS_PER_SECOND / 60
  print(f"{len(runs)} runs ({', '.join(r.name for r in runs)}), evaluated at steps {stops}; "
        f"about {minutes:.0f} minutes of training at {STEPS_PER_SECOND} steps/s, plus "
        f"{len(stops)} evaluations a run.")
  if value["dry_run"]:
    return
  from absl import logging
  logging.set_verbosity(logging.WARNING)
  from nlvae import xla_cpu
  xla_cpu.use_fast_flags()
  import jax
  cache = (value["jax_cache"] if value["jax_cache"] is not None
           else os.path.join(value["workdir"], "jax_cache"))
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  run_curves(value["workdir"], runs, stops, value["seed"])
  print(f"wrote {value['workdir']}/curves.jsonl, curves.png, curves.md")


if __name__ == "__main__":
  _FLAGS = define_flags()
  app.run(lambda argv: main(argv, _FLAGS))
