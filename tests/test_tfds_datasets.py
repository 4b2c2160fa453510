"""The training loop's tfds input path (nlvae.datasets.load_tfds) for sprites, circles and
real_videos datasets: batches, test splits and DatasetInfo equal to the in-memory loaders' (the
:video ingestion for real_videos) for the same examples, and a SlowVAE, a circles model and the
physics VAE on user videos trained end to end from built datasets through their tfds variants.

The in-memory loaders draw a split with one generator call; a built split is the concatenation
of chunks (data.builders.chunk_plan). A dataset built with one chunk per split therefore holds
exactly what the in-memory loader draws when given that chunk's seed, which is what the equality
tests use. circles_static is the exception: its builder cuts one permutation of the grid, the
in-memory loader draws a sorted sample and shuffles it, so no seed gives both the same examples;
its test checks the in-memory format and the batches of the stored examples instead.
"""
import dataclasses
import json

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds
from ml_collections import ConfigDict

from data import builders, circles, make_videos, pipeline, sprites
from experiments import circles_dynamic, pendulum
from experiments.configs import physics as physics_configs
from nlvae import datasets, train

tfds.disable_progress_bar()

NUM_TRAIN, NUM_TEST = 12, 4


def build_one_chunk(tmp_path, name, options):
  """Builds `name` (config "tiny") with one chunk per split; returns the tfds data config."""
  config = builders.GeneratedConfig(name="tiny", num_train=NUM_TRAIN, num_test=NUM_TEST,
                                    chunk_size=NUM_TRAIN, options=options)
  builders.build(name, config, data_dir=tmp_path)
  return ConfigDict(dict(name="tfds", dataset=f"{name}/tiny", data_dir=str(tmp_path)))


def chunk_seed(split):
  return builders.chunk_seed(0, split, 0)


def assert_same_batches(disk_train, memory_train, steps=7):
  """Batches(seed 5) of the two sources agree at every step (through the prefetching reader for
  the disk source: 3 steps an epoch, so 7 steps cross two epoch boundaries), keys and dtypes
  included."""
  disk = pipeline.Batches(disk_train, 4, seed=5, process_index=0, process_count=1)
  memory = pipeline.Batches(memory_train, 4, seed=5, process_index=0, process_count=1)
  stream = list(pipeline.prefetched(disk, 0, steps))
  assert len(stream) == steps
  for step, batch in enumerate(stream):
    expected = memory.batch(step)
    assert sorted(batch) == sorted(expected)
    for key in expected:
      assert batch[key].dtype == expected[key].dtype, key
      np.testing.assert_array_equal(batch[key], expected[key])
  # Resuming mid-epoch reads the same batches.
  for a, b in zip(pipeline.prefetched(disk, 4, 3), stream[4:]):
    np.testing.assert_array_equal(a["frames"], b["frames"])


def assert_same_arrays(got, expected):
  assert sorted(got) == sorted(expected)
  for key in expected:
    assert got[key].dtype == expected[key].dtype, key
    np.testing.assert_array_equal(got[key], expected[key])


SPRITES = [("sprites_lap", {"rate": 2.0}, dict(transitions="laplace", rate=2.0)),
           ("sprites_loc", {}, dict(transitions="uniform")),
           ("sprites_natural", {}, dict(transitions="natural"))]


@pytest.mark.parametrize("name, options, fields", SPRITES, ids=[s[0] for s in SPRITES])
def test_sprites_tfds_path_gives_the_in_memory_batches_and_info(tmp_path, name, options, fields):
  disk_train, disk_test, disk_info = datasets.load(build_one_chunk(tmp_path, name, options))
  assert len(disk_train) == NUM_TRAIN  # the train split stays a random-access source
  memory_config = ConfigDict(dict(name="sprites", num_train=NUM_TRAIN, num_test=NUM_TEST,
                                  seed=chunk_seed("train"), **fields))
  memory_train, _, memory_info = datasets.load(memory_config)
  assert_same_batches(disk_train, memory_train)
  # The test split, in memory, is what load_sprites draws from the test chunk's seed.
  assert_same_arrays(disk_test, sprites.sample_pairs(memory_config, NUM_TEST, chunk_seed("test")))
  # The same facts for the model; the ground-truth sampler is the sprite grid's.
  assert dataclasses.replace(disk_info, ground_truth=None) == dataclasses.replace(
      memory_info, ground_truth=None)
  assert disk_info.transitions == fields["transitions"]
  assert isinstance(disk_info.ground_truth, sprites.SpritesGroundTruth)
  recorded = builders.metadata(f"{name}/tiny", tmp_path)
  assert recorded["transitions"] == fields["transitions"]
  assert tuple(recorded["factor_sizes"]) == sprites.FACTOR_SIZES
  assert tuple(recorded["factor_names"]) == sprites.FACTOR_NAMES


def test_sprites_tfds_info_of_a_dataset_built_before_the_metadata_held_transitions(tmp_path):
  data_config = build_one_chunk(tmp_path, "sprites_loc", {})
  metadata_file = tmp_path / "sprites_loc/tiny/1.0.0/metadata.json"
  assert json.loads(metadata_file.read_text())["transitions"] == "uniform"
  metadata_file.write_text(json.dumps(  # what the builder wrote before
      {"seed": 0, "chunk_size": NUM_TRAIN, "options": {}}))
  assert "transitions" not in builders.metadata("sprites_loc/tiny", tmp_path)
  assert datasets.load(data_config)[2].transitions == "uniform"  # the builder's own


def test_circles_dynamic_tfds_path_gives_the_in_memory_batches_and_info(tmp_path):
  disk_train, disk_test, disk_info = datasets.load(
      build_one_chunk(tmp_path, "circles_dynamic", {"num_frames": 4}))
  memory_config = ConfigDict(dict(name="circles_dynamic", num_train=NUM_TRAIN,
                                  num_test=NUM_TEST, seed=chunk_seed("train"), num_frames=4,
                                  min_distance=0.1, gauss_levels=32))
  memory_train, _, memory_info = datasets.load(memory_config)
  assert_same_batches(disk_train, memory_train)
  assert_same_arrays(disk_test, circles.dynamic_sequences(NUM_TEST, chunk_seed("test"),
                                                          num_frames=4))
  assert disk_info == memory_info
  assert disk_info.num_frames == 4 and disk_info.image_shape == (32, 32, 1)
  assert disk_info.factor_names == circles.FACTOR_NAMES


def test_circles_static_tfds_path_gives_the_in_memory_format_and_info(tmp_path):
  disk_train, disk_test, disk_info = datasets.load(build_one_chunk(tmp_path, "circles_static", {}))
  memory_config = ConfigDict(dict(name="circles_static", num_train=NUM_TRAIN, num_test=NUM_TEST,
                                  seed=0, circle_levels=16, gauss_levels=32))
  memory_train, memory_test, memory_info = datasets.load(memory_config)
  assert disk_info == memory_info and disk_info.num_frames is None
  # The stored grid points, in the in-memory loader's keys and dtypes (images -> frames).
  indices = builders.circles_static_indices(0, NUM_TRAIN, NUM_TEST)
  expected_train = {"frames": circles.render_indices(indices["train"]),
                    "factors": circles.factor_values_from_indices(indices["train"])}
  expected_test = {"frames": circles.render_indices(indices["test"]),
                   "factors": circles.factor_values_from_indices(indices["test"])}
  for expected, memory in ((expected_train, memory_train), (expected_test, memory_test)):
    assert jax.tree.map(lambda a: (a.dtype, a.shape[1:]), expected) == jax.tree.map(
        lambda a: (a.dtype, a.shape[1:]), memory)
  assert_same_arrays(disk_test, expected_test)
  assert_same_batches(disk_train, expected_train)
  assert not set(map(tuple, disk_test["factors"])) & set(
      map(tuple, pipeline.stack_examples([disk_train[i] for i in range(NUM_TRAIN)])["factors"]))


def test_tfds_path_names_the_datasets_it_reads(tmp_path):
  for name, match in (("sprites_brownian/default", "sprites_lap"),
                      ("circles/32", "circles_static")):
    with pytest.raises(ValueError, match=match):
      datasets.load(ConfigDict(dict(name="tfds", dataset=name, data_dir=str(tmp_path))))
  with pytest.raises(FileNotFoundError, match="python -m data.build --dataset=sprites_lap"):
    datasets.load(ConfigDict(dict(name="tfds", dataset="sprites_lap/rate1",
                                  data_dir=str(tmp_path))))


def test_real_videos_and_the_video_tfds_variant_go_together_in_one_line(tmp_path):
  """:tfds alone does not train a real_videos dataset (it lacks the video model settings), and
  :video,tfds reads nothing else; both say which variant to use, before reading anything."""
  with pytest.raises(ValueError, match=r"user video: train it with the :video,tfds variant"):
    datasets.load(ConfigDict(dict(name="tfds", dataset="real_videos/32_t20_grey",
                                  data_dir=str(tmp_path))))
  config = pendulum.get_config("video,tfds")
  config.data.update(dataset="physics_pendulum/32_t20", data_dir=str(tmp_path))
  with pytest.raises(ValueError, match=r"reads a built real_videos dataset .* use the :tfds"):
    datasets.load(config.data)
  config.data.update(dataset="real_videos/32_t20_grey")
  with pytest.raises(FileNotFoundError, match="--dataset=real_videos --config=32_t20_grey "
                     ".* --manual_dir="):
    datasets.load(config.data)
  config.data.update(system="pendlum")
  with pytest.raises(ValueError, match=r"data.system='pendlum' is not one of .*pendulum"):
    datasets.load(config.data)


def render_videos(folder, num_videos, num_frames):
  """Pendulum videos with angle truth files as a camera would write them (data.make_videos,
  20 fps mp4), and a corrupt file that ingestion skips."""
  make_videos.write_videos("pendulum", folder, num_videos=num_videos, num_frames=num_frames,
                           image_size=32, seed=0, fps=20.0)
  (folder / "corrupt.mp4").write_bytes(b"\x00" * 100)


def built_video_configs(tmp_path, folder, **data):
  """The pendulum's :video data config on `folder` (with `data` overrides) and its :video,tfds
  data config: the real_videos dataset of the same ingestion options, built into tmp_path."""
  video = pendulum.get_config("video").data
  video.update(video_dir=str(folder), cache_dir=str(tmp_path / "cache"), **data)
  built = ConfigDict(physics_configs.built_video_data_config(video))
  builders.build(built.dataset, data_dir=tmp_path / "tfds", manual_dir=folder)
  built.data_dir = str(tmp_path / "tfds")
  return video, built


VIDEO_FOLDERS = [  # (videos, frames each, ingestion options, split kind)
    (4, 24, dict(num_frames=6, image_size=16), "videos"),
    (1, 40, dict(num_frames=6, image_size=16, stride=3, channels=3, crop_box=(2, 2, 28, 28),
                 background="none"), "time"),
]


@pytest.mark.parametrize("num_videos, num_frames, options, split", VIDEO_FOLDERS,
                         ids=["held_out_videos", "one_video_rgb_crop_no_background"])
def test_real_videos_tfds_path_gives_the_video_ingestion(tmp_path, num_videos, num_frames,
                                                         options, split):
  render_videos(tmp_path / "videos", num_videos, num_frames)
  video, built = built_video_configs(tmp_path, tmp_path / "videos", **options)
  memory_train, memory_test, memory_info = datasets.load(video)
  disk_train, disk_test, disk_info = datasets.load(built)
  assert "latent" in memory_test  # the angle truth files
  assert_same_arrays(disk_train, memory_train)
  assert_same_arrays(disk_test, memory_test)
  for field in ("image_shape", "num_frames", "system", "dt", "test_clips"):
    assert getattr(disk_info, field) == getattr(memory_info, field), field
  assert disk_info.dt == 0.05 and disk_info.image_shape == (16, 16, options.get("channels", 1))
  disk, memory = disk_info.video, memory_info.video
  for field in ("dt", "videos", "skipped", "split", "truth"):
    assert getattr(disk, field) == getattr(memory, field), field
  assert disk.split == split and disk.truth == "angle"
  assert [name for name, _ in disk.skipped] == ["corrupt.mp4"]
  for name in ("train", "test"):  # which video each clip is from, and where it starts
    for field in ("source", "start"):
      np.testing.assert_array_equal(getattr(getattr(disk, name), field),
                                    getattr(getattr(memory, name), field))
  if split == "videos":
    assert not set(disk.train.source) & set(disk.test.source)


def test_slowvae_trains_end_to_end_through_the_tfds_path(tmp_path):
  from experiments import slowvae_sprites
  from tests.test_slowvae import tiny_config  # 3 steps of 4 pairs, quick metrics
  config = tiny_config()
  built = builders.GeneratedConfig(name="tiny", num_train=32, num_test=8, chunk_size=16,
                                   options={"rate": 1.0})
  builders.build("sprites_lap", built, data_dir=tmp_path / "tfds")
  config.data = slowvae_sprites.get_config("tfds").data  # the variant, pointed at the tiny build
  config.data.update(dataset="sprites_lap/tiny", data_dir=str(tmp_path / "tfds"))
  results = train.train_and_evaluate(config, tmp_path / "run")
  written = json.loads((tmp_path / "run" / "eval.json").read_text())
  assert written == pytest.approx(results)
  assert written["num_steps"] == 3 and 0.0 <= written["mcc"] <= 1.0
  assert {f"mcc_factor/{n}" for n in sprites.FACTOR_NAMES} <= set(written)
  assert all(np.isfinite(v) for v in written.values())
  lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
  assert any("train/laplace_kl" in json.loads(line) for line in lines)


def test_physics_vae_trains_end_to_end_on_built_real_videos(tmp_path):
  """:video,tfds is :video but for the data config (so, with the same inputs as
  test_real_videos_tfds_path_gives_the_video_ingestion checks, the same training), and trains
  from a built folder to eval.json with the truth scores."""
  config = pendulum.get_config("video,tfds,tiny")
  video = pendulum.get_config("video,tiny")
  assert {**config.to_dict(), "data": None} == {**video.to_dict(), "data": None}
  assert config.model.prior_time_step == 0.2 and config.model.calibrate_scale
  assert config.data.dataset == "real_videos/32_t8_grey"  # :video,tiny's ingestion options
  assert config.data.system == "pendulum"
  render_videos(tmp_path / "videos", 4, 16)
  builders.build(config.data.dataset, data_dir=tmp_path / "tfds", manual_dir=tmp_path / "videos")
  config.data.data_dir = str(tmp_path / "tfds")
  results = train.train_and_evaluate(config, tmp_path / "run")
  written = json.loads((tmp_path / "run" / "eval.json").read_text())
  assert sorted(written) == sorted(results)
  for key in ("latent/abs_pearson_r", "latent/r2", "latent/slope", "latent/angle_error_rad",
              "latent/physical_scale"):
    assert np.isfinite(written[key]), key
  assert written["data/dt"] == pytest.approx(0.05) and written["data/num_videos"] == 4
  assert written["data/num_skipped"] == 1 and written["num_steps"] == 6
  for name in ("larger_amplitude", "air_drag", "longer_rod"):
    assert (tmp_path / "run" / "videos" / f"{name}.gif").stat().st_size > 0


def test_circles_dynamic_trains_end_to_end_through_its_tfds_variant(tmp_path):
  built = builders.GeneratedConfig(name="tiny", num_train=32, num_test=8, chunk_size=32,
                                   options={"num_frames": 10})
  builders.build("circles_dynamic", built, data_dir=tmp_path / "tfds")
  config = circles_dynamic.get_config("inertia,tiny,tfds")
  assert config.data.to_dict() == dict(name="tfds", dataset="circles_dynamic/32_t10", data_dir="")
  config.data.update(dataset="circles_dynamic/tiny", data_dir=str(tmp_path / "tfds"))
  train.train_and_evaluate(config, tmp_path / "run")
  results = json.loads((tmp_path / "run" / "eval.json").read_text())
  for key in ("mcc", "inertia_mcc", "sweep_max_abs_corr", "recon_mse_per_pixel"):
    assert np.isfinite(results[key]), key
  assert results["num_steps"] == config.train.num_steps


def test_a_dataset_with_float_frames_is_refused_in_one_line(tmp_path, monkeypatch):
  """Circles datasets built before frames were stored as uint8 hold float32 frames: loading one
  names the dataset and the rebuild command before any training."""
  built = builders.GeneratedConfig(name="tiny", num_train=8, num_test=4, chunk_size=8)
  builders.build("circles_dynamic", built, data_dir=tmp_path)
  load = builders.load

  class FloatFrames:  # the stored examples, as an old build held them
    def __init__(self, source):
      self.source = source
    def __len__(self):
      return len(self.source)
    def __getitem__(self, i):
      example = dict(self.source[i])
      example["frames"] = example["frames"].astype(np.float32) / 255.0
      return example

  monkeypatch.setattr(builders, "load", lambda *a, **k: FloatFrames(load(*a, **k)))
  with pytest.raises(ValueError, match=r"stores float32 frames .* rebuild it: python -m data"):
    datasets.load(ConfigDict(dict(name="tfds", dataset="circles_dynamic/tiny",
                                  data_dir=str(tmp_path))))
