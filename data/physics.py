"""Procedural physics videos with ground truth: spring, pendulum, falling object and pulsar.

`generate(system, num_clips, seed, **options)` draws physical parameters and initial
conditions per clip from the configured ranges, integrates the true continuous dynamics
in float64 and renders anti-aliased uint8 frames (data/render.py). `resimulate(clips,
**intervention)` re-runs the same initial conditions and render seeds under changed
physics: the ground-truth counterfactual video of an intervention.

The simulators are independent of nlvae's priors: RK4 with `substeps` steps per frame
(default 16) for the spring, pendulum and falling object, the exact solution for the
pulsar's phase. All parameters and initial conditions are rounded to float32 before they
are simulated, so the stored float32 `params` and `initial` describe a clip exactly and
re-simulating them reproduces it bit for bit.

Systems (time t = frame index * dt, dt = 1 / fps; the first frame shows the initial state):
  spring    Mass on a vertical spring hanging from a ceiling. x'' = -omega^2 x - c x',
            x = displacement of the mass from equilibrium in metres, up positive (unit
            mass, so stiffness = omega^2). Frame = 1 m x 1 m (32 px/m at 32 px); the
            mass's rest centre is 0.05 m below the frame centre.
            states: position, velocity. params: omega (rad/s), damping c (1/s).
            initial: position, velocity. latent: position.
  pendulum  Bob on a rigid massless rod from a pivot at the frame centre.
            theta'' = -(g / L) sin(theta) - c theta', theta in rad from the downward
            vertical (positive = bob to the right), not wrapped. Frame = 2.5 m x 2.5 m
            (12.8 px/m at 32 px). states: angle, angular_velocity. params: g (m/s^2),
            length L (m), damping c (1/s). initial: angle, angular_velocity. latent: angle.
            Initial states lie on the undamped orbit of amplitude Theta drawn from
            amplitude_range (up to ~150 deg, where the period is ~1.7x the small-angle one).
  falling   Ball thrown or dropped above the ground. a = (0, -g) - k |v| v on (x, y)
            (quadratic drag k, 1/m). y = height of the ball's centre above the ground (m),
            x = horizontal position (0 = frame centre). Frame = 5 m x 5 m with the ground
            0.25 m above the bottom edge (6.4 px/m at 32 px). Generated clips are
            redrawn until the ball stays in the frame and above the ground for the whole
            clip. states: height, vertical_velocity, x, horizontal_velocity.
            params: g, drag. initial: height, vertical_velocity, x, horizontal_velocity.
            latent: height.
  pulsar    Rotating neutron star seen as a blinking point source (Gaussian PSF) on a
            noisy sky with faint stars. phi(t) = phi0 + omega t; brightness =
            pulse_profile(phi), a two-Gaussian pulse profile (main pulse + interpulse +
            baseline) with presets PULSE_PROFILES. Defaults: fps 216 and periods of
            30-38 ms (6.5-8.2 frames, Crab: 33.7 ms = 7.3 frames), drawn from a continuous
            range so the frame interval is not commensurate with the period.
            states: phase (rad, wrapped to [-pi, pi)), brightness. params: omega (rad/s),
            period (s), and the profile parameters (PROFILE_KEYS). initial: phase.
            latent: phase. Brightness is the instantaneous profile value (no exposure
            smearing), so the prior's b_t = profile(phi_t) holds exactly.

Options (all have defaults; see `default_options(system)`):
  common    num_frames (20), image_size (32; 8..512, 32 and 64 are the intended sizes),
            channels (1 grey or 3 RGB), fps (per system), substeps (16, RK4 steps per
            frame), sensor_noise (Gaussian std in [0, 1] intensity units; 0, pulsar 0.03),
            background ("plain" | "texture" | "room"), num_distractors (0), and the camera
            nuisances of data/camera.py (all off by default; REALISTIC_OPTIONS turns all on).
  spring    amplitude_range (0.08, 0.22) m, omega_range (4, 8) rad/s, damping_range (0, 0).
  pendulum  amplitude_range (0.3, 2.6) rad, length_range (0.5, 1.0) m, g 9.81,
            damping_range (0, 0).
  falling   height_range (3.0, 4.2) m, vertical_velocity_range (-1, 2) m/s,
            horizontal_position_range (-1.2, 1.2) m, horizontal_velocity_range (-1.5, 1.5)
            m/s, g 9.81, drag_range (0, 0) 1/m.
  pulsar    period_range (0.030, 0.038) s, profile "optical" (or "1418MHz" or a dict with
            PROFILE_KEYS), sky_level 0.05, num_stars 6.
A range (a, b) draws uniformly per clip; (a, a) fixes the value. Initial phases of the
oscillations (and the pulsar's phi0) are uniform over a cycle.

Interventions of `resimulate` (scalars or per-clip arrays [N]):
  spring    amplitude_scale (scales initial position and velocity), omega, stiffness
            (= omega^2), damping.
  pendulum  amplitude_scale (scales initial angle and angular velocity; large scales can
            send the bob over the top), g, length, damping.
  falling   amplitude_scale (scales the initial velocity, i.e. the strength of the throw;
            the release point is kept; 0 = dropped from rest), g, drag. A counterfactual
            ball may leave the frame or pass the ground line (there is no collision).
  pulsar    omega, period, profile (preset name or dict of profile parameters).
"""

import dataclasses
import math
from typing import Any

import numpy as np

from data import render

SYSTEMS = ("spring", "pendulum", "falling", "pulsar")

PROFILE_KEYS = ("baseline", "main_amplitude", "main_centre", "main_width",
                "inter_amplitude", "inter_centre", "inter_width")

# Two-Gaussian pulse profiles over rotation phase (centres and widths in radians;
# 1 cycle = 2 pi rad). Widths are Gaussian standard deviations of the wrapped phase
# difference. "optical": Crab-like optical light curve, narrow main pulse and an
# interpulse 0.4 of a cycle later at ~0.45 of its height. "1418MHz": the Crab at radio
# 1418 MHz, with a narrower main pulse, a weaker, narrower interpulse and a darker floor.
PULSE_PROFILES: dict[str, dict[str, float]] = {
    "optical": {"baseline": 0.05, "main_amplitude": 1.0, "main_centre": 0.0,
                "main_width": 0.25, "inter_amplitude": 0.45,
                "inter_centre": 0.4 * 2 * math.pi, "inter_width": 0.35},
    "1418MHz": {"baseline": 0.02, "main_amplitude": 1.0, "main_centre": 0.0,
                "main_width": 0.12, "inter_amplitude": 0.3,
                "inter_centre": 0.4 * 2 * math.pi, "inter_width": 0.16},
}

LATENTS = {"spring": "position", "pendulum": "angle", "falling": "height", "pulsar": "phase"}

INTERVENTIONS = {
    "spring": ("amplitude_scale", "damping", "omega", "stiffness"),
    "pendulum": ("amplitude_scale", "damping", "g", "length"),
    "falling": ("amplitude_scale", "drag", "g"),
    "pulsar": ("omega", "period", "profile"),
}

_COMMON_DEFAULTS = {"num_frames": 20, "image_size": 32, "channels": 1, "substeps": 16,
                    "sensor_noise": 0.0, "background": "plain", "num_distractors": 0,
                    "camera_azimuth": 0.0, "camera_elevation": 0.0, "camera_jitter": 0.0,
                    "shading": 0.0, "shadow": 0.0, "occluder": 0, "flicker": 0.0,
                    "motion_blur": 0.0, "compression_crf": 0}
# All the camera nuisances at once (data/camera.py): the "realistic" imaging of the robustness
# study, like the perspective, shaded, cluttered, compressed videos of a real camera.
REALISTIC_OPTIONS = {"camera_azimuth": 25.0, "camera_elevation": 12.0, "camera_jitter": 0.3,
                     "shading": 0.4, "shadow": 0.5, "occluder": 1, "flicker": 0.04,
                     "motion_blur": 0.3, "compression_crf": 23, "sensor_noise": 0.03,
                     "background": "room", "num_distractors": 2, "channels": 3}
_SYSTEM_DEFAULTS = {
    "spring": {"fps": 15.0, "amplitude_range": (0.08, 0.22), "omega_range": (4.0, 8.0),
               "damping_range": (0.0, 0.0)},
    "pendulum": {"fps": 12.0, "amplitude_range": (0.3, 2.6), "length_range": (0.5, 1.0),
                 "g": 9.81, "damping_range": (0.0, 0.0)},
    "falling": {"fps": 30.0, "height_range": (3.0, 4.2), "vertical_velocity_range": (-1.0, 2.0),
                "horizontal_position_range": (-1.2, 1.2),
                "horizontal_velocity_range": (-1.5, 1.5), "g": 9.81, "drag_range": (0.0, 0.0)},
    "pulsar": {"fps": 216.0, "period_range": (0.030, 0.038), "profile": "optical",
               "sensor_noise": 0.03, "sky_level": 0.05, "num_stars": 6},
}

# Ranges (lowest allowed, whether the bound is strict, highest allowed) of range options.
_INF = math.inf
_RANGE_LIMITS = {
    "amplitude_range": {"spring": (0.0, False, 0.3), "pendulum": (0.0, False, 3.1)},
    "omega_range": (0.0, True, _INF),
    "damping_range": (0.0, False, _INF),
    "length_range": (0.0, True, 1.05),
    "height_range": (-_INF, False, _INF),
    "vertical_velocity_range": (-_INF, False, _INF),
    "horizontal_position_range": (-_INF, False, _INF),
    "horizontal_velocity_range": (-_INF, False, _INF),
    "drag_range": (0.0, False, _INF),
    "period_range": (0.0, True, _INF),
}
# Scalar options: (lowest allowed, strict, highest allowed, integer?).
_SCALAR_LIMITS = {
    "num_frames": (1, False, 100_000, True),
    "image_size": (8, False, 512, True),
    "substeps": (1, False, 1000, True),
    "num_distractors": (0, False, 64, True),
    "num_stars": (0, False, 64, True),
    "fps": (0.0, True, _INF, False),
    "g": (0.0, False, _INF, False),
    "sensor_noise": (0.0, False, 1.0, False),
    "sky_level": (0.0, False, 1.0, False),
    "camera_azimuth": (-60.0, False, 60.0, False),
    "camera_elevation": (-60.0, False, 60.0, False),
    "camera_jitter": (0.0, False, 10.0, False),
    "shading": (0.0, False, 0.9, False),
    "shadow": (0.0, False, 1.0, False),
    "occluder": (0, False, 1, True),
    "flicker": (0.0, False, 0.5, False),
    "motion_blur": (0.0, False, 1.0, False),
    "compression_crf": (0, False, 51, True),
}
_MAX_REDRAW_ROUNDS = 50


@dataclasses.dataclass(frozen=True, eq=False)
class Clips:
  """A batch of N simulated and rendered clips of T frames (see module docstring)."""
  system: str
  frames: np.ndarray              # uint8 [N, T, H, W, C]
  latent: np.ndarray              # float32 [N, T], states[LATENTS[system]]
  states: dict[str, np.ndarray]   # float32 [N, T] each
  params: dict[str, np.ndarray]   # float32 [N] each
  initial: dict[str, np.ndarray]  # float32 [N] each
  dt: float                       # seconds between frames
  render_seed: np.ndarray         # int64 [N]
  options: dict                   # resolved generation options


# ---------------------------------------------------------------------------------------
# Options.


def _check_system(system) -> str:
  if system not in SYSTEMS:
    raise ValueError(f"unknown system {system!r}; valid systems: {', '.join(SYSTEMS)}")
  return system


def default_options(system: str) -> dict:
  """Every generation option of `system` with its default value (see module docstring)."""
  return {**_COMMON_DEFAULTS, **_SYSTEM_DEFAULTS[_check_system(system)]}


def _profile_from(value, where: str) -> dict[str, float]:
  """Profile preset name or dict -> dict of PROFILE_KEYS -> float, validated."""
  if isinstance(value, str):
    if value not in PULSE_PROFILES:
      raise ValueError(f"{where}: unknown pulse profile {value!r}; valid presets: "
                       f"{', '.join(PULSE_PROFILES)} or a dict with keys {', '.join(PROFILE_KEYS)}")
    return dict(PULSE_PROFILES[value])
  if not isinstance(value, dict) or set(value) != set(PROFILE_KEYS):
    raise ValueError(f"{where}: a pulse profile must be one of {', '.join(PULSE_PROFILES)} or a "
                     f"dict with exactly the keys {', '.join(PROFILE_KEYS)}; got {value!r}")
  profile = {}
  for key in PROFILE_KEYS:
    try:
      profile[key] = float(value[key])
    except (TypeError, ValueError):
      profile[key] = math.nan
  bad = [k for k, v in profile.items() if not math.isfinite(v)
         or (k.endswith("_width") and not 0 < v <= math.pi)
         or (k in ("baseline", "main_amplitude", "inter_amplitude") and v < 0)]
  if bad:
    raise ValueError(f"{where}: bad pulse profile values for {', '.join(bad)}; widths must be "
                     f"in (0, pi], amplitudes and baseline >= 0, all finite")
  return profile


def _check_option(system: str, name: str, value: Any, fail) -> Any:
  """Validated, normalized option value; calls fail(message) on a bad value."""
  if name == "channels":
    if value not in (1, 3) or isinstance(value, bool):
      fail(f"channels={value!r} must be 1 (grey) or 3 (RGB)")
    return int(value)
  if name == "background":
    if value not in ("plain", "texture", "room"):
      fail(f"background={value!r} must be 'plain', 'texture' or 'room'")
    return value
  if name == "profile":
    if isinstance(value, str):
      _profile_from(value, "option profile")
      return value
    return _profile_from(value, "option profile")
  if name in _SCALAR_LIMITS:
    low, strict, high, integer = _SCALAR_LIMITS[name]
    ok_type = isinstance(value, (int, np.integer)) if integer else isinstance(
        value, (int, float, np.integer, np.floating))
    if (not ok_type or isinstance(value, bool) or not math.isfinite(value)
        or value < low or (strict and value == low) or value > high):
      kind = "an integer" if integer else "a number"
      fail(f"{name}={value!r} must be {kind} in {'(' if strict else '['}{low}, {high}]")
    return int(value) if integer else float(value)
  limits = _RANGE_LIMITS[name]
  low, strict, high = limits[system] if isinstance(limits, dict) else limits
  try:
    lo, hi = (float(v) for v in value)
  except (TypeError, ValueError):
    lo = hi = math.nan
  if (isinstance(value, str) or not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi
      or lo < low or (strict and lo == low) or hi > high):
    fail(f"{name}={value!r} must be a pair (low, high) with "
         f"{low} {'<' if strict else '<='} low <= high <= {high}")
  return (lo, hi)


def _resolve_options(system: str, options: dict) -> dict:
  defaults = default_options(system)
  valid = ", ".join(sorted(defaults))

  def fail(message):
    raise ValueError(f"{system}: {message}; valid options: {valid}")

  unknown = sorted(set(options) - set(defaults))
  if unknown:
    fail(f"unknown option(s) {', '.join(unknown)}")
  resolved = {**defaults, **options}
  return {name: _check_option(system, name, value, fail) for name, value in resolved.items()}


# ---------------------------------------------------------------------------------------
# Dynamics.


def _to_f32_grid(values) -> np.ndarray:
  """Rounds to the nearest float32 and returns float64 (exactly representable values)."""
  return np.asarray(values, np.float64).astype(np.float32).astype(np.float64)


def _wrap(phase):
  """Angles wrapped to [-pi, pi)."""
  wrapped = np.mod(phase + np.pi, 2 * np.pi) - np.pi
  return np.where(wrapped >= np.pi, wrapped - 2 * np.pi, wrapped)


def pulse_profile(phase, profile: dict) -> np.ndarray:
  """Two-Gaussian pulse profile: brightness at rotation phase `phase` (radians).

  b = baseline + sum over (main, inter) of amplitude * exp(-d^2 / (2 width^2)),
  d = phase - centre wrapped to [-pi, pi). `profile` maps PROFILE_KEYS to scalars or
  arrays broadcastable against `phase`. Returns float64 with the broadcast shape.
  """
  phase = np.asarray(phase, np.float64)
  brightness = np.asarray(profile["baseline"], np.float64) + 0 * phase
  for pulse in ("main", "inter"):
    distance = _wrap(phase - np.asarray(profile[f"{pulse}_centre"], np.float64))
    width = np.asarray(profile[f"{pulse}_width"], np.float64)
    brightness = brightness + np.asarray(profile[f"{pulse}_amplitude"], np.float64) * np.exp(
        -0.5 * (distance / width) ** 2)
  return brightness


def _rk4(acceleration, position, velocity, dt: float, num_frames: int, substeps: int):
  """Classical RK4 for q'' = acceleration(q, v), sampled once per frame.

  Args:
    acceleration: (q, v) -> a, arrays of the shape of position.
    position, velocity: float64 [N] or [N, D] at t = 0.
  Returns:
    positions, velocities: float64 [N, T] or [N, T, D].
  """
  h = dt / substeps
  positions = np.empty((num_frames,) + position.shape)
  velocities = np.empty((num_frames,) + position.shape)
  q, v = position.astype(np.float64), velocity.astype(np.float64)
  positions[0], velocities[0] = q, v
  for frame in range(1, num_frames):
    for _ in range(substeps):
      a1 = acceleration(q, v)
      v2 = v + 0.5 * h * a1
      a2 = acceleration(q + 0.5 * h * v, v2)
      v3 = v + 0.5 * h * a2
      a3 = acceleration(q + 0.5 * h * v2, v3)
      v4 = v + h * a3
      a4 = acceleration(q + h * v3, v4)
      q = q + (h / 6.0) * (v + 2.0 * v2 + 2.0 * v3 + v4)
      v = v + (h / 6.0) * (a1 + 2.0 * a2 + 2.0 * a3 + a4)
    positions[frame], velocities[frame] = q, v
  return (np.ascontiguousarray(np.moveaxis(positions, 0, 1)),
          np.ascontiguousarray(np.moveaxis(velocities, 0, 1)))


def _required(system, table, names, what):
  missing = [n for n in names if n not in table]
  if missing:
    raise ValueError(f"{system}: {what} lack {', '.join(missing)}; need {', '.join(names)}")
  return [np.asarray(table[n], np.float64) for n in names]


def simulate(system: str, params: dict, initial: dict, *, num_frames: int, fps: float,
             substeps: int = _COMMON_DEFAULTS["substeps"]) -> dict[str, np.ndarray]:
  """Integrates `system` from its initial conditions; no rendering.

  Args:
    system: one of SYSTEMS.
    params, initial: dicts of [N] arrays, the keys of Clips.params / Clips.initial.
    num_frames: T. fps: frames per second (dt = 1 / fps).
    substeps: RK4 steps per frame (spring, pendulum, falling).
  Returns:
    The states of Clips.states, float64 [N, T] each.
  """
  dt = 1.0 / fps
  _check_system(system)
  if system == "spring":
    omega, damping = _required(system, params, ("omega", "damping"), "params")
    x0, v0 = _required(system, initial, ("position", "velocity"), "initial")
    stiffness = omega * omega
    position, velocity = _rk4(lambda x, v: -stiffness * x - damping * v, x0, v0, dt,
                              num_frames, substeps)
    return {"position": position, "velocity": velocity}
  if system == "pendulum":
    g, length, damping = _required(system, params, ("g", "length", "damping"), "params")
    theta0, omega0 = _required(system, initial, ("angle", "angular_velocity"), "initial")
    g_over_l = g / length
    angle, angular_velocity = _rk4(lambda q, v: -g_over_l * np.sin(q) - damping * v,
                                   theta0, omega0, dt, num_frames, substeps)
    return {"angle": angle, "angular_velocity": angular_velocity}
  if system == "falling":
    g, drag = _required(system, params, ("g", "drag"), "params")
    y0, vy0, x0, vx0 = _required(
        system, initial, ("height", "vertical_velocity", "x", "horizontal_velocity"), "initial")
    gravity = np.stack([np.zeros_like(g), -g], axis=-1)
    drag = drag[:, None]

    def acceleration(_, v):
      speed = np.sqrt(v[:, :1] ** 2 + v[:, 1:] ** 2)
      return gravity - drag * speed * v

    position, velocity = _rk4(acceleration, np.stack([x0, y0], -1), np.stack([vx0, vy0], -1),
                              dt, num_frames, substeps)
    return {"height": position[..., 1], "vertical_velocity": velocity[..., 1],
            "x": position[..., 0], "horizontal_velocity": velocity[..., 0]}
  (omega,) = _required(system, params, ("omega",), "params")
  profile = dict(zip(PROFILE_KEYS, _required(system, params, PROFILE_KEYS, "params")))
  (phase0,) = _required(system, initial, ("phase",), "initial")
  times = np.arange(num_frames, dtype=np.float64) * dt
  phase = _wrap(phase0[:, None] + omega[:, None] * times[None, :])
  brightness = pulse_profile(phase, {k: v[:, None] for k, v in profile.items()})
  return {"phase": phase, "brightness": brightness}


# ---------------------------------------------------------------------------------------
# Sampling of parameters and initial conditions. Each clip uses one row of a uniform
# matrix (the last column gives its render seed), so clip i of a seed does not depend on
# num_clips; redraws (falling) use rows of further matrices.


def _uniform_rows(seed: int, draw_round: int, num_clips: int, num_columns: int) -> np.ndarray:
  return np.random.default_rng([seed, draw_round]).random((num_clips, num_columns))


def _in_range(u, value_range):
  low, high = value_range
  return low + u * (high - low)


def _render_seeds(u) -> np.ndarray:
  return np.floor(u * 2.0**31).astype(np.int64)


def _pulsar_period(omega):
  return _to_f32_grid(2 * np.pi / omega)


def _sample_spring(u, options, num_clips):
  amplitude = _in_range(u[:, 0], options["amplitude_range"])
  cycle_phase = 2 * np.pi * u[:, 1]
  omega = _to_f32_grid(_in_range(u[:, 2], options["omega_range"]))
  params = {"omega": omega,
            "damping": _to_f32_grid(_in_range(u[:, 3], options["damping_range"]))}
  initial = {"position": _to_f32_grid(amplitude * np.cos(cycle_phase)),
             "velocity": _to_f32_grid(-amplitude * omega * np.sin(cycle_phase))}
  return params, initial


def _sample_pendulum(u, options, num_clips):
  amplitude = _in_range(u[:, 0], options["amplitude_range"])
  cycle_phase = 2 * np.pi * u[:, 1]
  g = _to_f32_grid(np.full(num_clips, options["g"]))
  length = _to_f32_grid(_in_range(u[:, 2], options["length_range"]))
  angle = amplitude * np.cos(cycle_phase)
  # Speed on the undamped orbit of amplitude `amplitude` (energy conservation).
  speed = np.sqrt(np.maximum(0.0, 2 * g / length * (np.cos(angle) - np.cos(amplitude))))
  params = {"g": g, "length": length,
            "damping": _to_f32_grid(_in_range(u[:, 3], options["damping_range"]))}
  initial = {"angle": _to_f32_grid(angle),
             "angular_velocity": _to_f32_grid(-np.sign(np.sin(cycle_phase)) * speed)}
  return params, initial


def _sample_falling(u, options, num_clips):
  params = {"g": _to_f32_grid(np.full(num_clips, options["g"])),
            "drag": _to_f32_grid(_in_range(u[:, 4], options["drag_range"]))}
  initial = {
      "height": _to_f32_grid(_in_range(u[:, 0], options["height_range"])),
      "vertical_velocity": _to_f32_grid(_in_range(u[:, 1], options["vertical_velocity_range"])),
      "x": _to_f32_grid(_in_range(u[:, 2], options["horizontal_position_range"])),
      "horizontal_velocity": _to_f32_grid(
          _in_range(u[:, 3], options["horizontal_velocity_range"])),
  }
  return params, initial


def _sample_pulsar(u, options, num_clips):
  omega = _to_f32_grid(2 * np.pi / _in_range(u[:, 0], options["period_range"]))
  profile = _profile_from(options["profile"], "option profile")
  params = {"omega": omega, "period": _pulsar_period(omega)}
  params.update({k: _to_f32_grid(np.full(num_clips, v)) for k, v in profile.items()})
  initial = {"phase": _to_f32_grid(_wrap(-np.pi + 2 * np.pi * u[:, 1]))}
  return params, initial


_SAMPLERS = {"spring": (_sample_spring, 4), "pendulum": (_sample_pendulum, 4),
             "falling": (_sample_falling, 5), "pulsar": (_sample_pulsar, 2)}


def _ball_in_frame(states) -> np.ndarray:
  """bool [N]: the ball stays inside the frame and above the ground in every frame."""
  radius = render.FALLING_BALL_RADIUS
  (x_low, x_high), (_, y_high) = render.FALLING_SCENE.x_range, render.FALLING_SCENE.y_range
  height, x = states["height"], states["x"]
  inside = ((height >= radius) & (height <= y_high - radius)
            & (x >= x_low + radius) & (x <= x_high - radius))
  return inside.all(axis=1)


def _simulate_with(system, params, initial, options):
  return simulate(system, params, initial, num_frames=options["num_frames"], fps=options["fps"],
                  substeps=options["substeps"])


def _sample(system: str, num_clips: int, seed: int, options: dict):
  """Parameters, initial conditions (float64 on the float32 grid), render seeds, states."""
  sampler, num_columns = _SAMPLERS[system]
  u = _uniform_rows(seed, 0, num_clips, num_columns + 1)
  render_seed = _render_seeds(u[:, -1])
  params, initial = sampler(u, options, num_clips)
  if system != "falling":
    return params, initial, render_seed, _simulate_with(system, params, initial, options)
  for draw_round in range(1, _MAX_REDRAW_ROUNDS + 1):
    states = _simulate_with(system, params, initial, options)
    redraw = ~_ball_in_frame(states)
    if not redraw.any():
      return params, initial, render_seed, states
    u[redraw] = _uniform_rows(seed, draw_round, num_clips, num_columns + 1)[redraw]
    params, initial = sampler(u, options, num_clips)
  raise ValueError(
      f"falling: after {_MAX_REDRAW_ROUNDS} redraws {int(redraw.sum())} of {num_clips} balls "
      f"still leave the frame or reach the ground within the clip; use fewer num_frames, a "
      f"higher fps, or ranges that keep the ball inside (heights 0..{render.FALLING_SCENE.y_range[1]} m"
      f", |x| <= {render.FALLING_SCENE.x_range[1]} m, ball radius {render.FALLING_BALL_RADIUS} m)")


def _render_frames(system, states, params, render_seed, options) -> np.ndarray:
  if system == "spring":
    return render.render_spring(states["position"], render_seed, options)
  if system == "pendulum":
    return render.render_pendulum(states["angle"], params["length"], render_seed, options)
  if system == "falling":
    return render.render_falling(states["x"], states["height"], render_seed, options)
  return render.render_pulsar(states["brightness"], render_seed, options)


def _make_clips(system, params, initial, render_seed, options, states) -> Clips:
  frames = _render_frames(system, states, params, render_seed, options)
  states = {k: v.astype(np.float32) for k, v in states.items()}
  return Clips(system=system, frames=frames, latent=states[LATENTS[system]].copy(),
               states=states, params={k: v.astype(np.float32) for k, v in params.items()},
               initial={k: v.astype(np.float32) for k, v in initial.items()},
               dt=1.0 / options["fps"], render_seed=render_seed, options=dict(options))


def generate(system: str, num_clips: int, seed: int, **options) -> Clips:
  """Simulates and renders `num_clips` clips of `system`.

  Args:
    system: one of SYSTEMS.
    num_clips: N >= 1.
    seed: non-negative int. Clip i depends only on (system, seed, i, options).
    **options: overrides of default_options(system).
  Returns:
    Clips with frames uint8 [N, T, H, W, C] and float32 ground truth.
  """
  _check_system(system)
  if isinstance(num_clips, bool) or not isinstance(num_clips, (int, np.integer)) or num_clips < 1:
    raise ValueError(f"num_clips={num_clips!r} must be a positive integer")
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed={seed!r} must be a non-negative integer")
  options = _resolve_options(system, options)
  params, initial, render_seed, states = _sample(system, int(num_clips), int(seed), options)
  return _make_clips(system, params, initial, render_seed, options, states)


# ---------------------------------------------------------------------------------------
# Counterfactual re-simulation.

# Interventions on one parameter: lowest allowed value and whether it is excluded.
_PARAMETER_INTERVENTIONS = {"damping": (0.0, False), "drag": (0.0, False), "g": (0.0, False),
                            "length": (0.0, True), "omega": (0.0, True),
                            "stiffness": (0.0, True), "period": (0.0, True)}
_SCALED_INITIAL = {"spring": ("position", "velocity"),
                   "pendulum": ("angle", "angular_velocity"),
                   "falling": ("vertical_velocity", "horizontal_velocity")}


def _per_clip(system, name, value, num_clips, low=-_INF, strict=False) -> np.ndarray:
  """Intervention value (scalar or [N]) -> float64 [N], validated."""
  try:
    array = np.asarray(value, np.float64)
  except (TypeError, ValueError):
    array = None
  if array is None or array.shape not in ((), (num_clips,)):
    raise ValueError(f"{system}: intervention {name} must be a number or an array of shape "
                     f"({num_clips},), got {value!r}")
  if not np.all(np.isfinite(array)) or np.any(array < low) or (strict and np.any(array == low)):
    raise ValueError(f"{system}: intervention {name} must be finite and "
                     f"{'>' if strict else '>='} {low}, got {value!r}")
  return np.broadcast_to(array, (num_clips,)).copy()


def resimulate(clips: Clips, **intervention) -> Clips:
  """Re-simulates clips from their initial conditions under changed physics.

  Same initial conditions (unless amplitude_scale), same render seeds and options, so the
  counterfactual frames differ from the originals only through the changed dynamics.
  Without interventions the result equals `clips` array for array, byte for byte.

  Args:
    clips: output of generate (or of resimulate).
    **intervention: see INTERVENTIONS[clips.system] and the module docstring; values are
      scalars or per-clip arrays [N] (profile: a preset name or a dict).
  Returns:
    Clips with the new params / initial / states / frames.
  """
  system = _check_system(clips.system)
  valid = INTERVENTIONS[system]
  unknown = sorted(set(intervention) - set(valid))
  if unknown:
    raise ValueError(f"{system}: intervention(s) {', '.join(unknown)} do not apply; valid "
                     f"interventions for {system}: {', '.join(valid)}")
  for pair in (("omega", "stiffness"), ("omega", "period")):
    if set(pair) <= set(intervention):
      raise ValueError(f"{system}: give only one of the interventions {' and '.join(pair)}")
  num_clips = len(clips.render_seed)
  params = {k: np.asarray(v, np.float64) for k, v in clips.params.items()}
  initial = {k: np.asarray(v, np.float64) for k, v in clips.initial.items()}
  for name, value in intervention.items():
    if name == "profile":
      profile = _profile_from(value, f"{system}: intervention profile")
      params.update({k: np.full(num_clips, v) for k, v in profile.items()})
    elif name == "amplitude_scale":
      scale = _per_clip(system, name, value, num_clips)
      for key in _SCALED_INITIAL[system]:
        initial[key] = initial[key] * scale
    else:
      value = _per_clip(system, name, value, num_clips, *_PARAMETER_INTERVENTIONS[name])
      if name == "stiffness":
        params["omega"] = np.sqrt(value)
      elif name == "period":
        params["omega"] = 2 * np.pi / value
      else:
        params[name] = value
  params = {k: _to_f32_grid(v) for k, v in params.items()}
  initial = {k: _to_f32_grid(v) for k, v in initial.items()}
  if system == "pulsar":
    params["period"] = _pulsar_period(params["omega"])
  states = _simulate_with(system, params, initial, clips.options)
  return _make_clips(system, params, initial, clips.render_seed, clips.options, states)
