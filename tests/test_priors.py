"""nlvae.priors: linearisation, sequence KL, rollouts, gradients, retracing, README snippet."""
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nlvae import gaussians, kl, priors


def spring_matrix(prior):
  """z_t = a z_{t-1} + b z_{t-2} for the damped spring, written out by hand."""
  dt, omega, c = (float(prior.params[k]) for k in ("dt", "omega", "damping"))
  return 2.0 - dt**2 * omega**2 - c * dt, -1.0 + c * dt


@pytest.mark.parametrize("method", priors.SPLIT_METHODS)
@pytest.mark.parametrize("num_components", [1, 16])
def test_linearisation_of_a_linear_transition_is_the_exact_pushforward(num_components, method):
  prior = priors.spring(omega=3.0, damping=0.4, dt=0.1, noise_scale=0.05)
  a, b = spring_matrix(prior)
  hist_mean = jnp.array([[0.3], [0.5]])
  hist_var = jnp.array([[0.02], [0.05]])
  exact_mean = b * 0.3 + a * 0.5
  exact_var = b**2 * 0.02 + a**2 * 0.05 + 0.05**2
  gmm = priors.linearize(prior, hist_mean, hist_var, num_components=num_components, method=method,
                         key=jax.random.key(0))
  moments = gaussians.mixture_moments(gmm)
  np.testing.assert_allclose(moments.mean, [exact_mean], rtol=1e-5)
  np.testing.assert_allclose(moments.cov, [[exact_var]], rtol=1e-5)
  if num_components == 1:
    np.testing.assert_allclose(gmm.means[0], [exact_mean], rtol=1e-6)


def test_linearisation_matches_pushforward_of_a_multivariate_linear_map():
  prior = priors.linear_extrapolation(latent_dim=3, noise_scale=jnp.array([0.1, 0.2, 0.3]))
  rng = np.random.default_rng(0)
  mean, var = rng.normal(size=(2, 3)), rng.uniform(0.1, 1.0, (2, 3))
  gmm = priors.linearize(prior, jnp.asarray(mean, jnp.float32), jnp.asarray(var, jnp.float32))
  np.testing.assert_allclose(gmm.means[0], 2 * mean[1] - mean[0], rtol=1e-5)
  np.testing.assert_allclose(gmm.covs[0], np.diag(4 * var[1] + var[0] + [0.01, 0.04, 0.09]),
                             rtol=1e-5, atol=1e-7)


def test_split_gaussian_preserves_mean_and_covariance():
  rng = np.random.default_rng(1)
  a = rng.normal(size=(4, 4))
  gaussian = gaussians.Gaussian(jnp.asarray(rng.normal(size=4), jnp.float32),
                                jnp.asarray(a @ a.T + np.eye(4), jnp.float32))
  direction = jnp.asarray(rng.normal(size=4), jnp.float32)
  direction = direction / jnp.linalg.norm(direction)
  for method in ("directional", "quasi", "random"):  # "auto" needs a prior: split_history
    for num_components in (5, 32):
      mixture = priors.split_gaussian(gaussian, num_components, method=method,
                                      key=jax.random.PRNGKey(0), direction=direction)
      assert mixture.means.shape == (num_components, 4)
      moments = gaussians.mixture_moments(mixture)
      np.testing.assert_allclose(moments.mean, gaussian.mean, atol=1e-4)
      np.testing.assert_allclose(moments.cov, gaussian.cov, rtol=1e-4, atol=1e-4)
  # The directional split takes any K >= 2; the quasi split needs K > n.
  two = priors.split_gaussian(gaussian, 2, method="directional", direction=direction)
  np.testing.assert_allclose(gaussians.mixture_moments(two).cov, gaussian.cov, rtol=1e-4, atol=1e-4)
  with pytest.raises(ValueError, match="history size"):
    priors.split_gaussian(gaussian, 4, method="quasi")
  with pytest.raises(ValueError, match="direction"):
    priors.split_gaussian(gaussian, 8, method="directional")


def test_nonlinear_direction_is_the_axis_where_f_curves():
  pendulum = priors.pendulum(dt=0.5)
  history = gaussians.diag_gaussian(jnp.array([2.0, 2.0]), jnp.array([0.16, 0.16]))
  # f is linear in z_{t-2} and curved in z_{t-1} (the sin): the last axis, also at theta = 0
  # where sin'' vanishes at the mean (the sigma points see the curvature).
  np.testing.assert_array_equal(priors.nonlinear_direction(pendulum, history), [0.0, 1.0])
  at_zero = gaussians.diag_gaussian(jnp.zeros(2), jnp.array([0.16, 0.16]))
  np.testing.assert_array_equal(priors.nonlinear_direction(pendulum, at_zero), [0.0, 1.0])
  # A transition curved in the older frame only picks the first axis.
  older = priors.make_prior(older_frame_cubic, 2, {}, 1)
  np.testing.assert_array_equal(priors.nonlinear_direction(older, history), [1.0, 0.0])


def test_auto_split_is_directional_for_one_curved_axis_and_quasi_for_several():
  def split(prior, method):
    n = prior.order * prior.latent_dim
    history = gaussians.diag_gaussian(jnp.linspace(0.1, 1.0, n), jnp.full(n, 0.05))
    return priors.split_history(prior, history, 16, method=method)

  pendulum = priors.pendulum(dt=0.5)
  for a, b in zip(split(pendulum, "auto"), split(pendulum, "directional")):
    np.testing.assert_array_equal(a, b)
  # Quadratic drag in 2-D curves f along all four whitened axes (the velocities).
  falling = priors.falling(drag=2.0, dt=0.2, latent_dim=2)
  curvature = priors.axis_curvature(falling, gaussians.diag_gaussian(jnp.linspace(0.1, 1.0, 4),
                                                                      jnp.full(4, 0.05)))
  assert np.max(curvature) < priors.AUTO_CURVATURE_SHARE * np.sum(curvature)
  for a, b in zip(split(falling, "auto"), split(falling, "quasi")):
    np.testing.assert_array_equal(a, b)


def older_frame_cubic(history, params):
  del params
  return history[-1] + 0.3 * history[-2]**3


def test_sequence_kl_matches_analytic_kl_for_linear_prior_and_point_history():
  """With a near-deterministic history the mixture prior is one Gaussian: MC KL -> analytic."""
  prior = priors.spring(omega=2.0, dt=0.1, noise_scale=0.1, init_scale=1.0)
  mean = jnp.array([[0.1], [0.2], [0.25], [0.3]])
  var = jnp.array([[1e-8], [1e-8], [0.02], [0.03]])
  a, b = spring_matrix(prior)
  per_frame = priors.sequence_kl(prior, mean, var, jax.random.PRNGKey(0), num_samples=200_000)
  pred2 = a * 0.2 + b * 0.1
  exact2 = float(kl.diag_gaussian_kl(mean[2], var[2], jnp.array([pred2]), jnp.array([0.01])))
  np.testing.assert_allclose(per_frame[2], exact2, rtol=0.02)
  np.testing.assert_allclose(per_frame[:2], kl.diag_gaussian_kl(mean[:2], var[:2], 0.0, 1.0),
                             rtol=1e-6)
  # With a point history the exact sequential estimator is the same analytic KL.
  sequential = priors.sequence_kl(prior, mean, var, jax.random.PRNGKey(0), estimator="sequential")
  np.testing.assert_allclose(sequential[2], exact2, rtol=1e-2)


def test_sequential_estimator_upper_bounds_marginal_mixture_estimator():
  """KL(q || E_h p(.|h)) <= E_h KL(q || p(.|h)) by convexity; both >= 0."""
  prior = priors.pendulum(dt=0.1, noise_scale=0.05)
  mean = jnp.linspace(0.5, 1.5, 8)[:, None]
  var = jnp.full((8, 1), 0.01)
  mixture = priors.sequence_kl(prior, mean, var, jax.random.PRNGKey(1), num_components=16,
                               num_samples=4000)
  sequential = priors.sequence_kl(prior, mean, var, jax.random.PRNGKey(1),
                                  estimator="sequential", num_samples=4000)
  assert np.all(np.asarray(mixture[2:]) <= np.asarray(sequential[2:]) + 0.02)
  assert np.all(np.asarray(mixture) > -0.02)


def test_mixture_estimator_barely_charges_a_posterior_that_knows_nothing():
  """The spring on camera video (docs/user_video.md): a posterior at the log-variance clip (+6)
  costs the mixture estimator a constant, 0.5 (log s + 1/s - 1) nats a frame with s = a^2 + b^2,
  because the history's variance widens the prior by as much; the sequential estimator charges
  (1 + s) v / (2 sigma^2)."""
  prior = priors.spring(omega=6.0, dt=0.1, noise_scale=0.02)
  a, b = spring_matrix(prior)
  s = a**2 + b**2
  var = jnp.full((10, 1), np.exp(6.0))
  mean = jnp.zeros((10, 1))
  mixture = priors.sequence_kl(prior, mean, var, jax.random.PRNGKey(0), num_samples=20_000)
  np.testing.assert_allclose(mixture[2:], 0.5 * (np.log(s) + 1 / s - 1), rtol=0.05)
  sequential = priors.sequence_kl(prior, mean, var, jax.random.PRNGKey(0), estimator="sequential",
                                  num_samples=2000)
  np.testing.assert_allclose(sequential[2:], (1 + s) * np.exp(6.0) / (2 * 0.02**2), rtol=0.1)


def test_laplace_sequential_kl_matches_monte_carlo():
  prior = priors.laplace_transition(latent_dim=2, rate=3.0)
  mean = jnp.array([[0.0, 0.5], [0.3, 0.2]])
  var = jnp.array([[0.04, 0.09], [0.01, 0.25]])
  value = priors.sequence_kl(prior, mean, var, jax.random.PRNGKey(0), estimator="sequential",
                             num_samples=20_000)[1]
  rng = np.random.default_rng(0)
  h = mean[0] + np.sqrt(var[0]) * rng.standard_normal((400_000, 2))
  z = mean[1] + np.sqrt(var[1]) * rng.standard_normal((400_000, 2))
  log_q = -0.5 * np.sum(np.log(2 * np.pi * var[1]) + (z - mean[1])**2 / var[1], axis=1)
  log_p = np.sum(np.log(3.0 / 2) - 3.0 * np.abs(z - h), axis=1)
  np.testing.assert_allclose(value, np.mean(log_q - log_p), rtol=0.01)
  with pytest.raises(ValueError, match="sequential"):
    priors.sequence_kl(prior, mean, var, jax.random.PRNGKey(0))


def test_gradients_agree_with_finite_differences():
  """Gradients of the mixture KL w.r.t. posterior means/log-variances and learnable physics."""
  from jax.test_util import check_grads
  with jax.enable_x64(True):
    prior = priors.pendulum(g=9.81, length=1.2, damping=0.3, dt=0.1, noise_scale=0.05,
                            learnable=("length", "damping"), dtype=jnp.float64)
    mean = jnp.linspace(0.4, 1.2, 6)[:, None]
    log_var = jnp.full((6, 1), np.log(0.01))

    def objective(mean, log_var, physics):
      p = prior.with_params(**physics)
      terms = priors.sequence_kl(p, mean, jnp.exp(log_var), jax.random.PRNGKey(3),
                                 num_components=8, num_samples=4)
      return jnp.sum(terms)

    check_grads(objective, (mean, log_var, prior.learnable_params()), order=1, modes=("rev",),
                eps=1e-5, atol=1e-4, rtol=1e-4)

    def objective_sequential(mean, log_var, physics):
      p = prior.with_params(**physics)
      return jnp.sum(priors.sequence_kl(p, mean, jnp.exp(log_var), jax.random.PRNGKey(3),
                                        estimator="sequential", num_samples=4))

    check_grads(objective_sequential, (mean, log_var, prior.learnable_params()), order=1,
                modes=("rev",), eps=1e-5, atol=1e-4, rtol=1e-4)


def test_jitted_kl_does_not_retrace_for_new_values_or_interventions():
  traces = []

  @jax.jit
  def loss(prior, mean, var, key):
    traces.append(1)
    return jnp.sum(priors.sequence_kl(prior, mean, var, key, num_components=8, num_samples=2))

  prior = priors.pendulum(dt=0.1)
  rng = np.random.default_rng(0)
  values = []
  for step in range(4):
    mean = jnp.asarray(rng.normal(size=(6, 1)), jnp.float32)
    var = jnp.asarray(rng.uniform(0.01, 0.1, (6, 1)), jnp.float32)
    p = prior.with_params(length=1.0 + step, damping=0.1 * step)
    values.append(float(loss(p, mean, var, jax.random.PRNGKey(step))))
  assert len(traces) == 1
  assert len(set(values)) == 4


def test_rollout_matches_the_recurrence_and_its_uncertainty():
  prior = priors.spring(omega=3.0, damping=0.2, dt=0.1, noise_scale=0.05)
  a, b = spring_matrix(prior)
  history = jnp.array([[0.4], [0.5]])
  out = priors.rollout(prior, history, 30, history_var=jnp.full((2, 1), 1e-4),
                       key=jax.random.PRNGKey(0), num_samples=20_000)
  expected = [0.4, 0.5]
  for _ in range(30):
    expected.append(a * expected[-1] + b * expected[-2])
  np.testing.assert_allclose(out.mean[:, 0], expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out.mixture.means[:, 0, 0], expected, rtol=1e-4, atol=1e-5)
  sample_var = np.var(np.asarray(out.samples[:, :, 0]), axis=0)
  np.testing.assert_allclose(sample_var[2:], out.mixture.covs[2:, 0, 0, 0], rtol=0.05)


def test_interventions_change_the_rollout_as_physics_says():
  prior = priors.pendulum(g=9.81, length=1.0, dt=0.05)
  history = jnp.array([[0.5], [0.5]])
  base = priors.rollout(prior, history, 200).mean[:, 0]
  damped = priors.rollout(prior.with_params(damping=1.0), history, 200).mean[:, 0]
  longer = priors.rollout(prior.with_params(length=4.0), history, 200).mean[:, 0]
  assert np.abs(damped[-50:]).max() < 0.5 * np.abs(base[-50:]).max()
  crossings = lambda x: np.sum(np.diff(np.sign(np.asarray(x))) != 0)
  # Period scales with sqrt(length): four times the length, about half as many zero crossings.
  assert abs(crossings(longer) / crossings(base) - 0.5) < 0.15
  with pytest.raises(ValueError, match="valid"):
    prior.with_params(lenght=2.0)


def test_pulsar_prior_rotates_phase_and_follows_profile():
  prior = priors.pulsar(omega=2 * np.pi / 0.7, dt=0.1)
  out = priors.rollout(prior, jnp.array([[1.0, 0.0, 0.0]]), 20).mean
  phase = np.unwrap(np.asarray(priors.pulsar_phase(out)))
  np.testing.assert_allclose(np.diff(phase), 2 * np.pi / 0.7 * 0.1, rtol=1e-4)
  np.testing.assert_allclose(out[1:, 2], priors.pulse_profile(jnp.asarray(phase[1:]), prior.params),
                             atol=1e-5)
  # The phase is an angle: a stretched u predicts nearly the same vector, a shrunken one a longer
  # one, and the unit circle is kept exactly.
  unit = prior.predict(jnp.array([[0.6, 0.8, 0.0]]))
  np.testing.assert_allclose(prior.predict(jnp.array([[1.8, 2.4, 0.0]])), unit, atol=0.01)
  shrunk = np.linalg.norm(prior.predict(jnp.array([[0.06, 0.08, 0.0]]))[:2])
  assert 0.6 < shrunk < 0.8  # 0.1 * sqrt(1.01 / 0.02)
  np.testing.assert_allclose(np.linalg.norm(out[:, :2], axis=-1)[1:], 1.0, atol=1e-5)
  # Bounded Jacobian at u = 0, so the linearised prior is finite: the mixture KL of a posterior
  # centred there (the start of training) is finite.
  jacobian = jax.jacfwd(lambda h: priors.pulsar_transition(h, prior.params))(
      jnp.array([[1e-4, -1e-4, 0.0]]))
  assert np.all(np.isfinite(jacobian)) and np.abs(jacobian[:2]).max() < 11
  kl = priors.sequence_kl(prior, 0.01 * jax.random.normal(jax.random.key(0), (20, 3)),
                          jnp.ones((20, 3)), jax.random.key(1))
  assert np.all(np.isfinite(kl))


def test_pulsar_smoothed_phase_recovers_the_phase_from_any_affine_brightness():
  params = priors.pulsar(omega=2 * np.pi / 0.0337, dt=1 / 216.0,
                         profile=dict(baseline=0.05, main_width=0.25, inter_amplitude=0.45,
                                      inter_centre=0.8 * np.pi, inter_width=0.35)).params
  rng = np.random.default_rng(0)
  steps = np.arange(20) * float(params["omega"] * params["dt"])
  for phi0 in rng.uniform(-np.pi, np.pi, 5):
    phase = np.angle(np.exp(1j * (phi0 + steps)))
    brightness = np.asarray(priors.pulse_profile(jnp.asarray(phase), params))
    for scale, offset in ((1.0, 0.0), (3.0, -1.0), (0.2, 0.5), (-2.0, 1.0)):
      observed = scale * brightness + offset + 0.01 * abs(scale) * rng.standard_normal(20)
      smoothed, fit_scale, fit_offset = priors.pulsar_smoothed_phase(
          jnp.asarray(observed, jnp.float32), params)
      error = np.angle(np.exp(1j * (np.asarray(smoothed) - phase)))
      assert np.abs(error).max() < 0.02, (phi0, scale, error)  # grid spacing 2 pi / 720 = 0.009
      np.testing.assert_allclose([fit_scale, fit_offset], [scale, offset],
                                 atol=0.05 * abs(scale))


def test_readme_snippet_runs_and_reruns_without_compiling_the_library_again():
  readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
  section = readme.split("## Using nlvae.priors in your own JAX code", 1)[1]
  snippet = compile(re.search(r"```python\n(.*?)```", section, re.S).group(1), "README.md", "exec")
  exec(snippet, {"print": lambda *a: None})
  jitted = (priors.linearize, priors.pushforward, priors.sequence_kl, priors.rollout)
  sizes = [fn.jitted._cache_size() for fn in jitted]
  exec(snippet, {"print": lambda *a: None})
  assert [fn.jitted._cache_size() for fn in jitted] == sizes
