"""Models: each is a loss plus networks behind one interface, chosen by `config.model.name`.

Every model is constructed as Model(model_config, data_info) (data_info: the
nlvae.datasets.DatasetInfo a loader returns) and implements `Model`; the VAEs also implement
`GenerativeModel`. The one training loop (nlvae.train) drives every model the same way. To add a model: write
nlvae/models/<name>.py with a class implementing `Model`, add one line to MODELS, and a config
(docs/ARCHITECTURE.md walks through an example).
"""
from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

import jax


@runtime_checkable
class Model(Protocol):
  """What the training loop needs of a model."""

  def init(self, rng: jax.Array, batch: dict) -> Any:
    """Parameters (a pytree: networks and any learned constants) for batches like `batch`."""

  def loss(self, params: Any, batch: dict, rng: jax.Array) -> tuple[jax.Array, dict]:
    """(scalar loss, dict of scalar metrics); the loss is a mean over the batch, so that data
    parallelism is exact. Pure and jit-able."""

  def evaluate(self, params: Any, data: dict, workdir, rng: jax.Array) -> dict:
    """Host-side final evaluation of data = {"train", "test", "info"}: a JSON-able dict of
    numbers (eval.json); may write figures/ and videos/ under workdir (nlvae.evaluation)."""


@runtime_checkable
class GenerativeModel(Model, Protocol):
  """A VAE: frames to a diagonal Gaussian posterior and latents back to a likelihood."""

  likelihood: str  # "bernoulli" (decode gives logits) or "gaussian" / "mse" (decode gives means)

  def encode(self, params: Any, frames: jax.Array) -> tuple[jax.Array, jax.Array]:
    """frames float32 [..., H, W, C] in [0, 1] -> posterior (mean, log_var), [..., D] each."""

  def decode(self, params: Any, z: jax.Array) -> jax.Array:
    """z [..., D] -> the likelihood's parameter [..., H, W, C]: Bernoulli logits or a mean
    (nlvae.evaluation.mean_image turns either into an image)."""


# name -> "module:Class", imported lazily so that one model's dependencies never slow another.
MODELS = {
    "physics_vae": "nlvae.models.physics_vae:PhysicsVAE",
    "beta_vae": "nlvae.models.slowvae:BetaVAE",
    "slowvae": "nlvae.models.slowvae:SlowVAE",
    "adagvae": "nlvae.models.adagvae:AdaGVAE",
    "supervised_control": "nlvae.models.dynamics:SupervisedControl",
    "dynamics_vae": "nlvae.models.dynamics:DynamicsVAE",
}


def build(model_config, data_info):
  """Instantiates the model named by model_config.name."""
  name = model_config.name
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; valid: {sorted(MODELS)}")
  module_name, class_name = MODELS[name].split(":")
  return getattr(importlib.import_module(module_name), class_name)(model_config, data_info)
