"""Tests of disentangled-dynamics: nlvae.models.dynamics, its configs and experiments/sweep.py."""
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from data import video
from experiments import circles_dynamic
from experiments import circles_supervised
from experiments import sweep
from nlvae import datasets, train
from nlvae.models import dynamics

IMAGE_SHAPE = (32, 32, 1)
NUM_FRAMES = 6


def _model(**overrides) -> dynamics.DynamicsVAE:
  config = ml_collections.ConfigDict(dict(
      name="dynamics_vae", latent_dim=4, variational=True, beta=0.01, beta_is_normalized=True,
      likelihood="mse", dynamics="none", gamma=0.0, delay=1))
  config.update(overrides)
  info = datasets.DatasetInfo(image_shape=IMAGE_SHAPE, num_frames=NUM_FRAMES,
                              factor_names=("a", "b", "c", "d"))
  return dynamics.DynamicsVAE(config, info)


def _stored_clips(seed: int, num: int = 3) -> jax.Array:
  """Random clips as datasets store them, uint8 [num, NUM_FRAMES, 32, 32, 1], drawn with numpy."""
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(0, 256, size=(num, NUM_FRAMES) + IMAGE_SHAPE, dtype=np.uint8))


def _clips(seed: int, num: int = 3) -> jax.Array:
  """The same clips as the networks see them: float32 in [0, 1]."""
  return video.to_float(_stored_clips(seed, num))


@pytest.fixture(scope="module")
def params():
  return _model().init(jax.random.key(0), {"frames": _stored_clips(0)})


def test_prediction_penalty_is_the_hand_computed_sum_over_every_t_from_2():
  rng = np.random.default_rng(0)
  mu = rng.normal(size=(3, NUM_FRAMES, 2))
  expected = [sum(0.5 * np.sum((mu[b, t] - (2 * mu[b, t - 1] - mu[b, t - 2]))**2)
                  for t in range(2, NUM_FRAMES)) for b in range(3)]
  np.testing.assert_allclose(dynamics.prediction_penalty(jnp.asarray(mu)), expected, rtol=1e-5)

  # Straight lines at constant speed cost nothing, however far from 0 (the reference's bug pulled
  # frames 0 and 1 of most clips towards 0).
  times = np.arange(NUM_FRAMES)[None, :, None]
  lines = 50 * rng.normal(size=(3, 1, 2)) + times * rng.normal(size=(3, 1, 2))
  np.testing.assert_allclose(dynamics.prediction_penalty(jnp.asarray(lines)), 0, atol=1e-3)
  # A unit bump of frame s of clip b enters residual t = s, s+1, s+2 (those >= 2) with weights
  # 1, -2, 1 and no other clip: every frame and every residual t >= 2 of every clip counts.
  for b in range(3):
    for s in range(NUM_FRAMES):
      bumped = lines.copy()
      bumped[b, s, 0] += 1.0
      weights = {s: 1.0, s + 1: -2.0, s + 2: 1.0}
      hand = 0.5 * sum(w**2 for t, w in weights.items() if 2 <= t < NUM_FRAMES)
      np.testing.assert_allclose(dynamics.prediction_penalty(jnp.asarray(bumped)),
                                 [hand if c == b else 0.0 for c in range(3)], atol=2e-3)


def test_linear_prediction_loss_adds_gamma_times_the_batch_mean_penalty(params):
  plain, zero, weighted = (_model(), _model(dynamics="linear_prediction", gamma=0.0),
                           _model(dynamics="linear_prediction", gamma=0.7))
  batch, key = {"frames": _stored_clips(1)}, jax.random.key(3)

  @jax.jit
  def losses(params):
    means = plain.encode(params, video.to_float(batch["frames"]))[0]
    return (plain.loss(params, batch, key)[0], zero.loss(params, batch, key)[0],
            weighted.loss(params, batch, key), jnp.mean(dynamics.prediction_penalty(means)))

  loss_plain, loss_zero, (loss_weighted, terms), penalty = losses(params)
  assert float(loss_zero) == float(loss_plain)  # gamma = 0 is the plain per-frame beta-VAE
  assert float(penalty) > 0
  np.testing.assert_allclose(terms["pred"], penalty, rtol=1e-5)
  # float32 losses of ~1e3: compare to a few units in the last place of the loss.
  np.testing.assert_allclose(loss_weighted, loss_plain + 0.7 * penalty,
                             rtol=0, atol=4 * np.spacing(np.float32(loss_plain)))


def test_inertia_recursion_matches_a_hand_loop():
  e = np.random.default_rng(1).normal(size=(2, 7, 3)).astype(np.float32)
  gamma = 0.3
  mu, z_hat = np.zeros_like(e), np.zeros_like(e)
  mu[:, 0] = z_hat[:, 0] = e[:, 0]
  for t in range(1, 7):
    z_hat[:, t] = 2 * mu[:, t - 1] - mu[:, max(t - 2, 0)]  # mu_{-1} := mu_0: starts at rest
    mu[:, t] = (1 - gamma) * e[:, t] + gamma * z_hat[:, t]
  got_mu, got_z_hat = dynamics.inertia_means(jnp.asarray(e), gamma)
  np.testing.assert_allclose(got_mu, mu, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(got_z_hat, z_hat, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(dynamics.inertia_means(jnp.asarray(e), 0.0)[0], e)
  np.testing.assert_array_equal(dynamics.inertia_means(jnp.asarray(e), 1.0)[0],
                                np.broadcast_to(e[:, :1], e.shape))


def test_inertia_with_gamma_1_ignores_every_frame_after_the_first(params):
  frames = np.asarray(_clips(2))
  later_changed = frames.copy()
  later_changed[:, 1:] = np.asarray(_clips(5))[:, 1:]
  first_changed = frames.copy()
  first_changed[:, 0] = np.asarray(_clips(6))[:, 0]
  dreaming, mixing = _model(dynamics="inertia", gamma=1.0), _model(dynamics="inertia", gamma=0.5)

  @jax.jit
  def outputs(params, frames):
    return (dreaming.reconstruct(params, frames)[0], dreaming.latents(params, frames)[0],
            mixing.latents(params, frames)[0])

  dream, dream_mu, mix_mu = outputs(params, frames)
  dream_later, dream_mu_later, mix_mu_later = outputs(params, later_changed)
  dream_first, dream_mu_first, _ = outputs(params, first_changed)
  assert dream.shape == (3, NUM_FRAMES - 2) + IMAGE_SHAPE  # mu_1..mu_{T-2} -> frames 2..T-1
  # Frames 2..T (1-based) are never seen: latents and reconstructions are bit-identical, and
  # every latent is the first frame's encoding (a static dream).
  np.testing.assert_array_equal(dream_later, dream)
  np.testing.assert_array_equal(dream_mu_later, dream_mu)
  np.testing.assert_array_equal(dream_mu, np.broadcast_to(dream_mu[:, :1], dream_mu.shape))
  # The first frame is seen, and gamma < 1 sees the later frames too.
  assert np.max(np.abs(dream_mu_first - dream_mu)) > 1e-2
  assert np.max(np.abs(dream_first - dream)) > 1e-5  # (a fresh decoder is nearly constant)
  assert np.max(np.abs(mix_mu_later[:, 1:] - mix_mu[:, 1:])) > 1e-2


def test_inertia_with_gamma_0_is_the_per_frame_model_one_frame_late(params):
  frames = _clips(3)
  plain, inertia = _model(), _model(dynamics="inertia", gamma=0.0)

  @jax.jit
  def outputs(params):
    return (plain.encode(params, frames[:, :-1])[0], inertia.latents(params, frames),
            plain.reconstruct(params, frames)[0], inertia.reconstruct(params, frames)[0])

  encoder_means, (mu, _, targets), recon_plain, recon_inertia = outputs(params)
  np.testing.assert_allclose(mu, encoder_means, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(targets, frames[:, 2:])
  # decode(encode(x_t)) for t = 1..T-2, scored against x_{t+1}.
  np.testing.assert_allclose(recon_inertia, recon_plain[:, 1:-1], atol=1e-5)


def test_beta_normalisation_matches_the_reference_convention():
  assert dynamics.beta_from_normalized(0.001, 32 * 32, 4) == pytest.approx(0.256)
  assert _model(beta=0.5).beta == pytest.approx(128.0)
  assert _model(beta=3.0, beta_is_normalized=False).beta == 3.0


def test_reference_metrics_on_known_codes():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(2, 5000))
  codes = np.stack([a, a, b], axis=1)  # correlations 1 (twice, symmetric) and ~0 (four times)
  assert dynamics.offdiag_sq_corr(codes) == pytest.approx(2 / 6, abs=2e-3)
  sweeps = dynamics.factor_sweeps()
  values = sweeps[0, :, 0]
  assert sweeps.shape == (4, 16, 4)
  np.testing.assert_array_equal(sweeps[2, :, 2], values)
  assert np.all(sweeps[2, :, [0, 1, 3]] == 0.5)
  sweep_codes = np.stack([np.stack([values**3, -values, np.full(16, 2.0)], axis=-1)] * 4)
  corr = dynamics.sweep_correlations(sweep_codes, values)
  assert corr.shape == (4, 3)
  np.testing.assert_allclose(corr[:, 1], -1.0, atol=1e-6)
  assert np.all(corr[:, 2] == 0) and np.all(corr[:, 0] > 0.9)  # a constant latent scores 0


def test_factor_r2_separates_encoded_from_linearly_encoded():
  rng = np.random.default_rng(0)
  factors = rng.random((2000, 4))
  knn, linear = dynamics.factor_r2(factors, factors)
  assert np.all(knn > 0.9) and np.all(linear > 0.999)
  # Factor 0 on a two-turn spiral (encoded, but by a non-monotone 2-D map), factor 1 absent,
  # factors 2 and 3 linear.
  radius, angle = 1 + factors[:, 0], 12 * factors[:, 0]
  folded = np.stack([radius * np.cos(angle), radius * np.sin(angle), factors[:, 2],
                     factors[:, 3]], axis=1)
  knn, linear = dynamics.factor_r2(folded, factors)
  assert knn[0] > 0.5 and linear[0] < 0.2  # encoded, but not linearly
  assert abs(knn[1]) < 0.2 and abs(linear[1]) < 0.05  # not encoded at all
  assert np.all(knn[2:] > 0.8) and np.all(linear[2:] > 0.999)


def test_supervised_control_disentangles_the_four_factors(tmp_path):
  config = circles_supervised.get_config("tiny")
  results = train.train_and_evaluate(config, tmp_path)
  assert results["mcc"] >= 0.99, results
  assert min(results["mcc_per_factor"]) >= 0.98
  assert results["sweep_max_abs_corr"] >= 0.98
  assert json.loads((tmp_path / "eval.json").read_text())["mcc"] == results["mcc"]


def test_dynamic_vae_end_to_end_smoke_run_writes_eval_json(tmp_path):
  config = circles_dynamic.get_config("inertia,tiny")
  train.train_and_evaluate(config, tmp_path)
  results = json.loads((tmp_path / "eval.json").read_text())
  for key in ("mcc", "inertia_mcc", "latent_corr_offdiag_sq", "sweep_max_abs_corr",
              "recon_mse_per_pixel"):
    assert np.isfinite(results[key]), key
  assert np.array(results["sweep_corr"]).shape == (4, 4)
  assert results["num_steps"] == config.train.num_steps
  assert (tmp_path / "figures" / "sweeps.png").exists()
  assert (tmp_path / "figures" / "reconstructions.png").exists()


def test_bad_settings_raise_clear_errors():
  with pytest.raises(ValueError, match="model.dynamics"):
    _model(dynamics="kalman")
  with pytest.raises(ValueError, match="model.gamma"):
    _model(dynamics="inertia", gamma=1.5)
  static = datasets.DatasetInfo(image_shape=IMAGE_SHAPE, factor_names=("a", "b", "c", "d"))
  with pytest.raises(ValueError, match="circles_dynamic"):
    dynamics.DynamicsVAE(_model(dynamics="linear_prediction").config, static)
  with pytest.raises(ValueError, match="num_train"):
    datasets.load_circles_static(ml_collections.ConfigDict(dict(num_train=0, num_test=4, seed=0)))
  with pytest.raises(ValueError, match="at most one of"):
    circles_dynamic.get_config("inertia,linear_prediction")


def test_sweep_grid_is_typed_crossed_and_summarised():
  config = circles_dynamic.get_config("linear_prediction,tiny")
  grid = sweep.parse_grid(["model.beta=0.001,0.1", "model.gamma=0,1", "model.variational=false"],
                          config)
  assert grid == {"model.beta": [0.001, 0.1], "model.gamma": [0.0, 1.0],
                  "model.variational": [False]}
  points = sweep.grid_points(grid)
  assert len(points) == 4 and points[1] == {"model.beta": 0.001, "model.gamma": 1.0,
                                            "model.variational": False}
  changed = sweep.point_config(config, points[3], seed=7)
  assert (changed.model.beta, changed.model.gamma, changed.seed) == (0.1, 1.0, 7)
  assert config.model.gamma == 1.0 and config.model.beta == 0.001 and config.seed == 0
  for bad in (["model.betta=1"], ["model.beta=high"], ["model.beta"]):
    with pytest.raises(ValueError):
      sweep.parse_grid(bad, config)
  runs = [dict(point=points[0], seed=s, results={"mcc": v}) for s, v in ((0, 0.5), (1, 0.7))]
  rows = sweep.summarize(runs, points[:2], ["mcc"])
  assert rows[0]["metrics"]["mcc"]["mean"] == pytest.approx(0.6)
  assert rows[0]["metrics"]["mcc"]["std"] == pytest.approx(0.1)
  assert rows[1]["metrics"]["mcc"]["n"] == 0
  table = sweep.markdown_table(rows, list(grid), ["mcc"])
  assert "| 0.001 | 0.0 | False | 0.6 ± 0.1 |" in table and "n/a" in table
  runs[0]["wall_s"] = 12.3
  seed_table = sweep.per_seed_table(runs, list(grid), ["mcc", "other"])
  assert "| 0.001 | 0.0 | False | 0 | 0.5 | n/a | 12 |" in seed_table
  assert "| 0.001 | 0.0 | False | 1 | 0.7 | n/a | n/a |" in seed_table
