"""What every model's evaluation shares: applying a jitted function in chunks, figures (training
curves, reconstructions) and videos, all written atomically (a reader, or a run killed while
writing, sees the old file or the new one, never a part of one).

Model-specific evaluation lives beside its model (nlvae/models/<model>_eval.py or the model file)
and calls these.
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from data import video


def chunked_apply(fn, x: np.ndarray, batch_size: int = 64):
  """fn (a jitted function of one array [n, ...]) over x [N, ...] in chunks of `batch_size`.

  Returns fn's output pytree with numpy leaves concatenated along the leading axis ([N, ...]).
  """
  outputs = [jax.tree.map(np.asarray, fn(jnp.asarray(x[i:i + batch_size])))
             for i in range(0, len(x), batch_size)]
  return jax.tree.map(lambda *parts: np.concatenate(parts), *outputs)


def mean_image(model, decoded: jax.Array) -> jax.Array:
  """A model's decode output -> the mean image in [0, 1]: sigmoid of Bernoulli logits; a
  Gaussian (or MSE) mean as it is."""
  return jax.nn.sigmoid(decoded) if model.likelihood == "bernoulli" else decoded


@contextlib.contextmanager
def atomic_path(path):
  """Yields a temporary path beside `path` (same suffix); renames it over `path` on success."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  temporary = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
  try:
    yield temporary
    os.replace(temporary, path)
  finally:
    if temporary.is_dir():
      import shutil
      shutil.rmtree(temporary, ignore_errors=True)
    else:
      temporary.unlink(missing_ok=True)


def pyplot():
  """matplotlib.pyplot on the non-interactive Agg backend (no screen needed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def save_figure(fig, path, dpi: int = 100) -> None:
  fig.tight_layout()
  with atomic_path(path) as temporary:
    fig.savefig(temporary, dpi=dpi)
  pyplot().close(fig)


def write_video(path, frames: np.ndarray, fps: float, **kwargs) -> None:
  """data.video.write_video, atomically."""
  with atomic_path(path) as temporary:
    video.write_video(temporary, frames, fps=fps, **kwargs)


def plot_reconstructions(path, targets: np.ndarray, recon: np.ndarray, num: int = 10) -> None:
  """Targets (uint8 or float in [0, 1]) over reconstructions (float in [0, 1]), [n, H, W, C];
  grey (C = 1) or colour (C = 3)."""
  plt = pyplot()
  num = min(num, len(targets))
  fig, axes = plt.subplots(2, num, figsize=(num, 2.2), squeeze=False)
  for row, images in enumerate((targets, recon)):
    images = np.asarray(images)
    images = video.to_float(images) if images.dtype == np.uint8 else images
    for i in range(num):
      image = np.clip(images[i], 0, 1)
      if image.shape[-1] == 1:
        axes[row, i].imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
      else:
        axes[row, i].imshow(image)
      axes[row, i].axis("off")
  axes[0, 0].set_title("data", fontsize=8, loc="left")
  axes[1, 0].set_title("reconstruction", fontsize=8, loc="left")
  save_figure(fig, path)


def read_metrics(workdir) -> list[dict]:
  """The rows of workdir/metrics.jsonl (a partly written last line is skipped)."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  rows = []
  for line in path.read_text().splitlines() if path.exists() else []:
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return rows


def plot_training_curves(workdir, path=None) -> None:
  """figures/training_curves.png: every train/ and eval/ scalar of metrics.jsonl against step,
  one panel per name (train and eval on the same panel)."""
  rows = read_metrics(workdir)
  names = sorted({key.split("/", 1)[1] for row in rows for key in row
                  if key.startswith(("train/", "eval/")) and key != "train/steps_per_second"})
  if not names:
    return
  plt = pyplot()
  cols = min(4, len(names))
  nrows = -(-len(names) // cols)
  fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
  for ax, name in zip(axes.ravel(), names):
    for split, style in (("train", "-"), ("eval", "o--")):
      points = [(r["step"], r[f"{split}/{name}"]) for r in rows if f"{split}/{name}" in r]
      if points:
        ax.plot(*zip(*points), style, label=split, markersize=3)
    ax.set_title(name, fontsize=9)
    ax.set_xlabel("step")
  for ax in axes.ravel()[len(names):]:
    ax.axis("off")
  axes[0, 0].legend(fontsize=7)
  save_figure(fig, path or pathlib.Path(workdir) / "figures" / "training_curves.png")
