"""Ada-GVAE: the threshold rule on hand-built KL vectors, the release's variant, exact aggregated
posteriors, the loss through the networks, the config, and a tiny end-to-end training run (through
experiments/slowvae_curves.py, whose plan is tested here too)."""
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from data import sprites
from experiments import adagvae_sprites
from experiments import slowvae_curves as curves
from nlvae import datasets, models
from nlvae.models import adagvae, slowvae
from tests.test_slowvae import shrink


def test_adaptive_threshold_on_hand_built_kl_vectors():
  # tau = 0.5 (max + min); averaged iff delta < tau.
  delta = jnp.array([
      [0.0, 0.1, 5.0, 0.2, 9.9, 10.0],    # tau 5.0: 5.0 itself is kept (strict <)
      [1.0, 1.0, 1.0, 3.0, 1.0, 1.0],     # tau 2.0: one changed factor
      [2.0, 2.0, 2.0, 2.0, 2.0, 2.0],     # all equal: tau = delta, nothing is averaged
      [4.0, 6.0, 7.9, 8.1, 12.0, 4.0],    # tau 8.0: the split is not at the largest gap
  ])
  expected = np.array([
      [True, True, False, True, False, False],
      [True, True, True, False, True, True],
      [False] * 6,
      [True, True, True, False, False, True],
  ])
  np.testing.assert_array_equal(adagvae.averaged_dimensions(delta), expected)
  # The release's min-max rule agrees wherever max > min, and averages all when all are equal.
  release = np.asarray(adagvae.averaged_dimensions(delta, "release"))
  np.testing.assert_array_equal(release[[0, 1, 3]], expected[[0, 1, 3]])
  assert release[2].all()
  with pytest.raises(ValueError, match="threshold"):
    adagvae.averaged_dimensions(delta, "median")


def test_release_rule_matches_the_adaptive_rule_on_random_kl_vectors():
  delta = jnp.asarray(np.random.default_rng(0).exponential(2.0, (500, 10)), jnp.float32)
  adaptive = np.asarray(adagvae.averaged_dimensions(delta))
  np.testing.assert_array_equal(adaptive, adagvae.averaged_dimensions(delta, "release"))
  # Some but not all dimensions are averaged in every row; the largest KL is always kept.
  counts = adaptive.sum(axis=1)
  assert counts.min() >= 1 and counts.max() <= 9
  assert not adaptive[np.arange(500), np.argmax(np.asarray(delta), axis=1)].any()


def random_moments(seed, num_pairs=7, dim=5):
  rng = np.random.default_rng(seed)
  return rng.normal(0, 1.5, (num_pairs, 2, dim)), rng.uniform(-4, 1, (num_pairs, 2, dim))


def test_per_dimension_kl_is_the_univariate_gaussian_kl():
  mean, log_var = random_moments(1)
  var = np.exp(log_var)
  expected = 0.5 * (var[:, 0] / var[:, 1] + (mean[:, 0] - mean[:, 1])**2 / var[:, 1] - 1
                    + log_var[:, 1] - log_var[:, 0])
  delta = adagvae.per_dimension_kl(jnp.asarray(mean, jnp.float32),
                                   jnp.asarray(log_var, jnp.float32))
  assert delta.shape == (7, 5)
  np.testing.assert_allclose(delta, expected, rtol=1e-5, atol=1e-5)
  # Identical posteriors: zero KL.
  same = jnp.broadcast_to(jnp.asarray(mean[:, :1], jnp.float32), (7, 2, 5))
  np.testing.assert_allclose(adagvae.per_dimension_kl(same, jnp.zeros_like(same)), 0, atol=1e-6)


@pytest.mark.parametrize("aggregation", ["gvae", "mlvae"])
def test_averaged_posterior_is_exact(aggregation):
  mean, log_var = random_moments(2)
  new_mean, new_log_var, averaged = (np.asarray(a) for a in adagvae.adaptive_posterior(
      jnp.asarray(mean, jnp.float32), jnp.asarray(log_var, jnp.float32),
      aggregation=aggregation))
  var = np.exp(log_var)
  assert averaged.any() and not averaged.all()
  if aggregation == "gvae":  # arithmetic means of the means and of the variances
    shared_mean, shared_var = mean.mean(axis=1), var.mean(axis=1)
  else:  # geometric mean of the two densities, renormalised, on a grid (float64)
    grid = np.linspace(-12, 12, 200_001)
    log_q = -0.5 * (grid - mean[..., None])**2 / var[..., None] - 0.5 * log_var[..., None]
    density = np.exp(0.5 * (log_q[:, 0] + log_q[:, 1]))
    density /= density.sum(axis=-1, keepdims=True)
    shared_mean = (density * grid).sum(axis=-1)
    shared_var = (density * (grid - shared_mean[..., None])**2).sum(axis=-1)
  for frame in range(2):
    np.testing.assert_allclose(new_mean[:, frame][averaged], shared_mean[averaged],
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.exp(new_log_var[:, frame][averaged]), shared_var[averaged],
                               rtol=1e-4)
    # Every other dimension keeps its frame's own posterior, bit for bit.
    np.testing.assert_array_equal(new_mean[:, frame][~averaged],
                                  mean[:, frame].astype(np.float32)[~averaged])
    np.testing.assert_array_equal(new_log_var[:, frame][~averaged],
                                  log_var[:, frame].astype(np.float32)[~averaged])
  # The averaged dimensions are exactly those below 0.5 (max + min) of the per-dimension KL.
  delta = adagvae.per_dimension_kl(jnp.asarray(mean, jnp.float32),
                                   jnp.asarray(log_var, jnp.float32))
  np.testing.assert_array_equal(averaged, adagvae.averaged_dimensions(delta))


def tiny_config(transitions="uniform"):
  return shrink(adagvae_sprites.get_config(transitions), eval_metrics="mcc")


def test_loss_through_the_networks_and_gradients_of_the_shared_posterior():
  config = tiny_config()
  data, _, info = datasets.load_sprites(config.data)
  model = models.build(config.model, info)
  assert isinstance(model, adagvae.AdaGVAE) and model.beta == 1.0
  batch = {"frames": jnp.asarray(data["frames"][:4])}
  params = model.init(jax.random.PRNGKey(0), batch)

  @jax.jit
  def loss_by_model_and_by_hand(params, frames, key):
    """Model.loss with its gradients, and the same loss by hand: encoder moments -> adaptive
    posterior -> one reparameterised sample -> beta-VAE ELBO."""
    (loss, terms), grads = jax.value_and_grad(model.loss, has_aux=True)(
        params, {"frames": frames}, key)
    images = frames / 255.0
    mean, log_var, averaged = adagvae.adaptive_posterior(*model.encode(params, images))
    logits = model.decode_sample(params, mean, log_var, key)
    expected = slowvae.beta_vae_objective(logits, images, mean, log_var, beta=1.0)[0]
    return loss, terms, grads, expected, jnp.mean(jnp.sum(averaged, -1))

  loss, terms, grads, expected, averaged_dims = loss_by_model_and_by_hand(
      params, batch["frames"], jax.random.PRNGKey(1))
  np.testing.assert_allclose(loss, expected, rtol=1e-5)
  assert terms["averaged_dims"] == pytest.approx(float(averaged_dims))
  assert 0 < terms["averaged_dims"] < 10
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  assert any(bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads["encoder"]))
  for bad in (dict(threshold="median"), dict(aggregation="poe")):
    with pytest.raises(ValueError):
      models.build(ml_collections.ConfigDict({**config.model.to_dict(), **bad}), info)


def test_configs_and_variants():
  for variant, transitions in (("", "laplace"), ("uniform", "uniform"), ("loc", "uniform"),
                               ("medium", "laplace"), ("full_uniform", "uniform")):
    config = adagvae_sprites.get_config(variant)
    assert config.model.name == "adagvae" and config.data.transitions == transitions
    assert config.model.threshold == "adaptive" and config.model.beta == 1.0
    assert "gamma" not in config.model
  full = adagvae_sprites.get_config("full")
  assert (full.train.num_steps, full.train.learning_rate) == (300_000, 1e-4)


def test_curves_plan():
  steps = curves.log_spaced_steps(100, 25_000, 9)
  assert len(steps) == 9 and (steps[0], steps[-1]) == (100, 25_000)
  np.testing.assert_allclose(np.diff(np.log(steps)), np.log(250) / 8, rtol=0.01)
  assert curves.log_spaced_steps(1, 3, 5) == [1, 2, 3] and curves.log_spaced_steps(5, 5, 3) == [5]
  runs = curves.make_runs(["slowvae", "adagvae"], ["lap", "uniform", "loc"])
  assert [r.name for r in runs] == ["slowvae_laplace", "slowvae_uniform", "adagvae_laplace",
                                    "adagvae_uniform"]
  for bad in ((["vae"], ["laplace"]), (["slowvae"], ["brownian"]), (["slowvae"], [])):
    with pytest.raises(ValueError):
      curves.make_runs(*bad)
  config = curves.run_config(runs[0], 25_000, seed=3)
  assert (config.train.num_steps, config.train.schedule, config.seed) == (25_000, "warmup_cosine",
                                                                          3)
  assert config.train.warmup_steps == 500 and curves.run_config(runs[0], 1000, 0).train.warmup_steps == 100
  # slowvae_reference is SlowVAE's config with the release's Laplace term, nothing else changed.
  (reference,) = curves.make_runs(["slowvae_reference"], ["laplace"])
  reference_config = curves.run_config(reference, 25_000, seed=3)
  assert (reference.name, config.model.kl_form, reference_config.model.kl_form) == (
      "slowvae_reference_laplace", "symmetric", "reference")
  reference_config.model.kl_form = "symmetric"
  assert reference_config.to_dict() == config.to_dict()


def test_tiny_training_run_through_the_curves_script(tmp_path):
  # Ada-GVAE trained end to end (nlvae.train) for 3 steps, stopped and evaluated at steps 1 and 3;
  # the last stop is the run's own eval.json.
  run = curves.Run("adagvae", "uniform")
  tiny = dict(data=dict(num_train=16, num_test=8), train=dict(batch_size=4, log_every=1),
              model=dict(eval_metrics="mcc", traversal_steps=2, traversal_examples=1))
  logged = []
  rows = curves.run_curves(tmp_path, [run], [1, 3], overrides=tiny, log=logged.append)
  assert [r["step"] for r in rows] == [1, 3] and len(logged) == 2
  for row in rows:
    assert 0 <= row["mcc"] <= 1
    assert {f"mcc_factor/{name}" for name in sprites.FACTOR_NAMES} <= set(row)
  run_dir = tmp_path / "adagvae_uniform"
  written = json.loads((run_dir / "eval.json").read_text())
  assert written["num_steps"] == 3 and rows[1]["mcc"] == written["mcc"]
  assert "test_recon" in rows[1] and "test_recon" not in rows[0]
  assert np.isfinite(written["test_loss"]) and 0 < written["test_averaged_dims"] < 10
  assert 0 < rows[0]["train_s"] < rows[1]["train_s"] <= rows[1]["wall_s"]
  metrics_rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in metrics_rows if "train/averaged_dims" in r] == [1, 2, 3]
  assert (tmp_path / "curves.png").stat().st_size > 0
  assert "| 3 |" in (tmp_path / "curves.md").read_text()
  # Rerunning reads the rows back instead of training again.
  assert curves.run_curves(tmp_path, [run], [1, 3], overrides=tiny, log=logged.append) == rows
  assert len(logged) == 2
