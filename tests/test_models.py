"""The one model interface: every registered model implements it, and a new model needs only its
own file (here: this one), a config and one registry line to train, checkpoint and evaluate."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import (adagvae_sprites, betavae_sprites, circles_dynamic, circles_supervised,
                         falling, slowvae_sprites)
from nlvae import datasets, evaluation, models, train


class LinearAutoencoder:
  """A toy model: a linear map from a frame to one latent and back, MSE loss (docs/ARCHITECTURE.md)."""

  likelihood = "gaussian"

  def __init__(self, model_config, data_info):
    self.config = model_config
    self.num_pixels = int(np.prod(data_info.image_shape))

  def init(self, rng, batch):
    return {"encoder": 0.01 * jax.random.normal(rng, (self.num_pixels, self.config.latent_dim)),
            "decoder": jnp.zeros((self.config.latent_dim, self.num_pixels))}

  def encode(self, params, frames):
    mean = frames.reshape(frames.shape[:-3] + (-1,)) @ params["encoder"]
    return mean, jnp.zeros_like(mean)

  def decode(self, params, z):
    return z @ params["decoder"]

  def loss(self, params, batch, rng):
    del rng
    frames = batch["frames"].astype(jnp.float32) / 255.0
    flat = frames.reshape(frames.shape[:-3] + (-1,))
    mse = jnp.mean(optax.l2_loss(self.decode(params, self.encode(params, frames)[0]), flat))
    return mse, {"loss": mse}

  def evaluate(self, params, data, workdir, rng):
    frames = data["test"]["frames"].astype(np.float32) / 255.0
    codes = evaluation.chunked_apply(jax.jit(lambda f: self.encode(params, f)[0]), frames, 16)
    return {"code_abs_r": abs(float(np.corrcoef(codes[..., 0].ravel(),
                                                data["test"]["latent"].ravel())[0, 1]))}


def toy_config():
  config = falling.get_config("tiny")
  config.model = {"name": "linear_autoencoder", "latent_dim": 1}
  config.train.update(num_steps=30, learning_rate=1e-2, checkpoint_every=15, eval_every=15)
  return config


def test_a_new_model_trains_with_one_registry_line(tmp_path, monkeypatch):
  monkeypatch.setitem(models.MODELS, "linear_autoencoder",
                      "tests.test_models:LinearAutoencoder")  # the one registry line
  results = train.train_and_evaluate(toy_config(), tmp_path)
  assert results["num_steps"] == 30 and 0 <= results["code_abs_r"] <= 1
  assert json.loads((tmp_path / "eval.json").read_text())["code_abs_r"] == results["code_abs_r"]
  rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  losses = [r["train/loss"] for r in rows if "train/loss" in r]
  assert losses[-1] < losses[0]  # it learns
  assert (tmp_path / "checkpoints").is_dir()
  timing = json.loads((tmp_path / "timing.json").read_text())  # the command's phases
  assert timing["steps"] == 30
  phases = [timing[k] for k in ("setup_s", "train_s", "evaluation_s")]
  assert all(t > 0 for t in phases) and sum(phases) <= timing["total_s"] <= sum(phases) + 1.0


@pytest.mark.parametrize("module, generative", [
    (falling, True), (slowvae_sprites, True), (betavae_sprites, True), (adagvae_sprites, True),
    (circles_dynamic, True), (circles_supervised, False)])
def test_every_registered_model_implements_the_interface(module, generative):
  sprites = module in (slowvae_sprites, betavae_sprites, adagvae_sprites)
  config = module.get_config("" if sprites else "tiny")
  if sprites:
    config.data.num_train, config.data.num_test = 64, 16
  _, _, info = datasets.load(config.data)
  model = models.build(config.model, info)
  assert isinstance(model, models.Model)
  assert isinstance(model, models.GenerativeModel) == generative
  if generative:
    assert model.likelihood in ("bernoulli", "gaussian", "mse")
