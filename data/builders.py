"""tensorflow-datasets builders for every nlvae dataset, usable without TensorFlow.

Every builder writes array_record files of tfds.features.Tensor features (images and frames are
zlib-compressed) and is read back with random access through `load` (tfds data_source, numpy),
so neither building nor reading imports TensorFlow. Examples are stored in generation order
(disable_shuffling): record i of a split is example i of the generator plan below.

Datasets, configs (default first) and features per example (S = image size, T = frames):
  physics_spring, physics_pendulum, physics_falling, physics_pulsar
      configs 32_t20, 64_t20, 32_t50 (grey); frames uint8 [T,S,S,1], latent f32 [T],
      states {name: f32 [T]}, params {name: f32}, initial {name: f32}, render_seed int64.
  sprites_lap (configs rate1, random_rate), sprites_loc (default), sprites_natural (default)
      pairs (t-1, t): frames uint8 [2,64,64,1], factors int64 [2,5], factor_values f32 [2,5].
  circles_static (config 32)
      images uint8 [32,32,1], factors f32 [4], indices int64 [4].
  circles_dynamic (configs 32_t10, 32_t20)
      frames uint8 [T,32,32,1], factors f32 [T,4].
  real_videos (configs 32_t20_grey, 64_t20_grey, 64_t20_rgb, or any name that
      `real_videos_config` parses, e.g. 64_t30_rgb_stride2_crop0x80x480x480_test20)
      frames uint8 [T,S,S,C], source (file name, bytes), start int64 (first frame).

Determinism: a split is the concatenation of chunks; chunk c of split s is the generator called
with `count` examples and the seed `chunk_seed(config.seed, s, c)` (see `chunk_plan`), so the
same config gives the same bytes, and train and test never share a seed. circles_static instead
cuts one seeded permutation of the factor grid into disjoint train and test grid points.
Physics metadata (metadata.json) records dt and every simulator option; sprites metadata the
transitions name and the factor grid (what nlvae.datasets.load_tfds gives the models).

All datasets have train and test splits (real_videos: test holds the last `test_fraction` of
every video's frames, so test clips never overlap train clips in time).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
from collections.abc import Iterator

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from data import circles, physics, sprites, video

VERSION = tfds.core.Version("1.0.0")
SPLITS = ("train", "test")
# Where datasets are built and read by default: TFDS' own default, $TFDS_DATA_DIR or
# ~/tensorflow_datasets.
DEFAULT_DATA_DIR = tfds.core.constants.DATA_DIR


@dataclasses.dataclass(eq=False)
class GeneratedConfig(tfds.core.BuilderConfig):
  """Config of a procedural dataset.

  Attributes:
    num_train, num_test: examples per split.
    seed: base seed; split and chunk seeds derive from it (`chunk_plan`).
    chunk_size: examples generated per generator call (bounds memory while building).
    options: keyword arguments of the generator (e.g. physics num_frames, image_size, channels).
  """
  num_train: int = 1000
  num_test: int = 100
  seed: int = 0
  chunk_size: int = 256
  options: dict = dataclasses.field(default_factory=dict)

  def num_examples(self, split: str) -> int:
    return {"train": self.num_train, "test": self.num_test}[split]


def chunk_seed(seed: int, split: str, chunk: int) -> int:
  """Generator seed (int in [0, 2^32)) of chunk `chunk` of split `split`."""
  return int(np.random.SeedSequence([seed, SPLITS.index(split), chunk]).generate_state(1)[0])


def chunk_plan(seed: int, split: str, num_examples: int, chunk_size: int
               ) -> list[tuple[int, int]]:
  """[(generator seed, count)] whose concatenated outputs form the split, in record order."""
  counts = [min(chunk_size, num_examples - start) for start in range(0, num_examples, chunk_size)]
  return [(chunk_seed(seed, split, c), count) for c, count in enumerate(counts)]


def _features_like(example) -> tfds.features.FeaturesDict:
  """Tensor features matching one example (nested dict of arrays).

  Images (ndim >= 3) are stored as zlib'd bytes: 4x faster to build than TFDS' default
  per-element lists and as fast to read.
  """
  def feature(array):
    array = np.asarray(array)
    encoding = (tfds.features.Encoding.ZLIB if array.ndim >= 3 else tfds.features.Encoding.NONE)
    return tfds.features.Tensor(shape=array.shape, dtype=array.dtype, encoding=encoding)
  return tfds.features.FeaturesDict(jax.tree.map(feature, example))


def _jsonable(value):
  """Metadata values -> JSON types (numpy scalars and arrays, tuples)."""
  return json.loads(json.dumps(value, default=lambda v: v.tolist() if hasattr(v, "tolist")
                               else str(v)))


def _examples(chunk) -> Iterator[dict]:
  """A chunk (nested dict of arrays with leading size n) -> its n examples."""
  for i in range(len(jax.tree.leaves(chunk)[0])):
    yield jax.tree.map(lambda array: array[i], chunk)


class _GeneratedBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of the procedural builders: subclasses define `generate(count, seed)`."""

  VERSION = VERSION
  RELEASE_NOTES = {"1.0.0": "Initial release."}

  def generate(self, count: int, seed: int) -> dict:
    """`count` examples as a nested dict of arrays with leading size `count`."""
    raise NotImplementedError

  def chunks(self, split: str) -> Iterator[dict]:
    """The split as a sequence of generated chunks (`chunk_plan`)."""
    config = self.builder_config
    for seed, count in chunk_plan(config.seed, split, config.num_examples(split),
                                  config.chunk_size):
      yield self.generate(count, seed)

  def metadata(self) -> dict:
    config = self.builder_config
    return {"seed": config.seed, "chunk_size": config.chunk_size, "options": config.options}

  def _info(self) -> tfds.core.DatasetInfo:
    example = jax.tree.map(lambda array: array[0], self.generate(1, 0))
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__, features=_features_like(example),
        metadata=tfds.core.MetadataDict(_jsonable(self.metadata())), disable_shuffling=True)

  def _split_generators(self, dl_manager):
    del dl_manager  # Nothing to download.
    return {split: self._generate_examples(split) for split in SPLITS}

  def _generate_examples(self, split: str):
    key = 0
    for chunk in self.chunks(split):
      for example in _examples(chunk):
        yield key, example
        key += 1


# ------------------------------------------------------------------------------------- physics
def _physics_configs() -> list[GeneratedConfig]:
  sizes = (("32_t20", 32, 20, 10_000, 1_000), ("64_t20", 64, 20, 10_000, 1_000),
           ("32_t50", 32, 50, 5_000, 500))
  return [GeneratedConfig(
      name=name, description=f"{size}x{size} grey, {frames} frames per clip.", num_train=train,
      num_test=test, options={"image_size": size, "num_frames": frames, "channels": 1})
      for name, size, frames, train, test in sizes]


class _PhysicsBuilder(_GeneratedBuilder, skip_registration=True):
  """Clips of a simulated physical system with their ground-truth states and parameters."""

  SYSTEM: str
  BUILDER_CONFIGS = _physics_configs()

  def generate(self, count, seed):
    clips = physics.generate(self.SYSTEM, count, seed, **self.builder_config.options)
    return {"frames": clips.frames, "latent": clips.latent, "states": dict(clips.states),
            "params": dict(clips.params), "initial": dict(clips.initial),
            "render_seed": np.asarray(clips.render_seed)}

  def metadata(self):
    clips = physics.generate(self.SYSTEM, 1, 0, **self.builder_config.options)
    return super().metadata() | {"system": self.SYSTEM, "dt": float(clips.dt),
                                 "generator_options": dict(clips.options)}


class PhysicsSpring(_PhysicsBuilder):
  """Mass on a spring (data.physics "spring"): frames, latent, states, params, initial."""
  SYSTEM = "spring"


class PhysicsPendulum(_PhysicsBuilder):
  """Pendulum (data.physics "pendulum"): frames, latent, states, params, initial."""
  SYSTEM = "pendulum"


class PhysicsFalling(_PhysicsBuilder):
  """Falling object (data.physics "falling"): frames, latent, states, params, initial."""
  SYSTEM = "falling"


class PhysicsPulsar(_PhysicsBuilder):
  """Rotating pulsar (data.physics "pulsar"): frames, latent, states, params, initial."""
  SYSTEM = "pulsar"


# ------------------------------------------------------------------------------------- sprites
class _SpritesBuilder(_GeneratedBuilder, skip_registration=True):
  """dSprites-grid pairs (t-1, t); TRANSITIONS names the sampler (a data.sprites.PAIR_SAMPLERS
  key), recorded in the metadata with the factor grid for the training loop (nlvae.datasets)."""

  TRANSITIONS: str

  def generate(self, count, seed):
    sampler = sprites.PAIR_SAMPLERS[self.TRANSITIONS][0]
    return sampler(count, seed, **self.builder_config.options)

  def metadata(self):
    return super().metadata() | {"transitions": self.TRANSITIONS,
                                 "factor_names": list(sprites.FACTOR_NAMES),
                                 "factor_sizes": list(sprites.FACTOR_SIZES)}


class SpritesLap(_SpritesBuilder):
  """dSprites-grid pairs (t-1, t) with SlowVAE "LAP" transitions (data.sprites.lap_pairs)."""
  TRANSITIONS = "laplace"
  BUILDER_CONFIGS = [
      GeneratedConfig(name="rate1", description="Laplace rate 1 (SlowVAE default).",
                      num_train=50_000, num_test=5_000, chunk_size=1024, options={"rate": 1.0}),
      GeneratedConfig(name="random_rate", description="Rate ~ U(1, 10) per pair (reference -1).",
                      num_train=50_000, num_test=5_000, chunk_size=1024, options={"rate": None}),
  ]


class SpritesLoc(_SpritesBuilder):
  """dSprites-grid pairs (t-1, t) with SlowVAE "LOC" transitions (data.sprites.loc_pairs)."""
  TRANSITIONS = "uniform"
  BUILDER_CONFIGS = [GeneratedConfig(name="default", description="k ~ U{1..4} factors change.",
                                     num_train=50_000, num_test=5_000, chunk_size=1024)]


class SpritesNatural(_SpritesBuilder):
  """dSprites-grid pairs (t-1, t) with heavy-tailed natural motion (data.sprites.natural_pairs)."""
  TRANSITIONS = "natural"
  BUILDER_CONFIGS = [GeneratedConfig(name="default", description="Generalised Laplace, a = 0.5.",
                                     num_train=50_000, num_test=5_000, chunk_size=1024)]


# ------------------------------------------------------------------------------------- circles
def circles_static_indices(seed: int, num_train: int, num_test: int) -> dict[str, np.ndarray]:
  """Disjoint grid indices int64 [n, 4] of the circles_static splits (one seeded permutation)."""
  grid = circles.grid_indices()
  if num_train + num_test > len(grid):
    raise ValueError(f"circles_static holds at most {len(grid)} grid points, asked for "
                     f"{num_train} + {num_test}.")
  order = np.random.default_rng(seed).permutation(len(grid))
  return {"train": grid[order[:num_train]], "test": grid[order[num_train:num_train + num_test]]}


class CirclesStatic(_GeneratedBuilder):
  """Circle over a Gaussian blob (disentangled-dynamics), grid points without repeats."""
  BUILDER_CONFIGS = [GeneratedConfig(name="32", description="32x32, train and test disjoint.",
                                     num_train=20_000, num_test=2_000, chunk_size=1024)]

  def generate(self, count, seed):
    # The probe of `_info`; the splits come from `chunks`.
    return self.render(circles_static_indices(seed, count, 0)["train"])

  @staticmethod
  def render(indices: np.ndarray) -> dict:
    return {"images": circles.render_indices(indices),
            "factors": circles.factor_values_from_indices(indices), "indices": indices}

  def chunks(self, split):
    config = self.builder_config
    indices = circles_static_indices(config.seed, config.num_train, config.num_test)[split]
    for start in range(0, len(indices), config.chunk_size):
      yield self.render(indices[start:start + config.chunk_size])


class CirclesDynamic(_GeneratedBuilder):
  """Circle moving at constant velocity over a fixed Gaussian blob (disentangled-dynamics)."""
  BUILDER_CONFIGS = [
      GeneratedConfig(name=f"32_t{frames}", description=f"32x32, {frames} frames.",
                      num_train=num_train, num_test=num_train // 10, chunk_size=512,
                      options={"num_frames": frames})
      for frames, num_train in ((10, 10_000), (20, 5_000))]

  def generate(self, count, seed):
    return circles.dynamic_sequences(count, seed, **self.builder_config.options)


# --------------------------------------------------------------------------------- real videos
@dataclasses.dataclass(eq=False)
class RealVideosConfig(tfds.core.BuilderConfig):
  """Config of `real_videos`: how user videos become clips (see data.video.ingest_folder)."""
  image_size: int = 64
  num_frames: int = 20
  channels: int = 1
  stride: int = 5
  crop_box: tuple[int, int, int, int] | None = None
  test_fraction: float = 0.1


_REAL_VIDEOS_NAME = re.compile(
    r"(?P<size>\d+)_t(?P<frames>\d+)_(?P<colour>grey|rgb)(?:_stride(?P<stride>\d+))?"
    r"(?:_crop(?P<crop>\d+x\d+x\d+x\d+))?(?:_test(?P<test>\d+))?")


def real_videos_config(name: str) -> RealVideosConfig:
  """Parses a real_videos config name "{S}_t{T}_{grey|rgb}[_stride{K}][_crop{top}x{left}x{h}x{w}]
  [_test{percent}]", e.g. "64_t20_grey" or "64_t30_rgb_stride2_crop0x80x480x480_test20".

  Defaults: stride max(1, T // 4), no crop (largest centred square), test 10 percent.
  """
  match = _REAL_VIDEOS_NAME.fullmatch(name)
  if match is None:
    raise ValueError(f"Bad real_videos config {name!r}: expected "
                     "'{size}_t{frames}_{grey|rgb}[_stride{k}][_crop{top}x{left}x{h}x{w}]"
                     "[_test{percent}]', e.g. '64_t20_grey'.")
  num_frames = int(match["frames"])
  test = int(match["test"]) if match["test"] else 10
  if not 0 <= test < 100 or num_frames < 1 or int(match["size"]) < 1:
    raise ValueError(f"Bad real_videos config {name!r}: need size, frames >= 1 and a test "
                     "percentage in [0, 100).")
  return RealVideosConfig(
      name=name, description=f"User videos as {name} clips.", image_size=int(match["size"]),
      num_frames=num_frames, channels=1 if match["colour"] == "grey" else 3,
      stride=int(match["stride"]) if match["stride"] else max(1, num_frames // 4),
      crop_box=tuple(int(v) for v in match["crop"].split("x")) if match["crop"] else None,
      test_fraction=test / 100)


def time_splits(result: video.IngestResult, num_frames: int, test_fraction: float
                ) -> dict[str, np.ndarray]:
  """Clip indices of each split: test clips lie in the last `test_fraction` of their video's
  frames, train clips before it; clips that straddle the boundary are dropped."""
  lengths = np.array([result.source_lengths[s] for s in result.source], np.int64)
  boundary = np.floor(lengths * (1.0 - test_fraction)).astype(np.int64)
  end = result.start + num_frames
  return {"train": np.flatnonzero(end <= boundary),
          "test": np.flatnonzero(result.start >= boundary)}


class RealVideos(tfds.core.GeneratorBasedBuilder):
  """Clips cut from the user's own videos (mp4/avi/mov/mkv/gif files and frame folders)."""

  VERSION = VERSION
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put video files (.mp4 .avi .mov .mkv .gif) and/or folders of image frames into the manual "
      "folder (python -m data.build --dataset=real_videos --manual_dir=FOLDER). Undecodable "
      "files are skipped and listed in the dataset's metadata.")
  BUILDER_CONFIGS = [real_videos_config(name)
                     for name in ("32_t20_grey", "64_t20_grey", "64_t20_rgb")]

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    size, frames, channels = config.image_size, config.num_frames, config.channels
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__,
        features=tfds.features.FeaturesDict({
            "frames": tfds.features.Tensor(shape=(frames, size, size, channels), dtype=np.uint8,
                                           encoding=tfds.features.Encoding.ZLIB),
            "source": tfds.features.Text(),
            "start": tfds.features.Tensor(shape=(), dtype=np.int64)}),
        metadata=tfds.core.MetadataDict(_jsonable({
            "image_size": size, "num_frames": frames, "channels": channels,
            "stride": config.stride, "crop_box": config.crop_box,
            "test_fraction": config.test_fraction})),
        disable_shuffling=True)

  def _split_generators(self, dl_manager):
    config = self.builder_config
    result = video.ingest_folder(
        dl_manager.manual_dir, num_frames=config.num_frames, stride=config.stride,
        image_size=config.image_size, channels=config.channels, crop_box=config.crop_box,
        log=logging.warning)
    self.info.metadata.update(_jsonable({
        "skipped": result.skipped, "source_lengths": result.source_lengths,
        "manual_fingerprint": getattr(self, "manual_fingerprint", None)}))
    splits = time_splits(result, config.num_frames, config.test_fraction)
    if not len(splits["train"]):
      raise ValueError(f"No training clips from {dl_manager.manual_dir}: {result.summary()} "
                       "Add longer videos or lower num_frames / test percentage.")
    if not len(splits["test"]):
      logging.warning("real_videos: no video is long enough for a test clip in its last %.0f%% "
                      "of frames; writing the train split only.", 100 * config.test_fraction)
      del splits["test"]
    return {name: self._generate_examples(result, indices) for name, indices in splits.items()}

  def _generate_examples(self, result: video.IngestResult, indices: np.ndarray):
    for key, i in enumerate(indices):
      yield key, {"frames": result.clips[i], "source": result.source[i],
                  "start": result.start[i]}


# ---------------------------------------------------------------------------------- public API
BUILDERS = {cls.name: cls for cls in (
    PhysicsSpring, PhysicsPendulum, PhysicsFalling, PhysicsPulsar, SpritesLap, SpritesLoc,
    SpritesNatural, CirclesStatic, CirclesDynamic, RealVideos)}
DATASETS = tuple(BUILDERS)


def _split_name(name: str, config) -> tuple[type, str | tfds.core.BuilderConfig | None]:
  """("name[/config]", config) -> (builder class, config name or object or None)."""
  if "/" in name:
    if config is not None:
      raise ValueError(f"Give the config once: in the name {name!r} or as config={config!r}.")
    name, config = name.split("/", 1)
  if name not in BUILDERS:
    raise ValueError(f"Unknown dataset {name!r}; choose one of {', '.join(DATASETS)}.")
  return BUILDERS[name], config


def _resolve(name: str, config) -> tuple[type, tfds.core.BuilderConfig]:
  """("name[/config]", config) -> (builder class, config object)."""
  cls, config = _split_name(name, config)
  if config is None:
    return cls, cls.BUILDER_CONFIGS[0]
  if not isinstance(config, str):
    return cls, config
  known = {c.name: c for c in cls.BUILDER_CONFIGS}
  if config in known:
    return cls, known[config]
  if cls is RealVideos:
    return cls, real_videos_config(config)
  raise ValueError(f"Unknown config {config!r} of {cls.name}; choose one of "
                   f"{', '.join(known)} (or pass a GeneratedConfig).")


def get_builder(name: str, config: str | tfds.core.BuilderConfig | None = None,
                data_dir=None) -> tfds.core.DatasetBuilder:
  """The builder of `name` ("physics_spring" or "physics_spring/64_t20") with array_record files.

  config: a config name, a GeneratedConfig / RealVideosConfig object (custom sizes), or None for
  the default (first) config.
  """
  cls, config = _resolve(name, config)
  return cls(config=config, data_dir=str(data_dir or DEFAULT_DATA_DIR),
             file_format="array_record")


def _remove_incomplete(builder: tfds.core.DatasetBuilder) -> None:
  """Deletes TFDS' temporary `incomplete.*` folders of this dataset (a build that was killed)."""
  import shutil
  config_dir = pathlib.Path(str(builder.data_dir)).parent
  if config_dir.is_dir():
    for leftover in config_dir.glob("incomplete.*"):
      shutil.rmtree(leftover, ignore_errors=True)


def manual_fingerprint(manual_dir) -> str:
  """A hash of the videos in a manual folder: names, sizes and modification times."""
  import hashlib
  entries = []
  for path in video.list_videos(manual_dir):
    members = sorted(path.iterdir()) if path.is_dir() else [path]
    entries += [(str(m.relative_to(manual_dir)), m.stat().st_size, m.stat().st_mtime_ns)
                for m in members]
  return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def build(name: str, config: str | tfds.core.BuilderConfig | None = None, data_dir=None, *,
          manual_dir=None) -> tfds.core.DatasetBuilder:
  """Builds (if not built yet) dataset `name` under data_dir and returns its builder.

  manual_dir: folder of user videos, for real_videos only (default <data_dir>/downloads/manual).
  A real_videos dataset records which files it was built from; asking for the same dataset from
  other files is refused with one line. A build that is interrupted (or was killed earlier) leaves
  no `incomplete.*` folder behind.
  """
  builder = get_builder(name, config, data_dir)
  download_config = None
  fingerprint = None
  if isinstance(builder, RealVideos):
    manual_dir = pathlib.Path(manual_dir or pathlib.Path(str(builder.data_dir_root)) /
                              "downloads" / "manual")
    if not manual_dir.is_dir():
      raise FileNotFoundError(f"Manual folder {manual_dir} does not exist; put the videos there "
                              "and pass --manual_dir=FOLDER.")
    if not video.list_videos(manual_dir):
      raise ValueError(f"Manual folder {manual_dir} holds no videos (expected "
                       f"{', '.join(video.VIDEO_SUFFIXES)} files or folders of frames).")
    fingerprint = manual_fingerprint(manual_dir)
    built = pathlib.Path(str(builder.data_dir)) / "dataset_info.json"
    if built.exists():
      recorded = dict(builder.info.metadata or {}).get("manual_fingerprint")
      if recorded != fingerprint:
        raise ValueError(
            f"{builder.name}/{builder.builder_config.name} in {builder.data_dir} was built from "
            f"other files than {manual_dir}; pass another --config name (e.g. "
            f"{builder.builder_config.name}_test15) or another --data_dir, or delete that folder.")
      return builder
    download_config = tfds.download.DownloadConfig(manual_dir=str(manual_dir))
    builder.manual_fingerprint = fingerprint
  elif manual_dir is not None:
    raise ValueError(f"--manual_dir is for real_videos only, not {builder.name}.")
  _remove_incomplete(builder)
  try:
    builder.download_and_prepare(download_config=download_config)
  except BaseException:
    _remove_incomplete(builder)
    raise
  return builder


def load(name: str, split: str = "train", data_dir=None, *,
         config: str | tfds.core.BuilderConfig | None = None):
  """Random-access source (tfds data_source: len, [i] -> dict of numpy arrays) of a built split.

  Raises FileNotFoundError (with the build command) when the dataset has not been built.
  """
  builder = _built(name, data_dir, config)
  cls, config_name = builder.name, builder.builder_config.name
  if split not in builder.info.splits:
    raise ValueError(f"{cls}/{config_name} has no split {split!r}; it has "
                     f"{', '.join(builder.info.splits)}.")
  return builder.as_data_source(split=split)


def _built(name: str, data_dir=None, config=None) -> tfds.core.DatasetBuilder:
  """The read-only builder of a built dataset; FileNotFoundError (with the build command) if
  it has not been built."""
  cls, config = _split_name(name, config)
  config_name = (cls.BUILDER_CONFIGS[0].name if config is None
                 else config if isinstance(config, str) else config.name)
  root = epath.Path(data_dir or DEFAULT_DATA_DIR)
  directory = root / cls.name / config_name / str(VERSION)
  if not (directory / "dataset_info.json").exists():
    raise FileNotFoundError(
        f"{cls.name}/{config_name} is not built in {root}; build it with: python -m data.build "
        f"--dataset={cls.name} --config={config_name} --data_dir={root}")
  return tfds.builder_from_directory(directory)


def metadata(name: str, data_dir=None, *, config=None) -> dict:
  """The metadata of a built dataset: seed, chunk_size, options; physics also system, dt,
  generator_options; sprites transitions, factor_names, factor_sizes (datasets built before
  sprites recorded them lack these three)."""
  return dict(_built(name, data_dir, config).info.metadata)
