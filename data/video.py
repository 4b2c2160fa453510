"""Reading, writing and preprocessing videos (the decoding under data.user_video's ingestion).

Every video here is a uint8 array [T, H, W, C] with C = 1 (grey) or C = 3 (RGB).

Formats (chosen by the path's suffix):
  .mp4 .mov .mkv .avi  H.264 (libx264, yuv420p) through the ffmpeg binary of imageio-ffmpeg.
                       yuv420p is what every player and browser accepts; it needs even sizes,
                       so an odd height or width is padded by repeating the last row or column
                       (the file is then one pixel larger). Grey frames are stored without
                       chroma and come back almost exactly (mean abs error < 1/255 at the
                       default crf 15); colour frames lose chroma detail at 4:2:0, which matters
                       at 32x32: pass `scale=2` (nearest-neighbour upscaling) for previews of
                       small colour clips.
  .gif                 Pillow; exact for grey frames and for colour frames of at most 256 colours
                       (more are quantised). Pillow merges identical consecutive frames into one
                       longer frame; the reader expands them again from the frame durations, so the
                       frame count survives a round trip.
  no suffix            a folder of PNG frames, frame_00000.png, frame_00001.png, ...

`preprocess` crops, converts to grey or RGB and area-resizes a decoded video, `cut_clips` cuts it
into clips and `list_videos` lists a folder's videos: data.user_video.load_folder turns a folder of
user videos into training clips with them (the :video variant and the real_videos builder).
"""

from __future__ import annotations

import pathlib

import imageio_ffmpeg
import numpy as np
from PIL import Image, ImageSequence

FFMPEG_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi")
VIDEO_SUFFIXES = FFMPEG_SUFFIXES + (".gif",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# Luma weights of ITU-R BT.601, the grey conversion of ffmpeg and Pillow.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
_GIF_COMMENT_PREFIX = "nlvae frame_duration_ms="


def _check_video(frames: np.ndarray, name: str = "frames") -> np.ndarray:
  frames = np.asarray(frames)
  if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] not in (1, 3):
    raise ValueError(
        f"{name} must be uint8 [T, H, W, C] with C = 1 or 3, got {frames.dtype} {frames.shape};"
        " convert with (np.clip(x, 0, 1) * 255).round().astype(np.uint8).")
  if frames.shape[0] == 0:
    raise ValueError(f"{name} has no frames (T = 0).")
  return frames


def to_uint8(frames: np.ndarray) -> np.ndarray:
  """Float frames in [0, 1] (any shape) -> uint8 in [0, 255], rounded; uint8 passes through."""
  frames = np.asarray(frames)
  if frames.dtype == np.uint8:
    return frames
  return np.round(np.clip(frames, 0.0, 1.0) * 255.0).astype(np.uint8)


def to_float(frames):
  """Stored uint8 frames {0..255} -> float32 in [0, 1], same shape: the one scaling of frames
  for the networks (numpy arrays stay numpy, JAX arrays and tracers stay JAX).

  Every dataset stores uint8 frames (physics, sprites, circles, user video); anything else is
  a caller's mistake (a double scaling), so it raises.
  """
  if frames.dtype != np.uint8:
    raise TypeError(f"to_float scales stored uint8 frames, got dtype {frames.dtype}")
  return frames.astype(np.float32) / 255.0


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
  """Nearest-neighbour upscaling of [..., H, W, C] by an integer factor."""
  if int(scale) != scale or scale < 1:
    raise ValueError(f"scale must be a positive integer, got {scale}.")
  if scale == 1:
    return frames
  return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def write_video(path, frames: np.ndarray, fps: float = 10, *, scale: int = 1,
                crf: int = 15) -> None:
  """Writes uint8 frames [T, H, W, C] (C = 1 or 3) to .mp4/.mov/.mkv/.avi, .gif or a PNG folder.

  Args:
    path: output path; its suffix picks the format (see the module docstring). A path without
      suffix becomes a folder of PNG frames.
    frames: uint8 [T, H, W, C].
    fps: frames per second (GIF stores frame durations in 1/100 s).
    scale: integer nearest-neighbour upscaling before writing (previews of small frames).
    crf: H.264 constant rate factor, 0 (lossless) .. 51; 15 is visually lossless.
  """
  frames = upscale(_check_video(frames), scale)
  if fps <= 0:
    raise ValueError(f"fps must be positive, got {fps}.")
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if suffix and suffix not in VIDEO_SUFFIXES:
    raise ValueError(f"Cannot write {path}: unknown suffix {suffix!r}; use one of "
                     f"{', '.join(VIDEO_SUFFIXES)} or no suffix for a folder of PNG frames.")
  path.parent.mkdir(parents=True, exist_ok=True)
  if suffix in FFMPEG_SUFFIXES:
    _write_ffmpeg(path, frames, fps, crf)
  elif suffix == ".gif":
    _write_gif(path, frames, fps)
  else:
    path.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames):
      Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).save(
          path / f"frame_{t:05d}.png")


def _write_ffmpeg(path: pathlib.Path, frames: np.ndarray, fps: float, crf: int) -> None:
  # yuv420p needs even sizes: repeat the last row / column where odd.
  pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
  if pad_h or pad_w:
    frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
  _, height, width, channels = frames.shape
  writer = imageio_ffmpeg.write_frames(
      str(path), (width, height), pix_fmt_in="gray" if channels == 1 else "rgb24",
      pix_fmt_out="yuv420p", fps=fps, codec="libx264", quality=None, macro_block_size=1,
      ffmpeg_log_level="error", output_params=["-crf", str(int(crf)), "-preset", "medium"])
  writer.send(None)  # Starts ffmpeg.
  try:
    for frame in frames:
      writer.send(np.ascontiguousarray(frame))
  finally:
    writer.close()


def _write_gif(path: pathlib.Path, frames: np.ndarray, fps: float) -> None:
  duration_ms = 1000.0 / fps
  images = [Image.fromarray(f[..., 0] if f.shape[-1] == 1 else f) for f in frames]
  # The comment records the frame duration so that the reader can expand the frames that Pillow
  # merged (identical consecutive frames), even when every frame is identical.
  images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0,
                 comment=f"{_GIF_COMMENT_PREFIX}{duration_ms:.6g}".encode())


def read_video(path, channels: int | None = None) -> np.ndarray:
  """Reads a video file or a folder of image frames into uint8 [T, H, W, C].

  Args:
    path: .mp4/.mov/.mkv/.avi (ffmpeg), .gif, or a folder of image frames (sorted by name).
    channels: 1 (grey, BT.601 luma), 3 (RGB), or None: 1 when every frame has R == G == B,
      else 3.

  Raises:
    FileNotFoundError: `path` does not exist.
    ValueError: unknown format, undecodable file, no frames, or frames of different sizes.
  """
  if channels not in (None, 1, 3):
    raise ValueError(f"channels must be None, 1 or 3, got {channels}.")
  path = pathlib.Path(path)
  if not path.exists():
    raise FileNotFoundError(f"No such video file or frame folder: {path}")
  suffix = path.suffix.lower()
  if path.is_dir():
    rgb = _read_frame_folder(path)
  elif suffix in FFMPEG_SUFFIXES:
    rgb = _read_ffmpeg(path)
  elif suffix == ".gif":
    rgb = _read_gif(path)
  else:
    raise ValueError(f"Cannot read {path}: unknown suffix {suffix!r}; expected one of "
                     f"{', '.join(VIDEO_SUFFIXES)} or a folder of image frames.")
  if channels == 3:
    return rgb
  is_grey = bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all())
  if channels == 1 or is_grey:
    return rgb[..., :1] if is_grey else to_grey(rgb)
  return rgb


def to_grey(frames: np.ndarray) -> np.ndarray:
  """uint8 RGB [..., 3] -> uint8 grey [..., 1] (BT.601 luma, rounded)."""
  return np.round(np.clip(_luma(frames), 0, 255)).astype(np.uint8)


def _luma(frames: np.ndarray) -> np.ndarray:
  """RGB [..., 3] -> float32 luma [..., 1]."""
  return np.asarray(frames, np.float32) @ LUMA_WEIGHTS[:, None]


def _read_ffmpeg(path: pathlib.Path) -> np.ndarray:
  try:
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    meta = next(reader)
    width, height = meta["size"]
    frames = [np.frombuffer(buffer, np.uint8).reshape(height, width, 3) for buffer in reader]
  except (OSError, RuntimeError, StopIteration, KeyError, ValueError) as error:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    raise ValueError(f"Cannot decode {path} with ffmpeg (corrupt, truncated or not a video): "
                     f"{message}") from error
  if not frames:
    raise ValueError(f"Cannot decode {path}: ffmpeg found no video frames in it.")
  return np.stack(frames)


def _read_gif(path: pathlib.Path) -> np.ndarray:
  try:
    with Image.open(path) as image:
      comment = image.info.get("comment", b"")
      frames, durations = [], []
      for frame in ImageSequence.Iterator(image):
        frames.append(np.array(frame.convert("RGB")))
        durations.append(float(frame.info.get("duration") or 0.0))
  except (OSError, ValueError, EOFError) as error:
    raise ValueError(f"Cannot decode {path} as GIF: {error}") from error
  if not frames:
    raise ValueError(f"Cannot decode {path}: the GIF has no frames.")
  unit = _gif_frame_duration(comment, durations)
  if unit > 0:
    # GIF durations are whole 1/100 s; a merged frame lasts a multiple of the frame duration.
    repeats = [max(1, int(round(d / unit))) if d > 0 else 1 for d in durations]
    frames = [f for f, r in zip(frames, repeats) for _ in range(r)]
  return np.stack(frames)


def gif_frame_rate(path) -> float | None:
  """Frames per second of a GIF (from nlvae's comment, else its shortest frame duration)."""
  try:
    with Image.open(path) as image:
      comment = image.info.get("comment", b"")
      durations = [float(frame.info.get("duration") or 0.0)
                   for frame in ImageSequence.Iterator(image)]
  except (OSError, ValueError, EOFError) as error:
    raise ValueError(f"Cannot decode {path} as GIF: {error}") from error
  unit = _gif_frame_duration(comment, durations)
  return 1000.0 / unit if unit > 0 else None


def _gif_frame_duration(comment, durations: list[float]) -> float:
  """Milliseconds per frame: from nlvae's comment, else the shortest frame duration (0: none)."""
  comment = comment.decode(errors="ignore") if isinstance(comment, bytes) else str(comment)
  if comment.startswith(_GIF_COMMENT_PREFIX):
    return float(comment[len(_GIF_COMMENT_PREFIX):])
  return min((d for d in durations if d > 0), default=0.0)


def _read_frame_folder(path: pathlib.Path) -> np.ndarray:
  files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
  if not files:
    raise ValueError(f"Frame folder {path} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
  frames = []
  for file in files:
    try:
      with Image.open(file) as image:
        frames.append(np.array(image.convert("RGB")))
    except (OSError, ValueError) as error:
      raise ValueError(f"Cannot decode frame {file}: {error}") from error
  sizes = {f.shape for f in frames}
  if len(sizes) > 1:
    raise ValueError(f"Frame folder {path} mixes frame sizes {sorted(sizes)}; resize them first.")
  return np.stack(frames)


def side_by_side(*videos: np.ndarray, gap: int = 2, gap_value: int = 255) -> np.ndarray:
  """Concatenates videos [T, H, W_i, C_i] along width with `gap` columns of `gap_value`.

  Grey videos are broadcast to RGB when mixed with colour ones. All must share T and H.
  Returns uint8 [T, H, sum W_i + gap * (n - 1), C].
  """
  if not videos:
    raise ValueError("side_by_side needs at least one video.")
  videos = [_check_video(v, f"video {i}") for i, v in enumerate(videos)]
  if len({v.shape[:2] for v in videos}) > 1:
    raise ValueError("side_by_side needs videos with equal T and H, got shapes "
                     f"{[v.shape for v in videos]}.")
  channels = max(v.shape[-1] for v in videos)
  videos = [np.broadcast_to(v, v.shape[:3] + (channels,)) for v in videos]
  num_frames, height = videos[0].shape[:2]
  spacer = np.full((num_frames, height, gap, channels), gap_value, np.uint8)
  pieces = [videos[0]]
  for video in videos[1:]:
    pieces += [spacer, video] if gap > 0 else [video]
  return np.concatenate(pieces, axis=2)


def labelled_side_by_side(videos: list[np.ndarray], labels: list[str], *, scale: int = 1,
                          gap: int = 2, band: int = 12) -> np.ndarray:
  """Videos [T, H, W_i, C_i] upscaled by `scale`, side by side, each under a text label.

  Returns uint8 [T, band + H * scale, sum W_i * scale + gaps, C] (white text on black).
  """
  from PIL import ImageDraw
  if len(videos) != len(labels):
    raise ValueError(f"{len(videos)} videos but {len(labels)} labels.")
  panels = []
  for frames, label in zip(videos, labels):
    frames = upscale(_check_video(frames), scale)
    header = Image.new("L", (frames.shape[2], band), 0)
    ImageDraw.Draw(header).text((2, 0), label, fill=255)
    header = np.broadcast_to(np.asarray(header)[None, :, :, None],
                             (frames.shape[0], band, frames.shape[2], frames.shape[3]))
    panels.append(np.concatenate([header, frames], axis=1))
  return side_by_side(*panels, gap=gap)


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
  """Resizes float or uint8 frames [T, H, W, C] to [T, height, width, C] as float32.

  Downscaling averages over each output pixel's footprint (area / box filter: antialiased);
  upscaling interpolates bilinearly.
  """
  _, in_height, in_width, _ = frames.shape
  if (in_height, in_width) == (height, width):
    return frames.astype(np.float32)
  downscale = height <= in_height and width <= in_width
  resample = Image.Resampling.BOX if downscale else Image.Resampling.BILINEAR
  out = np.empty(frames.shape[:1] + (height, width) + frames.shape[3:], np.float32)
  for t, frame in enumerate(frames):
    for c in range(frames.shape[-1]):
      channel = Image.fromarray(np.ascontiguousarray(frame[..., c], np.float32), mode="F")
      out[t, ..., c] = np.asarray(channel.resize((width, height), resample))
  return out


def preprocess(video: np.ndarray, *, image_size: int, channels: int = 1,
               crop_box: tuple[int, int, int, int] | None = None) -> np.ndarray:
  """Crops, converts and resizes a decoded uint8 video [T, H, W, 1|3] -> uint8 [T, S, S, C].

  crop_box is (top, left, height, width) in input pixels. Without one the largest centred square
  is kept, so that resizing never distorts the aspect ratio (and so the physics). With one, the box
  is resized to S x S as it is: give a square box to keep the aspect ratio.
  """
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels}.")
  _, height, width, _ = video.shape
  if crop_box is None:
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop_box = (top, left, side, side)
  top, left, box_height, box_width = (int(v) for v in crop_box)
  if top < 0 or left < 0 or box_height < 1 or box_width < 1 or top + box_height > height \
      or left + box_width > width:
    raise ValueError(f"crop box (top, left, height, width) = {tuple(crop_box)} does not fit in "
                     f"frames of {height}x{width}; pick a box inside the frame.")
  video = video[:, top:top + box_height, left:left + box_width]
  if channels == 1 and video.shape[-1] == 3:
    video = _luma(video)
  elif channels == 3 and video.shape[-1] == 1:
    video = np.repeat(video, 3, axis=-1)
  resized = resize_frames(np.asarray(video, np.float32), image_size, image_size)
  return np.round(np.clip(resized, 0, 255)).astype(np.uint8)


def cut_clips(video: np.ndarray, num_frames: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
  """All windows of `num_frames` frames starting every `stride` frames.

  Returns (clips [N, num_frames, ...], start frame per clip int64 [N]); N = 0 when the video is
  shorter than num_frames.
  """
  starts = np.arange(0, video.shape[0] - num_frames + 1, stride, dtype=np.int64)
  clips = np.stack([video[s:s + num_frames] for s in starts]) if len(starts) else \
      np.zeros((0, num_frames) + video.shape[1:], video.dtype)
  return clips, starts


def list_videos(folder) -> list[pathlib.Path]:
  """Video files (mp4, avi, gif, mov, mkv) and sub-folders of image frames in `folder`, sorted."""
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    raise FileNotFoundError(f"Video folder {folder} does not exist (or is not a folder).")
  entries = []
  for entry in sorted(folder.iterdir()):
    if entry.is_dir():
      if any(p.suffix.lower() in IMAGE_SUFFIXES for p in entry.iterdir()):
        entries.append(entry)
    elif entry.suffix.lower() in VIDEO_SUFFIXES:
      entries.append(entry)
  return entries
