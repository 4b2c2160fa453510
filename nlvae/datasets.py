"""Training data for the one training loop, chosen by `config.data.name`.

Each loader takes the data config and returns (train, test, info): train and test are dicts of
numpy arrays with a shared leading example axis (what data.pipeline.Batches consumes), frames
uint8; info is a DatasetInfo, the facts the model needs (image shape, frame interval, the
generating Clips for re-simulation, ...). Generation is procedural and seeded: the same config
gives the same bytes.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from data import circles, physics, sprites, user_video
from data.pipeline import TEST_SEED_OFFSET, read_all


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a loader tells the model about its dataset (fields a dataset does not have are None).

  Attributes:
    image_shape: (H, W, C) of one frame.
    num_frames: T, frames per example: clips [N, T, H, W, C] (physics, video, circles_dynamic),
      2 for sprite pairs; None for single images [N, H, W, C] (circles_static).
    system: the physics system ("spring", "pendulum", "falling", "pulsar") of physics, tfds and
      video data.
    dt: seconds between frames (physics, tfds physics and real_videos, video).
    test_clips: the test split as data.physics.Clips, for re-simulating it under interventions
      (physics, tfds); None for video (counterfactuals are then the model's alone).
    train_params: physical parameters of every training clip, {name: float32 [N]} (physics).
    video: the ingested user videos (data.user_video.VideoDataset: names, frame rates, skipped
      files, split kind, truth state, each clip's source video and first frame; video data and
      tfds real_videos).
    factor_names: names of the ground-truth factors of "factors" [..., F] (sprites, circles).
    factor_sizes: number of values of each factor (sprites: its grid).
    transitions: the canonical name of the sprite transitions ("laplace", "uniform", "natural").
    ground_truth: a sampler of the factor grid for the disentanglement metrics
      (data.sprites.SpritesGroundTruth).
  """
  image_shape: tuple[int, int, int]
  num_frames: int | None = None
  system: str | None = None
  dt: float | None = None
  test_clips: physics.Clips | None = None
  train_params: dict[str, np.ndarray] | None = None
  video: user_video.VideoDataset | None = None
  factor_names: tuple[str, ...] | None = None
  factor_sizes: tuple[int, ...] | None = None
  transitions: str | None = None
  ground_truth: Any = None

  def __post_init__(self):
    object.__setattr__(self, "image_shape", tuple(int(n) for n in self.image_shape))
    if len(self.image_shape) != 3:
      raise ValueError(f"DatasetInfo.image_shape must be (H, W, C), got {self.image_shape}")


def load(data_config):
  """(train, test, info) of the dataset named by data_config.name (see LOADERS)."""
  name = data_config.name
  if name not in LOADERS:
    raise ValueError(f"unknown dataset {name!r}; valid: {sorted(LOADERS)}")
  return LOADERS[name](data_config)


def clips_to_arrays(clips: physics.Clips) -> dict[str, np.ndarray]:
  """Clips -> {"frames": uint8 [N,T,H,W,C], "latent": float32 [N,T], "state/<name>": [N,T]}."""
  arrays = {"frames": clips.frames, "latent": clips.latent}
  arrays.update({f"state/{k}": v for k, v in clips.states.items()})
  return arrays


def load_physics(data_config):
  """Procedural physics clips (data.physics): config fields system, num_train, num_test, seed,
  options (passed to data.physics.generate)."""
  options = dict(data_config.options)
  train = physics.generate(data_config.system, data_config.num_train, data_config.seed, **options)
  test = physics.generate(data_config.system, data_config.num_test,
                          data_config.seed + TEST_SEED_OFFSET, **options)
  info = DatasetInfo(system=data_config.system, dt=train.dt, image_shape=train.frames.shape[2:],
                     num_frames=train.frames.shape[1], test_clips=test, train_params=train.params)
  return clips_to_arrays(train), clips_to_arrays(test), info


def load_video(data_config):
  """A folder of the user's videos (data.user_video): config fields system, video_dir,
  num_frames, stride, image_size, channels, crop_box, background, dt, test_fraction, cache_dir.

  info has test_clips = None (no re-simulation: counterfactuals are the model's alone) and
  `video`: the ingested data.user_video.VideoDataset (videos, skipped files, split kind, truth).
  """
  if not data_config.video_dir:
    raise ValueError("data.video_dir is empty; pass --config.data.video_dir=FOLDER, a folder of "
                     "your videos (mp4, avi, mov, mkv, gif or folders of frames)")
  dataset = user_video.load_folder(data_config.video_dir,
                                   user_video.IngestOptions.from_config(data_config),
                                   cache_dir=data_config.cache_dir or None)
  return video_arrays(dataset, data_config.system)


def video_arrays(dataset: user_video.VideoDataset, system: str):
  """Ingested user videos -> (train, test, info) of the `system` experiment (load_video, and
  load_tfds of a real_videos dataset): {"frames" uint8 [N, T, S, S, C], "latent" float32 [N, T]
  where there is truth} per split, info with dt, video = dataset, test_clips None."""
  train, test = dataset.arrays("train"), dataset.arrays("test")
  info = DatasetInfo(system=system, dt=dataset.dt, image_shape=train["frames"].shape[2:],
                     num_frames=train["frames"].shape[1], video=dataset)
  return train, test, info


class MappedSource:
  """A random-access source (len, [i], __getitems__) whose examples pass through `fn`: a tfds
  data_source read as the in-memory loader's examples (same keys and dtypes)."""

  def __init__(self, source, fn):
    self.source, self.fn = source, fn

  def __len__(self) -> int:
    return len(self.source)

  def __getitem__(self, index):
    return self.fn(self.source[index])

  def __getitems__(self, keys):
    if hasattr(self.source, "__getitems__"):
      return [self.fn(example) for example in self.source.__getitems__(keys)]
    return [self[key] for key in keys]


def _sprite_arrays(stored) -> dict[str, np.ndarray]:
  """A sprites builder's example(s) -> load_sprites' {"frames", "factors" int32}."""
  return {"frames": np.asarray(stored["frames"]),
          "factors": np.asarray(stored["factors"]).astype(np.int32)}


def _circles_static_arrays(stored) -> dict[str, np.ndarray]:
  """A circles_static builder's example(s) -> load_circles_static's {"frames", "factors"}."""
  return {"frames": np.asarray(stored["images"]), "factors": np.asarray(stored["factors"])}


def _circles_dynamic_arrays(stored) -> dict[str, np.ndarray]:
  """A circles_dynamic builder's example(s) -> load_circles_dynamic's {"frames", "factors"}."""
  return {"frames": np.asarray(stored["frames"]), "factors": np.asarray(stored["factors"])}


# A built dataset's examples -> the in-memory loader's (one example or a stacked split).
_TFDS_ARRAYS = {"sprites": _sprite_arrays, "circles_static": _circles_static_arrays,
                "circles_dynamic": _circles_dynamic_arrays}


def _tfds_family(name: str) -> str:
  """"sprites_lap/rate1" -> "sprites": physics, sprites, circles_static, circles_dynamic or
  real_videos; a ValueError naming the datasets the training loop reads for any other."""
  from data import builders
  dataset = name.split("/", 1)[0]
  if dataset in builders.DATASETS:
    if dataset.startswith(("physics_", "sprites_")):
      return dataset.split("_", 1)[0]
    if dataset in _TFDS_ARRAYS or dataset == "real_videos":
      return dataset
  raise ValueError(f"data.dataset={name!r}: the tfds input path reads "
                   f"{', '.join(builders.DATASETS)}; set --config.data.dataset=NAME/CONFIG")


def _check_video_system(name: str, family: str, system) -> None:
  """A real_videos dataset needs data.system (the :video,tfds variant sets it with the video
  model settings); other datasets take none. One line naming the variant otherwise."""
  if family == "real_videos" and not system:
    raise ValueError(f"data.dataset={name!r} is user video: train it with the :video,tfds "
                     "variant (the video model settings and data.system), e.g. "
                     "--config=experiments/pendulum.py:video,tfds "
                     f"--config.data.dataset={name}")
  if family == "real_videos" and system not in physics.SYSTEMS:
    raise ValueError(f"data.system={system!r} is not one of {', '.join(physics.SYSTEMS)}")
  if family != "real_videos" and system:
    raise ValueError(f"data.dataset={name!r}: the :video,tfds variant reads a built real_videos "
                     "dataset (--config.data.dataset=real_videos/CONFIG); for this dataset use "
                     "the :tfds variant")


def load_tfds(data_config):
  """A dataset built by `python -m data.build` (array_record, read without TensorFlow): config
  fields dataset ("physics_pendulum/32_t20", "sprites_lap/rate1", "sprites_loc/default",
  "circles_static/32", "circles_dynamic/32_t10", "real_videos/32_t20_grey", ...), data_dir
  ("" = TFDS' default), and for real_videos only system (whose truth state is the latent).

  The train split stays on disk (a tfds data_source: data.pipeline.Batches reads its batches);
  the test split is read into memory. Physics: the test split is rebuilt as Clips, so evaluation
  re-simulates it exactly as it does procedural data. Sprites and circles: both splits give the
  in-memory loader's examples (load_sprites, load_circles_static, load_circles_dynamic: same
  keys and dtypes; the train split through a MappedSource) and the same DatasetInfo; the
  sprites transitions are the dataset's (its metadata), whatever data.transitions says.
  real_videos: what load_video gives for the same folder and options (video_arrays of
  data.builders.read_video_dataset), both splits in memory: evaluation encodes every training
  clip (the physical scale, constants re-fitted to whole videos).
  """
  from data import builders
  name, data_dir = data_config.dataset, data_config.data_dir or None
  family = _tfds_family(name)
  system = data_config.get("system")
  _check_video_system(name, family, system)
  if family == "real_videos":
    return video_arrays(builders.read_video_dataset(name, system, data_dir), system)
  train = builders.load(name, "train", data_dir)
  test_source = builders.load(name, "test", data_dir)
  test = read_all(test_source)
  stored = test.get("frames", test.get("images"))
  if stored is not None and stored.dtype != np.uint8:
    raise ValueError(f"data.dataset={name!r} stores {stored.dtype} frames (built before frames "
                     f"were stored as uint8); rebuild it: python -m data.build "
                     f"--dataset={name} --data_dir=... (then rerun)")
  metadata = builders.metadata(name, data_dir)
  if family in _TFDS_ARRAYS:
    to_arrays = _TFDS_ARRAYS[family]
    test = to_arrays(test)
    if family == "sprites":  # datasets built before the metadata held it: the builder's
      transitions = metadata.get("transitions", builders.BUILDERS[name.split("/")[0]].TRANSITIONS)
      info = sprites_info(transitions)
    else:
      info = circles_info(test["frames"])
    return MappedSource(train, to_arrays), test, info
  options = dict(metadata["generator_options"])
  options = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
  clips = physics.Clips(system=metadata["system"], frames=test["frames"], latent=test["latent"],
                        states=test["states"], params=test["params"], initial=test["initial"],
                        dt=float(metadata["dt"]), render_seed=test["render_seed"],
                        options=options)
  info = DatasetInfo(system=clips.system, dt=clips.dt, image_shape=clips.frames.shape[2:],
                     num_frames=clips.frames.shape[1], test_clips=clips)
  return train, clips_to_arrays(clips), info


def _positive_int(data_config, field: str) -> int:
  value = data_config[field]
  if int(value) != value or value < 1:
    raise ValueError(f"data.{field} must be a positive integer, got {value!r}.")
  return int(value)


def circles_info(frames: np.ndarray) -> DatasetInfo:
  """The DatasetInfo of circles images [N, H, W, C] (num_frames None) or clips [N, T, H, W, C]
  (load_circles_static, load_circles_dynamic, and load_tfds of a circles_* dataset)."""
  return DatasetInfo(image_shape=frames.shape[-3:],
                     num_frames=frames.shape[1] if frames.ndim == 5 else None,
                     factor_names=circles.FACTOR_NAMES)


def load_circles_static(data_config):
  """Static circle images. Config fields: num_train, num_test, seed, circle_levels (16),
  gauss_levels (32).

  Returns (train, test, info): train / test {"frames": uint8 [N, 32, 32, 1], "factors":
  float32 [N, 4] in [0, 1]}, distinct grid points (no image is in both), in random order; info
  image_shape, num_frames None, factor_names.
  """
  num_train, num_test = _positive_int(data_config, "num_train"), _positive_int(data_config,
                                                                               "num_test")
  circle_levels = data_config.circle_levels
  gauss_levels = data_config.gauss_levels
  sample = circles.static_sample(num_train + num_test, data_config.seed, circle_levels,
                                 gauss_levels)
  # static_sample returns grid points in C order of the factors: shuffle before splitting.
  order = np.random.default_rng(data_config.seed).permutation(num_train + num_test)
  arrays = {"frames": sample["images"][order], "factors": sample["factors"][order]}
  train = {k: v[:num_train] for k, v in arrays.items()}
  test = {k: v[num_train:] for k, v in arrays.items()}
  return train, test, circles_info(train["frames"])


def load_circles_dynamic(data_config):
  """Moving-circle clips. Config fields: num_train, num_test, seed, num_frames (10),
  min_distance (0.1), gauss_levels (32).

  Returns (train, test, info): {"frames": uint8 [N, T, 32, 32, 1], "factors": float32
  [N, T, 4]}; the test clips come from seed + TEST_SEED_OFFSET. info image_shape, num_frames,
  factor_names.
  """
  num_train, num_test = _positive_int(data_config, "num_train"), _positive_int(data_config,
                                                                               "num_test")
  options = dict(num_frames=data_config.num_frames,
                 min_distance=data_config.min_distance,
                 gauss_levels=data_config.gauss_levels)
  train = circles.dynamic_sequences(num_train, data_config.seed, **options)
  test = circles.dynamic_sequences(num_test, data_config.seed + TEST_SEED_OFFSET, **options)
  return train, test, circles_info(train["frames"])


def load_sprites(data_config):
  """Procedural sprite pairs (data.sprites.sample_pairs). Config fields: transitions ("laplace" |
  "uniform" | "natural", or an alias "lap" | "loc" | "uni"), num_train, num_test (pairs), seed,
  and the sampler's options (rate, max_changed, k, tail_exponent, position_step, scale_step).

  Returns (train, test, info): {"frames": uint8 [N, 2, 64, 64, 1], "factors": int32 [N, 2, 5]};
  the test pairs come from seed + TEST_SEED_OFFSET. info image_shape, num_frames 2,
  factor_names, factor_sizes, transitions (the canonical name), ground_truth (a
  data.sprites.SpritesGroundTruth for the metrics).
  """
  seed = int(data_config.seed)
  train = sprites.sample_pairs(data_config, int(data_config.num_train), seed)
  test = sprites.sample_pairs(data_config, int(data_config.num_test), seed + TEST_SEED_OFFSET)
  return train, test, sprites_info(data_config.transitions)


def sprites_info(transitions: str) -> DatasetInfo:
  """The DatasetInfo of sprite pairs (load_sprites, and load_tfds of a sprites_* dataset)."""
  return DatasetInfo(image_shape=sprites.OBSERVATION_SHAPE, num_frames=2,
                     factor_names=sprites.FACTOR_NAMES, factor_sizes=sprites.FACTOR_SIZES,
                     transitions=sprites.canonical_transitions(transitions),
                     ground_truth=sprites.SpritesGroundTruth())


LOADERS = {
    "physics": load_physics,
    "video": load_video,
    "tfds": load_tfds,
    "sprites": load_sprites,
    "circles_static": load_circles_static,
    "circles_dynamic": load_circles_dynamic,
}
