"""A folder of the user's own videos -> training and held-out clips for the physics experiments.

`load_folder(folder, options)` decodes every video of `folder` (mp4, avi, mov, mkv, gif, folders of
image frames; see data.video), keeps its frame rate, crops / converts / resizes it, removes its
static background (optional, on by default), cuts clips of T frames every `stride` frames, and
splits them into train and test:
  - several videos: whole videos are held out (a fixed choice, independent of the training seed);
  - one video: the last `test_fraction` of its frames (clips never straddle the boundary); a video
    too short for that is used for both, with a warning.
A video that cannot be decoded, or is shorter than T frames, is skipped with a one-line reason; the
rest is used.

Ground truth (optional): a per-frame array `<stem>.<state>.npy` beside the video (`pendulum.mp4`
-> `pendulum.angle.npy`; a frame folder `take1/` -> `take1.angle.npy`), one value per video frame,
with <state> the system's latent (data.physics.LATENTS: angle, position, height, phase). Truth is
used only when every ingested video has it.

Background removal ("median"): each frame is divided by its gain against the video's median frame
(lighting flicker, auto exposure), the median frame is subtracted, and the absolute difference is
scaled so that the moving object is bright on black, like nlvae's own renders. This is what made the
models learn on videos with shaded, cluttered, static scenes (docs/user_video.md).

Results are cached in `cache_dir`, keyed by the files (names, sizes, modification times) and every
processing option, so a changed file or option rebuilds and an unchanged one loads in milliseconds.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import tempfile
import warnings
from collections.abc import Callable

import numpy as np

from data import physics, video

BACKGROUNDS = ("median", "none")
CACHE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class IngestOptions:
  """How user videos become clips.

  Attributes:
    system: data.physics system whose latent names the truth files (angle, position, height).
    num_frames: T, frames per clip.
    stride: frames between the starts of consecutive clips (0: T // 4, at least 1).
    image_size: S, clips are S x S.
    channels: 1 (grey) or 3 (RGB).
    crop_box: (top, left, height, width) in input pixels, or () for the largest centred square.
    background: "median" (remove each video's static background) or "none".
    dt: seconds between frames; 0 takes it from the videos' frame rate.
    test_fraction: share of the videos (several videos) or of the frames (one video) held out.
  """
  system: str
  num_frames: int = 20
  stride: int = 0
  image_size: int = 32
  channels: int = 1
  crop_box: tuple = ()
  background: str = "median"
  dt: float = 0.0
  test_fraction: float = 0.2

  def validate(self) -> "IngestOptions":
    if self.system not in physics.SYSTEMS:
      raise ValueError(f"data.system={self.system!r} is not one of {', '.join(physics.SYSTEMS)}")
    for name in ("num_frames", "image_size"):
      value = getattr(self, name)
      if int(value) != value or value < 1:
        raise ValueError(f"data.{name}={value!r} must be a positive integer")
    if int(self.stride) != self.stride or self.stride < 0:
      raise ValueError(f"data.stride={self.stride!r} must be a non-negative integer (0 = T // 4)")
    if self.channels not in (1, 3):
      raise ValueError(f"data.channels={self.channels!r} must be 1 (grey) or 3 (RGB)")
    if self.crop_box and len(self.crop_box) != 4:
      raise ValueError(f"data.crop_box={tuple(self.crop_box)!r} must be (top, left, height, "
                       "width) in input pixels, or () for the centred square")
    if self.background not in BACKGROUNDS:
      raise ValueError(f"data.background={self.background!r} must be one of {BACKGROUNDS}")
    if not self.dt >= 0:
      raise ValueError(f"data.dt={self.dt!r} must be >= 0 seconds (0 = from the frame rate)")
    if not 0 <= self.test_fraction < 1:
      raise ValueError(f"data.test_fraction={self.test_fraction!r} must be in [0, 1)")
    return self

  @property
  def clip_stride(self) -> int:
    return int(self.stride) or max(1, int(self.num_frames) // 4)


@dataclasses.dataclass(frozen=True)
class VideoClips:
  """Clips of one split.

  Attributes:
    frames: uint8 [N, T, S, S, C].
    latent: float32 [N, T] truth per frame, or None without truth files.
    source: int64 [N], index of each clip's video in VideoDataset.videos.
    start: int64 [N], first frame of each clip in its video.
  """
  frames: np.ndarray
  latent: np.ndarray | None
  source: np.ndarray
  start: np.ndarray

  def arrays(self) -> dict[str, np.ndarray]:
    """The training loop's arrays: frames (and latent where there is truth)."""
    return {"frames": self.frames} | ({} if self.latent is None else {"latent": self.latent})


@dataclasses.dataclass(frozen=True)
class VideoDataset:
  """A folder of videos, ingested.

  Attributes:
    train, test: the splits.
    dt: seconds between frames.
    videos: per ingested video: name, num_frames, fps (None for frame folders), split.
    skipped: (name, reason) of every video that was not used.
    split: "videos" (whole videos held out), "time" (end of one video) or "none" (test = train).
    truth: name of the truth state, or None.
  """
  train: VideoClips
  test: VideoClips
  dt: float
  videos: list[dict]
  skipped: list[tuple[str, str]]
  split: str
  truth: str | None


# ------------------------------------------------------------------------------------- decoding
def frame_rate(path) -> float | None:
  """Frames per second stored in a video file; None for frame folders (and unknown rates)."""
  path = pathlib.Path(path)
  if path.is_dir():
    return None
  if path.suffix.lower() == ".gif":
    return video.gif_frame_rate(path)
  import imageio_ffmpeg
  try:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
  except (OSError, RuntimeError, StopIteration) as error:
    raise ValueError(f"cannot read the frame rate: {str(error).strip().splitlines()[:1]}") from error
  fps = meta.get("fps")
  return float(fps) if fps and np.isfinite(fps) and fps > 0 else None


def truth_path(path, state: str) -> pathlib.Path:
  """`<folder>/<stem>.<state>.npy` beside a video file or frame folder."""
  path = pathlib.Path(path)
  stem = path.name if path.is_dir() else path.stem
  return path.parent / f"{stem}.{state}.npy"


def remove_background(frames: np.ndarray) -> np.ndarray:
  """A video's moving parts, bright on black: uint8 [F, S, S, C] -> uint8 [F, S, S, C].

  Each frame is divided by its gain (median over bright pixels of frame / median frame), the
  median frame is subtracted, a noise floor (3x the median absolute difference) removed, and the
  result scaled so that a typical frame's brightest moving pixel is 255.
  """
  x = frames.astype(np.float32) / 255.0
  background = np.median(x, axis=0)
  lit = background > 0.05
  if lit.any():
    gain = np.median(x[:, lit] / background[lit], axis=1)
    x /= np.maximum(gain, 1e-3)[:, None, None, None]
    background = np.median(x, axis=0)
  moving = np.abs(x - background)
  moving = np.maximum(moving - 3.0 * np.median(moving), 0.0)
  peak = np.median(moving.reshape(len(moving), -1).max(axis=1))
  if peak <= 1e-6:
    return np.zeros_like(frames)
  return np.round(np.clip(moving / peak, 0, 1) * 255).astype(np.uint8)


def _ingest_one(path, options: IngestOptions) -> tuple[np.ndarray, float | None, np.ndarray | None]:
  """One video -> (processed frames uint8 [F, S, S, C], fps or None, truth [F] or None)."""
  with warnings.catch_warnings():  # ffmpeg is a subprocess (fork + exec): safe beside JAX
    warnings.filterwarnings("ignore", message=".*os.fork.*")
    frames = video.read_video(path, channels=3)
    fps = frame_rate(path)
  if len(frames) < options.num_frames:
    raise ValueError(f"only {len(frames)} frames, fewer than one clip (data.num_frames = "
                     f"{options.num_frames})")
  truth = None
  file = truth_path(path, physics.LATENTS[options.system])
  if file.exists():
    try:
      truth = np.load(file).astype(np.float32)
    except (OSError, ValueError) as error:
      raise ValueError(f"cannot read its truth file {file.name}: {error}") from error
    if truth.shape != (len(frames),):
      raise ValueError(f"its truth file {file.name} has shape {truth.shape}, expected one value "
                       f"per frame: ({len(frames)},)")
  frames = video.preprocess(frames, image_size=options.image_size, channels=options.channels,
                            crop_box=tuple(options.crop_box) or None)
  if options.background == "median":
    frames = remove_background(frames)
  return frames, fps, truth


# ---------------------------------------------------------------------------------------- cache
def _fingerprint(folder: pathlib.Path, entries: list[pathlib.Path], options: IngestOptions) -> str:
  files = []
  for entry in entries:
    members = sorted(entry.iterdir()) if entry.is_dir() else [entry]
    members.append(truth_path(entry, physics.LATENTS[options.system]))
    for member in members:
      if member.exists():
        stat = member.stat()
        files.append((os.path.relpath(member, folder), stat.st_size, stat.st_mtime_ns))
  key = json.dumps([CACHE_VERSION, str(folder.resolve()), files, dataclasses.asdict(options)],
                   sort_keys=True, default=list)
  return hashlib.sha256(key.encode()).hexdigest()[:20]


def default_cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("NLVAE_CACHE", pathlib.Path.home() / ".cache" / "nlvae"))


def _save(path: pathlib.Path, dataset: VideoDataset) -> None:
  arrays = {}
  for name in ("train", "test"):
    clips = getattr(dataset, name)
    arrays.update({f"{name}/frames": clips.frames, f"{name}/source": clips.source,
                   f"{name}/start": clips.start})
    if clips.latent is not None:
      arrays[f"{name}/latent"] = clips.latent
  meta = dict(dt=dataset.dt, videos=dataset.videos, skipped=dataset.skipped, split=dataset.split,
              truth=dataset.truth)
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
  os.replace(tmp.name, path)  # atomic: a killed build leaves no half-written cache


def _load(path: pathlib.Path) -> VideoDataset:
  with np.load(path) as z:
    meta = json.loads(str(z["meta"]))
    splits = {name: VideoClips(frames=z[f"{name}/frames"],
                               latent=z[f"{name}/latent"] if f"{name}/latent" in z else None,
                               source=z[f"{name}/source"], start=z[f"{name}/start"])
              for name in ("train", "test")}
  return VideoDataset(**splits, dt=meta["dt"], videos=meta["videos"],
                      skipped=[tuple(s) for s in meta["skipped"]], split=meta["split"],
                      truth=meta["truth"])


# ---------------------------------------------------------------------------------- the folder
def held_out_videos(num_videos: int, test_fraction: float) -> np.ndarray:
  """Indices of the held-out videos (at least one, and at least one left to train on)."""
  count = min(num_videos - 1, max(1, int(round(test_fraction * num_videos))))
  order = np.random.default_rng(1_234_567).permutation(num_videos)
  return np.sort(order[:count]) if test_fraction > 0 else np.zeros((0,), np.int64)


def _cut(frames, truth, source, num_frames, stride, first=0, last=None):
  """Clips of frames[first:last] -> VideoClips pieces (frames, latent or None, source, start)."""
  last = len(frames) if last is None else last
  clips, starts = video.cut_clips(frames[first:last], num_frames, stride)
  starts = starts + first
  latent = None if truth is None else np.stack([truth[s:s + num_frames] for s in starts]) \
      if len(starts) else np.zeros((0, num_frames), np.float32)
  return clips, latent, np.full(len(starts), source, np.int64), starts


def _concat(pieces, options) -> VideoClips:
  size, channels, frames = options.image_size, options.channels, options.num_frames
  if not pieces:
    return VideoClips(np.zeros((0, frames, size, size, channels), np.uint8), None,
                      np.zeros((0,), np.int64), np.zeros((0,), np.int64))
  clips, latent, source, start = zip(*pieces)
  has_truth = all(x is not None for x in latent)
  return VideoClips(np.concatenate(clips), np.concatenate(latent) if has_truth else None,
                    np.concatenate(source), np.concatenate(start))


def load_folder(folder, options: IngestOptions, *, cache_dir=None,
                log: Callable[[str], None] | None = print) -> VideoDataset:
  """Ingests (or loads from the cache) every video of `folder`; see the module docstring.

  Raises:
    FileNotFoundError: the folder does not exist.
    ValueError: no usable video, inconsistent frame rates, a bad truth file or option.
  """
  options = options.validate()
  folder = pathlib.Path(folder)
  entries = video.list_videos(folder)
  if not entries:
    raise ValueError(f"no videos in {folder} (expected {', '.join(video.VIDEO_SUFFIXES)} files "
                     "or folders of image frames)")
  cache = pathlib.Path(cache_dir or default_cache_dir()) / "videos" / \
      f"{_fingerprint(folder, entries, options)}.npz"
  if cache.exists():
    try:
      dataset = _load(cache)
      for name, reason in dataset.skipped:
        log and log(f"Skipping {name}: {reason}")
      return dataset
    except (OSError, ValueError, KeyError):
      log and log(f"Rebuilding the unreadable cache {cache}.")
  decoded, skipped = [], []
  for entry in entries:
    name = os.path.relpath(entry, folder)
    try:
      decoded.append((name, *_ingest_one(entry, options)))
    except ValueError as error:
      reason = " ".join(str(error).split())
      skipped.append((name, reason))
      log and log(f"Skipping {name}: {reason}")
  if not decoded:
    raise ValueError(f"no usable video in {folder}: " +
                     "; ".join(f"{n}: {r}" for n, r in skipped))
  rates = {name: fps for name, _, fps, _ in decoded}
  if options.dt > 0:
    dt = float(options.dt)
  else:
    known = [fps for fps in rates.values() if fps]
    if len(known) < len(rates):
      missing = [n for n, fps in rates.items() if not fps]
      raise ValueError(f"no frame rate for {', '.join(missing)} (frame folders have none); set "
                       "--config.data.dt=SECONDS_PER_FRAME")
    if max(known) > 1.01 * min(known):
      raise ValueError(f"the videos have different frame rates ({sorted(set(known))} fps); "
                       "resample them to one rate or set --config.data.dt")
    dt = 1.0 / float(np.mean(known))
  truths = [truth for *_, truth in decoded]
  state = physics.LATENTS[options.system]
  if any(t is not None for t in truths) and not all(t is not None for t in truths):
    lacking = [n for n, *_, t in decoded if t is None]
    log and log(f"Ignoring the truth files: {', '.join(lacking)} has no <stem>.{state}.npy.")
    truths = [None] * len(decoded)
  num_frames, stride = options.num_frames, options.clip_stride
  train, test, videos = [], [], []
  held_out = set(held_out_videos(len(decoded), options.test_fraction).tolist()) \
      if len(decoded) > 1 else set()
  split = "videos" if held_out else "time"
  for i, ((name, frames, fps, _), truth) in enumerate(zip(decoded, truths)):
    info = dict(name=name, num_frames=len(frames), fps=fps)
    if i in held_out:
      test.append(_cut(frames, truth, i, num_frames, stride))
      info["split"] = "test"
    elif len(decoded) > 1 or options.test_fraction == 0:
      train.append(_cut(frames, truth, i, num_frames, stride))
      info["split"] = "train"
    else:  # one video: its end is the test split
      boundary = int(np.floor(len(frames) * (1 - options.test_fraction)))
      if boundary >= num_frames and len(frames) - boundary >= num_frames:
        train.append(_cut(frames, truth, i, num_frames, stride, 0, boundary))
        test.append(_cut(frames, truth, i, num_frames, stride, boundary))
        info["split"] = f"train frames [0, {boundary}), test frames [{boundary}, {len(frames)})"
      else:
        train.append(_cut(frames, truth, i, num_frames, stride))
        info["split"] = "train and test"
    videos.append(info)
  train_clips, test_clips = _concat(train, options), _concat(test, options)
  if not len(test_clips.frames):
    log and log(f"Too few frames to hold any out (need 2 x data.num_frames = {2 * num_frames} in "
                "one video, or several videos): evaluating on the training clips.")
    test_clips, split = train_clips, "none"
  dataset = VideoDataset(train=train_clips, test=test_clips, dt=dt, videos=videos,
                         skipped=skipped, split=split,
                         truth=state if train_clips.latent is not None else None)
  try:
    _save(cache, dataset)
  except OSError as error:
    log and log(f"Not caching the ingested videos ({cache.parent}: {error.strerror}).")
  return dataset
