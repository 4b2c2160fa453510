"""Procedural dSprites: the 737,280-image factor grid, rendered without any download.

The grid matches dSprites (Matthey et al. 2017) factor for factor:

| factor      | size | value (``factor_values``)                                   |
|-------------|------|-------------------------------------------------------------|
| shape       | 3    | 1 square, 2 ellipse, 3 heart (categorical, dSprites codes)  |
| scale       | 6    | linspace(0.5, 1, 6)                                         |
| orientation | 40   | linspace(0, 2 pi, 40), endpoint INCLUDED as in dSprites, so |
|             |      | index 39 (2 pi) draws the same image as index 0             |
| x, y        | 32   | linspace(0, 1, 32)                                          |

Geometry (our choice; dSprites publishes the grid but not its renderer). Images are 64x64,
pixel (row r, column c) has its centre at (r + 0.5, c + 0.5) pixels and is white (255) when its
centre lies inside the shape (binary, no anti-aliasing, like dSprites).
  * Position: the shape's centre of area sits at 12.625 + 1.25 * index pixels, i.e. at
    0.197 + 0.605 * value of the image (dSprites and the Natural Sprites code place it on
    linspace(0.2, 0.8, 32)). The 1.25-pixel step makes the sub-pixel phase repeat every 4
    indices, so every image is one of 3*6*40*4*4 cached 24x24 masks pasted at an integer offset.
    x runs along columns (left to right), y along rows (top to bottom).
  * Scale: one shape unit is 6.4 * scale pixels (a tenth of the image at scale 1).
    Square: half-side 1 unit (12.8 px side at scale 1). Ellipse: semi-axes 1.5 x 0.75 units, long
    axis horizontal at orientation 0. Heart: the curve (X^2 + Y^2 - 1)^3 <= X^2 Y^3, lobes up,
    shifted so its centre of area is the origin. Every shape stays inside the 24x24 window and,
    at every position, inside the image.
  * Orientation: counter-clockwise as seen on screen, about the centre of area.

Transition samplers (SlowVAE, Klindt et al. 2021) return pairs of frames (t-1, t). They carry the
reference's names (its ``--data-distribution`` values ``laplace`` and ``uniform``); the earlier
names ``lap_pairs`` / ``loc_pairs`` remain as aliases.
  * ``laplace_pairs`` (the paper's "LAP"): every non-categorical factor jumps by a discrete
    Laplace step of scale log(size) / rate, truncated to the grid (renormalised over the valid
    values, not clipped: clipping would pile mass on the edges; orientation does not wrap
    around, as in the reference); shape is held; a pair with no change gets one non-categorical
    factor, picked uniformly, redrawn from its Laplace without the current value (the
    reference's procedure). rate None draws a rate per pair from U(1, 10) (the reference's -1).
  * ``uniform_pairs`` (the paper's "uniform"; Locatello et al. 2020's weakly supervised pairs):
    k factors change and the others are held. k, the number of changing factors, is drawn per
    pair uniformly from {1, ..., max_changed} (or fixed by ``k``); the k factors are a uniformly random subset (all
    C(5, k) subsets equally likely) and each is redrawn uniformly among its OTHER values, so it
    really changes. Shape is one of the candidates (the reference treats all factors alike here).
    The reference draws k with ``np.random.randint(1, n_factors)``, whose upper end is
    exclusive, so k runs over 1..n_factors - 1 = 1..4 (as in Locatello et al.'s k = rand); that is
    our default ``max_changed = 4``; ``max_changed = 5`` lets all factors change.
  * ``natural_pairs``: a stand-in for Natural Sprites / KITTI Masks (downloads we cannot reach):
    x, y and scale jump by rounded generalised-Laplace steps exp(-|d / s|^alpha), alpha = 0.5
    by default (kurtosis 25 before truncation: mostly no move, occasional large jumps: the
    temporally sparse statistics SlowVAE measured on real object masks); steps that would leave
    the grid are redrawn; shape and orientation are held within a pair.

Every pair sampler returns {"frames": uint8 [N, 2, 64, 64, 1], "factors": int64 [N, 2, 5],
"factor_values": float32 [N, 2, 5]} and is a pure function of its arguments (same seed, same bytes).
"""

from __future__ import annotations

import functools

import numpy as np

FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
CATEGORICAL = (True, False, False, False, False)
SHAPE_NAMES = ("square", "ellipse", "heart")
NUM_FACTORS = len(FACTOR_SIZES)
NUM_COMBINATIONS = int(np.prod(FACTOR_SIZES))  # 737,280
IMAGE_SIZE = 64
OBSERVATION_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)

SCALE_VALUES = np.linspace(0.5, 1.0, FACTOR_SIZES[1])
ORIENTATION_VALUES = np.linspace(0.0, 2.0 * np.pi, FACTOR_SIZES[2])  # endpoint included (dSprites)
POSITION_VALUES = np.linspace(0.0, 1.0, FACTOR_SIZES[3])

POSITION_START_PX = 12.625  # centre of area at index 0, in pixels from the top / left border
POSITION_STEP_PX = 1.25  # pixels per position index; the sub-pixel phase has period 4
UNIT_PX = 0.1 * IMAGE_SIZE  # one shape unit at scale 1
ELLIPSE_SEMI_AXES = (1.5, 0.75)  # units
HEART_CENTROID_Y = 0.29348  # centre of area of the implicit heart (numerical integration)
WINDOW = 24  # side of a cached mask; shapes reach at most 9.6 px from their centre
_NUM_PHASES = 4


def _check_factors(indices: np.ndarray) -> np.ndarray:
  indices = np.asarray(indices)
  if indices.shape[-1:] != (NUM_FACTORS,) or not np.issubdtype(indices.dtype, np.integer):
    raise ValueError(
        f"sprite factors must be an integer array [..., {NUM_FACTORS}], got dtype "
        f"{indices.dtype} shape {indices.shape}; pass grid indices, not factor values.")
  if np.any(indices < 0) or np.any(indices >= np.asarray(FACTOR_SIZES)):
    raise ValueError(f"sprite factor indices out of range; each must lie in [0, size) with "
                     f"sizes {FACTOR_SIZES} for {FACTOR_NAMES}.")
  return indices


def _check_count(name: str, value: int) -> None:
  if int(value) != value or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {value!r}.")


def factor_values(indices: np.ndarray) -> np.ndarray:
  """Grid indices int [..., 5] -> real values float32 [..., 5] (dSprites conventions).

  shape -> 1, 2, 3; scale -> 0.5..1; orientation -> radians in [0, 2 pi]; x, y -> [0, 1].
  """
  indices = _check_factors(indices)
  return np.stack([
      indices[..., 0] + 1.0,
      SCALE_VALUES[indices[..., 1]],
      ORIENTATION_VALUES[indices[..., 2]],
      POSITION_VALUES[indices[..., 3]],
      POSITION_VALUES[indices[..., 4]],
  ], axis=-1).astype(np.float32)


def index_from_factors(indices: np.ndarray) -> np.ndarray:
  """Grid indices int [..., 5] -> flat index int64 [...] in [0, 737280), dSprites (C) order."""
  indices = _check_factors(indices)
  return np.ravel_multi_index(tuple(np.moveaxis(indices, -1, 0)), FACTOR_SIZES).astype(np.int64)


def factors_from_index(flat_index: np.ndarray) -> np.ndarray:
  """Flat index int [...] -> grid indices int64 [..., 5]; inverse of ``index_from_factors``."""
  flat_index = np.asarray(flat_index)
  if np.any(flat_index < 0) or np.any(flat_index >= NUM_COMBINATIONS):
    raise ValueError(f"flat sprite index out of range [0, {NUM_COMBINATIONS}).")
  return np.stack(np.unravel_index(flat_index, FACTOR_SIZES), axis=-1).astype(np.int64)


def sample_factors(num: int, rng: np.random.Generator) -> np.ndarray:
  """Uniform draws over the grid: int64 [num, 5]."""
  return rng.integers(0, FACTOR_SIZES, size=(num, NUM_FACTORS), dtype=np.int64)


def _inside(shape: int, p: np.ndarray, q: np.ndarray) -> np.ndarray:
  """Membership of canonical-frame points (units, q up) in shape `shape` (0, 1 or 2)."""
  if shape == 0:
    return np.maximum(np.abs(p), np.abs(q)) <= 1.0
  if shape == 1:
    a, b = ELLIPSE_SEMI_AXES
    return (p / a) ** 2 + (q / b) ** 2 <= 1.0
  y = q + HEART_CENTROID_Y
  return (p**2 + y**2 - 1.0) ** 3 <= p**2 * y**3


def _phase_fraction(phase: np.ndarray) -> np.ndarray:
  return np.mod(POSITION_START_PX + POSITION_STEP_PX * phase, 1.0)


@functools.cache
def _mask_bank() -> np.ndarray:
  """Every mask, uint8 {0, 255} [3, 6, 40, 4 (y phase), 4 (x phase), 24, 24]; built once, read-only.

  Mask pixel (j, k) covers image pixel (floor(cy) - 12 + j, floor(cx) - 12 + k), whose centre is
  j + 0.5 - 12 - frac(cy) pixels below the shape's centre (likewise for columns).
  """
  offsets = np.arange(WINDOW) + 0.5 - WINDOW // 2 - _phase_fraction(np.arange(_NUM_PHASES))[:, None]
  down = offsets[:, None, :, None]  # [phase_y, 1, row, 1], pixels below the centre
  right = offsets[None, :, None, :]  # [1, phase_x, 1, col], pixels right of the centre
  bank = np.zeros((3, FACTOR_SIZES[1], FACTOR_SIZES[2], _NUM_PHASES, _NUM_PHASES, WINDOW, WINDOW),
                  dtype=np.uint8)
  for scale_index, scale in enumerate(SCALE_VALUES):
    unit = UNIT_PX * scale
    u, v = right / unit, -down / unit  # v points up on screen
    for orientation_index, angle in enumerate(ORIENTATION_VALUES):
      cos, sin = np.cos(angle), np.sin(angle)
      p, q = cos * u + sin * v, -sin * u + cos * v  # rotate the point by -angle
      for shape in range(3):
        bank[shape, scale_index, orientation_index] = 255 * _inside(shape, p, q)
  bank.flags.writeable = False
  return bank


def render(indices: np.ndarray) -> np.ndarray:
  """Grid indices int [..., 5] -> binary images uint8 [..., 64, 64, 1] with values {0, 255}."""
  indices = _check_factors(indices)
  lead_shape = indices.shape[:-1]
  flat = indices.reshape(-1, NUM_FACTORS)
  shape, scale, orientation, x, y = flat.T
  masks = _mask_bank()[shape, scale, orientation, y % _NUM_PHASES, x % _NUM_PHASES]
  top = np.floor(POSITION_START_PX + POSITION_STEP_PX * y).astype(np.int64) - WINDOW // 2
  left = np.floor(POSITION_START_PX + POSITION_STEP_PX * x).astype(np.int64) - WINDOW // 2
  window = np.arange(WINDOW)
  images = np.zeros((flat.shape[0], IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
  images[np.arange(flat.shape[0])[:, None, None], (top[:, None] + window)[:, :, None],
         (left[:, None] + window)[:, None, :]] = masks
  return images.reshape(lead_shape + OBSERVATION_SHAPE)


def _pair_dict(factors: np.ndarray) -> dict:
  """Factor pairs int [N, 2, 5] -> the pair dict every sampler returns."""
  return {"frames": render(factors), "factors": factors, "factor_values": factor_values(factors)}


def _sample_truncated_laplace(current: np.ndarray, size: int, scale: np.ndarray,
                              rng: np.random.Generator, exclude_current: bool) -> np.ndarray:
  """Next values int64 [N] from p(b) ~ exp(-|b - current| / scale) on b in 0..size-1."""
  grid = np.arange(size)
  log_p = -np.abs(grid[None, :] - current[:, None]) / scale[:, None]
  p = np.exp(log_p - log_p.max(axis=1, keepdims=True))
  if exclude_current:
    p[np.arange(current.shape[0]), current] = 0.0
  cdf = np.cumsum(p, axis=1)
  u = rng.random(current.shape[0]) * cdf[:, -1]
  return np.minimum((cdf <= u[:, None]).sum(axis=1), size - 1).astype(np.int64)


def laplace_pairs(num_pairs: int, seed: int, rate: float | None = 1.0) -> dict:
  """SlowVAE "laplace" (LAP) pairs: truncated discrete Laplace steps of scale log(size) / rate per factor.

  Args:
    num_pairs: number of pairs N.
    seed: integer seed; the result is a pure function of (num_pairs, seed, rate).
    rate: inverse scale (larger -> smaller steps). None draws a rate per pair from U(1, 10), the
      reference's ``rate = -1``.

  Returns:
    the pair dict (module docstring); shape never changes and every pair changes >= 1 factor.
  """
  _check_count("num_pairs", num_pairs)
  if rate is not None and not rate > 0:
    raise ValueError(f"rate must be positive (or None for U(1, 10) per pair), got {rate!r}.")
  rng = np.random.default_rng(seed)
  start = sample_factors(num_pairs, rng)
  rates = rng.uniform(1.0, 10.0, num_pairs) if rate is None else np.full(num_pairs, float(rate))
  end = start.copy()
  moving = [f for f in range(NUM_FACTORS) if not CATEGORICAL[f]]
  for f in moving:
    end[:, f] = _sample_truncated_laplace(start[:, f], FACTOR_SIZES[f],
                                          np.log(FACTOR_SIZES[f]) / rates, rng, False)
  unchanged = np.flatnonzero(np.all(end == start, axis=1))
  picked = np.asarray(moving)[rng.integers(0, len(moving), unchanged.size)]
  for f in moving:
    rows = unchanged[picked == f]
    end[rows, f] = _sample_truncated_laplace(start[rows, f], FACTOR_SIZES[f],
                                             np.log(FACTOR_SIZES[f]) / rates[rows], rng, True)
  return _pair_dict(np.stack([start, end], axis=1))


def uniform_pairs(num_pairs: int, seed: int, max_changed: int = NUM_FACTORS - 1,
                  k: int | None = None) -> dict:
  """SlowVAE "uniform" pairs: k ~ U{1..max_changed} factors redrawn uniformly to other values.

  k (the number of changing factors) is drawn independently for every pair; which k factors
  change is a uniformly random subset of the five.

  Any factor, shape included, can be among the k. The default max_changed = 4 is what the
  reference's ``np.random.randint(1, n_factors)`` draws; max_changed = 5 allows k = 5. An integer
  ``k`` in 1..5 fixes k for every pair instead (the reference's ``--data-k``; its default -1, like
  None here, draws it); the other draws are unchanged, so pairs with the same k are the same.
  """
  _check_count("num_pairs", num_pairs)
  if max_changed not in range(1, NUM_FACTORS + 1):
    raise ValueError(f"max_changed must be in 1..{NUM_FACTORS}, got {max_changed!r}.")
  if k is not None and k not in range(1, NUM_FACTORS + 1):
    raise ValueError(f"k must be None (drawn per pair) or in 1..{NUM_FACTORS}, got {k!r}.")
  rng = np.random.default_rng(seed)
  start = sample_factors(num_pairs, rng)
  num_changed = rng.integers(1, max_changed + 1, num_pairs)
  if k is not None:
    num_changed = np.full(num_pairs, k)
  rank = np.argsort(rng.random((num_pairs, NUM_FACTORS)), axis=1).argsort(axis=1)
  changed = rank < num_changed[:, None]  # k distinct factors, uniformly chosen
  sizes = np.asarray(FACTOR_SIZES)
  shift = 1 + rng.integers(0, sizes - 1, size=(num_pairs, NUM_FACTORS))  # uniform over the others
  end = np.where(changed, (start + shift) % sizes, start)
  return _pair_dict(np.stack([start, end], axis=1))


lap_pairs = laplace_pairs  # the earlier names (data/builders.py, data/benchmark.py use them)
loc_pairs = uniform_pairs
# Transition names (the reference's --data-distribution values, and natural) and their aliases:
# nlvae's earlier names and the paper's abbreviations.
TRANSITIONS = ("laplace", "uniform", "natural")
TRANSITION_ALIASES = {"lap": "laplace", "loc": "uniform", "uni": "uniform"}


def generalized_laplace_steps(shape: tuple[int, ...], step_scale: float, tail_exponent: float,
                              rng: np.random.Generator) -> np.ndarray:
  """Real steps float64 [shape] with density ~ exp(-|d / step_scale|^tail_exponent).

  |d| = step_scale * G^(1/alpha) with G ~ Gamma(1/alpha, 1), and a random sign. alpha = 2 is a
  Gaussian, 1 a Laplace, < 1 sparser (excess kurtosis G(5/a) G(1/a) / G(3/a)^2 - 3; 22 at 0.5).
  """
  magnitude = step_scale * rng.gamma(1.0 / tail_exponent, 1.0, shape) ** (1.0 / tail_exponent)
  return np.where(rng.random(shape) < 0.5, -magnitude, magnitude)


def natural_pairs(num_pairs: int, seed: int, tail_exponent: float = 0.5,
                  position_step: float = 0.35, scale_step: float = 0.12) -> dict:
  """Heavy-tailed "natural motion" pairs (stand-in for Natural Sprites and KITTI Masks).

  x and y move by round(d) grid steps with d from ``generalized_laplace_steps(position_step,
  tail_exponent)``, scale by round(d) with ``scale_step``; a move that would leave the grid is
  redrawn (so the step law is truncated, as in ``laplace_pairs``). Shape and orientation are drawn
  once per pair and held. Pairs with no change are kept: they are common in real videos.

  Args:
    num_pairs: number of pairs N.
    seed: integer seed.
    tail_exponent: alpha of the generalised Laplace, in (0, 2]; smaller is sparser.
    position_step, scale_step: step scales s in grid indices (positive).
  """
  _check_count("num_pairs", num_pairs)
  if not 0 < tail_exponent <= 2 or not position_step > 0 or not scale_step > 0:
    raise ValueError("natural_pairs needs 0 < tail_exponent <= 2 and positive step scales, got "
                     f"{tail_exponent!r}, {position_step!r}, {scale_step!r}.")
  rng = np.random.default_rng(seed)
  start = sample_factors(num_pairs, rng)
  end = start.copy()
  for f, step_scale in ((1, scale_step), (3, position_step), (4, position_step)):
    pending = np.arange(num_pairs)
    while pending.size:
      proposal = start[pending, f] + np.rint(
          generalized_laplace_steps(pending.shape, step_scale, tail_exponent, rng)).astype(np.int64)
      valid = (proposal >= 0) & (proposal < FACTOR_SIZES[f])
      end[pending[valid], f] = proposal[valid]
      pending = pending[~valid]
  return _pair_dict(np.stack([start, end], axis=1))


# transitions name -> (pair sampler, data-config fields passed on when present).
PAIR_SAMPLERS = {
    "laplace": (laplace_pairs, ("rate",)),
    "uniform": (uniform_pairs, ("max_changed", "k")),
    "natural": (natural_pairs, ("tail_exponent", "position_step", "scale_step")),
}


def canonical_transitions(name: str) -> str:
  """A transitions name or alias ("lap", "loc", "uni") -> its PAIR_SAMPLERS name."""
  name = TRANSITION_ALIASES.get(name, name)
  if name not in PAIR_SAMPLERS:
    raise ValueError(f"data.transitions must be one of {sorted(PAIR_SAMPLERS)} (or an alias "
                     f"{sorted(TRANSITION_ALIASES)}), got {name!r}; set "
                     "--config.data.transitions.")
  return name


def sample_pairs(data_config, num_pairs: int, seed: int) -> dict[str, np.ndarray]:
  """Sprite pairs {"frames": uint8 [N, 2, 64, 64, 1], "factors": int32 [N, 2, 5]} of a data
  config (a mapping: an ml_collections.ConfigDict or a dict).

  data_config["transitions"] picks the sampler ("laplace", "uniform" or "natural", or an alias of
  TRANSITION_ALIASES; PAIR_SAMPLERS) and its optional fields (rate, max_changed, tail_exponent,
  position_step, scale_step, k) are passed on; laplace `rate` <= 0 draws a rate per pair from
  U(1, 10) (the reference's rate -1); uniform pairs change k ~ U{1..max_changed} factors, or
  exactly `k` when k > 0 (the reference's --data-k; k <= 0, like its -1, draws it).
  """
  sampler, option_names = PAIR_SAMPLERS[canonical_transitions(data_config["transitions"])]
  options = {name: data_config[name] for name in option_names if name in data_config}
  for drawn_when_not_positive in ("rate", "k"):
    if drawn_when_not_positive in options and options[drawn_when_not_positive] <= 0:
      options[drawn_when_not_positive] = None
  pairs = sampler(num_pairs, seed, **options)
  return {"frames": pairs["frames"], "factors": pairs["factors"].astype(np.int32)}


class SpritesGroundTruth:
  """The sprite grid as a ground-truth sampler for disentanglement metrics (duck-typed).

  Attributes: num_factors, factors_num_values, factor_names, categorical, observation_shape.
  """

  num_factors = NUM_FACTORS
  factors_num_values = FACTOR_SIZES
  factor_names = FACTOR_NAMES
  categorical = CATEGORICAL
  observation_shape = OBSERVATION_SHAPE

  def sample_factors(self, num: int, random_state: np.random.Generator) -> np.ndarray:
    """Uniform factor indices, int64 [num, 5]."""
    return sample_factors(num, random_state)

  def sample_observations_from_factors(self, factors: np.ndarray,
                                       random_state: np.random.Generator) -> np.ndarray:
    """Factor indices int [N, 5] -> images float32 [N, 64, 64, 1] in {0, 1} (rendering is exact:
    random_state is unused)."""
    del random_state
    return render(factors).astype(np.float32) / 255.0
