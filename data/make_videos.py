r"""Writes procedural physics videos as a user's camera would: video files with truth files beside.

  python -m data.make_videos --system=pendulum --out=videos/pendulum --realistic \
      [--num_videos=16 --num_frames=200 --fps=20 --image_size=128 --seed=0 \
       --option=length_range=0.5,0.5 ...]

Each video `<system>_<i>.mp4` is one simulated clip of `num_frames` frames (one system, its own
initial state) and `<system>_<i>.<state>.npy` holds the true state per frame (angle in rad,
position or height in m, phase in rad): the format that `experiments/<system>.py:video` reads
(data/user_video.py). --realistic turns on every camera nuisance of data/camera.py
(data.physics.REALISTIC_OPTIONS: perspective, shading, shadows, room background, occluder,
flicker, motion blur, jitter, noise, distractors, RGB); the mp4 encoding itself is lossy (crf 23).
"""
from __future__ import annotations

import ast
import json
import pathlib

import numpy as np
from absl import flags

from data import cli, physics, video

_FLAGS = flags.FlagValues()
_SYSTEM = flags.DEFINE_enum("system", None, physics.SYSTEMS, "Physical system.", flag_values=_FLAGS)
_OUT = flags.DEFINE_string("out", None, "Output folder.", flag_values=_FLAGS)
_NUM_VIDEOS = flags.DEFINE_integer("num_videos", 16, "Videos to write.", flag_values=_FLAGS)
_NUM_FRAMES = flags.DEFINE_integer("num_frames", 200, "Frames per video.", flag_values=_FLAGS)
_FPS = flags.DEFINE_float("fps", None, "Frame rate (default: the system's).", flag_values=_FLAGS)
_SIZE = flags.DEFINE_integer("image_size", 128, "Frame side in pixels.", flag_values=_FLAGS)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the simulations and renders.", flag_values=_FLAGS)
_REALISTIC = flags.DEFINE_bool("realistic", False, "All camera nuisances at once.",
                               flag_values=_FLAGS)
_CRF = flags.DEFINE_integer("crf", 23, "H.264 quality of the files (0 lossless .. 51).",
                            flag_values=_FLAGS)
_SUFFIX = flags.DEFINE_string("suffix", ".mp4", "File type (.mp4 .avi .mov .mkv .gif or '' for "
                              "frame folders).", flag_values=_FLAGS)
_OPTIONS = flags.DEFINE_multi_string("option", [], "Extra data.physics option name=value "
                                     "(Python literal; a,b for a pair), repeatable.",
                                     flag_values=_FLAGS)


def parse_option(text: str) -> tuple[str, object]:
  """'name=value' -> (name, Python literal value); 'a,b' becomes a tuple."""
  name, sep, value = text.partition("=")
  if not sep:
    raise ValueError(f"--option={text!r} must look like name=value")
  try:
    return name.strip(), ast.literal_eval(value)
  except (ValueError, SyntaxError):
    return name.strip(), value


def nuisance_options(name: str) -> dict:
  """'all', 'none', one option of REALISTIC_OPTIONS, or several joined by '+' (e.g.
  'background+shadow': a drop shadow darkens the background, so on the default black one it is
  invisible) -> render options."""
  if name == "all":
    return dict(physics.REALISTIC_OPTIONS)
  if name == "none":
    return {}
  unknown = [part for part in name.split("+") if part not in physics.REALISTIC_OPTIONS]
  if unknown:
    raise ValueError(f"unknown nuisance {unknown[0]!r}; valid: all, none, "
                     f"{', '.join(physics.REALISTIC_OPTIONS)} or several joined by '+'")
  return {part: physics.REALISTIC_OPTIONS[part] for part in name.split("+")}


def write_videos(system: str, out, *, num_videos: int, num_frames: int, image_size: int,
                 seed: int, fps: float | None = None, realistic: bool = False, crf: int = 23,
                 suffix: str = ".mp4", **options) -> list[pathlib.Path]:
  """Simulates, renders and writes `num_videos` videos with truth files; returns their paths."""
  out = pathlib.Path(out)
  out.mkdir(parents=True, exist_ok=True)
  options = {**(physics.REALISTIC_OPTIONS if realistic else {}), **options}
  options.pop("compression_crf", None)  # the file's own encoding is the compression
  if fps:
    options["fps"] = fps
  clips = physics.generate(system, num_videos, seed, num_frames=num_frames,
                           image_size=image_size, **options)
  fps = 1.0 / clips.dt
  paths = []
  for i in range(num_videos):
    path = out / f"{system}_{i:03d}{suffix}"
    if suffix in video.FFMPEG_SUFFIXES:
      video.write_video(path, clips.frames[i], fps=fps, crf=crf)
    else:
      video.write_video(path, clips.frames[i], fps=fps)
    np.save(out / f"{system}_{i:03d}.{physics.LATENTS[system]}.npy", clips.latent[i])
    paths.append(path)
  params = {k: v.tolist() for k, v in clips.params.items()}
  (out / "truth.json").write_text(json.dumps(dict(system=system, fps=fps, params=params),
                                             indent=1) + "\n")
  return paths


def main(argv):
  del argv
  options = dict(parse_option(o) for o in _OPTIONS.value)
  paths = write_videos(_SYSTEM.value, _OUT.value, num_videos=_NUM_VIDEOS.value,
                       num_frames=_NUM_FRAMES.value, image_size=_SIZE.value, seed=_SEED.value,
                       fps=_FPS.value, realistic=_REALISTIC.value, crf=_CRF.value,
                       suffix=_SUFFIX.value, **options)
  print(f"Wrote {len(paths)} videos with truth files to {_OUT.value}.")


if __name__ == "__main__":
  cli.run(main, _FLAGS, required=("system", "out"))
