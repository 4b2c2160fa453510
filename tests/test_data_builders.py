"""Tests of data.builders (TFDS without TensorFlow), data.build and data.benchmark.

Every dataset is built with a tiny custom config into tmp_path, read back with the random-access
data source and compared with the generator called on the same chunk plan.
"""

import filecmp
import json
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from data import benchmark, builders, circles, physics, pipeline, sprites, user_video, video
from data import build as build_cli

tfds.disable_progress_bar()


def tiny(**overrides):
  """A custom config of 5 train and 3 test examples, generated 2 at a time."""
  return builders.GeneratedConfig(**(dict(name="tiny", num_train=5, num_test=3, chunk_size=2)
                                     | overrides))


def read_all(source):
  """Every example of a data source, stacked."""
  return pipeline.stack_examples([source[i] for i in range(len(source))])


def concat_chunks(generate, config, split):
  """What the split must hold: the generator's outputs over the chunk plan, concatenated."""
  chunks = [generate(count, seed) for seed, count in builders.chunk_plan(
      config.seed, split, config.num_examples(split), config.chunk_size)]
  return jax.tree.map(lambda *arrays: np.concatenate(arrays), *chunks)


def assert_tree_equal(got, expected):
  assert jax.tree.structure(got) == jax.tree.structure(expected)
  for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
    assert g.shape == e.shape
    if np.issubdtype(e.dtype, np.floating):
      np.testing.assert_allclose(g, e, rtol=0, atol=1e-6)
    else:
      np.testing.assert_array_equal(g, e)


def physics_generator(system, options):
  def generate(count, seed):
    clips = physics.generate(system, count, seed, **options)
    return {"frames": clips.frames, "latent": clips.latent, "states": clips.states,
            "params": clips.params, "initial": clips.initial, "render_seed": clips.render_seed}
  return generate


GENERATED = [(f"physics_{s}", {"image_size": 16, "num_frames": 6},
              physics_generator(s, {"image_size": 16, "num_frames": 6}))
             for s in physics.SYSTEMS] + [
    ("sprites_lap", {"rate": 2.0}, lambda n, seed: sprites.lap_pairs(n, seed, rate=2.0)),
    ("sprites_loc", {}, sprites.loc_pairs),
    ("sprites_natural", {}, sprites.natural_pairs),
    ("circles_dynamic", {"num_frames": 4},
     lambda n, seed: circles.dynamic_sequences(n, seed, num_frames=4)),
]


@pytest.mark.parametrize("name, options, generate", GENERATED, ids=[g[0] for g in GENERATED])
def test_generated_dataset_round_trip(tmp_path, name, options, generate):
  config = tiny(options=options)
  builder = builders.build(name, config, data_dir=tmp_path)
  assert builder.info.splits["train"].num_examples == 5
  for split in ("train", "test"):
    source = builders.load(name, split, tmp_path, config="tiny")
    expected = concat_chunks(generate, config, split)
    assert_tree_equal(read_all(source), expected)
  # Train and test use different seeds.
  train = read_all(builders.load(f"{name}/tiny", "train", tmp_path))
  test = read_all(builders.load(f"{name}/tiny", "test", tmp_path))
  assert not np.array_equal(train["frames"][:3], test["frames"])


def test_physics_metadata_records_dt_and_options(tmp_path):
  options = {"image_size": 16, "num_frames": 6}
  builders.build("physics_pendulum", tiny(options=options), data_dir=tmp_path)
  metadata = json.loads(
      (tmp_path / "physics_pendulum/tiny/1.0.0/metadata.json").read_text())
  clips = physics.generate("pendulum", 1, 0, **options)
  assert metadata["dt"] == pytest.approx(clips.dt)
  assert metadata["generator_options"]["image_size"] == 16
  assert metadata["generator_options"]["fps"] == pytest.approx(1 / clips.dt)


def test_circles_static_round_trip_with_disjoint_splits(tmp_path):
  config = tiny()
  builders.build("circles_static", config, data_dir=tmp_path)
  indices = builders.circles_static_indices(config.seed, 5, 3)
  assert not set(map(tuple, indices["train"])) & set(map(tuple, indices["test"]))
  for split in ("train", "test"):
    expected = {"images": circles.render_indices(indices[split]),
                "factors": circles.factor_values_from_indices(indices[split]),
                "indices": indices[split]}
    assert_tree_equal(read_all(builders.load("circles_static/tiny", split, tmp_path)), expected)


def test_same_config_same_bytes(tmp_path):
  for directory in ("a", "b"):
    builders.build("sprites_loc", tiny(), data_dir=tmp_path / directory)
  files = sorted(p.name for p in (tmp_path / "a/sprites_loc/tiny/1.0.0").iterdir())
  assert any("train.array_record" in f for f in files)
  match, mismatch, errors = filecmp.cmpfiles(
      tmp_path / "a/sprites_loc/tiny/1.0.0", tmp_path / "b/sprites_loc/tiny/1.0.0", files,
      shallow=False)
  assert not mismatch and not errors and len(match) == len(files)


def test_named_configs_are_consistent():
  for name, cls in builders.BUILDERS.items():
    names = [c.name for c in cls.BUILDER_CONFIGS]
    assert names and len(set(names)) == len(names), name
  for config in builders.PhysicsSpring.BUILDER_CONFIGS:
    size, frames = config.name.split("_t")
    assert config.options == {"image_size": int(size), "num_frames": int(frames), "channels": 1}
  assert builders.chunk_plan(0, "train", 5, 2)[-1][1] == 1
  assert sum(count for _, count in builders.chunk_plan(3, "test", 1000, 256)) == 1000
  seeds = {s for split in ("train", "test") for s, _ in builders.chunk_plan(0, split, 10, 2)}
  assert len(seeds) == 10  # every chunk of either split has its own seed


def test_real_videos_config_names():
  config = builders.real_videos_config("64_t30_rgb_stride2_crop0x80x480x480_test10_bgnone_fps25")
  options = config.options
  assert (options.image_size, options.num_frames, options.channels) == (64, 30, 3)
  assert options.stride == 2
  assert options.crop_box == (0, 80, 480, 480) and options.test_fraction == pytest.approx(0.1)
  assert options.background == "none" and options.dt == pytest.approx(0.04)
  assert options.system == ""  # every state's truth files are read
  default = builders.real_videos_config("32_t20_grey").options
  # The :video variant's default ingestion (experiments/configs/physics.py video_data_config).
  assert default == user_video.IngestOptions(system="")
  assert (default.channels, default.clip_stride, default.crop_box) == (1, 5, ())
  for name in ("32_t20_grey", "64_t20_rgb_stride2_crop0x80x480x480_test20",
               "8_t4_grey_stride2_test50_fps10", "16_t6_rgb_bgnone_fps29.97"):
    assert user_video.config_name(user_video.options_from_name(name)) in (
        name, name.replace("_test20", ""))  # names parse as before; the default part is dropped
  # An explicit stride of T // 4 is the default stride: one ingestion, one name.
  assert user_video.config_name(user_video.options_from_name("32_t20_grey_stride5")) == "32_t20_grey"
  with pytest.raises(ValueError, match="Bad real_videos config"):
    builders.real_videos_config("32_t20_gray")


@pytest.fixture
def video_folder(tmp_path):
  """Two 24-frame videos (gif at 10 fps, frame folder) and a corrupt mp4."""
  rng = np.random.default_rng(1)
  folder = tmp_path / "videos"
  folder.mkdir()
  video.write_video(folder / "one.gif", rng.integers(0, 256, (24, 32, 32, 1), dtype=np.uint8))
  video.write_video(folder / "two", rng.integers(0, 256, (24, 20, 30, 3), dtype=np.uint8))
  (folder / "bad.mp4").write_bytes(rng.bytes(2048))
  return folder


def test_real_videos_round_trip_through_user_video(tmp_path, video_folder):
  """The stored clips are data.user_video.load_folder's, feature by feature, with its metadata."""
  name = "8_t4_grey_stride2_test50_fps10"  # the frame folder has no frame rate of its own
  np.save(video_folder / "one.angle.npy", np.arange(24, dtype=np.float32))
  np.save(video_folder / "two.angle.npy", -np.arange(24, dtype=np.float32))
  builder = builders.build("real_videos", name, data_dir=tmp_path / "tfds",
                           manual_dir=video_folder)
  ingested = user_video.load_folder(video_folder, user_video.options_from_name(name),
                                    cache=False, log=None)
  assert ingested.split == "videos" and ingested.dt == pytest.approx(0.1)
  for split in ("train", "test"):
    examples = read_all(builders.load("real_videos", split, tmp_path / "tfds", config=name))
    clips = getattr(ingested, split)
    for key in ("frames", "source", "start"):
      np.testing.assert_array_equal(examples[key], getattr(clips, key))
    np.testing.assert_array_equal(examples["states"]["angle"], clips.states["angle"])
    assert np.isnan(examples["states"]["position"]).all()  # no position files
    assert (examples["dt"] == ingested.dt).all()
  metadata = builder.info.metadata
  assert metadata["states"] == ["angle"] and metadata["split"] == "videos"
  assert [v["name"] for v in metadata["videos"]] == ["one.gif", "two"]
  assert sorted(v["split"] for v in metadata["videos"]) == ["test", "train"]
  assert len(metadata["skipped"]) == 1 and metadata["skipped"][0][0] == "bad.mp4"
  assert metadata["dt"] == ingested.dt and metadata["options"]["stride"] == 2


def test_real_videos_builds_are_keyed_by_their_files_and_clean_up(tmp_path, video_folder):
  name, data_dir = "8_t4_grey_stride2_test25_fps10", tmp_path / "tfds"
  leftover = data_dir / "real_videos" / name / "incomplete.ABC_3.0.0"
  leftover.mkdir(parents=True)
  builders.build("real_videos", name, data_dir=data_dir, manual_dir=video_folder)
  assert not leftover.exists()  # a killed build's temporary folder is removed
  builders.build("real_videos", name, data_dir=data_dir, manual_dir=video_folder)  # same files
  np.save(video_folder / "one.angle.npy", np.zeros(24, np.float32))  # a truth file is a file too
  with pytest.raises(ValueError, match="was built from other files"):
    builders.build("real_videos", name, data_dir=data_dir, manual_dir=video_folder)
  other = tmp_path / "other"
  other.mkdir()
  video.write_video(other / "three.gif", np.zeros((24, 16, 16, 1), np.uint8))
  with pytest.raises(ValueError, match="was built from other files"):
    builders.build("real_videos", name, data_dir=data_dir, manual_dir=other)
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="holds no videos"):
    builders.build("real_videos", "8_t4_grey", data_dir=data_dir, manual_dir=tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="does not exist"):
    builders.build("real_videos", "8_t4_grey", data_dir=data_dir, manual_dir=tmp_path / "none")


def test_a_real_videos_dataset_of_an_old_builder_version_names_the_rebuild(tmp_path):
  old = tmp_path / "real_videos" / "32_t20_grey" / "1.0.0"
  old.mkdir(parents=True)
  (old / "dataset_info.json").write_text("{}")
  with pytest.raises(FileNotFoundError, match=(
      r"built by builder version 1.0.0; this code reads version 3.0.0: rebuild it with python -m "
      r"data.build --dataset=real_videos --config=32_t20_grey --data_dir=.* --manual_dir=")):
    builders.load("real_videos/32_t20_grey", "train", tmp_path)


def test_load_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="python -m data.build --dataset=physics_spring"):
    builders.load("physics_spring", "train", tmp_path)
  with pytest.raises(ValueError, match="Unknown dataset"):
    builders.load("physics_sprung", "train", tmp_path)
  with pytest.raises(ValueError, match="Unknown config"):
    builders.get_builder("sprites_loc", "huge", tmp_path)
  builders.build("sprites_natural", tiny(), data_dir=tmp_path)
  with pytest.raises(ValueError, match="no split 'validation'"):
    builders.load("sprites_natural/tiny", "validation", tmp_path)


def test_pipeline_over_a_built_dataset_matches_in_memory(tmp_path):
  builders.build("sprites_lap", tiny(num_train=12), data_dir=tmp_path)
  source = builders.load("sprites_lap/tiny", "train", tmp_path)
  from_disk = pipeline.Batches(source, 4, seed=0, process_index=0, process_count=1)
  in_memory = pipeline.Batches(read_all(source), 4, seed=0, process_index=0, process_count=1)
  for step in (0, 4):
    assert_tree_equal(from_disk.batch(step), in_memory.batch(step))


def test_preview_video_layout():
  pairs = sprites.loc_pairs(3, 0)
  examples = [jax.tree.map(lambda a: a[i], pairs) for i in range(3)]
  preview = build_cli.preview_video(examples)
  # Three 2-frame 64x64 videos with 2-pixel gaps, upscaled 2x to reach 128 pixels.
  assert preview.shape == (2, 128, 2 * (3 * 64 + 2 * 2), 1)
  np.testing.assert_array_equal(preview[:, ::2, :128:2], pairs["frames"][0])
  images = circles.static_sample(2, 0)
  preview = build_cli.preview_video([{"images": images["images"][i]} for i in range(2)])
  assert preview.shape == (1, 128, 4 * (2 * 32 + 2), 1)


def test_build_cli_real_videos_with_preview(tmp_path, video_folder):
  preview = tmp_path / "preview.gif"
  result = subprocess.run(
      [sys.executable, "-m", "data.build", "--dataset=real_videos", "--config=8_t4_rgb_fps10",
       f"--data_dir={tmp_path / 'tfds'}", f"--manual_dir={video_folder}",
       f"--preview={preview}", "--preview_count=3"],
      capture_output=True, text=True, timeout=120)
  assert result.returncode == 0, result.stderr[-2000:]
  # Two videos of 24 frames, 21 clips each (stride 1): one video is held out.
  assert "train: 21 examples" in result.stdout and "test: 21 examples" in result.stdout
  assert "bad.mp4" in result.stdout
  # Three 4-frame 8x8 clips with 2-pixel gaps, upscaled 16x to 128 pixels.
  assert video.read_video(preview, channels=3).shape == (4, 128, 3 * 128 + 2 * 2 * 16, 3)


def test_benchmark_frame_counts():
  for name, (frames, call) in benchmark.generators(scale=1 / 256).items():
    output = call(0)
    images = output.frames if hasattr(output, "frames") else output.get(
        "frames", output.get("images"))
    assert np.prod(images.shape[:-3]) == frames, name
