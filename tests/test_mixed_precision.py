"""config.train.compute_dtype: bfloat16 compute with float32 parameters (docs/training.md).

float32 (the default) is bit for bit what nlvae computed before the option existed; bfloat16 keeps
parameters, optimizer state, gradients, losses, priors and KLs float32 and stays within a stated
tolerance of float32. Tiny networks and synthetic frames (not data/), on the CPU, where bfloat16 is
emulated (slow but the same arithmetic).
"""
import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import configs, pendulum, slowvae_sprites, spring
from nlvae import datasets, models, networks, train

ROOT = pathlib.Path(__file__).resolve().parent.parent

# bfloat16 against float32, measured on the CPU. Relative difference of the loss: at init on the
# batches below at most 1.5e-6 (SlowVAE 6.5e-8, spring tiny 1.5e-6, pendulum tiny 9.2e-7); at init
# on real data at most 2.6e-6 over 4 seeds (SlowVAE, Ada-GVAE, spring, pendulum, circles tiny); over
# the 6 training steps of spring tiny at most 1.1e-6; on the trained spring quick run (runs/spring,
# step 2000, 4 test batches) at most 1.1e-4 (its KL term alone up to 0.6%). Gradients: cosine >=
# 0.99997 at init, 0.9989 trained; per layer at most 7.6% relative error at init (SlowVAE's
# expand kernel). Tolerances: 1e-3 for the loss (9x the trained value, several hundred times
# the tiny ones), cosine 0.999, 25% per layer (a bias gradient summed in bfloat16 was off by 120%).
LOSS_RTOL = 1e-3
GRAD_COSINE = 0.999
LAYER_GRAD_RTOL = 0.25
# The float32 init losses of these models on _frames' batches, computed before compute_dtype
# existed (nlvae at commit 3651277): the float32 default must reproduce them.
FLOAT32_LOSSES = {"slowvae": 1873.937744140625, "spring_tiny": 5682.7802734375,
                  "pendulum_tiny": 38438.95703125}


def _frames(shape, seed=0):
  """uint8 frames [..., H, W, 1]: a bright Gaussian blob at a random place per frame."""
  rng = np.random.default_rng(seed)
  *lead, height, width, _ = shape
  centres = rng.uniform(0.25, 0.75, tuple(lead) + (2,)) * (height, width)
  ys, xs = np.mgrid[:height, :width]
  d2 = (ys - centres[..., :1, None]) ** 2 + (xs - centres[..., 1:, None]) ** 2
  return (255 * np.exp(-d2 / (2 * (height / 8) ** 2)))[..., None].astype(np.uint8)


def _case(name):
  """(model config, DatasetInfo, batch) of a tiny SlowVAE or physics model."""
  if name == "slowvae":
    config = slowvae_sprites.get_config("quick")
    info = datasets.DatasetInfo(image_shape=(32, 32, 1), num_frames=2)
    return config.model, info, {"frames": _frames((4, 2, 32, 32, 1))}
  config = {"spring_tiny": spring, "pendulum_tiny": pendulum}[name].get_config("tiny")
  side, num_frames = config.data.options.image_size, config.data.options.num_frames
  info = datasets.DatasetInfo(image_shape=(side, side, 1), num_frames=num_frames,
                              system=config.data.system, dt=0.05)
  return config.model, info, {"frames": _frames((4, num_frames, side, side, 1))}


def _loss_and_grads(model, params, batch):
  (loss, _), grads = jax.jit(jax.value_and_grad(model.loss, has_aux=True))(
      params, batch, jax.random.PRNGKey(1))
  return loss, grads


def _float32_leaves(tree):
  """Whether every floating leaf is float32 (optax's step counts are int32)."""
  return all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(tree)
             if jnp.issubdtype(leaf.dtype, jnp.floating))


def test_the_default_is_float32():
  assert configs.train_config().compute_dtype == "float32"
  assert networks.slowvae_encoder().dtype == networks.slowvae_decoder().dtype == jnp.float32


@pytest.mark.parametrize("name", sorted(FLOAT32_LOSSES))
def test_float32_is_unchanged(name):
  model_config, info, batch = _case(name)
  model = models.build(model_config, info)
  assert models.build(model_config, info, "float32").encoder == model.encoder
  params = model.init(jax.random.PRNGKey(0), batch)
  assert _float32_leaves(params)
  loss, _ = jax.jit(model.loss)(params, batch, jax.random.PRNGKey(1))
  assert float(loss) == pytest.approx(FLOAT32_LOSSES[name], rel=1e-6)
  if name == "slowvae":  # 32x32 images: 2x2 maps before the hidden layer
    assert networks.num_params(params) == 370_069


@pytest.mark.parametrize("name", sorted(FLOAT32_LOSSES))
def test_bfloat16_keeps_float32_parameters_and_the_loss(name):
  model_config, info, batch = _case(name)
  f32 = models.build(model_config, info)
  bf16 = models.build(model_config, info, "bfloat16")
  assert bf16.encoder.dtype == bf16.decoder.dtype == jnp.bfloat16
  params = bf16.init(jax.random.PRNGKey(0), batch)
  jax.tree.map(np.testing.assert_array_equal, params, f32.init(jax.random.PRNGKey(0), batch))
  state = train.TrainState.create(apply_fn=None, params=params,
                                  tx=train.make_optimizer(configs.train_config()))
  assert _float32_leaves(state.params) and _float32_leaves(state.opt_state)

  mean, log_var = bf16.encode(params, jnp.asarray(batch["frames"], jnp.float32) / 255)
  assert mean.dtype == log_var.dtype == bf16.decode(params, mean).dtype == jnp.float32
  loss16, grads16 = _loss_and_grads(bf16, params, batch)
  loss32, grads32 = _loss_and_grads(f32, params, batch)
  assert loss16.dtype == jnp.float32 and _float32_leaves(grads16)
  assert "bf16" in str(jax.make_jaxpr(bf16.loss)(params, batch, jax.random.PRNGKey(1)))
  assert float(loss16) == pytest.approx(float(loss32), rel=LOSS_RTOL)
  a, b = (np.concatenate([np.ravel(g) for g in jax.tree.leaves(t)]) for t in (grads32, grads16))
  assert np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)) >= GRAD_COSINE
  # Layer by layer too: every bias gradient (a sum over the batch and the pixels) is accumulated
  # in float32; in bfloat16 the decoder's last bias got the wrong sign. (The keypoint maps' bias
  # has a zero gradient, a softmax being shift-invariant: hence the floor.)
  errors = {}
  for (path, g32), g16 in zip(jax.tree_util.tree_flatten_with_path(grads32)[0],
                              jax.tree.leaves(grads16)):
    scale = max(np.linalg.norm(g32), 1e-3 * np.linalg.norm(a))
    errors[jax.tree_util.keystr(path)] = float(np.linalg.norm(g16 - g32) / scale)
  assert max(errors.values()) < LAYER_GRAD_RTOL, errors


MODULES = {  # name -> (module factory of a dtype, input shape)
    "encoder": (lambda d: networks.Encoder(3, (4, 8), 4, 16, dtype=d), (2, 16, 16, 1)),
    "encoder_strided": (lambda d: networks.Encoder(3, (4, 8), 3, None, "strided", dtype=d),
                        (2, 16, 16, 2)),
    "keypoints": (lambda d: networks.KeypointEncoder(2, (4, 8), 4, 8, dtype=d), (2, 16, 16, 1)),
    "supervised": (lambda d: networks.SupervisedEncoder(3, (4, 8), 3, dtype=d), (2, 16, 16, 1)),
    "decoder": (lambda d: networks.Decoder((16, 16, 1), (8, 4), 4, 16, dtype=d), (2, 3)),
    "decoder_conv_transpose": (
        lambda d: networks.Decoder((16, 16, 2), (8, 4), 4, None, "conv_transpose", dtype=d),
        (2, 3)),
}


def _conv_operand_dtypes(jaxpr) -> list[set]:
  """The operand dtypes of every conv_general_dilated in `jaxpr`, nested jaxprs included."""
  found = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      found.append({v.aval.dtype for v in eqn.invars})
    for value in eqn.params.values():
      for inner in value if isinstance(value, (list, tuple)) else (value,):
        inner = getattr(inner, "jaxpr", inner)
        if hasattr(inner, "eqns"):
          found += _conv_operand_dtypes(inner)
  return found


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_network_computes_in_bfloat16_with_float32_parameters_and_outputs(name):
  factory, shape = MODULES[name]
  x = jnp.asarray(np.random.default_rng(0).uniform(size=shape), jnp.float32)
  f32, bf16 = factory(jnp.float32), factory(jnp.bfloat16)
  params = bf16.init(jax.random.PRNGKey(0), x)
  jax.tree.map(np.testing.assert_array_equal, params, f32.init(jax.random.PRNGKey(0), x))
  assert _float32_leaves(params)
  # Every convolution computes in bfloat16 but the keypoint encoder's last, its 1x1 keypoint maps
  # (float32 by design, networks' module doc), and the float32 module has no bfloat16 at all.
  convs = _conv_operand_dtypes(jax.make_jaxpr(bf16.apply)(params, x).jaxpr)
  float32_tail = 1 if name == "keypoints" else 0
  assert len(convs) > float32_tail
  assert all(dtypes == {jnp.dtype(jnp.bfloat16)} for dtypes in convs[:len(convs) - float32_tail])
  assert all(dtypes == {jnp.dtype(jnp.float32)} for dtypes in convs[len(convs) - float32_tail:])
  assert "bf16" not in str(jax.make_jaxpr(f32.apply)(params, x))
  out16, out32 = bf16.apply(params, x), f32.apply(params, x)
  for a, b in zip(jax.tree.leaves(out32), jax.tree.leaves(out16)):
    assert b.dtype == jnp.float32
    np.testing.assert_allclose(b, a, atol=0.05 * float(jnp.max(jnp.abs(a))))


def _losses(workdir):
  rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
  return np.array([row["train/loss"] for row in rows if "train/loss" in row])


def test_bfloat16_training_follows_float32(tmp_path):
  losses = {}
  for dtype in ("float32", "bfloat16"):
    config = spring.get_config("tiny")
    config.model.interventions = {}
    config.train.compute_dtype = dtype
    results = train.train_and_evaluate(config, tmp_path / dtype)
    assert results["num_steps"] == 6 and np.isfinite(results["latent/abs_pearson_r"])
    losses[dtype] = _losses(tmp_path / dtype)
  assert len(losses["bfloat16"]) == 3 and np.all(np.isfinite(losses["bfloat16"]))
  np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=LOSS_RTOL)
  assert np.all(np.diff(losses["bfloat16"]) < 0)  # decreasing, as the float32 run


def test_an_old_workdir_without_the_key_resumes_as_float32():
  config = spring.get_config("tiny")
  recorded = json.loads(config.to_json_best_effort())
  del recorded["train"]["compute_dtype"]
  assert train.training_differences(recorded, config) == []
  config.train.compute_dtype = "bfloat16"
  assert train.training_differences(recorded, config) == ["train.compute_dtype"]


def test_a_model_without_networks_cannot_run_in_bfloat16():
  class Toy:
    def __init__(self):
      self.weights = jnp.zeros(3)
  toy = Toy()
  assert models.with_compute_dtype(toy, "float32") is toy
  with pytest.raises(ValueError, match="Toy has no nlvae.networks modules"):
    models.with_compute_dtype(toy, "bfloat16")


def test_an_invalid_compute_dtype_is_one_line(tmp_path):
  config = spring.get_config("tiny")
  config.train.compute_dtype = "float16"
  with pytest.raises(train.UsageError, match=r"^train.compute_dtype must be one of float32, "
                     r"bfloat16, got 'float16'; set --config.train.compute_dtype=float32"):
    train.validate_config(config)
  out = subprocess.run([sys.executable, "-m", "experiments.run",
                        "--config=experiments/spring.py:tiny",
                        "--config.train.compute_dtype=float16", f"--workdir={tmp_path / 'w'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "JAX_PLATFORMS": "cpu"})
  assert out.returncode != 0
  lines = [line for line in out.stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and "train.compute_dtype" in lines[0], out.stderr
  assert not (tmp_path / "w").exists()
