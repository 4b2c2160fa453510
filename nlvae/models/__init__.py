"""Models: each is a loss plus networks, chosen by `config.model.name`.

A model is any object with
  init(rng, batch) -> params                      a pytree (networks and learnable physics)
  loss(params, batch, rng) -> (loss, metrics)     scalar loss (a mean over the batch, so that data
                                                  parallelism is exact) and a dict of scalars
  evaluate(params, data, workdir, rng) -> dict    host-side final evaluation, JSON-able; may write
                                                  figures/ and videos/ under workdir
and is constructed as Model(model_config, data_info). The one training loop (nlvae.train) drives
every model the same way.
"""
from __future__ import annotations

import importlib

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
