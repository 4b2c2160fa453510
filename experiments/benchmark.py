r"""Benchmarks that report ratios measured in one run (timings on shared machines are noisy).

  python -m experiments.benchmark [--only=networks,kl,data,compile] [--json=out.json]
      [--xla_defaults]

Runs with nlvae.xla_cpu.FAST_FLAGS, as experiments.run trains (--xla_defaults: XLA's defaults).

Sub-benchmarks (all by default; every result goes into the JSON):
  networks  training step (loss, gradients, Adam; experiments.bench_networks.benchmark_models) of
            the SlowVAE architecture (64x64x1, z = 10) and of the physics experiments' networks
            (experiments/spring.py quick: 32x32x1 and full: 64x64x1) at batch 64 and 256 images:
            median step time, images/s, analytic GFLOP/s and the fraction of a float32 matmul's
            GFLOP/s, timed in alternating rounds of the same process; also the fraction of the
            matmul's GFLOP/s with XLA's default flags (a second process), which is higher.
  kl        cost of the linearisation + mixture KL (priors.sequence_kl, jitted, vmapped over a
            batch of 16 clips of a pendulum prior) against K = 32..512 (components), S = 16..256
            (samples), T = 10..160 (frames) and D = 1..8 (latent size, a linear-extrapolation
            prior), with fitted log-log scaling exponents; and the vmapped form against a plain Python loop over K = 64 components.
  pytorch   the SlowVAE training step of nlvae (as in networks) against the same network, loss and
            optimizer in PyTorch (experiments/bench_torch.py; the optional `bench` extra, skipped
            without torch), from the same parameters and data, in alternating rounds with the f32
            matmul, at the same batches: images/s of both, their ratio and both as fractions of
            the same-run matmul ceiling (--torch_threads=2, --torch_process=child|same,
            --torch_omp_wait_policy=PASSIVE, --candidates: bench_networks' candidate formulations
            in the same rounds).
  data      frames per second of each physics generator against the frames per second the quick
            config's training step consumes.
  compile   compile time of the training step (nlvae.train.make_train_step on the spring quick
            config, and the SlowVAE step of bench_networks) in a fresh process with an empty
            persistent compilation cache (jax_compilation_cache_dir: a new temporary folder), then
            in a second fresh process that loads it from that cache (XLA:CPU logs "Target
            machine feature +prefer-no-scatter is not supported" when loading; harmless: both
            processes' executables must compute the same loss, which is checked).
experiments/bench_networks.py also compares transposed-conv formulations and XLA flags.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

SUB_BENCHMARKS = ("networks", "pytorch", "kl", "data", "compile")
_ONLY = flags.DEFINE_list("only", list(SUB_BENCHMARKS), "Sub-benchmarks to run.")
_JSON = flags.DEFINE_string("json", None, "Also write the results to this JSON file.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed calls per point (median is reported).")
_BATCHES = flags.DEFINE_list("batches", ["64", "256"], "Images per step for --only=networks.")
_TORCH_THREADS = flags.DEFINE_integer(
    "torch_threads", 2, "--only=pytorch: torch.set_num_threads of the PyTorch step (CPU).")
_TORCH_PROCESS = flags.DEFINE_enum(
    "torch_process", "child", ["child", "same"], "--only=pytorch: run the PyTorch step in a child "
    "process (its OpenMP threads apart from XLA's thread pool) or in this process.")
_TORCH_OMP_WAIT_POLICY = flags.DEFINE_string(
    "torch_omp_wait_policy", "PASSIVE", "--only=pytorch, child process: its OMP_WAIT_POLICY "
    "(PASSIVE: idle OpenMP threads sleep; on a loaded machine PyTorch's spinning threads make its "
    "steps up to 10x slower, docs/benchmarks.md). Empty: PyTorch's default (spin).")
_CANDIDATES = flags.DEFINE_bool(
    "candidates", True, "--only=pytorch: also time bench_networks' candidate formulations "
    "(scatter_last) in the same rounds.")
_XLA_DEFAULTS = flags.DEFINE_bool(
    "xla_defaults", False, "Run with XLA:CPU's default flags, without nlvae.xla_cpu.FAST_FLAGS.")
_MATMUL_CHILD = flags.DEFINE_bool(
    "matmul_child", False, "Internal (--only=networks): print the f32 matmul GFLOP/s as JSON.")
_COMPILE_CHILD = flags.DEFINE_string(
    "compile_child", None, "Internal (--only=compile): time the compilations with this persistent "
    "cache folder and print them as one JSON line.")


def median_seconds(fn, repeats: int) -> float:
  jax.block_until_ready(fn())  # compile and warm up
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def _kl_call(prior, batch, frames, components, samples):
  from nlvae import priors
  key = jax.random.PRNGKey(0)
  mean = jax.random.normal(key, (batch, frames, prior.latent_dim))
  var = jnp.full_like(mean, 0.01)
  fn = jax.jit(jax.vmap(lambda m, v, k: priors.sequence_kl(
      prior, m, v, k, num_components=components, num_samples=samples)))
  keys = jax.random.split(key, batch)
  return lambda: fn(mean, var, keys)


def kl_benchmark(repeats: int) -> dict:
  from nlvae import priors
  pendulum = priors.pendulum(dt=0.05)
  # name -> (values, arguments of _kl_call for each value: prior, batch, frames, K, S)
  sweeps = {
      # K and S from sizes where the per-call fixed cost no longer dominates (from K = 8 the
      # fitted exponent was 0.73). T up to 160 frames: at 320 the arrays are large enough for
      # XLA:CPU to split them over the 2 cores and the cost grows sub-linearly (exponent 0.77
      # for T = 20..320 on the 2-core machine, README).
      "K": ((32, 64, 128, 256, 512), lambda k: (pendulum, 16, 20, k, 4)),
      "S": ((16, 32, 64, 128, 256), lambda s: (pendulum, 16, 20, 16, s)),
      "T": ((10, 20, 40, 80, 160), lambda t: (pendulum, 16, t, 16, 4)),
      "D": ((1, 2, 4, 8), lambda d: (priors.linear_extrapolation(latent_dim=d), 16, 20, 32, 4)),
  }
  results = {}
  for name, (values, arguments) in sweeps.items():
    seconds = [median_seconds(_kl_call(*arguments(v)), repeats) for v in values]
    exponent = float(np.polyfit(np.log(values), np.log(seconds), 1)[0])
    results[name] = dict(values=values, seconds=seconds, exponent=exponent)
    print(f"KL vs {name}: " + ", ".join(f"{v}: {s * 1e3:.2f} ms" for v, s in zip(values, seconds))
          + f"  -> exponent {exponent:.2f}", flush=True)

  # vmapped over components (priors.linearize) vs a Python loop over components at K = 64.
  history_mean, history_var = jnp.array([[1.0], [1.1]]), jnp.array([[0.04], [0.04]])
  vmapped = jax.jit(lambda m, v: priors.linearize(pendulum, m, v, num_components=64))
  split = priors.split_gaussian(
      priors.gaussians.diag_gaussian(history_mean.reshape(-1), history_var.reshape(-1)), 64)
  single = jax.jit(lambda centre, cov: priors.pushforward(
      pendulum, priors.gaussians.Gaussian(centre, cov)))

  def loop():
    return [single(split.means[k], split.covs[k]) for k in range(64)]

  t_vmap = median_seconds(lambda: vmapped(history_mean, history_var), repeats)
  t_loop = median_seconds(loop, repeats)
  results["vmap_vs_loop_K64"] = dict(vmapped_seconds=t_vmap, loop_seconds=t_loop,
                                     speedup=t_loop / t_vmap)
  print(f"linearisation at K = 64: vmapped {t_vmap * 1e6:.0f} us, Python loop "
        f"{t_loop * 1e6:.0f} us -> {t_loop / t_vmap:.0f}x", flush=True)
  return results


def physics_train_step(config):
  """The training step of a physics config on its first global batch, on all local devices.

  Returns (train_step, state, batch, key): nlvae.train.make_train_step's jitted step (the state is
  donated: feed back the returned one), the initial TrainState, the batch ({"frames": uint8
  [B, T, H, W, C], ...}, sharded over the 'data' mesh) and the step key. The data set is cut to 64
  training clips (the step does not depend on its size).
  """
  from data import pipeline
  from nlvae import datasets, models, train
  config = config.copy_and_resolve_references()
  config.data.num_train, config.data.num_test = 64, 16
  train_data, _, info = datasets.load(config.data)
  model = models.build(config.model, info)
  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(jax.sharding.AxisType.Auto,))
  batch = train.global_batch(pipeline.Batches(train_data, config.train.batch_size, 0).batch(0),
                             mesh)
  params = model.init(jax.random.PRNGKey(0), batch)
  state = train.TrainState.create(apply_fn=None, params=params,
                                  tx=train.make_optimizer(config.train))
  # Placed as train.py places it: the step's output state then has the input's sharding, and the
  # second call does not compile again.
  state = jax.device_put(state, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))
  return train.make_train_step(model, mesh), state, batch, jax.random.PRNGKey(1)


def data_benchmark(repeats: int) -> dict:
  from data import physics
  from experiments import falling, pendulum, pulsar, spring
  results = {}
  for module in (spring, pendulum, falling, pulsar):
    config = module.get_config("quick")
    system = config.data.system
    options = dict(config.data.options)
    clips = 256
    generate = lambda: physics.generate(system, clips, 0, **options)
    gen_fps = clips * options["num_frames"] / median_seconds(generate, repeats)
    train_step, state, batch, key = physics_train_step(config)
    holder = {"state": state}

    def one_step():
      holder["state"], metrics = train_step(holder["state"], batch, key)
      return metrics["loss"]

    train_fps = (config.train.batch_size * options["num_frames"]
                 / median_seconds(one_step, repeats))
    results[system] = dict(generator_fps=gen_fps, training_fps=train_fps,
                           ratio=gen_fps / train_fps)
    print(f"{system}: generator {gen_fps:,.0f} frames/s, training consumes {train_fps:,.0f} "
          f"frames/s -> {gen_fps / train_fps:.1f}x", flush=True)
  return results


def network_models() -> dict:
  """name -> (networks.Encoder, networks.Decoder): the SlowVAE architecture and the physics
  experiments' networks as experiments/spring.py configures them (quick and full)."""
  from experiments import spring
  from nlvae import datasets, models, networks
  result = {"slowvae": (networks.slowvae_encoder(10), networks.slowvae_decoder(1, 64))}
  for variant in ("quick", "full"):
    config = spring.get_config(variant)
    size, channels = config.data.options.image_size, config.data.options.get("channels", 1)
    info = datasets.DatasetInfo(system=config.data.system, dt=0.05,  # dt: the prior, not networks
                                image_shape=(size, size, channels))
    model = models.build(config.model, info)
    result[f"physics_{variant}"] = (model.encoder, model.decoder)
  return result


def matmul_child(repeats: int, size: int = 2048) -> float:
  """Median GFLOP/s of a float32 [size, size] matmul in this process."""
  from experiments import bench_networks
  a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), jnp.float32)
  matmul = jax.jit(jnp.dot)
  return bench_networks.matmul_gflops(median_seconds(lambda: matmul(a, a), repeats), size)


def default_flags_matmul_gflops(repeats: int) -> float:
  """The float32 matmul ceiling with XLA's default flags, in a fresh process (XLA_FLAGS are read
  once per process), so that nlvae's flags cannot lower the ceiling its fractions divide by."""
  env = dict(os.environ, XLA_FLAGS="")
  out = subprocess.run([sys.executable, "-m", "experiments.benchmark", "--xla_defaults",
                        "--matmul_child", f"--repeats={max(repeats, 10)}"], env=env,
                       capture_output=True, text=True, timeout=600, check=False)
  if out.returncode:
    raise RuntimeError(f"matmul child failed:\n{out.stderr[-3000:]}")
  return float(out.stdout.strip().splitlines()[-1])


def networks_benchmark(repeats: int, batches) -> dict:
  """benchmark_models per batch size; each model row also gets "fraction_of_default_flags_matmul"
  (its GFLOP/s over default_flags_matmul_gflops, measured once, before the batches)."""
  from experiments import bench_networks
  default_ceiling = default_flags_matmul_gflops(repeats)
  results = {"xla_flags": os.environ.get("XLA_FLAGS", ""),
             "default_flags_matmul_gflops_per_s": default_ceiling}
  for batch in batches:
    result = bench_networks.benchmark_models(network_models(), int(batch), repeats=repeats)
    for row in result["models"].values():
      row["fraction_of_default_flags_matmul"] = row["gflops_per_s"] / default_ceiling
    results[f"batch_{batch}"] = result
    bench_networks.print_table(result, f"training step (XLA_FLAGS='{results['xla_flags']}')")
    print("  of the f32 matmul with XLA's default flags "
          f"({default_ceiling:.1f} GFLOP/s, another process): " + ", ".join(
              f"{name} {row['fraction_of_default_flags_matmul']:.1%}"
              for name, row in result["models"].items()), flush=True)
  return results


def pytorch_benchmark(repeats: int, batches, threads: int = 2, process: str = "child",
                      image_size: int = 64, tolerance: float = 1e-4,
                      matmul_size: int = 2048, candidates: bool = False,
                      omp_wait_policy: str | None = "PASSIVE") -> dict:
  """nlvae's SlowVAE step against the same network in PyTorch (experiments.bench_torch), timed in
  the same alternating rounds as the f32 matmul (bench_networks.benchmark_models, side_by_side).

  Both start from the same parameters (nlvae's, copied into the torch module) and data; raises if
  either network does not have bench_torch.SLOWVAE_NUM_PARAMS parameters (at image_size 64) or if
  their initial losses differ by more than ``tolerance`` (relative). Returns {"skipped": why} when
  torch is not installed (the ``bench`` extra), else per batch the benchmark_models result plus
  "nlvae_over_pytorch" (ratio of images/s: of the medians, "per_round": median over rounds of the
  ratio within a round, "best": of the fastest rounds) and "initial_loss_relative_difference".
  With ``candidates``, bench_networks' candidate formulations (same function and parameters, not
  nlvae's default) run in the same rounds: "<name>_over_pytorch" and "<name>_over_nlvae".
  """
  try:
    from experiments import bench_torch
  except ImportError as error:
    print(f"pytorch: skipped ({error}; pip install -e '.[bench]')", flush=True)
    return {"skipped": f"torch is not installed ({error})"}
  from experiments import bench_networks
  from nlvae import networks
  device = "cuda" if jax.default_backend() == "gpu" else "cpu"
  steps = []

  def factory(images, noise, params):
    if process == "child":
      steps.append(bench_torch.TorchWorker(images, noise, params=params, threads=threads,
                                           device=device, omp_wait_policy=omp_wait_policy))
    else:  # this process's environment (OMP_WAIT_POLICY is read when torch starts)
      steps.append(bench_torch.TorchSlowVAEStep(images, noise, params=params, threads=threads,
                                                device=device))
    return steps[-1]

  encoder = networks.slowvae_encoder(10)
  models = {"nlvae": (encoder, networks.slowvae_decoder(1, image_size))}
  if candidates:  # formulations not (yet) in nlvae.networks, timed in the same rounds
    models["scatter_last"] = (encoder, bench_networks.scatter_last_decoder(1, image_size))
  results = {"torch_process": process, "torch_threads": threads, "torch_device": device,
             "torch_omp_wait_policy": omp_wait_policy if process == "child" else
             os.environ.get("OMP_WAIT_POLICY")}
  for batch in batches:
    try:
      result = bench_networks.benchmark_models(
          models, int(batch), repeats=repeats, matmul_size=matmul_size,
          side_by_side={"pytorch": ("nlvae", factory)})
    finally:
      for step in steps:
        if hasattr(step, "close"):
          step.close()
      steps.clear()
    nl, pt = result["models"]["nlvae"], result["models"]["pytorch"]
    if image_size == 64 and not nl["num_params"] == pt["num_params"] == \
        bench_torch.SLOWVAE_NUM_PARAMS:
      raise RuntimeError(f"parameter counts: nlvae {nl['num_params']}, PyTorch "
                         f"{pt['num_params']}, expected {bench_torch.SLOWVAE_NUM_PARAMS}")
    difference = abs(nl["initial_loss"] - pt["initial_loss"]) / abs(nl["initial_loss"])
    if not difference <= tolerance:
      raise RuntimeError(f"initial losses differ: nlvae {nl['initial_loss']}, PyTorch "
                         f"{pt['initial_loss']}")
    per_round = [p / n for n, p in zip(nl["step_ms_per_round"], pt["step_ms_per_round"])]
    result["nlvae_over_pytorch"] = dict(
        median=nl["images_per_s"] / pt["images_per_s"], per_round=float(np.median(per_round)),
        best=pt["min_step_ms"] / nl["min_step_ms"])
    result["initial_loss_relative_difference"] = difference
    for name, row in result["models"].items():
      if name not in ("nlvae", "pytorch"):
        result[f"{name}_over_pytorch"] = row["images_per_s"] / pt["images_per_s"]
        result[f"{name}_over_nlvae"] = dict(
            median=row["images_per_s"] / nl["images_per_s"], per_round=float(np.median(
                [n / c for n, c in zip(nl["step_ms_per_round"], row["step_ms_per_round"])])))
    results[f"batch_{batch}"] = result
    bench_networks.print_table(result, f"SlowVAE: nlvae vs PyTorch ({device}, torch "
                                       f"{pt['info'].get('torch')}, {threads} threads, {process} "
                                       f"process, OMP_WAIT_POLICY="
                                       f"{pt['info'].get('omp_wait_policy')}; XLA_FLAGS="
                                       f"'{os.environ.get('XLA_FLAGS', '')}')")
    ratio = result["nlvae_over_pytorch"]
    print(f"  nlvae / PyTorch images/s: {ratio['median']:.2f}x (medians), "
          f"{ratio['per_round']:.2f}x (median of the rounds' ratios), {ratio['best']:.2f}x "
          f"(fastest rounds); initial losses "
          f"{nl['initial_loss']:.4f} vs {pt['initial_loss']:.4f}; torch matmul "
          f"{pt['info'].get('matmul_gflops_per_s', float('nan')):.1f} GFLOP/s", flush=True)
    for name in result["models"]:
      if f"{name}_over_nlvae" in result:
        print(f"  candidate {name}: {result[f'{name}_over_pytorch']:.2f}x PyTorch, "
              f"{result[f'{name}_over_nlvae']['per_round']:.2f}x nlvae (median of the rounds' "
              "ratios)", flush=True)
  return results


def compile_child(cache_dir: str) -> dict:
  """Seconds to lower and to compile each training step with the persistent cache `cache_dir`,
  and the loss of one call of the compiled step (the same whether compiled or loaded)."""
  jax.config.update("jax_compilation_cache_dir", cache_dir)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  import optax
  from experiments import bench_networks, spring
  train_step, state, batch, key = physics_train_step(spring.get_config("quick"))
  encoder, decoder = network_models()["slowvae"]
  images = jnp.ones((1, 64) + tuple(decoder.image_shape), jnp.float32)
  noise = jnp.zeros((1, 64, encoder.latent_dim), jnp.float32)
  init_key = jax.random.key(0, impl="rbg")
  params = {"encoder": jax.jit(encoder.init)(init_key, images[0]),
            "decoder": jax.jit(decoder.init)(init_key, noise[0])}
  tx = optax.adam(1e-4)
  steps = {"spring_quick": (train_step, (state, batch, key), lambda out: out[1]["loss"]),
           "slowvae_batch64": (bench_networks.make_train_step(encoder, decoder, tx),
                               (params, tx.init(params), images, noise), lambda out: out[2][0])}
  results = {}
  for name, (step, args, loss) in steps.items():
    start = time.perf_counter()
    lowered = step.lower(*args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    results[name] = dict(lower_s=lowered_at - start, compile_s=time.perf_counter() - lowered_at,
                         loss=float(loss(compiled(*args))))
  return results


def compile_benchmark() -> dict:
  """Cold compile (fresh process, empty persistent cache) vs a second fresh process that loads the
  executables from that cache."""
  with tempfile.TemporaryDirectory(prefix="nlvae_jax_cache_") as cache_dir:
    runs = []
    for _ in range(2):
      out = subprocess.run([sys.executable, "-m", "experiments.benchmark",
                            f"--compile_child={cache_dir}"], capture_output=True, text=True,
                           timeout=600, check=False)
      if out.returncode:
        raise RuntimeError(f"compile benchmark child failed:\n{out.stderr[-3000:]}")
      runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
  results = {}
  for name in runs[0]:
    cold, cached = runs[0][name]["compile_s"], runs[1][name]["compile_s"]
    if runs[0][name]["loss"] != runs[1][name]["loss"]:
      raise RuntimeError(f"{name}: the cached executable computed another loss: {runs}")
    results[name] = dict(cold=runs[0][name], cached=runs[1][name], speedup=cold / cached)
    print(f"compile {name}: cold {cold:.2f} s, from the persistent cache {cached:.2f} s -> "
          f"{cold / cached:.0f}x (lowering {runs[0][name]['lower_s']:.2f} s, not cached)",
          flush=True)
  return results


def main(argv):
  del argv
  if not _XLA_DEFAULTS.value:  # as experiments.run trains; before JAX's first computation
    from nlvae import xla_cpu
    xla_cpu.use_fast_flags()
  if _MATMUL_CHILD.value:
    print(json.dumps(matmul_child(_REPEATS.value)))
    return
  if _COMPILE_CHILD.value:
    print(json.dumps(compile_child(_COMPILE_CHILD.value)))
    return
  unknown = set(_ONLY.value) - set(SUB_BENCHMARKS)
  if unknown:
    raise app.UsageError(f"--only: unknown {sorted(unknown)}; valid: {', '.join(SUB_BENCHMARKS)}")
  results = {"device": str(jax.devices()[0]), "date": time.strftime("%Y-%m-%d")}
  runners = {"networks": lambda: networks_benchmark(_REPEATS.value, _BATCHES.value),
             "pytorch": lambda: pytorch_benchmark(_REPEATS.value, _BATCHES.value,
                                                  _TORCH_THREADS.value, _TORCH_PROCESS.value,
                                                  candidates=_CANDIDATES.value,
                                                  omp_wait_policy=_TORCH_OMP_WAIT_POLICY.value
                                                  or None),
             "kl": lambda: kl_benchmark(_REPEATS.value),
             "data": lambda: data_benchmark(_REPEATS.value),
             "compile": compile_benchmark}
  for name in SUB_BENCHMARKS:
    if name in _ONLY.value:
      results[name] = runners[name]()
      if _JSON.value:  # written after every sub-benchmark, so a long run keeps what it measured
        with open(_JSON.value, "w") as f:
          json.dump(results, f, indent=2)


if __name__ == "__main__":
  app.run(main)
