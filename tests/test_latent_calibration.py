"""The physics calibration of a falling object's latent (nlvae.models.physics_eval): the map from
the decoder's latent to the height that free fall pins, and the height inferred through the prior.
"""
import numpy as np

from data import physics
from nlvae.models import physics_eval

G = 9.81
DT = 1 / 30


def _falls(num_clips=48, num_frames=20, seed=0):
  clips = physics.generate("falling", num_clips, seed, num_frames=num_frames, image_size=8,
                           fps=1 / DT, horizontal_position_range=(0.0, 0.0),
                           horizontal_velocity_range=(0.0, 0.0))
  return clips.latent.astype(np.float64)  # heights [N, T]


def _warped_latents(heights, true_map):
  """Latents z with true_map.to_physical(z) = heights (+ a constant): the inverse of the map."""
  return true_map.to_latent(heights - heights.mean()).astype(np.float64)


def test_latent_map_inverts_on_its_range():
  latent_map = physics_eval.LatentMap((-3.5, -4.0, -3.0), centre=-0.1, low=-0.8, high=0.6)
  assert latent_map.is_monotone()
  z = np.linspace(-0.7, 0.5, 101)
  np.testing.assert_allclose(latent_map.to_latent(latent_map.to_physical(z)), z, atol=2e-5)
  linear = physics_eval.LatentMap((2.0,), centre=0.5)
  np.testing.assert_allclose(linear.to_latent(linear.to_physical(z)), z, atol=1e-6)
  assert not physics_eval.LatentMap((1.0, 0.0, -10.0), low=-1, high=1).is_monotone()


def test_free_fall_map_recovers_a_warped_height_exactly_and_robustly():
  """Latents that are a cubic warp of the height (as a perspective camera and a keypoint encoder
  give): noise-free, the fitted map is the warp (heights to 1e-4 m); with 2 cm of encoder noise
  and a tenth of the frames misread by 0.4 m (an occluder), the height still comes back with |r| > 0.999
  and slope within 3%, where a linear scale alone leaves |r| < 0.995."""
  rng = np.random.default_rng(0)
  heights = _falls()
  true_map = physics_eval.LatentMap((-3.5, -4.0, -3.0), centre=0.0, low=-1.5, high=1.5)
  z = _warped_latents(heights, true_map)
  fitted, weights = physics_eval.free_fall_map(z, DT, G)
  error = fitted.to_physical(z) - heights
  assert np.std(error) < 1e-4, np.std(error)  # exact up to the height's zero
  noisy = z + 0.02 / 3.5 * rng.standard_normal(z.shape)
  misread = rng.random(z.shape) < 0.1
  noisy[misread] += 0.4 / 3.5 * rng.choice([-1, 1], misread.sum())  # misread by 0.4 m
  fitted, weights = physics_eval.free_fall_map(noisy, DT, G)
  clean = ~misread
  height = fitted.to_physical(noisy)[clean]
  r = np.corrcoef(height, heights[clean])[0, 1]
  slope = np.polyfit(height, heights[clean], 1)[0]
  assert r > 0.999 and abs(slope - 1) < 0.03, (r, slope)  # noise attenuates the map ~1-2%
  assert np.mean(weights[misread] < 0.1) > 0.8  # the misread frames were set aside
  linear, _ = physics_eval.free_fall_map(noisy, DT, G, degree=1)
  assert np.corrcoef(linear.to_physical(noisy)[clean], heights[clean])[0, 1] < 0.995


def test_free_fall_smoothed_fills_hidden_frames_from_the_visible_ones():
  rng = np.random.default_rng(1)
  heights = _falls(num_clips=16)
  observed = heights + 0.01 * rng.standard_normal(heights.shape)
  observed[:, 11:] = 0.3  # the ball behind a stand for the last 9 frames: a constant misreading
  smoothed = physics_eval.free_fall_smoothed(observed, DT, G)
  assert np.sqrt(np.mean((smoothed - heights)**2)) < 0.03
  assert np.sqrt(np.mean((observed - heights)**2)) > 1.0


def test_video_series_reassembles_overlapping_clips():
  rng = np.random.default_rng(2)
  series = rng.standard_normal((3, 30, 1))
  starts = np.array([0, 5, 10, 0, 10, 0])
  sources = np.array([0, 0, 0, 2, 2, 1])
  clips = np.stack([series[v, s:s + 20] for v, s in zip(sources, starts)])
  joined, mask = physics_eval.video_series(clips, sources, starts)
  assert joined.shape == (3, 30, 1) and mask.sum(1).tolist() == [30, 20, 30]
  np.testing.assert_allclose(joined[mask], series[mask], rtol=1e-6)


def test_refit_constants_recovers_a_rod_length_from_whole_swings():
  """Latents of whole pendulum videos cut into 1 s clips (shorter than a swing): the output-error
  fit of the rod length, started 10% short, comes back within 0.5% at the true scale, and a 10%
  error in the scale moves it by less than 4% (the amplitude enters only through the slight
  lengthening of the period of large swings)."""
  from nlvae import priors
  dt = 0.05
  clips = physics.generate("pendulum", 8, 0, num_frames=80, image_size=8, fps=1 / dt,
                           length_range=(0.8, 0.8), amplitude_range=(0.3, 1.5))
  z = clips.latent / 4.0 + 0.01 * np.random.default_rng(3).standard_normal(clips.latent.shape)
  starts = np.arange(0, 61, 5)
  cut = np.stack([z[v, s:s + 20] for v in range(8) for s in starts])[..., None]
  series, mask = physics_eval.video_series(cut, np.repeat(np.arange(8), len(starts)),
                                           np.tile(starts, 8))
  prior = priors.pendulum(g=9.81, length=0.72, dt=dt)
  fitted = physics_eval.refit_constants(prior, series, mask, dt, 4.0, ("length",))["length"]
  assert abs(fitted - 0.8) < 0.004, fitted
  off = physics_eval.refit_constants(prior, series, mask, dt, 4.4, ("length",))["length"]
  assert 0.77 < off < 0.8, off


def test_falling_evaluation_without_resimulation_uses_the_free_fall_map(tmp_path):
  """The evaluation path of user video (no Clips to re-simulate, truth in test["latent"]) on a
  tiny falling model: the height's map is fitted, the scores and the inferred height are finite,
  and the counterfactual videos are decoded through the map's inverse."""
  import dataclasses
  import jax
  from experiments import falling
  from nlvae import datasets, models
  config = falling.get_config("video,tiny")
  config.data = falling.get_config("tiny").data  # procedural clips stand in for the videos
  train, test, info = datasets.load(config.data)
  info = dataclasses.replace(info, test_clips=None)
  model = models.build(config.model, info)
  params = model.init(jax.random.PRNGKey(0), {k: v[:2] for k, v in train.items()})
  results = physics_eval.evaluate(model, params, dict(train=train, test=test, info=info),
                                  tmp_path, jax.random.PRNGKey(1))
  centre, *coefficients = results["latent/physical_map"]
  assert 1 <= len(coefficients) <= physics_eval.FREE_FALL_MAP_DEGREE
  assert results["latent/physical_scale"] == coefficients[0]
  for key in ("latent/abs_pearson_r", "latent/slope", "latent/inferred_abs_pearson_r",
              "latent/inferred_slope"):
    assert np.isfinite(results[key]), key
  for name in config.model.interventions:
    assert (tmp_path / "videos" / f"{name}.gif").stat().st_size > 0
    assert np.isfinite(results[f"intervention/{name}/latent_rms_change"])


def test_a_collapsed_posterior_prints_one_warning_line_and_is_reported(tmp_path, monkeypatch,
                                                                       capsys):
  """Fault injected: every posterior log-variance at the encoder's upper clip (+6, the collapse of
  the spring's mixture estimator in docs/user_video.md). The evaluation still finishes, prints the
  warning once, on one line, and reports the ratio; the same model with a sharp posterior does
  not warn."""
  import dataclasses
  import jax
  from experiments import spring
  from nlvae import datasets, models
  config = spring.get_config("tiny")
  train, test, info = datasets.load(config.data)
  info = dataclasses.replace(info, test_clips=None)
  model = models.build(config.model, info)
  params = model.init(jax.random.PRNGKey(0), {k: v[:2] for k, v in train.items()})
  data = dict(train=train, test=test, info=info)
  for name in ("a", "b"):
    (tmp_path / name).mkdir()
  encode_all = physics_eval._encode_all

  def with_log_vars(value):
    def encode(*args, **kwargs):
      means, log_vars = encode_all(*args, **kwargs)
      return means, np.full_like(log_vars, value)
    return encode

  monkeypatch.setattr(physics_eval, "_encode_all", with_log_vars(6.0))
  collapsed = physics_eval.evaluate(model, params, data, tmp_path / "a", jax.random.PRNGKey(1))
  warnings = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
  assert warnings == [physics_eval.COLLAPSE_WARNING.format(
      ratio=collapsed["latent/posterior_var_ratio"])]
  assert collapsed["latent/posterior_var_ratio"] >= 1
  monkeypatch.setattr(physics_eval, "_encode_all", with_log_vars(-30.0))
  sharp = physics_eval.evaluate(model, params, data, tmp_path / "b", jax.random.PRNGKey(1))
  assert "warning" not in capsys.readouterr().out
  assert sharp["latent/posterior_var_ratio"] < 1e-3
