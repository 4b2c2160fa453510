"""disentangled-dynamics (Zaharia, Peters, Cunningham, Kriegeskorte): a circle over a Gaussian blob.

Data (data.circles): 32x32x1 uint8 images (scaled to [0, 1] by data.video.to_float) with four
factors in [0, 1] (circle x, y, blob x, y). Static task: single images from the factor grid. Dynamic task: clips of T = 10 frames
in which the circle moves on a straight line at constant speed and the blob stays put.

Models (both follow the interface of nlvae.models):

* ``SupervisedControl`` ("supervised_control"): four 3x3 stride-2 convs (32, 32, 64, 64) and a
  linear layer regress the four factors (networks.SupervisedEncoder), mean squared error.
* ``DynamicsVAE`` ("dynamics_vae"): per-frame encoder N(mu_t, diag sigma_t^2) with the same convs
  (networks.dynamics_encoder), decoder networks.dynamics_decoder with a sigmoid output. Per example
  (a frame or a clip), averaged over the batch:

      loss = sum_{t, pixels} (x_t - decode(z_t))^2  +  beta * sum_t KL(q_t || N(0, I))  +  dynamics

  ``variational=False`` is a deterministic autoencoder (z_t = mu_t, no KL). ``dynamics``:
    "none"               plain per-frame model;
    "linear_prediction"  + gamma * sum_{t >= 2} 0.5 ||mu_t - (2 mu_{t-1} - mu_{t-2})||^2 on the
                         posterior means, every t >= 2 of every clip (``prediction_penalty``);
    "inertia"            representational inertia (``inertia_means``): the latent mean is
                         mu_t = (1 - gamma) e_t + gamma z_hat_t with e_t the encoder mean and
                         z_hat_{t+1} = 2 mu_t - mu_{t-1}; decode(z_t) is scored against frame
                         t + delay (delay = 1: the reference's one-frame conduction delay).

beta. Given normalised (``beta_is_normalized``, the reference's convention after Higgins et al.
2017): beta_norm = beta * M / N with M latents and N = H * W * C values per frame, so the weight
on the KL is beta = beta_norm * N / M = 256 * beta_norm for 32x32x1 frames and 4 latents. Both the
reconstruction (summed over pixels) and the KL (summed over latents) are per frame and summed over
frames, as in the reference, so this conversion is exact.

Where this differs from the reference code (zahariaa/disentangled-dynamics), and why:
  * Prediction regulariser: the reference computes it on the *flattened* [B*T, D] batch. Its
    beta-VAE (src/dynamic_simple) takes rows ``mu[2:]``, which skips frames 0, 1 of the first clip
    only; frames 0, 1 of every other clip are compared with a zero "prediction" (an unintended L2
    pull of mu_0, mu_1 to 0). Its autoencoder (src/dynamic_AE_predloss) takes rows ``mu[:2]``:
    frames 0, 1 of the first clip against that zero, so no prediction error is ever penalised.
    Here the penalty covers every t >= 2 of every clip and nothing else. The reference also sums
    it over the batch while the other terms are batch means, which multiplies its gamma by the
    batch size (64): gamma_here = 64 * gamma_reference.
  * Inertia: the reference's gamma option never reached the network (always 0.75); here it is a
    real parameter. Initialisation is the reference's: mu_0 = e_0 and z_hat_1 = mu_0 (a prediction
    that starts at rest, i.e. mu_{-1} := mu_0), so mu_1 = (1 - gamma) e_1 + gamma e_0. With
    gamma = 1 every mu_t equals e_0: the model sees only the first frame and "dreams" a static
    scene. As in the reference the last frame is only a target (frames 0..T-1-delay are encoded),
    decode(mu_0) is not scored (targets are frames 1+delay..T-1), the KL covers every encoded
    frame with the encoder's variance, and samples z_t = mu_t + sigma_t eps do not feed back into
    the recursion (it runs on means).
  * Autoencoder: the reference's "AE" still decoded z ~ N(mu, sigma^2) with an unregularised
    sigma; here it is deterministic.
  * Decoder: the repository's shared dynamics_decoder (4x4 stride-2 up-convs, ReLU) instead of the
    reference's 3x3 up-convs with output padding and ELU; the output sigmoid is kept.
  * Reconstruction: MSE as stated for the project. The reference's static beta-VAE solver
    (src/bVAE/solver.py) actually called its loss with the default 'bernoulli' (binary cross
    entropy); ``likelihood="bernoulli"`` reproduces that.
  * Static data: a seeded random sample of distinct grid points split into train / test rather
    than the whole grid (the ":full" configs use the whole 262,144-image grid).

Evaluation (``evaluate``), on the test set and on factor sweeps:
  * mcc: nlvae.metrics.mcc (Spearman, Hungarian matching) between representations and factors;
  * latent_corr_offdiag_sq: the reference's entanglement number, the mean squared off-diagonal
    entry of the latent-latent (Pearson) correlation matrix, on the test codes and on the sweeps;
  * sweep_corr [factor, latent]: Pearson correlation of each latent with the swept factor over a
    sweep of 16 values in [0, 1] with the other factors held at 0.5 (the reference's protocol),
    rendered with data.circles.render; sweep_max_abs_corr is its row-wise max |corr|, averaged;
  * factor_r2_knn / factor_r2_linear (``factor_r2``): held-out R^2 of each factor from the codes by
    10-nearest-neighbour and by linear regression (circle_r2_knn, gauss_r2_knn: their means over
    the circle and the blob factors): is a factor in the code at all, and is it there linearly.
    The circle can be encoded (kNN R^2 ~0.6) by a folded, non-monotone code that every
    correlation above scores near 0.
The representation of a frame is the encoder mean (for a static clip the inertia means equal the
encoder means for every gamma, so sweeps score every variant alike); for inertia models
``inertia_mcc`` also scores mu_t against the factors of the frame it is decoded into.
"""
from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data import circles, video
from nlvae import evaluation, kl, metrics, networks

DYNAMICS = ("none", "linear_prediction", "inertia")
LIKELIHOODS = ("mse", "bernoulli")
SWEEP_LEVELS = 16
SWEEP_DEFAULT = 0.5

# ------------------------------------------------------------------------------------------------
# Loss terms (pure functions).


def beta_from_normalized(beta_norm: float, values_per_frame: int, latent_dim: int) -> float:
  """beta = beta_norm * N / M (Higgins et al. 2017): N values per frame, M latents."""
  return float(beta_norm) * values_per_frame / latent_dim


def linear_prediction(mu: jax.Array) -> jax.Array:
  """Constant-velocity prediction z_hat_t = 2 mu_{t-1} - mu_{t-2}: [..., T, D] -> [..., T-2, D]
  (entry i predicts frame t = i + 2)."""
  return 2.0 * mu[..., 1:-1, :] - mu[..., :-2, :]


def prediction_penalty(mu: jax.Array) -> jax.Array:
  """sum_{t=2}^{T-1} 0.5 ||mu_t - (2 mu_{t-1} - mu_{t-2})||^2: means [..., T, D] -> [...]."""
  return 0.5 * jnp.sum((mu[..., 2:, :] - linear_prediction(mu))**2, axis=(-2, -1))


def inertia_means(encoder_means: jax.Array, gamma: float) -> tuple[jax.Array, jax.Array]:
  """Representational inertia: encoder means e [..., T, D] -> (mu, z_hat), both [..., T, D].

  mu_0 = z_hat_0 = e_0;  z_hat_1 = mu_0 (the prediction starts at rest, mu_{-1} := mu_0);
  for t >= 1:  mu_t = (1 - gamma) e_t + gamma z_hat_t,  z_hat_{t+1} = 2 mu_t - mu_{t-1}.
  gamma = 0 gives mu = e; gamma = 1 gives mu_t = e_0 for every t.
  """
  e = jnp.moveaxis(encoder_means, -2, 0)  # [T, ..., D]

  def step(carry, e_t):
    mu_prev, mu_prev2 = carry
    z_hat = 2.0 * mu_prev - mu_prev2
    mu = (1.0 - gamma) * e_t + gamma * z_hat
    return (mu, mu_prev), (mu, z_hat)

  _, (mu, z_hat) = jax.lax.scan(step, (e[0], e[0]), e[1:])
  mu = jnp.concatenate([e[:1], mu], axis=0)
  z_hat = jnp.concatenate([e[:1], z_hat], axis=0)
  return jnp.moveaxis(mu, 0, -2), jnp.moveaxis(z_hat, 0, -2)


# ------------------------------------------------------------------------------------------------
# Evaluation helpers (host side, numpy).


def offdiag_sq_corr(codes: np.ndarray) -> float:
  """Mean squared off-diagonal entry of the latent-latent Pearson correlation of codes [N, L]
  (constant latents correlate 0)."""
  corr = metrics.correlation_matrix(codes, codes)
  num = corr.shape[0]
  return float(np.sum(corr[~np.eye(num, dtype=bool)]**2) / max(num * (num - 1), 1))


def factor_r2(codes: np.ndarray, factors: np.ndarray, num_neighbors: int = 10,
              seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """How much of each factor the codes hold at all, and how much of it linearly.

  Codes [N, L] (standardised) and factors [N, F] are split at random into halves; a k-nearest-
  neighbour regressor (k = num_neighbors, Euclidean) and a least-squares linear map are fitted on
  one half and scored on the other with R^2 = 1 - SSE / SS_tot per factor. A factor can be encoded
  (kNN R^2 near 1) yet invisible to correlations (linear R^2 and MCC near 0) when the code is a
  folded, non-monotone map of it. Returns (knn_r2 [F], linear_r2 [F]), each at most 1.
  """
  codes = np.asarray(codes, np.float64)
  factors = np.asarray(factors, np.float64)
  codes = (codes - codes.mean(0)) / np.maximum(codes.std(0), 1e-8)
  order = np.random.default_rng(seed).permutation(len(codes))
  fit, held = order[:len(codes) // 2], order[len(codes) // 2:]
  ss_tot = np.maximum(np.sum((factors[held] - factors[held].mean(0))**2, axis=0), 1e-12)
  distance = (np.sum(codes[held]**2, 1)[:, None] - 2 * codes[held] @ codes[fit].T
              + np.sum(codes[fit]**2, 1)[None, :])
  neighbours = np.argpartition(distance, num_neighbors, axis=1)[:, :num_neighbors]
  knn = factors[fit][neighbours].mean(axis=1)
  design = np.concatenate([codes, np.ones((len(codes), 1))], axis=1)
  weights = np.linalg.lstsq(design[fit], factors[fit], rcond=None)[0]
  linear = design[held] @ weights
  r2 = lambda pred: 1.0 - np.sum((pred - factors[held])**2, axis=0) / ss_tot  # noqa: E731
  return r2(knn), r2(linear)


def factor_sweeps(num_levels: int = SWEEP_LEVELS, default: float = SWEEP_DEFAULT) -> np.ndarray:
  """Single-factor sweeps: float32 [F, S, F]; row f sweeps factor f over linspace(0, 1, S) with
  the other factors at ``default``."""
  num = circles.NUM_FACTORS
  factors = np.full((num, num_levels, num), default, np.float32)
  for f in range(num):
    factors[f, :, f] = np.linspace(0.0, 1.0, num_levels)
  return factors


def sweep_correlations(sweep_codes: np.ndarray, values: np.ndarray) -> np.ndarray:
  """Pearson correlation [F, L] of each latent with the swept value: codes [F, S, L], values [S]."""
  return np.stack([metrics.correlation_matrix(values[:, None], codes)[0]
                   for codes in sweep_codes])


def representation_report(encode_fn, test_frames: np.ndarray, test_factors: np.ndarray,
                          workdir=None) -> dict:
  """Scores a representation; encode_fn: jitted frames [n, H, W, C] -> codes [n, L].

  Args:
    test_frames: float32 [N, H, W, C] in [0, 1]; test_factors: [N, F].
    workdir: if given, figures/sweeps.png is written there.
  Returns:
    JSON-able dict: mcc, mcc_per_factor, mcc_matching, latent_corr_offdiag_sq, sweep_corr,
    sweep_max_abs_corr, sweep_latent_corr_offdiag_sq.
  """
  codes = evaluation.chunked_apply(encode_fn, test_frames, 512)
  score = metrics.mcc(codes, test_factors)
  sweeps = factor_sweeps()
  sweep_frames = circles.render(sweeps.reshape(-1, sweeps.shape[-1]), test_frames.shape[1])
  sweep_codes = evaluation.chunked_apply(encode_fn, video.to_float(sweep_frames))
  sweep_codes = sweep_codes.reshape(sweeps.shape[:2] + (-1,))
  corr = sweep_correlations(sweep_codes, sweeps[0, :, 0])
  knn_r2, linear_r2 = factor_r2(codes, test_factors)
  if workdir is not None:
    _plot_sweeps(pathlib.Path(workdir) / "figures" / "sweeps.png", sweeps[0, :, 0], sweep_codes)
  return dict(mcc=score["score"], mcc_per_factor=score["per_factor"].tolist(),
              mcc_matching=score["matching"].tolist(),
              mcc_circle=float(np.mean(score["per_factor"][:2])),
              mcc_gauss=float(np.mean(score["per_factor"][2:])),
              factor_r2_knn=knn_r2.tolist(), factor_r2_linear=linear_r2.tolist(),
              circle_r2_knn=float(np.mean(knn_r2[:2])), gauss_r2_knn=float(np.mean(knn_r2[2:])),
              latent_corr_offdiag_sq=offdiag_sq_corr(codes),
              sweep_corr=corr.tolist(),
              sweep_max_abs_corr=float(np.mean(np.max(np.abs(corr), axis=1))),
              sweep_latent_corr_offdiag_sq=offdiag_sq_corr(sweep_codes.reshape(-1,
                                                                               codes.shape[1])))


def _plot_sweeps(path: pathlib.Path, values: np.ndarray, sweep_codes: np.ndarray) -> None:
  """The reference's sweep figure: every latent against each swept factor."""
  plt = evaluation.pyplot()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig, axes = plt.subplots(1, len(sweep_codes), figsize=(3 * len(sweep_codes), 2.8), sharey=True)
  for f, ax in enumerate(axes):
    for latent in range(sweep_codes.shape[-1]):
      ax.plot(values, sweep_codes[f, :, latent], label=f"z{latent}")
    ax.set_title(f"sweep {circles.FACTOR_NAMES[f]}", fontsize=9)
    ax.set_xlabel("factor value")
  axes[0].set_ylabel("latent")
  axes[-1].legend(fontsize=7)
  evaluation.save_figure(fig, path)


def _flat_frames(data: dict) -> tuple[np.ndarray, np.ndarray]:
  """Static [N, H, W, C] or clips [N, T, H, W, C] uint8 -> frames float32 [M, H, W, C] in
  [0, 1], factors [M, F]."""
  frames, factors = video.to_float(np.asarray(data["frames"])), np.asarray(data["factors"])
  return frames.reshape((-1,) + frames.shape[-3:]), factors.reshape(-1, factors.shape[-1])


# ------------------------------------------------------------------------------------------------
# Models.

class SupervisedControl:
  """Factor regression with the beta-VAE's encoder convs: the perfectly disentangled control.

  Model config: name "supervised_control" (no other fields). Batches: {"frames": uint8 [B, ..., H,
  W, C], "factors": [B, ..., F]}; loss = mean squared error over examples, frames and factors.
  """

  def __init__(self, model_config, data_info):
    self.config = model_config
    self.num_factors = len(data_info.factor_names)
    self.network = networks.SupervisedEncoder(num_outputs=self.num_factors)

  def init(self, rng, batch):
    return networks.init_params(self.network, rng, video.to_float(jnp.asarray(batch["frames"])[:1]))

  def loss(self, params, batch, rng):
    del rng
    predicted = self.network.apply(params, video.to_float(batch["frames"]))
    mse = jnp.mean((predicted - batch["factors"])**2)
    return mse, dict(loss=mse, mse=mse)

  def evaluate(self, params, data, workdir, rng):
    del rng
    frames, factors = _flat_frames(data["test"])
    predict = jax.jit(lambda x: self.network.apply(params, x))
    results = representation_report(predict, frames, factors, workdir)
    rmse = np.sqrt(np.mean((evaluation.chunked_apply(predict, frames, 512) - factors)**2, axis=0))
    results["factor_rmse"] = rmse.tolist()
    return results


class DynamicsVAE:
  """beta-VAE / autoencoder with optional latent dynamics (see the module docstring).

  Model config fields: name "dynamics_vae", latent_dim (4), variational (True), beta,
  beta_is_normalized (True), likelihood ("mse" | "bernoulli"), dynamics ("none" |
  "linear_prediction" | "inertia"), gamma (>= 0; in [0, 1] for inertia), delay (inertia: frame
  offset of the target, 0 or 1).
  Batches: {"frames": uint8 [B, H, W, C] (static) or [B, T, H, W, C] (clips), ...}; encode,
  latents and reconstruct take those frames scaled to [0, 1] (data.video.to_float).
  """

  def __init__(self, model_config, data_info):
    self.config = model_config
    self.image_shape = data_info.image_shape
    self.num_frames = data_info.num_frames
    self.latent_dim = int(model_config.latent_dim)
    self.dynamics = model_config.dynamics
    self.gamma = float(model_config.gamma)
    self.delay = int(model_config.delay)
    self.likelihood = model_config.likelihood
    self.variational = bool(model_config.variational)
    if self.dynamics not in DYNAMICS:
      raise ValueError(f"model.dynamics must be one of {DYNAMICS}, got {self.dynamics!r}")
    if self.likelihood not in LIKELIHOODS:
      raise ValueError(f"model.likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
    if self.gamma < 0 or (self.dynamics == "inertia" and self.gamma > 1):
      raise ValueError(f"model.gamma must be >= 0 (and <= 1 for inertia), got {self.gamma}")
    if self.dynamics != "none":
      needed = 3 + (self.delay if self.dynamics == "inertia" else 0)
      if self.num_frames is None or self.num_frames < needed:
        raise ValueError(f"model.dynamics={self.dynamics!r} needs clips of at least {needed} "
                         f"frames; use data.name='circles_dynamic' or dynamics='none'")
    if self.delay not in (0, 1):
      raise ValueError(f"model.delay must be 0 or 1, got {self.delay}")
    values_per_frame = int(np.prod(self.image_shape))
    beta = float(model_config.beta)
    self.beta = (beta_from_normalized(beta, values_per_frame, self.latent_dim)
                 if model_config.beta_is_normalized else beta)
    self.encoder = networks.dynamics_encoder(self.latent_dim)
    self.decoder = networks.dynamics_decoder(self.image_shape[-1], self.image_shape[0])

  # -- networks ---------------------------------------------------------------------------------

  def init(self, rng, batch):
    key_enc, key_dec = jax.random.split(rng)
    frame = video.to_float(jnp.asarray(batch["frames"]).reshape((-1,) + self.image_shape)[:1])
    return dict(encoder=networks.init_params(self.encoder, key_enc, frame),
                decoder=networks.init_params(self.decoder, key_dec,
                                             jnp.zeros((1, self.latent_dim))))

  def encode(self, params, frames):
    """frames [..., H, W, C] -> encoder mean, log-variance [..., D]."""
    posterior = self.encoder.apply(params["encoder"], frames)
    return posterior.mean, posterior.log_var

  def decode(self, params, z):
    """z [..., D] -> decoder output [..., H, W, C]: logits (bernoulli) or means in [0, 1] (mse)."""
    out = self.decoder.apply(params["decoder"], z)
    return out if self.likelihood == "bernoulli" else jax.nn.sigmoid(out)

  def latents(self, params, frames):
    """The latent means that get decoded, their encoder log-variances and the decoding targets.

    frames [B, H, W, C] or [B, T, H, W, C] -> (mu, log_var) [B, (T'), D], targets: with inertia
    frames 0..T-1-delay are encoded, mu comes from ``inertia_means`` and targets are frames
    1+delay..T-1 for mu_1..mu_{T-1-delay} (mu_0 only starts the recursion); otherwise mu is the
    encoder mean of every frame and the targets are the frames themselves.
    """
    if self.dynamics != "inertia":
      mean, log_var = self.encode(params, frames)
      return mean, log_var, frames
    encoded = frames[:, :frames.shape[1] - self.delay]
    mean, log_var = self.encode(params, encoded)
    mu, _ = inertia_means(mean, self.gamma)
    return mu, log_var, frames[:, 1 + self.delay:]

  def _scored(self, x):
    """Drops mu_0 / its output for inertia (not scored); identity otherwise."""
    return x[:, 1:] if self.dynamics == "inertia" else x

  def reconstruct(self, params, frames):
    """Deterministic reconstructions (z = mu) and their targets, both [B, (T''), H, W, C]."""
    mu, _, targets = self.latents(params, frames)
    out = self.decode(params, self._scored(mu))
    return (jax.nn.sigmoid(out) if self.likelihood == "bernoulli" else out), targets

  # -- loss -------------------------------------------------------------------------------------

  def loss(self, params, batch, rng):
    frames = video.to_float(batch["frames"])
    mu, log_var, targets = self.latents(params, frames)
    if self.variational:
      z = mu + jnp.exp(0.5 * log_var) * jax.random.normal(rng, mu.shape)
    else:
      z = mu
    out = self.decode(params, self._scored(z))
    if self.likelihood == "bernoulli":
      error = optax.sigmoid_binary_cross_entropy(out, targets)
    else:
      error = (out - targets)**2
    per_example = lambda x: jnp.sum(x.reshape(x.shape[0], -1), axis=1)  # noqa: E731
    recon = jnp.mean(per_example(error))
    loss = recon
    terms = dict(recon=recon)
    if self.variational:
      kl_per_frame = kl.diag_gaussian_kl(mu, jnp.exp(log_var), 0.0, 1.0)
      terms["kl"] = jnp.mean(per_example(kl_per_frame))
      loss = loss + self.beta * terms["kl"]
    if self.dynamics == "linear_prediction":
      terms["pred"] = jnp.mean(prediction_penalty(mu))
      loss = loss + self.gamma * terms["pred"]
    return loss, dict(loss=loss, **terms)

  # -- evaluation -------------------------------------------------------------------------------

  def evaluate(self, params, data, workdir, rng):
    del rng
    frames, factors = _flat_frames(data["test"])
    encode = jax.jit(lambda x: self.encode(params, x)[0])
    results = representation_report(encode, frames, factors, workdir)
    clips = video.to_float(np.asarray(data["test"]["frames"]))
    recon, targets = evaluation.chunked_apply(jax.jit(lambda x: self.reconstruct(params, x)),
                                              clips, 64)
    results["recon_mse_per_pixel"] = float(np.mean((recon - targets)**2))
    results["beta_unnormalized"] = self.beta
    if self.dynamics == "inertia":
      mu = evaluation.chunked_apply(jax.jit(lambda x: self.latents(params, x)[0]), clips, 64)
      decoded_factors = np.asarray(data["test"]["factors"])[:, 1 + self.delay:]
      results["inertia_mcc"] = metrics.mcc(
          mu[:, 1:].reshape(-1, self.latent_dim),
          decoded_factors.reshape(-1, decoded_factors.shape[-1]))["score"]
    shown = lambda x: x.reshape((-1,) + self.image_shape)[:10]  # noqa: E731
    if workdir is not None:
      evaluation.plot_reconstructions(pathlib.Path(workdir) / "figures" / "reconstructions.png",
                                      shown(targets), shown(recon))
    return results
