"""Nonlinear temporal additive-noise-model (ANM) priors, linearised into Gaussian mixtures.

An ANM prior of order P says   z_t = f(z_{t-P}, ..., z_{t-1}; theta) + eps_t,   and
z_1..z_P ~ N(init_mean, diag init_scale^2). Everything here is a pure function of an `ANMPrior`
pytree, so it jit-compiles, vmaps over frames and batch, and differentiates with respect to the
physical parameters theta (system identification) as well as the posterior.

Typical use (see README "Using nlvae.priors in your own JAX code"):

  prior = priors.pendulum(g=9.81, length=1.0, dt=0.05)
  gmm = priors.linearize(prior, history_mean, history_var, num_components=16)   # p(z_t), a GMM
  kl_per_frame = priors.sequence_kl(prior, q_mean, q_var, key)                  # [T]
  traj = priors.rollout(prior.with_params(damping=0.5), history, num_steps=50)  # intervention

Vocabulary, shared with `nlvae.gaussians` and `nlvae.kl`:
  P = prior.order, D = prior.latent_dim, n = P * D (the history size), T frames, K mixture
  components, S Monte Carlo draws.
  History layout: the history h = (z_{t-P}, ..., z_{t-1}) has means [P, D], oldest frame first. A
  diagonal posterior gives variances [P, D] (`linearize`, `sequence_kl`, `rollout`); a full
  covariance is over the flattened, frame-major history, [n, n] (`pushforward`, which takes the
  mean as [P, D] or [n]).
  num_components: K, components of the split history (and of the prior mixture it gives).
  num_samples: S, Monte Carlo draws (per frame in `sequence_kl`, per component of q in
  `kl.mixture_kl`, trajectories in `rollout`).
  method: how the history is split into K components (SPLIT_METHODS, default "auto": a grid
  along the one history axis where f is nonlinear when there is one, as for the pendulum, else
  the original quasi-random split; see `split_history`); bandwidth: the width of a component
  relative to the history (see `split_gaussian`).
  key: a PRNG key, needed only where something is drawn (a clear error says where).
  Mixtures: log_weights [..., K], means [..., K, D], covs [..., K, D, D], with the same batch axes
  [...] in every field.
  dtypes: parameters given as Python numbers take `make_prior(dtype=...)` (float32 by default,
  also under jax_enable_x64); jax arrays keep theirs; `with_params` keeps each parameter's dtype.
  So a float32 pipeline stays float32 with x64 enabled, and a float64 one needs dtype=float64.

Every public function that computes is jit-compiled, with its configuration arguments static (the
`static_argnames` attribute of each lists them): calling it eagerly compiles once per
configuration and shapes, and calling it inside your own jit, vmap or grad is free of overhead.
Give `ANMPrior.transition` a function defined once (module level): it is part of the cache key.
"""

import functools
from typing import Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.special
from flax import struct

from nlvae import gaussians
from nlvae import kl
from nlvae.gaussians import Gaussian, GaussianMixture

# f(history [P, D], params) -> next latent mean [D].
Transition = Callable[[jax.Array, dict], jax.Array]

NOISE_TYPES = ("gaussian", "laplace")
# "auto" (default): "directional" where f is nonlinear along one whitened history axis, else
#   "quasi" (see split_history);
# "directional": a grid along the whitened history axis where f is most nonlinear;
# "quasi": Halton points in every direction with Silverman's bandwidth (the original split);
# "random": like "quasi" with whitened antithetic normal draws (needs a key).
SPLIT_METHODS = ("auto", "directional", "quasi", "random")
ESTIMATORS = ("mixture", "sequential")


def _jit(*static_argnames: str):
  """Jit-compiles a public function with `static_argnames` static, keeping its signature and
  docstring for `help` and the API reference (`fn.static_argnames` lists them)."""

  def decorate(fn):
    compiled = jax.jit(fn, static_argnames=static_argnames)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
      return compiled(*args, **kwargs)

    wrapper.static_argnames = static_argnames
    wrapper.jitted = compiled
    return wrapper

  return decorate


def _as_float(value, dtype) -> jax.Array:
  """A jax array keeps its floating dtype; Python numbers and numpy values take `dtype`."""
  if isinstance(value, jax.Array) and jnp.issubdtype(value.dtype, jnp.floating):
    return value
  return jnp.asarray(value, dtype)


@struct.dataclass
class ANMPrior:
  """A temporal additive-noise-model prior z_t = f(z_{t-P..t-1}; params) + eps_t.

  Attributes:
    params: physical parameters theta, name -> scalar array (always includes "dt", the frame
      interval). A pytree leaf each, so they can be learned or intervened on.
    noise_scale: [D] standard deviation of eps_t (Gaussian) or its scale b (Laplace, rate 1/b).
    init_mean: [D] mean of the prior of the first P frames.
    init_scale: [D] standard deviation of the prior of the first P frames.
    transition: f, a pure function (history [P, D], params) -> [D]. Static (not a leaf): use a
      function defined once (module level), so jit caches hit.
    order: P >= 0. P = 0 means frames are independent draws from the initial prior.
    noise: "gaussian" or "laplace".
    learnable: names of `params` that training may fit (system identification).
    name: a label.
  """
  params: dict
  noise_scale: jax.Array
  init_mean: jax.Array
  init_scale: jax.Array
  transition: Transition = struct.field(pytree_node=False)
  order: int = struct.field(pytree_node=False)
  noise: str = struct.field(pytree_node=False, default="gaussian")
  learnable: tuple[str, ...] = struct.field(pytree_node=False, default=())
  name: str = struct.field(pytree_node=False, default="anm")

  @property
  def latent_dim(self) -> int:
    return self.noise_scale.shape[-1]

  def with_params(self, **overrides) -> "ANMPrior":
    """A copy with some physical parameters replaced (an intervention, or learned values).

    Each new value takes the dtype of the parameter it replaces (tracers included), so an
    intervention never changes the precision of a pipeline.
    """
    unknown = sorted(set(overrides) - set(self.params))
    if unknown:
      raise ValueError(f"prior '{self.name}' has no parameter(s) {unknown}; "
                       f"valid: {sorted(self.params)}")
    params = dict(self.params)
    params.update({k: jnp.asarray(v, self.params[k].dtype) for k, v in overrides.items()})
    return self.replace(params=params)

  def learnable_params(self) -> dict:
    """The learnable subset of `params`: name -> scalar array."""
    return {name: self.params[name] for name in self.learnable}

  def predict(self, history: jax.Array) -> jax.Array:
    """Noise-free next latent f(history). history [..., P, D] -> [..., D]."""
    chex.assert_shape(history, (..., self.order, self.latent_dim))
    fn = lambda h: self.transition(h, self.params)
    for _ in range(history.ndim - 2):
      fn = jax.vmap(fn)
    return fn(history)

  def noise_variance(self) -> jax.Array:
    """[D] variance of eps_t (2 b^2 for Laplace noise of scale b)."""
    factor = 2.0 if self.noise == "laplace" else 1.0
    return factor * self.noise_scale**2


def make_prior(transition: Transition, order: int, params: dict, latent_dim: int, *,
               noise_scale=0.05, init_mean=0.0, init_scale=1.0, noise: str = "gaussian",
               learnable=(), name: str = "anm", dtype=jnp.float32) -> ANMPrior:
  """Builds an ANMPrior, broadcasting scalar scales to [latent_dim] and validating names.

  dtype: the dtype of parameters and scales given as Python numbers or numpy values (float32 by
  default, with or without jax_enable_x64; pass jnp.float64 for a float64 pipeline). Values given
  as jax arrays keep their own floating dtype.
  """
  if noise not in NOISE_TYPES:
    raise ValueError(f"noise must be one of {NOISE_TYPES}, got {noise!r}")
  if order < 0:
    raise ValueError(f"order must be >= 0, got {order}")
  unknown = sorted(set(learnable) - set(params))
  if unknown:
    raise ValueError(f"learnable {unknown} are not parameters of '{name}'; valid: {sorted(params)}")
  vector = lambda v: jnp.broadcast_to(_as_float(v, dtype), (latent_dim,))
  return ANMPrior(params={k: _as_float(v, dtype) for k, v in params.items()},
                  noise_scale=vector(noise_scale), init_mean=vector(init_mean),
                  init_scale=vector(init_scale), transition=transition, order=order, noise=noise,
                  learnable=tuple(learnable), name=name)


# ----------------------------------------------------------------------------------------------
# Transitions. Each is defined once at module level so jit caches keyed on it are reused.
# ----------------------------------------------------------------------------------------------


def newtonian(acceleration: Callable[[jax.Array, jax.Array, dict], jax.Array]) -> Transition:
  """Second-order finite-difference transition from an acceleration a(position, velocity, params).

  z_t = 2 z_{t-1} - z_{t-2} + dt^2 a(z_{t-1}, (z_{t-1} - z_{t-2}) / dt), with dt = params["dt"].
  A per-frame encoder cannot see velocity, hence order 2. Call this once, at module level.
  """

  def transition(history: jax.Array, params: dict) -> jax.Array:
    previous, current = history[-2], history[-1]
    dt = params["dt"]
    velocity = (current - previous) / dt
    return 2.0 * current - previous + dt**2 * acceleration(current, velocity, params)

  transition.__name__ = f"newtonian_{getattr(acceleration, '__name__', 'acceleration')}"
  return transition


def _spring_acceleration(x, v, p):
  return -p["omega"]**2 * x - p["damping"] * v


def _pendulum_acceleration(theta, v, p):
  return -(p["g"] / p["length"]) * jnp.sin(theta) - p["damping"] * v


def _falling_acceleration(y, v, p):
  gravity = jnp.zeros_like(y).at[-1].set(p["g"])
  speed = jnp.sqrt(jnp.sum(v**2) + 1e-12)
  return -gravity - p["drag"] * speed * v


# The accelerations a(position, velocity, params) of the Newtonian priors, by prior name (for
# integrators other than the finite-difference step, e.g. physics_eval's long-step predictor).
ACCELERATIONS = {"spring": _spring_acceleration, "pendulum": _pendulum_acceleration,
                 "falling": _falling_acceleration}

spring_transition = newtonian(_spring_acceleration)
pendulum_transition = newtonian(_pendulum_acceleration)
falling_transition = newtonian(_falling_acceleration)


def linear_extrapolation_transition(history: jax.Array, params: dict) -> jax.Array:
  """z_t = 2 z_{t-1} - z_{t-2} (constant velocity)."""
  del params
  return 2.0 * history[-1] - history[-2]


def random_walk_transition(history: jax.Array, params: dict) -> jax.Array:
  """z_t = z_{t-1} (the mean of a random walk; SlowVAE's Laplace transition)."""
  del params
  return history[-1]


def zero_transition(history: jax.Array, params: dict) -> jax.Array:
  del history, params
  raise AssertionError("order-0 priors have no transition")


PULSE_PARAMS = ("main_amplitude", "main_centre", "main_width", "inter_amplitude", "inter_centre",
                "inter_width", "baseline")


@_jit()
def pulse_profile(phase: jax.Array, params: dict) -> jax.Array:
  """Two-Gaussian pulse profile (main pulse + interpulse) over rotation phase in radians.

  b(phase) = baseline + sum_{j in main, inter} amplitude_j exp(-wrap(phase - centre_j)^2 / 2 width_j^2),
  with wrap() to [-pi, pi). phase: [...] -> [...].
  """
  def bump(prefix):
    diff = jnp.remainder(phase - params[f"{prefix}_centre"] + jnp.pi, 2.0 * jnp.pi) - jnp.pi
    return params[f"{prefix}_amplitude"] * jnp.exp(-0.5 * (diff / params[f"{prefix}_width"])**2)
  return params["baseline"] + bump("main") + bump("inter")


PHASE_NORM_EPS = 0.1


def pulsar_transition(history: jax.Array, params: dict) -> jax.Array:
  """Latent (u_x, u_y, b): the phase as a unit vector u rotated by omega dt, b = profile(phase).

  u is pulled onto the unit circle before it is rotated, u * sqrt(1 + e^2) / sqrt(|u|^2 + e^2)
  with e = PHASE_NORM_EPS: the unit circle is kept exactly, every |u| >> e predicts a nearly
  unit vector (the phase is an angle, and a shrunken u, for which any rotation would be cheap, is
  not a solution), and the Jacobian stays below sqrt(1 + e^2) / e near u = 0, where a posterior
  starts. (An exact projection u / |u| has an unbounded Jacobian there: the linearised prior
  covariance then overflows float32 and its Cholesky factor is NaN.)
  """
  u = history[-1, :2]
  u = u * jnp.sqrt((1.0 + PHASE_NORM_EPS**2) / (jnp.sum(u**2) + PHASE_NORM_EPS**2))
  angle = params["omega"] * params["dt"]
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  u_next = jnp.stack([cos * u[0] - sin * u[1], sin * u[0] + cos * u[1]])
  phase = jnp.arctan2(u_next[1], u_next[0])
  return jnp.concatenate([u_next, pulse_profile(phase, params)[None]])


def pulsar_phase(latent: jax.Array) -> jax.Array:
  """Rotation phase in radians from pulsar latents [..., 3] (or [..., 2])."""
  return jnp.arctan2(latent[..., 1], latent[..., 0])


@_jit("num_grid")
def pulsar_smoothed_phase(brightness: jax.Array, params: dict,
                          num_grid: int = 720) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The rotation phase of a clip inferred from its brightness through the pulsar prior.

  Under the prior the phase advances by omega dt per frame, so a clip's phases are
  ``phi0 + omega dt t`` and its brightness is ``pulse_profile`` of them plus noise. This returns
  the maximum-likelihood phases over ``num_grid`` values of phi0 on [-pi, pi), with the brightness
  allowed any affine map of the profile (``scale * profile + offset``, fitted by least squares for
  each phi0): a learned brightness latent is identified only up to such a map, sign included. It
  is exact smoothing in the noise-free-rotation limit of the prior (the transition noise on u is
  small), uses every frame of the clip, and resolves the phase uniquely when the profile is not
  symmetric (main pulse and interpulse differ).

  brightness: [T] (e.g. the posterior means of the brightness latent); params: the prior's
  parameters (omega, dt, PULSE_PARAMS). Returns (phases [T] in [-pi, pi), scale [], offset []):
  ``scale * pulse_profile(phases) + offset`` is the fitted brightness, in the units of the input.
  """
  chex.assert_rank(brightness, 1)
  steps = jnp.arange(brightness.shape[0]) * params["omega"] * params["dt"]
  phi0 = jnp.linspace(-jnp.pi, jnp.pi, num_grid, endpoint=False)
  phases = phi0[:, None] + steps[None, :]  # [G, T]
  profile = pulse_profile(phases, params)
  profile_mean = jnp.mean(profile, axis=1, keepdims=True)
  centred_profile = profile - profile_mean
  centred = brightness - jnp.mean(brightness)
  scale = centred_profile @ centred / (jnp.sum(centred_profile**2, axis=1) + 1e-12)  # [G]
  residual = jnp.sum((centred[None, :] - scale[:, None] * centred_profile)**2, axis=1)
  best = jnp.argmin(residual)
  offset = jnp.mean(brightness) - scale[best] * profile_mean[best, 0]
  return jnp.remainder(phases[best] + jnp.pi, 2.0 * jnp.pi) - jnp.pi, scale[best], offset


# ----------------------------------------------------------------------------------------------
# Built-in priors.
# ----------------------------------------------------------------------------------------------


def spring(*, omega: float = 2.0 * np.pi, damping: float = 0.0, dt: float = 0.05,
           latent_dim: int = 1, **kwargs) -> ANMPrior:
  """Damped mass on a spring: a = -omega^2 x - damping v (linear). Order 2."""
  return make_prior(spring_transition, 2, dict(omega=omega, damping=damping, dt=dt), latent_dim,
                    name="spring", **kwargs)


def pendulum(*, g: float = 9.81, length: float = 1.0, damping: float = 0.0, dt: float = 0.05,
             **kwargs) -> ANMPrior:
  """Damped pendulum: a = -(g / length) sin(theta) - damping v (nonlinear). Latent: angle in rad."""
  return make_prior(pendulum_transition, 2, dict(g=g, length=length, damping=damping, dt=dt), 1,
                    name="pendulum", **kwargs)


def falling(*, g: float = 9.81, drag: float = 0.0, dt: float = 0.05, latent_dim: int = 1,
            **kwargs) -> ANMPrior:
  """Falling object: a = -g e_last - drag |v| v (quadratic air drag). The last latent axis is height."""
  return make_prior(falling_transition, 2, dict(g=g, drag=drag, dt=dt), latent_dim,
                    name="falling", **kwargs)


def pulsar(*, omega: float = 2.0 * np.pi, dt: float = 0.05, profile: dict | None = None,
           **kwargs) -> ANMPrior:
  """Rotating pulsar: latent (u_x, u_y, brightness); u rotates by omega dt per frame, the brightness
  is the two-Gaussian pulse profile of the phase. `profile` maps PULSE_PARAMS to values (default:
  a main pulse at phase 0 and an interpulse 0.4 cycles later)."""
  default_profile = dict(main_amplitude=1.0, main_centre=0.0, main_width=0.3, inter_amplitude=0.4,
                         inter_centre=0.8 * np.pi, inter_width=0.3, baseline=0.0)
  profile = {**default_profile, **(profile or {})}
  unknown = sorted(set(profile) - set(PULSE_PARAMS))
  if unknown:
    raise ValueError(f"unknown pulse-profile parameter(s) {unknown}; valid: {list(PULSE_PARAMS)}")
  return make_prior(pulsar_transition, 1, dict(omega=omega, dt=dt, **profile), 3, name="pulsar",
                    **kwargs)


def linear_extrapolation(*, latent_dim: int = 1, **kwargs) -> ANMPrior:
  """Constant velocity: z_t = 2 z_{t-1} - z_{t-2} + eps. Order 2."""
  return make_prior(linear_extrapolation_transition, 2, {}, latent_dim,
                    name="linear_extrapolation", **kwargs)


def laplace_transition(*, latent_dim: int = 10, rate: float = 6.0, **kwargs) -> ANMPrior:
  """SlowVAE's temporally sparse prior: z_t = z_{t-1} + Laplace(0, 1/rate) noise. Order 1."""
  return make_prior(random_walk_transition, 1, {}, latent_dim, noise="laplace",
                    noise_scale=1.0 / rate, name="laplace_transition", **kwargs)


def standard_normal(*, latent_dim: int = 1) -> ANMPrior:
  """The usual VAE prior: every frame independently N(0, I). Order 0."""
  return make_prior(zero_transition, 0, {}, latent_dim, noise_scale=1.0, init_mean=0.0,
                    init_scale=1.0, name="standard_normal")


# ----------------------------------------------------------------------------------------------
# Linearisation into a Gaussian mixture.
# ----------------------------------------------------------------------------------------------


def silverman_bandwidth(history_size: int, num_components: int) -> float:
  """Relative bandwidth squared, h^2, of Silverman's rule in n = history_size (= P * D) dimensions:
  (4 / (n + 2))^(2/(n+4)) K^(-2/(n+4)), at most 1 (the "quasi" and "random" splits)."""
  h = (4.0 / (history_size + 2.0))**(1.0 / (history_size + 4.0)) * num_components**(
      -1.0 / (history_size + 4.0))
  return float(min(1.0, h**2))


@functools.lru_cache(maxsize=None)
def quasi_normal_points(num_points: int, dim: int) -> np.ndarray:
  """[K, n] standard-normal quasi-random points (Halton + inverse CDF), centred and whitened so
  their mean is exactly 0 and their covariance exactly I (needs K > n)."""
  primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71]
  if dim > len(primes):
    raise ValueError(f"quasi splitting supports history sizes up to {len(primes)}, got {dim}; "
                     "use method='random' or 'directional'")
  points = np.empty((num_points, dim))
  for j, base in enumerate(primes[:dim]):
    for i in range(num_points):
      f, r, n = 1.0, 0.0, i + 1
      while n > 0:
        f /= base
        r += f * (n % base)
        n //= base
      points[i, j] = r
  return _whiten(scipy.special.ndtri(points))


def _whiten(eps: np.ndarray) -> np.ndarray:
  eps = eps - eps.mean(axis=0)
  chol = np.linalg.cholesky(eps.T @ eps / eps.shape[0])
  return np.linalg.solve(chol, eps.T).T


@functools.lru_cache(maxsize=None)
def grid_normal_points(num_points: int) -> tuple[np.ndarray, np.ndarray]:
  """A 1-D grid rule for N(0, 1): (nodes [K], weights [K]), K >= 2.

  K equally spaced nodes on [-R, R], R = sqrt(2 log K) + 1, weighted by the normal density and
  then shifted and scaled so that the weighted mean is exactly 0 and the weighted variance
  exactly 1. Its spacing is nodes[1] - nodes[0] (0.45 at K = 16).
  """
  if num_points < 2:
    raise ValueError(f"a grid rule needs at least 2 points, got {num_points}")
  radius = np.sqrt(2.0 * np.log(num_points)) + 1.0
  nodes = np.linspace(-radius, radius, num_points)
  weights = np.exp(-0.5 * nodes**2)
  weights /= weights.sum()
  nodes = nodes - weights @ nodes
  return nodes / np.sqrt(weights @ nodes**2), weights


# The "directional" split puts its components this many node spacings wide (std) where nothing
# else smooths the prior mixture: the mixture of equally spaced Gaussians then ripples by about
# 2 exp(-2 pi^2 0.6^2) = 1.6e-3 of its density (Poisson summation). Below K = 8 the grid is too
# coarse for that, and the width is capped at MAX_GRID_WIDTH of the history's standard deviation.
GRID_WIDTH_PER_SPACING = 0.6
MAX_GRID_WIDTH = 0.8


def grid_width(num_components: int) -> float:
  """The default bandwidth b of the "directional" split when nothing else smooths the mixture:
  GRID_WIDTH_PER_SPACING node spacings of `grid_normal_points(K)`, at most MAX_GRID_WIDTH."""
  nodes, _ = grid_normal_points(num_components)
  return float(min(GRID_WIDTH_PER_SPACING * (nodes[1] - nodes[0]), MAX_GRID_WIDTH))


@_jit("num_components", "method")
def split_gaussian(gaussian: Gaussian, num_components: int, *, method: str = "quasi",
                   key: jax.Array | None = None, bandwidth: float | jax.Array | None = None,
                   direction: jax.Array | None = None) -> GaussianMixture:
  """Splits N(m, S) [n] into a K-component mixture with exactly its mean m and covariance S.

  Write h = m + L u with L the Cholesky factor of S and u ~ N(0, I) (whitened coordinates).
    "quasi", "random": K equally weighted components N(m + sqrt(1 - b^2) L eps_k, b^2 S) with
      offsets eps_k of zero mean and identity covariance, Halton points ("quasi") or whitened
      antithetic normal draws from `key` ("random"; antithetic once K >= 2n - 1);
      b^2 = silverman_bandwidth(n, K) unless `bandwidth` b is given. Needs K > n. Every
      direction is split, so b shrinks only like K^(-1/(n+4)) (the original split).
    "directional": a 1-D grid along the whitened unit vector `direction` [n] (required; see
      `nonlinear_direction`): components N(m + sqrt(1 - b^2) x_k L v, L (I - (1 - b^2) v v^T) L^T)
      with the nodes and weights (x_k, w_k) of `grid_normal_points(K)`. Along v each component
      keeps the fraction b of the standard deviation (default GRID_WIDTH_PER_SPACING node
      spacings, at most MAX_GRID_WIDTH), across v the full one. Any K >= 2.
  K = 1 returns the Gaussian itself. Returns a GaussianMixture, log_weights [K], means [K, n],
  covs [K, n, n]; gradients flow through m, S and a traced bandwidth (points and direction are
  fixed).
  """
  mean, cov = gaussian
  dim = mean.shape[-1]
  if num_components == 1:
    return gaussians.as_mixture(gaussian)
  chol = gaussians.cholesky(cov)
  if method == "directional":
    if direction is None:
      raise ValueError("method='directional' needs a `direction` (a unit vector in whitened "
                       "coordinates, e.g. nonlinear_direction(prior, history))")
    chex.assert_shape(direction, (dim,))
    nodes, weights = (jnp.asarray(x, mean.dtype) for x in grid_normal_points(num_components))
    if bandwidth is None:
      bandwidth = grid_width(num_components)
    h2 = jnp.asarray(bandwidth, mean.dtype)**2
    axis = chol @ direction  # [n], the split direction in history coordinates
    centres = mean + jnp.sqrt(1.0 - h2) * nodes[:, None] * axis
    component_cov = cov - (1.0 - h2) * jnp.outer(axis, axis)
    covs = jnp.broadcast_to(component_cov, (num_components, dim, dim))
    return GaussianMixture(jnp.log(weights), centres, covs)
  if num_components <= dim:
    raise ValueError(f"method={method!r} needs num_components 1 or > history size {dim}, got "
                     f"{num_components} (method='directional' takes any K)")
  if method == "quasi":
    eps = jnp.asarray(quasi_normal_points(num_components, dim), mean.dtype)
  elif method == "random":
    if key is None:
      raise ValueError("method='random' needs a PRNG key")
    half = (num_components + 1) // 2
    if half >= dim:  # antithetic pairs, when their halves still span every direction
      eps = jax.random.normal(key, (half, dim), mean.dtype)
      eps = jnp.concatenate([eps, -eps])[:num_components]
    else:
      eps = jax.random.normal(key, (num_components, dim), mean.dtype)
    eps = eps - eps.mean(axis=0)
    eps_chol = jnp.linalg.cholesky(eps.T @ eps / num_components)
    eps = jax.scipy.linalg.solve_triangular(eps_chol, eps.T, lower=True).T
  else:
    raise ValueError("split_gaussian's method must be 'directional', 'quasi' or 'random' ('auto' "
                     f"needs the prior's f: split_history), got {method!r}")
  h2 = silverman_bandwidth(dim, num_components) if bandwidth is None else bandwidth**2
  centres = mean + jnp.sqrt(1.0 - h2) * eps @ chol.T
  covs = jnp.broadcast_to(h2 * cov, (num_components, dim, dim))
  log_weights = jnp.full((num_components,), -jnp.log(num_components), mean.dtype)
  return GaussianMixture(log_weights, centres, covs)


def _flat_transition(prior: ANMPrior) -> Callable[[jax.Array], jax.Array]:
  """f over the flattened history: [n] -> [D]."""
  return lambda h: prior.transition(h.reshape(prior.order, prior.latent_dim), prior.params)


def _flat_history(prior: ANMPrior, history: Gaussian) -> Gaussian:
  """A history Gaussian with mean [P, D] or [n] and cov [n, n] as mean [n], cov [n, n]."""
  n = prior.order * prior.latent_dim
  mean = history.mean.reshape(-1)
  chex.assert_shape([mean, history.cov], [(n,), (n, n)])
  return Gaussian(mean, history.cov)


@_jit()
def axis_curvature(prior: ANMPrior, history: Gaussian) -> jax.Array:
  """How nonlinear f is along each whitened history axis: [n], >= 0 (0 everywhere for linear f).

  With h = m + L u (L the Cholesky factor of the history covariance; for a diagonal posterior the
  whitened axes are the history's own (frame, latent) coordinates), the curvature of axis i is
  sum_j (C^(-1/2) d^2 f / du_i du_j)^2 summed over the outputs and averaged over the 2n + 1
  sigma points u = 0, +-sqrt(3) e_i, where C = J S J^T + Sigma_eps is the extended-Kalman
  prediction covariance (so outputs are compared in units of their spread). Not differentiated
  (a design choice of the split). history: mean [P, D] or [n], cov [n, n].
  """
  mean, cov = (jax.lax.stop_gradient(x) for x in _flat_history(prior, history))
  n = mean.shape[0]
  chol = gaussians.cholesky(cov)
  f = _flat_transition(prior)
  g = lambda u: f(mean + chol @ u)
  zero = jnp.zeros_like(mean)
  jac = jax.jacfwd(g)(zero)  # [D, n]
  output_chol = gaussians.cholesky(jac @ jac.T + jnp.diag(prior.noise_variance()))
  eye = jnp.eye(n, dtype=mean.dtype)
  sigma_points = jnp.concatenate([zero[None], 3.0**0.5 * eye, -(3.0**0.5) * eye])
  hessians = jax.vmap(jax.hessian(g))(sigma_points)  # [2n+1, D, n, n]
  output_whitening = jax.scipy.linalg.solve_triangular(
      output_chol, jnp.eye(output_chol.shape[0], dtype=mean.dtype), lower=True)
  whitened = jnp.einsum("de,seij->sdij", output_whitening, hessians)
  return jnp.sum(whitened**2, axis=(0, 1, 3)) / sigma_points.shape[0]


@_jit()
def nonlinear_direction(prior: ANMPrior, history: Gaussian) -> jax.Array:
  """The whitened history axis along which f is most nonlinear (largest `axis_curvature`): a
  one-hot vector [n], held fixed under differentiation. history: mean [P, D] or [n], cov [n, n]."""
  curvature = axis_curvature(prior, history)
  return jax.nn.one_hot(jnp.argmax(curvature), curvature.shape[0], dtype=curvature.dtype)


@_jit("num_components")
def directional_bandwidth(prior: ANMPrior, history: Gaussian, direction: jax.Array,
                          num_components: int) -> jax.Array:
  """The bandwidth b of the "directional" split, []: as narrow as the prior mixture allows.

  Adjacent components of the prior mixture sit a = J L v x (their node spacing x) apart in z, and
  each is smoothed by what the split leaves: the history across v, the transition noise, and b
  along v. They overlap smoothly when that spread, measured along a, is GRID_WIDTH_PER_SPACING
  spacings: b^2 = (0.6 x)^2 - 1/q with q = a^T C_perp^(-1) a / x^2, C_perp = J L (I - v v^T) L^T
  J^T + Sigma_eps, averaged over the nodes with their weights, and b between a tenth of the widest
  width and the widest, min(0.6 x, MAX_GRID_WIDTH).
  A narrow b removes the linearisation error along v, which grows like b^2.
  """
  mean, cov = _flat_history(prior, history)
  chol = gaussians.cholesky(cov)
  nodes, weights = (jnp.asarray(x, mean.dtype) for x in grid_normal_points(num_components))
  f = _flat_transition(prior)
  noise_cov = jnp.diag(prior.noise_variance())

  def precision_along_split(node):
    jac = jax.jacfwd(lambda u: f(mean + chol @ u))(node * direction)  # [D, n]
    step = jac @ direction
    full = jac @ jac.T + noise_cov
    full = full + 1e-6 * jnp.trace(full) / full.shape[0] * jnp.eye(full.shape[0], dtype=full.dtype)
    ratio = step @ jnp.linalg.solve(full, step)  # a^T C^-1 a in [0, 1), C = C_perp + a a^T
    return ratio / jnp.maximum(1.0 - ratio, 1e-6)  # = a^T C_perp^-1 a (Sherman-Morrison)

  q = weights @ jax.vmap(precision_along_split)(nodes)
  widest = grid_width(num_components)
  b2 = jnp.clip(widest**2 - 1.0 / jnp.maximum(q, 1e-12), (0.1 * widest)**2, widest**2)
  return jnp.sqrt(b2)


# method="auto" splits along one axis when that axis carries at least this share of
# `axis_curvature` (the pendulum: all of it), otherwise in every direction ("quasi").
AUTO_CURVATURE_SHARE = 0.95


@_jit("num_components", "method", "adapt_bandwidth")
def split_history(prior: ANMPrior, history: Gaussian, num_components: int, *,
                  method: str = "auto", key: jax.Array | None = None,
                  bandwidth: float | jax.Array | None = None,
                  adapt_bandwidth: bool = True) -> GaussianMixture:
  """`split_gaussian` of the flattened history, with the split chosen for the prior's f.

  method "directional": along `nonlinear_direction`, with `directional_bandwidth` (or, if
  adapt_bandwidth is False, `grid_width`) unless `bandwidth` is given. "auto" (the default of
  every entry point): "directional" where the most curved whitened axis carries at least
  AUTO_CURVATURE_SHARE of `axis_curvature` (f nonlinear along one history direction, as for the
  pendulum; or K <= n, or f linear, where any split is exact), otherwise "quasi" (f nonlinear in
  several directions, e.g. quadratic drag in 2-D, where a 1-D split would leave the rest
  unsplit). "quasi", "random": as in `split_gaussian`. The choice is made inside the computation
  (both splits are built), so it needs no retrace. history: mean [P, D] or [n], cov [n, n].
  Returns a GaussianMixture, means [K, n], covs [K, n, n].
  """
  history = _flat_history(prior, history)
  n = history.mean.shape[0]
  if method not in SPLIT_METHODS:
    raise ValueError(f"method must be one of {SPLIT_METHODS}, got {method!r}")
  if num_components == 1 or method in ("quasi", "random"):
    return split_gaussian(history, num_components, method=method, key=key, bandwidth=bandwidth)
  curvature = axis_curvature(prior, history)
  direction = jax.nn.one_hot(jnp.argmax(curvature), n, dtype=curvature.dtype)
  directional_width = bandwidth
  if directional_width is None:
    directional_width = (directional_bandwidth(prior, history, direction, num_components)
                         if adapt_bandwidth else grid_width(num_components))
  directional = split_gaussian(history, num_components, method="directional",
                               bandwidth=directional_width, direction=direction)
  if method == "directional" or num_components <= n:
    return directional
  quasi = split_gaussian(history, num_components, method="quasi", bandwidth=bandwidth)
  total = jnp.sum(curvature)
  one_axis = jnp.max(curvature) >= AUTO_CURVATURE_SHARE * total  # also when f is linear
  return jax.tree.map(lambda a, b: jnp.where(one_axis, a, b), directional, quasi)


@_jit("num_components", "method")
def pushforward(prior: ANMPrior, history: Gaussian, *, num_components: int = 1,
                method: str = "auto", key: jax.Array | None = None,
                bandwidth: float | jax.Array | None = None) -> GaussianMixture:
  """Linearised pushforward of a Gaussian history through the prior: p(z_t) as a GMM.

  history: Gaussian over h = (z_{t-P}, ..., z_{t-1}), mean [P, D] or flattened [n], cov [n, n]
  (frame-major). The history is split into K components N(h_k, S_k) (`split_history`: method,
  bandwidth; key only for method="random"), and each is pushed through f
  linearised at its centre, J_k = jax.jacfwd(f)(h_k):
  {w_k, N(f(h_k), J_k S_k J_k^T + Sigma_eps)}. K = 1 is the extended-Kalman prediction step.
  Returns a GaussianMixture, log_weights [K], means [K, D], covs [K, D, D]. Jit-compiled, static:
  num_components, method.
  """
  components = split_history(prior, history, num_components, method=method, key=key,
                             bandwidth=bandwidth)
  f = _flat_transition(prior)
  means = jax.vmap(f)(components.means)
  jacobians = jax.vmap(jax.jacfwd(f))(components.means)  # [K, D, n]
  covs = (jacobians @ components.covs @ jnp.swapaxes(jacobians, -1, -2)
          + jnp.diag(prior.noise_variance()))
  return GaussianMixture(components.log_weights, means, covs)


@_jit("num_components", "method")
def linearize(prior: ANMPrior, history_mean: jax.Array, history_var: jax.Array, *,
              num_components: int = 1, method: str = "auto", key: jax.Array | None = None,
              bandwidth: float | jax.Array | None = None) -> GaussianMixture:
  """Prior GMM p(z_t) ~ integral p(z_t | h) q(h) dh for a diagonal Gaussian posterior of the history.

  history_mean, history_var: [P, D], the posterior means and variances of z_{t-P}, ..., z_{t-1}.
  The rest as in `pushforward` (of which this is the diagonal case). Returns a GaussianMixture
  with log_weights [K], means [K, D], covs [K, D, D]. Jit-compiled, static: num_components,
  method.

  >>> import jax.numpy as jnp
  >>> from nlvae import priors
  >>> prior = priors.pendulum(dt=0.1)
  >>> gmm = priors.linearize(prior, jnp.ones((2, 1)), jnp.full((2, 1), 0.01), num_components=16)
  >>> gmm.log_weights.shape, gmm.means.shape, gmm.covs.shape
  ((16,), (16, 1), (16, 1, 1))
  """
  chex.assert_shape([history_mean, history_var], (prior.order, prior.latent_dim))
  history = gaussians.diag_gaussian(history_mean.reshape(-1), history_var.reshape(-1))
  return pushforward(prior, history, num_components=num_components, method=method, key=key,
                     bandwidth=bandwidth)


# ----------------------------------------------------------------------------------------------
# KL between a factorised posterior over a clip and the prior.
# ----------------------------------------------------------------------------------------------


@_jit("order")
def history_windows(x: jax.Array, order: int) -> jax.Array:
  """Sliding windows of the P previous frames: [T, ...] -> [T - P, P, ...] (window t ends at t-1)."""
  num_frames = x.shape[0]
  return jnp.stack([x[i:num_frames - order + i] for i in range(order)], axis=1)


def _missing_key(what: str) -> ValueError:
  return ValueError(f"{what} needs a PRNG key, e.g. key=jax.random.key(0)")


@_jit("estimator", "num_components", "num_samples", "method")
def sequence_kl(prior: ANMPrior, posterior_mean: jax.Array, posterior_var: jax.Array,
                key: jax.Array | None = None, *, estimator: str = "mixture",
                num_components: int = 1, num_samples: int = 1, method: str = "auto",
                bandwidth: float | jax.Array | None = None) -> jax.Array:
  """Per-frame KL terms between a factorised Gaussian posterior q(z_1..z_T) and the prior.

  Frames t <= P: analytic KL(q_t || N(init_mean, init_scale^2)).
  Frames t > P, estimator
    "mixture"    (the seed's): Monte Carlo KL(q_t || p_t), p_t = `linearize` of the posterior of
                 the history (K = num_components, method, bandwidth), S = num_samples draws of z_t
                 ~ q_t.
    "sequential" (exact ELBO term): E_{h ~ q(h)} KL(q_t || p(z_t | h)), inner KL analytic for
                 Gaussian noise, analytic cross-entropy minus entropy for Laplace noise, outer
                 expectation with S = num_samples draws of h (num_components, method and
                 bandwidth unused).
  posterior_mean, posterior_var: [T, D]. key: needed only when some frame t > P exists (an
  order-0 prior needs none). Returns [T], in the dtype of the posterior. Vmap over a batch of
  clips outside. Jit-compiled, static: estimator, num_components, num_samples, method.
  """
  chex.assert_rank([posterior_mean, posterior_var], 2)
  chex.assert_equal_shape([posterior_mean, posterior_var])
  if estimator not in ESTIMATORS:
    raise ValueError(f"estimator must be one of {ESTIMATORS}, got {estimator!r}")
  num_frames, order = posterior_mean.shape[0], prior.order
  num_initial = order if order > 0 else num_frames
  if num_frames < num_initial:
    raise ValueError(f"clips need at least {num_initial} frames for an order-{order} prior")
  initial_kl = kl.diag_gaussian_kl(posterior_mean[:num_initial], posterior_var[:num_initial],
                                   prior.init_mean, prior.init_scale**2)
  if num_initial == num_frames:
    return initial_kl.astype(posterior_mean.dtype)
  if key is None:
    raise _missing_key(f"sequence_kl(estimator={estimator!r}) on frames after the first "
                       f"{order} (its Monte Carlo draws)")

  windows_mean = history_windows(posterior_mean, order)
  windows_var = history_windows(posterior_var, order)
  keys = jax.random.split(key, num_frames - order)

  if estimator == "mixture":
    if prior.noise != "gaussian":
      raise ValueError(f"the mixture estimator needs Gaussian noise; prior '{prior.name}' has "
                       f"{prior.noise} noise: use estimator='sequential'")

    def frame_kl(key, hist_mean, hist_var, q_mean, q_var):
      key_split, key_mc = jax.random.split(key)
      prior_gmm = linearize(prior, hist_mean, hist_var, num_components=num_components,
                            method=method, key=key_split, bandwidth=bandwidth)
      posterior = gaussians.as_mixture(gaussians.diag_gaussian(q_mean, q_var))
      return kl.mixture_kl(key_mc, posterior, prior_gmm, num_samples)
  else:

    def frame_kl(key, hist_mean, hist_var, q_mean, q_var):
      eps = jax.random.normal(key, (num_samples,) + hist_mean.shape, hist_mean.dtype)
      predicted = prior.predict(hist_mean + jnp.sqrt(hist_var) * eps)  # [S, D]
      if prior.noise == "gaussian":
        return jnp.mean(kl.diag_gaussian_kl(q_mean, q_var, predicted, prior.noise_variance()))
      cross_entropy = kl.gaussian_laplace_cross_entropy(q_mean, jnp.sqrt(q_var), predicted,
                                                        1.0 / prior.noise_scale)
      return jnp.mean(jnp.sum(cross_entropy, axis=-1)) - kl.diag_gaussian_entropy(q_var)

  transition_kl = jax.vmap(frame_kl)(keys, windows_mean, windows_var, posterior_mean[order:],
                                     posterior_var[order:])
  return jnp.concatenate([initial_kl, transition_kl]).astype(posterior_mean.dtype)


# ----------------------------------------------------------------------------------------------
# Rollouts, for interventions and counterfactuals.
# ----------------------------------------------------------------------------------------------


class Rollout(NamedTuple):
  """A prior rolled forward from an initial history.

  mean: [P + N, D] the noise-free trajectory (initial history, then N steps of f).
  mixture: the propagated marginal p(z_t) of every frame as a GMM with batch axis [P + N]:
    log_weights [P + N, K], means [P + N, K, D], covs [P + N, K, D, D] (extended-Kalman
    prediction of each component), so `gaussians.mixture_log_prob(x [P + N, D], mixture)` is
    [P + N].
  samples: [S, P + N, D] trajectories with noise, or None when num_samples = 0.
  """
  mean: jax.Array
  mixture: GaussianMixture
  samples: jax.Array | None


def _step_state(prior: ANMPrior, state: jax.Array) -> jax.Array:
  """Shifts the flattened history [n] by one frame, appending f(history)."""
  history = state.reshape(prior.order, prior.latent_dim)
  return jnp.concatenate([state[prior.latent_dim:], prior.predict(history)])


def _sample_noise(prior: ANMPrior, key: jax.Array, shape, dtype) -> jax.Array:
  if prior.noise == "laplace":
    return prior.noise_scale * jax.random.laplace(key, shape, dtype)
  return prior.noise_scale * jax.random.normal(key, shape, dtype)


@_jit("num_steps", "num_components", "num_samples", "method")
def rollout(prior: ANMPrior, initial_history: jax.Array, num_steps: int, *,
            history_var: jax.Array | None = None, num_components: int = 1,
            key: jax.Array | None = None, num_samples: int = 0,
            method: str = "auto") -> Rollout:
  """Rolls the prior forward N = num_steps frames from an initial history [P, D].

  history_var [P, D] is the uncertainty of the initial history (default: the prior's noise
  variance in every frame, a history known up to the transition noise, so that every frame's
  mixture has a proper density; pass zeros for an exactly known one). It is split into
  num_components components (`split_history` with `method`; "random" is not offered here) and
  propagated by linearisation (K = 1: extended Kalman). key: needed only for num_samples > 0
  noisy trajectories. To intervene, pass `prior.with_params(...)` and/or a modified initial
  history. Jit-compiled, static: num_steps, num_components, num_samples, method.
  """
  order, dim = prior.order, prior.latent_dim
  if order == 0:
    raise ValueError("rollout needs a prior of order >= 1")
  if method == "random":
    raise ValueError("rollout splits with method='auto', 'directional' or 'quasi'")
  chex.assert_shape(initial_history, (order, dim))
  dtype = initial_history.dtype
  if history_var is None:
    history_var = jnp.broadcast_to(prior.noise_variance().astype(dtype), initial_history.shape)
  chex.assert_shape(history_var, (order, dim))
  n = order * dim
  start = gaussians.diag_gaussian(initial_history.reshape(-1), history_var.reshape(-1))
  if num_components > 1:
    start = Gaussian(start.mean, start.cov + 1e-12 * jnp.eye(n, dtype=dtype))
  # The history frames are themselves frames of the rollout: their marginals must be smooth, so
  # a directional split keeps its widest components (grid_width) rather than narrowing them
  # for the next step's pushforward.
  components = split_history(prior, start, num_components, method=method, adapt_bandwidth=False)
  process_noise = jnp.zeros((n, n), dtype).at[n - dim:, n - dim:].set(
      jnp.diag(prior.noise_variance()).astype(dtype))

  def ekf_step(carry, _):
    mean, cov = carry
    jac = jax.jacfwd(functools.partial(_step_state, prior))(mean)
    mean = _step_state(prior, mean)
    cov = jac @ cov @ jac.T + process_noise
    return (mean, cov), (mean[n - dim:], cov[n - dim:, n - dim:])

  def propagate(mean, cov):
    _, (means, covs) = jax.lax.scan(ekf_step, (mean, cov), None, length=num_steps)
    initial_means = mean.reshape(order, dim)
    initial_covs = jax.vmap(lambda i: jax.lax.dynamic_slice(cov, (i * dim, i * dim),
                                                            (dim, dim)))(jnp.arange(order))
    return (jnp.concatenate([initial_means, means]), jnp.concatenate([initial_covs, covs]))

  means, covs = jax.vmap(propagate)(components.means, components.covs)  # [K, P + N, D(, D)]
  log_weights = jnp.broadcast_to(components.log_weights, (order + num_steps, num_components))
  mixture = GaussianMixture(log_weights, jnp.swapaxes(means, 0, 1), jnp.swapaxes(covs, 0, 1))

  def deterministic_step(state, _):
    state = _step_state(prior, state)
    return state, state[n - dim:]

  _, trajectory = jax.lax.scan(deterministic_step, initial_history.reshape(-1), None,
                               length=num_steps)
  mean = jnp.concatenate([initial_history, trajectory])

  samples = None
  if num_samples > 0:
    if key is None:
      raise _missing_key("rollout with num_samples > 0 (its noisy trajectories)")

    def sample_path(key):
      key_init, key_steps = jax.random.split(key)
      state = (initial_history + jnp.sqrt(history_var)
               * jax.random.normal(key_init, initial_history.shape, dtype)).reshape(-1)

      def noisy_step(state, step_key):
        next_z = prior.predict(state.reshape(order, dim)) + _sample_noise(prior, step_key, (dim,),
                                                                          dtype)
        return jnp.concatenate([state[dim:], next_z]), next_z

      _, path = jax.lax.scan(noisy_step, state, jax.random.split(key_steps, num_steps))
      return jnp.concatenate([state.reshape(order, dim), path])

    samples = jax.vmap(sample_path)(jax.random.split(key, num_samples))
  return Rollout(mean, mixture, samples)
