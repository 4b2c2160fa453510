"""User videos: ingestion (frame rate, held-out videos, truth files, background removal, skipped
files, cache), the camera nuisances of the renderer, the grain / tfds input path, and the one
command from a rendered mp4 folder to eval.json."""
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from data import builders, camera, make_videos, physics, pipeline, user_video, video
from nlvae import datasets

ROOT = pathlib.Path(__file__).parent.parent


def disc_video(num_frames, size=48, seed=0, flicker=0.0):
  """A bright disc moving right over a static random texture: (uint8 [F, S, S, 1], centre col)."""
  rng = np.random.default_rng(seed)
  background = 0.2 + 0.3 * rng.random((size, size))
  rows, cols = np.mgrid[:size, :size] + 0.5
  centres = 8 + np.arange(num_frames) * (size - 16) / max(num_frames - 1, 1)
  frames = []
  for t, centre in enumerate(centres):
    disc = np.clip(4.5 - np.hypot(rows - size / 2, cols - centre), 0, 1)
    frame = background * (1 - disc) + 0.95 * disc
    frames.append(frame * (1 + flicker * (-1) ** t))
  return np.round(np.clip(np.stack(frames), 0, 1) * 255).astype(np.uint8)[..., None], centres


def test_remove_background_keeps_the_moving_disc_and_drops_scene_and_flicker():
  frames, centres = disc_video(30, flicker=0.08)
  moving = user_video.remove_background(frames).astype(np.float32)[..., 0]
  for t in (0, 15, 29):
    column_mass = moving[t].sum(axis=0)
    centre = (column_mass * (np.arange(48) + 0.5)).sum() / column_mass.sum()
    assert abs(centre - centres[t]) < 1.0
  far = np.abs(np.arange(48)[None, :] + 0.5 - centres[:, None]) > 8  # [F, W] columns off the disc
  assert moving.transpose(0, 2, 1)[far].mean() < 3  # of 255: static texture and flicker removed
  assert moving.max() == 255


@pytest.mark.parametrize("disc_value", [0.95, 0.02])  # brighter and darker than the scene
def test_remove_background_leaves_no_ghost_of_an_object_that_lingers(disc_value):
  # A disc held still for 14 of 20 frames (a ball before it is dropped), then moving away: the
  # per-pixel median is the disc there, and subtracting it leaves a ghost in the last frames.
  # The "quantile" background (the falling object's) does not.
  size, rng = 48, np.random.default_rng(3)
  background = 0.3 + 0.2 * rng.random((size, size))
  rows, cols = np.mgrid[:size, :size] + 0.5
  centres = np.concatenate([np.full(14, 12.0), 12.0 + 5.0 * np.arange(1, 7)])
  discs = np.clip(4.5 - np.hypot(rows - size / 2, cols[None] - centres[:, None, None]), 0, 1)
  frames = background * (1 - discs) + disc_value * discs + rng.normal(0, 0.01, discs.shape)
  frames = np.round(np.clip(frames, 0, 1) * 255).astype(np.uint8)[..., None]
  moving = user_video.remove_background(frames, user_video.BACKGROUND_QUANTILE)
  moving = moving.astype(np.float32)[..., 0]
  held = np.hypot(rows - size / 2, cols - 12.0) < 4  # where the disc was held
  for t in range(15, 20):  # the disc clear of where it was held
    assert moving[t][held].mean() < 10, t  # of 255: no ghost there
    column_mass = moving[t].sum(axis=0)
    centre = (column_mass * (np.arange(size) + 0.5)).sum() / column_mass.sum()
    assert abs(centre - centres[t]) < 1.0
  assert moving[0][held].mean() > 100  # the held disc itself is kept
  ghost = user_video.remove_background(frames, 0.5).astype(np.float32)[..., 0]  # "median"
  assert ghost[15:][:, held].mean() > 50  # the median does leave one: the case is a real one
  # The option reaches the ingestion and the real_videos names.
  named = user_video.options_from_name("32_t20_grey_bgquantile")
  assert named.background == "quantile"
  assert user_video.config_name(named) == "32_t20_grey_bgquantile"


def write_folder(folder, lengths, fps=20.0, truth=True):
  """Videos of the given lengths with angle truth files; returns the truths."""
  folder.mkdir(parents=True, exist_ok=True)
  truths = []
  for i, length in enumerate(lengths):
    frames, centres = disc_video(length, seed=i)
    video.write_video(folder / f"v{i}.mp4", frames, fps=fps)
    truths.append(centres.astype(np.float32))
    if truth:
      np.save(folder / f"v{i}.angle.npy", truths[-1])
  return truths


def options(**overrides):
  return user_video.IngestOptions(**(dict(system="pendulum", num_frames=8, stride=4,
                                          image_size=16) | overrides))


def test_folder_holds_out_whole_videos_with_aligned_truth_and_frame_rate(tmp_path):
  truths = write_folder(tmp_path / "videos", [24, 24, 24, 24, 24], fps=25.0)
  (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video at all")
  frames, _ = disc_video(5)
  video.write_video(tmp_path / "videos" / "short.gif", frames, fps=25.0)
  lines = []
  data = user_video.load_folder(tmp_path / "videos", options(), cache_dir=tmp_path / "cache",
                                log=lines.append)
  assert data.dt == pytest.approx(1 / 25)
  assert data.split == "videos" and data.truth == "angle"
  assert sorted(name for name, _ in data.skipped) == ["broken.mp4", "short.gif"]
  assert len(lines) == 2 and all("\n" not in line for line in lines)
  assert any("fewer than one clip" in line for line in lines)
  train_videos, test_videos = set(data.train.source), set(data.test.source)
  assert not train_videos & test_videos and len(train_videos | test_videos) == 5
  assert len(test_videos) == 1  # 20% of 5 videos
  for split in (data.train, data.test):
    assert split.frames.shape[1:] == (8, 16, 16, 1)
    for i in range(len(split.frames)):  # the truth follows each clip's video and start frame
      np.testing.assert_array_equal(split.states["angle"][i],
                                    truths[split.source[i]][split.start[i]:split.start[i] + 8])
    np.testing.assert_array_equal(data.arrays("train")["latent"], data.train.states["angle"])
  assert sorted(data.train.start[data.train.source == data.train.source[0]]) == [0, 4, 8, 12, 16]


def test_one_video_is_split_in_time_and_a_short_one_evaluates_on_train(tmp_path):
  write_folder(tmp_path / "long", [60])
  data = user_video.load_folder(tmp_path / "long", options(test_fraction=0.3),
                                cache_dir=tmp_path / "c", log=None)
  assert data.split == "time"
  assert (data.train.start + 8).max() <= 42 <= data.test.start.min()
  write_folder(tmp_path / "short", [10])
  lines = []
  data = user_video.load_folder(tmp_path / "short", options(), cache_dir=tmp_path / "c",
                                log=lines.append)
  assert data.split == "none" and len(data.test.frames) == len(data.train.frames) == 1
  assert any("evaluating on the training clips" in line for line in lines)


def test_cache_is_reused_and_rebuilt_when_a_file_or_option_changes(tmp_path, monkeypatch):
  write_folder(tmp_path / "v", [24, 24])
  first = user_video.load_folder(tmp_path / "v", options(), cache_dir=tmp_path / "c", log=None)
  calls = []
  original = user_video._ingest_one
  monkeypatch.setattr(user_video, "_ingest_one", lambda *a: calls.append(a) or original(*a))
  again = user_video.load_folder(tmp_path / "v", options(), cache_dir=tmp_path / "c", log=None)
  assert not calls
  np.testing.assert_array_equal(again.train.frames, first.train.frames)
  user_video.load_folder(tmp_path / "v", options(image_size=8), cache_dir=tmp_path / "c",
                         log=None)
  assert len(calls) == 2
  frames, _ = disc_video(30, seed=7)
  video.write_video(tmp_path / "v" / "v1.mp4", frames, fps=20.0)
  np.save(tmp_path / "v" / "v1.angle.npy", np.zeros(30, np.float32))
  changed = user_video.load_folder(tmp_path / "v", options(), cache_dir=tmp_path / "c", log=None)
  assert len(calls) == 4 and changed.videos[1]["num_frames"] == 30
  assert not list((tmp_path / "c").rglob("*.tmp"))


def test_without_a_system_every_state_is_read_and_a_crop_that_does_not_fit_skips(tmp_path,
                                                                                 monkeypatch):
  """system "" (a real_videos build) keeps every state whose truth file every video has; a crop
  box that does not fit a video skips that video with the reason."""
  monkeypatch.setenv("NLVAE_CACHE", str(tmp_path / "cache"))
  truths = write_folder(tmp_path / "v", [24, 24, 24])
  np.save(tmp_path / "v" / "v0.position.npy", np.ones(24, np.float32))  # one video only
  np.save(tmp_path / "v" / "v1.height.npy", np.ones(5, np.float32))  # malformed, another state
  video.write_video(tmp_path / "v" / "small.gif", disc_video(24, size=20)[0], fps=20.0)
  lines = []
  data = user_video.load_folder(tmp_path / "v", options(system="", crop_box=(2, 2, 40, 40)),
                                cache=False, log=lines.append)
  assert [name for name, _ in data.skipped] == ["small.gif"] and "crop box" in data.skipped[0][1]
  assert data.truth is None and sorted(data.train.states) == ["angle"]
  assert any("v1.mp4, v2.mp4 has no <stem>.position.npy" in line for line in lines)
  # The malformed file of a state no system asked for drops that state, not the video.
  assert any(line.startswith("Ignoring the height truth of v1.mp4") and "has shape (5,)" in line
             for line in lines)
  assert "latent" not in data.arrays("train")
  for split in (data.train, data.test):
    for i in range(len(split.frames)):
      np.testing.assert_array_equal(split.states["angle"][i],
                                    truths[split.source[i]][split.start[i]:split.start[i] + 8])
  pendulum = user_video.load_folder(tmp_path / "v", options(crop_box=(2, 2, 40, 40)),
                                    cache=False, log=None)
  assert pendulum.truth == "angle" and sorted(pendulum.train.states) == ["angle"]
  np.testing.assert_array_equal(pendulum.train.frames, data.train.frames)
  assert not (tmp_path / "cache").exists()  # cache=False wrote no cache


def test_bad_folders_and_truth_files_give_one_line(tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist"):
    user_video.load_folder(tmp_path / "missing", options(), log=None)
  (tmp_path / "empty").mkdir()
  with pytest.raises(ValueError, match="no videos in"):
    user_video.load_folder(tmp_path / "empty", options(), log=None)
  write_folder(tmp_path / "bad", [24])
  np.save(tmp_path / "bad" / "v0.angle.npy", np.zeros(5))
  data = None
  with pytest.raises(ValueError, match="no usable video.*truth file v0.angle.npy has shape"):
    data = user_video.load_folder(tmp_path / "bad", options(), cache_dir=tmp_path / "c",
                                  log=None)
  assert data is None
  write_folder(tmp_path / "rates", [24])
  video.write_video(tmp_path / "rates" / "other.mp4", disc_video(24)[0], fps=30.0)
  with pytest.raises(ValueError, match="different frame rates"):
    user_video.load_folder(tmp_path / "rates", options(), cache_dir=tmp_path / "c", log=None)
  folder = tmp_path / "frames" / "take1"
  video.write_video(folder, disc_video(12)[0])  # a frame folder has no frame rate
  with pytest.raises(ValueError, match="set --config.data.dt"):
    user_video.load_folder(tmp_path / "frames", options(), cache_dir=tmp_path / "c", log=None)
  data = user_video.load_folder(tmp_path / "frames", options(dt=0.1), cache_dir=tmp_path / "c",
                                log=None)
  assert data.dt == 0.1 and data.truth is None
  # A real_videos config name must carry dt exactly (dt = 1 / fps).
  assert user_video.config_name(options(dt=0.05)).endswith("_fps20")
  with pytest.raises(ValueError, match="not 1 / \\(a frame rate"):
    user_video.config_name(options(dt=0.033))


def test_plane_map_is_the_identity_head_on_and_foreshortens_at_an_angle():
  rows, cols = camera.plane_to_image_map(32, 0.0, 0.0, np.zeros((1, 2)))
  centres = np.arange(32) + 0.5
  np.testing.assert_allclose(cols[0], np.broadcast_to(centres, (32, 32)), atol=1e-4)
  np.testing.assert_allclose(rows[0], np.broadcast_to(centres[:, None], (32, 32)), atol=1e-4)
  rows, cols = camera.plane_to_image_map(32, 0.0, 0.0, np.array([[2.0, -1.0]]))
  np.testing.assert_allclose(cols[0] + 2.0, np.broadcast_to(centres, (32, 32)), atol=1e-4)
  np.testing.assert_allclose(rows[0] - 1.0, np.broadcast_to(centres[:, None], (32, 32)), atol=1e-4)
  _, cols = camera.plane_to_image_map(32, 30.0, 0.0, np.zeros((1, 2)))
  # At the centre row, one image pixel spans 1 / cos(30 deg) plane pixels (to first order).
  assert np.diff(cols[0, 16, 15:17])[0] == pytest.approx(1 / np.cos(np.deg2rad(30)), rel=0.02)


@pytest.mark.parametrize("system", ["spring", "pendulum", "falling"])
def test_realistic_rendering_is_deterministic_and_differs_from_clean(system):
  kwargs = dict(num_frames=6, image_size=32)
  realistic = physics.generate(system, 2, 3, **kwargs, **physics.REALISTIC_OPTIONS)
  again = physics.generate(system, 2, 3, **kwargs, **physics.REALISTIC_OPTIONS)
  clean = physics.generate(system, 2, 3, **kwargs)
  np.testing.assert_array_equal(realistic.frames, again.frames)
  np.testing.assert_array_equal(realistic.latent, clean.latent)  # same physics, other imaging
  assert realistic.frames.shape[-1] == 3
  assert np.abs(realistic.frames.astype(float).mean(-1, keepdims=True) - clean.frames).mean() > 10


def test_a_shadow_shows_only_on_a_background_so_the_study_renders_the_pair():
  """A drop shadow darkens the background: on the default black one it changes no pixel, so
  the robustness study's 'shadow' alone would be a clean render; 'background+shadow' is both."""
  kwargs = dict(num_frames=4, image_size=32)
  clean = physics.generate("pendulum", 2, 3, **kwargs)
  np.testing.assert_array_equal(
      physics.generate("pendulum", 2, 3, **kwargs, shadow=0.5).frames, clean.frames)
  pair = make_videos.nuisance_options("background+shadow")
  assert pair == {"background": "room", "shadow": physics.REALISTIC_OPTIONS["shadow"]}
  room = physics.generate("pendulum", 2, 3, **kwargs, background="room").frames.astype(float)
  shadowed = physics.generate("pendulum", 2, 3, **kwargs, **pair).frames.astype(float)
  assert np.all(shadowed <= room) and (room - shadowed).max() > 20
  with pytest.raises(ValueError, match="unknown nuisance 'shadows'"):
    make_videos.nuisance_options("background+shadows")


def test_a_misspelt_nuisance_stops_the_study_with_one_line_before_any_work(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "experiments.robustness", "--nuisances=occluder,background+shadows",
       f"--out={tmp_path / 'study'}"], cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert result.returncode != 0
  assert result.stderr.strip().splitlines() == [result.stderr.strip()]
  assert "--nuisances: unknown nuisance 'shadows'" in result.stderr
  assert not (tmp_path / "study").exists()


def test_physics_config_accepts_every_render_option_as_an_override():
  from experiments import pendulum
  config = pendulum.get_config("")
  for name in physics.default_options("pendulum"):
    assert name in config.data.options
  config.data.options.sensor_noise = 0.05  # locked configs reject unknown keys only


def test_grain_and_tfds_path_gives_the_in_memory_batches_resumes_and_shards(tmp_path):
  config = builders.GeneratedConfig(name="tiny", num_train=12, num_test=4, chunk_size=6,
                                    options=dict(num_frames=4, image_size=16))
  builders.build("physics_spring", config, data_dir=tmp_path)
  source = builders.load("physics_spring/tiny", "train", tmp_path)
  in_memory = pipeline.stack_examples([source[i] for i in range(len(source))])
  disk = pipeline.Batches(source, 4, seed=5, process_index=0, process_count=1)
  memory = pipeline.Batches(in_memory, 4, seed=5, process_index=0, process_count=1)
  stream = list(pipeline.prefetched(disk, 0, 7))
  for step, batch in enumerate(stream):  # crosses two epoch boundaries (3 steps per epoch)
    np.testing.assert_array_equal(batch["frames"], memory.batch(step)["frames"])
    np.testing.assert_array_equal(batch["params"]["omega"], memory.batch(step)["params"]["omega"])
  resumed = list(pipeline.prefetched(disk, 4, 3))  # mid-epoch
  for a, b in zip(resumed, stream[4:]):
    np.testing.assert_array_equal(a["frames"], b["frames"])
  shards = [pipeline.Batches(source, 4, seed=5, process_index=p, process_count=2)
            for p in (0, 1)]
  for step in range(6):
    local = [s.indices(step) for s in shards]
    assert not set(local[0]) & set(local[1])
    np.testing.assert_array_equal(np.concatenate(local), disk.indices(step))
  # The training loop's loader: the train split stays on disk, test is rebuilt as Clips.
  from ml_collections import ConfigDict
  train, test, info = datasets.load(ConfigDict(dict(name="tfds", dataset="physics_spring/tiny",
                                                    data_dir=str(tmp_path))))
  assert len(train) == 12 and test["frames"].shape == (4, 4, 16, 16, 1)
  again = physics.resimulate(info.test_clips)
  np.testing.assert_array_equal(again.frames, test["frames"])


def test_user_video_command_from_mp4_to_eval_json_with_truth(tmp_path):
  videos = tmp_path / "videos"
  make_videos.write_videos("pendulum", videos, num_videos=4, num_frames=24, image_size=48,
                           seed=0, fps=20.0, realistic=True)
  (videos / "corrupt.mp4").write_bytes(b"\x00" * 100)
  workdir = tmp_path / "run"
  env = dict(os.environ, NLVAE_CACHE=str(tmp_path / "cache"))
  result = subprocess.run(
      [sys.executable, "-m", "experiments.run", "--config=experiments/pendulum.py:video,tiny",
       f"--config.data.video_dir={videos}", f"--workdir={workdir}"],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "Skipping corrupt.mp4" in result.stdout + result.stderr
  results = json.loads((workdir / "eval.json").read_text())
  for key in ("latent/abs_pearson_r", "latent/r2", "latent/slope", "latent/angle_error_rad"):
    assert np.isfinite(results[key])
  assert results["data/dt"] == pytest.approx(0.05) and results["data/num_skipped"] == 1
  assert results["latent/physical_scale"] != 0  # the scale fitted to the prior's physics
  assert results["latent/posterior_var_ratio"] > 0  # the collapse diagnostic, truth or not
  assert results["data/num_videos"] == 4
  for name in ("larger_amplitude", "air_drag", "longer_rod"):
    assert (workdir / "videos" / f"{name}.gif").stat().st_size > 0
    assert np.isfinite(results[f"intervention/{name}/latent_rms_change"])
  for name in ("latent_space", "latent_trajectories", "reconstructions", "training_curves"):
    assert (workdir / "figures" / f"{name}.png").exists()
