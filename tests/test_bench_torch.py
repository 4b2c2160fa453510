"""The side-by-side benchmark's networks: experiments/bench_torch.py (the PyTorch SlowVAE of
`experiments.benchmark --only=pytorch`; needs the optional `bench` extra, torch, and is skipped
without it) and bench_networks' candidate formulation (ScatterConvTranspose; no torch needed).
"""
import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments import bench_networks
from nlvae import networks

if importlib.util.find_spec("torch") is not None:
  from experiments import bench_torch
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="torch is not installed (the optional `bench` extra)")


def _data(batch, size=64, seed=0):
  rng = np.random.default_rng(seed)
  images = (rng.uniform(size=(batch, size, size, 1)) > 0.7).astype(np.float32)
  return images, rng.standard_normal((batch, 10)).astype(np.float32)


def _flax_params(encoder, decoder, images, noise, seed=0):
  """Random nlvae parameters drawn with numpy (no initialiser compilation), biases non-zero."""
  shapes = {"encoder": jax.eval_shape(encoder.init, jax.random.key(0), images),
            "decoder": jax.eval_shape(decoder.init, jax.random.key(0), noise)}
  rng = np.random.default_rng(seed)

  def draw(leaf):
    fan_in = np.prod(leaf.shape[:-1]) if len(leaf.shape) > 1 else 10.0
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(np.float32)
  return jax.tree_util.tree_map(draw, shapes)


@needs_torch
def test_parameter_count_is_the_slowvae_count_in_both_frameworks():
  model = bench_torch.SlowVAE(latent_dim=10, channels=1, image_size=64)
  images, noise = _data(1)
  params = _flax_params(networks.slowvae_encoder(10), networks.slowvae_decoder(1, 64), images,
                        noise)
  assert bench_torch.num_params(model) == bench_torch.SLOWVAE_NUM_PARAMS == 763_285
  assert networks.num_params(params) == bench_torch.SLOWVAE_NUM_PARAMS


@needs_torch
def test_same_weights_same_loss_and_same_adam_steps():
  """nlvae's parameters copied into the torch module: the loss before and after two Adam steps
  agrees to float32 rounding (relative 1e-5), so both benchmarks time the same computation."""
  encoder, decoder = networks.slowvae_encoder(10), networks.slowvae_decoder(1, 64)
  images, noise = _data(4)
  params = _flax_params(encoder, decoder, images, noise)
  tx = optax.adam(1e-4)
  step = bench_networks.make_train_step(encoder, decoder, tx)
  stacked = lambda x: jnp.asarray(np.stack([x] * 3))
  _, _, jax_losses = step(params, tx.init(params), stacked(images), stacked(noise))
  torch_step = bench_torch.TorchSlowVAEStep(images, noise, params=params, threads=2)
  torch_losses = [torch_step() for _ in range(3)]
  assert torch_step.initial_loss == pytest.approx(torch_losses[0], rel=1e-6)
  np.testing.assert_allclose(torch_losses, np.asarray(jax_losses), rtol=1e-5)
  assert torch_losses[2] < torch_losses[0]  # the optimizer moved the parameters (lr 1e-4)


@needs_torch
def test_torch_initialisation_differs_without_ported_weights():
  """Without params the torch module keeps PyTorch's own initialisation (a different loss), so
  the agreement above comes from load_flax_params, not from chance."""
  encoder, decoder = networks.slowvae_encoder(10), networks.slowvae_decoder(1, 64)
  images, noise = _data(2)
  params = _flax_params(encoder, decoder, images, noise)
  ported = bench_torch.TorchSlowVAEStep(images, noise, params=params).initial_loss
  fresh = bench_torch.TorchSlowVAEStep(images, noise).initial_loss
  assert abs(ported - fresh) > 1e-3 * abs(ported)


@needs_torch
def test_worker_process_matches_in_process_step():
  images, noise = _data(2, size=32)
  encoder, decoder = networks.slowvae_encoder(10), networks.slowvae_decoder(1, 32)
  params = _flax_params(encoder, decoder, images, noise)
  local = bench_torch.TorchSlowVAEStep(images, noise, params=params, threads=1)
  with bench_torch.TorchWorker(images, noise, params=params, threads=1) as worker:
    assert worker.num_params == local.num_params
    assert worker.initial_loss == pytest.approx(local.initial_loss, rel=1e-6)
    assert worker.info["threads"] == 1 and worker.info["matmul_gflops_per_s"] > 0
    # The worker has taken its first step at start-up (as jit's first call): its next loss is
    # the in-process step's second.
    local()
    assert worker() == pytest.approx(local(), rel=1e-5)


@needs_torch
def test_load_flax_params_rejects_wrong_shapes():
  images, noise = _data(1)
  params = _flax_params(networks.slowvae_encoder(10), networks.slowvae_decoder(1, 64), images,
                        noise)
  with pytest.raises(ValueError, match="does not fit"):
    bench_torch.load_flax_params(bench_torch.SlowVAE(latent_dim=12), params)


def test_scatter_conv_transpose_is_the_sub_pixel_function():
  """The candidate computes SubPixelConvTranspose(4, 2, 1) with the same parameters: outputs and
  gradients (input and kernel) agree to float32 rounding, for 1 and 3 output channels."""
  rng = np.random.default_rng(3)
  for shape, features in (((2, 5, 4, 6), 1), ((1, 3, 3, 2), 3)):
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    reference = networks.SubPixelConvTranspose(features, 4, 2, 1)
    candidate = bench_networks.ScatterConvTranspose(features)
    params = jax.tree_util.tree_map(
        lambda leaf: jnp.asarray(rng.standard_normal(leaf.shape), jnp.float32),
        jax.eval_shape(reference.init, jax.random.key(0), x))
    assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(
        jax.eval_shape(candidate.init, jax.random.key(0), x))
    weights = jnp.asarray(rng.standard_normal((shape[0], 2 * shape[1], 2 * shape[2], features)),
                          jnp.float32)
    outputs, grads = [], []
    for module in (reference, candidate):  # jitted: one compilation instead of one per op
      loss = lambda p, x, m=module: jnp.sum(weights * jnp.sin(m.apply(p, x)))
      outputs.append(jax.jit(module.apply)(params, x))
      grads.append(jax.jit(jax.grad(loss, argnums=(0, 1)))(params, x))
    assert outputs[0].shape == (shape[0], 2 * shape[1], 2 * shape[2], features)
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(grads[1]), jax.tree_util.tree_leaves(grads[0])):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_scatter_last_decoder_has_nlvae_parameters_and_function():
  decoder = networks.slowvae_decoder(1, 32)
  candidate = bench_networks.scatter_last_decoder(1, 32)
  latents = jnp.asarray(np.random.default_rng(0).standard_normal((2, 10)), jnp.float32)
  params = jax.jit(decoder.init)(jax.random.key(1), latents)
  np.testing.assert_allclose(jax.jit(candidate.apply)(params, latents),
                             jax.jit(decoder.apply)(params, latents), rtol=1e-5, atol=1e-5)
  assert bench_networks.forward_flops(networks.slowvae_encoder(10), candidate, 1) == \
      bench_networks.forward_flops(networks.slowvae_encoder(10), decoder, 1)
