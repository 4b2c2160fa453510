"""Models: each is a loss plus networks behind one interface, chosen by `config.model.name`.

Every model is constructed as Model(model_config, data_info) (data_info: the
nlvae.datasets.DatasetInfo a loader returns) and implements `Model`; the VAEs also implement
`GenerativeModel`. The one training loop (nlvae.train) drives every model the same way;
build(model_config, data_info, compute_dtype) gives its networks config.train.compute_dtype
(with_compute_dtype): a model keeps its nlvae.networks modules as attributes (self.encoder, ...)
built with their default dtype. To add a model: write
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


def build(model_config, data_info, compute_dtype: str | None = None):
  """Instantiates the model named by model_config.name, its networks computing in compute_dtype
  (config.train.compute_dtype; see with_compute_dtype)."""
  name = model_config.name
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; valid: {sorted(MODELS)}")
  module_name, class_name = MODELS[name].split(":")
  model = getattr(importlib.import_module(module_name), class_name)(model_config, data_info)
  return with_compute_dtype(model, compute_dtype)


def with_compute_dtype(model, compute_dtype: str | None):
  """The one place a model's networks get their compute dtype: every Flax module attribute of
  `model` with a `dtype` field (the nlvae.networks modules: model.encoder, model.decoder,
  model.network) is replaced, in a shallow copy of `model`, by its clone computing in
  `compute_dtype` ("float32" | "bfloat16", nlvae.networks.COMPUTE_DTYPES; None: the default,
  float32). Parameters stay float32 and the networks' outputs are float32 (nlvae.networks), so
  the losses, priors and KLs stay float32. "float32" leaves the model as it is; another dtype for
  a model without such networks is a ValueError (one line)."""
  import copy
  import dataclasses

  import flax.linen as nn
  import jax.numpy as jnp

  from nlvae import networks

  dtype = networks.compute_dtype(compute_dtype or networks.DEFAULT_COMPUTE_DTYPE)
  if dtype == jnp.float32:  # the networks' default: nothing to change
    return model
  found = [name for name, value in vars(model).items() if isinstance(value, nn.Module)
           and "dtype" in {field.name for field in dataclasses.fields(value)}]
  if not found:
    raise ValueError(f"model {type(model).__name__} has no nlvae.networks modules to compute in "
                     f"{compute_dtype}; use train.compute_dtype=float32")
  model = copy.copy(model)  # the caller's model keeps its float32 networks
  for name in found:
    setattr(model, name, getattr(model, name).clone(dtype=dtype))
  return model
