"""Anti-aliased numpy renderers for nlvae's four physics experiments.

Each renderer maps simulated states of N clips of T frames to uint8 frames [N, T, H, W, C]
(H = W = image_size; C = channels, 1 grey or 3 RGB). Shapes are drawn with analytic
pixel coverage: a pixel's value is the fraction of its square that the shape covers (exact
for straight edges, the usual signed-distance approximation on curves), and the pulsar's
point-spread function is integrated over each pixel. Work is vectorized over clips and
frames and done in float32 in cache-sized chunks of whole clips.

Geometry: every system has a `Scene`, a square window of the world in metres (y up) that
fills the frame; `Scene.pixels_per_metre(image_size)` is the metres -> pixels scale. The
layout constants below (in metres) fix where the fixed parts of each scene are.

Per-clip render randomness (textured background, distractors, sensor noise, pulsar's
background stars) comes only from that clip's `render_seed`, one independent numpy
stream per purpose, so re-rendering a re-simulated clip gives the same background, the
same distractors and the same noise.

Render options (keys of the `options` dict; other keys are ignored):
  image_size      int, frame side in pixels.
  channels        1 (grey) or 3 (RGB).
  sensor_noise    std of additive Gaussian noise in intensity units ([0, 1] scale).
  background      "plain" (black sky), "texture" (smooth random texture, per clip) or "room"
                  (texture over a checkered floor).
  num_distractors small discs drifting at constant velocity behind the objects.
  camera_azimuth, camera_elevation, camera_jitter, shading, shadow, occluder, flicker,
  motion_blur, compression_crf   what real cameras do: see data/camera.py.
  sky_level, num_stars   (pulsar only) sky brightness and number of faint stars.
"""

import dataclasses

import numpy as np
from scipy import special

from data import camera


@dataclasses.dataclass(frozen=True)
class Scene:
  """A square window of the world, in metres with y pointing up, that fills the frame."""
  x_range: tuple[float, float]  # metres at the left and right frame edges
  y_range: tuple[float, float]  # metres at the bottom and top frame edges

  def __post_init__(self):
    width = self.x_range[1] - self.x_range[0]
    height = self.y_range[1] - self.y_range[0]
    if not (width > 0 and abs(width - height) < 1e-12):
      raise ValueError(f"Scene must be a square window, got x {self.x_range}, y {self.y_range}")

  def pixels_per_metre(self, image_size: int) -> float:
    return image_size / (self.x_range[1] - self.x_range[0])

  def to_pixels(self, x, y, image_size: int):
    """World (x, y) in metres -> continuous (column, row) pixel coordinates, float32.

    Pixel (i, j) covers [j, j + 1) x [i, i + 1); its centre is (j + 0.5, i + 0.5).
    """
    scale = self.pixels_per_metre(image_size)
    col = (np.asarray(x, np.float64) - self.x_range[0]) * scale
    row = (self.y_range[1] - np.asarray(y, np.float64)) * scale
    return col.astype(np.float32), row.astype(np.float32)


# Spring: 1 m x 1 m window centred on the spring's axis; 32 px/m at image_size 32.
SPRING_SCENE = Scene(x_range=(-0.5, 0.5), y_range=(-0.5, 0.5))
SPRING_ANCHOR_Y = 0.42           # underside of the ceiling, where the spring hangs from
SPRING_CEILING_HALF_WIDTH = 0.3
SPRING_REST_Y = -0.05            # centre of the mass at position 0 (equilibrium)
SPRING_BLOCK_HALF_SIZE = 0.09    # the mass is a square of side 0.18 m
SPRING_NUM_COILS = 4             # zigzag periods; they stretch with the spring
SPRING_COIL_HALF_WIDTH = 0.07
SPRING_WIRE_HALF_WIDTH = 0.012

# Pendulum: 2.5 m x 2.5 m window centred on the pivot; 12.8 px/m at image_size 32.
PENDULUM_SCENE = Scene(x_range=(-1.25, 1.25), y_range=(-1.25, 1.25))
PENDULUM_PIVOT = (0.0, 0.0)
PENDULUM_PIVOT_RADIUS = 0.06
PENDULUM_ROD_HALF_WIDTH = 0.03
PENDULUM_BOB_RADIUS = 0.18

# Falling object: 5 m x 5 m window, ground (height 0) 0.25 m above the bottom edge;
# 6.4 px/m at image_size 32.
FALLING_SCENE = Scene(x_range=(-2.5, 2.5), y_range=(-0.25, 4.75))
FALLING_BALL_RADIUS = 0.3

# Pulsar: the frame is 1 x 1 in arbitrary angular units, pulsar at the centre.
PULSAR_SCENE = Scene(x_range=(-0.5, 0.5), y_range=(-0.5, 0.5))
PULSAR_PSF_SIGMA = 0.04          # Gaussian point-spread std (1.28 px at image_size 32)
PULSAR_PEAK_FLUX = 0.8           # image intensity of a unit-brightness source (PSF peak)
PULSAR_STAR_FLUX_RANGE = (0.08, 0.3)
PULSAR_STAR_MIN_DISTANCE = 0.15  # stars keep this far from the pulsar

DISTRACTOR_RADIUS = 0.035        # fraction of the frame side
DISTRACTOR_SPEED = 0.012         # max speed per axis, frame sides per frame
TEXTURE_RANGE = (0.05, 0.35)     # textured background intensities (nebula: half of it)

# (grey value, RGB) of each kind of ink.
_INKS = {
    "block": (1.0, (0.35, 0.6, 1.0)),
    "spring": (0.75, (0.8, 0.8, 0.8)),
    "ceiling": (0.5, (0.55, 0.45, 0.35)),
    "bob": (1.0, (1.0, 0.4, 0.2)),
    "rod": (0.6, (0.7, 0.7, 0.7)),
    "pivot": (0.5, (0.5, 0.5, 0.5)),
    "ball": (1.0, (1.0, 0.65, 0.1)),
    "ground": (0.4, (0.35, 0.55, 0.25)),
    "pulsar": (1.0, (0.85, 0.9, 1.0)),
    "star": (1.0, (1.0, 0.95, 0.85)),
}

# Independent random streams of a clip's render seed.
_BACKGROUND_STREAM, _DISTRACTOR_STREAM, _NOISE_STREAM, _STAR_STREAM = 1, 2, 3, 4
_OCCLUDER_STREAM, _FLICKER_STREAM, _JITTER_STREAM = 5, 6, 7
_CHUNK_PIXELS = 1 << 16  # pixels per frame chunk (keeps temporaries cache resident)


def _ink(name: str, channels: int) -> np.ndarray:
  grey, rgb = _INKS[name]
  return np.asarray([grey] if channels == 1 else rgb, np.float32)


def _clip_rng(seed, stream: int) -> np.random.Generator:
  return np.random.default_rng([int(seed), stream])


def _pixel_centres(image_size: int) -> np.ndarray:
  return np.arange(image_size, dtype=np.float32) + np.float32(0.5)


# ---------------------------------------------------------------------------------------
# Coverage of shapes. Centres and sizes are in pixels; results are float32 [m, H, W].


def _as_column(value, ndim: int) -> np.ndarray:
  value = np.asarray(value, np.float32)
  return value.reshape(value.shape + (1,) * ndim) if value.ndim else value


def _box_coverage_1d(centre, half_size, grid):
  """Coverage of the interval centre +- half_size over pixels [S]: float32 [m, S]."""
  cover = np.abs(grid[None, :] - _as_column(centre, 1))
  np.subtract(_as_column(half_size, 1) + np.float32(0.5), cover, out=cover)
  return np.clip(cover, 0.0, 1.0, out=cover)


def _disc_coverage(col, row, radius, grid):
  """Coverage of discs centred at (col, row) [m] with radius (scalar or [m])."""
  dx = grid[None, :] - col[:, None]
  dx *= dx
  dy = grid[None, :] - row[:, None]
  dy *= dy
  cover = dy[:, :, None] + dx[:, None, :]
  np.sqrt(cover, out=cover)
  np.subtract(_as_column(radius, 2) + np.float32(0.5), cover, out=cover)
  return np.clip(cover, 0.0, 1.0, out=cover)


def _segment_coverage(col0, row0, col1, row1, half_width, grid):
  """Coverage of thick segments from (col0, row0) to (col1, row1) [m], flat ends."""
  dcol, drow = col1 - col0, row1 - row0
  length = np.sqrt(dcol * dcol + drow * drow)
  safe = np.maximum(length, np.float32(1e-6))
  ucol, urow = dcol / safe, drow / safe
  xs = grid[None, :] - col0[:, None]   # [m, W]
  ys = grid[None, :] - row0[:, None]   # [m, H]
  along = (ys * urow[:, None])[:, :, None] + (xs * ucol[:, None])[:, None, :]
  across = (ys * ucol[:, None])[:, :, None] - (xs * urow[:, None])[:, None, :]
  np.abs(across, out=across)
  np.subtract(np.float32(half_width + 0.5), across, out=across)
  np.clip(across, 0.0, 1.0, out=across)
  ends = length[:, None, None] - along
  np.minimum(ends, along, out=ends)
  ends += np.float32(0.5)
  np.clip(ends, 0.0, 1.0, out=ends)
  across *= ends
  return across


def _zigzag_coverage(col, row_top, row_bottom, half_width, num_coils, wire_half_width, grid):
  """Coverage of vertical zigzag springs from row_top to row_bottom [m] about column col.

  The wire is x = col + half_width * tri(num_coils * s), s = (row - row_top) / length, a
  triangle wave with zeros at both ends, so the coils stretch with the spring. Pixel
  distance to the wire is the horizontal offset times cos of the wire's slope angle.
  """
  length = np.maximum(row_bottom - row_top, np.float32(1e-3))
  s = (grid[None, :] - row_top[:, None]) / length[:, None] * np.float32(num_coils)  # [m, H]
  s += np.float32(0.25)
  s -= np.floor(s)
  s -= np.float32(0.5)
  wire_col = col + half_width * (1.0 - 4.0 * np.abs(s))                           # [m, H]
  slope = 4.0 * half_width * num_coils / length
  cos_slope = (1.0 / np.sqrt(1.0 + slope * slope)).astype(np.float32)              # [m]
  rows_inside = (np.clip(grid[None, :] - row_top[:, None] + 0.5, 0.0, 1.0)
                 * np.clip(row_bottom[:, None] - grid[None, :] + 0.5, 0.0, 1.0))   # [m, H]
  cover = grid[None, None, :] - wire_col[:, :, None]
  np.abs(cover, out=cover)
  cover *= cos_slope[:, None, None]
  np.subtract(np.float32(wire_half_width + 0.5), cover, out=cover)
  np.clip(cover, 0.0, 1.0, out=cover)
  cover *= rows_inside[:, :, None]
  return cover


def _gaussian_pixel_profile(centre, sigma, grid):
  """Pixel-integrated Gaussian of unit peak along one axis: float32 [m, S].

  Pixel j gets sqrt(2 pi) sigma * mass of N(centre, sigma^2) on [j, j + 1), so a well
  resolved source has value exp(-d^2 / 2 sigma^2) at distance d.
  """
  edges = np.concatenate([grid - 0.5, grid[-1:] + 0.5]).astype(np.float64)
  z = (edges[None, :] - np.asarray(centre, np.float64)[:, None]) / (np.sqrt(2.0) * sigma)
  cdf = 0.5 * special.erf(z)
  return (np.diff(cdf, axis=1) * np.sqrt(2.0 * np.pi) * sigma).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Backgrounds, distractors, noise and compositing.


def _composite(image, coverage, ink):
  """Paints ink (float32 [C] or [m, 1, 1, C]) with coverage [m, H, W] over image [m, H, W, C]."""
  if image.shape[-1] == 1:
    plane = image[..., 0]
    paint = ink[..., 0] - plane
    paint *= coverage
    plane += paint
  else:
    paint = ink - image
    paint *= coverage[..., None]
    image += paint


def _texture(render_seed, image_size, channels, low, high):
  """Smooth random textures, one per clip: float32 [N, H, W, C] with values in [low, high]."""
  knots = np.linspace(-0.1, 1.1, 6)
  centres = _pixel_centres(image_size) / image_size
  weights = np.exp(-0.5 * ((centres[:, None] - knots[None, :]) / 0.18) ** 2)
  weights /= weights.sum(axis=1, keepdims=True)                                # [S, 6]
  control = np.stack([_clip_rng(s, _BACKGROUND_STREAM).random((channels, 6, 6))
                      for s in render_seed])                                   # [N, C, 6, 6]
  texture = np.einsum("hk,nckl,wl->nhwc", weights, control, weights)
  lo = texture.min(axis=(1, 2, 3), keepdims=True)
  hi = texture.max(axis=(1, 2, 3), keepdims=True)
  texture = low + (high - low) * (texture - lo) / np.maximum(hi - lo, 1e-9)
  return texture.astype(np.float32)


def _background(render_seed, options, texture_scale=1.0):
  """Background of every clip: float32 [N or 1, H, W, C] (1 when it is the same for all)."""
  size, channels = options["image_size"], options["channels"]
  if options["background"] in ("texture", "room"):
    low, high = (texture_scale * v for v in TEXTURE_RANGE)
    texture = _texture(render_seed, size, channels, low, high)
    if options["background"] == "room":
      floor, mask = camera.checker_floor(size, channels)
      texture[:, mask] = floor[mask]
    return texture
  return np.zeros((1, size, size, channels), np.float32)


def _camera_effects_before_objects(image, render_seed, first, num_frames, options, draw, start,
                                   stop):
  """Drop shadows of the moving objects on the background (in place)."""
  if not options["shadow"]:
    return
  size = options["image_size"]
  silhouette = np.zeros_like(image)
  draw(silhouette, start, stop)
  mask = np.clip(silhouette.max(axis=-1, keepdims=True) / 0.3, 0, 1)
  offset = max(1, round(0.05 * size))
  shadow = camera.shift_image(mask, offset, offset // 2)
  image *= 1 - np.float32(options["shadow"]) * shadow


def _camera_effects_after_objects(image, render_seed, first, num_frames, options):
  """Occluder, shading, flicker, motion blur, perspective and jitter (in place), for the frames of
  whole clips first, first + 1, ... in image [n * T, S, S, C]."""
  size, channels = options["image_size"], options["channels"]
  seeds = render_seed[first:first + len(image) // num_frames]
  if options["occluder"]:
    ink = _ink("pivot", channels) * np.float32(0.8)
    for k, seed in enumerate(seeds):
      cover = camera.occluder_coverage(size, _clip_rng(seed, _OCCLUDER_STREAM))
      clip = image[k * num_frames:(k + 1) * num_frames]
      _composite(clip, np.broadcast_to(cover, clip.shape[:3]).copy(), ink)
  if options["shading"]:
    image *= camera.illumination(size, options["shading"])
  if options["flicker"]:
    gains = np.concatenate([1 + options["flicker"] * _clip_rng(seed, _FLICKER_STREAM)
                            .standard_normal(num_frames) for seed in seeds])
    image *= np.maximum(gains, 0.1).astype(np.float32)[:, None, None, None]
  if options["motion_blur"]:
    image[...] = camera.blur_in_time(image, num_frames, options["motion_blur"])
  if options["camera_azimuth"] or options["camera_elevation"] or options["camera_jitter"]:
    shifts = np.concatenate([options["camera_jitter"] * _clip_rng(seed, _JITTER_STREAM)
                             .standard_normal((num_frames, 2)) for seed in seeds])
    rows, cols = camera.plane_to_image_map(size, options["camera_azimuth"],
                                           options["camera_elevation"], shifts)
    image[...] = camera.bilinear(image, rows, cols)


def _distractor_tracks(render_seed, num_frames, options):
  """Distractor discs: centres [N, T, K, 2] (col, row in pixels) and inks [N, K, C]."""
  size, channels, count = options["image_size"], options["channels"], options["num_distractors"]
  centres, inks = [], []
  frames = np.arange(num_frames, dtype=np.float64)[:, None, None]
  for seed in render_seed:
    rng = _clip_rng(seed, _DISTRACTOR_STREAM)
    start = rng.uniform(0.1, 0.9, (count, 2))
    velocity = rng.uniform(-DISTRACTOR_SPEED, DISTRACTOR_SPEED, (count, 2))
    level = rng.uniform(0.3, 0.6, (count, 1))
    tint = rng.uniform(0.5, 1.0, (count, 3)) if channels == 3 else np.ones((count, 1))
    centres.append((start + velocity * frames) * size)
    inks.append(level * tint)
  return np.asarray(centres, np.float32), np.asarray(inks, np.float32)


def _to_uint8(image, out):
  np.clip(image, 0.0, 1.0, out=image)
  image *= np.float32(255.0)
  image += np.float32(0.5)
  out[...] = image  # truncation of x + 0.5 rounds to nearest


def _render(render_seed, num_frames, options, background, draw):
  """Shared render loop over chunks of whole clips.

  Args:
    render_seed: int [N].
    num_frames: T.
    options: render options (see module docstring).
    background: float32 [N or 1, H, W, C], the static scene of every clip.
    draw: draw(image, start, stop) paints the moving objects of flat frames start:stop
      (frame f is clip f // T, time f % T) into image float32 [stop - start, H, W, C].
  Returns:
    uint8 [N, T, H, W, C].
  """
  num_clips = len(render_seed)
  size, channels = options["image_size"], options["channels"]
  frames = np.empty((num_clips, num_frames, size, size, channels), np.uint8)
  flat = frames.reshape(num_clips * num_frames, size, size, channels)
  grid = _pixel_centres(size)
  tracks = inks = None
  if options["num_distractors"]:
    tracks, inks = _distractor_tracks(render_seed, num_frames, options)
  clips_per_chunk = max(1, _CHUNK_PIXELS // (num_frames * size * size))
  for first in range(0, num_clips, clips_per_chunk):
    last = min(num_clips, first + clips_per_chunk)
    count = (last - first) * num_frames
    if background.shape[0] == 1:
      image = np.repeat(background, count, axis=0)
    else:
      image = np.repeat(background[first:last], num_frames, axis=0)
    if tracks is not None:
      centres = tracks[first:last].reshape(count, -1, 2)
      clip_inks = np.repeat(inks[first:last], num_frames, axis=0)
      for k in range(centres.shape[1]):
        cover = _disc_coverage(centres[:, k, 0], centres[:, k, 1], DISTRACTOR_RADIUS * size, grid)
        _composite(image, cover, clip_inks[:, k, None, None, :])
    _camera_effects_before_objects(image, render_seed, first, num_frames, options, draw,
                                   first * num_frames, last * num_frames)
    draw(image, first * num_frames, last * num_frames)
    _camera_effects_after_objects(image, render_seed, first, num_frames, options)
    if options["sensor_noise"] > 0:
      for clip in range(first, last):
        noise = _clip_rng(render_seed[clip], _NOISE_STREAM).standard_normal(
            (num_frames, size, size, channels), dtype=np.float32)
        offset = (clip - first) * num_frames
        image[offset:offset + num_frames] += np.float32(options["sensor_noise"]) * noise
    _to_uint8(image, flat[first * num_frames:last * num_frames])
  if options["compression_crf"]:
    frames = camera.h264_round_trip(frames, options["compression_crf"])
  return frames


def _paint_static(background, coverage, ink):
  """Paints a static shape (coverage [H, W]) onto every background [Nb, H, W, C]."""
  background = background.copy()
  _composite(background, np.broadcast_to(coverage, background.shape[:3]).copy(), ink)
  return background


def _flat(values) -> np.ndarray:
  return np.asarray(values, np.float64).reshape(-1)


# ---------------------------------------------------------------------------------------
# The four systems.


def render_spring(position, render_seed, options) -> np.ndarray:
  """Mass hanging on a vertical zigzag spring from a ceiling.

  Args:
    position: [N, T] displacement of the mass from equilibrium in metres, up positive.
    render_seed: int [N].
    options: render options.
  Returns:
    uint8 [N, T, H, W, C].
  """
  size, channels = options["image_size"], options["channels"]
  scale = SPRING_SCENE.pixels_per_metre(size)
  grid = _pixel_centres(size)
  num_frames = np.shape(position)[1]
  centre_col, anchor_row = SPRING_SCENE.to_pixels(0.0, SPRING_ANCHOR_Y, size)
  ceiling_rows = np.clip(anchor_row - grid + 0.5, 0.0, 1.0)  # from the top edge to the anchor
  ceiling_cols = _box_coverage_1d(np.float32([centre_col]), SPRING_CEILING_HALF_WIDTH * scale,
                                  grid)[0]
  ceiling = ceiling_rows[:, None] * ceiling_cols[None, :]
  background = _paint_static(_background(render_seed, options), ceiling, _ink("ceiling", channels))
  _, block_row = SPRING_SCENE.to_pixels(0.0, SPRING_REST_Y + _flat(position), size)
  block_half = np.float32(SPRING_BLOCK_HALF_SIZE * scale)
  block_cols = _box_coverage_1d(np.float32([centre_col]), block_half, grid)[0]
  spring_ink, block_ink = _ink("spring", channels), _ink("block", channels)

  def draw(image, start, stop):
    rows = block_row[start:stop]
    spring = _zigzag_coverage(np.float32(centre_col), np.full_like(rows, anchor_row),
                              rows - block_half, np.float32(SPRING_COIL_HALF_WIDTH * scale),
                              SPRING_NUM_COILS, SPRING_WIRE_HALF_WIDTH * scale, grid)
    _composite(image, spring, spring_ink)
    block = _box_coverage_1d(rows, block_half, grid)[:, :, None] * block_cols[None, None, :]
    _composite(image, block, block_ink)

  return _render(render_seed, num_frames, options, background, draw)


def render_pendulum(angle, length, render_seed, options) -> np.ndarray:
  """Bob on a rod swinging from a fixed pivot at the frame centre.

  Args:
    angle: [N, T] angle from the downward vertical in radians (counter-clockwise positive,
      i.e. positive angles move the bob to the right).
    length: [N] rod length in metres (pivot to bob centre).
    render_seed: int [N].
    options: render options.
  Returns:
    uint8 [N, T, H, W, C].
  """
  size, channels = options["image_size"], options["channels"]
  scale = PENDULUM_SCENE.pixels_per_metre(size)
  grid = _pixel_centres(size)
  num_frames = np.shape(angle)[1]
  pivot_col, pivot_row = PENDULUM_SCENE.to_pixels(*PENDULUM_PIVOT, size)
  pivot = _disc_coverage(np.float32([pivot_col]), np.float32([pivot_row]),
                         PENDULUM_PIVOT_RADIUS * scale, grid)[0]
  background = _paint_static(_background(render_seed, options), pivot, _ink("pivot", channels))
  angle = np.asarray(angle, np.float64)
  rod = np.asarray(length, np.float64)[:, None]
  bob_col, bob_row = PENDULUM_SCENE.to_pixels(PENDULUM_PIVOT[0] + rod * np.sin(angle),
                                              PENDULUM_PIVOT[1] - rod * np.cos(angle), size)
  bob_col, bob_row = bob_col.reshape(-1), bob_row.reshape(-1)
  rod_ink, bob_ink = _ink("rod", channels), _ink("bob", channels)

  def draw(image, start, stop):
    cols, rows = bob_col[start:stop], bob_row[start:stop]
    anchor_cols = np.full_like(cols, pivot_col)
    anchor_rows = np.full_like(rows, pivot_row)
    _composite(image, _segment_coverage(anchor_cols, anchor_rows, cols, rows,
                                        PENDULUM_ROD_HALF_WIDTH * scale, grid), rod_ink)
    _composite(image, _disc_coverage(cols, rows, PENDULUM_BOB_RADIUS * scale, grid), bob_ink)

  return _render(render_seed, num_frames, options, background, draw)


def render_falling(x, height, render_seed, options) -> np.ndarray:
  """Ball flying above the ground (a strip along the bottom edge).

  Args:
    x: [N, T] horizontal position of the ball's centre in metres (0 = frame centre).
    height: [N, T] height of the ball's centre above the ground in metres.
    render_seed: int [N].
    options: render options.
  Returns:
    uint8 [N, T, H, W, C].
  """
  size, channels = options["image_size"], options["channels"]
  scale = FALLING_SCENE.pixels_per_metre(size)
  grid = _pixel_centres(size)
  num_frames = np.shape(height)[1]
  _, ground_row = FALLING_SCENE.to_pixels(0.0, 0.0, size)
  ground_rows = np.clip(grid - ground_row + 0.5, 0.0, 1.0)  # from the ground to the bottom edge
  ground = np.broadcast_to(ground_rows[:, None], (size, size))
  background = _paint_static(_background(render_seed, options), ground, _ink("ground", channels))
  ball_col, ball_row = FALLING_SCENE.to_pixels(_flat(x), _flat(height), size)
  ball_ink = _ink("ball", channels)

  def draw(image, start, stop):
    cover = _disc_coverage(ball_col[start:stop], ball_row[start:stop],
                           FALLING_BALL_RADIUS * scale, grid)
    _composite(image, cover, ball_ink)

  return _render(render_seed, num_frames, options, background, draw)


def render_pulsar(brightness, render_seed, options) -> np.ndarray:
  """Blinking point source at the frame centre on a sky with faint stars.

  Image intensity = sky_level + (optional nebula texture) + stars
  + PULSAR_PEAK_FLUX * brightness * PSF + sensor noise, where PSF is a pixel-integrated
  Gaussian of unit peak and std PULSAR_PSF_SIGMA (frame units).

  Args:
    brightness: [N, T] pulsar brightness (pulse profile units, about 0..1).
    render_seed: int [N].
    options: render options, including sky_level and num_stars.
  Returns:
    uint8 [N, T, H, W, C].
  """
  size, channels = options["image_size"], options["channels"]
  grid = _pixel_centres(size)
  sigma = PULSAR_PSF_SIGMA * size
  num_frames = np.shape(brightness)[1]
  background = _background(render_seed, options, texture_scale=0.5)
  background = background + np.float32(options["sky_level"])
  if options["num_stars"]:
    stars = []
    for seed in render_seed:
      rng = _clip_rng(seed, _STAR_STREAM)
      offsets = rng.uniform(-0.45, 0.45, (4 * options["num_stars"], 2))
      far = offsets[np.hypot(offsets[:, 0], offsets[:, 1]) > PULSAR_STAR_MIN_DISTANCE]
      offsets = far[:options["num_stars"]]
      flux = rng.uniform(*PULSAR_STAR_FLUX_RANGE, len(offsets))
      cols, rows = PULSAR_SCENE.to_pixels(offsets[:, 0], offsets[:, 1], size)
      stars.append(np.einsum("k,kh,kw->hw", flux, _gaussian_pixel_profile(rows, sigma, grid),
                             _gaussian_pixel_profile(cols, sigma, grid)))
    background = background + np.asarray(stars, np.float32)[..., None] * _ink("star", channels)
  centre_col, centre_row = PULSAR_SCENE.to_pixels(np.zeros(1), np.zeros(1), size)
  psf = (_gaussian_pixel_profile(centre_row, sigma, grid)[0][:, None]
         * _gaussian_pixel_profile(centre_col, sigma, grid)[0][None, :])
  source = (PULSAR_PEAK_FLUX * psf[:, :, None] * _ink("pulsar", channels)).astype(np.float32)
  flux = _flat(brightness).astype(np.float32)

  def draw(image, start, stop):
    image += flux[start:stop, None, None, None] * source[None]

  return _render(render_seed, num_frames, options, background, draw)
