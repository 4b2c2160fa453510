"""The nonlinear-prior VAE of Longa & Henriques for physics videos (spring, pendulum, falling, pulsar).

Per frame: q(z_t | x_t) = N(mu_t, diag sigma_t^2) from a conv encoder, p(x_t | z_t) Bernoulli (or
Gaussian) from a conv decoder. The first D_phys latents follow an ANM prior (nlvae.priors) whose
physical parameters are fixed or learned. Loss, per clip and
averaged over the batch:

  sum_t E_q[-log p(x_t | z_t)] + beta * sum_t KL_t

with KL_t from priors.sequence_kl (the seed's linearised mixture estimator, or the exact
sequential one). Model config fields: see experiments/spring.py.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data import video
from nlvae import networks, priors
from nlvae.models import physics_eval


def build_prior(model_config, dt: float) -> priors.ANMPrior:
  """The ANM prior named by model_config.prior (a ConfigDict: name, params, noise_scale, ...)."""
  spec = model_config.prior
  constructors = dict(spring=priors.spring, pendulum=priors.pendulum, falling=priors.falling,
                      pulsar=priors.pulsar, linear_extrapolation=priors.linear_extrapolation)
  if spec.name not in constructors:
    raise ValueError(f"model.prior.name must be one of {sorted(constructors)}, got {spec.name!r}")
  kwargs = dict(spec.params)
  if spec.name == "pulsar":
    profile = kwargs.pop("profile", None)
    kwargs["profile"] = physics_eval.profile_params(profile) if profile is not None else None
  return constructors[spec.name](dt=dt, noise_scale=spec.noise_scale, init_scale=spec.init_scale,
                                 learnable=tuple(spec.learnable), **kwargs)


def context_stack(frames: jax.Array, context: int) -> jax.Array:
  """Stacks each frame with its neighbours along channels (edge-padded in time).

  frames [B, T, H, W, C] -> [B, T, H, W, C * context] for an odd context (1 = no change).
  """
  if context == 1:
    return frames
  half = context // 2
  padded = jnp.concatenate([jnp.repeat(frames[:, :1], half, 1), frames,
                            jnp.repeat(frames[:, -1:], half, 1)], axis=1)
  num_frames = frames.shape[1]
  return jnp.concatenate([padded[:, i:i + num_frames] for i in range(context)], axis=-1)


def prior_stride(prior_time_step: float, dt: float) -> int:
  """Frames per prior step: round(prior_time_step / dt), at least 1 (0 = every frame)."""
  if prior_time_step < 0:
    raise ValueError(f"model.prior_time_step={prior_time_step} must be >= 0 seconds")
  return max(1, int(round(prior_time_step / dt))) if prior_time_step else 1


def interleaved_chains(x: jax.Array, stride: int) -> jax.Array:
  """[B, T, D] -> [B * k, floor(T / k), D]: the chains x[b, s::k] for s < k (frames past the last
  whole step are dropped, so every chain has the same length; k = 1 is the identity)."""
  if stride == 1:
    return x
  batch, num_frames, dim = x.shape
  length = num_frames // stride
  chains = x[:, :length * stride].reshape(batch, length, stride, dim)
  return jnp.moveaxis(chains, 2, 1).reshape(batch * stride, length, dim)


class PhysicsVAE:
  """A nlvae.models.GenerativeModel: init, loss, encode, decode, evaluate."""

  def __init__(self, model_config, data_info):
    self.config = model_config
    self.info = data_info
    dt = float(data_info.dt)
    self.prior = build_prior(model_config, dt)
    # The KL's prior steps over `prior_stride` frames (interleaved chains z_s, z_{s+k}, ...): at
    # high frame rates one frame's physics (~dt^2 a) drowns in the encoder's noise, and the
    # latent's scale is then barely pinned (docs/user_video.md, "The physical scale").
    self.prior_stride = prior_stride(model_config.prior_time_step, dt)
    self.kl_prior = (build_prior(model_config, dt * self.prior_stride) if self.prior_stride > 1
                     else self.prior)
    physics_eval.check_interventions(self.prior, model_config.interventions)  # before training
    self.num_physical = self.prior.latent_dim
    self.latent_dim = self.num_physical
    if model_config.context_frames % 2 != 1:
      raise ValueError(f"model.context_frames must be odd, got {model_config.context_frames}")
    if model_config.likelihood not in ("bernoulli", "gaussian"):
      raise ValueError("model.likelihood must be 'bernoulli' or 'gaussian', got "
                       f"{model_config.likelihood!r}")
    if model_config.encoder == "conv":
      self.encoder = networks.Encoder(latent_dim=self.latent_dim,
                                      features=tuple(model_config.encoder_features),
                                      kernel_size=4, hidden=model_config.hidden)
    elif model_config.encoder == "keypoints":
      self.encoder = networks.KeypointEncoder(latent_dim=self.latent_dim,
                                              features=tuple(model_config.encoder_features),
                                              num_keypoints=model_config.num_keypoints,
                                              hidden=model_config.hidden,
                                              strides=tuple(model_config.keypoint_strides) or None)
    else:
      raise ValueError("model.encoder must be 'conv' or 'keypoints', got "
                       f"{model_config.encoder!r}")
    self.decoder = networks.Decoder(image_shape=data_info.image_shape,
                                    features=tuple(model_config.decoder_features),
                                    kernel_size=4, hidden=model_config.hidden)

  # -- networks ---------------------------------------------------------------------------------

  def init(self, rng, batch):
    key_enc, key_dec = jax.random.split(rng)
    frames = self._frames(batch)
    encoder_params = self.encoder.init(key_enc, context_stack(frames, self.config.context_frames))
    decoder_params = self.decoder.init(key_dec, jnp.zeros(frames.shape[:2] + (self.latent_dim,)))
    params = dict(encoder=encoder_params, decoder=decoder_params,
                  prior=self.prior.learnable_params())
    if self.config.prior.learn_noise_scale:
      params["prior_log_noise_scale"] = jnp.log(self.prior.noise_scale)
    return params

  @staticmethod
  def _frames(batch) -> jax.Array:
    return video.to_float(batch["frames"])

  def encode(self, params, frames):
    """frames float [B, T, H, W, C] in [0, 1] -> posterior mean, log-variance [B, T, D]."""
    posterior = self.encoder.apply(params["encoder"],
                                   context_stack(frames, self.config.context_frames))
    # The shift sets the posterior's starting variance (the network's output starts near 0).
    log_var = jnp.clip(posterior.log_var + self.config.posterior_log_var_shift, -14.0, 6.0)
    return posterior.mean, log_var

  def decode(self, params, z):
    """z [..., D] -> the likelihood's parameter [..., H, W, C]: Bernoulli logits, or the
    Gaussian mean (see nlvae.evaluation.mean_image)."""
    return self.decoder.apply(params["decoder"], z)

  @property
  def likelihood(self) -> str:
    return self.config.likelihood

  def build_prior(self, dt: float, params) -> priors.ANMPrior:
    """The prior at another time step dt, with the learned parameters of `params`."""
    return self.current_prior(params, build_prior(self.config, dt))

  def current_prior(self, params, prior: priors.ANMPrior | None = None) -> priors.ANMPrior:
    """The prior (default: per frame) with the learned physical parameters (and learned process
    noise, if any)."""
    prior = self.prior if prior is None else prior
    prior = prior.with_params(**params["prior"]) if params["prior"] else prior
    if "prior_log_noise_scale" in params:
      prior = prior.replace(noise_scale=jnp.exp(params["prior_log_noise_scale"]))
    return prior

  # -- loss -------------------------------------------------------------------------------------

  def loss(self, params, batch, rng):
    frames = self._frames(batch)
    mean, log_var = self.encode(params, frames)
    var = jnp.exp(log_var)
    key_z, key_kl = jax.random.split(rng)
    z = mean + jnp.sqrt(var) * jax.random.normal(key_z, mean.shape)
    logits = self.decode(params, z)
    if self.config.likelihood == "bernoulli":
      nll = optax.sigmoid_binary_cross_entropy(logits, frames)
    else:
      nll = 0.5 * ((logits - frames) / self.config.pixel_std)**2
    recon = jnp.mean(jnp.sum(nll, axis=(1, 2, 3, 4)))

    prior = self.current_prior(params, self.kl_prior)
    dp = self.num_physical
    clip_kl = jax.vmap(lambda m, v, k: priors.sequence_kl(
        prior, m, v, k, estimator=self.config.estimator,
        num_components=self.config.num_components, num_samples=self.config.num_samples))
    chains_mean, chains_var = (interleaved_chains(x[..., :dp], self.prior_stride)
                               for x in (mean, var))  # [B * k, T / k, Dp]
    keys = jax.random.split(key_kl, chains_mean.shape[0])
    kl_physical = jnp.sum(clip_kl(chains_mean, chains_var, keys)) / mean.shape[0]
    total_kl = kl_physical
    loss = recon + self.config.beta * total_kl
    metrics = dict(loss=loss, recon=recon, kl=total_kl, kl_physical=kl_physical)
    metrics.update({f"prior/{k}": v for k, v in params["prior"].items()})
    if "prior_log_noise_scale" in params:
      metrics["prior/noise_scale"] = jnp.mean(prior.noise_scale)
    return loss, metrics

  # -- evaluation -------------------------------------------------------------------------------

  def evaluate(self, params, data, workdir, rng):
    return physics_eval.evaluate(self, params, data, workdir, rng)
