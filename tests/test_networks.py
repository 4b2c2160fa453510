"""Tests of nlvae.networks: sub-pixel transposed convs, SlowVAE shapes and size, jit behaviour."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from nlvae import networks


def _init(module, *args, seed=0):
  """Random parameters of the right shapes, drawn with numpy.

  Tracing ``module.init`` gives the shapes without compiling the initialisers (compiling the
  random-number generators costs ~1 s per layer on CPU). Kernels get the LeCun-normal scale.
  """
  shapes = jax.eval_shape(module.init, jax.random.key(0), *args)
  rng = np.random.default_rng(seed)
  def draw(shape):
    scale = 1 / np.sqrt(np.prod(shape.shape[:-1])) if len(shape.shape) > 1 else 0.1
    return jnp.asarray(scale * rng.standard_normal(shape.shape), jnp.float32)
  return jax.tree_util.tree_map(draw, shapes)


def _normal(seed, shape):
  return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


def _uniform(seed, shape):
  """Data drawn with numpy (jax.random would compile a generator for every shape)."""
  return jnp.asarray(np.random.default_rng(seed).uniform(size=shape), jnp.float32)


def _apply(module, params, *args):
  return jax.jit(module.apply)(params, *args)


def _torch_conv_transpose(x, kernel, bias, stride, padding):
  """PyTorch ConvTranspose2d by its definition (a scatter), in float64 numpy.

  PyTorch's weight [in, out, kh, kw] is our kernel flipped: weight[i, o, a, b] = kernel[k-1-a, k-1-b, i, o];
  out[s*i - p + a, s*j - p + b] += x[i, j] @ weight[:, :, a, b].
  """
  x, kernel = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
  batch, height, width, _ = x.shape
  k = kernel.shape[0]
  weight = kernel[::-1, ::-1]
  full = np.zeros((batch, (height - 1) * stride + k, (width - 1) * stride + k, kernel.shape[-1]))
  for a in range(k):
    for b in range(k):
      full[:, a:a + stride * height:stride, b:b + stride * width:stride] += x @ weight[a, b]
  out_h, out_w = (height - 1) * stride - 2 * padding + k, (width - 1) * stride - 2 * padding + k
  return full[:, padding:padding + out_h, padding:padding + out_w] + np.asarray(bias)


# (kernel, stride, padding, input H, W, in channels, out channels)
CONFIGS = [
    (4, 2, 1, 4, 4, 64, 64),  # SlowVAE up-convs
    (4, 2, 1, 5, 3, 3, 1),  # non-square, odd sizes, one output channel
    (2, 2, 0, 3, 4, 5, 6),  # no overlap: a single tap
    (6, 2, 2, 5, 5, 4, 7),  # three taps per phase
    (7, 3, 2, 4, 3, 2, 5),  # stride 3, some phases use fewer taps
    (8, 4, 2, 3, 2, 3, 2),  # stride 4, two phases shifted
    (4, 1, 0, 1, 1, 256, 64),  # SlowVAE's first decoder layer: 1x1 -> 4x4, a matrix product
    (4, 1, 1, 1, 1, 6, 5),  # 1x1 -> 2x2
    (3, 1, 1, 6, 5, 4, 3),  # stride 1 on a map: an ordinary convolution
]


@pytest.mark.parametrize('k,s,p,h,w,cin,cout', CONFIGS)
def test_subpixel_equals_conv_transpose_forward_and_gradients(k, s, p, h, w, cin, cout):
  x = _normal(0, (2, h, w, cin))
  layer = networks.SubPixelConvTranspose(cout, k, s, p)
  reference = nn.ConvTranspose(cout, (k, k), (s, s), padding=[(k - 1 - p, k - 1 - p)] * 2)
  params = _init(layer, x, seed=1)
  weights = _normal(2, (2, (h - 1) * s - 2 * p + k,
                                                  (w - 1) * s - 2 * p + k, cout))

  @jax.jit
  def outputs_and_gradients(params, x):
    def loss(module, params, x):
      y = module.apply(params, x)
      return jnp.sum(weights * jnp.sin(y)), y
    return [jax.grad(loss, argnums=(1, 2), has_aux=True)(module, params, x)
            for module in (layer, reference)]

  (grads, y), (ref_grads, ref_y) = outputs_and_gradients(params, x)
  assert y.shape == weights.shape
  np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(
      y, _torch_conv_transpose(x, params['params']['kernel'], params['params']['bias'], s, p),
      rtol=1e-5, atol=1e-5)
  for g, r in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
    assert g.shape == r.shape
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(r))))


# (kernel, padding, input H, W, in channels, out channels)
DOWNSAMPLE_CONFIGS = [
    (4, 1, 8, 8, 3, 5),  # SlowVAE encoder convs
    (3, 1, 8, 6, 2, 4),  # disentangled-dynamics encoder convs (odd kernel: zero-padded to 4)
    (4, 0, 7, 9, 2, 3),  # odd sizes, the last row beyond every window
    (5, 2, 9, 5, 1, 2),
]


@pytest.mark.parametrize('k,p,h,w,cin,cout', DOWNSAMPLE_CONFIGS)
def test_space_to_depth_equals_strided_conv_forward_and_gradients(k, p, h, w, cin, cout):
  x = _normal(0, (2, h, w, cin))
  layer = networks.SpaceToDepthConv(cout, k, p)
  reference = nn.Conv(cout, (k, k), strides=2, padding=[(p, p)] * 2)
  params = _init(layer, x, seed=1)
  weights = _normal(2, (2, (h + 2 * p - k) // 2 + 1, (w + 2 * p - k) // 2 + 1, cout))

  def loss(module, params, x):
    y = module.apply(params, x)
    return jnp.sum(weights * jnp.sin(y)), y

  (grads, y), (ref_grads, ref_y) = [jax.grad(loss, argnums=(1, 2), has_aux=True)(m, params, x)
                                    for m in (layer, reference)]
  assert y.shape == weights.shape
  np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
  for g, r in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(ref_grads)):
    assert g.shape == r.shape
    np.testing.assert_allclose(g, r, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(r))))


def test_encoder_downsample_methods_compute_the_same_function():
  images = _normal(0, (3, 32, 32, 2))
  fast, flax_layers = networks.slowvae_encoder(4), networks.slowvae_encoder(4)
  flax_layers = flax_layers.clone(downsample='strided')
  params = _init(fast, images, seed=1)
  a, b = fast.apply(params, images), flax_layers.apply(params, images)
  for x, y in zip(a, b):
    np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(y))))


def _raises_on_init(module, *args, match):
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(module.init, jax.random.key(0), *args)


def test_bad_arguments_raise():
  maps, latents = jnp.zeros((1, 4, 4, 2)), jnp.zeros((1, 10))
  _raises_on_init(networks.SubPixelConvTranspose(3, 3, 2, 1), maps,
                  match='kernel_size - 2 \\* padding == stride')
  _raises_on_init(networks.SubPixelConvTranspose(3, 4, 1, 4), maps, match='padding 4')
  _raises_on_init(networks.slowvae_encoder(), jnp.zeros((1, 40, 40, 1)), match='multiple of 2\\*\\*4')
  _raises_on_init(networks.Decoder(image_shape=(32, 64, 1)), latents, match='square')
  _raises_on_init(networks.Decoder(kernel_size=3), latents, match='kernel_size must be even')
  _raises_on_init(networks.slowvae_decoder(upsample='nearest'), latents, match='upsample')


def test_slowvae_has_763285_parameters():
  encoder, decoder = networks.slowvae_encoder(10), networks.slowvae_decoder(1)
  enc_params = jax.eval_shape(encoder.init, jax.random.key(0), jnp.zeros((1, 64, 64, 1)))
  dec_params = jax.eval_shape(decoder.init, jax.random.key(0), jnp.zeros((1, 10)))
  # Encoder: 4 convs (544 + 16416 + 32832 + 65600), 4x4 conv to 256 (262400), linear (5140).
  assert networks.num_params(enc_params) == 382_932
  # Decoder: linear (2816), 4x4 transposed conv (262208), up-convs 65600 + 32800 + 16416 + 513.
  assert networks.num_params(dec_params) == 380_353
  assert networks.num_params(enc_params) + networks.num_params(dec_params) == 763_285


def test_initialisation_is_lecun_normal_with_zero_bias():
  layer = networks.SubPixelConvTranspose(64)
  params = jax.jit(layer.init)(jax.random.key(0), jnp.zeros((1, 4, 4, 64)))['params']
  assert params['kernel'].shape == (4, 4, 64, 64)
  np.testing.assert_allclose(jnp.std(params['kernel']), 1 / np.sqrt(4 * 4 * 64), rtol=0.03)
  np.testing.assert_array_equal(params['bias'], np.zeros(64))


def test_hidden_layer_is_the_valid_conv_over_the_final_map():
  trunk = networks.ConvTrunk((8, 8), kernel_size=4, hidden=16)
  x = _uniform(0, (3, 16, 16, 2))
  params = _init(trunk, x, seed=1)['params']
  assert params['hidden']['kernel'].shape == (4, 4, 8, 16)
  feature_map = x
  for name in ('conv_0', 'conv_1'):  # 16 -> 8 -> 4 pixels
    conv = nn.Conv(8, (4, 4), 2, padding=1)
    feature_map = nn.relu(_apply(conv, {'params': params[name]}, feature_map))
  hidden = nn.Conv(16, (4, 4), padding='VALID')
  expected = nn.relu(_apply(hidden, {'params': params['hidden']}, feature_map))
  np.testing.assert_allclose(_apply(trunk, {'params': params}, x), expected[:, 0, 0],
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('size,channels', [(32, 1), (32, 3), (64, 1), (64, 3)])
def test_encoder_decoder_shapes(size, channels):
  encoder = networks.slowvae_encoder(6)
  decoder = networks.slowvae_decoder(channels, size)
  images = _uniform(0, (2, 3, size, size, channels))  # [B, T, H, W, C]
  enc_params = _init(encoder, images, seed=1)
  posterior = _apply(encoder, enc_params, images)
  assert posterior.mean.shape == posterior.log_var.shape == (2, 3, 6)
  assert posterior._fields == ('mean', 'log_var')
  # The hidden kernel covers the final map: 4x4 for 64x64 images, 2x2 for 32x32.
  side = size // 16
  assert enc_params['params']['trunk']['hidden']['kernel'].shape == (side, side, 64, 256)
  dec_params = _init(decoder, posterior.mean, seed=2)
  assert dec_params['params']['expand']['kernel'].shape == (side, side, 256, 64)
  assert _apply(decoder, dec_params, posterior.mean).shape == (2, 3, size, size, channels)
  # Leading axes are only batch axes: frame (1, 2) alone gives the same result.
  single = _apply(encoder, enc_params, images[1, 2])
  np.testing.assert_allclose(single.mean, posterior.mean[1, 2], rtol=1e-5, atol=1e-6)


def test_posterior_head_is_one_linear_layer_mean_then_log_variance():
  encoder = networks.slowvae_encoder(latent_dim=5)
  images = _uniform(0, (4, 64, 64, 1))
  params = _init(encoder, images, seed=1)
  posterior = _apply(encoder, params, images)
  assert isinstance(posterior, networks.Posterior)
  assert posterior.mean.shape == posterior.log_var.shape == (4, 5)
  assert set(params['params']) == {'trunk', 'moments'}
  head = params['params']['moments']
  assert head['kernel'].shape == (256, 10)
  # The head by hand, on the trunk's features: the first D outputs are the mean, the next D the
  # log-variance.
  trunk = networks.ConvTrunk((32, 32, 64, 64), 4, 256)
  features = _apply(trunk, {'params': params['params']['trunk']}, images)
  outputs = features @ head['kernel'] + head['bias']
  np.testing.assert_allclose(posterior.mean, outputs[:, :5], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(posterior.log_var, outputs[:, 5:], rtol=1e-5, atol=1e-6)
  # Images differ (a head that broadcast one image would fail this).
  assert float(jnp.min(jnp.std(posterior.mean, axis=0))) > 0


def test_decoder_upsample_methods_compute_the_same_function():
  z = _normal(0, (3, 10))
  fast = networks.slowvae_decoder(2, 32)
  flax_layers = networks.slowvae_decoder(2, 32, upsample='conv_transpose')
  params = _init(fast, z, seed=1)
  assert (jax.tree_util.tree_structure(params)
          == jax.tree_util.tree_structure(jax.eval_shape(flax_layers.init, jax.random.key(1), z)))
  a, b = _apply(fast, params, z), _apply(flax_layers, params, z)
  np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(b))))


def test_dynamics_and_supervised_networks():
  images = _uniform(0, (5, 32, 32, 1))
  regressor = networks.SupervisedEncoder(num_outputs=4)
  params = _init(regressor, images, seed=1)
  assert _apply(regressor, params, images).shape == (5, 4)
  kernels = [params['params']['trunk'][f'conv_{i}']['kernel'].shape for i in range(4)]
  assert kernels == [(3, 3, 1, 32), (3, 3, 32, 32), (3, 3, 32, 64), (3, 3, 64, 64)]
  assert params['params']['head']['kernel'].shape == (2 * 2 * 64, 4)  # the flat 2x2x64 map

  encoder, decoder = networks.dynamics_encoder(8), networks.dynamics_decoder(1, 32)
  posterior = _apply(encoder, _init(encoder, images, seed=2), images)
  assert posterior.mean.shape == (5, 8)
  dec_params = _init(decoder, posterior.mean, seed=3)
  assert dec_params['params']['project']['kernel'].shape == (8, 2 * 2 * 64)
  assert _apply(decoder, dec_params, posterior.mean).shape == (5, 32, 32, 1)


def test_jit_traces_once_per_shape():
  encoder, decoder = networks.slowvae_encoder(4), networks.slowvae_decoder(1, 32)
  images = _uniform(0, (2, 32, 32, 1))
  params = {'encoder': _init(encoder, images, seed=1),
            'decoder': _init(decoder, jnp.zeros((2, 4)), seed=2)}
  traces = []

  @jax.jit
  def reconstruction_loss(params, images):
    traces.append(images.shape)  # a Python side effect: runs only while tracing
    mean = encoder.apply(params['encoder'], images).mean
    logits = decoder.apply(params['decoder'], mean)
    return jnp.mean(jnp.sum(optax.sigmoid_binary_cross_entropy(logits, images), axis=(1, 2, 3)))

  losses = [reconstruction_loss(params, _uniform(seed, images.shape))
            for seed in range(3)]
  assert traces == [(2, 32, 32, 1)]
  assert len(set(float(loss) for loss in losses)) == 3  # new data, same compiled function
  reconstruction_loss(params, jnp.zeros((3, 32, 32, 1)))
  assert traces == [(2, 32, 32, 1), (3, 32, 32, 1)]


def test_spatial_softmax_finds_the_peak_and_keypoint_encoder_shapes():
  maps = jnp.full((2, 9, 9, 2), -50.0)
  maps = maps.at[0, 0, 8, 0].set(50.0)   # top-right corner: x = 1, y = -1
  maps = maps.at[0, 4, 4, 1].set(50.0)   # centre
  maps = maps.at[1, 8, 2, 0].set(50.0)   # bottom row, third column: x = -0.5, y = 1
  maps = maps.at[1, 2, 6, 1].set(50.0)   # x = 0.5, y = -0.5
  coords = networks.spatial_softmax(maps, jnp.zeros(()))
  np.testing.assert_allclose(coords, [[1, -1, 0, 0], [-0.5, 1, 0.5, -0.5]], atol=1e-5)
  # The encoder keeps any leading axes.
  encoder = networks.KeypointEncoder(latent_dim=3, features=(4, 8), num_keypoints=5, hidden=16)
  images = jnp.zeros((2, 6, 32, 32, 1)).at[..., 10, 8, 0].set(1.0)
  params = encoder.init(jax.random.PRNGKey(0), images)
  posterior = encoder.apply(params, images)
  assert posterior.mean.shape == posterior.log_var.shape == (2, 6, 3)


def test_keypoint_encoder_strides_choose_where_the_map_halves():
  images = _uniform(0, (3, 32, 32, 1))
  default = networks.KeypointEncoder(latent_dim=2, features=(4, 8), hidden=8)
  first = default.clone(strides=(2, 1))
  params = _init(default, images, seed=1)
  # Same parameter shapes (3x3 kernels), a different function: the 16x16 maps come from another
  # layer.
  assert (jax.tree_util.tree_map(jnp.shape, params)
          == jax.tree_util.tree_map(jnp.shape, _init(first, images, seed=1)))
  a, b = default.apply(params, images), first.apply(params, images)
  assert a.mean.shape == b.mean.shape == (3, 2)
  assert not np.allclose(a.mean, b.mean)
  _raises_on_init(default.clone(strides=(2,)), images, match='one per layer')
  _raises_on_init(default.clone(strides=(3, 1)), images, match='strides must be 1 or 2')
