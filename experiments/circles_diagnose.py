r"""Why does (or doesn't) a beta-VAE encode the circle? Training diagnostics on the static task.

  python -m experiments.circles_diagnose --steps=3000 --every=250 --beta=0.001 \
      [--likelihood=mse|bernoulli] [--lr=1e-3] [--seed=0] [--out=runs/circles_diagnose/name.json]

Trains DynamicsVAE (dynamics "none") on the quick static data of experiments/circles_betavae.py
with its own small loop (Adam, batch 64) and, every --every steps, on 1,024 test images:
  * squared error per image summed over circle pixels (where the circle changes the image by
    > 0.02) and over the other (background) pixels, and what the best constant / mean image
    would score there (the "nothing encoded" baseline);
  * KL(q || N(0, I)) per latent (mean over images): an active latent carries information;
  * |Spearman| of each factor with its best latent (a per-factor MCC without the matching).
Prints one line per evaluation and writes the history as JSON.
"""
from __future__ import annotations

import json
import pathlib
import time

from absl import app
from absl import flags

_STEPS = flags.DEFINE_integer("steps", 3000, "training steps")
_EVERY = flags.DEFINE_integer("every", 250, "evaluate every this many steps")
_BETA = flags.DEFINE_float("beta", 0.001, "normalised beta (beta_norm)")
_LIKELIHOOD = flags.DEFINE_enum("likelihood", "mse", ["mse", "bernoulli"], "reconstruction")
_LR = flags.DEFINE_float("lr", 1e-3, "Adam learning rate")
_BATCH = flags.DEFINE_integer("batch", 64, "batch size")
_SEED = flags.DEFINE_integer("seed", 0, "initialisation / batch-order seed")
_NUM_TRAIN = flags.DEFINE_integer("num_train", 8192, "training images")
_OUT = flags.DEFINE_string("out", "", "JSON history path (default: runs/circles_diagnose/...)")


def circle_mask(factors):
  """Boolean [N, 32, 32, 1]: pixels where the circle changes the image by more than 0.02."""
  import numpy as np
  from data import circles
  far = np.array(factors, np.float64)
  images = circles.scene(far.astype(np.float32))
  size = images.shape[1]
  coords = (np.arange(2 * size) + 0.5) / (2 * size)
  bx = np.exp(-0.5 * ((coords[None] - far[:, 2, None]) / circles.GAUSS_SIGMA) ** 2)
  by = np.exp(-0.5 * ((coords[None] - far[:, 3, None]) / circles.GAUSS_SIGMA) ** 2)
  bg = circles.GAUSS_PEAK * by[:, :, None] * bx[:, None, :]
  bg = bg.reshape(len(far), size, 2, size, 2).mean(axis=(2, 4))[..., None]
  return (images - bg) > 0.02


def main(argv):
  del argv
  from nlvae import xla_cpu
  xla_cpu.use_fast_flags()  # before JAX's first computation starts the CPU backend
  import jax
  import jax.numpy as jnp
  import ml_collections
  import numpy as np
  import optax
  from scipy import stats

  from data import video
  from nlvae import datasets
  from nlvae.models import dynamics

  data_cfg = ml_collections.ConfigDict(dict(num_train=_NUM_TRAIN.value, num_test=1024, seed=0,
                                            circle_levels=16, gauss_levels=32))
  train, test, info = datasets.load_circles_static(data_cfg)
  model_cfg = ml_collections.ConfigDict(dict(
      name="dynamics_vae", latent_dim=4, variational=True, beta=_BETA.value,
      beta_is_normalized=True, likelihood=_LIKELIHOOD.value, dynamics="none", gamma=0.0, delay=1))
  model = dynamics.DynamicsVAE(model_cfg, info)
  key = jax.random.key(_SEED.value)
  params = model.init(key, {"frames": train["frames"][:1]})
  tx = optax.adam(_LR.value)
  opt_state = tx.init(params)

  @jax.jit
  def step(params, opt_state, frames, rng):
    (_, terms), grads = jax.value_and_grad(model.loss, has_aux=True)(params, {"frames": frames},
                                                                       rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, terms

  @jax.jit
  def probe(params, frames):
    mean, log_var = model.encode(params, frames)
    out = model.decode(params, mean)
    recon = jax.nn.sigmoid(out) if model.likelihood == "bernoulli" else out
    kl_lat = 0.5 * (mean**2 + jnp.exp(log_var) - 1.0 - log_var)  # KL per latent [N, D]
    return mean, kl_lat, recon

  x_test, f_test = video.to_float(test["frames"]), test["factors"]
  mask = circle_mask(f_test)
  mean_image = video.to_float(train["frames"]).mean(axis=0, keepdims=True)
  base = (x_test - mean_image) ** 2
  per_image = lambda e, m: float(np.mean(np.sum(np.where(m, e, 0.0), axis=(1, 2, 3))))  # noqa
  baseline = dict(circle=per_image(base, mask), background=per_image(base, ~mask))
  print(f"nothing encoded (mean image): circle SSE {baseline['circle']:.2f}, background SSE "
        f"{baseline['background']:.2f} per image; circle pixels per image "
        f"{mask.sum(axis=(1, 2, 3)).mean():.1f}; beta (unnormalised) {model.beta:.4g}")
  history = []
  rng = np.random.default_rng(_SEED.value)
  frames = train["frames"]
  start = time.time()
  for i in range(1, _STEPS.value + 1):
    batch = frames[rng.integers(0, len(frames), _BATCH.value)]
    params, opt_state, terms = step(params, opt_state, jnp.asarray(batch), jax.random.key(i))
    if i % _EVERY.value and i != _STEPS.value:
      continue
    mean, kl_lat, recon = (np.asarray(a) for a in probe(params, jnp.asarray(x_test)))
    err = (recon - x_test) ** 2
    corr = np.abs(stats.spearmanr(mean, f_test).statistic[:4, 4:])  # [latent, factor]
    corr = np.nan_to_num(corr)
    knn_r2, linear_r2 = dynamics.factor_r2(mean, f_test)
    row = dict(step=i, time_s=round(time.time() - start, 1),
               loss=float(terms["loss"]), recon=float(terms["recon"]), kl=float(terms["kl"]),
               circle_sse=per_image(err, mask), background_sse=per_image(err, ~mask),
               kl_per_latent=kl_lat.mean(axis=0).round(2).tolist(),
               best_corr_per_factor=corr.max(axis=0).round(3).tolist(),
               r2_knn=knn_r2.round(3).tolist(), r2_linear=linear_r2.round(3).tolist())
    history.append(row)
    print(f"step {i:5d} {row['time_s']:6.0f}s loss {row['loss']:7.2f} circle SSE "
          f"{row['circle_sse']:6.2f} bg SSE {row['background_sse']:6.2f} KL/latent "
          f"{row['kl_per_latent']} |rho| cx,cy,gx,gy {row['best_corr_per_factor']} R2 knn "
          f"{row['r2_knn']} linear {row['r2_linear']}", flush=True)
  out = pathlib.Path(_OUT.value or f"runs/circles_diagnose/{_LIKELIHOOD.value}_b{_BETA.value}"
                     f"_lr{_LR.value}_s{_SEED.value}.json")
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(json.dumps(dict(flags={k: flags.FLAGS[k].value for k in (
      "steps", "beta", "likelihood", "lr", "batch", "seed", "num_train")}, baseline=baseline,
      history=history), indent=1) + "\n")
  print(f"wrote {out}")


if __name__ == "__main__":
  app.run(main)
