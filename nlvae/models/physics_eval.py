"""Evaluation of the physics VAE: learned latents vs truth, interventions, figures and videos.

eval.json keys (all floats unless noted):
  latent/abs_pearson_r      |Pearson r| between the physical latent and the true state, all frames
                            of the held-out clips (pulsar: |circular correlation| of the phase)
  latent/circular_correlation          pulsar: |circular correlation| of the inferred phase and the
                            true phase: the phase smoothed through the prior from the clip's encoded
                            brightness (priors.pulsar_smoothed_phase)
  latent/encoder_circular_correlation  pulsar: the same for the encoder's own u (7-frame window)
  latent/brightness_abs_pearson_r      pulsar: |Pearson r| of the brightness latent and the truth
  latent/r2                 R^2 of the affine fit true ~ a * latent + b
  latent/slope              its slope a (true units per latent unit; +1 where the prior fixes the
                            scale and sign: pendulum, falling)
  latent/angle_error_rad    pendulum only: RMSE of +-latent against the true angle (no fit: the
                            prior fixes scale and zero), the better sign
  latent/posterior_var_ratio  mean posterior variance over the variance of the posterior means,
                            held-out frames, the most informative physical latent
                            (posterior_var_ratio): far below 1 when it tells frames apart; 1 or
                            more when no physical latent carries anything about them (a collapsed
                            posterior: the run prints a warning line, truth or not; the pulsar's
                            u alone may collapse, its phase comes through the brightness)
  latent/physical_scale     with model.calibrate_scale: physical units per latent unit that the
                            physics pins (physical_scale; falling: free_fall_map's slope)
  latent/physical_map       (a list) falling: [centre, c_1, c_2, c_3] of the height's map
                            x = sum_k c_k (z - centre)^k that free fall pins (free_fall_map)
  latent/inferred_abs_pearson_r, latent/inferred_r2, latent/inferred_slope   falling: the same
                            scores for the height inferred through the prior (free_fall_smoothed:
                            each clip's free fall fitted robustly to its mapped latent)
  params/<name>, params/<name>_true   learned physical parameters and the truth (mean over clips)
  params/<name>_from_videos  user video with model.calibrate_scale (pendulum, spring): a learned
                            constant re-fitted to the whole training videos' latents by output
                            error at the calibrated scale (refit_constants)
  params/noise_scale        the learned process-noise scale (with model.prior.learn_noise_scale)
  intervention/<name>/pixel_mse_counterfactual   MSE of the model's counterfactual video vs the true
                                                 re-simulated one (pixels in [0, 1])
  intervention/<name>/pixel_mse_unintervened     MSE of the unintervened model rollout vs the same
  intervention/<name>/latent_rmse_counterfactual RMSE (true units, through the affine fit; pulsar:
                                                 the phase error in rad, wrapped) of the model's
                                                 counterfactual latent trajectory vs truth
  intervention/<name>/latent_rmse_unintervened   the same for the unintervened rollout
  intervention/<name>/latent_rms_change          user video (no true counterfactual): RMS change
                                                 of the rollout's latent (true units where there is
                                                 truth) made by the intervention
Figures: figures/latent_space.png, figures/latent_trajectories.png, figures/training_curves.png,
figures/reconstructions.png (in colour for RGB).
Videos: videos/<intervention>.gif, labelled: original | model counterfactual | true counterfactual
(procedural data; user video: original | model counterfactual).
"""
from __future__ import annotations

import dataclasses
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from data import physics, video
from nlvae import evaluation, priors


def profile_params(profile) -> dict:
  """A pulse-profile preset name ("optical", "1418MHz") or dict -> prior pulse parameters."""
  if isinstance(profile, str):
    if profile not in physics.PULSE_PROFILES:
      raise ValueError(f"unknown pulse profile {profile!r}; valid: {sorted(physics.PULSE_PROFILES)}")
    profile = physics.PULSE_PROFILES[profile]
  return {k: float(v) for k, v in dict(profile).items() if k in priors.PULSE_PARAMS}


def circular_correlation(a: np.ndarray, b: np.ndarray) -> float:
  """Jammalamadaka-SenGupta circular correlation of two angle samples (radians)."""
  mean_a = np.angle(np.mean(np.exp(1j * a)))
  mean_b = np.angle(np.mean(np.exp(1j * b)))
  sa, sb = np.sin(a - mean_a), np.sin(b - mean_b)
  return float(np.sum(sa * sb) / np.sqrt(np.sum(sa**2) * np.sum(sb**2)))


def _encode_all(model, params, frames: np.ndarray, batch: int = 64):
  """uint8 frames [N, T, H, W, C] -> posterior means and log-variances [N, T, D]."""
  encode = jax.jit(lambda p, f: model.encode(p, video.to_float(f)))
  return evaluation.chunked_apply(lambda f: encode(params, f), frames, batch)


def posterior_var_ratio(means: np.ndarray, log_vars: np.ndarray) -> float:
  """Posterior means and log-variances [N, T, D] -> min over d of mean(var_d) / var(mean_d).

  An encoder that tells frames apart has posterior variances far below the spread of its means
  (about 1e-4 on our renders); a collapsed one (the decoder ignores z) has them at or above it."""
  spread = np.var(means.reshape(-1, means.shape[-1]), axis=0)
  variance = np.mean(np.exp(log_vars.reshape(-1, log_vars.shape[-1])), axis=0)
  return float(np.min(variance / np.maximum(spread, np.finfo(np.float32).tiny)))


COLLAPSE_WARNING = ("warning: the physical latent carries nothing about the frames (posterior "
                    "variance {ratio:.3g}x the spread of its means: a collapsed posterior); "
                    "its scores, figures and counterfactuals are meaningless: retrain with "
                    "another --config.seed (and, with the mixture estimator, try :sequential)")


def pulsar_inferred_latents(prior: priors.ANMPrior, latent: np.ndarray):
  """Encoded pulsar latents [N, T, 3] with u replaced by the phase smoothed through the prior from
  each clip's brightness latent (priors.pulsar_smoothed_phase): returns (cos, sin, brightness)
  [N, T, 3] and the map from the prior's brightness to the latent's, scale [N] and offset [N]."""
  phase, scale, offset = map(np.asarray, jax.jit(jax.vmap(
      lambda b: priors.pulsar_smoothed_phase(b, prior.params)))(jnp.asarray(latent[..., 2])))
  return np.stack([np.cos(phase), np.sin(phase), latent[..., 2]], axis=-1), (scale, offset)


def latent_scores(system: str, latent: np.ndarray, truth: np.ndarray) -> tuple[dict, tuple]:
  """Scores of the physical latent [N, T, Dp] against the true state [N, T]; and the affine map.
  Pulsar: latent [N, T, 3] (u_x, u_y, brightness), truth the phase [N, T]."""
  if system == "pulsar":
    phase = np.arctan2(latent[..., 1], latent[..., 0]).ravel()
    corr = abs(circular_correlation(phase, truth.ravel()))
    return {"latent/abs_pearson_r": corr, "latent/circular_correlation": corr}, (1.0, 0.0)
  x, y = latent[..., -1].ravel(), truth.ravel()
  r = float(np.corrcoef(x, y)[0, 1])
  slope, intercept = np.polyfit(x, y, 1)
  residual = y - (slope * x + intercept)
  scores = {"latent/abs_pearson_r": abs(r), "latent/r2": float(1 - residual.var() / y.var()),
            "latent/slope": float(slope)}
  if system == "pendulum":
    scores["latent/angle_error_rad"] = float(min(np.sqrt(np.mean((s * x - y)**2)) for s in (1, -1)))
  return scores, (float(slope), float(intercept))


def _prior_intervention(model, prior: priors.ANMPrior, spec: dict) -> tuple[priors.ANMPrior, float]:
  """Maps a data.physics intervention to (intervened prior, factor scaling the initial history)."""
  overrides, scale = {}, 1.0
  for name, value in spec.items():
    if name == "amplitude_scale":
      scale = float(value)
    elif name == "period":
      overrides["omega"] = 2 * np.pi / float(value)
    elif name == "profile":
      overrides.update(profile_params(value))
    elif name == "stiffness":
      overrides["omega"] = float(np.sqrt(value))
    elif name in prior.params:
      overrides[name] = float(value)
    else:
      raise ValueError(f"intervention {name!r} has no counterpart in prior '{prior.name}' "
                       f"(parameters {sorted(prior.params)})")
  return prior.with_params(**overrides), scale


def _rollout_frames(model, params, prior, histories: np.ndarray, num_frames: int,
                    brightness_map=None, latent_map: "LatentMap | None" = None):
  """Noise-free prior rollouts from histories [N, P, Dp], decoded: (latents [N,T,Dp], frames).

  brightness_map: pulsar only, (scale [N], offset [N]) from the prior's brightness to the
  latent's (pulsar_inferred_latents), applied before decoding.
  """
  steps = num_frames - prior.order
  latents = jax.vmap(lambda h: priors.rollout(prior, h, steps).mean)(jnp.asarray(histories))
  latent_map = latent_map or LatentMap()
  decoded = jnp.asarray(latent_map.to_latent(np.asarray(latents)))  # -> the decoder's units
  if brightness_map is not None:
    scale, offset = (jnp.asarray(x)[:, None] for x in brightness_map)
    decoded = latents.at[..., 2].set(scale * latents[..., 2] + offset)
  frames = evaluation.mean_image(model, model.decode(params, decoded))
  return np.asarray(latents), np.clip(np.asarray(frames), 0.0, 1.0)


def physical_scale(prior: priors.ANMPrior, latents: np.ndarray, stride: int = 1,
                   num_scales: int = 241, predict=None) -> tuple[float, np.ndarray, np.ndarray]:
  """The latent's scale (and sign) that the prior's physics pins: argmin over a of the mean
  squared one-step residual in physical units, || a z_t - f(a z_{t-P..t-1}) ||^2 / a^2.

  The ELBO leaves the scale nearly free when the encoder is imprecise: rescaling the latent by a,
  the posterior's entropy and the noise term move together, and only the physics' nonlinearity
  (pendulum) or constant forcing (gravity) depends on a, by a small amount per frame. Pooled over
  many clips, this profile (the noise variance maximised out, with the Jacobian of the rescaling)
  pins it. A linear, unforced prior (spring) leaves it flat: then 1 is returned.

  Args:
    prior: the KL's prior (with learned parameters), stepping `stride` frames.
    latents: physical latents [N, T, Dp] of training clips.
    stride: frames per prior step (interleaved chains, as in the loss).
    num_scales: grid points of |a| in [0.05, 20], both signs.
    predict: the mean transition (default prior.predict; see shooting_predictor).
  Returns:
    (a, the grid of a [2 * num_scales], the profile cost at each).
  """
  chains = np.asarray(latents)
  if stride > 1:
    length = chains.shape[1] // stride
    chains = chains[:, :length * stride].reshape(len(chains), length, stride, -1)
    chains = np.moveaxis(chains, 2, 1).reshape(-1, length, chains.shape[-1])
  magnitudes = np.exp(np.linspace(np.log(0.05), np.log(20.0), num_scales))
  scales = np.concatenate([-magnitudes[::-1], magnitudes]).astype(np.float32)

  @jax.jit
  def cost(a):
    z = a * jnp.asarray(chains)
    windows = jax.vmap(lambda x: priors.history_windows(x, prior.order))(z)
    residual = z[:, prior.order:] - (predict or prior.predict)(windows)
    return jnp.mean(residual**2) / a**2

  costs = np.array([float(cost(a)) for a in scales])
  if costs.max() - costs.min() <= 1e-3 * costs.min():  # flat: the prior does not fix the scale
    return 1.0, scales, costs
  best = int(np.argmin(costs))  # refine between the neighbours of the best grid point
  low, high = scales[max(best - 1, 0)], scales[min(best + 1, len(scales) - 1)]
  fine = np.linspace(low, high, 41, dtype=np.float32)
  fine = fine[np.abs(fine) > 0]
  fine_costs = np.array([float(cost(a)) for a in fine])
  return float(fine[np.argmin(fine_costs)]), scales, costs


def rk4_step(acceleration, params: dict, h: float):
  """One classical Runge-Kutta step of x'' = acceleration(x, x', params):
  (x, v) -> (x, v) after h seconds."""
  def step(state):
    x, u = state
    f = lambda x, u: (u, acceleration(x, u, params))  # noqa: E731
    k1 = f(x, u)
    k2 = f(x + 0.5 * h * k1[0], u + 0.5 * h * k1[1])
    k3 = f(x + 0.5 * h * k2[0], u + 0.5 * h * k2[1])
    k4 = f(x + h * k3[0], u + h * k3[1])
    return (x + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0]),
            u + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1]))
  return step


def shooting_predictor(prior: priors.ANMPrior, step: float, substeps: int = 8):
  """An accurate long-step version of a Newtonian prior's mean transition: the trajectory through
  z_{t-2} and z_{t-1} (`step` seconds apart), found by shooting (RK4 with `substeps` substeps and
  two Newton iterations on the velocity at t-1), continued for `step`. The finite-difference step
  of the prior itself is 4% too fast at w dt = 0.9, which would bias the scale.

  Returns predict(history [..., 2, D]) -> [..., D].
  """
  acceleration = priors.ACCELERATIONS[prior.name]
  params = prior.params

  def integrate(z, v, duration):
    step = rk4_step(acceleration, params, duration / substeps)
    return jax.lax.scan(lambda c, _: (step(c), None), (z, v), None, length=substeps)[0][0]

  def one(history):
    before, current = history[0], history[1]
    velocity = (current - before) / step + 0.5 * step * acceleration(current, 0.0 * current,
                                                                     params)
    for _ in range(2):  # Newton on v: integrating back from (current, v) must reach `before`
      miss = integrate(current, velocity, -step) - before
      slope = jax.jacfwd(lambda u: integrate(current, u, -step))(velocity)
      velocity = velocity - jnp.linalg.solve(slope, miss)
    return integrate(current, velocity, step)

  def predict(history):
    flat = history.reshape((-1,) + history.shape[-2:])
    return jax.vmap(one)(flat).reshape(history.shape[:-2] + history.shape[-1:])

  return predict


def tukey_least_squares(design: np.ndarray, target: np.ndarray, iterations: int = 10,
                        tuning: float = 4.685, start: np.ndarray | None = None
                        ) -> tuple[np.ndarray, np.ndarray]:
  """Least squares made robust by iteratively reweighting with Tukey's biweight (residuals beyond
  `tuning` robust standard deviations, 1.4826 x the median absolute residual, get weight 0).

  design [M, K], target [M], start: coefficients [K] to begin from (default: least squares) ->
  (coefficients [K], final weights [M]).
  """
  weights, coefficients = np.ones(len(target)), start
  for _ in range(iterations):
    if coefficients is None:
      root = np.sqrt(weights)
      coefficients = np.linalg.lstsq(design * root[:, None], target * root, rcond=None)[0]
    residual = target - design @ coefficients
    spread = 1.4826 * np.median(np.abs(residual)) + 1e-9 * (np.abs(target).max() + 1e-30)
    u = residual / (tuning * spread)
    weights, coefficients = np.where(np.abs(u) < 1, (1 - u**2)**2, 0.0), None
  root = np.sqrt(weights)
  coefficients = np.linalg.lstsq(design * root[:, None], target * root, rcond=None)[0]
  return coefficients, weights


def _free_fall_design(num_clips: int, num_frames: int, dt: float) -> np.ndarray:
  """Columns of each clip's release height and velocity: [N * T, 2 N] (block diagonal)."""
  t = np.arange(num_frames) * dt
  blocks = np.zeros((num_clips, num_frames, num_clips, 2))
  blocks[np.arange(num_clips), :, np.arange(num_clips), 0] = 1.0
  blocks[np.arange(num_clips), :, np.arange(num_clips), 1] = t
  return blocks.reshape(num_clips * num_frames, 2 * num_clips)


@dataclasses.dataclass(frozen=True)
class LatentMap:
  """Physical units from the decoder's latent units: x = sum_k coefficients[k-1] (z - centre)^k
  (the offset is left to the affine fit of the scores; degree 1 is the scale of physical_scale).

  A map of higher degree is fitted where it is monotone: on [low, high], the fitted latents'
  range widened by half of it either way; it is inverted there by interpolation (clamped beyond)
  to decode the prior's physical rollouts.
  """
  coefficients: tuple[float, ...] = (1.0,)
  centre: float = 0.0
  low: float = -1.0
  high: float = 1.0

  def to_physical(self, z: np.ndarray) -> np.ndarray:
    u = np.asarray(z, np.float64) - self.centre
    return sum(c * u**(k + 1) for k, c in enumerate(self.coefficients)).astype(np.float32)

  def to_latent(self, x: np.ndarray) -> np.ndarray:
    if len(self.coefficients) == 1:
      return (np.asarray(x, np.float64) / self.coefficients[0] + self.centre).astype(np.float32)
    grid = np.linspace(self.low, self.high, 1025)
    values = self.to_physical(grid).astype(np.float64)
    if values[-1] < values[0]:
      grid, values = grid[::-1], values[::-1]
    return np.interp(np.asarray(x, np.float64), values, grid).astype(np.float32)

  @property
  def scale(self) -> float:
    """d(physical) / d(latent) at the centre."""
    return float(self.coefficients[0])

  def is_monotone(self) -> bool:
    slopes = np.diff(self.to_physical(np.linspace(self.low, self.high, 1025)).astype(np.float64))
    return bool(np.all(slopes > 0) or np.all(slopes < 0))


FREE_FALL_MAP_DEGREE = 3  # enough for a perspective camera's projective map of the height


def free_fall_map(latents: np.ndarray, dt: float, g: float,
                  degree: int = FREE_FALL_MAP_DEGREE) -> tuple[LatentMap, np.ndarray]:
  """The map from a falling object's latent to its height that free fall pins: the polynomial
  phi (no constant) for which phi(z_it) = h_i + u_i t - g t^2 / 2 holds best over the clips, with
  each clip's release height h_i and velocity u_i fitted too. Linear least squares, robust to
  frames where the object is hidden or misread (tukey_least_squares).

  The ELBO leaves the latent's coordinate nearly free at the encoder's precision (physical_scale
  explains the scale); with perspective, shading and a keypoint encoder, the learned coordinate
  is a smooth warp of the height as well (a linear fit leaves curved residuals of 0.1-0.5 m). The
  constant acceleration pins the whole map, not only its slope. Falls back to degree 1 where the
  fit is not monotone on the latents' range.

  Args:
    latents: [N, T] (the decoder's units) of training clips; dt: seconds per frame; g: m/s^2.
  Returns:
    (the map, the weights [N, T] of the frames in the fit).
  """
  z = np.asarray(latents, np.float64)
  num_clips, num_frames = z.shape
  t = np.arange(num_frames) * dt
  centre, span = float(z.mean()), float(z.max() - z.min())
  clips = _free_fall_design(num_clips, num_frames, dt)
  target = np.tile(-0.5 * g * t**2, num_clips)
  for d in range(degree, 0, -1):
    powers = np.stack([(z.ravel() - centre)**(k + 1) for k in range(d)], axis=1)
    solution, weights = tukey_least_squares(np.concatenate([powers, -clips], axis=1), target)
    latent_map = LatentMap(tuple(float(c) for c in solution[:d]), centre,
                           float(z.min()) - 0.5 * span, float(z.max()) + 0.5 * span)
    if latent_map.is_monotone():
      return latent_map, weights.reshape(num_clips, num_frames)
  raise AssertionError("unreachable: a degree-1 map is monotone")


def free_fall_smoothed(heights: np.ndarray, dt: float, g: float) -> np.ndarray:
  """The heights [N, T] inferred through the prior: each clip's free-fall trajectory
  h + u t - g t^2 / 2 fitted robustly to it (tukey_least_squares from a least-median-of-squares
  start, per clip), so frames where the object was hidden or misread, up to half of a clip's,
  take the height the other frames imply."""
  heights = np.asarray(heights, np.float64)
  t = np.arange(heights.shape[1]) * dt
  design = np.stack([np.ones_like(t), t], axis=1)
  first, second = np.triu_indices(len(t), 1)
  smoothed = []
  for h in heights + 0.5 * g * t**2:  # a line in t, to be fitted through the frames seen
    # Least median of squares over the lines through every pair of frames: a start that a
    # minority of misread frames (up to half) cannot pull away.
    slopes = (h[second] - h[first]) / (t[second] - t[first])
    lines = np.stack([h[first] - slopes * t[first], slopes], axis=1)  # [pairs, 2]
    start = lines[np.argmin(np.median(np.abs(h[None] - lines @ design.T), axis=1))]
    smoothed.append(design @ tukey_least_squares(design, h, start=start)[0] - 0.5 * g * t**2)
  return np.asarray(smoothed, np.float32)


def video_series(latents: np.ndarray, source: np.ndarray,
                 start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Whole-video latent series from clips: latents [N, T, D] of clips cut from videos `source`
  [N] at frames `start` [N] -> (series [V, F, D], mask [V, F]), overlapping clips averaged, V
  the videos with clips, F the longest video's covered frames; mask marks the covered frames."""
  latents = np.asarray(latents, np.float64)
  videos, index = np.unique(np.asarray(source), return_inverse=True)
  num_frames = latents.shape[1]
  length = int(np.max(np.asarray(start) + num_frames))
  sums = np.zeros((len(videos), length, latents.shape[2]))
  counts = np.zeros((len(videos), length))
  for clip, (video, first) in enumerate(zip(index, np.asarray(start))):
    sums[video, first:first + num_frames] += latents[clip]
    counts[video, first:first + num_frames] += 1
  return (sums / np.maximum(counts, 1)[..., None]).astype(np.float32), counts > 0


def refit_constants(prior: priors.ANMPrior, series: np.ndarray, mask: np.ndarray, dt: float,
                    scale: float, fit: tuple[str, ...], substeps: int = 2,
                    search: float = 2.0) -> dict:
  """The prior's constants `fit` re-fitted to whole videos by output error: z_t = x(t) / scale +
  e_t, x solving the prior's Newtonian ODE (RK4) from each video's initial state (Gauss-Newton,
  its window doubling from 16 frames so that the phase is followed), each constant by golden-
  section search in log space over a factor `search` either way of the prior's value.

  A constant learned in training is biased by what the encoder's latent is: a smooth warp of the
  true coordinate (a tan(theta / 2)-like one for the perspective pendulum) that the one-step
  prior absorbs, and noisy posterior samples in a one-step fit (errors in variables). Over whole
  videos the period is fixed by the swing itself, and warping the coordinate does not change it;
  only the amplitude comes from `scale`.

  Args:
    prior: a Newtonian prior (spring, pendulum) with the learned constants, per frame.
    series, mask: video_series of the training latents ([V, F, D], [V, F]).
    dt: seconds per frame; scale: physical units per latent unit (the calibration's).
  Returns:
    {name: fitted value}.
  """
  acceleration = priors.ACCELERATIONS[prior.name]
  z = jnp.asarray(series, jnp.float32)
  weights = jnp.asarray(mask, jnp.float32)
  num_frames = z.shape[1]
  h = dt / substeps
  windows = [16 * 2**k for k in range(max(1, int(np.ceil(np.log2(num_frames / 16)))) + 1)]

  def trajectory(state, params):  # state [2, D] (position, velocity) -> x [F, D]
    step = rk4_step(acceleration, params, h)

    def frame(carry, _):
      carry = jax.lax.scan(lambda c, _: (step(c), None), carry, None, length=substeps)[0]
      return carry, carry[0]

    _, xs = jax.lax.scan(frame, (state[0], state[1]), None, length=num_frames - 1)
    return jnp.concatenate([state[0][None], xs])

  def video_cost(series, weight, params):
    frames = jnp.arange(num_frames)

    def residual(state, window):
      w = weight * (frames < window)
      return ((series - trajectory(state, params) / scale) * jnp.sqrt(w)[:, None]).ravel()

    x = scale * series
    state = jnp.stack([x[0], (-3 * x[0] + 4 * x[1] - x[2]) / (2 * dt)])
    for window in windows:
      for _ in range(4):
        r, jac = residual(state, window), jax.jacfwd(residual)(state, window)
        jac = jac.reshape(-1, state.size)
        normal = jac.T @ jac
        step = jnp.linalg.solve(normal + 1e-6 * jnp.trace(normal) * jnp.eye(state.size),
                                jac.T @ r).reshape(state.shape)
        moved = state - step
        better = jnp.sum(residual(moved, window)**2) < jnp.sum(r**2)
        state = jnp.where(better, moved, state)
    return jnp.sum(residual(state, num_frames)**2)

  @jax.jit
  def cost(log_values):
    params = prior.with_params(**{n: jnp.exp(v) for n, v in zip(fit, log_values)}).params
    return jnp.sum(jax.vmap(lambda s, w: video_cost(s, w, params))(z, weights))

  values = np.log([float(prior.params[name]) for name in fit])
  ratio = (np.sqrt(5.0) - 1) / 2
  for i in range(len(fit)):  # golden section on each constant in turn
    def at(v):
      trial = values.copy()
      trial[i] = v
      return float(cost(jnp.asarray(trial)))
    low, high = values[i] - np.log(search), values[i] + np.log(search)
    c, d = high - ratio * (high - low), low + ratio * (high - low)
    fc, fd = at(c), at(d)
    for _ in range(24):
      if fc < fd:
        high, d, fd = d, c, fc
        c = high - ratio * (high - low)
        fc = at(c)
      else:
        low, c, fc = c, d, fd
        d = low + ratio * (high - low)
        fd = at(d)
    values[i] = c if fc < fd else d
  return {name: float(np.exp(v)) for name, v in zip(fit, values)}


CALIBRATION_TIME_STEP = 0.3  # seconds per prior step of the scale's profile


def calibration_stride(dt: float, num_frames: int, order: int) -> int:
  """Frames per prior step of the scale's profile: about CALIBRATION_TIME_STEP (the nonlinear or
  forced part of a step grows as its duration squared, the encoder's noise does not), keeping
  one transition per chain."""
  stride = max(1, int(round(CALIBRATION_TIME_STEP / dt)))
  while stride > 1 and num_frames // stride < order + 1:
    stride -= 1
  return stride


def check_interventions(prior: priors.ANMPrior, interventions) -> None:
  """Raises ValueError (one line) for an intervention that names no parameter of the prior."""
  for name, spec in interventions.items():
    try:
      _prior_intervention(None, prior, dict(spec))
    except ValueError as error:
      raise ValueError(f"model.interventions.{name}: {error}") from None


def _clip_subset(clips: physics.Clips, n: int) -> physics.Clips:
  return physics.Clips(**{**clips.__dict__,
                          "frames": clips.frames[:n], "latent": clips.latent[:n],
                          "states": {k: v[:n] for k, v in clips.states.items()},
                          "params": {k: v[:n] for k, v in clips.params.items()},
                          "initial": {k: v[:n] for k, v in clips.initial.items()},
                          "render_seed": clips.render_seed[:n]})


def evaluate(model, params, data, workdir, rng, num_counterfactual_clips: int = 8) -> dict:
  """Scores, counterfactuals, figures and videos; see the module docstring.

  data["info"].test_clips is the procedural Clips of the test split (re-simulated for true
  counterfactuals) or None (user video: counterfactuals are the model's alone, and the latent is
  scored only where data["test"] has a "latent" truth array).
  """
  del rng
  workdir = pathlib.Path(workdir)
  (workdir / "figures").mkdir(exist_ok=True)
  (workdir / "videos").mkdir(exist_ok=True)
  info, test = data["info"], data["test"]
  system, clips = info.system, info.test_clips
  truth = test.get("latent")
  means, log_vars = _encode_all(model, params, test["frames"])
  physical = means[..., :model.num_physical]
  var_ratio = posterior_var_ratio(physical, log_vars[..., :model.num_physical])
  if var_ratio >= 1:
    print(COLLAPSE_WARNING.format(ratio=var_ratio), flush=True)
  prior = model.current_prior(params)
  results, brightness_map, (slope, intercept) = {}, None, (1.0, 0.0)
  latent_map = LatentMap()  # physical units from latent units
  calibrate = model.config.calibrate_scale and system != "pulsar"
  free_fall = (calibrate and system == "falling" and "g" not in params["prior"]
               and float(prior.params["drag"]) == 0)
  refit_names = tuple(params["prior"]) if (calibrate and info.video is not None
                                           and system in ("pendulum", "spring")) else ()
  if calibrate:  # the training clips' latents (all of them for the refit, else 512)
    train_frames = data["train"]["frames"]
    train_means, _ = _encode_all(model, params, train_frames if refit_names else
                                 train_frames[:512])
    train_means = train_means[..., :model.num_physical]
    if free_fall:
      latent_map, _ = free_fall_map(train_means[:512, :, -1], float(info.dt),
                                    float(prior.params["g"]))
    else:
      stride = calibration_stride(float(info.dt), train_means.shape[1], prior.order)
      step_prior = model.build_prior(float(info.dt) * stride, params)
      scale, _, _ = physical_scale(step_prior, train_means[:512], stride,
                                   predict=shooting_predictor(step_prior, float(info.dt) * stride))
      latent_map = LatentMap((scale,))
    physical = latent_map.to_physical(physical)
  if system == "pulsar":  # the phase through the prior; the encoder's own u is scored as well
    encoder_physical = physical
    physical, brightness_map = pulsar_inferred_latents(prior, physical)
  if truth is not None:
    results, (slope, intercept) = latent_scores(system, physical, truth)
    if system == "pulsar":
      results["latent/encoder_circular_correlation"] = latent_scores(
          system, encoder_physical, truth)[0]["latent/circular_correlation"]
  if system == "pulsar" and clips is not None:
    results["latent/brightness_abs_pearson_r"] = abs(float(np.corrcoef(
        physical[..., 2].ravel(), clips.states["brightness"].ravel())[0, 1]))

  results["latent/posterior_var_ratio"] = var_ratio
  if calibrate:
    results["latent/physical_scale"] = latent_map.scale
    results["latent/physical_map"] = [latent_map.centre, *latent_map.coefficients]
    if truth is not None and free_fall:  # the height inferred through the prior
      inferred, _ = latent_scores(system, free_fall_smoothed(
          physical[..., -1], float(info.dt), float(prior.params["g"]))[..., None], truth)
      results.update({k.replace("latent/", "latent/inferred_"): v for k, v in inferred.items()})
  refit = {}
  if refit_names:  # learned constants, re-fitted to whole videos
    series, mask = video_series(train_means, info.video.train.source, info.video.train.start)
    refit = refit_constants(prior, series, mask, float(info.dt), latent_map.scale, refit_names)
  for name, value in params["prior"].items():
    results[f"params/{name}"] = float(value)
    if name in refit:
      results[f"params/{name}_from_videos"] = refit[name]
    if clips is not None and name in clips.params:
      results[f"params/{name}_true"] = float(np.mean(clips.params[name]))
  if "prior_log_noise_scale" in params:
    results["params/noise_scale"] = float(np.mean(prior.noise_scale))

  if info.video is not None:
    results.update({"data/dt": float(info.dt), "data/num_test_clips": len(test["frames"]),
                    "data/num_train_clips": len(data["train"]["frames"]),
                    "data/num_videos": len(info.video.videos),
                    "data/num_skipped": len(info.video.skipped)})
  n = min(num_counterfactual_clips, len(test["frames"]))
  histories = physical[:n, :prior.order]
  num_frames = test["frames"].shape[1]
  if brightness_map is not None:
    brightness_map = tuple(x[:n] for x in brightness_map)
  base_latents, base_frames = _rollout_frames(model, params, prior, histories, num_frames,
                                              brightness_map, latent_map)
  subset = _clip_subset(clips, n) if clips is not None else None

  def latent_rmse(latents, target):  # true units; the pulsar's phase error wrapped to [-pi, pi)
    if system == "pulsar":
      error = np.angle(np.exp(1j * (np.arctan2(latents[..., 1], latents[..., 0]) - target)))
    else:
      error = slope * latents[..., -1] + intercept - target
    return float(np.sqrt(np.mean(error**2)))

  first_cf = None
  originals = test["frames"][:n]
  for name, spec in model.config.interventions.items():
    spec = dict(spec)
    cf_prior, amplitude = _prior_intervention(model, prior, spec)
    cf_latents, cf_frames = _rollout_frames(model, params, cf_prior, histories * amplitude,
                                            num_frames, brightness_map, latent_map)
    key = f"intervention/{name}"
    panels = [originals, video.to_uint8(cf_frames)]
    labels = ["original", f"model: {name}"]
    if subset is not None:
      true_cf = physics.resimulate(subset, **spec)
      target = video.to_float(true_cf.frames)
      results[f"{key}/pixel_mse_counterfactual"] = float(np.mean((cf_frames - target)**2))
      results[f"{key}/pixel_mse_unintervened"] = float(np.mean((base_frames - target)**2))
      results[f"{key}/latent_rmse_counterfactual"] = latent_rmse(cf_latents, true_cf.latent)
      results[f"{key}/latent_rmse_unintervened"] = latent_rmse(base_latents, true_cf.latent)
      panels.append(true_cf.frames)
      labels.append("true")
    else:  # no true counterfactual: how far the intervention moved the model's own rollout
      results[f"{key}/latent_rms_change"] = float(np.sqrt(np.mean(
          (slope * (cf_latents - base_latents)[..., -1])**2)))
    rows = [video.labelled_side_by_side([p[i] for p in panels], labels, scale=3)
            for i in range(min(4, n))]
    evaluation.write_video(workdir / "videos" / f"{name}.gif", np.concatenate(rows, axis=1),
                           fps=min(25.0, 1.0 / float(info.dt)))
    if first_cf is None:
      first_cf = (name, cf_prior, histories * amplitude)

  _plot_latent_space(workdir / "figures" / "latent_space.png", model, prior, physical, histories,
                     first_cf, num_frames, float(info.dt))
  _plot_latent_trajectories(workdir / "figures" / "latent_trajectories.png", physical,
                            truth, (slope, intercept), float(info.dt),
                            physics.LATENTS[system])
  evaluation.plot_training_curves(workdir)
  recon = np.asarray(evaluation.mean_image(model, model.decode(params,
                                                               jnp.asarray(means[:1]))))[0]
  evaluation.plot_reconstructions(workdir / "figures" / "reconstructions.png", test["frames"][0],
                                  recon)
  return results


def _plot_latent_trajectories(path, physical, truth, affine, dt, state, num_clips=4):
  """The physical latent of a few held-out clips against time (mapped to true units through the
  affine fit, beside the truth) when there is truth; the raw latent otherwise."""
  plt = evaluation.pyplot()
  slope, intercept = affine
  num = min(num_clips, len(physical))
  time = np.arange(physical.shape[1]) * dt
  fig, axes = plt.subplots(1, num, figsize=(3.2 * num, 2.8), squeeze=False)
  for i, ax in enumerate(axes[0]):
    if truth is not None:
      ax.plot(time, slope * physical[i, :, -1] + intercept, label="latent (affine fit)")
      ax.plot(time, truth[i], "--", label=f"true {state}")
    else:
      ax.plot(time, physical[i, :, -1], label="latent")
    ax.set_xlabel("time (s)")
    ax.set_title(f"held-out clip {i}", fontsize=9)
  axes[0, 0].set_ylabel(state if truth is not None else "latent")
  axes[0, 0].legend(fontsize=7)
  evaluation.save_figure(fig, path)


def _plot_latent_space(path, model, prior, physical, histories, intervened, num_frames, dt):
  """The seed's Figure 2: prior samples (linearisation rollouts), posterior samples (encoded
  frames) and the intervened prior, in the phase plane (latent, finite-difference velocity)."""
  plt = evaluation.pyplot()

  def phase_plane(z):  # z [..., T, Dp] -> (position, velocity) flattened
    if prior.name == "pulsar":
      return z[..., 0].ravel(), z[..., 1].ravel()
    return z[..., 1:, -1].ravel(), (np.diff(z[..., -1], axis=-1) / dt).ravel()

  key = jax.random.PRNGKey(0)
  steps = num_frames - prior.order
  sample = lambda p, h: np.asarray(priors.rollout(p, jnp.asarray(h), steps, key=key,
                                                  num_samples=20).samples)
  fig, ax = plt.subplots(figsize=(5, 5))
  ax.scatter(*phase_plane(sample(prior, histories[0])), s=3, c="tab:blue", alpha=0.4,
             label="prior samples")
  ax.scatter(*phase_plane(physical[:64]), s=3, c="tab:red", alpha=0.4,
             label="posterior (encoded frames)")
  if intervened is not None:
    name, intervened_prior, intervened_history = intervened
    ax.scatter(*phase_plane(sample(intervened_prior, intervened_history[0])), s=3, c="tab:green",
               alpha=0.4, label=f"intervened prior ({name})")
  ax.set_xlabel("latent" if prior.name != "pulsar" else "u_x")
  ax.set_ylabel("latent velocity (1/s)" if prior.name != "pulsar" else "u_y")
  ax.legend(loc="upper right", fontsize=8)
  ax.set_title(f"{prior.name}: latent space")
  evaluation.save_figure(fig, path, dpi=120)
