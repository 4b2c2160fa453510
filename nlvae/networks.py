"""Convolutional encoders and decoders of nlvae (Flax linen).

Arrays are float32, channels last. Images are ``[..., H, W, C]`` with values in [0, 1]; any number of
leading batch axes (``[B]``, ``[B, T]``, ...) is accepted and kept. Latents are ``[..., D]``.

Architecture (SlowVAE, Klindt et al. 2021; 64x64x1 images, D = 10: 763,285 parameters):

  Encoder  conv 4x4/2 (pad 1) x4 -> 32, 32, 64, 64 channels     64 -> 4 pixels
           'hidden' conv covering the whole 4x4 map -> 256       (a dense layer on the flat map)
           linear 256 -> 2 D (mean, log-variance); ReLU between layers
  Decoder  linear D -> 256, transposed conv 1x1 -> 4x4x64, transposed convs 4x4/2 (pad 1)
           -> 64, 32, 32, C channels, output logits (no final nonlinearity)

Image size. The number of stride-2 layers is ``len(features)``; the map left after them is
``H / 2**len(features)`` pixels wide, and the hidden layer's kernel covers exactly that map (4x4 for
64x64 images, 2x2 for 32x32 images with the same four layers). The decoder mirrors it: its first
transposed conv turns the 1x1 hidden vector into that map. Image sides must be divisible by
``2**len(features)``; decoders need square images.

Transposed convolutions (``SubPixelConvTranspose``). A stride-2 transposed conv on XLA:CPU runs as a
convolution over a zero-dilated input, and its backward pass is slow. The same function is computed
here as one ordinary stride-1 convolution with ``s*s*out`` channels (one block per output phase)
followed by depth-to-space: the SlowVAE training step runs ~2x faster on CPU
(experiments/bench_networks.py).

Conventions and initialisation. Kernels are ``[kh, kw, in, out]`` with a bias ``[out]``; every layer
computes exactly what ``flax.linen.ConvTranspose(transpose_kernel=False)`` computes with the same
parameters and padding ``k - 1 - p``, i.e. PyTorch's ``ConvTranspose2d(k, s, p)`` whose weight
``[in, out, kh, kw]`` is ``kernel[::-1, ::-1].transpose(2, 3, 0, 1)`` (a spatial flip). Kernels are
LeCun-normal (variance 1 / fan-in, Flax's default), biases zero.

Compute dtype (``dtype``, default float32; ``COMPUTE_DTYPES``; config.train.compute_dtype). Every
module takes a ``dtype``: the dtype its convolutions and matrix products compute in
(``jnp.bfloat16`` for accelerators; on a CPU bfloat16 is emulated and slower than float32).
Parameters are always float32: a layer casts its input and kernel to ``dtype`` for the product and
adds its float32 bias to the result (``_mixed``), so gradients and optimizer state are float32, and
so are the activations between layers (the next layer casts again). The outputs that enter a loss
are float32: the decoder's output is cast back, and the numerically sensitive heads compute in
float32: the encoders' ``moments`` layer (the posterior mean feeds the priors' finite
differences, the log-variance an exp), the supervised head, and the keypoint encoder from its 1x1
keypoint maps on (the softmax over every position, its expected coordinates and the MLP after
them; a few percent of that encoder's multiply-adds). With float32 (the default) every cast is a
no-op: parameters and results are bit for bit those of the float32-only modules.
"""
from collections.abc import Sequence
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

_DIMENSION_NUMBERS = ('NHWC', 'HWIO', 'NHWC')
# config.train.compute_dtype -> the modules' ``dtype`` (see the module doc).
COMPUTE_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
DEFAULT_COMPUTE_DTYPE = 'float32'
UPSAMPLE_METHODS = ('subpixel', 'conv_transpose')
DOWNSAMPLE_METHODS = ('space_to_depth', 'strided')


class Posterior(NamedTuple):
  """A diagonal Gaussian posterior N(mean, diag exp(log_var)); mean, log_var float32 ``[..., D]``.
  """
  mean: jax.Array
  log_var: jax.Array


def compute_dtype(name: str) -> Any:
  """A ``COMPUTE_DTYPES`` name ('float32', 'bfloat16') -> the jnp dtype; ValueError (one line)
  for any other."""
  if name not in COMPUTE_DTYPES:
    raise ValueError(f'compute_dtype must be one of {", ".join(COMPUTE_DTYPES)}, got {name!r}')
  return COMPUTE_DTYPES[name]


def _promote_keeping_bias(inputs, kernel, bias, *, dtype=None, inexact=True):
  """Flax's ``promote_dtype`` for (inputs, kernel, bias), but the bias stays float32."""
  inputs, kernel = nn.dtypes.promote_dtype(inputs, kernel, dtype=dtype, inexact=inexact)
  return inputs, kernel, bias


def _mixed(dtype: Any) -> dict[str, Any]:
  """The keyword arguments of a Flax layer computing in ``dtype`` with the bias added in float32.

  Every layer here (Flax's and ours) adds its float32 bias to the ``dtype`` product, so the sum,
  the ReLU after it and the layer's output are float32 and the next layer casts its input to
  ``dtype``. The reason is the bias gradient: it is a sum over the batch and every pixel, and in
  bfloat16 that sum loses everything (measured on CPU: the last decoder bias's gradient of the
  tiny circles model was -24 instead of +124). With float32 layers nothing changes.
  """
  return dict(dtype=dtype, promote_dtype=_promote_keeping_bias)


def num_params(params: Any) -> int:
  """Total number of scalars in a parameter pytree."""
  return sum(int(np.prod(leaf.shape)) for leaf in jax.tree_util.tree_leaves(params))


def bottleneck_size(image_size: int, num_stride2_layers: int) -> int:
  """Side of the feature map after ``num_stride2_layers`` halvings of ``image_size``."""
  factor = 2**num_stride2_layers
  if image_size % factor or image_size < factor:
    raise ValueError(f'image side {image_size} is not a multiple of 2**{num_stride2_layers} = '
                     f'{factor}; use a size divisible by {factor} or fewer conv layers.')
  return image_size // factor


class SubPixelPlan(NamedTuple):
  """How ``SubPixelConvTranspose`` computes a transposed conv with ``k - 2p == s`` (see there).

  table: int ``[taps, s]``; entry (a, j) is the kernel row that tap a of depth-to-space slot j uses
    (k marks an absent tap: a zero row). pad_low, pad_high: input padding of the stride-1 conv.
    grow: 1 when that conv's output is one pixel larger than the input (some phases shifted).
    crop: first row kept after depth-to-space.
  """
  table: np.ndarray
  pad_low: int
  pad_high: int
  grow: int
  crop: int


def subpixel_plan(kernel_size: int, stride: int, padding: int) -> SubPixelPlan:
  """Phase decomposition of a transposed conv (kernel k, stride s, padding p, ``k - 2p == s``).

  With flax's (unflipped) kernel K, output row ``o = s q + r`` (phase r) is
  ``y[s q + r] = sum_d x[q + d] K[k - 1 - p + s d - r]`` over ``lo(r) <= d <= hi(r)``, the d that keep
  the row index in [0, k). ``lo(r) - lo(0)`` is 0 or 1, so the phases are the output channel blocks
  of one stride-1 conv with ``taps = max_r(hi - lo + 1)`` taps over x padded by ``-lo(0)``: phase r
  at row q is that conv's row ``q + lo(r) - lo(0)``. Phases shifted by one row are placed first in
  depth-to-space order (a rotation of the phase order), which turns the shift into one crop.
  For k 4, s 2, p 1: a 2x2 conv with 4 x out channels, every kernel entry used exactly once.
  """
  k, s, p = kernel_size, stride, padding
  phases = np.arange(s)
  lo = -((k - 1 - p - phases) // s)  # ceil((r + p + 1 - k) / s)
  hi = (phases + p) // s
  taps = int(np.max(hi - lo + 1))
  shift = lo - lo[0]  # 0 or 1
  first_shifted = int(np.argmax(shift)) if shift.any() else s
  order = (np.arange(s) + first_shifted) % s  # depth-to-space slot j holds phase order[j]
  d = lo[None, order] + np.arange(taps)[:, None]
  rows = k - 1 - p + s * d - order[None, :]
  table = np.where(d <= hi[None, order], rows, k)
  grow = int(shift.max())
  pad_low = int(-lo[0])
  return SubPixelPlan(table, pad_low, grow + taps - 1 - pad_low, grow, (s - first_shifted) % s)


class SubPixelConvTranspose(nn.Module):
  """A transposed convolution with PyTorch geometry computed without dilated convolutions.

  Same function and same parameters (kernel ``[k, k, in, features]``, bias ``[features]``) as
  ``nn.ConvTranspose(features, (k, k), (s, s), padding=k - 1 - padding)`` (equivalently PyTorch's
  ``ConvTranspose2d(in, features, k, s, padding)`` with the kernel flipped; see the module doc).
  Input ``[B, H, W, in]``; output ``[B, H', W', features]`` with ``H' = (H - 1) s - 2 p + k``.

  Two cases are supported:
    * ``k - 2p == s`` (e.g. k 4, s 2, p 1: output = 2x input): one stride-1 VALID convolution over the
      padded input whose ``s*s*features`` output channels are the output phases, then
      depth-to-space and a crop (``subpixel_plan``). For k 4, s 2, p 1 it is a 2x2 conv with
      4 x features channels: the same multiply-adds as the transposed conv, no zero taps, and
      forward and backward passes are plain stride-1 convolutions.
    * ``stride == 1``: an ordinary convolution with padding ``k - 1 - p``; for a 1x1 input (SlowVAE's
      first decoder layer, 1x1 -> 4x4) it is a single matrix product with the flipped kernel.
  """
  features: int
  kernel_size: int = 4
  stride: int = 2
  padding: int = 1
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: Any = jnp.float32  # compute dtype; parameters are float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, s, p = self.kernel_size, self.stride, self.padding
    if x.ndim != 4:
      raise ValueError(f'SubPixelConvTranspose expects [B, H, W, C] inputs, got shape {x.shape}.')
    if not 0 <= p <= k - 1:
      raise ValueError(f'padding {p} must lie in [0, kernel_size - 1 = {k - 1}].')
    if s != 1 and k - 2 * p != s:
      raise ValueError(f'kernel_size {k}, stride {s}, padding {p}: the sub-pixel form needs '
                       f'kernel_size - 2 * padding == stride (e.g. 4, 2, 1) or stride 1.')
    batch, height, width, in_features = x.shape
    kernel = self.param('kernel', self.kernel_init, (k, k, in_features, self.features))
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)

    if s == 1 and height == width == 1:
      # Only the central (k - 2p) x (k - 2p) window of the flipped kernel meets the single pixel.
      patch = kernel[::-1, ::-1][p:k - p, p:k - p]
      y = jnp.einsum('bi,hwio->bhwo', x[:, 0, 0], patch)
    elif s == 1:
      y = jax.lax.conv_general_dilated(x, kernel, (1, 1), [(k - 1 - p, k - 1 - p)] * 2,
                                       dimension_numbers=_DIMENSION_NUMBERS)
    else:
      plan = subpixel_plan(k, s, p)
      taps = plan.table.shape[0]
      padded = jnp.pad(kernel, ((0, 1), (0, 1), (0, 0), (0, 0)))  # row/column k is zero
      phases = padded[plan.table[:, None, :, None], plan.table[None, :, None, :]]  # [t,t,s,s,i,o]
      phases = phases.transpose(0, 1, 4, 2, 3, 5).reshape(taps, taps, in_features,
                                                          s * s * self.features)
      # Explicit padding and a VALID conv: faster backward passes on XLA:CPU than conv padding.
      x = jnp.pad(x, ((0, 0), (plan.pad_low, plan.pad_high), (plan.pad_low, plan.pad_high), (0, 0)))
      y = jax.lax.conv_general_dilated(x, phases, (1, 1), 'VALID',
                                       dimension_numbers=_DIMENSION_NUMBERS)
      rows, cols = height + plan.grow, width + plan.grow
      y = y.reshape(batch, rows, cols, s, s, self.features).transpose(0, 1, 3, 2, 4, 5)
      y = y.reshape(batch, s * rows, s * cols, self.features)
      y = y[:, plan.crop:plan.crop + s * height, plan.crop:plan.crop + s * width]
    y = y.astype(jnp.float32)  # float32 out, as every layer (see _mixed)
    if self.use_bias:
      y = y + self.param('bias', self.bias_init, (self.features,))  # float32: see _mixed
    return y


class SpaceToDepthConv(nn.Module):
  """A stride-2 convolution computed as depth-to-space's inverse followed by a stride-1 conv.

  Same function and parameters (kernel ``[k, k, in, features]``, bias ``[features]``) as
  ``nn.Conv(features, (k, k), strides=2, padding=[(p, p)] * 2)``. Input ``[B, H, W, in]``; output
  ``[B, H', W', features]`` with ``H' = (H + 2p - k) // 2 + 1``. The padded input is cut into 2x2
  blocks stacked on the channel axis (``[B, L/2, L/2, 4 in]``) and the kernel, zero-padded to an
  even size ``k'``, into the matching ``[k'/2, k'/2, 4 in, features]`` kernel: output pixel i meets
  padded rows ``2i .. 2i + k' - 1``, i.e. block rows ``i .. i + k'/2 - 1``. Forward and backward
  passes are then stride-1 convolutions; XLA:CPU computes a strided conv's input gradient as a slow
  zero-dilated convolution (experiments/bench_networks.py --profile).
  """
  features: int
  kernel_size: int = 4
  padding: int = 1
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  bias_init: nn.initializers.Initializer = nn.initializers.zeros_init()
  dtype: Any = jnp.float32  # compute dtype; parameters are float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, p = self.kernel_size, self.padding
    if x.ndim != 4:
      raise ValueError(f'SpaceToDepthConv expects [B, H, W, C] inputs, got shape {x.shape}.')
    batch, height, width, in_features = x.shape
    kernel = self.param('kernel', self.kernel_init, (k, k, in_features, self.features))
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    even = k + k % 2
    rows, cols = (2 * ((n + 2 * p - k) // 2 + even // 2) for n in (height, width))
    # Pad to at least rows x cols, then cut: the last input row can lie beyond every window.
    x = jnp.pad(x, ((0, 0), (p, max(rows - height - p, 0)), (p, max(cols - width - p, 0)), (0, 0)))
    x = x[:, :rows, :cols]
    x = x.reshape(batch, rows // 2, 2, cols // 2, 2, in_features).transpose(0, 1, 3, 2, 4, 5)
    x = x.reshape(batch, rows // 2, cols // 2, 4 * in_features)
    blocks = jnp.pad(kernel, ((0, even - k), (0, even - k), (0, 0), (0, 0)))
    blocks = blocks.reshape(even // 2, 2, even // 2, 2, in_features, self.features)
    blocks = blocks.transpose(0, 2, 1, 3, 4, 5).reshape(even // 2, even // 2, 4 * in_features,
                                                        self.features)
    y = jax.lax.conv_general_dilated(x, blocks, (1, 1), 'VALID',
                                     dimension_numbers=_DIMENSION_NUMBERS)
    return y + self.param('bias', self.bias_init, (self.features,))  # float32: see _mixed


def _flatten_batch(x: jax.Array, event_ndim: int) -> tuple[jax.Array, tuple[int, ...]]:
  """Reshapes ``[..., *event]`` to ``[N, *event]``; returns it and the leading shape."""
  if x.ndim < event_ndim:
    raise ValueError(f'expected an array with at least {event_ndim} axes, got shape {x.shape}.')
  lead = x.shape[:x.ndim - event_ndim]
  return x.reshape((math.prod(lead),) + x.shape[x.ndim - event_ndim:]), lead


class ConvTrunk(nn.Module):
  """Stride-2 conv stack (+ optional hidden layer): images ``[N, H, W, C]`` -> features ``[N, F]``.

  Each conv has kernel ``kernel_size``, stride 2 and PyTorch padding ``(kernel_size - 1) // 2`` on
  both sides, so it halves even sizes. With ``hidden`` a layer whose kernel covers the whole final
  map (SlowVAE's 4x4 stride-1 conv to 1x1x256, computed as a dense layer) follows, then ReLU;
  without it the final map is flattened (F = side**2 * features[-1]).
  """
  features: Sequence[int] = (32, 32, 64, 64)
  kernel_size: int = 4
  hidden: int | None = 256
  downsample: str = 'space_to_depth'
  dtype: Any = jnp.float32  # compute dtype of the convs; features come out float32, as params

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for size in x.shape[1:3]:
      bottleneck_size(size, len(self.features))
    if self.downsample not in DOWNSAMPLE_METHODS:
      raise ValueError(f'downsample must be one of {DOWNSAMPLE_METHODS}, got {self.downsample!r}.')
    pad = (self.kernel_size - 1) // 2
    for i, width in enumerate(self.features):
      if self.downsample == 'space_to_depth':
        x = SpaceToDepthConv(width, self.kernel_size, pad, dtype=self.dtype, name=f'conv_{i}')(x)
      else:
        x = nn.Conv(width, (self.kernel_size,) * 2, strides=2, padding=[(pad, pad)] * 2,
                    **_mixed(self.dtype), name=f'conv_{i}')(x)
      x = nn.relu(x)
    if self.hidden is None:
      return x.reshape(x.shape[0], -1)
    # Kernel [h, w, C, hidden]: the same parameters as a VALID conv over the whole map.
    return nn.relu(nn.DenseGeneral(self.hidden, axis=(-3, -2, -1), **_mixed(self.dtype),
                                   name='hidden')(x))


class Encoder(nn.Module):
  """Conv encoder: frames ``[..., H, W, C]`` in [0, 1] -> ``Posterior`` with ``[..., D]`` moments.

  latent_dim: D. features, kernel_size, hidden: see ``ConvTrunk`` (SlowVAE: (32, 32, 64, 64), 4,
  256; disentangled-dynamics: (32, 32, 64, 64), 3, None). One linear layer ``moments`` gives
  2 D outputs: the mean (the first D) and ``log_var`` (the raw linear output, the next D).
  downsample: 'space_to_depth' (``SpaceToDepthConv``, fast on CPU) or 'strided' (``nn.Conv``, for
  comparison): same parameters, same function. dtype: the trunk's compute dtype; ``moments``
  computes in float32 (module doc), so the posterior is float32.
  """
  latent_dim: int
  features: Sequence[int] = (32, 32, 64, 64)
  kernel_size: int = 4
  hidden: int | None = 256
  downsample: str = 'space_to_depth'
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array) -> Posterior:
    x, lead = _flatten_batch(images, 3)
    h = ConvTrunk(self.features, self.kernel_size, self.hidden, self.downsample, self.dtype,
                  name='trunk')(x)
    return _posterior(_float32_dense(2 * self.latent_dim, 'moments', h), lead)


def _float32_dense(features: int, name: str, h: jax.Array) -> jax.Array:
  """A dense layer computed in float32 from features of any compute dtype (a sensitive head:
  the posterior moments or a regression output). Call it inside a compact module."""
  return nn.Dense(features, dtype=jnp.float32, name=name)(h.astype(jnp.float32))


def _posterior(moments: jax.Array, lead: tuple[int, ...]) -> Posterior:
  """The moments layer's output [N, 2 D] (mean, then log-variance) -> Posterior [*lead, D]."""
  moments = moments.reshape(lead + (2, moments.shape[-1] // 2))
  return Posterior(mean=moments[..., 0, :], log_var=moments[..., 1, :])


def spatial_softmax(feature_maps: jax.Array, log_temperature: jax.Array) -> jax.Array:
  """Expected image coordinates of each feature map's softmax: ``[N, h, w, K]`` -> ``[N, 2K]``.

  Coordinates (x, y) lie in [-1, 1] (pixel centres; x to the right, y down); the softmax of map k is
  taken over its h * w positions at temperature ``exp(log_temperature)``.
  """
  n, h, w, k = feature_maps.shape
  weights = jax.nn.softmax(feature_maps.reshape(n, h * w, k) / jnp.exp(log_temperature), axis=1)
  ys, xs = jnp.meshgrid(jnp.linspace(-1.0, 1.0, h), jnp.linspace(-1.0, 1.0, w), indexing='ij')
  grid = jnp.stack([xs.ravel(), ys.ravel()], axis=-1)  # [h * w, 2]
  return jnp.einsum('npk,pc->nkc', weights, grid).reshape(n, 2 * k)


class KeypointEncoder(nn.Module):
  """Spatial-softmax (keypoint) encoder: frames ``[..., H, W, C]`` -> ``Posterior``.

  3x3 convs (``features`` channels, ReLU; ``strides`` per layer, default the first 1 and the rest
  2; stride-2 layers are ``SpaceToDepthConv``: the same function as ``nn.Conv``), a 1x1 conv to
  ``num_keypoints`` maps, ``spatial_softmax`` -> the expected (x, y) of each map, then an MLP
  (``hidden`` units) to the posterior mean and log-variance ``[..., D]``. Because its features
  are object coordinates, the latent starts as a smooth, low-order function of where the objects
  are (Finn et al. 2016, "Deep spatial autoencoders"), not of individual pixels: with a temporal
  prior this avoids the folded codes a pixel-level encoder tends to find for objects that move
  many pixels (see README, physics experiments). It discards brightness: not for the pulsar.
  dtype: the 3x3 convs' compute dtype; from the 1x1 keypoint maps on (maps, softmax, MLP) it
  computes in float32 (module doc), so the posterior is float32.
  """
  latent_dim: int
  features: Sequence[int] = (16, 32)
  num_keypoints: int = 8
  hidden: int = 64
  strides: Sequence[int] | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array) -> Posterior:
    x, lead = _flatten_batch(images, 3)
    strides = self.strides or (1,) + (2,) * (len(self.features) - 1)
    if len(strides) != len(self.features) or not set(strides) <= {1, 2}:
      raise ValueError(f'strides must be 1 or 2, one per layer of features {tuple(self.features)}; '
                       f'got {tuple(strides)}.')
    for i, (width, stride) in enumerate(zip(self.features, strides)):
      if stride == 2:  # nn.Conv(width, (3, 3), 2, padding 1) computed faster on CPU
        x = nn.relu(SpaceToDepthConv(width, 3, 1, dtype=self.dtype, name=f'conv_{i}')(x))
      else:
        x = nn.relu(nn.Conv(width, (3, 3), padding=[(1, 1)] * 2, **_mixed(self.dtype),
                            name=f'conv_{i}')(x))
    # float32 from here on: softmax logits rounded to bfloat16 would jitter the keypoints.
    maps = nn.Conv(self.num_keypoints, (1, 1), dtype=jnp.float32,
                   name='keypoint_maps')(x.astype(jnp.float32))
    log_temperature = self.param('log_temperature', nn.initializers.zeros_init(), ())
    h = spatial_softmax(maps, log_temperature)
    h = nn.relu(_float32_dense(self.hidden, 'hidden', h))
    return _posterior(_float32_dense(2 * self.latent_dim, 'moments', h), lead)


class SupervisedEncoder(nn.Module):
  """Deterministic conv regressor: images ``[..., H, W, C]`` -> ``[..., num_outputs]``.

  The disentangled-dynamics supervised control: four 3x3 stride-2 convs (32, 32, 64, 64) and a
  linear layer to the factors (trained with MSE elsewhere). dtype: the trunk's compute dtype;
  the head computes in float32, so the output is float32.
  """
  num_outputs: int = 4
  features: Sequence[int] = (32, 32, 64, 64)
  kernel_size: int = 3
  hidden: int | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    x, lead = _flatten_batch(images, 3)
    h = ConvTrunk(self.features, self.kernel_size, self.hidden, dtype=self.dtype, name='trunk')(x)
    return _float32_dense(self.num_outputs, 'head', h).reshape(lead + (self.num_outputs,))


class Decoder(nn.Module):
  """Mirror of the encoder: latents ``[..., D]`` -> logits / means ``[..., H, W, C]``.

  image_shape: (H, W, C) of the output, H == W. features: channels of the first map and of the
  up-convs but the last, e.g. (64, 64, 32, 32) gives 4x4x64 -> 8x8x64 -> 16x16x32 -> 32x32x32 ->
  64x64xC for 64x64 images. With ``hidden``: linear D -> hidden, ReLU, transposed conv 1x1 -> side x
  side x features[0]; without: linear D -> side * side * features[0]. Then ``len(features)``
  transposed convs (kernel ``kernel_size``, stride 2, padding ``(kernel_size - 2) // 2``), ReLU between
  layers, none at the output. upsample: 'subpixel' (``SubPixelConvTranspose``, fast on CPU) or
  'conv_transpose' (``nn.ConvTranspose``, for comparison): same parameters, same function.
  dtype: every layer's compute dtype; the output is cast to float32.
  """
  image_shape: tuple[int, int, int] = (64, 64, 1)
  features: Sequence[int] = (64, 64, 32, 32)
  kernel_size: int = 4
  hidden: int | None = 256
  upsample: str = 'subpixel'
  dtype: Any = jnp.float32

  def _conv_transpose(self, features: int, kernel_size: int, stride: int, padding: int,
                      name: str) -> nn.Module:
    if self.upsample == 'subpixel':
      return SubPixelConvTranspose(features, kernel_size, stride, padding, dtype=self.dtype,
                                   name=name)
    pad = kernel_size - 1 - padding
    return nn.ConvTranspose(features, (kernel_size,) * 2, strides=(stride,) * 2,
                            padding=[(pad, pad)] * 2, **_mixed(self.dtype), name=name)

  @nn.compact
  def __call__(self, latents: jax.Array) -> jax.Array:
    height, width, channels = self.image_shape
    if height != width:
      raise ValueError(f'Decoder needs square images, got image_shape {self.image_shape}.')
    if self.upsample not in UPSAMPLE_METHODS:
      raise ValueError(f'upsample must be one of {UPSAMPLE_METHODS}, got {self.upsample!r}.')
    if self.kernel_size < 2 or self.kernel_size % 2:
      raise ValueError(f'Decoder kernel_size must be even (e.g. 4), got {self.kernel_size}.')
    side = bottleneck_size(height, len(self.features))
    z, lead = _flatten_batch(latents, 1)
    if self.hidden is None:
      x = nn.Dense(side * side * self.features[0], **_mixed(self.dtype), name='project')(z)
      x = x.reshape(-1, side, side, self.features[0])
    else:
      x = nn.relu(nn.Dense(self.hidden, **_mixed(self.dtype), name='project')(z))
      x = x[:, None, None, :]
      x = self._conv_transpose(self.features[0], side, 1, 0, name='expand')(x)
    widths = tuple(self.features[1:]) + (channels,)
    for i, features in enumerate(widths):
      x = nn.relu(x)
      x = self._conv_transpose(features, self.kernel_size, 2, (self.kernel_size - 2) // 2,
                               name=f'up_{i}')(x)
    return x.reshape(lead + (height, width, channels)).astype(jnp.float32)


def slowvae_encoder(latent_dim: int = 10, dtype: Any = jnp.float32) -> Encoder:
  """SlowVAE encoder (4x4 stride-2 convs 32, 32, 64, 64; hidden 256)."""
  return Encoder(latent_dim, (32, 32, 64, 64), 4, 256, dtype=dtype)


def slowvae_decoder(out_channels: int = 1, image_size: int = 64,
                    upsample: str = 'subpixel', dtype: Any = jnp.float32) -> Decoder:
  """SlowVAE decoder (hidden 256, 4x4 stride-2 transposed convs 64, 32, 32, out_channels)."""
  return Decoder((image_size, image_size, out_channels), (64, 64, 32, 32), 4, 256, upsample,
                 dtype=dtype)


def dynamics_encoder(latent_dim: int, dtype: Any = jnp.float32) -> Encoder:
  """disentangled-dynamics beta-VAE encoder (3x3 stride-2 convs 32, 32, 64, 64, no hidden)."""
  return Encoder(latent_dim, (32, 32, 64, 64), 3, None, dtype=dtype)


def dynamics_decoder(out_channels: int = 1, image_size: int = 32,
                     dtype: Any = jnp.float32) -> Decoder:
  """disentangled-dynamics decoder: linear to 2x2x64 (32x32 images), 4x4 stride-2 up-convs."""
  return Decoder((image_size, image_size, out_channels), (64, 64, 32, 32), 4, None, dtype=dtype)


# ------------------------------------------------------------------------------------------------
# Fast initialisation.

_TRUNCATED_NORMAL_STD = 0.87962566103423978  # std of N(0, 1) truncated to [-2, 2]


def init_params(module, rng: jax.Array, *inputs):
  """``module.init(rng, *inputs)`` in law, drawn with a single random call.

  Flax's defaults for every layer used here: kernels LeCun-normal (truncated normal on [-2, 2] std,
  rescaled to std sqrt(1 / fan_in), fan_in = prod(kernel.shape[:-1])), biases zero. On XLA:CPU
  every differently-shaped random op compiles for about a second, so ``module.init`` of an
  encoder + decoder costs ~12 s; one draw for all kernels costs ~1 s. Other parameter names are
  rejected.
  """
  shapes = jax.eval_shape(module.init, jax.random.key(0), *inputs)
  paths_and_leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  names = [str(getattr(path[-1], "key", path[-1])) for path, _ in paths_and_leaves]
  if set(names) - {"kernel", "bias"}:
    raise ValueError(f"init_params handles only 'kernel' and 'bias' parameters, got {names}")
  sizes = [int(np.prod(leaf.shape)) if name == "kernel" else 0
           for name, (_, leaf) in zip(names, paths_and_leaves)]
  draws = np.asarray(jax.random.truncated_normal(rng, -2.0, 2.0, (max(sum(sizes), 1),)))
  offsets = np.cumsum([0] + sizes)
  leaves = []
  for name, (_, leaf), start, size in zip(names, paths_and_leaves, offsets, sizes):
    if name == "bias":
      leaves.append(jnp.zeros(leaf.shape, leaf.dtype))
      continue
    std = np.sqrt(1.0 / np.prod(leaf.shape[:-1])) / _TRUNCATED_NORMAL_STD
    leaves.append(jnp.asarray(draws[start:start + size].reshape(leaf.shape) * std, leaf.dtype))
  return jax.tree_util.tree_unflatten(treedef, leaves)
