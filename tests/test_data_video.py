"""Tests of data.video: round trips through mp4, gif and PNG folders, and preprocessing."""

import numpy as np
import pytest

from data import physics, video


def moving_disc(num_frames=16, height=32, width=32, radius=5.0):
  """uint8 [T, H, W, 1]: an anti-aliased white disc moving right by one pixel per frame."""
  rows, cols = np.mgrid[:height, :width] + 0.5
  frames = [np.clip(radius + 0.5 - np.hypot(rows - height / 2, cols - 6 - t), 0, 1)
            for t in range(num_frames)]
  return np.round(np.stack(frames) * 255).astype(np.uint8)[..., None]


def coloured(frames):
  """Grey [T, H, W, 1] -> RGB [T, H, W, 3] with three different, smoothly varying channels."""
  grey = frames[..., 0].astype(np.int32)
  return np.stack([grey, grey // 2 + 60, 200 - grey // 2], axis=-1).astype(np.uint8)


def mean_abs_error(a, b):
  return np.abs(a.astype(np.float64) - b.astype(np.float64)).mean()


def test_mp4_round_trip_grey(tmp_path):
  frames = moving_disc()
  video.write_video(tmp_path / "disc.mp4", frames, fps=10)
  back = video.read_video(tmp_path / "disc.mp4")
  assert back.shape == frames.shape and back.dtype == np.uint8  # Grey comes back as C = 1.
  assert mean_abs_error(back, frames) < 1.0  # out of 255; H.264 at crf 15
  # crf 0 is lossless up to the full <-> limited (16..235) luma range conversion.
  video.write_video(tmp_path / "lossless.mp4", frames, crf=0)
  lossless = video.read_video(tmp_path / "lossless.mp4").astype(np.int32)
  assert np.abs(lossless - frames).max() <= 1


def test_mp4_round_trip_physics_clip(tmp_path):
  frames = physics.generate("pendulum", 1, seed=3, num_frames=12, image_size=32).frames[0]
  video.write_video(tmp_path / "pendulum.mp4", frames, fps=12)
  back = video.read_video(tmp_path / "pendulum.mp4")
  assert back.shape == frames.shape
  assert mean_abs_error(back, frames) < 1.0


def test_mp4_round_trip_colour_with_upscaling(tmp_path):
  frames = coloured(moving_disc())
  video.write_video(tmp_path / "colour.mp4", frames, scale=2)
  back = video.read_video(tmp_path / "colour.mp4")
  assert back.shape == (16, 64, 64, 3)
  # Undo the 2x nearest-neighbour upscaling by 2x2 block means; 4:2:0 chroma then costs little.
  down = back.reshape(16, 32, 2, 32, 2, 3).mean(axis=(2, 4))
  assert mean_abs_error(down, frames) < 3.0


def test_mp4_pads_odd_sizes_to_even(tmp_path):
  frames = moving_disc(height=31, width=29)
  video.write_video(tmp_path / "odd.mp4", frames)
  back = video.read_video(tmp_path / "odd.mp4")
  assert back.shape == (16, 32, 30, 1)
  assert mean_abs_error(back[:, :31, :29], frames) < 1.0
  # The padding repeats the last row and column.
  assert mean_abs_error(back[:, 31, :29], frames[:, 30]) < 2.0


def test_gif_round_trip_is_exact_including_repeated_frames(tmp_path):
  disc = moving_disc()
  # Repeated frames (Pillow merges them into one longer frame) and a fully static video.
  frames = np.concatenate([disc[:4], disc[3:4], disc[3:4], disc[4:]])
  video.write_video(tmp_path / "disc.gif", frames, fps=10)
  np.testing.assert_array_equal(video.read_video(tmp_path / "disc.gif"), frames)
  static = np.repeat(disc[:1], 5, axis=0)
  video.write_video(tmp_path / "static.gif", static, fps=25)
  np.testing.assert_array_equal(video.read_video(tmp_path / "static.gif"), static)
  # Colour with at most 256 colours is exact too.
  colour = coloured(disc)
  video.write_video(tmp_path / "colour.gif", colour)
  np.testing.assert_array_equal(video.read_video(tmp_path / "colour.gif"), colour)


def test_png_folder_round_trip_and_grey_conversion(tmp_path):
  colour = coloured(moving_disc(num_frames=5))
  video.write_video(tmp_path / "frames", colour)
  assert sorted(p.name for p in (tmp_path / "frames").iterdir())[0] == "frame_00000.png"
  np.testing.assert_array_equal(video.read_video(tmp_path / "frames"), colour)
  grey = video.read_video(tmp_path / "frames", channels=1)
  expected = colour.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
  assert grey.shape == (5, 32, 32, 1)
  assert np.abs(grey[..., 0] - expected).max() <= 0.5 + 1e-6  # BT.601 luma, rounded
  # A grey video can be read as RGB (three equal channels).
  video.write_video(tmp_path / "grey", moving_disc(num_frames=3))
  rgb = video.read_video(tmp_path / "grey", channels=3)
  assert rgb.shape == (3, 32, 32, 3) and np.array_equal(rgb[..., 0], rgb[..., 2])


def test_side_by_side():
  a, b = moving_disc(num_frames=4), coloured(moving_disc(num_frames=4, width=20))
  both = video.side_by_side(a, b, gap=3)
  assert both.shape == (4, 32, 32 + 3 + 20, 3)
  np.testing.assert_array_equal(both[..., :32, 1], a[..., 0])  # grey broadcast to RGB
  assert (both[:, :, 32:35] == 255).all()
  np.testing.assert_array_equal(both[:, :, 35:], b)
  with pytest.raises(ValueError, match="equal T and H"):
    video.side_by_side(a, moving_disc(num_frames=5))


def test_bad_inputs_raise_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="missing.mp4"):
    video.read_video(tmp_path / "missing.mp4")
  (tmp_path / "notes.txt").write_text("hello")
  with pytest.raises(ValueError, match="unknown suffix"):
    video.read_video(tmp_path / "notes.txt")
  with pytest.raises(ValueError, match="uint8"):
    video.write_video(tmp_path / "x.gif", np.zeros((2, 8, 8, 1), np.float32))
  with pytest.raises(ValueError, match="unknown suffix"):
    video.write_video(tmp_path / "x.webp", np.zeros((2, 8, 8, 1), np.uint8))
  with pytest.raises(ValueError, match="crop box"):
    video.preprocess(np.zeros((2, 8, 8, 1), np.uint8), image_size=4, crop_box=(4, 4, 8, 8))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    video.list_videos(tmp_path / "nowhere")


def test_list_videos_and_cut_clips(tmp_path):
  video.write_video(tmp_path / "a_wide.mp4", moving_disc(num_frames=20, width=48))
  video.write_video(tmp_path / "b_disc.gif", moving_disc(num_frames=13))
  video.write_video(tmp_path / "c_frames", moving_disc(num_frames=9))
  (tmp_path / "readme.txt").write_text("not a video")
  (tmp_path / "empty").mkdir()
  assert [p.name for p in video.list_videos(tmp_path)] == ["a_wide.mp4", "b_disc.gif",
                                                           "c_frames"]
  frames = moving_disc(num_frames=13)
  clips, starts = video.cut_clips(frames, 6, 3)  # floor((13 - 6) / 3) + 1 clips
  np.testing.assert_array_equal(starts, [0, 3, 6])
  np.testing.assert_array_equal(clips[2], frames[6:12])
  assert video.cut_clips(frames[:5], 6, 3)[0].shape == (0, 6, 32, 32, 1)


def test_preprocess_default_centre_square_and_area_resize(tmp_path):
  wide = np.concatenate([moving_disc(num_frames=20, height=48, width=48)] * 2, axis=2)[:, :, :64]
  video.write_video(tmp_path / "a_wide.mp4", wide)
  decoded = video.read_video(tmp_path / "a_wide.mp4")
  frames = video.preprocess(decoded, image_size=16)
  # Centred 48x48 square of the 48x64 decoded frames, then 3x3 area means.
  expected = decoded[:, :, 8:56, 0].astype(np.float64).reshape(20, 16, 3, 16, 3).mean(axis=(2, 4))
  assert frames.shape == (20, 16, 16, 1) and frames.dtype == np.uint8
  assert np.abs(frames[..., 0] - expected).max() <= 0.5 + 1e-4


def test_preprocess_crop_box_rgb_and_grey():
  original = np.random.default_rng(0).integers(0, 256, (9, 40, 60, 3), dtype=np.uint8)
  crop = (4, 10, 32, 32)  # top, left, height, width
  expected_rgb = original[:, 4:36, 10:42].astype(np.float64).reshape(9, 16, 2, 16, 2, 3).mean(
      axis=(2, 4))
  rgb = video.preprocess(original, image_size=16, channels=3, crop_box=crop)
  assert rgb.shape == (9, 16, 16, 3)
  assert np.abs(rgb - expected_rgb).max() <= 0.5 + 1e-4
  grey = video.preprocess(original, image_size=16, channels=1, crop_box=crop)
  expected_grey = expected_rgb @ np.array([0.299, 0.587, 0.114])
  assert np.abs(grey[..., 0] - expected_grey).max() <= 0.5 + 1e-3
