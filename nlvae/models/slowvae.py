"""SlowVAE (Klindt et al., ICLR 2021) and its beta-VAE baseline on pairs of sprite frames.

Data (nlvae.datasets.load_sprites, data.name "sprites"): procedural dSprites pairs (t-1, t)
from data.sprites.sample_pairs, {"frames": uint8 [N, 2, 64, 64, 1], "factors": int32 [N, 2, 5]}.
A training batch of N pairs holds 2N images (the reference's batch of 64 images is 32 pairs).

Networks: nlvae.networks.slowvae_encoder / slowvae_decoder (763,285 parameters for z = 10).
Posterior q(z | x) = N(mu, diag exp(log_var)) per image; decoder logits of a Bernoulli likelihood.

Losses (pure functions below; shapes: images and logits float32 [N, 2, H, W, C], posterior
moments float32 [N, 2, D]; "per image" means averaged over the 2N images, "per pair" over N pairs):

  beta-VAE   recon + beta * kl
  SlowVAE    2 * recon + beta * kl + gamma * laplace_kl

  recon       Bernoulli negative log-likelihood, summed over pixels, per image.
  kl          KL(q || N(0, I)), summed over latents, per image (the reference averages over the
              64-image batch, i.e. over both frames of every pair).
  laplace_kl  per pair,  CE_0 + CE_1 - c * H,   with
              CE_a = sum_d E_{z ~ q_a}[-log Laplace(z_d; mu_b,d, 1/lambda)], b the other frame of
                     the pair (location = the other frame's MEAN: a point history),
              H    = entropy of q, per image,
              c    = 2 for kl_form="symmetric" (default): exactly KL(q_0 || p(. | mu_1))
                     + KL(q_1 || p(. | mu_0)) with p(z_t | z_s) = Laplace(z_s, 1/lambda), which is
                     >= 0; c = 1 for kl_form="reference": the SlowVAE release subtracts the
                     per-image entropy once from the sum of the two cross-entropies, so its loss
                     is the symmetric one + gamma * H: the Laplace term rewards posterior entropy
                     half as much as a KL would (narrower posteriors).
  The reference's beta-VAE baseline is its SlowVAE loss with beta 8 and gamma 0, i.e.
  2 * recon + 8 * kl = 2 * (recon + 4 * kl): beta 4 in the beta-VAE loss above (Adam is invariant
  to the overall factor 2 up to its epsilon).

Why not priors.sequence_kl. `priors.laplace_transition` + `priors.sequence_kl(estimator=
"sequential")` computes E_{h ~ q(z_{t-1})} KL(q_t || Laplace(h, 1/lambda)): the history is sampled
from its posterior (variance exp(log_var_{t-1}) > 0), frame t-1 itself is only compared with the
N(0, I) initial prior, and the term is a Monte Carlo estimate. The SlowVAE objective instead uses
the other frame's mean as a point history, in both directions, in closed form. The two agree only
when the history variance is zero (tests/test_slowvae.py checks exactly that), so the Laplace
term here is built from the same closed-form pieces that sequence_kl uses
(`kl.gaussian_laplace_cross_entropy`, `kl.diag_gaussian_entropy`), not from sequence_kl.

Evaluation (`evaluate`): the loss terms on the whole test split (prefix "test_"), disentanglement
metrics of the encoder mean on fresh samples of the sprite grid (nlvae.metrics; model config
`eval_scale` "quick" (sample sizes / 10) or "full" (disentanglement_lib's), and `eval_metrics`, a
comma-separated subset of METRIC_GROUPS or "all"), the |Spearman| correlation of the latent
matched to each factor ("mcc_factor/<name>", an independent MCC sample), and a latent traversal
GIF, workdir/videos/latent_traversal.gif, one row per latent.
"""
from __future__ import annotations

import functools
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data import video
from nlvae import kl, metrics, networks

# ------------------------------------------------------------------------------------------------
# Losses: pure functions of network outputs.

KL_FORMS = ("symmetric", "reference")


def bernoulli_reconstruction(logits: jax.Array, images: jax.Array) -> jax.Array:
  """-log Bernoulli(images | sigmoid(logits)), summed over pixels: [..., H, W, C] -> [...]."""
  return jnp.sum(optax.sigmoid_binary_cross_entropy(logits, images), axis=(-3, -2, -1))


def standard_normal_kl(mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """KL(N(mean, diag exp(log_var)) || N(0, I)), summed over latents: [..., D] -> [...]."""
  return kl.diag_gaussian_kl(mean, jnp.exp(log_var), 0.0, 1.0)


def laplace_transition_cross_entropy(mean: jax.Array, log_var: jax.Array,
                                     rate: float) -> jax.Array:
  """CE_0 + CE_1 of every pair: mean, log_var [N, 2, D] -> [N].

  CE_a = sum_d E_{z ~ N(mean_a, exp(log_var_a))}[-log Laplace(z_d; mean_b,d, 1/rate)], b = 1 - a:
  each frame's posterior against a Laplace centred on the other frame's posterior mean.
  """
  if mean.ndim < 2 or mean.shape[-2] != 2:
    raise ValueError(f"SlowVAE needs pairs of frames: posterior moments [N, 2, D], got shape "
                     f"{mean.shape}; use a pair dataset (data.name='sprites').")
  std = jnp.exp(0.5 * log_var)
  other_mean = mean[..., ::-1, :]  # frame 1's mean for frame 0 and vice versa
  cross_entropy = kl.gaussian_laplace_cross_entropy(mean, std, other_mean, rate)
  return jnp.sum(cross_entropy, axis=(-2, -1))


def beta_vae_objective(logits: jax.Array, images: jax.Array, mean: jax.Array, log_var: jax.Array,
                       *, beta: float) -> tuple[jax.Array, dict[str, jax.Array]]:
  """beta-VAE loss recon + beta * kl, every image independent.

  Args:
    logits, images: float32 [..., H, W, C] (images in [0, 1]).
    mean, log_var: float32 [..., D], the posterior of each image.
    beta: weight of the KL term.
  Returns:
    (loss, {"loss", "recon", "kl"}): scalars, means over all images.
  """
  recon = jnp.mean(bernoulli_reconstruction(logits, images))
  kl_normal = jnp.mean(standard_normal_kl(mean, log_var))
  loss = recon + beta * kl_normal
  return loss, {"loss": loss, "recon": recon, "kl": kl_normal}


def slowvae_objective(logits: jax.Array, images: jax.Array, mean: jax.Array, log_var: jax.Array,
                      *, beta: float = 1.0, gamma: float = 10.0, rate: float = 6.0,
                      kl_form: str = "symmetric") -> tuple[jax.Array, dict[str, jax.Array]]:
  """SlowVAE loss 2 * recon + beta * kl + gamma * laplace_kl (module docstring).

  Args:
    logits, images: float32 [N, 2, H, W, C], pairs (t-1, t), images in [0, 1].
    mean, log_var: float32 [N, 2, D], posterior of every frame.
    beta, gamma: weights of the N(0, I) KL and of the Laplace transition term.
    rate: lambda, the rate (inverse scale) of the Laplace transition prior.
    kl_form: "symmetric" (entropy subtracted once per direction: a true KL) or "reference"
      (subtracted once per pair, as the SlowVAE release does).
  Returns:
    (loss, metrics) with scalar metrics loss, recon (per image), kl (per image),
    laplace_cross_entropy (CE_0 + CE_1, per pair), entropy (per image), laplace_kl (per pair).
  """
  if kl_form not in KL_FORMS:
    raise ValueError(f"kl_form must be one of {KL_FORMS}, got {kl_form!r}; set "
                     "--config.model.kl_form.")
  recon = jnp.mean(bernoulli_reconstruction(logits, images))
  kl_normal = jnp.mean(standard_normal_kl(mean, log_var))
  cross_entropy = jnp.mean(laplace_transition_cross_entropy(mean, log_var, rate))
  entropy = jnp.mean(kl.diag_gaussian_entropy(jnp.exp(log_var)))
  laplace_kl = cross_entropy - (2.0 if kl_form == "symmetric" else 1.0) * entropy
  loss = 2.0 * recon + beta * kl_normal + gamma * laplace_kl
  return loss, {"loss": loss, "recon": recon, "kl": kl_normal,
                "laplace_cross_entropy": cross_entropy, "entropy": entropy,
                "laplace_kl": laplace_kl}


# ------------------------------------------------------------------------------------------------
# Evaluation helpers.

# eval_metrics group -> the keys it adds to eval.json: nlvae.metrics' metric names (their keys
# partition metrics.COMPUTE_ALL_KEYS).
METRIC_GROUPS = metrics.METRIC_KEYS
SAMPLE_SIZES = {"quick": metrics.QUICK_SAMPLE_SIZES, "full": metrics.FULL_SAMPLE_SIZES}


def parse_metric_groups(eval_metrics: str) -> tuple[str, ...]:
  """"all" or a comma-separated subset of METRIC_GROUPS -> the groups, in METRIC_GROUPS order."""
  names = {name.strip() for name in eval_metrics.split(",") if name.strip()}
  if names == {"all"}:
    return tuple(METRIC_GROUPS)
  unknown = sorted(names - set(METRIC_GROUPS))
  if unknown or not names:
    raise ValueError(f"model.eval_metrics must be 'all' or a comma-separated subset of "
                     f"{list(METRIC_GROUPS)}, got {eval_metrics!r} (unknown: {unknown}).")
  return tuple(name for name in METRIC_GROUPS if name in names)


def disentanglement_metrics(ground_truth, representation_fn, random_state: np.random.Generator,
                            *, scale: str = "quick", groups: tuple[str, ...] = tuple(METRIC_GROUPS),
                            observations_per_call: int = 2048) -> dict[str, float]:
  """The metrics of `groups` with nlvae.metrics' sample sizes at `scale` ("quick" or "full").

  `metrics.compute_all(..., metrics=groups)`: one shared train and test pool, just large enough
  for the chosen sample-based metrics, so that e.g. DCI's boosted trees and the ~300k encodes of
  BetaVAE/FactorVAE can be left out on CPU.
  With "mcc", also "mcc_factor/<factor name>": |Spearman| of the latent matched to each factor on
  an independent sample of the MCC size (its mean is a second estimate of mcc).
  """
  if scale not in SAMPLE_SIZES:
    raise ValueError(f"model.eval_scale must be one of {sorted(SAMPLE_SIZES)}, got {scale!r}.")
  results = metrics.compute_all(ground_truth, representation_fn, random_state, scale=scale,
                                metrics=groups, observations_per_call=observations_per_call)
  if "mcc" in groups:
    codes, factors = metrics.sample_codes_and_factors(ground_truth, representation_fn,
                                                      SAMPLE_SIZES[scale].mcc, random_state,
                                                      observations_per_call)
    per_factor = metrics.mcc(codes, factors, seed=int(random_state.integers(2**31)))["per_factor"]
    names = getattr(ground_truth, "factor_names", [str(j) for j in range(len(per_factor))])
    results.update({f"mcc_factor/{name}": float(v) for name, v in zip(names, per_factor)})
  return results


def padded_chunks(array: np.ndarray, chunk: int):
  """Yields (start, array[start:start + chunk] zero-padded to `chunk` rows) over the rows of
  `array` [n, ...], so that a jitted function sees one shape; rows past n are padding."""
  for start in range(0, len(array), chunk):
    part = array[start:start + chunk]
    yield start, np.pad(part, ((0, chunk - len(part)),) + ((0, 0),) * (part.ndim - 1))


def traversal_grid(images: np.ndarray, gap: int = 2) -> np.ndarray:
  """Tiles images [T, R, K, H, W, C] into video frames [T, R (H + gap) - gap, K (W + gap) - gap, C]
  (row r, column k), separated by `gap` white pixels; uint8 in, uint8 out."""
  num_frames, rows, cols, height, width, channels = images.shape
  padded = np.pad(images, ((0, 0),) * 3 + ((0, gap), (0, gap), (0, 0)), constant_values=255)
  grid = padded.transpose(0, 1, 3, 2, 4, 5).reshape(num_frames, rows * (height + gap),
                                                     cols * (width + gap), channels)
  return grid[:, :grid.shape[1] - gap, :grid.shape[2] - gap]


def traversal_latents(codes: np.ndarray, limit: float, num_steps: int) -> np.ndarray:
  """Latent traversals: codes [K, D] -> [T, D, K, D], where [t, d, k] is codes[k] with latent d
  set to linspace(-limit, limit, T)[t]."""
  values = np.linspace(-limit, limit, num_steps)
  num_codes, dim = codes.shape
  latents = np.broadcast_to(codes, (num_steps, dim, num_codes, dim)).copy()
  latents[:, np.arange(dim), :, np.arange(dim)] = values[None, :, None]  # [D, T, K] view order
  return latents


# ------------------------------------------------------------------------------------------------
# Networks: jitted with the (hashable) Flax modules static, so that every model instance with the
# same networks shares one compilation (eager Flax init compiles op by op: ~20 s on CPU).


@functools.partial(jax.jit, static_argnums=(0, 1))
def init_networks(encoder: networks.Encoder, decoder: networks.Decoder, rng: jax.Array,
                  images: jax.Array) -> dict:
  """{"encoder": ..., "decoder": ...} parameters; images float32 [..., H, W, C] (shape only)."""
  encoder_rng, decoder_rng = jax.random.split(rng)
  return {"encoder": encoder.init(encoder_rng, images),
          "decoder": decoder.init(decoder_rng, jnp.zeros((1, encoder.latent_dim), images.dtype))}


@functools.partial(jax.jit, static_argnums=0)
def encoder_mean(encoder: networks.Encoder, params, images: jax.Array) -> jax.Array:
  """Posterior means float32 [..., D] of images float32 [..., H, W, C]."""
  return encoder.apply(params, images).mean


@functools.partial(jax.jit, static_argnums=0)
def decoder_probabilities(decoder: networks.Decoder, params, latents: jax.Array) -> jax.Array:
  """Bernoulli means sigmoid(logits) float32 [..., H, W, C] of latents [..., D]."""
  return jax.nn.sigmoid(decoder.apply(params, latents))


# ------------------------------------------------------------------------------------------------
# Models.


class BetaVAE:
  """beta-VAE on the frames of a pair dataset (every image independent).

  model_config fields (defaults): latent_dim (10), beta (4.0: the reference baseline, see the
  module docstring), upsample ("subpixel"), eval_scale ("quick"), eval_metrics
  ("mcc,mig,sap,modularity" at quick scale: DCI's boosted trees and the BetaVAE/FactorVAE scores'
  ~300k encodes take minutes on CPU; "all" for the whole suite), observations_per_call (2048),
  traversal_limit (3.0), traversal_steps (15), traversal_examples (3).
  params: {"encoder": ..., "decoder": ...}.
  """

  def __init__(self, model_config, data_info):
    self.config = model_config
    self.latent_dim = int(model_config.latent_dim)
    self.beta = float(model_config.beta)
    height, width, channels = data_info.image_shape
    if height != width:
      raise ValueError(f"{type(self).__name__} needs square images, got "
                       f"{data_info.image_shape}.")
    self.encoder = networks.slowvae_encoder(self.latent_dim)
    self.decoder = networks.slowvae_decoder(channels, height,
                                            model_config.upsample)
    self.ground_truth = data_info.ground_truth
    self.eval_scale = model_config.eval_scale
    if self.eval_scale not in SAMPLE_SIZES:
      raise ValueError(f"model.eval_scale must be one of {sorted(SAMPLE_SIZES)}, got "
                       f"{self.eval_scale!r}.")
    self.metric_groups = parse_metric_groups(model_config.eval_metrics)
    self._per_example_metrics = jax.jit(self._per_example_metrics_fn)

  # -- interface -----------------------------------------------------------------------------
  def init(self, rng: jax.Array, batch: dict) -> dict:
    return init_networks(self.encoder, self.decoder, rng,
                         self.images({"frames": batch["frames"][:1]}))

  def loss(self, params: dict, batch: dict, rng: jax.Array):
    """Scalar loss (mean over the batch) and metrics; batch["frames"] uint8 [N, ..., H, W, C]
    (SlowVAE: pairs [N, 2, H, W, C])."""
    images = self.images(batch)
    mean, log_var = self.encode(params, images)
    return self.objective(self.decode_sample(params, mean, log_var, rng), images, mean, log_var)

  def objective(self, logits, images, mean, log_var):
    return beta_vae_objective(logits, images, mean, log_var, beta=self.beta)

  def evaluate(self, params: dict, data: dict, workdir, rng: jax.Array) -> dict:
    """Test-split loss terms, disentanglement metrics (only when data_info has a
    ground_truth sampler) and the traversal GIF of the first frames of the first test examples
    (module docstring)."""
    start = time.perf_counter()
    test_rng, metrics_rng = jax.random.split(rng)
    results = {f"test_{k}": v for k, v in self.dataset_metrics(params, data["test"],
                                                               test_rng).items()}
    if self.ground_truth is not None:
      random_state = np.random.default_rng(int(jax.random.randint(metrics_rng, (), 0, 2**31 - 1)))
      results.update(disentanglement_metrics(
          self.ground_truth, self.representation_fn(params), random_state,
          scale=self.eval_scale, groups=self.metric_groups,
          observations_per_call=int(self.config.observations_per_call)))
    num_examples = int(self.config.traversal_examples)
    test_frames = data["test"]["frames"]
    first_frames = test_frames.reshape((len(test_frames), -1) + test_frames.shape[-3:])[:, 0]
    frames = self.traversal_video(params, first_frames[:num_examples])
    video.write_video(pathlib.Path(workdir) / "videos" / "latent_traversal.gif", frames, fps=8)
    results["eval_seconds"] = time.perf_counter() - start
    return results

  # -- helpers ---------------------------------------------------------------------------------
  @staticmethod
  def images(batch: dict) -> jax.Array:
    """uint8 frames {0..255} -> float32 in [0, 1], same shape."""
    return video.to_float(jnp.asarray(batch["frames"]))

  def encode(self, params: dict, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Posterior moments (mean, log_var), float32 [..., D] each, of images float32 [..., H, W, C]."""
    posterior = self.encoder.apply(params["encoder"], images)
    return posterior.mean, posterior.log_var

  def decode(self, params: dict, z: jax.Array) -> jax.Array:
    """Bernoulli logits [..., H, W, C] of latents z [..., D]."""
    return self.decoder.apply(params["decoder"], z)

  likelihood = "bernoulli"

  def decode_sample(self, params: dict, mean: jax.Array, log_var: jax.Array,
                    rng: jax.Array) -> jax.Array:
    """Decoder logits [..., H, W, C] of one reparameterised sample z ~ N(mean, exp(log_var))."""
    z = mean + jnp.exp(0.5 * log_var) * jax.random.normal(rng, mean.shape, mean.dtype)
    return self.decode(params, z)

  def representation_fn(self, params: dict, chunk: int = 512):
    """observations float [n, H, W, C] -> encoder means float32 [n, D] (numpy), jitted on
    fixed-size chunks (the last one padded) so that any n compiles once."""
    def represent(observations):
      observations = np.asarray(observations, np.float32)
      codes = [np.asarray(encoder_mean(self.encoder, params["encoder"], padded))
               for _, padded in padded_chunks(observations, chunk)]
      return np.concatenate(codes)[:len(observations)]
    return represent

  def _per_example_metrics_fn(self, params, frames, rng):
    """Loss metrics of each example (pair) separately: frames [n, ...] -> {name: [n]}."""
    def one(pair, key):
      return self.loss(params, {"frames": pair[None]}, key)[1]
    return jax.vmap(one)(frames, jax.random.split(rng, frames.shape[0]))

  def dataset_metrics(self, params: dict, split: dict, rng: jax.Array,
                      chunk: int = 256) -> dict[str, float]:
    """Loss metrics averaged over every example (pair) of a split: the means over examples of
    the per-example metrics (fixed-size chunks, the last one padded, so one compilation)."""
    frames = split["frames"]
    sums = {}
    for start, padded in padded_chunks(frames, min(chunk, len(frames))):
      values = jax.device_get(self._per_example_metrics(params, padded,
                                                        jax.random.fold_in(rng, start)))
      for key, value in values.items():
        sums[key] = sums.get(key, 0.0) + float(np.sum(value[:len(frames) - start]))
    return {key: value / len(frames) for key, value in sums.items()}

  def traversal_video(self, params: dict, frames: np.ndarray) -> np.ndarray:
    """Latent traversal of K examples: frames uint8 [K, H, W, C] -> video uint8 [2T, rows, cols, C].

    Row d varies latent d over linspace(-limit, limit, T) (the others at each example's encoder
    mean), one column per example; the video plays the sweep forth and back.
    """
    limit = float(self.config.traversal_limit)
    num_steps = int(self.config.traversal_steps)
    codes = self.representation_fn(params)(video.to_float(np.asarray(frames)))
    latents = traversal_latents(codes, limit, num_steps)  # [T, D, K, D]
    images = np.asarray(decoder_probabilities(self.decoder, params["decoder"],
                                              jnp.asarray(latents, jnp.float32)))
    grid = traversal_grid(video.to_uint8(images))
    return np.concatenate([grid, grid[::-1]])


class SlowVAE(BetaVAE):
  """SlowVAE: beta-VAE plus a Laplace prior on the transition between the frames of a pair.

  model_config fields: those of BetaVAE, with beta (1.0), and gamma (10.0), rate_prior (lambda,
  6.0), kl_form ("symmetric" or "reference"; see the module docstring).
  """

  def __init__(self, model_config, data_info):
    super().__init__(model_config, data_info)
    self.gamma = float(model_config.gamma)
    self.rate = float(model_config.rate_prior)
    self.kl_form = model_config.kl_form
    if self.kl_form not in KL_FORMS:
      raise ValueError(f"model.kl_form must be one of {KL_FORMS}, got {self.kl_form!r}.")
    if not self.rate > 0:
      raise ValueError(f"model.rate_prior must be positive, got {self.rate}.")

  def objective(self, logits, images, mean, log_var):
    return slowvae_objective(logits, images, mean, log_var, beta=self.beta, gamma=self.gamma,
                             rate=self.rate, kl_form=self.kl_form)
