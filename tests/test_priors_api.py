"""nlvae.priors as a library: jitted entry points without retracing, dtypes, keys, rollouts."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from nlvae import gaussians, priors

TRACES = []


def counting_pendulum_transition(history, params):
  """The pendulum's f, recording every time JAX traces it."""
  TRACES.append(1)
  return priors.pendulum_transition(history, params)


def counting_pendulum(**params):
  return priors.make_prior(counting_pendulum_transition, 2,
                           dict(g=9.81, length=1.0, damping=0.0, dt=0.1) | params, 1,
                           noise_scale=0.05)


def test_public_entry_points_compile_once_for_new_values_and_interventions():
  rng = np.random.default_rng(0)
  calls = {
      "linearize": lambda p, m, v, k: priors.linearize(p, m[:2], v[:2], num_components=16),
      "pushforward": lambda p, m, v, k: priors.pushforward(
          p, gaussians.diag_gaussian(m[:2].reshape(-1), v[:2].reshape(-1)), num_components=8),
      "mixture_kl": lambda p, m, v, k: priors.sequence_kl(p, m, v, k, num_components=8,
                                                          num_samples=2),
      "sequential_kl": lambda p, m, v, k: priors.sequence_kl(p, m, v, k, estimator="sequential",
                                                             num_samples=2),
      "rollout": lambda p, m, v, k: priors.rollout(p, m[:2], 10, num_components=4, key=k,
                                                   num_samples=3),
  }
  for name, call in calls.items():
    outputs = []
    for step in range(3):
      prior = counting_pendulum().with_params(length=1.0 + step, damping=0.1 * step)
      mean = jnp.asarray(rng.normal(size=(6, 1)), jnp.float32)
      var = jnp.asarray(rng.uniform(0.01, 0.1, (6, 1)), jnp.float32)
      outputs.append(np.concatenate([np.ravel(x) for x in jax.tree.leaves(
          call(prior, mean, var, jax.random.key(step)))]))
      if step == 0:
        traces_after_first_call = len(TRACES)
    assert len(TRACES) == traces_after_first_call, f"{name} retraced"
    assert not np.allclose(outputs[1], outputs[2]), name  # the new values did reach the result
  for fn in (priors.linearize, priors.pushforward, priors.sequence_kl, priors.rollout):
    assert fn.jitted._cache_size() >= 1


def _dtypes(tree):
  return {leaf.dtype for leaf in jax.tree.leaves(tree)
          if jnp.issubdtype(leaf.dtype, jnp.floating)}


def test_float32_pipeline_stays_float32_under_x64_and_float64_is_kept():
  with jax.enable_x64(True):
    prior = priors.pendulum(dt=0.1, noise_scale=0.05)
    assert _dtypes(prior) == {jnp.dtype("float32")}
    assert _dtypes(prior.with_params(length=2.0, damping=np.float64(0.3))) == {jnp.dtype("float32")}
    mean = jnp.linspace(0.1, 0.6, 6, dtype=jnp.float32)[:, None]
    var = jnp.full((6, 1), 0.01, jnp.float32)
    key = jax.random.key(0)
    laplace = priors.laplace_transition(latent_dim=1)
    outputs = [priors.linearize(prior, mean[:2], var[:2], num_components=16),
               priors.sequence_kl(prior, mean, var, key, num_components=4),
               priors.sequence_kl(prior, mean, var, key, estimator="sequential"),
               priors.rollout(prior, mean[:2], 5, num_components=4, key=key, num_samples=2),
               priors.sequence_kl(laplace, mean, var, key, estimator="sequential"),
               priors.rollout(laplace, mean[:1], 3, key=key, num_samples=2)]
    for out in outputs:
      assert _dtypes(out) == {jnp.dtype("float32")}, out
    prior64 = priors.pendulum(dt=0.1, dtype=jnp.float64)
    assert _dtypes(prior64.with_params(length=2.0)) == {jnp.dtype("float64")}
    gmm = priors.linearize(prior64, mean[:2].astype(jnp.float64), var[:2].astype(jnp.float64),
                           num_components=16)
    assert _dtypes(gmm) == {jnp.dtype("float64")}
    # An explicit jax array keeps its dtype.
    assert priors.spring(omega=jnp.float64(3.0)).params["omega"].dtype == jnp.float64


def test_keys_are_asked_for_only_where_something_is_drawn():
  mean, var = jnp.zeros((4, 1)), jnp.ones((4, 1))
  # Order 0, or a clip no longer than the prior's order: analytic, no key.
  np.testing.assert_allclose(priors.sequence_kl(priors.standard_normal(), mean, var), 0.0)
  np.testing.assert_allclose(priors.sequence_kl(priors.pendulum(), mean[:2], var[:2]), 0.0,
                             atol=1e-6)
  for estimator in priors.ESTIMATORS:
    with pytest.raises(ValueError, match="PRNG key"):
      priors.sequence_kl(priors.pendulum(), mean, var, estimator=estimator)
  assert priors.rollout(priors.pendulum(), mean[:2], 3).samples is None
  with pytest.raises(ValueError, match="PRNG key"):
    priors.rollout(priors.pendulum(), mean[:2], 3, num_samples=2)


@pytest.mark.parametrize("num_components", [1, 8])
def test_rollout_default_history_variance_gives_a_finite_density_in_every_frame(num_components):
  prior = priors.pendulum(dt=0.1, noise_scale=0.05)
  history = jnp.array([[0.5], [0.6]])
  out = priors.rollout(prior, history, 20, num_components=num_components)
  assert out.mixture.log_weights.shape == (22, num_components)
  assert out.mixture.means.shape == (22, num_components, 1)
  log_density = gaussians.mixture_log_prob(out.mean, out.mixture)  # [22]
  assert log_density.shape == (22,) and np.all(np.isfinite(log_density))
  # The first P frames: N(history, noise variance), the default history uncertainty.
  expected = -0.5 * np.log(2 * np.pi * 0.05**2)
  # (exact for K = 1; K = 8 grid components, 0.6 spacings wide, ripple by about 1e-3).
  np.testing.assert_allclose(log_density[:2], expected, rtol=1e-5 if num_components == 1 else 2e-3)


def test_pushforward_takes_the_history_as_frames_or_flattened():
  prior = priors.pendulum(dt=0.2)
  mean, cov = jnp.array([[0.3], [0.5]]), jnp.array([[0.02, 0.005], [0.005, 0.04]])
  frames = priors.pushforward(prior, gaussians.Gaussian(mean, cov), num_components=8)
  flat = priors.pushforward(prior, gaussians.Gaussian(mean.reshape(-1), cov), num_components=8)
  for a, b in zip(frames, flat):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  diagonal = priors.linearize(prior, mean, jnp.array([[0.02], [0.04]]), num_components=8)
  via_full = priors.pushforward(prior, gaussians.diag_gaussian(mean.reshape(-1),
                                                               jnp.array([0.02, 0.04])),
                                num_components=8)
  for a, b in zip(diagonal, via_full):
    np.testing.assert_allclose(a, b, rtol=1e-6)
