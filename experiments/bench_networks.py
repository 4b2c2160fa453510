"""Training-step benchmarks of nlvae's conv VAEs against a float32 matmul ceiling, same run.

As a program: the SlowVAE VAE (64x64x1, z = 10, Bernoulli reconstruction + KL, Adam) in three
formulations with the same parameters and the same function: ``flax_layers`` (``nn.Conv`` stride 2
and ``nn.ConvTranspose``), ``subpixel`` (the decoder's transposed convs as
``nlvae.networks.SubPixelConvTranspose``) and ``nlvae`` (also the encoder's strided convs as
``nlvae.networks.SpaceToDepthConv``: nlvae's default); and one candidate not in nlvae.networks,
``scatter_last`` (nlvae with the last transposed conv as ``ScatterConvTranspose``: one matmul and
shifted adds; same parameters and function).

  python -m experiments.bench_networks [--batch 64] [--repeats 10] [--steps_per_call 1]
      [--xla_flags=...] [--profile] [--layers] [--json out.json]

``--profile`` also traces a few sub-pixel steps with jax.profiler and prints where the time goes
(``profile_ops``: XLA:CPU thunk times grouped by kind of operation; on XLA:CPU 0.9.2 the trace
misses most convolution thunks, so ``--layers`` times each layer alone instead: ``layer_times``).

As a library (``experiments.benchmark --only=networks`` uses it): ``benchmark_models`` times the
jitted training steps of several (encoder, decoder) pairs and a float32 matmul in alternating
rounds, so that load from other processes hits all alike, and reports for each model the median
step time, images per second, analytic GFLOP/s (``forward_flops``: 2 x multiply-adds of every conv
and dense layer; a training step = 3 x forward) and its fraction of the same-run matmul GFLOP/s.
"""
import collections
import gzip
import json
import os
import pathlib
import re
import statistics
import tempfile
import time

from absl import flags
import jax
import jax.numpy as jnp
import flax.linen as nn
import numpy as np
import optax

from nlvae import networks


def conv_macs(out_pixels: int, kernel_size: int, in_features: int, out_features: int) -> int:
  """Multiply-adds of a convolution with ``out_pixels`` output positions (per image)."""
  return out_pixels * kernel_size**2 * in_features * out_features


def forward_flops(encoder: networks.Encoder, decoder: networks.Decoder, batch: int,
                  subpixel_executed: bool = False) -> int:
  """Analytic forward FLOPs (2 x multiply-adds) of encoder + decoder for ``batch`` images.

  Images are ``decoder.image_shape`` = [H, H, C] (encoder input and decoder output). Convolutions
  and dense layers only
  (biases, activations and losses are not counted). A transposed conv costs
  ``in_pixels * k^2 * in * out`` multiply-adds (each input pixel meets the whole kernel). With
  ``subpixel_executed`` the stride-2 transposed convs are counted as executed by
  ``SubPixelConvTranspose`` instead: a (taps x taps) conv with 4 x out channels on a map that may be
  one pixel larger than the input (for k = 4: (side + 1)^2 / side^2 times the model count).
  """
  if not isinstance(encoder, networks.Encoder) or not isinstance(decoder, networks.Decoder):
    raise TypeError(f"forward_flops counts networks.Encoder/Decoder layers only, got "
                    f"{type(encoder).__name__}/{type(decoder).__name__}")
  height, _, channels = decoder.image_shape
  macs, size, features = 0, height, channels
  for width in encoder.features:
    size //= 2
    macs += conv_macs(size * size, encoder.kernel_size, features, width)
    features = width
  flat = size * size * features
  if encoder.hidden is not None:
    macs += flat * encoder.hidden
    flat = encoder.hidden
  macs += flat * 2 * encoder.latent_dim
  side = height // 2**len(decoder.features)
  if decoder.hidden is not None:
    macs += encoder.latent_dim * decoder.hidden + decoder.hidden * side * side * decoder.features[0]
  else:
    macs += encoder.latent_dim * side * side * decoder.features[0]
  k = decoder.kernel_size
  plan = networks.subpixel_plan(k, 2, (k - 2) // 2)
  taps = plan.table.shape[0]
  widths = tuple(decoder.features) + (channels,)
  for in_width, out_width in zip(widths[:-1], widths[1:]):
    if subpixel_executed:
      macs += (side + plan.grow)**2 * taps**2 * in_width * 4 * out_width
    else:
      macs += side * side * k**2 * in_width * out_width
    side *= 2
  return 2 * macs * batch


class ScatterConvTranspose(nn.Module):
  """Candidate (not in nlvae.networks): ``SubPixelConvTranspose(features, 4, 2, 1)``'s function
  and parameters computed as ONE matrix product and shifted adds, for layers with few outputs.

  Each input pixel meets the whole (flipped) 4x4 kernel: ``z = x @ W`` with ``W [in, 16 out]``
  (a [B H W, in] x [in, 16 out] matmul), then output phase r of block row m sums the taps that
  land there, ``z[m, 0 + r] + z[m - 1, 2 + r]`` per axis (pads, slices and adds that XLA fuses),
  depth-to-space and a one-pixel crop. Its gradients are two matmuls and the same shifts. For
  SlowVAE's last layer (32 -> 1 channel) the sub-pixel form is a 2x2 conv with only 4 output
  channels, which XLA:CPU runs far below its matmul speed (bench_networks.layer_times); for wide
  outputs this form is much slower (z is 16 out channels per input pixel).
  """
  features: int
  kernel_size: int = 4
  stride: int = 2
  padding: int = 1

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if (self.kernel_size, self.stride, self.padding) != (4, 2, 1) or x.ndim != 4:
      raise ValueError('ScatterConvTranspose computes kernel 4, stride 2, padding 1 on '
                       f'[B, H, W, C]; got {self.kernel_size}, {self.stride}, {self.padding}, '
                       f'{x.shape}')
    batch, height, width, in_features = x.shape
    out = self.features
    kernel = self.param('kernel', nn.initializers.lecun_normal(), (4, 4, in_features, out))
    weight = kernel[::-1, ::-1].transpose(2, 0, 1, 3).reshape(in_features, 16 * out)
    z = jnp.dot(x.reshape(-1, in_features), weight)
    z = z.reshape(batch, height, width, 2, 2, 2, 2, out)  # rows (u, r), columns (v, s)
    z = jnp.pad(z, ((0, 0), (1, 1), (1, 1)) + ((0, 0),) * 5)
    y = sum(z[:, 1 - u:height + 2 - u, 1 - v:width + 2 - v, u, :, v, :, :]
            for u in range(2) for v in range(2))  # [B, H + 1, W + 1, r, s, out]
    y = y.transpose(0, 1, 3, 2, 4, 5).reshape(batch, 2 * height + 2, 2 * width + 2, out)
    y = y[:, 1:2 * height + 1, 1:2 * width + 1]
    return y + self.param('bias', nn.initializers.zeros_init(), (out,))


class ScatterLastDecoder(networks.Decoder):
  """Candidate: nlvae's Decoder (same parameters, same function) whose last transposed conv (to
  the image's channels) is ``ScatterConvTranspose``; the other layers as in nlvae."""

  def _conv_transpose(self, features, kernel_size, stride, padding, name):
    if name == f'up_{len(self.features) - 1}' and (kernel_size, stride, padding) == (4, 2, 1):
      return ScatterConvTranspose(features, kernel_size, stride, padding, name=name)
    return super()._conv_transpose(features, kernel_size, stride, padding, name)


def scatter_last_decoder(out_channels: int = 1, image_size: int = 64) -> ScatterLastDecoder:
  """The SlowVAE decoder with the ScatterConvTranspose candidate as its last layer."""
  return ScatterLastDecoder((image_size, image_size, out_channels), (64, 64, 32, 32), 4, 256)


def layer_times(batch: int = 64, repeats: int = 10, image_size: int = 64) -> dict:
  """Per-layer time of the SlowVAE network in nlvae's formulation (and the candidate last layer):
  {layer: {"forward_ms", "forward_backward_ms"}}, the fastest of ``repeats`` jitted calls each
  (the fastest, as other processes' load only adds time). forward_backward: gradients of
  sum(y^2) for the kernel, bias and (but for the first layer, whose input is the images) input.
  """
  side = image_size
  layers = {}
  widths = (1, 32, 32, 64, 64)
  for i in range(4):
    layers[f'encoder conv_{i} ({widths[i]}->{widths[i + 1]}, {side}->{side // 2})'] = (
        networks.SpaceToDepthConv(widths[i + 1], 4, 1), (batch, side, side, widths[i]), i > 0)
    side //= 2
  up = (64, 64, 32, 32, 1)
  for i in range(4):
    layers[f'decoder up_{i} ({up[i]}->{up[i + 1]}, {side}->{2 * side})'] = (
        networks.SubPixelConvTranspose(up[i + 1], 4, 2, 1), (batch, side, side, up[i]), True)
    if i == 3:
      layers[f'decoder up_{i} candidate ScatterConvTranspose'] = (
          ScatterConvTranspose(up[i + 1]), (batch, side, side, up[i]), True)
    side *= 2
  rng = np.random.default_rng(0)
  results = {}
  for name, (module, shape, input_grad) in layers.items():
    x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
    params = jax.jit(module.init)(jax.random.key(0), x)
    loss = lambda p, x, m=module: jnp.sum(m.apply(p, x)**2)
    grad = jax.jit(jax.grad(loss, argnums=(0, 1) if input_grad else 0))
    forward = jax.jit(module.apply)
    timings = {}
    for label, fn in (('forward_ms', forward), ('forward_backward_ms', grad)):
      time_call(fn, params, x)
      timings[label] = 1e3 * min(time_call(fn, params, x) for _ in range(repeats))
    results[name] = timings
  return results


def vae_loss(encoder, decoder, params, images, noise):
  """Bernoulli reconstruction (summed over pixels) + KL(q || N(0, I)), averaged over images.

  images float32 [B, H, W, C] in {0, 1}; noise float32 [B, D] (the reparameterisation draws).
  """
  posterior = encoder.apply(params['encoder'], images)
  mean, log_var = posterior.mean, posterior.log_var
  latents = mean + jnp.exp(0.5 * log_var) * noise
  logits = decoder.apply(params['decoder'], latents)
  reconstruction = jnp.sum(optax.sigmoid_binary_cross_entropy(logits, images), axis=(1, 2, 3))
  kl = 0.5 * jnp.sum(jnp.exp(log_var) + mean**2 - 1 - log_var, axis=-1)
  return jnp.mean(reconstruction + kl)


def make_train_step(encoder, decoder, tx: optax.GradientTransformation):
  """Jitted training call: (params, opt_state, images [n, B, H, W, C], noise [n, B, D]) ->
  (params, opt_state, losses [n]): n optimizer steps on ``vae_loss`` in one dispatch; params and
  opt_state are donated (updated in place).

  The n steps are unrolled in the program, not a ``lax.scan``: on XLA:CPU (jax 0.9.2) the
  convolutions of a while-loop body run about 20x slower (measured: SlowVAE step 0.35 s unrolled,
  7-8 s inside a scan of length 1 or 4).
  """

  def one_step(params, opt_state, images, noise):
    loss, grads = jax.value_and_grad(
        lambda p: vae_loss(encoder, decoder, p, images, noise))(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  def train_call(params, opt_state, images, noise):
    losses = []
    for images_i, noise_i in zip(images, noise):  # unrolled: n copies of the step
      params, opt_state, loss = one_step(params, opt_state, images_i, noise_i)
      losses.append(loss)
    return params, opt_state, jnp.stack(losses)

  return jax.jit(train_call, donate_argnums=(0, 1))


def time_call(fn, *args) -> float:
  """Wall seconds of fn(*args), waiting for its results."""
  start = time.perf_counter()
  jax.block_until_ready(fn(*args))
  return time.perf_counter() - start


def matmul_gflops(seconds: float, size: int) -> float:
  """GFLOP/s of one float32 [size, size] x [size, size] product taking ``seconds``."""
  return 2 * size**3 / seconds / 1e9


def benchmark_models(models: dict, batch: int, *, repeats: int = 5, warmup: int = 1,
                     steps_per_call: int = 1, matmul_size: int = 2048, seed: int = 0,
                     profile: bool = False, side_by_side: dict | None = None) -> dict:
  """Times the training step of every (encoder, decoder) in ``models`` and a float32 matmul.

  Args:
    models: name -> (networks.Encoder, networks.Decoder); images are decoder.image_shape.
    batch: images per training step.
    repeats: timed rounds; each round calls every model's step once, then the matmul once.
    warmup: untimed calls after compilation.
    steps_per_call: training steps per jitted call (``make_train_step``'s n).
    matmul_size: side of the square matmul that sets the ceiling.
    profile: also add each model's ``profile_ops`` (after the timed rounds) as row["profile"].
    side_by_side: name -> (model name, factory): more steps timed in the same rounds, e.g. the
      same network in another framework (experiments.bench_torch). ``factory(images, noise,
      params)`` gets that model's first-call data as numpy ([B, H, W, C], [B, D]) and its initial
      parameters (numpy pytree) and returns a step: ``step()`` runs one training step and returns
      its loss (a float, after the step finished); attributes ``num_params``, ``initial_loss``
      (before any step), ``compile_s``, optional ``info`` (dict). Its row has the model's
      ``model_gflop_per_step`` and the same keys; the model's row gets ``initial_loss`` too (its
      vae_loss on the same parameters and data) and ``steps_per_call`` must be 1.
  Returns:
    {"batch", "steps_per_call", "matmul_gflops_per_s" (median over the rounds), "models": name ->
    {"median_step_ms", "min_step_ms", "step_ms_per_round", "images_per_s",
    "model_gflop_per_step", "gflops_per_s", "fraction_of_matmul" (gflops_per_s /
    matmul_gflops_per_s), "fraction_of_matmul_per_round" (median over the rounds of the same ratio
    within a round), "compile_s" (compilation and the first call), "num_params", "loss"}}. Step
    times are per training step (call time / n).
  """
  rng = np.random.default_rng(seed)
  key = jax.random.key(seed, impl='rbg')  # compiles faster than threefry; values are irrelevant
  side_by_side = side_by_side or {}
  if side_by_side and steps_per_call != 1:
    raise ValueError('side_by_side steps are timed one step per call: use steps_per_call=1')
  calls, rows, others = {}, {}, {}
  for name, (encoder, decoder) in models.items():
    shape = (steps_per_call, batch) + tuple(decoder.image_shape)
    images = jnp.asarray(rng.uniform(size=shape) > 0.7, jnp.float32)
    noise = jnp.asarray(rng.standard_normal((steps_per_call, batch, encoder.latent_dim)),
                        jnp.float32)
    params = {'encoder': jax.jit(encoder.init)(key, images[0]),
              'decoder': jax.jit(decoder.init)(key, noise[0])}
    tx = optax.adam(1e-4)
    step = make_train_step(encoder, decoder, tx)
    for other, (base, factory) in side_by_side.items():
      if base == name:  # before the first call donates params
        numpy_params = jax.tree_util.tree_map(np.asarray, params)
        others[other] = factory(np.asarray(images[0]), np.asarray(noise[0]), numpy_params)
        rows.setdefault(name, {})
        rows[other] = {'compile_s': others[other].compile_s,
                       'num_params': others[other].num_params,
                       'initial_loss': others[other].initial_loss,
                       'info': dict(getattr(others[other], 'info', {}))}
        rows.setdefault(name, {})['initial_loss'] = float(jax.jit(
            lambda p, i, n, e=encoder, d=decoder: vae_loss(e, d, p, i, n))(
                params, images[0], noise[0]))
    state = {'params': params, 'opt_state': tx.init(params)}

    def call(step=step, state=state, images=images, noise=noise):
      state['params'], state['opt_state'], losses = step(state['params'], state['opt_state'],
                                                         images, noise)
      return losses

    num = networks.num_params(params)
    rows.setdefault(name, {}).update(
        compile_s=time_call(call), num_params=num,
        model_gflop_per_step=3 * forward_flops(encoder, decoder, batch) / 1e9)
    for _ in range(warmup):
      time_call(call)
    rows[name]['loss'] = float(call()[-1])
    calls[name] = call
    for other, (base, _) in side_by_side.items():
      if base == name:
        rows[other]['model_gflop_per_step'] = rows[name]['model_gflop_per_step']
        for _ in range(warmup):
          others[other]()
        rows[other]['loss'] = float(others[other]())
        calls[other] = others[other]
  a = jnp.asarray(rng.standard_normal((matmul_size, matmul_size)), jnp.float32)
  matmul = jax.jit(jnp.dot)
  calls['matmul'] = lambda: matmul(a, a)
  time_call(calls['matmul'])
  seconds = {name: [] for name in calls}
  for _ in range(repeats):  # alternate: every round times each model and the matmul once
    for name, call in calls.items():
      seconds[name].append(time_call(call))
  matmul_s = seconds.pop('matmul')
  ceiling = matmul_gflops(statistics.median(matmul_s), matmul_size)
  for name, times in seconds.items():
    step_s = [t / steps_per_call for t in times]
    median = statistics.median(step_s)
    gflops = rows[name]['model_gflop_per_step'] / median
    per_round = [rows[name]['model_gflop_per_step'] / step / matmul_gflops(m, matmul_size)
                 for step, m in zip(step_s, matmul_s)]
    rows[name].update(median_step_ms=1e3 * median, min_step_ms=1e3 * min(step_s),
                      step_ms_per_round=[1e3 * t for t in step_s],
                      images_per_s=batch / median, gflops_per_s=gflops,
                      fraction_of_matmul=gflops / ceiling,
                      fraction_of_matmul_per_round=statistics.median(per_round))
    if profile and name in models:
      rows[name]['profile'] = profile_ops(calls[name])
  return {'batch': batch, 'steps_per_call': steps_per_call, 'matmul_size': matmul_size,
          'matmul_gflops_per_s': ceiling, 'models': rows}


# Kinds of XLA:CPU thunks, by HLO instruction name (first match wins).
OP_KINDS = (
    ("conv input-gradient, strided (lhs-dilated)", r"^convolution-base-dilated"),
    ("conv weight-gradient, strided (rhs-dilated)", r"^convolution-window-dilated"),
    ("conv forward", r"^conv_general_dilated"),
    ("conv, other backward", r"^convolution"),
    ("matmul", r"^(dot|gemm|custom-call)"),
    ("layout transposes and copies", r"^(transpose|copy)"),
    ("elementwise fusions", r"fusion"),
)


def profile_ops(call, steps: int = 3, logdir: str | None = None) -> dict:
  """Traces ``steps`` calls of ``call`` with jax.profiler; returns where the time went.

  Returns {"step_ms": traced wall ms per call, "kinds": kind -> ms per call (OP_KINDS, plus
  "other"), "top": [(HLO op, ms per call)] * 12}, from the XLA:CPU thunk events of the trace
  (ops on several threads overlap, so the kinds may add up to more than step_ms).
  """
  with tempfile.TemporaryDirectory() as scratch:
    folder = pathlib.Path(logdir or scratch)
    jax.block_until_ready(call())
    start = time.perf_counter()
    with jax.profiler.trace(str(folder), create_perfetto_trace=True):
      for _ in range(steps):
        jax.block_until_ready(call())
    step_ms = 1e3 * (time.perf_counter() - start) / steps
    trace = max(folder.glob("plugins/profile/*/perfetto_trace.json.gz"), key=os.path.getmtime)
    events = json.load(gzip.open(trace))
  events = events["traceEvents"] if isinstance(events, dict) else events
  per_op = collections.Counter()
  for event in events:
    name = event.get("name", "")
    if event.get("ph") == "X" and not name.startswith(("$", "ThunkExecutor", "SlinkyThread")):
      per_op[name] += event.get("dur", 0) / 1e3 / steps
  kinds = collections.Counter()
  for name, ms in per_op.items():
    kind = next((kind for kind, pattern in OP_KINDS if re.search(pattern, name)), "other")
    kinds[kind] += ms
  return {"step_ms": step_ms, "kinds": dict(kinds.most_common()),
          "top": per_op.most_common(12)}


def print_profile(profile: dict, title: str) -> None:
  """The kinds and the top ops of a ``profile_ops`` result."""
  print(f"{title} (traced step {profile['step_ms']:.1f} ms):")
  for kind, ms in profile['kinds'].items():
    print(f"  {ms:8.1f} ms  {ms / profile['step_ms']:6.1%}  {kind}")
  print("  top ops: " + ", ".join(f"{name} {ms:.1f} ms" for name, ms in profile['top']), flush=True)


def print_layer_times(layers: dict, title: str) -> None:
  """One line per layer of a ``layer_times`` result."""
  print(f"SlowVAE layers alone ({title}; fastest of the rounds):")
  for name, row in layers.items():
    print(f"  {name:<48} forward {row['forward_ms']:7.2f} ms   forward + backward "
          f"{row['forward_backward_ms']:7.2f} ms", flush=True)


def print_table(result: dict, title: str) -> None:
  """One line per model of a ``benchmark_models`` result."""
  print(f"{title}: batch {result['batch']}, {result['steps_per_call']} step(s) per call, f32 "
        f"matmul {result['matmul_size']}^2 {result['matmul_gflops_per_s']:.1f} GFLOP/s")
  print(f"  {'model':<22}{'median ms':>10}{'images/s':>10}{'GFLOP/step':>11}{'GFLOP/s':>9}"
        f"{'of matmul':>10}{'compile s':>10}")
  for name, row in result['models'].items():
    print(f"  {name:<22}{row['median_step_ms']:>10.1f}{row['images_per_s']:>10.0f}"
          f"{row['model_gflop_per_step']:>11.3f}{row['gflops_per_s']:>9.1f}"
          f"{row['fraction_of_matmul']:>10.1%}{row['compile_s']:>10.1f}", flush=True)


# The program's flags, in a private registry (data.cli): experiments.benchmark and bench_gpu import
# this module beside flags of their own with the same names.
FLAGS = flags.FlagValues()
flags.DEFINE_integer('batch', 64, 'Images per training step.', flag_values=FLAGS)
flags.DEFINE_integer('image_size', 64, 'Image side.', flag_values=FLAGS)
flags.DEFINE_integer('latent_dim', 10, 'Latents.', flag_values=FLAGS)
flags.DEFINE_integer('repeats', 10, 'Timed rounds.', flag_values=FLAGS)
flags.DEFINE_integer('warmup', 2, 'Untimed calls after compilation.', flag_values=FLAGS)
flags.DEFINE_integer('steps_per_call', 1, 'Training steps per jitted call (lax.scan).',
                     flag_values=FLAGS)
flags.DEFINE_integer('matmul_size', 2048, 'Side of the float32 matmul ceiling.', flag_values=FLAGS)
flags.DEFINE_string('json', None, 'Write the results to this JSON file.', flag_values=FLAGS)
flags.DEFINE_bool('profile', False, 'Also trace each step and print where the time goes.',
                  flag_values=FLAGS)
flags.DEFINE_bool('layers', False, 'Also time each conv layer alone (layer_times) and print it.',
                  flag_values=FLAGS)
flags.DEFINE_string('xla_flags', '', "Appended to XLA_FLAGS, e.g. "
                    "'--xla_cpu_experimental_ynn_fusion_type='.", flag_values=FLAGS)


def main(argv):
  del argv
  args = FLAGS
  if args.xla_flags:  # read when the CPU backend starts, i.e. at the first computation below
    os.environ['XLA_FLAGS'] = f"{os.environ.get('XLA_FLAGS', '')} {args.xla_flags}".strip()
  if min(args.repeats, args.batch, args.steps_per_call) < 1:
    raise ValueError('--repeats, --batch and --steps_per_call must be >= 1.')

  encoder = networks.slowvae_encoder(args.latent_dim)
  flax_encoder = encoder.clone(downsample='strided')
  models = {  # name -> (encoder, decoder); all three compute the same function
      'flax_layers': (flax_encoder, networks.slowvae_decoder(1, args.image_size, 'conv_transpose')),
      'subpixel': (flax_encoder, networks.slowvae_decoder(1, args.image_size, 'subpixel')),
      'nlvae': (encoder, networks.slowvae_decoder(1, args.image_size, 'subpixel')),
      # candidate, not nlvae's default: the last layer as one matmul + shifted adds
      'scatter_last': (encoder, scatter_last_decoder(1, args.image_size)),
  }
  results = benchmark_models(models, args.batch, repeats=args.repeats, warmup=args.warmup,
                             steps_per_call=args.steps_per_call, matmul_size=args.matmul_size,
                             profile=args.profile)
  results.update(device=str(jax.devices()[0]), xla_flags=os.environ.get('XLA_FLAGS', ''),
                 image_size=args.image_size, repeats=args.repeats,
                 executed_gflop_per_step=3 * forward_flops(*models['nlvae'], args.batch,
                                                           subpixel_executed=True) / 1e9)
  rows = results['models']
  results['speedup_over_flax_layers'] = {
      name: rows['flax_layers']['median_step_ms'] / row['median_step_ms']
      for name, row in rows.items()}
  print_table(results, f"SlowVAE train step ({results['device']}, "
                       f"XLA_FLAGS='{results['xla_flags']}')")
  print("speedup over flax layers (nn.Conv stride 2 + nn.ConvTranspose): " + ", ".join(
      f"{name} {ratio:.2f}x" for name, ratio in results['speedup_over_flax_layers'].items())
        + "; losses " + ", ".join(f"{row['loss']:.6f}" for row in rows.values()))
  for name, row in rows.items():
    if 'profile' in row:
      print_profile(row['profile'], f"{name}: XLA:CPU ops per step")
  if args.layers:
    results['layers'] = layer_times(args.batch, args.repeats, args.image_size)
    print_layer_times(results['layers'], f"batch {args.batch}")
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(results, f, indent=2)


if __name__ == '__main__':
  from data import cli
  cli.run(main, FLAGS)
