"""A white circle over a Gaussian blob (disentangled-dynamics, Zaharia et al.), static and moving.

Four factors, each a number in [0, 1]:

| factor   | meaning                                                    | static grid       |
|----------|------------------------------------------------------------|-------------------|
| circle_x | circle centre at 0.125 + 0.75 * value of the image width   | 16 levels in [0,1]|
| circle_y | same along the height (rows, top to bottom)                | 16 levels         |
| gauss_x  | blob centre at value * image width (can sit on the border) | 32 levels in [0,1]|
| gauss_y  | same along the height                                      | 32 levels         |

The circle has radius 0.1 of the image, so its centre range [0.125, 0.875] keeps it wholly inside
with a 0.025 margin (the reference's mapping). The blob is isotropic with standard deviation
sqrt(15 / 64) = 0.484 of the image (the reference's covariance 15 * 64 px^2 at 64 px) and peak
0.8, so it is a broad gradient whose maximum is at its centre. Pixel (r, c) of an S-pixel image
has its centre at ((c + 0.5) / S, (r + 0.5) / S).

Rendering: at twice the output size (64 px for the default 32), the circle's coverage of each
pixel is clip(radius - distance + 0.5, 0, 1) (anti-aliased; the reference thresholds, which makes
sub-pixel motion jerky), composited over the blob as background + coverage * (1 - background)
(identical to the reference's clip(circle + 0.8 * blob) wherever the circle is fully in or out),
then every 2x2 block is averaged: ``scene``, float32 in [0, 1]. Stored images and frames are that
scene rounded to uint8 (``render``, data.video.to_uint8), like every other dataset's; models scale
them back with data.video.to_float.

Dynamic sequences: the circle moves at constant velocity on the segment between two points drawn
uniformly from the factor square [0, 1]^2, at least ``min_distance`` apart (in factor units,
0.75 of that in image units), the first and last frame sitting on the end points (frames are
equally spaced, as in the reference). The blob is drawn from the 32-level grid and stays put.
"""

from __future__ import annotations

import numpy as np

from data import video

FACTOR_NAMES = ("circle_x", "circle_y", "gauss_x", "gauss_y")
NUM_FACTORS = 4
IMAGE_SIZE = 32
CIRCLE_LEVELS = 16
GAUSS_LEVELS = 32
CIRCLE_RADIUS = 0.1  # fraction of the image
CIRCLE_MARGIN = 0.125  # circle centre = CIRCLE_MARGIN + (1 - 2 CIRCLE_MARGIN) * factor
GAUSS_SIGMA = float(np.sqrt(15.0 / 64.0))  # fraction of the image
GAUSS_PEAK = 0.8
SUPERSAMPLE = 2  # render at SUPERSAMPLE * image_size, then area-average


def _check_values(factors: np.ndarray) -> np.ndarray:
  factors = np.asarray(factors)
  if factors.shape[-1:] != (NUM_FACTORS,) or not np.issubdtype(factors.dtype, np.floating):
    raise ValueError(f"circle factors must be a float array [..., {NUM_FACTORS}] of values in "
                     f"[0, 1], got dtype {factors.dtype} shape {factors.shape}.")
  if np.any(~np.isfinite(factors)) or np.any(factors < 0) or np.any(factors > 1):
    raise ValueError("circle factor values must lie in [0, 1]; map grid indices with "
                     "factor_values_from_indices first.")
  return factors


def _check_levels(circle_levels: int, gauss_levels: int) -> tuple[int, int, int, int]:
  for name, levels in (("circle_levels", circle_levels), ("gauss_levels", gauss_levels)):
    if int(levels) != levels or levels < 2:
      raise ValueError(f"{name} must be an integer >= 2, got {levels!r}.")
  return (int(circle_levels),) * 2 + (int(gauss_levels),) * 2


def circle_centre(factors: np.ndarray) -> np.ndarray:
  """Circle factors float [..., 2] -> circle centre (x, y) as fractions of the image [..., 2]."""
  return CIRCLE_MARGIN + (1.0 - 2.0 * CIRCLE_MARGIN) * np.asarray(factors)


def _circle_coverage(centre_px: np.ndarray, size: int) -> np.ndarray:
  """Anti-aliased circle coverage float32 [N, size, size] for centres [N, 2] (x, y) in pixels.

  Coverage is evaluated only in a window around each centre and pasted into a padded canvas.
  """
  radius_px = CIRCLE_RADIUS * size
  half = int(np.ceil(radius_px)) + 1
  window = np.arange(-half, half + 1)
  first = np.floor(centre_px).astype(np.int64)[:, :, None] + window  # [N, 2, W] pixel indices
  offset = (first + 0.5 - centre_px[:, :, None]).astype(np.float32)  # pixel centre - circle centre
  distance = np.sqrt(offset[:, 1, :, None] ** 2 + offset[:, 0, None, :] ** 2)
  coverage = np.clip(radius_px - distance + 0.5, 0.0, 1.0)
  canvas = np.zeros((centre_px.shape[0], size + 2 * half + 1, size + 2 * half + 1), np.float32)
  first = first + half  # factors in [0, 1] keep every window inside the padded canvas
  canvas[np.arange(centre_px.shape[0])[:, None, None], first[:, 1, :, None],
         first[:, 0, None, :]] = coverage
  return canvas[:, half:half + size, half:half + size]


def scene(factors: np.ndarray, image_size: int = IMAGE_SIZE) -> np.ndarray:
  """Factor values float [..., 4] in [0, 1] -> the exact scene, float32 [..., image_size,
  image_size, 1] in [0, 1] (before the uint8 rounding of ``render``)."""
  factors = _check_values(factors)
  if int(image_size) != image_size or image_size < 4:
    raise ValueError(f"image_size must be an integer >= 4, got {image_size!r}.")
  lead_shape = factors.shape[:-1]
  flat = factors.reshape(-1, NUM_FACTORS).astype(np.float64)
  num, size = flat.shape[0], SUPERSAMPLE * int(image_size)
  coords = ((np.arange(size) + 0.5) / size).astype(np.float32)  # pixel centres, image fractions
  blob_x = np.exp(-0.5 * ((coords[None, :] - flat[:, 2, None]) / GAUSS_SIGMA) ** 2)
  blob_y = np.exp(-0.5 * ((coords[None, :] - flat[:, 3, None]) / GAUSS_SIGMA) ** 2)
  background = (GAUSS_PEAK * blob_y[:, :, None] * blob_x[:, None, :]).astype(np.float32)
  image = background + _circle_coverage(circle_centre(flat[:, :2]) * size, size) * (1 - background)
  image = sum(image[:, i::SUPERSAMPLE, j::SUPERSAMPLE]
              for i in range(SUPERSAMPLE) for j in range(SUPERSAMPLE)) / SUPERSAMPLE**2
  return image.astype(np.float32).reshape(lead_shape + (int(image_size), int(image_size), 1))


def render(factors: np.ndarray, image_size: int = IMAGE_SIZE) -> np.ndarray:
  """Factor values float [..., 4] in [0, 1] -> images uint8 [..., image_size, image_size, 1]:
  the scene rounded to 0..255."""
  return video.to_uint8(scene(factors, image_size))


def factor_values_from_indices(indices: np.ndarray, circle_levels: int = CIRCLE_LEVELS,
                               gauss_levels: int = GAUSS_LEVELS) -> np.ndarray:
  """Grid indices int [..., 4] -> factor values float32 [..., 4] (index / (levels - 1))."""
  sizes = np.asarray(_check_levels(circle_levels, gauss_levels))
  indices = np.asarray(indices)
  if indices.shape[-1:] != (NUM_FACTORS,) or not np.issubdtype(indices.dtype, np.integer):
    raise ValueError(f"circle grid indices must be an integer array [..., {NUM_FACTORS}], got "
                     f"dtype {indices.dtype} shape {indices.shape}.")
  if np.any(indices < 0) or np.any(indices >= sizes):
    raise ValueError(f"circle grid indices out of range for levels {tuple(sizes)}.")
  return (indices / (sizes - 1)).astype(np.float32)


def render_indices(indices: np.ndarray, circle_levels: int = CIRCLE_LEVELS,
                   gauss_levels: int = GAUSS_LEVELS, image_size: int = IMAGE_SIZE) -> np.ndarray:
  """Grid indices int [..., 4] -> images uint8 [..., image_size, image_size, 1]."""
  return render(factor_values_from_indices(indices, circle_levels, gauss_levels), image_size)


def grid_indices(circle_levels: int = CIRCLE_LEVELS,
                 gauss_levels: int = GAUSS_LEVELS) -> np.ndarray:
  """Every grid point, int64 [circle_levels^2 * gauss_levels^2, 4], in C order of the factors."""
  sizes = _check_levels(circle_levels, gauss_levels)
  return np.stack(np.unravel_index(np.arange(np.prod(sizes)), sizes), axis=-1).astype(np.int64)


def _static_dict(indices: np.ndarray, circle_levels: int, gauss_levels: int) -> dict:
  values = factor_values_from_indices(indices, circle_levels, gauss_levels)
  return {"images": render(values), "factors": values, "indices": indices}


def static_grid(circle_levels: int = CIRCLE_LEVELS, gauss_levels: int = GAUSS_LEVELS) -> dict:
  """The full static grid: {"images": uint8 [N, 32, 32, 1], "factors": float32 [N, 4],
  "indices": int64 [N, 4]} with N = circle_levels^2 * gauss_levels^2.

  The default grid holds 262,144 images (256 MiB of uint8): prefer ``static_sample`` or
  ``render_indices`` over chunks of ``grid_indices`` unless that fits.
  """
  return _static_dict(grid_indices(circle_levels, gauss_levels), circle_levels, gauss_levels)


def static_sample(num: int, seed: int, circle_levels: int = CIRCLE_LEVELS,
                  gauss_levels: int = GAUSS_LEVELS) -> dict:
  """``num`` distinct grid points drawn uniformly without replacement; same dict as static_grid."""
  sizes = _check_levels(circle_levels, gauss_levels)
  total = int(np.prod(sizes))
  if int(num) != num or not 1 <= num <= total:
    raise ValueError(f"num must be an integer in 1..{total} (the grid size), got {num!r}.")
  flat = np.sort(np.random.default_rng(seed).choice(total, size=int(num), replace=False))
  indices = np.stack(np.unravel_index(flat, sizes), axis=-1).astype(np.int64)
  return _static_dict(indices, circle_levels, gauss_levels)


def dynamic_sequences(num: int, seed: int, num_frames: int = 10, min_distance: float = 0.1,
                      gauss_levels: int = GAUSS_LEVELS) -> dict:
  """Moving-circle clips: {"frames": uint8 [N, T, 32, 32, 1], "factors": float32 [N, T, 4]}.

  Start and end of the circle's path are uniform in [0, 1]^2 (factor units), redrawn until they
  are at least ``min_distance`` apart; frame t sits at start + t / (T - 1) * (end - start). The blob
  position is drawn from ``gauss_levels`` grid levels per axis and held for the whole clip.
  """
  if int(num) != num or num < 1:
    raise ValueError(f"num must be a positive integer, got {num!r}.")
  if int(num_frames) != num_frames or num_frames < 2:
    raise ValueError(f"num_frames must be an integer >= 2, got {num_frames!r}.")
  if not 0 <= min_distance < 1:
    raise ValueError(f"min_distance must lie in [0, 1) (factor units), got {min_distance!r}.")
  _check_levels(CIRCLE_LEVELS, gauss_levels)
  rng = np.random.default_rng(seed)
  ends = rng.random((int(num), 2, 2))  # [N, start / end, (x, y)]
  too_close = np.flatnonzero(np.linalg.norm(ends[:, 1] - ends[:, 0], axis=-1) < min_distance)
  while too_close.size:
    ends[too_close] = rng.random((too_close.size, 2, 2))
    too_close = too_close[np.linalg.norm(ends[too_close, 1] - ends[too_close, 0], axis=-1)
                          < min_distance]
  fraction = np.linspace(0.0, 1.0, int(num_frames))[None, :, None]
  circle = ends[:, None, 0] + fraction * (ends[:, None, 1] - ends[:, None, 0])  # [N, T, 2]
  gauss = rng.integers(0, gauss_levels, size=(int(num), 2)) / (gauss_levels - 1)
  factors = np.concatenate(
      [circle, np.broadcast_to(gauss[:, None, :], circle.shape)], axis=-1).astype(np.float32)
  return {"frames": render(factors), "factors": factors}


class CirclesGroundTruth:
  """The static circle grid as a ground-truth sampler for disentanglement metrics (duck-typed).

  Factors are grid indices (int); observations are the stored uint8 images scaled by
  data.video.to_float, float32 [N, image_size, image_size, 1] (what the models see).
  """

  num_factors = NUM_FACTORS
  factor_names = FACTOR_NAMES

  def __init__(self, circle_levels: int = CIRCLE_LEVELS, gauss_levels: int = GAUSS_LEVELS,
               image_size: int = IMAGE_SIZE):
    self.factors_num_values = _check_levels(circle_levels, gauss_levels)
    self.observation_shape = (int(image_size), int(image_size), 1)

  def sample_factors(self, num: int, random_state: np.random.Generator) -> np.ndarray:
    """Uniform grid indices, int64 [num, 4]."""
    return random_state.integers(0, self.factors_num_values, size=(num, NUM_FACTORS),
                                 dtype=np.int64)

  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state: np.random.Generator) -> np.ndarray:
    """Grid indices int [N, 4] -> images float32 [N, S, S, 1] in [0, 1] (exact: random_state
    unused)."""
    del random_state
    return video.to_float(render_indices(factors, self.factors_num_values[0],
                                         self.factors_num_values[2], self.observation_shape[0]))
