"""Gaussian and Gaussian-mixture densities and sampling, as pure functions over pytrees.

Conventions: D is the event dimension, K the number of mixture components, and leading `...` axes
are batch axes that broadcast. Log-densities use a Cholesky factorisation (never an explicit
inverse or determinant), mixtures combine components with a log-sum-exp, so every function stays
finite for variances from 1e-6 to 1e6 and for means far apart.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)


class Gaussian(NamedTuple):
  """A multivariate normal N(mean, cov).

  Attributes:
    mean: [..., D].
    cov: [..., D, D], symmetric positive definite.
  """
  mean: jax.Array
  cov: jax.Array


class GaussianMixture(NamedTuple):
  """A mixture sum_k w_k N(means_k, covs_k).

  Attributes:
    log_weights: [..., K], normalised (logsumexp over K is 0).
    means: [..., K, D].
    covs: [..., K, D, D].
  """
  log_weights: jax.Array
  means: jax.Array
  covs: jax.Array

  @property
  def num_components(self) -> int:
    return self.means.shape[-2]


def diag_gaussian(mean: jax.Array, var: jax.Array) -> Gaussian:
  """N(mean, diag(var)) as a full-covariance Gaussian. mean, var: [..., D]."""
  return Gaussian(mean, var[..., :, None] * jnp.eye(var.shape[-1], dtype=var.dtype))


def as_mixture(gaussian: Gaussian) -> GaussianMixture:
  """A Gaussian [..., D] as a one-component mixture [..., 1, D]."""
  mean, cov = gaussian
  return GaussianMixture(jnp.zeros(mean.shape[:-1] + (1,), mean.dtype), mean[..., None, :],
                         cov[..., None, :, :])


def cholesky(cov: jax.Array) -> jax.Array:
  """Lower Cholesky factor of the symmetrised covariance [..., D, D]."""
  return jnp.linalg.cholesky(0.5 * (cov + jnp.swapaxes(cov, -1, -2)))


def gaussian_log_prob(x: jax.Array, gaussian: Gaussian,
                      offset: jax.Array | None = None) -> jax.Array:
  """log N(x + offset; mean, cov). x, offset: [..., D], broadcast against the Gaussian -> [...].

  The difference to the mean is formed as (x - mean) + offset, so a point written as a large
  anchor plus a small offset (a sample mean + L eps) keeps the offset's precision: in float32,
  1e4 + 1e-4 eps would round to the float32 grid (spacing 1e-3) before the density saw it.
  """
  mean, cov = gaussian
  diff = x - mean if offset is None else (x - mean) + offset
  chol = cholesky(cov)
  chol, diff = jnp.broadcast_arrays(chol, diff[..., None])
  whitened = jax.scipy.linalg.solve_triangular(chol, diff, lower=True)[..., 0]
  log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
  dim = x.shape[-1]
  return -0.5 * (dim * _LOG_2PI + log_det + jnp.sum(whitened**2, axis=-1))


def diag_gaussian_log_prob(x: jax.Array, mean: jax.Array, var: jax.Array) -> jax.Array:
  """log N(x; mean, diag(var)), summed over the last axis. x, mean, var: [..., D] -> [...]."""
  return -0.5 * jnp.sum(_LOG_2PI + jnp.log(var) + (x - mean)**2 / var, axis=-1)


def mixture_log_prob(x: jax.Array, mixture: GaussianMixture,
                     offset: jax.Array | None = None) -> jax.Array:
  """log sum_k w_k N(x + offset; m_k, C_k), with a log-sum-exp over the K components.

  x, offset: [..., D], broadcast against the mixture's batch axes [...]. Returns [...].
  `offset` (optional) is added after subtracting each mean, see `gaussian_log_prob`.
  """
  offset = None if offset is None else offset[..., None, :]
  component_log_probs = gaussian_log_prob(x[..., None, :],
                                          Gaussian(mixture.means, mixture.covs), offset)
  return jax.nn.logsumexp(mixture.log_weights + component_log_probs, axis=-1)


def standard_normal_offsets(key: jax.Array, gaussian: Gaussian, num_samples: int) -> jax.Array:
  """Reparameterised offsets L eps from the mean, eps ~ N(0, I): [num_samples, ..., D].

  A sample is mean + offset; keeping the two apart lets log-densities stay exact when the mean is
  large and the spread small (see `gaussian_log_prob`).
  """
  mean, cov = gaussian
  eps = jax.random.normal(key, (num_samples,) + mean.shape, mean.dtype)
  return jnp.einsum("...ij,s...j->s...i", cholesky(cov), eps)


def sample_gaussian(key: jax.Array, gaussian: Gaussian, num_samples: int) -> jax.Array:
  """Reparameterised samples mean + L eps. Gaussian [..., D] -> [num_samples, ..., D]."""
  return gaussian.mean + standard_normal_offsets(key, gaussian, num_samples)


def sample_mixture_components(key: jax.Array, mixture: GaussianMixture,
                              num_samples: int) -> jax.Array:
  """Stratified, reparameterised samples: `num_samples` from every component.

  Returns [num_samples, ..., K, D]. Weighting the per-component averages by w_k gives unbiased
  expectations under the mixture with gradients through every mean and covariance (no discrete
  component draw).
  """
  return sample_gaussian(key, Gaussian(mixture.means, mixture.covs), num_samples)


def sample_mixture(key: jax.Array, mixture: GaussianMixture, num_samples: int) -> jax.Array:
  """Ancestral samples of a mixture with a single batch shape: [K, D] -> [num_samples, D]."""
  key_component, key_noise = jax.random.split(key)
  component = jax.random.categorical(key_component, mixture.log_weights, shape=(num_samples,))
  chosen = Gaussian(mixture.means[component], mixture.covs[component])
  return sample_gaussian(key_noise, chosen, 1)[0]


def mixture_moments(mixture: GaussianMixture) -> Gaussian:
  """The moment-matched Gaussian (same mean and covariance) of a mixture [..., K, D]."""
  weights = jnp.exp(mixture.log_weights)[..., None]
  mean = jnp.sum(weights * mixture.means, axis=-2)
  centred = mixture.means - mean[..., None, :]
  outer = centred[..., :, None] * centred[..., None, :]
  cov = jnp.sum(weights[..., None] * (mixture.covs + outer), axis=-3)
  return Gaussian(mean, cov)
