"""Tests for data/sprites.py: the procedural dSprites grid, its renderer and the pair samplers."""

import numpy as np
import pytest
from scipy import optimize, stats

from data import sprites

SIZES = np.asarray(sprites.FACTOR_SIZES)


def _all_shape_scale_orientation(x: int, y: int) -> np.ndarray:
  grid = np.stack(np.meshgrid(np.arange(3), np.arange(6), np.arange(40), indexing="ij"), -1)
  grid = grid.reshape(-1, 3)
  return np.concatenate([grid, np.tile([x, y], (len(grid), 1))], axis=1)


def _moments(images: np.ndarray):
  """Binary images [N, 64, 64, 1] -> area, centroid (row, col) and covariance (rr, cc, rc)."""
  mask = images[..., 0] > 0
  rows, cols = np.meshgrid(np.arange(64) + 0.5, np.arange(64) + 0.5, indexing="ij")
  area = mask.sum(axis=(1, 2))
  mean_r = (mask * rows).sum(axis=(1, 2)) / area
  mean_c = (mask * cols).sum(axis=(1, 2)) / area
  dr, dc = rows - mean_r[:, None, None], cols - mean_c[:, None, None]
  cov = [(mask * a * b).sum(axis=(1, 2)) / area for a, b in ((dr, dr), (dc, dc), (dr, dc))]
  return area, mean_r, mean_c, cov


def test_grid_has_737280_distinct_combinations():
  flat = np.arange(sprites.NUM_COMBINATIONS)
  factors = sprites.factors_from_index(flat)
  assert sprites.NUM_COMBINATIONS == 737_280 == np.prod(SIZES)
  assert np.unique(factors, axis=0).shape[0] == 737_280
  np.testing.assert_array_equal(sprites.index_from_factors(factors), flat)
  np.testing.assert_array_equal(factors[1], [0, 0, 0, 0, 1])  # y varies fastest (dSprites order)


def test_factor_values_follow_dsprites():
  values = sprites.factor_values(np.array([[0, 0, 0, 0, 0], [2, 5, 39, 31, 31], [1, 1, 1, 16, 1]]))
  assert values.dtype == np.float32
  np.testing.assert_allclose(values[0], [1, 0.5, 0, 0, 0])
  np.testing.assert_allclose(values[1], [3, 1, 2 * np.pi, 1, 1], rtol=1e-6)  # endpoint included
  np.testing.assert_allclose(values[2], [2, 0.6, 2 * np.pi / 39, 16 / 31, 1 / 31], rtol=1e-6)


def test_render_is_binary_and_keeps_leading_axes():
  factors = sprites.sample_factors(12, np.random.default_rng(0)).reshape(3, 2, 2, 5)
  images = sprites.render(factors)
  assert images.shape == (3, 2, 2, 64, 64, 1) and images.dtype == np.uint8
  assert set(np.unique(images)) == {0, 255}
  np.testing.assert_array_equal(images.reshape(12, 64, 64, 1),
                                sprites.render(factors.reshape(12, 5)))


@pytest.mark.parametrize("x, y", [(10, 17), (3, 30)])
def test_distinct_combinations_give_distinct_images(x, y):
  """Only orientation 2 pi = 0, (near-)symmetric rotations and the two smallest scales collide."""
  factors = _all_shape_scale_orientation(x, y)
  images = sprites.render(factors).reshape(len(factors), -1)
  np.testing.assert_array_equal(images[factors[:, 2] == 0], images[factors[:, 2] == 39])
  canonical = factors[:, 2] != 39
  _, inverse = np.unique(images[canonical], axis=0, return_inverse=True)
  assert inverse.max() + 1 >= 0.95 * canonical.sum()
  symmetry = np.array([np.pi / 2, np.pi, 2 * np.pi])  # square, ellipse, heart
  angles = sprites.ORIENTATION_VALUES
  kept = factors[canonical]
  for group in np.unique(inverse):
    members = kept[inverse.ravel() == group]
    for a in members[1:]:
      b = members[0]
      assert a[0] == b[0] and a[1] == b[1]  # never across shapes or scales
      period = symmetry[a[0]]
      gap = np.abs(angles[a[2]] - angles[b[2]]) % period
      near_symmetric = min(gap, period - gap) < np.deg2rad(5)
      assert near_symmetric or a[1] <= 1, (a, b)


def test_translation_by_four_indices_is_a_five_pixel_shift_and_nothing_is_clipped():
  base = _all_shape_scale_orientation(0, 31)
  shifted = base.copy()
  shifted[:, 3:] = [4, 27]
  a, b = sprites.render(base), sprites.render(shifted)
  np.testing.assert_array_equal(np.roll(a, (-5, 5), axis=(1, 2)), b)
  assert a[:, 0].sum() == a[:, -1].sum() == a[:, :, 0].sum() == a[:, :, -1].sum() == 0


def test_area_grows_with_scale_and_matches_the_analytic_shapes():
  rng = np.random.default_rng(1)
  unit_area = (0.1 * 64) ** 2
  analytic = {0: 4.0, 1: np.pi * 1.5 * 0.75, 2: 3.662}  # heart area: numerical integration
  for shape in range(3):
    mean_area = []
    for scale in range(6):
      factors = sprites.sample_factors(400, rng)
      factors[:, 0], factors[:, 1] = shape, scale
      mean_area.append(_moments(sprites.render(factors))[0].mean())
    assert np.all(np.diff(mean_area) > 0)
    expected = analytic[shape] * unit_area * sprites.SCALE_VALUES**2
    np.testing.assert_allclose(mean_area, expected, rtol=0.05)


def test_centroid_tracks_x_and_y():
  factors = sprites.sample_factors(2000, np.random.default_rng(2))
  _, rows, cols, _ = _moments(sprites.render(factors))
  expected = 12.625 + 1.25 * factors[:, 3:]
  assert np.corrcoef(cols, factors[:, 3])[0, 1] > 0.999
  assert np.corrcoef(rows, factors[:, 4])[0, 1] > 0.999
  assert np.abs(cols - expected[:, 0]).mean() < 0.25 and np.abs(rows - expected[:, 1]).mean() < 0.25
  span = (expected[:, 0].min() / 64, expected[:, 0].max() / 64)
  np.testing.assert_allclose(span, (0.2, 0.8), atol=0.004)


def test_orientation_rotates_the_ellipse_counter_clockwise():
  factors = np.array([[1, 5, o, 16, 16] for o in range(40)])
  _, _, _, (rr, cc, rc) = _moments(sprites.render(factors))
  angle = sprites.ORIENTATION_VALUES
  assert np.corrcoef(cc - rr, np.cos(2 * angle))[0, 1] > 0.99
  # Counter-clockwise on screen (rows grow downwards): cov(col, -row) goes as +sin(2 angle).
  assert np.corrcoef(-2 * rc, np.sin(2 * angle))[0, 1] > 0.99
  # Amplitude (a^2 - b^2) / 4 for a uniform ellipse with semi-axes 9.6 px and 4.8 px.
  amplitude = np.sum((cc - rr) * np.cos(2 * angle)) / np.sum(np.cos(2 * angle) ** 2)
  np.testing.assert_allclose(amplitude, (9.6**2 - 4.8**2) / 4, rtol=0.05)


def _truncated_laplace_log_pmf(start, end, size, scale):
  grid = np.arange(size)
  log_p = -np.abs(grid[None, :] - start[:, None]) / scale
  return log_p[np.arange(len(start)), end] - np.log(np.exp(log_p).sum(axis=1))


@pytest.mark.parametrize("rate", [1.0, 2.5])
def test_lap_pairs_follow_truncated_laplace_of_scale_log_size_over_rate(rate):
  pairs = sprites.lap_pairs(8000, seed=3, rate=rate)
  start, end = pairs["factors"][:, 0], pairs["factors"][:, 1]
  np.testing.assert_array_equal(start[:, 0], end[:, 0])  # shape (categorical) held
  assert np.all(np.any(start != end, axis=1))  # at least one change
  for f in range(1, 5):
    size = sprites.FACTOR_SIZES[f]
    nll = lambda s: -_truncated_laplace_log_pmf(start[:, f], end[:, f], size, s).sum()
    fitted = optimize.minimize_scalar(nll, bounds=(0.05, 50), method="bounded").x
    np.testing.assert_allclose(fitted, np.log(size) / rate, rtol=0.06)
    # Whole step histogram against the predicted truncated-Laplace mixture.
    predicted = np.zeros(2 * size - 1)
    grid = np.arange(size)
    for a in range(size):
      weights = np.exp(-np.abs(grid - a) / (np.log(size) / rate))
      predicted[grid - a + size - 1] += (start[:, f] == a).sum() * weights / weights.sum()
    observed = np.bincount(end[:, f] - start[:, f] + size - 1, minlength=2 * size - 1)
    assert 0.5 * np.abs(observed - predicted).sum() / len(start) < 0.03
  # Heavier tails than a Gaussian: interior x steps (no truncation within 2.5 scales).
  interior = (start[:, 3] >= 10) & (start[:, 3] <= 21)
  step = (end - start)[interior, 3]
  if rate == 1.0:
    assert stats.kurtosis(step) > 1.0
    assert np.abs(step).mean() / step.std() < 0.75  # Laplace 0.71, Gaussian 0.80


def test_lap_pairs_with_random_rate_still_hold_shape_and_change():
  pairs = sprites.lap_pairs(2000, seed=4, rate=None)
  start, end = pairs["factors"][:, 0], pairs["factors"][:, 1]
  np.testing.assert_array_equal(start[:, 0], end[:, 0])
  assert np.all(np.any(start != end, axis=1))
  # Rates from U(1, 10) mean smaller steps than rate 1.
  rate_one = sprites.lap_pairs(2000, seed=4, rate=1.0)["factors"]
  rate_one_step = np.abs(rate_one[:, 1, 3] - rate_one[:, 0, 3]).mean()
  assert np.abs(end - start)[:, 3].mean() < 0.6 * rate_one_step


@pytest.mark.parametrize("max_changed", [4, 5])
def test_loc_pairs_change_k_uniform_factors_to_different_values(max_changed):
  pairs = sprites.loc_pairs(10000, seed=5, max_changed=max_changed)
  start, end = pairs["factors"][:, 0], pairs["factors"][:, 1]
  changed = start != end
  counts = np.bincount(changed.sum(axis=1), minlength=6)
  assert counts[0] == 0 and counts[max_changed + 1:].sum() == 0
  chi2 = stats.chisquare(counts[1:max_changed + 1]).statistic
  assert chi2 < stats.chi2.ppf(0.999, max_changed - 1)
  # Every factor (shape included) is picked equally often: expected mean k / 5 each.
  share = changed.mean(axis=0)
  np.testing.assert_allclose(share, (1 + max_changed) / 2 / 5, atol=0.02)
  # A changed x is uniform over the 31 other values.
  moved = changed[:, 3]
  offsets = (end[moved, 3] - start[moved, 3]) % 32
  assert offsets.min() >= 1
  assert stats.chisquare(np.bincount(offsets, minlength=32)[1:]).pvalue > 1e-3


def test_natural_pairs_are_heavy_tailed_and_keep_shape_and_orientation():
  pairs = sprites.natural_pairs(8000, seed=6)
  start, end = pairs["factors"][:, 0], pairs["factors"][:, 1]
  np.testing.assert_array_equal(start[:, :3:2], end[:, :3:2])
  assert np.all((end >= 0) & (end < SIZES))
  step = end - start
  for f in (3, 4):
    assert stats.kurtosis(step[:, f], fisher=False) > 8  # Gaussian 3, Laplace 6
    assert np.mean(step[:, f] == 0) > 0.25  # sparse: often no move at all
    assert np.abs(step[:, f]).max() >= 15  # ...and occasionally a large jump
  assert stats.kurtosis(step[:, 1], fisher=False) > 4


@pytest.mark.parametrize("sampler", [sprites.laplace_pairs, sprites.uniform_pairs, sprites.natural_pairs])
def test_pair_samplers_are_deterministic_and_consistent(sampler):
  a, b, c = sampler(300, seed=7), sampler(300, seed=7), sampler(300, seed=8)
  assert a["frames"].shape == (300, 2, 64, 64, 1) and a["frames"].dtype == np.uint8
  assert a["factors"].shape == (300, 2, 5) and a["factor_values"].dtype == np.float32
  for key in a:
    assert a[key].tobytes() == b[key].tobytes()
  assert a["frames"].tobytes() != c["frames"].tobytes()
  np.testing.assert_array_equal(a["frames"], sprites.render(a["factors"]))
  np.testing.assert_array_equal(a["factor_values"], sprites.factor_values(a["factors"]))


def test_ground_truth_adapter():
  data = sprites.SpritesGroundTruth()
  assert data.num_factors == 5 and data.factors_num_values == (3, 6, 40, 32, 32)
  factors = data.sample_factors(500, np.random.default_rng(9))
  assert factors.shape == (500, 5) and np.all((factors >= 0) & (factors < SIZES))
  assert all(len(np.unique(factors[:, f])) == SIZES[f] for f in range(3))
  images = data.sample_observations_from_factors(factors[:8], np.random.default_rng(0))
  assert images.shape == (8, 64, 64, 1) and images.dtype == np.float32
  np.testing.assert_array_equal(images * 255, sprites.render(factors[:8]))


@pytest.mark.parametrize("call", [
    lambda: sprites.render(np.array([[0, 0, 0, 0, 32]])),
    lambda: sprites.render(np.array([[0.0, 0, 0, 0, 0]])),
    lambda: sprites.render(np.zeros((2, 4), int)),
    lambda: sprites.lap_pairs(10, seed=0, rate=0.0),
    lambda: sprites.loc_pairs(10, seed=0, max_changed=6),
    lambda: sprites.uniform_pairs(10, seed=0, k=6),
    lambda: sprites.natural_pairs(0, seed=0),
    lambda: sprites.factors_from_index(np.array([737_280])),
])
def test_bad_input_raises_value_error(call):
  with pytest.raises(ValueError):
    call()


@pytest.mark.parametrize("k", [1, 3, 5])
def test_uniform_pairs_with_fixed_k_change_exactly_k_factors(k):
  pairs = sprites.uniform_pairs(3000, seed=6, k=k)["factors"]
  changed = pairs[:, 0] != pairs[:, 1]
  np.testing.assert_array_equal(changed.sum(axis=1), k)
  np.testing.assert_allclose(changed.mean(axis=0), k / 5, atol=0.03)  # a uniform k-subset
  # Only k differs from the drawn-k pairs of the same seed: same first frames.
  drawn = sprites.uniform_pairs(3000, seed=6)["factors"]
  np.testing.assert_array_equal(pairs[:, 0], drawn[:, 0])


def test_reference_names_and_aliases():
  assert sprites.lap_pairs is sprites.laplace_pairs and sprites.loc_pairs is sprites.uniform_pairs
  assert set(sprites.TRANSITION_ALIASES.values()) <= set(sprites.TRANSITIONS)
