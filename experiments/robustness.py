r"""Robustness of the physics experiments to what cameras do, through the user-video path.

  python -m experiments.robustness --systems=pendulum,spring,falling --nuisances=all,none \
      --seeds=0,1,2 --out=runs/robustness [--render_seed=100]

For each system and nuisance setting it renders a folder of videos as a camera would
(data.make_videos: mp4 files with truth files; `all` = data.physics.REALISTIC_OPTIONS, `none` =
clean renders, any other name = that one option of REALISTIC_OPTIONS alone; a+b = both), trains
`experiments/<system>.py:video` on it once per seed (a separate process, as a user runs it), and
writes `results_<systems>.md` and `.json` in --out: |r|, R^2, slope, the pendulum's angle error,
every intervention's latent change and the wall time of each run. --render_seed picks the
rendered videos: keep the videos you tune on (seed 0) apart from those you report on.
"""
from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import time

from absl import app, flags

from data import make_videos

_SYSTEMS = flags.DEFINE_list("systems", ["pendulum", "spring", "falling"], "Physics systems.")
_NUISANCES = flags.DEFINE_list("nuisances", ["all"], "all, none, or names of REALISTIC_OPTIONS "
                                "(a+b: both at once).")
_SEEDS = flags.DEFINE_list("seeds", ["0", "1", "2"], "Training seeds.")
_OUT = flags.DEFINE_string("out", "runs/robustness", "Output folder.")
_RENDER_SEED = flags.DEFINE_integer("render_seed", 100, "Seed of the rendered videos.")
_OVERRIDES = flags.DEFINE_multi_string("override", [], "Extra --config.* overrides of every run.")
_VARIANT = flags.DEFINE_string("variant", "", "Extra config variants after video, e.g. learn.")

# Videos of each system: one physical system per folder, as in one user's recordings.
VIDEOS = {
    "pendulum": dict(num_videos=24, num_frames=120, fps=20.0, length_range=(0.8, 0.8),
                     amplitude_range=(0.3, 1.5)),
    "spring": dict(num_videos=24, num_frames=120, fps=20.0, omega_range=(6.0, 6.0),
                   amplitude_range=(0.05, 0.12)),
    "falling": dict(num_videos=64, num_frames=24, horizontal_position_range=(0.0, 0.0),
                    horizontal_velocity_range=(0.0, 0.0)),
}
KEYS = ("latent/abs_pearson_r", "latent/r2", "latent/slope", "latent/angle_error_rad",
        "latent/inferred_abs_pearson_r", "latent/inferred_slope", "params/length",
        "params/length_from_videos")


def render(system: str, nuisance: str, out: pathlib.Path, seed: int) -> pathlib.Path:
  folder = out / "videos" / f"{system}_{nuisance}_r{seed}"
  if not (folder / "truth.json").exists():
    make_videos.write_videos(system, folder, image_size=128, seed=seed,
                             **VIDEOS[system], **make_videos.nuisance_options(nuisance))
  return folder


def train(system: str, folder: pathlib.Path, workdir: pathlib.Path, seed: int,
          overrides: list[str], variant: str = "") -> tuple[dict, float]:
  """One user-video run in its own process: (eval.json, wall seconds)."""
  variants = ",".join(filter(None, ["video", variant]))
  command = [sys.executable, "-m", "experiments.run", f"--config=experiments/{system}.py:{variants}",
             f"--config.data.video_dir={folder}", f"--config.seed={seed}",
             f"--workdir={workdir}", "--config.train.progress_bar=false", *overrides]
  start = time.perf_counter()
  result = subprocess.run(command, capture_output=True, text=True)
  wall = time.perf_counter() - start
  if result.returncode:
    print(result.stderr[-2000:])
    return {"error": result.stderr.strip().splitlines()[-1:]}, wall
  return json.loads((workdir / "eval.json").read_text()), wall


def table(rows: list[dict]) -> str:
  lines = ["| system | nuisances | seed | abs r | R^2 | slope | angle error (rad) | "
           "inferred abs r | inferred slope | learned length (m) | length from videos (m) | "
           "interventions: latent change | wall s |", "|" + "---|" * 13]
  for row in rows:
    r = row["eval"]
    changes = ", ".join(f"{k.split('/')[1]} {v:.3f}" for k, v in sorted(r.items())
                        if k.endswith("latent_rms_change"))
    cells = [f"{r[k]:.4f}" if k in r else "" for k in KEYS]
    lines.append(f"| {row['system']} | {row['nuisance']} | {row['seed']} | "
                 + " | ".join(cells) + f" | {changes} | {row['wall']:.0f} |")
  return "\n".join(lines) + "\n"


def main(argv):
  del argv
  for nuisance in _NUISANCES.value:  # a typo stops the study before any video is rendered
    try:
      make_videos.nuisance_options(nuisance)
    except ValueError as error:
      sys.exit(f"error: --nuisances: {error}")
  out = pathlib.Path(_OUT.value)
  out.mkdir(parents=True, exist_ok=True)
  rows = []
  for system in _SYSTEMS.value:
    for nuisance in _NUISANCES.value:
      folder = render(system, nuisance, out, _RENDER_SEED.value)
      for seed in map(int, _SEEDS.value):
        tag = f"_{_VARIANT.value}" if _VARIANT.value else ""
        workdir = out / "runs" / f"{system}{tag}_{nuisance}_s{seed}"
        results, wall = train(system, folder, workdir, seed, _OVERRIDES.value, _VARIANT.value)
        rows.append(dict(system=system + tag.replace("_", ":"), nuisance=nuisance, seed=seed,
                         eval=results, wall=wall))
        print(table(rows[-1:]).splitlines()[-1], flush=True)
        name = f"results_{'_'.join(_SYSTEMS.value)}{tag}"
        (out / f"{name}.json").write_text(json.dumps(rows, indent=1) + "\n")
        (out / f"{name}.md").write_text(table(rows))


if __name__ == "__main__":
  app.run(main)
