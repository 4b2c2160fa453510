"""Ada-GVAE (Locatello et al., ICML 2020, "Weakly-Supervised Disentanglement Without
Compromises"): the weakly supervised baseline that SlowVAE is compared with.

Data: the same pairs of frames as SlowVAE (nlvae.datasets.load_sprites, "sprites"):
images float32 [N, 2, H, W, C]. Locatello et al. train on pairs that differ in k factors
(k ~ U{1..n_factors - 1}, data.transitions="uniform"); the SlowVAE paper also runs it on its
laplace pairs.

Networks, likelihood, KL and evaluation are those of nlvae.models.slowvae.BetaVAE (SlowVAE's
encoder/decoder, 763,285 parameters at z = 10); only the posterior used in the ELBO differs.

Per pair (shapes: mean, log_var float32 [N, 2, D]; masks bool [N, D]):
  1. delta_j = KL(q(z_j | x_0) || q(z_j | x_1)) for every latent j (`per_dimension_kl`, [N, D]).
  2. The dimensions that are "shared" (believed unchanged between the two frames) are averaged
     (`averaged_dimensions`), by the threshold rule
       "adaptive" (default; the paper's rule):  averaged iff delta_j < tau,
                  tau = 0.5 (max_j delta_j + min_j delta_j);
       "release"  (the SlowVAE release's --gvae arithmetic): normalise
                  d_j = (delta_j - min) / (max - min) and keep j iff clip(floor(2 d_j), 0, 1) = 1.
     The two agree whenever max > min (d_j >= 1/2 is delta_j >= tau; up to rounding at the
     boundary). They differ when every delta_j is equal (for instance z = 1, or identical
     posteriors): the paper's strict "<" averages none, the release divides 0 by 0 and its NaN
     mask averages every dimension. (The release's KL also lacks the factor 1/2, which cannot
     change the split.)
  3. Aggregation (`aggregate`) of the averaged dimensions, for both frames alike:
       "gvae"  (Ada-GVAE):   mean 0.5 (m_0 + m_1), variance 0.5 (v_0 + v_1);
       "mlvae" (Ada-ML-VAE): the normalised geometric mean of the two densities,
               sqrt(q_0 q_1) / Z: precision 0.5 (1/v_0 + 1/v_1), mean v (m_0/v_0 + m_1/v_1) / 2.
     The other dimensions keep each frame's own posterior.
  4. Loss: the beta-VAE ELBO of both frames under the aggregated posteriors q~,
       recon + beta * KL(q~ || N(0, I)),  per image (means over the 2N images),
     with beta 1 by default (the SlowVAE release's --gvae loss: recon + beta KL, gamma 0).
The mask is a comparison, so no gradient flows through the threshold (as in both references).
Metrics add "averaged_dims", the mean number of averaged dimensions per pair (D - k when the
encoder has found the k changed factors).
"""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from nlvae import kl
from nlvae.models import slowvae

THRESHOLD_RULES = ("adaptive", "release")
AGGREGATIONS = ("gvae", "mlvae")


def per_dimension_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """delta = KL(q(z_j | x_0) || q(z_j | x_1)) per latent: mean, log_var [..., 2, D] -> [..., D]."""
  chex.assert_equal_shape([mean, log_var])
  chex.assert_axis_dimension(mean, -2, 2)
  var = jnp.exp(log_var)
  # diag_gaussian_kl sums over its last axis: a trailing axis of size 1 keeps every latent apart.
  return kl.diag_gaussian_kl(mean[..., 0, :, None], var[..., 0, :, None],
                             mean[..., 1, :, None], var[..., 1, :, None])


def averaged_dimensions(delta: jax.Array, rule: str = "adaptive") -> jax.Array:
  """Which latents to average: delta float [..., D] -> bool [..., D] (module docstring, step 2)."""
  if rule not in THRESHOLD_RULES:
    raise ValueError(f"model.threshold must be one of {THRESHOLD_RULES}, got {rule!r}.")
  delta = jax.lax.stop_gradient(delta)
  low = jnp.min(delta, axis=-1, keepdims=True)
  high = jnp.max(delta, axis=-1, keepdims=True)
  if rule == "adaptive":
    return delta < 0.5 * (high + low)
  normalised = (delta - low) / (high - low)  # 0 / 0 = NaN when all equal, as in the release
  return jnp.clip(jnp.floor(2.0 * normalised), 0.0, 1.0) != 1.0


def aggregate(mean: jax.Array, log_var: jax.Array,
              aggregation: str = "gvae") -> tuple[jax.Array, jax.Array]:
  """The shared posterior of each pair: mean, log_var [..., 2, D] -> mean, log_var [..., D]."""
  if aggregation not in AGGREGATIONS:
    raise ValueError(f"model.aggregation must be one of {AGGREGATIONS}, got {aggregation!r}.")
  var = jnp.exp(log_var)
  if aggregation == "gvae":
    return jnp.mean(mean, axis=-2), jnp.log(jnp.mean(var, axis=-2))
  shared_var = 1.0 / jnp.mean(1.0 / var, axis=-2)
  return shared_var * jnp.mean(mean / var, axis=-2), jnp.log(shared_var)


def adaptive_posterior(mean: jax.Array, log_var: jax.Array, *, rule: str = "adaptive",
                       aggregation: str = "gvae") -> tuple[jax.Array, jax.Array, jax.Array]:
  """Steps 1-3: mean, log_var [N, 2, D] -> (mean, log_var [N, 2, D] with the averaged
  dimensions replaced by the pair's shared posterior, averaged bool [N, D])."""
  chex.assert_rank([mean, log_var], 3)
  chex.assert_equal_shape([mean, log_var])
  averaged = averaged_dimensions(per_dimension_kl(mean, log_var), rule)
  shared_mean, shared_log_var = aggregate(mean, log_var, aggregation)
  mask = averaged[:, None, :]
  return (jnp.where(mask, shared_mean[:, None, :], mean),
          jnp.where(mask, shared_log_var[:, None, :], log_var), averaged)


class AdaGVAE(slowvae.BetaVAE):
  """Ada-GVAE (or Ada-ML-VAE) on a pair dataset: the BetaVAE's networks and evaluation.

  model_config fields: those of BetaVAE, with beta (1.0), threshold ("adaptive" | "release") and
  aggregation ("gvae" | "mlvae"); see the module docstring.
  """

  def __init__(self, model_config, data_info):
    super().__init__(model_config, data_info)
    self.threshold = model_config.threshold
    self.aggregation = model_config.aggregation
    if self.threshold not in THRESHOLD_RULES:
      raise ValueError(f"model.threshold must be one of {THRESHOLD_RULES}, got "
                       f"{self.threshold!r}.")
    if self.aggregation not in AGGREGATIONS:
      raise ValueError(f"model.aggregation must be one of {AGGREGATIONS}, got "
                       f"{self.aggregation!r}.")

  def loss(self, params: dict, batch: dict, rng: jax.Array):
    """Scalar loss (mean over the 2N images) and metrics; batch["frames"] uint8 [N, 2, H, W, C]."""
    images = self.images(batch)
    chex.assert_rank(images, 5)
    chex.assert_axis_dimension(images, 1, 2)
    mean, log_var = self.encode(params, images)
    mean, log_var, averaged = adaptive_posterior(mean, log_var, rule=self.threshold,
                                                 aggregation=self.aggregation)
    logits = self.decode_sample(params, mean, log_var, rng)
    loss, terms = slowvae.beta_vae_objective(logits, images, mean, log_var, beta=self.beta)
    terms["averaged_dims"] = jnp.mean(jnp.sum(averaged, axis=-1).astype(jnp.float32))
    return loss, terms
