"""KL estimators: Monte Carlo against analytic and numerical integration, stability, gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats
from hypothesis import given, settings, strategies as st

from nlvae import gaussians, kl
from nlvae.gaussians import Gaussian, GaussianMixture


def random_gaussian(rng, dim, diagonal, scale=1.0):
  mean = rng.normal(0, scale, dim)
  if diagonal:
    cov = np.diag(rng.uniform(0.2, 3.0, dim))
  else:
    a = rng.normal(0, 1, (dim, dim))
    cov = a @ a.T / dim + 0.3 * np.eye(dim)
  return Gaussian(jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32))


def analytic_kl_numpy(q, p):
  """Textbook KL between Gaussians in float64 (independent of nlvae.kl)."""
  mq, sq = np.asarray(q.mean, np.float64), np.asarray(q.cov, np.float64)
  mp, sp = np.asarray(p.mean, np.float64), np.asarray(p.cov, np.float64)
  inv = np.linalg.inv(sp)
  d = mp - mq
  return 0.5 * (np.trace(inv @ sq) + d @ inv @ d - len(mq)
                + np.linalg.slogdet(sp)[1] - np.linalg.slogdet(sq)[1])


mc_terms = jax.jit(kl.mixture_kl_terms, static_argnums=3)


@pytest.mark.parametrize("dim", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("diagonal", [True, False])
def test_monte_carlo_kl_matches_analytic_for_single_gaussians(dim, diagonal):
  rng = np.random.default_rng(dim + 10 * diagonal)
  for trial in range(3):
    q, p = random_gaussian(rng, dim, diagonal), random_gaussian(rng, dim, diagonal)
    exact = analytic_kl_numpy(q, p)
    np.testing.assert_allclose(kl.gaussian_kl(q, p), exact, rtol=1e-4, atol=1e-4)
    terms = np.asarray(mc_terms(jax.random.PRNGKey(trial), gaussians.as_mixture(q),
                                gaussians.as_mixture(p), 20_000))[:, 0]
    stderr = terms.std() / np.sqrt(terms.size)
    assert abs(terms.mean() - exact) < 4 * stderr + 1e-4, (terms.mean(), exact, stderr)


def test_diag_kl_matches_full_kl():
  rng = np.random.default_rng(0)
  qm, qv, pm, pv = rng.normal(size=4), rng.uniform(0.1, 2, 4), rng.normal(size=4), rng.uniform(0.1, 2, 4)
  full = kl.gaussian_kl(gaussians.diag_gaussian(jnp.asarray(qm), jnp.asarray(qv)),
                        gaussians.diag_gaussian(jnp.asarray(pm), jnp.asarray(pv)))
  np.testing.assert_allclose(kl.diag_gaussian_kl(qm, qv, pm, pv), full, rtol=1e-5)


def test_kl_of_a_distribution_with_itself_is_zero():
  rng = np.random.default_rng(1)
  q = random_gaussian(rng, 4, diagonal=False)
  np.testing.assert_allclose(kl.gaussian_kl(q, q), 0.0, atol=1e-5)
  mix = GaussianMixture(jnp.log(jnp.array([0.2, 0.5, 0.3])),
                        jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
                        jnp.broadcast_to(jnp.eye(2) * 0.5, (3, 2, 2)))
  assert float(kl.mixture_kl(jax.random.PRNGKey(0), mix, mix, 64)) == 0.0


def test_monte_carlo_mixture_kl_is_non_negative_on_average():
  rng = np.random.default_rng(2)
  key = jax.random.PRNGKey(3)
  for trial in range(5):
    # Near-identical mixtures: the true KL is small, so a biased estimator would show up as < 0.
    means = rng.normal(size=(3, 2))
    q = GaussianMixture(jnp.log(jnp.full((3,), 1 / 3)), jnp.asarray(means, jnp.float32),
                        jnp.broadcast_to(jnp.eye(2, dtype=jnp.float32), (3, 2, 2)))
    p = q._replace(means=q.means + 0.05 * jnp.asarray(rng.normal(size=(3, 2)), jnp.float32))
    terms = np.asarray(mc_terms(jax.random.fold_in(key, trial), q, p, 20_000))
    per_sample = terms.mean(axis=-1)  # equal weights
    stderr = per_sample.std() / np.sqrt(per_sample.size)
    assert per_sample.mean() > -3 * stderr


def mixture_pdf_numpy(x, weights, means, stds):
  return sum(w * scipy.stats.norm.pdf(x, m, s) for w, m, s in zip(weights, means, stds))


def test_1d_mixture_kl_matches_numerical_integration():
  q_w, q_m, q_s = [0.3, 0.7], [-1.0, 1.5], [0.5, 0.8]
  p_w, p_m, p_s = [0.5, 0.2, 0.3], [0.0, 2.5, -2.0], [1.0, 0.5, 0.7]
  grid = np.linspace(-12, 12, 200_001)
  q_pdf, p_pdf = mixture_pdf_numpy(grid, q_w, q_m, q_s), mixture_pdf_numpy(grid, p_w, p_m, p_s)
  integrand = np.where(q_pdf > 0, q_pdf * (np.log(q_pdf) - np.log(p_pdf)), 0.0)
  exact = scipy.integrate.trapezoid(integrand, grid)
  to_mix = lambda w, m, s: GaussianMixture(jnp.log(jnp.asarray(w, jnp.float32)),
                                           jnp.asarray(m, jnp.float32)[:, None],
                                           jnp.asarray(s, jnp.float32)[:, None, None]**2)
  estimate = kl.mixture_kl(jax.random.PRNGKey(0), to_mix(q_w, q_m, q_s), to_mix(p_w, p_m, p_s),
                           400_000)
  assert exact > 0.1
  assert abs(float(estimate) - exact) < 0.01 * exact, (float(estimate), exact)


def test_gaussian_laplace_cross_entropy_matches_quadrature():
  for mean, std, loc, rate in [(0.3, 0.5, -0.2, 6.0), (-2.0, 0.1, 1.0, 1.0), (0.0, 2.0, 0.0, 0.5)]:
    integrand = lambda z: -scipy.stats.norm.pdf(z, mean, std) * scipy.stats.laplace.logpdf(
        z, loc, 1 / rate)
    exact = scipy.integrate.quad(integrand, mean - 12 * std, mean + 12 * std, points=[loc],
                                 limit=200)[0]
    np.testing.assert_allclose(kl.gaussian_laplace_cross_entropy(mean, std, loc, rate), exact,
                               rtol=1e-5)


def _stability_objective(log_var_q, log_var_p, mean_gap, key):
  var_q, var_p = jnp.full(2, jnp.exp(log_var_q)), jnp.full(2, jnp.exp(log_var_p))
  q = gaussians.as_mixture(gaussians.diag_gaussian(jnp.zeros(2), var_q))
  p = GaussianMixture(jnp.log(jnp.array([0.5, 0.5])),
                      jnp.stack([jnp.full(2, mean_gap), -jnp.full(2, mean_gap)]),
                      jnp.broadcast_to(jnp.diag(var_p), (2, 2, 2)))
  return (kl.mixture_kl(key, q, p, 4)
          + kl.gaussian_kl(gaussians.diag_gaussian(jnp.zeros(2), var_q),
                           gaussians.diag_gaussian(jnp.full(2, mean_gap), var_p))
          + jnp.sum(kl.gaussian_laplace_cross_entropy(0.0, jnp.exp(0.5 * log_var_q), mean_gap,
                                                      1.0 / jnp.exp(0.5 * log_var_p))))


_stability_value_and_grad = jax.jit(jax.value_and_grad(_stability_objective, argnums=(0, 1, 2)))
log_var = st.floats(np.log(1e-6), np.log(1e6))


@settings(max_examples=40, deadline=None)
@given(log_var_q=log_var, log_var_p=log_var, mean_gap=st.floats(0.0, 1000.0), seed=st.integers(0, 99))
def test_estimators_finite_with_finite_gradients_for_extreme_inputs(log_var_q, log_var_p, mean_gap,
                                                                    seed):
  value, grads = _stability_value_and_grad(jnp.float32(log_var_q), jnp.float32(log_var_p),
                                           jnp.float32(mean_gap), jax.random.PRNGKey(seed))
  assert np.isfinite(value)
  assert all(np.isfinite(g) for g in grads)


def test_float32_mixture_kl_is_exact_for_a_large_mean_and_a_small_spread():
  """Mean 1e4, std 1e-4 in float32, where the float32 grid spacing at 1e4 is 2^-10 = 1e-3: the
  draws z = m + L eps would round to the grid, so the estimator never forms them."""
  ulp = 2.0**-10
  q = Gaussian(jnp.full(2, 1e4, jnp.float32), jnp.diag(jnp.array([1e-4, 3e-4], jnp.float32)**2))
  p = Gaussian(jnp.array([1e4 + ulp, 1e4 - 2 * ulp], jnp.float32),
               jnp.array([[4e-8, 1e-8], [1e-8, 9e-8]], jnp.float32))
  exact = analytic_kl_numpy(q, p)
  terms = np.asarray(mc_terms(jax.random.PRNGKey(0), gaussians.as_mixture(q),
                              gaussians.as_mixture(p), 20_000))[:, 0]
  stderr = terms.std() / np.sqrt(terms.size)
  assert exact > 10.0
  assert abs(terms.mean() - exact) < 4 * stderr, (terms.mean(), exact, stderr)
  np.testing.assert_allclose(kl.mixture_kl(jax.random.PRNGKey(1), gaussians.as_mixture(q),
                                           gaussians.as_mixture(p), num_samples=20_000),
                             exact, rtol=0.02)
  # The same draws, formed explicitly, lose the spread: what the estimator avoids.
  z = q.mean + gaussians.standard_normal_offsets(jax.random.PRNGKey(0), q, 1000)
  assert len(np.unique(np.asarray(z[:, 0]))) < 10
