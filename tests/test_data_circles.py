"""Tests for data/circles.py: circle over a Gaussian blob, static grid and moving sequences."""

import numpy as np
import pytest

from data import circles, video

PIXEL_CENTRES = (np.arange(32) + 0.5) / 32


def _blob(factors: np.ndarray) -> np.ndarray:
  """Independent analytic background [N, 32, 32]: 0.8 * isotropic Gaussian, sigma 0.484."""
  sigma = np.sqrt(15 / 64)
  gx = np.exp(-0.5 * ((PIXEL_CENTRES[None] - factors[:, 2, None]) / sigma) ** 2)
  gy = np.exp(-0.5 * ((PIXEL_CENTRES[None] - factors[:, 3, None]) / sigma) ** 2)
  return 0.8 * gy[:, :, None] * gx[:, None, :]


def _circle_layer(images: np.ndarray, factors: np.ndarray) -> np.ndarray:
  """Circle coverage [N, 32, 32] recovered by undoing background + coverage * (1 - background)."""
  background = _blob(factors)
  return (images[..., 0] - background) / (1 - background)


def test_circle_centroid_area_and_background_match_the_analytic_scene():
  factors = np.random.default_rng(0).random((500, 4)).astype(np.float32)
  images = circles.scene(factors)
  assert images.shape == (500, 32, 32, 1) and images.dtype == np.float32
  assert images.min() >= 0 and images.max() <= 1
  coverage = _circle_layer(images, factors)
  area = coverage.sum(axis=(1, 2))
  np.testing.assert_allclose(area, np.pi * 3.2**2, rtol=0.02)  # radius 0.1 of 32 px, never clipped
  col = (coverage * PIXEL_CENTRES[None, None, :]).sum(axis=(1, 2)) / area
  row = (coverage * PIXEL_CENTRES[None, :, None]).sum(axis=(1, 2)) / area
  expected = 0.125 + 0.75 * factors[:, :2]
  assert np.corrcoef(col, factors[:, 0])[0, 1] > 0.999
  assert np.corrcoef(row, factors[:, 1])[0, 1] > 0.999
  np.testing.assert_allclose(np.stack([col, row], -1), expected, atol=0.01)
  # Far from the circle the image is the blob (up to the 2x2 area average: curvature, < 3e-4).
  far = np.hypot(PIXEL_CENTRES[None, None, :] - expected[:, 0, None, None],
                 PIXEL_CENTRES[None, :, None] - expected[:, 1, None, None]) > 0.15
  np.testing.assert_allclose(images[..., 0][far], _blob(factors)[far], atol=5e-4)


def test_gaussian_peak_sits_at_the_gauss_factors_with_height_0_8():
  gauss = np.stack(np.meshgrid(np.linspace(0, 1, 6), np.linspace(0, 1, 6)), -1).reshape(-1, 2)
  circle = np.where(gauss > 0.5, 0.0, 1.0)  # circle in the opposite corner
  images = circles.scene(np.concatenate([circle, gauss], 1).astype(np.float32))[..., 0]
  bright = images > 0.81
  assert bright.any(axis=(1, 2)).all()  # the circle is drawn white (1.0 inside)
  background = np.where(bright, 0.0, images)
  peak = background.reshape(len(gauss), -1).argmax(axis=1)
  peak_row, peak_col = np.unravel_index(peak, (32, 32))
  np.testing.assert_allclose(PIXEL_CENTRES[peak_col], gauss[:, 0], atol=1 / 32)
  np.testing.assert_allclose(PIXEL_CENTRES[peak_row], gauss[:, 1], atol=1 / 32)
  np.testing.assert_allclose(background.max(axis=(1, 2)), 0.8, atol=0.01)


def test_circle_stays_inside_the_image_at_the_extremes():
  corners = np.array([[0, 0, 0.5, 0.5], [1, 1, 0.5, 0.5], [0, 1, 0, 1], [1, 0, 1, 0]], np.float32)
  images = circles.scene(corners, image_size=64)
  coverage = (images[..., 0] - _blob_64(corners)) / (1 - _blob_64(corners))
  np.testing.assert_allclose(coverage.sum(axis=(1, 2)), np.pi * 6.4**2, rtol=0.01)
  edges = np.concatenate([coverage[:, 0], coverage[:, -1], coverage[:, :, 0], coverage[:, :, -1]])
  assert np.abs(edges).max() < 1e-3  # only the 2x2 averaging of the blob; a clipped circle > 0.1


def _blob_64(factors):
  centres = (np.arange(64) + 0.5) / 64
  sigma = np.sqrt(15 / 64)
  gx = np.exp(-0.5 * ((centres[None] - factors[:, 2, None]) / sigma) ** 2)
  gy = np.exp(-0.5 * ((centres[None] - factors[:, 3, None]) / sigma) ** 2)
  return 0.8 * gy[:, :, None] * gx[:, None, :]


def test_stored_images_are_the_scene_rounded_to_uint8():
  factors = np.random.default_rng(1).random((300, 4)).astype(np.float32)
  images, exact = circles.render(factors), circles.scene(factors)
  assert images.dtype == np.uint8 and images.shape == exact.shape
  np.testing.assert_array_equal(images, np.round(exact * 255).astype(np.uint8))
  assert np.abs(video.to_float(images) - exact).max() <= 0.5 / 255 + 1e-7
  assert images.max() == 255 and images.min() < 40  # the white circle, the blob's dark tail
  for data in (circles.static_sample(20, 0), circles.static_grid(2, 2)):
    assert data["images"].dtype == np.uint8
  assert circles.dynamic_sequences(4, 0)["frames"].dtype == np.uint8


def test_static_grid_enumerates_every_combination():
  data = circles.static_grid(circle_levels=3, gauss_levels=4)
  assert data["images"].shape == (3 * 3 * 4 * 4, 32, 32, 1)
  assert np.unique(data["indices"], axis=0).shape[0] == 144
  np.testing.assert_allclose(np.unique(data["factors"][:, 0]), [0, 0.5, 1])
  np.testing.assert_allclose(np.unique(data["factors"][:, 3]), [0, 1 / 3, 2 / 3, 1], rtol=1e-6)
  np.testing.assert_array_equal(data["images"], circles.render_indices(data["indices"], 3, 4))
  assert np.unique(data["images"].reshape(144, -1), axis=0).shape[0] == 144


def test_static_sample_draws_distinct_grid_points_deterministically():
  a, b, c = (circles.static_sample(300, seed) for seed in (1, 1, 2))
  assert np.unique(a["indices"], axis=0).shape[0] == 300
  assert np.all((a["indices"] >= 0) & (a["indices"] < [16, 16, 32, 32]))
  for key in a:
    assert a[key].tobytes() == b[key].tobytes()
  assert a["images"].tobytes() != c["images"].tobytes()
  np.testing.assert_allclose(a["factors"], a["indices"] / np.array([15, 15, 31, 31]), rtol=1e-6)


def test_dynamic_sequences_move_the_circle_at_constant_velocity():
  data = circles.dynamic_sequences(200, seed=3)
  frames, factors = data["frames"], data["factors"]
  assert frames.shape == (200, 10, 32, 32, 1) and factors.shape == (200, 10, 4)
  np.testing.assert_allclose(np.diff(factors[:, :, :2], n=2, axis=1), 0, atol=1e-6)
  np.testing.assert_array_equal(factors[:, :, 2:],
                                np.broadcast_to(factors[:, :1, 2:], (200, 10, 2)))
  travelled = np.linalg.norm(factors[:, -1, :2] - factors[:, 0, :2], axis=-1)
  assert travelled.min() >= 0.1
  assert np.all((factors >= 0) & (factors <= 1))
  gauss_levels = np.round(factors[:, 0, 2:] * 31)
  np.testing.assert_allclose(factors[:, 0, 2:] * 31, gauss_levels, atol=1e-5)  # 32-level grid
  np.testing.assert_array_equal(frames, circles.render(factors))
  # The rendered circle itself moves at constant velocity (anti-aliasing keeps it smooth; the
  # exact scene, before the uint8 rounding of the stored frames).
  flat = factors.reshape(-1, 4)
  coverage = _circle_layer(circles.scene(flat), flat)
  area = coverage.sum(axis=(1, 2))
  col = ((coverage * PIXEL_CENTRES[None, None, :]).sum(axis=(1, 2)) / area).reshape(200, 10)
  assert np.abs(np.diff(col, n=2, axis=1)).max() * 32 < 0.1  # pixels
  # Start points cover the factor square uniformly.
  assert np.abs(factors[:, 0, :2].mean(axis=0) - 0.5).max() < 0.06


def test_dynamic_sequences_are_deterministic():
  a, b, c = (circles.dynamic_sequences(20, seed, num_frames=5) for seed in (4, 4, 5))
  assert a["frames"].shape == (20, 5, 32, 32, 1)
  assert a["frames"].tobytes() == b["frames"].tobytes()
  assert a["factors"].tobytes() == b["factors"].tobytes()
  assert a["frames"].tobytes() != c["frames"].tobytes()


def test_ground_truth_adapter():
  data = circles.CirclesGroundTruth()
  assert data.num_factors == 4 and data.factors_num_values == (16, 16, 32, 32)
  factors = data.sample_factors(400, np.random.default_rng(6))
  assert factors.shape == (400, 4)
  assert np.all((factors >= 0) & (factors < [16, 16, 32, 32]))
  assert all(len(np.unique(factors[:, f])) == 16 for f in range(2))
  images = data.sample_observations_from_factors(factors[:5], np.random.default_rng(0))
  assert images.shape == (5, 32, 32, 1) and images.dtype == np.float32
  # What the models see: the stored uint8 images, scaled once.
  np.testing.assert_array_equal(images, video.to_float(circles.render_indices(factors[:5])))


@pytest.mark.parametrize("call", [
    lambda: circles.render(np.array([[0.5, 0.5, 0.5, 1.5]])),
    lambda: circles.render(np.array([[0, 0, 0, 0]])),
    lambda: circles.render_indices(np.array([[16, 0, 0, 0]])),
    lambda: circles.static_sample(16 * 16 * 32 * 32 + 1, seed=0),
    lambda: circles.dynamic_sequences(4, seed=0, min_distance=1.5),
    lambda: circles.static_grid(circle_levels=1),
])
def test_bad_input_raises_value_error(call):
  with pytest.raises(ValueError):
    call()
