"""What real cameras do to a scene, as numpy post-processing of rendered frames (data/render.py).

The physics scenes are planar (the plane of motion, as in data/render.py's `Scene`), so a
perspective camera at an angle is exactly a homography of the rendered plane. Each effect is a
render option (see data/render.py) that every physics config accepts as an override:

  camera_azimuth, camera_elevation  degrees: a pinhole camera orbiting the scene centre at
                    CAMERA_DISTANCE frame sides, turned away from the plane's normal by the azimuth
                    (about the vertical) and looking down by the elevation. 0, 0 = front view.
  camera_jitter     std in pixels of a per-frame random camera translation (hand-held shake).
  shading           0..1 strength of a smooth illumination falloff (light from the top left and
                    vignetting): objects change brightness with position.
  shadow            0..1 darkness of the moving objects' drop shadow on the background (it
                    darkens the background, so it shows only with one: see `background`).
  occluder          1: a static stand in front of the scene that sometimes hides the object.
  flicker           std of a per-frame multiplicative lighting gain (mains flicker, auto exposure).
  motion_blur       0..1: each frame mixes in its neighbours (exposure over the frame interval).
  compression_crf   0 = off; else every clip goes through H.264 at this crf (23 = ffmpeg's default).
  background        "room": a textured wall over a checkered floor (besides "plain", "texture").
"""
from __future__ import annotations

import pathlib
import tempfile

import numpy as np

CAMERA_DISTANCE = 2.0  # frame sides from the scene centre: about a 28 degree field of view


def plane_to_image_map(image_size: int, azimuth_deg: float, elevation_deg: float,
                       shifts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Where each output pixel looks in the rendered plane, for a camera orbiting the scene.

  Args:
    image_size: S.
    azimuth_deg, elevation_deg: the camera's orbit angles (0, 0 = the plane seen head on, which
      gives the identity map).
    shifts: float [m, 2], per-frame (column, row) translations of the image in pixels (jitter).
  Returns:
    (rows, cols) float32 [m, S, S]: continuous source coordinates (pixel centres at k + 0.5).
  """
  a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
  distance = CAMERA_DISTANCE
  centre = distance * np.array([np.sin(a) * np.cos(e), np.sin(e), np.cos(a) * np.cos(e)])
  forward = -centre / np.linalg.norm(centre)
  right = np.cross(forward, [0.0, 1.0, 0.0])
  right /= np.linalg.norm(right)
  down = np.cross(forward, right)
  rotation = np.stack([right, down, forward])  # world -> camera (x right, y down, z forward)
  grid = (np.arange(image_size) + 0.5) / image_size - 0.5  # frame units, centred
  shifts = np.asarray(shifts, np.float64) / image_size
  u = grid[None, None, :] - shifts[:, 0, None, None]           # [m, 1, S]
  v = grid[None, :, None] - shifts[:, 1, None, None]           # [m, S, 1]
  u, v = np.broadcast_arrays(u, v)
  rays = np.stack([u / distance, v / distance, np.ones_like(u)], axis=-1) @ rotation  # world
  s = -centre[2] / rays[..., 2]
  x = centre[0] + s * rays[..., 0]
  y = centre[1] + s * rays[..., 1]
  return ((0.5 - y) * image_size).astype(np.float32), ((x + 0.5) * image_size).astype(np.float32)


def bilinear(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
  """Samples image float32 [m, S, S, C] at (rows, cols) [m, S, S] (edges clamped)."""
  m, size = image.shape[0], image.shape[1]
  r = np.clip(rows - 0.5, 0, size - 1)
  c = np.clip(cols - 0.5, 0, size - 1)
  r0, c0 = np.minimum(r.astype(np.int64), size - 2), np.minimum(c.astype(np.int64), size - 2)
  fr, fc = (r - r0)[..., None], (c - c0)[..., None]
  frame = np.arange(m)[:, None, None]
  top = image[frame, r0, c0] * (1 - fc) + image[frame, r0, c0 + 1] * fc
  bottom = image[frame, r0 + 1, c0] * (1 - fc) + image[frame, r0 + 1, c0 + 1] * fc
  return (top * (1 - fr) + bottom * fr).astype(np.float32)


def illumination(image_size: int, strength: float) -> np.ndarray:
  """Smooth light falloff float32 [S, S, 1] in (0, 1]: bright top left, vignetted corners."""
  grid = (np.arange(image_size) + 0.5) / image_size
  rows, cols = np.meshgrid(grid, grid, indexing="ij")
  falloff = 0.5 * (rows + cols) + 0.8 * ((rows - 0.5)**2 + (cols - 0.5)**2)
  return (1.0 - strength * falloff / falloff.max()).astype(np.float32)[..., None]


def checker_floor(image_size: int, channels: int, floor_top: float = 0.72,
                  squares: int = 8) -> tuple[np.ndarray, np.ndarray]:
  """A checkered floor in the bottom of the frame: (values float32 [S, S, C], mask [S, S])."""
  grid = np.arange(image_size) + 0.5
  rows, cols = np.meshgrid(grid, grid, indexing="ij")
  side = image_size / squares
  checker = ((rows // side + cols // side) % 2).astype(np.float32)
  colour = np.array([0.25, 0.3, 0.35], np.float32) if channels == 3 else np.array([0.3])
  values = (0.12 + checker[..., None] * colour[None, None, :channels]).astype(np.float32)
  return values, (rows >= floor_top * image_size)


def occluder_coverage(image_size: int, rng: np.random.Generator) -> np.ndarray:
  """A vertical stand (post on a foot) at a random column: coverage float32 [S, S]."""
  grid = np.arange(image_size) + 0.5
  rows, cols = np.meshgrid(grid, grid, indexing="ij")
  centre = rng.uniform(0.3, 0.7) * image_size
  half_width = 0.045 * image_size
  post = (np.abs(cols - centre) < half_width) & (rows > rng.uniform(0.25, 0.45) * image_size)
  foot = (np.abs(cols - centre) < 3 * half_width) & (rows > 0.9 * image_size)
  return (post | foot).astype(np.float32)


def shift_image(image: np.ndarray, rows: int, cols: int) -> np.ndarray:
  """Translates image [m, S, S, ...] by whole pixels (zeros enter at the edges)."""
  out = np.zeros_like(image)
  size = image.shape[1]
  out[:, max(rows, 0):size + min(rows, 0), max(cols, 0):size + min(cols, 0)] = \
      image[:, max(-rows, 0):size - max(rows, 0), max(-cols, 0):size - max(cols, 0)]
  return out


def blur_in_time(image: np.ndarray, num_frames: int, amount: float) -> np.ndarray:
  """Mixes each frame with its neighbours in the same clip: [n * T, S, S, C] -> same shape."""
  clips = image.reshape((-1, num_frames) + image.shape[1:])
  previous = np.concatenate([clips[:, :1], clips[:, :-1]], axis=1)
  following = np.concatenate([clips[:, 1:], clips[:, -1:]], axis=1)
  mixed = (1 - amount) * clips + 0.5 * amount * (previous + following)
  return mixed.reshape(image.shape).astype(np.float32)


def h264_round_trip(frames: np.ndarray, crf: int) -> np.ndarray:
  """uint8 clips [N, T, H, W, C] -> the same after H.264 encoding at `crf` and decoding."""
  from data import video
  flat = frames.reshape((-1,) + frames.shape[2:])
  with tempfile.TemporaryDirectory() as tmp:
    path = pathlib.Path(tmp) / "clips.mp4"
    video.write_video(path, flat, fps=25, crf=int(crf))
    back = video.read_video(path, channels=frames.shape[-1])
  back = back[:, :frames.shape[2], :frames.shape[3]]  # yuv420p pads odd sizes
  return back.reshape(frames.shape)
