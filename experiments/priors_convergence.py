"""How fast the linearised prior mixture approaches the exact pushforward, split by split.

  .venv/bin/python -m experiments.priors_convergence          # writes the figure and a table

Three pendulum cases at a coarse time step (dt = 0.5 s, g / L = 9.81, noise 0.02), where the
pushforward of the history posterior is far from Gaussian. For every K the prior mixture of
`priors.linearize` with the original split ("quasi": Halton points in both history directions,
Silverman's bandwidth) and with the default "directional" split (a grid along the whitened
history axis where f is most nonlinear) is compared with the exact pushforward: its mean and
variance (closed form: the pendulum's f is linear in z_{t-2} and in z_{t-1} but for
-dt^2 (g/L) sin z_{t-1}, and E[sin X] = sin(m) exp(-s^2/2) for X ~ N(m, s^2)), and its density
(a 1-D quadrature: z_{t-2} and the noise enter linearly, so p(z_t) is one integral over z_{t-1}).
The L1 distance is int |p_gmm - p|, twice the total variation, on a 2001-point grid over +-8
standard deviations.
"""
from __future__ import annotations

import json
import pathlib

import jax.numpy as jnp
import numpy as np
from absl import app, flags

from nlvae import gaussians, priors

# name -> (history means, history standard deviations) of (z_{t-2}, z_{t-1}), in rad.
CASES = {
    "2 rad, s = 0.4": ((2.0, 2.0), (0.4, 0.4)),
    "pi/2, s = 0.4": ((np.pi / 2, np.pi / 2), (0.4, 0.4)),
    "2 rad, wide s = 0.6": ((2.0, 2.0), (0.6, 0.6)),
}
COMPONENTS = {"quasi": (1, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
              "directional": (1, 2, 4, 8, 16, 32, 64, 128, 256)}

flags.DEFINE_string("figure", "docs/figures/linearization_convergence.png", "output figure")
flags.DEFINE_string("table", "", "optional JSON file for the numbers")


def case_prior(dtype=jnp.float32) -> priors.ANMPrior:
  return priors.pendulum(g=9.81, length=1.0, dt=0.5, noise_scale=0.02, dtype=dtype)


def _linear_coefficients(prior: priors.ANMPrior):
  """z_t = alpha z_{t-1} + beta z_{t-2} - a sin(z_{t-1}) + eps for the damped pendulum."""
  dt, g, length, damping = (float(prior.params[k]) for k in ("dt", "g", "length", "damping"))
  return 2.0 - damping * dt, -(1.0 - damping * dt), dt**2 * g / length


def exact_moments(prior: priors.ANMPrior, mean, std) -> tuple[float, float]:
  """Closed-form mean and variance of z_t for a pendulum prior and a diagonal history.

  mean, std: (z_{t-2}, z_{t-1}). With X ~ N(m, s^2): E sin X = sin m e^(-s^2/2),
  Var sin X = (1 - cos 2m e^(-2 s^2)) / 2 - (E sin X)^2, Cov(X, sin X) = s^2 cos m e^(-s^2/2).
  """
  alpha, beta, a = _linear_coefficients(prior)
  (m1, m2), (s1, s2) = mean, std
  expected_sin = np.sin(m2) * np.exp(-s2**2 / 2)
  var_sin = (1.0 - np.cos(2 * m2) * np.exp(-2 * s2**2)) / 2 - expected_sin**2
  cov_x_sin = s2**2 * np.cos(m2) * np.exp(-s2**2 / 2)
  noise = float(prior.noise_variance()[0])
  return (alpha * m2 + beta * m1 - a * expected_sin,
          alpha**2 * s2**2 + a**2 * var_sin - 2 * alpha * a * cov_x_sin + beta**2 * s1**2 + noise)


def exact_density(prior: priors.ANMPrior, mean, std, z: np.ndarray,
                  num_nodes: int = 3001) -> np.ndarray:
  """p(z_t) [len(z)] by quadrature over z_{t-1} (+-9 s, num_nodes points); z_{t-2} and the
  noise are integrated analytically (they enter linearly)."""
  alpha, beta, a = _linear_coefficients(prior)
  (m1, m2), (s1, s2) = mean, std
  x = np.linspace(m2 - 9 * s2, m2 + 9 * s2, num_nodes)
  weights = np.exp(-0.5 * ((x - m2) / s2)**2)
  weights /= weights.sum()
  centre = alpha * x - a * np.sin(x) + beta * m1
  var = beta**2 * s1**2 + float(prior.noise_variance()[0])
  return np.exp(-0.5 * (z[:, None] - centre)**2 / var) / np.sqrt(2 * np.pi * var) @ weights


def errors(prior: priors.ANMPrior, mean, std, gmm: gaussians.GaussianMixture) -> dict:
  """Mean error (rad), relative variance error and L1 distance of a prior GMM [K, 1]."""
  exact_mean, exact_var = exact_moments(prior, mean, std)
  moments = gaussians.mixture_moments(gmm)
  z = np.linspace(exact_mean - 8 * np.sqrt(exact_var), exact_mean + 8 * np.sqrt(exact_var), 2001)
  density = np.exp(np.asarray(gaussians.mixture_log_prob(jnp.asarray(z[:, None], gmm.means.dtype),
                                                         gmm), np.float64))
  return dict(mean_error=float(moments.mean[0]) - exact_mean,
              variance_error=float(moments.cov[0, 0]) / exact_var - 1.0,
              l1=float(np.sum(np.abs(density - exact_density(prior, mean, std, z)))
                       * (z[1] - z[0])))


def case_errors(prior: priors.ANMPrior, case: str, num_components: int, method: str) -> dict:
  mean, std = CASES[case]
  gmm = priors.linearize(prior, jnp.asarray(mean, jnp.float32)[:, None],
                         jnp.asarray(std, jnp.float32)[:, None]**2,
                         num_components=num_components, method=method)
  return errors(prior, mean, std, gmm)


def main(argv):
  del argv
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  prior = case_prior()
  results = {case: {method: {k: case_errors(prior, case, k, method) for k in ks}
                    for method, ks in COMPONENTS.items()} for case in CASES}
  quantities = (("mean_error", "|mean error| (rad)"), ("variance_error", "|variance error| (rel.)"),
                ("l1", "L1 distance to p(z_t)"))
  fig, axes = plt.subplots(3, 3, figsize=(11, 9), sharex=True)
  for col, case in enumerate(CASES):
    for row, (key, label) in enumerate(quantities):
      ax = axes[row, col]
      for method, style, name in (("quasi", "o--", "quasi (original split)"),
                                  ("directional", "s-", "directional (the default 'auto' here)")):
        ks = COMPONENTS[method]
        ax.loglog(ks, [max(abs(results[case][method][k][key]), 1e-6) for k in ks], style,
                  label=name)
      ax.grid(True, which="both", alpha=0.3)
      if row == 0:
        ax.set_title(case)
      if col == 0:
        ax.set_ylabel(label)
      if row == 2:
        ax.set_xlabel("components K")
  axes[0, 0].legend()
  fig.suptitle("Pendulum prior, dt = 0.5 s: linearised mixture vs exact pushforward")
  fig.tight_layout()
  path = pathlib.Path(flags.FLAGS.figure)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=110)
  print(f"wrote {path}")
  print("| case | split | K | mean error (rad) | variance error | L1 |\n|---|---|---|---|---|---|")
  for case in CASES:
    for method, ks in COMPONENTS.items():
      for k in ks:
        if k in (1, 16, 256, 1024):
          r = results[case][method][k]
          print(f"| {case} | {method} | {k} | {r['mean_error']:+.4f} | "
                f"{r['variance_error']:+.4f} | {r['l1']:.4f} |")
  if flags.FLAGS.table:
    pathlib.Path(flags.FLAGS.table).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
  app.run(main)
