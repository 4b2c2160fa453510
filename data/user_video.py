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
with <state> the system's latent (data.physics.LATENTS: angle, position, height, phase); without a
system (`system=""`, what the real_videos TFDS builder ingests with) every state's files are read.
A state's truth is used only when every ingested video has it.

The real_videos TFDS builder (data/builders.py) ingests through `load_folder` too; its config
names encode the options (`config_name`, `options_from_name`): "32_t20_grey" is the :video
variant's default ingestion.

Background removal ("median", or "quantile"): each frame is divided by its gain against the
video's median frame (lighting flicker, auto exposure), a static scene is subtracted (the median
frame; or, with "quantile", each pixel's 20% quantile over the video for a bright object, 80% for
a dark one, so that an object that lingers in one place is not taken for the scene), and the
absolute difference is scaled so that the moving object is bright on black, like nlvae's own
renders. This is what made the models learn on videos with shaded, cluttered, static scenes
(docs/user_video.md).

Results are cached in `cache_dir`, keyed by the files (names, sizes, modification times) and every
processing option, so a changed file or option rebuilds and an unchanged one loads in milliseconds.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
import re
import tempfile
import warnings
from collections.abc import Callable

import numpy as np

from data import physics, video

BACKGROUNDS = ("median", "quantile", "none")
CACHE_VERSION = 3
# The truth states there can be files of: every system's latent (data.physics.LATENTS).
TRUTH_STATES = tuple(dict.fromkeys(physics.LATENTS.values()))


@dataclasses.dataclass(frozen=True)
class IngestOptions:
  """How user videos become clips.

  Attributes:
    system: data.physics system whose latent names the truth files (angle, position, height), or
      "" for none: the truth files of every state (TRUTH_STATES) are read.
    num_frames: T, frames per clip.
    stride: frames between the starts of consecutive clips (0: T // 4, at least 1).
    image_size: S, clips are S x S.
    channels: 1 (grey) or 3 (RGB).
    crop_box: (top, left, height, width) in input pixels, or () for the largest centred square.
    background: "median" (remove each video's static background), "quantile" (the same with a
      20%/80% quantile scene: for an object that stays in one place over half the video) or
      "none".
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

  @classmethod
  def from_config(cls, data_config) -> "IngestOptions":
    """The options of a :video data config (experiments/configs/physics.py video_data_config:
    these fields and video_dir, cache_dir)."""
    return cls(system=data_config["system"], num_frames=data_config["num_frames"],
               stride=data_config["stride"], image_size=data_config["image_size"],
               channels=data_config["channels"], crop_box=tuple(data_config["crop_box"]),
               background=data_config["background"], dt=float(data_config["dt"]),
               test_fraction=float(data_config["test_fraction"]))

  def validate(self) -> "IngestOptions":
    if self.system and self.system not in physics.SYSTEMS:
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

  @property
  def truth_states(self) -> tuple[str, ...]:
    """The states whose truth files are read: the system's latent, or every state."""
    return (physics.LATENTS[self.system],) if self.system else TRUTH_STATES


@dataclasses.dataclass(frozen=True)
class VideoClips:
  """Clips of one split.

  Attributes:
    frames: uint8 [N, T, S, S, C].
    states: {state: float32 [N, T]} truth per frame, for every state whose truth file every
      ingested video has (a system's: at most its latent; {} without truth files).
    source: int64 [N], index of each clip's video in VideoDataset.videos.
    start: int64 [N], first frame of each clip in its video.
  """
  frames: np.ndarray
  states: dict[str, np.ndarray]
  source: np.ndarray
  start: np.ndarray


@dataclasses.dataclass(frozen=True)
class VideoDataset:
  """A folder of videos, ingested.

  Attributes:
    train, test: the splits.
    dt: seconds between frames.
    videos: per ingested video: name, num_frames, fps (None for frame folders), split.
    skipped: (name, reason) of every video that was not used.
    split: "videos" (whole videos held out), "time" (end of one video) or "none" (test = train).
    truth: the system's truth state (a key of the splits' states), or None (no system, or no
      truth files).
  """
  train: VideoClips
  test: VideoClips
  dt: float
  videos: list[dict]
  skipped: list[tuple[str, str]]
  split: str
  truth: str | None

  def arrays(self, split: str) -> dict[str, np.ndarray]:
    """The training loop's arrays of split "train" or "test": frames uint8 [N, T, S, S, C] and,
    where there is truth, latent float32 [N, T]."""
    clips = getattr(self, split)
    return {"frames": clips.frames} | ({} if self.truth is None
                                       else {"latent": clips.states[self.truth]})


# ---------------------------------------------------------------------------------- names
# "{S}_t{T}_{grey|rgb}[_stride{K}][_crop{top}x{left}x{h}x{w}][_test{percent}]
# [_bg{median|quantile|none}][_fps{N}]": the options of a real_videos TFDS build
# (data/builders.py) in its config name.
_NAME = re.compile(
    r"(?P<size>\d+)_t(?P<frames>\d+)_(?P<colour>grey|rgb)(?:_stride(?P<stride>\d+))?"
    r"(?:_crop(?P<crop>\d+x\d+x\d+x\d+))?(?:_test(?P<test>\d+))?"
    r"(?:_bg(?P<background>median|quantile|none))?(?:_fps(?P<fps>\d+(?:\.\d+)?))?")
NAME_FORMAT = ("{size}_t{frames}_{grey|rgb}[_stride{k}][_crop{top}x{left}x{height}x{width}]"
               "[_test{percent}][_bg{median|quantile|none}][_fps{frames per second}]")
DEFAULT_TEST_PERCENT = 20


def options_from_name(name: str) -> IngestOptions:
  """A real_videos config name (NAME_FORMAT) -> IngestOptions without a system, e.g.
  "32_t20_grey" (the :video defaults) or "64_t30_rgb_stride2_crop0x80x480x480_test10_bgnone_fps25".

  Defaults: stride T // 4, the largest centred square, 20 percent held out, median background
  removal, the frame rate of the files (frame folders need _fps{N}).
  """
  match = _NAME.fullmatch(name)
  if match is None:
    raise ValueError(f"Bad real_videos config {name!r}: expected {NAME_FORMAT!r}, e.g. "
                     "'32_t20_grey'.")
  test = int(match["test"]) if match["test"] else DEFAULT_TEST_PERCENT
  fps = float(match["fps"]) if match["fps"] else 0.0
  if not 0 <= test < 100 or int(match["frames"]) < 1 or int(match["size"]) < 1 or \
      (match["fps"] and fps <= 0):
    raise ValueError(f"Bad real_videos config {name!r}: need size, frames >= 1, a test "
                     "percentage in [0, 100) and fps > 0.")
  return IngestOptions(
      system="", num_frames=int(match["frames"]), stride=int(match["stride"] or 0),
      image_size=int(match["size"]), channels=1 if match["colour"] == "grey" else 3,
      crop_box=tuple(int(v) for v in match["crop"].split("x")) if match["crop"] else (),
      background=match["background"] or "median", dt=1.0 / fps if fps else 0.0,
      test_fraction=test / 100)


def config_name(options: IngestOptions) -> str:
  """IngestOptions -> the real_videos config name that ingests the same way (options_from_name's
  inverse, defaults left out; the system is not part of it)."""
  options = options.validate()
  percent = round(100 * options.test_fraction)
  if abs(percent - 100 * options.test_fraction) > 1e-6:
    raise ValueError(f"data.test_fraction={options.test_fraction} is not a whole percentage, "
                     "which a real_videos config name needs")
  colour = "grey" if options.channels == 1 else "rgb"
  parts = [f"{options.image_size}_t{options.num_frames}_{colour}"]
  default_stride = max(1, int(options.num_frames) // 4)  # an explicit T // 4 names no stride
  parts += [f"stride{options.clip_stride}"] if options.clip_stride != default_stride else []
  parts += ["crop" + "x".join(str(int(v)) for v in options.crop_box)] if options.crop_box else []
  parts += [f"test{percent}"] if percent != DEFAULT_TEST_PERCENT else []
  parts += [f"bg{options.background}"] if options.background != "median" else []
  parts += [f"fps{1.0 / options.dt:g}"] if options.dt else []
  name = "_".join(parts)
  if options.dt and options_from_name(name).dt != options.dt:
    raise ValueError(f"data.dt={options.dt} s is not 1 / (a frame rate of at most 6 significant "
                     "digits), which a real_videos config name needs; set --config.data.dt to "
                     "1 / fps with a rounder fps, or use :video on the folder itself")
  return name


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


# Background removal: the quantile of each pixel's values over the video that is taken for the
# static scene, on the far side from the moving object (0.2 for a bright object, 0.8 for a dark
# one). A median (0.5) would take an object that stays in one place for over half the video (a
# ball near the top of its throw, or held before it is dropped) for the scene, and subtracting it
# would leave a bright ghost there in every other frame (docs/user_video.md).
BACKGROUND_QUANTILE = 0.2


def remove_background(frames: np.ndarray, quantile: float = 0.5) -> np.ndarray:
  """A video's moving parts, bright on black: uint8 [F, S, S, C] -> uint8 [F, S, S, C].

  Each frame is divided by its gain (median over bright pixels of frame / median frame). The
  moving object's polarity is the sign that dominates the frames' extremes against the median
  frame (brighter or darker than the scene). The static scene is then each pixel's `quantile` on
  the far side from that polarity (0.5, "median": the median frame; BACKGROUND_QUANTILE,
  "quantile": an object present at a pixel in up to 80% of the frames is not taken for the
  scene). Its absolute difference from each frame, less a noise floor (3x the median absolute
  difference), is scaled so that a typical frame's brightest moving pixel is 255.
  """
  x = frames.astype(np.float32) / 255.0
  median = np.median(x, axis=0)
  lit = median > 0.05
  if lit.any():
    gain = np.median(x[:, lit] / median[lit], axis=1)
    x /= np.maximum(gain, 1e-3)[:, None, None, None]
    median = np.median(x, axis=0)
  brighter = np.sum((x.max(axis=0) - median) ** 2) >= np.sum((median - x.min(axis=0)) ** 2)
  quantile = quantile if brighter else 1.0 - quantile
  background = np.quantile(x, quantile, axis=0)
  moving = np.abs(x - background)
  moving = np.maximum(moving - 3.0 * np.median(moving), 0.0)
  peak = np.median(moving.reshape(len(moving), -1).max(axis=1))
  if peak <= 1e-6:
    return np.zeros_like(frames)
  return np.round(np.clip(moving / peak, 0, 1) * 255).astype(np.uint8)


def _ingest_one(path, options: IngestOptions, log: Callable[[str], None] | None = None
                ) -> tuple[np.ndarray, float | None, dict[str, np.ndarray]]:
  """One video -> (processed frames uint8 [F, S, S, C], fps or None, {state: truth [F]} of the
  truth files it has). A bad truth file of the system's state skips the video (ValueError);
  without a system (every state read, a real_videos build) it only drops that state (logged), so
  that a stray file of another state does not change which videos are used."""
  with warnings.catch_warnings():  # ffmpeg is a subprocess (fork + exec): safe beside JAX
    warnings.filterwarnings("ignore", message=".*os.fork.*")
    frames = video.read_video(path, channels=3)
    fps = frame_rate(path)
  if len(frames) < options.num_frames:
    raise ValueError(f"only {len(frames)} frames, fewer than one clip (data.num_frames = "
                     f"{options.num_frames})")
  truths = {}
  for state in options.truth_states:
    file = truth_path(path, state)
    if not file.exists():
      continue
    try:
      truth = np.load(file).astype(np.float32)
      if truth.shape != (len(frames),):
        raise ValueError(f"its truth file {file.name} has shape {truth.shape}, expected one "
                         f"value per frame: ({len(frames)},)")
    except (OSError, ValueError) as error:
      reason = str(error) if "truth file" in str(error) else \
          f"cannot read its truth file {file.name}: {error}"
      if options.system:
        raise ValueError(reason) from error
      log and log(f"Ignoring the {state} truth of {pathlib.Path(path).name}: {reason}")
      continue
    truths[state] = truth
  frames = video.preprocess(frames, image_size=options.image_size, channels=options.channels,
                            crop_box=tuple(options.crop_box) or None)
  if options.background != "none":
    frames = remove_background(frames, 0.5 if options.background == "median"
                               else BACKGROUND_QUANTILE)
  return frames, fps, truths


# ---------------------------------------------------------------------------------------- cache
def _files(folder: pathlib.Path, states: tuple[str, ...]) -> list[tuple[str, int, int]]:
  """(name relative to folder, size, modification time ns) of every video file, frame of a frame
  folder and truth file of `states` in `folder`."""
  files = []
  for entry in video.list_videos(folder):
    members = sorted(entry.iterdir()) if entry.is_dir() else [entry]
    members += [truth_path(entry, state) for state in states]
    for member in members:
      if member.exists():
        stat = member.stat()
        files.append((os.path.relpath(member, folder), stat.st_size, stat.st_mtime_ns))
  return files


def files_fingerprint(folder, states: tuple[str, ...] = TRUTH_STATES) -> str:
  """A hash of the videos and truth files in `folder` (names, sizes, modification times; not
  where the folder is): what a real_videos build records of its manual folder."""
  return hashlib.sha256(json.dumps(_files(pathlib.Path(folder), states)).encode()).hexdigest()[:16]


def _fingerprint(folder: pathlib.Path, options: IngestOptions) -> str:
  key = json.dumps([CACHE_VERSION, str(folder.resolve()), _files(folder, options.truth_states),
                    dataclasses.asdict(options)], sort_keys=True, default=list)
  return hashlib.sha256(key.encode()).hexdigest()[:20]


def default_cache_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("NLVAE_CACHE", pathlib.Path.home() / ".cache" / "nlvae"))


def _save(path: pathlib.Path, dataset: VideoDataset) -> None:
  arrays = {}
  for name in ("train", "test"):
    clips = getattr(dataset, name)
    arrays.update({f"{name}/frames": clips.frames, f"{name}/source": clips.source,
                   f"{name}/start": clips.start})
    arrays.update({f"{name}/states/{state}": truth for state, truth in clips.states.items()})
  meta = dict(dt=dataset.dt, videos=dataset.videos, skipped=dataset.skipped, split=dataset.split,
              truth=dataset.truth)
  path.parent.mkdir(parents=True, exist_ok=True)
  with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as tmp:
    np.savez(tmp, meta=np.array(json.dumps(meta)), **arrays)
  os.replace(tmp.name, path)  # atomic: a killed build leaves no half-written cache


def _load(path: pathlib.Path) -> VideoDataset:
  with np.load(path) as z:
    meta = json.loads(str(z["meta"]))
    splits = {name: VideoClips(
        frames=z[f"{name}/frames"], source=z[f"{name}/source"], start=z[f"{name}/start"],
        states={key.rsplit("/", 1)[1]: z[key] for key in z.files
                if key.startswith(f"{name}/states/")})
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


def _cut(frames, truths, source, num_frames, stride, first=0, last=None) -> VideoClips:
  """The clips of frames[first:last] of video `source`, with their truth ({state: [F]})."""
  last = len(frames) if last is None else last
  clips, starts = video.cut_clips(frames[first:last], num_frames, stride)
  starts = starts + first
  states = {state: np.stack([truth[s:s + num_frames] for s in starts]) if len(starts)
            else np.zeros((0, num_frames), np.float32) for state, truth in truths.items()}
  return VideoClips(clips, states, np.full(len(starts), source, np.int64), starts)


def _concat(pieces: list[VideoClips], options) -> VideoClips:
  size, channels, frames = options.image_size, options.channels, options.num_frames
  if not pieces:
    return VideoClips(np.zeros((0, frames, size, size, channels), np.uint8), {},
                      np.zeros((0,), np.int64), np.zeros((0,), np.int64))
  return VideoClips(np.concatenate([p.frames for p in pieces]),
                    {state: np.concatenate([p.states[state] for p in pieces])
                     for state in pieces[0].states},
                    np.concatenate([p.source for p in pieces]),
                    np.concatenate([p.start for p in pieces]))


def load_folder(folder, options: IngestOptions, *, cache_dir=None, cache: bool = True,
                log: Callable[[str], None] | None = print) -> VideoDataset:
  """Ingests (or loads from the cache) every video of `folder`; see the module docstring.

  cache: False neither reads nor writes the cache (a real_videos build, which stores the result
  itself).

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
  cache_file = pathlib.Path(cache_dir or default_cache_dir()) / "videos" / \
      f"{_fingerprint(folder, options)}.npz" if cache else None
  if cache_file is not None and cache_file.exists():
    try:
      dataset = _load(cache_file)
      for name, reason in dataset.skipped:
        log and log(f"Skipping {name}: {reason}")
      return dataset
    except (OSError, ValueError, KeyError):
      log and log(f"Rebuilding the unreadable cache {cache_file}.")
  decoded, skipped = [], []
  for entry in entries:
    name = os.path.relpath(entry, folder)
    try:
      decoded.append((name, *_ingest_one(entry, options, log)))
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
                       "--config.data.dt=SECONDS_PER_FRAME (a real_videos build: end the config "
                       "name with _fps{FRAMES_PER_SECOND})")
    if max(known) > 1.01 * min(known):
      raise ValueError(f"the videos have different frame rates ({sorted(set(known))} fps); "
                       "resample them to one rate or set --config.data.dt (a real_videos build: "
                       "_fps{N})")
    dt = 1.0 / float(np.mean(known))
  kept = []  # the states whose truth every video has
  for state in options.truth_states:
    lacking = [name for name, *_, truths in decoded if state not in truths]
    if len(lacking) < len(decoded) and lacking:
      log and log(f"Ignoring the truth files: {', '.join(lacking)} has no <stem>.{state}.npy.")
    elif not lacking:
      kept.append(state)
  num_frames, stride = options.num_frames, options.clip_stride
  train, test, videos = [], [], []
  held_out = set(held_out_videos(len(decoded), options.test_fraction).tolist()) \
      if len(decoded) > 1 else set()
  split = "videos" if held_out else "time"
  for i, (name, frames, fps, truths) in enumerate(decoded):
    truths = {state: truths[state] for state in kept}
    info = dict(name=name, num_frames=len(frames), fps=fps)
    if i in held_out:
      test.append(_cut(frames, truths, i, num_frames, stride))
      info["split"] = "test"
    elif len(decoded) > 1 or options.test_fraction == 0:
      train.append(_cut(frames, truths, i, num_frames, stride))
      info["split"] = "train"
    else:  # one video: its end is the test split
      boundary = int(np.floor(len(frames) * (1 - options.test_fraction)))
      if boundary >= num_frames and len(frames) - boundary >= num_frames:
        train.append(_cut(frames, truths, i, num_frames, stride, 0, boundary))
        test.append(_cut(frames, truths, i, num_frames, stride, boundary))
        info["split"] = f"train frames [0, {boundary}), test frames [{boundary}, {len(frames)})"
      else:
        train.append(_cut(frames, truths, i, num_frames, stride))
        info["split"] = "train and test"
    videos.append(info)
  train_clips, test_clips = _concat(train, options), _concat(test, options)
  if not len(test_clips.frames):
    log and log(f"Too few frames to hold any out (need 2 x data.num_frames = {2 * num_frames} in "
                "one video, or several videos): evaluating on the training clips.")
    test_clips, split = train_clips, "none"
  system_state = physics.LATENTS[options.system] if options.system else None
  dataset = VideoDataset(train=train_clips, test=test_clips, dt=dt, videos=videos,
                         skipped=skipped, split=split,
                         truth=system_state if system_state in kept else None)
  if cache_file is not None:
    try:
      _save(cache_file, dataset)
    except OSError as error:
      log and log(f"Not caching the ingested videos ({cache_file.parent}: {error.strerror}).")
  return dataset
