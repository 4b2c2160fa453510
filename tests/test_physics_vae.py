"""The physics VAE's options: learned process noise, keypoint encoder."""
import jax
import jax.numpy as jnp
import numpy as np

from experiments import falling
from nlvae import datasets, models, priors


def _model(**model_overrides):
  config = falling.get_config("tiny")
  config.model.update(model_overrides)
  train, _, info = datasets.load(config.data)
  batch = {k: jnp.asarray(v[:2]) for k, v in train.items()}
  return models.build(config.model, info), batch


def test_learned_noise_scale_is_a_parameter_with_a_gradient():
  model, batch = _model(estimator="sequential", encoder="keypoints", encoder_features=(4, 8))
  model.config.prior.learn_noise_scale = True
  params = model.init(jax.random.PRNGKey(0), batch)
  np.testing.assert_allclose(np.exp(params["prior_log_noise_scale"]),
                             model.prior.noise_scale, rtol=1e-6)
  grads = jax.grad(lambda p: model.loss(p, batch, jax.random.PRNGKey(1))[0])(params)
  assert np.all(np.isfinite(grads["prior_log_noise_scale"]))
  assert np.all(np.abs(grads["prior_log_noise_scale"]) > 0)
  _, metrics = model.loss(params, batch, jax.random.PRNGKey(1))
  np.testing.assert_allclose(metrics["prior/noise_scale"], float(model.prior.noise_scale[0]),
                             rtol=1e-6)


def test_sequential_kl_is_minimised_by_the_residual_noise_scale():
  """d KL / d sigma = 0 at sigma^2 = s^2 + mean residual^2 (posterior var s^2, exact for a
  linear prior): learning the noise scale fits the process noise to what the encoder achieves."""
  prior = priors.linear_extrapolation(latent_dim=1)
  rng = np.random.default_rng(0)
  means = jnp.asarray(np.cumsum(rng.normal(size=(40, 1)), axis=0), jnp.float32)
  var = jnp.full_like(means, 1e-4)
  residual = means[2:] - (2 * means[1:-1] - means[:-2])
  # E over q(h) of (mu_t - f(h))^2 adds var * (1 + 4 + 1) to each squared residual.
  best = np.sqrt(float(jnp.mean(residual**2)) + 6e-4 + 1e-4)

  def total(log_sigma):
    p = prior.replace(noise_scale=jnp.exp(log_sigma) * jnp.ones(1))
    return jnp.sum(priors.sequence_kl(p, means, var, jax.random.PRNGKey(0),
                                      estimator="sequential", num_samples=4096)[2:])

  grad = jax.grad(total)
  assert float(grad(jnp.log(best * 0.8))) < 0 < float(grad(jnp.log(best * 1.25)))


def test_pulsar_default_config_starts_finite_and_infers_the_phase_through_the_prior():
  """The pulsar's first loss and gradients are finite (the prior's bounded Jacobian at u = 0), and
  the evaluation's phase inference recovers the true phase from an affine map of the brightness."""
  from experiments import pulsar
  from nlvae.models import physics_eval
  config = pulsar.get_config("tiny")
  train_data, test_data, info = datasets.load(config.data)
  model = models.build(config.model, info)
  batch = {k: jnp.asarray(v[:2]) for k, v in train_data.items()}
  params = model.init(jax.random.PRNGKey(0), batch)
  loss, grads = jax.jit(jax.value_and_grad(
      lambda p: model.loss(p, batch, jax.random.PRNGKey(1))[0]))(params)
  assert np.isfinite(loss)
  assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
  clips = info.test_clips
  encoded = np.zeros(clips.latent.shape + (3,), np.float32)  # u ignored: only b is used
  encoded[..., 2] = 1.0 - 2.0 * clips.states["brightness"]  # a decreasing affine map
  inferred, (scale, offset) = physics_eval.pulsar_inferred_latents(model.prior, encoded)
  scores, _ = physics_eval.latent_scores("pulsar", inferred, clips.latent)
  assert scores["latent/circular_correlation"] > 0.999
  np.testing.assert_allclose(scale, -2.0, rtol=0.02)
  np.testing.assert_allclose(offset, 1.0, atol=0.02)


def test_prior_stride_is_the_kl_of_interleaved_chains_at_k_dt():
  """With model.prior_time_step = k dt the KL is the sum over the k chains z_s, z_{s+k}, ... of
  the per-frame sequence KL under the same prior at time step k dt; 0 keeps every frame."""
  from nlvae.models import physics_vae
  assert physics_vae.prior_stride(0.0, 0.05) == 1 and physics_vae.prior_stride(0.1, 0.05) == 2
  assert physics_vae.prior_stride(0.1, 1 / 30) == 3
  model, batch = _model(estimator="sequential", encoder="keypoints", encoder_features=(4, 8))
  dt = model.info.dt
  model_config = model.config
  model_config.prior_time_step = 2 * dt
  strided = models.build(model_config, model.info)
  assert strided.prior_stride == 2
  np.testing.assert_allclose(strided.kl_prior.params["dt"], 2 * dt, rtol=1e-6)
  params = strided.init(jax.random.PRNGKey(0), batch)
  mean, log_var = strided.encode(params, strided._frames(batch))
  var = jnp.exp(log_var)
  rng = jax.random.PRNGKey(3)
  keys = jax.random.split(jax.random.split(rng)[1], 2 * mean.shape[0])  # the loss's chain keys
  expected = 0.0
  for clip in range(mean.shape[0]):
    for start in range(2):
      chain = slice(start, (mean.shape[1] // 2) * 2, 2)
      expected += float(jnp.sum(priors.sequence_kl(
          strided.current_prior(params, strided.kl_prior), mean[clip, chain], var[clip, chain],
          keys[2 * clip + start], estimator="sequential")))
  _, metrics = strided.loss(params, batch, rng)
  np.testing.assert_allclose(metrics["kl_physical"], expected / mean.shape[0], rtol=1e-4)


def test_physical_scale_recovers_the_scale_and_sign_the_physics_pins():
  """Latents that are a rescaled (and for gravity, sign-flipped) truth plus encoder noise: the
  profile over a recovers the factor for the pendulum (up to sign) and the falling object, and
  is flat (1 returned) for the linear spring."""
  from data import physics
  from nlvae.models import physics_eval
  rng = np.random.default_rng(0)
  dt = 0.05
  cases = [("pendulum", priors.pendulum(g=9.81, length=0.8, dt=6 * dt), 3.0,
            dict(length_range=(0.8, 0.8), amplitude_range=(0.3, 1.5))),
           ("falling", priors.falling(g=9.81, dt=6 * dt), -2.0,
            dict(horizontal_position_range=(0.0, 0.0), horizontal_velocity_range=(0.0, 0.0))),
           ("spring", priors.spring(omega=6.0, dt=6 * dt), 2.0, dict(omega_range=(6.0, 6.0)))]
  for system, prior, factor, options in cases:
    clips = physics.generate(system, 64, 0, num_frames=20, image_size=8, fps=1 / dt, **options)
    latents = (clips.latent / factor + 0.01 * rng.standard_normal(clips.latent.shape))[..., None]
    predict = physics_eval.shooting_predictor(prior, 6 * dt)
    scale, _, _ = physics_eval.physical_scale(prior, latents.astype(np.float32), stride=6,
                                              predict=predict)
    if system == "spring":
      assert scale == 1.0
    elif system == "pendulum":  # within 2% (the finite-difference step alone: 8% too large)
      assert abs(abs(scale) - 3.0) < 0.06
    else:
      assert abs(scale - factor) < 0.04
  assert physics_eval.calibration_stride(0.05, 20, 2) == 6
  assert physics_eval.calibration_stride(1 / 30, 12, 2) == 4  # one transition per chain


def test_posterior_var_ratio_tells_a_used_latent_from_a_collapsed_one():
  """The spring video collapse (docs/user_video.md) had posterior variance 403 around means that
  spread 0.04; a working encoder has variances far below the spread of its means."""
  from nlvae.models import physics_eval
  rng = np.random.default_rng(0)
  means = rng.normal(0.0, 0.5, (16, 20, 1))
  ratio = physics_eval.posterior_var_ratio(means, np.full_like(means, np.log(1e-4)))
  np.testing.assert_allclose(ratio, 1e-4 / means.var(), rtol=1e-6)
  collapsed = physics_eval.posterior_var_ratio(0.04 * means / 0.5, np.full_like(means, 6.0))
  assert collapsed > 1e5
  # The most informative latent counts: the pulsar's u may collapse while its brightness
  # carries the phase.
  two = np.concatenate([means, 0.0 * means], axis=-1)
  log_vars = np.concatenate([np.full_like(means, -9.0), np.full_like(means, 0.0)], axis=-1)
  np.testing.assert_allclose(physics_eval.posterior_var_ratio(two, log_vars),
                             np.exp(-9.0) / means.var(), rtol=1e-6)
  assert physics_eval.posterior_var_ratio(two[..., 1:], log_vars[..., 1:]) > 1e30
