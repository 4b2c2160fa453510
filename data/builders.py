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
  real_videos (version 3.0.0; configs 32_t20_grey, 64_t20_grey, 64_t20_rgb, or any name that
      `real_videos_config` parses, e.g. 64_t30_rgb_stride2_crop0x80x480x480_test10_bgnone)
      frames uint8 [T,S,S,C], source int64 (the video's index in the metadata's videos),
      start int64 (its first frame), dt float64 (seconds per frame), states {angle, position,
      height, phase: f32 [T]} (truth per frame; NaN for a state without truth files).

Determinism: a split is the concatenation of chunks; chunk c of split s is the generator called
with `count` examples and the seed `chunk_seed(config.seed, s, c)` (see `chunk_plan`), so the
same config gives the same bytes, and train and test never share a seed. circles_static instead
cuts one seeded permutation of the factor grid into disjoint train and test grid points.
Physics metadata (metadata.json) records dt and every simulator option; sprites metadata the
transitions name and the factor grid (what nlvae.datasets.load_tfds gives the models).

real_videos is ingested by data.user_video.load_folder, the :video variant's ingestion, with the
options its config name encodes (data.user_video.options_from_name); its metadata records the
options, dt, the videos (name, num_frames, fps, split), the skipped files with their reasons, the
split kind, the truth states every video has, and the manual folder with its files' fingerprint.
`read_video_dataset` reads it back as the data.user_video.VideoDataset of that folder.

All datasets have train and test splits (real_videos: several videos hold whole videos out, one
video its last `test` percent of frames; a folder too small for either repeats train as test,
as the :video variant evaluates on the training clips).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
from collections.abc import Iterator

import jax
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from data import circles, physics, pipeline, sprites, user_video, video

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
  """Config of `real_videos`: how user videos become clips, data.user_video.IngestOptions
  without a system (the truth files of every state are read), named by `real_videos_config`."""
  options: user_video.IngestOptions = dataclasses.field(
      default_factory=lambda: user_video.IngestOptions(system=""))


def real_videos_config(name: str) -> RealVideosConfig:
  """Parses a real_videos config name (data.user_video.NAME_FORMAT): "{S}_t{T}_{grey|rgb}
  [_stride{K}][_crop{top}x{left}x{h}x{w}][_test{percent}][_bg{median|none}][_fps{N}]", e.g.
  "32_t20_grey" (the :video variant's default ingestion) or
  "64_t30_rgb_stride2_crop0x80x480x480_test10_bgnone".

  Defaults: stride max(1, T // 4), the largest centred square, 20 percent held out, median
  background removal, the files' frame rate.
  """
  return RealVideosConfig(name=name, description=f"User videos as {name} clips.",
                          options=user_video.options_from_name(name))


class RealVideos(tfds.core.GeneratorBasedBuilder):
  """Clips cut from the user's own videos (mp4/avi/mov/mkv/gif files and frame folders),
  ingested by data.user_video.load_folder, as the :video config variant ingests them."""

  VERSION = tfds.core.Version("3.0.0")
  RELEASE_NOTES = {
      "1.0.0": "Initial release.",
      "2.0.0": "Ingested by data.user_video: frame rate (dt), whole videos held out, background "
               "removal, truth states; source is the video's index.",
      "3.0.0": "Background option quantile (a 20%/80% quantile scene: no ghost of an object "
               "that lingers).",
  }
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      "Put video files (.mp4 .avi .mov .mkv .gif) and/or folders of image frames, with optional "
      "truth files <stem>.<state>.npy, into the manual folder (python -m data.build "
      "--dataset=real_videos --manual_dir=FOLDER). Undecodable or too short files are skipped "
      "and listed in the dataset's metadata.")
  BUILDER_CONFIGS = [real_videos_config(name)
                     for name in ("32_t20_grey", "64_t20_grey", "64_t20_rgb")]

  def _info(self) -> tfds.core.DatasetInfo:
    options = self.builder_config.options
    frames, size = options.num_frames, options.image_size
    states = {state: tfds.features.Tensor(shape=(frames,), dtype=np.float32)
              for state in user_video.TRUTH_STATES}
    return tfds.core.DatasetInfo(
        builder=self, description=self.__doc__,
        features=tfds.features.FeaturesDict({
            "frames": tfds.features.Tensor(shape=(frames, size, size, options.channels),
                                           dtype=np.uint8, encoding=tfds.features.Encoding.ZLIB),
            "source": tfds.features.Tensor(shape=(), dtype=np.int64),
            "start": tfds.features.Tensor(shape=(), dtype=np.int64),
            # Bytes: TFDS stores other float64 values as float32.
            "dt": tfds.features.Tensor(shape=(), dtype=np.float64,
                                       encoding=tfds.features.Encoding.BYTES),
            "states": tfds.features.FeaturesDict(states)}),
        metadata=tfds.core.MetadataDict(_jsonable({"options": dataclasses.asdict(options)})),
        disable_shuffling=True)

  def _split_generators(self, dl_manager):
    dataset = user_video.load_folder(dl_manager.manual_dir, self.builder_config.options,
                                     cache=False, log=logging.warning)
    self.info.metadata.update(_jsonable({
        "dt": dataset.dt, "videos": dataset.videos, "skipped": dataset.skipped,
        "split": dataset.split, "states": sorted(dataset.train.states),
        "manual_dir": str(dl_manager.manual_dir),
        "manual_fingerprint": getattr(self, "manual_fingerprint", None)}))
    return {split: self._generate_examples(getattr(dataset, split), dataset.dt)
            for split in SPLITS}

  def _generate_examples(self, clips: user_video.VideoClips, dt: float):
    missing = np.full(clips.frames.shape[1], np.nan, np.float32)  # a state without truth files
    for i in range(len(clips.frames)):
      yield i, {"frames": clips.frames[i], "source": clips.source[i], "start": clips.start[i],
                "dt": dt, "states": {state: clips.states[state][i] if state in clips.states
                                     else missing for state in user_video.TRUTH_STATES}}


def read_video_dataset(name: str, system: str, data_dir=None) -> user_video.VideoDataset:
  """A built real_videos dataset ("real_videos/32_t20_grey") as the data.user_video.VideoDataset
  that `user_video.load_folder` gives the :video variant for the same folder and options with
  `system` (both splits in memory; the truth is the system's latent where every video has it).
  """
  metadata = dict(_built(name, data_dir).info.metadata)
  state = physics.LATENTS[system]
  truth = state if state in metadata["states"] else None

  def clips(split):
    source = load(name, split, data_dir)
    stored = pipeline.read_all(source)
    return user_video.VideoClips(
        frames=stored["frames"], states={} if truth is None else {truth: stored["states"][truth]},
        source=stored["source"], start=stored["start"])

  return user_video.VideoDataset(
      train=clips("train"), test=clips("test"), dt=float(metadata["dt"]),
      videos=[dict(v) for v in metadata["videos"]],
      skipped=[tuple(s) for s in metadata["skipped"]], split=metadata["split"], truth=truth)


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
    fingerprint = user_video.files_fingerprint(manual_dir)
    built = pathlib.Path(str(builder.data_dir)) / "dataset_info.json"
    if built.exists():
      recorded = dict(builder.info.metadata or {}).get("manual_fingerprint")
      if recorded != fingerprint:
        raise ValueError(
            f"{builder.name}/{builder.builder_config.name} in {builder.data_dir} was built from "
            f"other files than {manual_dir}; pass another --data_dir, or delete that folder.")
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
  it has not been built, or was built by another version of its builder."""
  cls, config = _split_name(name, config)
  config_name = (cls.BUILDER_CONFIGS[0].name if config is None
                 else config if isinstance(config, str) else config.name)
  root = epath.Path(data_dir or DEFAULT_DATA_DIR)
  directory = root / cls.name / config_name / str(cls.VERSION)
  if not (directory / "dataset_info.json").exists():
    command = (f"python -m data.build --dataset={cls.name} --config={config_name} "
               f"--data_dir={root}")
    if cls is RealVideos:
      command += " --manual_dir=YOUR_VIDEO_FOLDER"
    others = sorted(p.parent.name for p in (root / cls.name / config_name).glob(
        "*/dataset_info.json")) if (root / cls.name / config_name).exists() else []
    if others:
      raise FileNotFoundError(
          f"{cls.name}/{config_name} in {root} was built by builder version "
          f"{', '.join(others)}; this code reads version {cls.VERSION}: rebuild it with {command}")
    raise FileNotFoundError(f"{cls.name}/{config_name} is not built in {root}; build it with: "
                            f"{command}")
  return tfds.builder_from_directory(directory)


def metadata(name: str, data_dir=None, *, config=None) -> dict:
  """The metadata of a built dataset: seed, chunk_size, options; physics also system, dt,
  generator_options; sprites transitions, factor_names, factor_sizes (datasets built before
  sprites recorded them lack these three)."""
  return dict(_built(name, data_dir, config).info.metadata)
