"""experiments/bench_torch.py: the PyTorch SlowVAE used by `experiments.benchmark --only=pytorch`.

Needs the optional `bench` extra (torch); skipped without it.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

torch = pytest.importorskip("torch")

from experiments import bench_networks, bench_torch  # noqa: E402  (after the skip)
from nlvae import networks  # noqa: E402


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


def test_parameter_count_is_the_slowvae_count_in_both_frameworks():
  model = bench_torch.SlowVAE(latent_dim=10, channels=1, image_size=64)
  images, noise = _data(1)
  params = _flax_params(networks.slowvae_encoder(10), networks.slowvae_decoder(1, 64), images,
                        noise)
  assert bench_torch.num_params(model) == bench_torch.SLOWVAE_NUM_PARAMS == 763_285
  assert networks.num_params(params) == bench_torch.SLOWVAE_NUM_PARAMS


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


def test_torch_initialisation_differs_without_ported_weights():
  """Without params the torch module keeps PyTorch's own initialisation (a different loss), so
  the agreement above comes from load_flax_params, not from chance."""
  encoder, decoder = networks.slowvae_encoder(10), networks.slowvae_decoder(1, 64)
  images, noise = _data(2)
  params = _flax_params(encoder, decoder, images, noise)
  ported = bench_torch.TorchSlowVAEStep(images, noise, params=params).initial_loss
  fresh = bench_torch.TorchSlowVAEStep(images, noise).initial_loss
  assert abs(ported - fresh) > 1e-3 * abs(ported)


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


def test_load_flax_params_rejects_wrong_shapes():
  images, noise = _data(1)
  params = _flax_params(networks.slowvae_encoder(10), networks.slowvae_decoder(1, 64), images,
                        noise)
  with pytest.raises(ValueError, match="does not fit"):
    bench_torch.load_flax_params(bench_torch.SlowVAE(latent_dim=12), params)
