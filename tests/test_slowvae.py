"""SlowVAE / beta-VAE: loss parity with an independent transcription of the reference formula,
the symmetric-vs-reference KL forms, data loading, evaluation helpers, configs, the seeds runner's
aggregation, and an end-to-end smoke run of the training loop."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats

from data import sprites, video
from experiments import betavae_sprites, seeds, slowvae_sprites
from experiments.configs import sprites as sprites_configs
from nlvae import datasets, metrics, networks, priors, train
from nlvae.models import slowvae


def random_outputs(seed, num_pairs=3, latent_dim=4, side=8, mean_scale=1.0):
  """Random decoder logits, binary images [N, 2, side, side, 1] and posterior moments [N, 2, D]."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(0, 3, (num_pairs, 2, side, side, 1))
  images = (rng.random((num_pairs, 2, side, side, 1)) < 0.3).astype(np.float64)
  mean = rng.normal(0, mean_scale, (num_pairs, 2, latent_dim))
  log_var = rng.uniform(-6, 1, (num_pairs, 2, latent_dim))
  return logits, images, mean, log_var


def reference_loss_numpy(logits, images, mean, log_var, beta, gamma, rate, entropy_count):
  """REFERENCE.md's SlowVAE loss transcribed in float64 numpy/scipy, in the reference's layout:
  a batch of 2N images where rows 2n and 2n + 1 are the two frames of pair n (x[::2], x[1::2]).
  entropy_count = 1 is the release's Laplace term, 2 the symmetric KL."""
  num_images = 2 * logits.shape[0]
  x, l = images.reshape(num_images, -1), logits.reshape(num_images, -1)
  bernoulli = np.sum(np.maximum(l, 0) - l * x + np.log1p(np.exp(-np.abs(l))), axis=1).mean()
  mu, lv = mean.reshape(num_images, -1), log_var.reshape(num_images, -1)
  var = np.exp(lv)
  sigma = np.sqrt(var)
  entropy = np.sum(0.5 * (lv + np.log(2 * np.pi * np.e)), axis=1).mean()
  cross_entropy_normal = np.sum(0.5 * (mu**2 + var) + np.log(np.sqrt(2 * np.pi)), axis=1).mean()

  def laplace_cross_entropy(m, s):  # N(m, s^2) against Laplace(0, 1/rate)
    expected_abs = s * np.sqrt(2 / np.pi) * np.exp(-m**2 / (2 * s**2)) + m * (
        1 - 2 * scipy.stats.norm.cdf(-m / s))
    return -np.log(rate / 2) + rate * expected_abs

  cross_entropy_laplace = np.sum(laplace_cross_entropy(mu[::2] - mu[1::2], sigma[::2])
                                 + laplace_cross_entropy(mu[1::2] - mu[::2], sigma[1::2]),
                                 axis=1).mean()
  return (2 * bernoulli + beta * (cross_entropy_normal - entropy)
          + gamma * (cross_entropy_laplace - entropy_count * entropy))


def objective(form, outputs, **weights):
  return slowvae.slowvae_objective(*(jnp.asarray(a, jnp.float32) for a in outputs),
                                   kl_form=form, **weights)


@pytest.mark.parametrize("seed,beta,gamma,rate", [(0, 1.0, 10.0, 6.0), (1, 4.0, 2.5, 1.0),
                                                  (2, 0.0, 10.0, 20.0)])
def test_slowvae_reference_form_matches_transcription(seed, beta, gamma, rate):
  outputs = random_outputs(seed)
  weights = dict(beta=beta, gamma=gamma, rate=rate)
  for form, entropy_count in (("reference", 1), ("symmetric", 2)):
    loss, terms = objective(form, outputs, **weights)
    expected = reference_loss_numpy(*outputs, entropy_count=entropy_count, **weights)
    np.testing.assert_allclose(loss, expected, rtol=2e-5)
    np.testing.assert_allclose(terms["loss"], loss)


def test_symmetric_form_is_reference_minus_one_more_entropy():
  outputs = random_outputs(3)
  weights = dict(beta=1.0, gamma=10.0, rate=6.0)
  loss_ref, ref = objective("reference", outputs, **weights)
  loss_sym, sym = objective("symmetric", outputs, **weights)
  entropy = np.mean(np.sum(0.5 * (1 + np.log(2 * np.pi) + outputs[3]), axis=-1))
  np.testing.assert_allclose(sym["entropy"], entropy, rtol=1e-5)
  np.testing.assert_allclose(loss_sym, loss_ref - weights["gamma"] * entropy, rtol=1e-5,
                             atol=1e-3)
  np.testing.assert_allclose(sym["laplace_kl"], ref["laplace_kl"] - entropy, rtol=1e-5, atol=1e-4)
  for key in ("recon", "kl", "laplace_cross_entropy"):
    np.testing.assert_allclose(sym[key], ref[key])


def symmetric_laplace_kl_per_pair(mean, log_var, rate):
  """KL(q_0 || Laplace(mu_1)) + KL(q_1 || Laplace(mu_0)) per pair: [N, 2, D] -> [N] (numpy)."""
  entropy = np.sum(0.5 * (1 + np.log(2 * np.pi) + log_var), axis=(-2, -1))
  cross_entropy = jax.jit(slowvae.laplace_transition_cross_entropy, static_argnums=2)(
      jnp.asarray(mean, jnp.float32), jnp.asarray(log_var, jnp.float32), rate)
  return np.asarray(cross_entropy, np.float64) - entropy


def test_symmetric_laplace_term_is_a_nonnegative_kl_with_the_gaussian_minimum():
  # Each direction is KL(q_a || Laplace(mu_b, 1/rate)) >= 0, for any posterior, including far-apart
  # means and nearly deterministic posteriors.
  for seed in range(6):
    _, _, mean, log_var = random_outputs(seed, num_pairs=64, mean_scale=[0.01, 1.0, 10.0][seed % 3])
    assert np.all(symmetric_laplace_kl_per_pair(mean, log_var, 6.0) >= -1e-4)
  # Equal means: KL(N(m, s^2) || Laplace(m, 1/rate)) = -log(rate / 2) + rate s sqrt(2 / pi)
  # - log(sqrt(2 pi e) s) is smallest at s = sqrt(pi / 2) / rate, where it is 1/2 + log(2 / pi)
  # (for every rate): twice that per pair.
  for rate in (1.0, 6.0):
    log_vars = np.linspace(-10, 2, 4001)
    moments = np.broadcast_to(log_vars[:, None, None], (4001, 2, 1))
    values = symmetric_laplace_kl_per_pair(np.zeros_like(moments), moments, rate)
    best_std = np.exp(0.5 * log_vars[np.argmin(values)])
    np.testing.assert_allclose(best_std, np.sqrt(np.pi / 2) / rate, rtol=2e-3)
    np.testing.assert_allclose(values.min(), 2 * (0.5 + np.log(2 / np.pi)), rtol=1e-3)


def test_laplace_term_is_sequence_kl_with_a_point_history():
  # priors.sequence_kl(laplace_transition, estimator="sequential") samples the history from its
  # posterior; with a (numerically) zero history variance it is the point-history term that the
  # SlowVAE objective uses: CE(q_1; Laplace(mu_0, 1/rate)) - H(q_1).
  rate, dim = 6.0, 5
  rng = np.random.default_rng(4)
  mean = jnp.asarray(rng.normal(0, 0.5, (2, dim)), jnp.float32)
  log_var = jnp.asarray(np.stack([np.full(dim, -30.0), rng.uniform(-4, 0, dim)]), jnp.float32)
  prior = priors.laplace_transition(latent_dim=dim, rate=rate)
  sequential = jax.jit(lambda m, v, key: priors.sequence_kl(
      prior, m, v, key, estimator="sequential", num_samples=4))(
          mean, jnp.exp(log_var), jax.random.PRNGKey(0))[1]
  both = slowvae.laplace_transition_cross_entropy(mean[None], log_var[None], rate)[0]
  # Direction 1 -> 0 with a point posterior for frame 0: -log(rate / 2) + rate |mu_0 - mu_1|.
  point_direction = jnp.sum(-np.log(rate / 2) + rate * jnp.abs(mean[0] - mean[1]))
  entropy_1 = 0.5 * jnp.sum(1 + np.log(2 * np.pi) + log_var[1])
  np.testing.assert_allclose(both - point_direction - entropy_1, sequential, rtol=1e-4, atol=1e-4)


def test_beta_vae_objective_matches_analytic_kl_and_bernoulli():
  logits, images, mean, log_var = random_outputs(5, num_pairs=4, latent_dim=6)
  loss, terms = slowvae.beta_vae_objective(*(jnp.asarray(a, jnp.float32) for a in
                                             (logits, images, mean, log_var)), beta=4.0)
  kl = 0.5 * np.sum(mean**2 + np.exp(log_var) - 1 - log_var, axis=-1).mean()
  probabilities = scipy.special.expit(logits)
  recon = -np.sum(images * np.log(probabilities) + (1 - images) * np.log1p(-probabilities),
                  axis=(-3, -2, -1)).mean()
  np.testing.assert_allclose(terms["kl"], kl, rtol=1e-5)
  np.testing.assert_allclose(terms["recon"], recon, rtol=1e-5)
  np.testing.assert_allclose(loss, recon + 4.0 * kl, rtol=1e-5)


def shrink(config, eval_metrics="mcc,sap"):
  """A sprite config cut to 32 training pairs and 3 steps (every model's tests use it)."""
  config.data.num_train, config.data.num_test = 32, 8
  config.train.update(batch_size=4, num_steps=3, log_every=1, eval_every=3, checkpoint_every=3,
                      progress_bar=False)
  config.model.update(eval_metrics=eval_metrics, traversal_steps=3, traversal_examples=2)
  return config


def tiny_config(model_name="slowvae"):
  return shrink((slowvae_sprites if model_name == "slowvae" else betavae_sprites).get_config())


def test_model_loss_through_the_networks():
  config = tiny_config()
  data, _, info = datasets.load_sprites(config.data)
  model = slowvae.SlowVAE(config.model, info)
  batch = jax.tree.map(lambda x: jnp.asarray(x[:4]), data)
  params = model.init(jax.random.PRNGKey(0), batch)
  assert networks.num_params(params) == 763_285  # REFERENCE.md

  @jax.jit
  def loss_and_outputs(params, frames, key):
    """Model.loss, and its inputs by hand: encoder moments, reparameterised sample, decoder."""
    loss = model.loss(params, {"frames": frames}, key)[0]
    images = frames / 255.0
    posterior = model.encoder.apply(params["encoder"], images)
    mean, log_var = posterior.mean, posterior.log_var
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(key, mean.shape)
    return loss, (model.decoder.apply(params["decoder"], z), images, mean, log_var)

  loss, outputs = loss_and_outputs(params, batch["frames"], jax.random.PRNGKey(1))
  expected = reference_loss_numpy(*(np.asarray(a, np.float64) for a in outputs),
                                  beta=1.0, gamma=10.0, rate=6.0, entropy_count=2)
  assert np.isfinite(expected)
  np.testing.assert_allclose(loss, expected, rtol=1e-4)
  with pytest.raises(ValueError, match="kl_form"):
    config.model.kl_form = "forward"
    slowvae.SlowVAE(config.model, info)


def test_load_sprites_pairs_are_deterministic_and_follow_the_transitions():
  config = tiny_config().data
  train_a, test_a, info = datasets.load_sprites(config)
  train_b, _, _ = datasets.load_sprites(config)
  assert train_a["frames"].shape == (32, 2, 64, 64, 1) and train_a["frames"].dtype == np.uint8
  assert train_a["factors"].shape == (32, 2, 5) and test_a["factors"].shape == (8, 2, 5)
  np.testing.assert_array_equal(train_a["frames"], train_b["frames"])
  assert not np.array_equal(train_a["factors"], test_a["factors"][:8].repeat(4, axis=0))
  np.testing.assert_array_equal(train_a["frames"], sprites.render(train_a["factors"]))
  # LAP never changes shape and always changes something; LOC's pairs differ in 1..4 factors.
  lap = train_a["factors"]
  assert np.all(lap[:, 0, 0] == lap[:, 1, 0]) and np.all(np.any(lap[:, 0] != lap[:, 1], axis=1))
  config.transitions = "uniform"
  uniform, _, uniform_info = datasets.load_sprites(config)
  changed = np.sum(uniform["factors"][:, 0] != uniform["factors"][:, 1], axis=1)
  assert changed.min() >= 1 and changed.max() <= 4
  assert info.transitions == "laplace" and uniform_info.transitions == "uniform"
  config.k = 2  # the reference's --data-k: exactly k factors change; k <= 0 draws it
  np.testing.assert_array_equal(np.sum(np.diff(datasets.load_sprites(config)[0]["factors"], axis=1)
                                       != 0, axis=(1, 2)), 2)
  config.k = 0
  # The earlier names are aliases: the same sampler, the same bytes.
  for alias, name in (("loc", "uniform"), ("uni", "uniform"), ("lap", "laplace")):
    config.transitions = alias
    aliased, _, aliased_info = datasets.load_sprites(config)
    assert aliased_info.transitions == name
    np.testing.assert_array_equal(aliased["frames"], (uniform if name == "uniform" else train_a)[
        "frames"])
  assert info.image_shape == (64, 64, 1) and info.factor_names == sprites.FACTOR_NAMES
  assert info.num_frames == 2 and info.dt is None  # pairs; no time step
  config.transitions = "brownian"
  with pytest.raises(ValueError, match="transitions"):
    datasets.load_sprites(config)


def test_metric_groups_partition_compute_all_and_parse():
  keys = [key for group in slowvae.METRIC_GROUPS.values() for key in group]
  assert sorted(keys) == sorted(metrics.COMPUTE_ALL_KEYS) and len(set(keys)) == len(keys)
  assert slowvae.parse_metric_groups("all") == tuple(slowvae.METRIC_GROUPS)
  assert slowvae.parse_metric_groups(" sap,mcc ") == ("mcc", "sap")
  for bad in ("", "mcc,dci2", "all,mcc"):
    with pytest.raises(ValueError, match="eval_metrics"):
      slowvae.parse_metric_groups(bad)


def test_metric_subset_scores_a_perfect_representation():
  # Codes that are the factors themselves: MCC and per-factor correlations 1.
  ground_truth = sprites.SpritesGroundTruth()
  class FactorsAsCodes:
    num_factors, factors_num_values = ground_truth.num_factors, ground_truth.factors_num_values
    factor_names = ground_truth.factor_names
    sample_factors = staticmethod(ground_truth.sample_factors)
    def sample_observations_from_factors(self, factors, random_state):
      return factors.astype(np.float32)
  results = slowvae.disentanglement_metrics(FactorsAsCodes(), lambda x: x,
                                            np.random.default_rng(0), groups=("mcc", "mig"))
  assert results["mcc"] == pytest.approx(1.0)
  assert all(results[f"mcc_factor/{name}"] == pytest.approx(1.0) for name in sprites.FACTOR_NAMES)
  # The subset draws one pool of max(MCC, MIG) = 10k quick-scale rows, MIG uses all of them.
  codes, factors = metrics.sample_codes_and_factors(FactorsAsCodes(), lambda x: x,
                                                    metrics.QUICK_SAMPLE_SIZES.mig,
                                                    np.random.default_rng(0))
  assert results["mig"] == metrics.mig(codes, factors)["score"]
  assert set(results) == {"mcc", "mig"} | {f"mcc_factor/{n}" for n in sprites.FACTOR_NAMES}


def test_padded_chunks_cover_every_row_once():
  array = np.arange(14).reshape(7, 2)
  chunks = list(slowvae.padded_chunks(array, 3))
  assert [start for start, _ in chunks] == [0, 3, 6]
  assert all(part.shape == (3, 2) for _, part in chunks)
  np.testing.assert_array_equal(np.concatenate([p for _, p in chunks])[:7], array)
  np.testing.assert_array_equal(chunks[-1][1][1:], 0)


def test_traversal_latents_and_grid():
  codes = np.arange(6.0).reshape(2, 3)  # K = 2 examples, D = 3
  latents = slowvae.traversal_latents(codes, 2.0, 5)  # [T, D, K, D]
  assert latents.shape == (5, 3, 2, 3)
  for d in range(3):
    np.testing.assert_allclose(latents[:, d, :, d], np.linspace(-2, 2, 5)[:, None].repeat(2, 1))
    others = [e for e in range(3) if e != d]
    np.testing.assert_allclose(latents[:, d][..., others], np.broadcast_to(codes[:, others],
                                                                          (5, 2, 2)))
  images = np.zeros((4, 3, 2, 5, 6, 1), np.uint8)
  images[:, 1, 1] = 7
  grid = slowvae.traversal_grid(images, gap=2)
  assert grid.shape == (4, 3 * 7 - 2, 2 * 8 - 2, 1)
  np.testing.assert_array_equal(grid[:, 7:12, 8:14], 7)
  assert np.all(grid[:, 5:7] == 255)


def test_configs_and_variants():
  cases = {None: ("quick", "laplace"), "uniform": ("quick", "uniform"), "loc": ("quick", "uniform"),
           "lap": ("quick", "laplace"), "medium": ("medium", "laplace"),
           "medium_uniform": ("medium", "uniform"), "full": ("full", "laplace"),
           "full_loc": ("full", "uniform"), "full_uniform": ("full", "uniform"),
           "natural": ("quick", "natural")}
  steps = {"quick": 300, "medium": 7_500, "full": 300_000}
  for variant, (scale, transitions) in cases.items():
    slow, beta = slowvae_sprites.get_config(variant), betavae_sprites.get_config(variant)
    assert sprites_configs.parse_variant(variant) == (scale, transitions, False)
    assert slow.data.transitions == beta.data.transitions == transitions
    assert sprites.canonical_transitions(transitions) == transitions
    assert (slow.model.name, beta.model.name) == ("slowvae", "beta_vae")
    assert "gamma" not in beta.model and beta.model.beta == 4.0
    assert slow.train.batch_size == 32  # 32 pairs = 64 images
    assert slow.train.num_steps == beta.train.num_steps == steps[scale]
    assert slow.data.to_dict() == beta.data.to_dict() and slow.train == beta.train
  for variant, dataset in (("tfds", "sprites_lap/rate1"), ("medium_loc_tfds", "sprites_loc/default"),
                           ("natural_tfds", "sprites_natural/default")):
    from_disk = slowvae_sprites.get_config(variant)
    assert from_disk.data.to_dict() == dict(name="tfds", dataset=dataset, data_dir="")
    assert from_disk.train == slowvae_sprites.get_config(variant[:-len("_tfds")] or None).train
  full = slowvae_sprites.get_config("full")
  assert (full.train.num_steps, full.train.learning_rate, full.train.schedule) == (
      300_000, 1e-4, "constant")
  assert (full.model.beta, full.model.gamma, full.model.rate_prior, full.model.latent_dim) == (
      1.0, 10.0, 6.0, 10)
  assert full.model.eval_scale == "full" and full.model.eval_metrics == "all"
  medium = slowvae_sprites.get_config("medium").train
  assert medium.schedule == "warmup_cosine" and medium.warmup_steps < medium.num_steps
  for bad in ("fast", "full_x", "uniform_full", "medium_loc_x", "_"):
    with pytest.raises(ValueError, match="variant"):
      slowvae_sprites.get_config(bad)


def test_seed_summary_and_table():
  summary = seeds.summarize({0: {"mcc": 0.5, "name": "x", "ok": True, "steps": 3},
                             2: {"mcc": 0.7, "steps": 3, "sap": 0.1}})
  assert summary["seeds"] == [0, 2]
  assert set(summary["metrics"]) == {"mcc", "steps", "sap"}
  assert summary["metrics"]["mcc"]["mean"] == pytest.approx(0.6)
  assert summary["metrics"]["mcc"]["std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
  assert summary["metrics"]["sap"] == {"mean": 0.1, "std": 0.0, "per_seed": [None, 0.1]}
  table = seeds.markdown_table(summary).splitlines()
  assert table[0] == "| metric | mean ± std | seed 0 | seed 2 |" and len(table) == 5
  assert seeds.parse_seeds("0, 1,2") == [0, 1, 2]
  for bad in ("", "a", "1,1", "-1"):
    with pytest.raises(ValueError, match="seeds"):
      seeds.parse_seeds(bad)


def test_train_and_evaluate_smoke(tmp_path):
  config = tiny_config()
  results = train.train_and_evaluate(config, tmp_path)
  written = json.loads((tmp_path / "eval.json").read_text())
  assert written == pytest.approx(results)
  expected = {"mcc", "sap", "num_steps", "eval_seconds", "test_loss", "test_recon", "test_kl",
              "test_laplace_kl"} | {f"mcc_factor/{n}" for n in sprites.FACTOR_NAMES}
  assert expected <= set(written)
  assert 0.0 <= written["mcc"] <= 1.0 and written["num_steps"] == 3
  assert all(np.isfinite(v) for v in written.values())
  traversal = video.read_video(tmp_path / "videos" / "latent_traversal.gif")
  # 2 x 3 frames (forth and back), one 64-pixel row per latent (10), one column per example (2).
  assert traversal.shape == (6, 10 * 66 - 2, 2 * 66 - 2, 1)
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert any("train/laplace_kl" in row for row in rows)

