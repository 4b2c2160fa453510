r"""One command for a lent GPU machine (about 10 minutes): install, benchmark, train, one JSON.

  make install && .venv/bin/python -m experiments.bench_gpu --install --json=bench_gpu.json
  python -m experiments.bench_gpu --dry_run --json=/tmp/bench_gpu.json   # CPU, tiny, seconds

Phases, in this order (each one's result or error goes into the JSON, which is rewritten after
every phase, so a lease that ends early keeps what was measured):
  install     (--install only) pip install "jax[cuda12]==0.9.2" (jaxlib 0.9.2 + the CUDA 12
              plugin and NVIDIA's CUDA wheels) and the `bench` extra's torch==2.13.0 (PyPI's
              Linux wheel is a CUDA build) into this Python, then runs this program again
              without --install (JAX's backend is chosen once per process).
  environment device, nvidia-smi, versions of jax / jaxlib / flax / torch.
  networks    jitted training steps (loss, gradients, Adam; experiments.bench_networks) of the
              SlowVAE network (64x64x1, z = 10), the same network computing in bfloat16 with
              float32 parameters (`slowvae_bf16`, what --config.train.compute_dtype=bfloat16
              trains with; `bf16_speedup`: its images/s over float32's) and the physics full
              config's networks (experiments/spring.py:full) at batch 64 and 256, against a
              float32 matmul timed in the same alternating rounds: median ms, images/s, GFLOP/s,
              fraction of the matmul.
  pytorch     the same SlowVAE network, loss and optimizer in PyTorch on the same device
              (experiments.benchmark.pytorch_benchmark: same parameters and data, alternating
              rounds; ratio of nlvae's images/s to PyTorch's). Skipped when torch is absent.
  loop        loop efficiency from experiments/bench_loop.py when that module exists:
              python -m experiments.bench_loop --out=FILE [--dry_run] (--json=FILE if its --help
              has no --out), on a GPU also with --steps_per_dispatch=4 (skipped when the module
              is absent, and in a dry run when its --help does not list --dry_run).
  train       python -m experiments.run --config=experiments/spring.py:full
              --config.train.num_steps=300 (wall time from command to eval.json, steps/s from
              metrics.jsonl, eval.json).
Exit code 1 when any phase failed (the JSON has its traceback under "errors"); without a GPU it
stops after `environment` unless --allow_cpu.
--dry_run: everything on the CPU with tiny sizes (SlowVAE at 32x32, the physics `tiny` config's
networks, batch 2, one round; train: spring.py:tiny, 2 steps), the install commands recorded but
not run; tests/test_bench_gpu.py runs it. --skip=phase,... leaves phases out.
"""
from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

from absl import flags

from data import cli

PHASES = ("install", "environment", "networks", "pytorch", "loop", "train")
JAX_CUDA = "jax[cuda12]==0.9.2"  # jax 0.9.2's extras: cuda12 / cuda13 (with NVIDIA's wheels)
TORCH = "torch==2.13.0"  # the `bench` extra
ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository root: cwd of the children


def install_commands(python: str = sys.executable) -> list[list[str]]:
  return [[python, "-m", "pip", "install", "-q", JAX_CUDA],
          [python, "-m", "pip", "install", "-q", TORCH]]


def run_install(record: dict, timeout: float) -> None:
  """Runs install_commands (each may fail alone: torch is optional); records time and output."""
  record["commands"] = [" ".join(c) for c in install_commands()]
  record["runs"] = []
  for command in install_commands():
    start = time.perf_counter()
    try:
      out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
      code, tail = out.returncode, (out.stdout + out.stderr)[-2000:]
    except subprocess.TimeoutExpired:
      code, tail = "timeout", ""
    record["runs"].append(dict(command=" ".join(command), returncode=code, output_tail=tail,
                               seconds=time.perf_counter() - start))


def environment(dry_run: bool) -> dict:
  import jax
  info = dict(python=sys.version.split()[0], platform=platform.platform(), cpus=os.cpu_count(),
              jax=jax.__version__, backend=jax.default_backend(),
              devices=[str(d) for d in jax.devices()],
              device_kind=jax.devices()[0].device_kind, xla_flags=os.environ.get("XLA_FLAGS", ""))
  for name in ("jaxlib", "flax", "optax"):
    try:
      info[name] = __import__(name).__version__
    except (ImportError, AttributeError):
      info[name] = None
  if shutil.which("nvidia-smi") and not dry_run:
    query = "--query-gpu=name,driver_version,memory.total,clocks.max.sm"
    out = subprocess.run(["nvidia-smi", query, "--format=csv,noheader"], capture_output=True,
                         text=True, timeout=60,
                         check=False)
    info["nvidia_smi"] = out.stdout.strip() or out.stderr.strip()
  try:
    import torch
    info["torch"] = torch.__version__
    info["torch_cuda"] = torch.version.cuda
    info["torch_cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
      info["torch_device"] = torch.cuda.get_device_name(0)
  except ImportError:
    info["torch"] = None
  return info


def models(dry_run: bool) -> dict:
  """name -> (encoder, decoder): SlowVAE (float32 and bfloat16 compute) and the physics networks
  (full, or tiny for a dry run)."""
  from experiments import spring
  from nlvae import models as nlvae_models
  from nlvae import datasets, networks
  size = 32 if dry_run else 64
  bf16 = networks.compute_dtype("bfloat16")
  result = {"slowvae": (networks.slowvae_encoder(10), networks.slowvae_decoder(1, size)),
            "slowvae_bf16": (networks.slowvae_encoder(10, bf16),
                             networks.slowvae_decoder(1, size, dtype=bf16))}
  variant = "tiny" if dry_run else "full"
  config = spring.get_config(variant)
  side = config.data.options.image_size
  info = datasets.DatasetInfo(system=config.data.system, dt=0.05, image_shape=(side, side, 1))
  model = nlvae_models.build(config.model, info)
  result[f"physics_{variant}"] = (model.encoder, model.decoder)
  return result


def networks_phase(dry_run: bool, batches, repeats: int) -> dict:
  from experiments import bench_networks
  results = {}
  for batch in batches:
    result = bench_networks.benchmark_models(models(dry_run), batch, repeats=repeats,
                                             matmul_size=256 if dry_run else 8192)
    rows = result["models"]
    result["bf16_speedup"] = rows["slowvae_bf16"]["images_per_s"] / rows["slowvae"]["images_per_s"]
    bench_networks.print_table(result, "training step")
    results[f"batch_{batch}"] = result
  return results


def pytorch_phase(dry_run: bool, batches, repeats: int) -> dict:
  from experiments import benchmark
  import jax
  on_gpu = jax.default_backend() == "gpu"
  return benchmark.pytorch_benchmark(
      repeats, batches, threads=None if on_gpu else 2, process="child",
      image_size=32 if dry_run else 64, matmul_size=256 if dry_run else 8192,
      # TF32: on Ampere and later both frameworks may run float32 convolutions in TF32.
      tolerance=1e-2 if on_gpu else 1e-4)


def loop_phase(dry_run: bool, timeout: float) -> dict:
  """experiments.bench_loop (another module; optional) in a child process, its JSON included.

  Its output flag is --out or --json, whichever its --help lists; a dry run needs its --dry_run.
  On a GPU it also runs with --steps_per_dispatch=4 when that flag exists (lax.scan dispatches).
  """
  if importlib.util.find_spec("experiments.bench_loop") is None:
    return {"skipped": "experiments/bench_loop.py does not exist"}
  base = [sys.executable, "-m", "experiments.bench_loop"]
  help_out = subprocess.run(base + ["--help"], capture_output=True, text=True, timeout=120,
                            check=False, cwd=ROOT)
  help_text = help_out.stdout + help_out.stderr
  if dry_run and "dry_run" not in help_text:  # absl lists it as --[no]dry_run
    return {"skipped": "experiments.bench_loop has no --dry_run"}
  out_flag = "--out" if "--out" in help_text else "--json"
  variants = [[]]
  if not dry_run and "--steps_per_dispatch" in help_text:
    variants.append(["--steps_per_dispatch=4"])
  results = {}
  deadline = time.perf_counter() + timeout
  with tempfile.TemporaryDirectory(prefix="nlvae_bench_loop_") as folder:
    for extra in variants:
      name = "default" if not extra else extra[0].lstrip("-").replace("=", "_")
      path = pathlib.Path(folder) / f"{name}.json"
      command = base + [f"{out_flag}={path}"] + (["--dry_run"] if dry_run else []) + extra
      start = time.perf_counter()
      out = subprocess.run(command, capture_output=True, text=True, check=False,
                           timeout=max(30.0, deadline - start), cwd=ROOT)
      result = dict(command=" ".join(["python"] + command[1:]).replace(str(path), "FILE"),
                    returncode=out.returncode, seconds=time.perf_counter() - start,
                    output_tail=out.stdout[-3000:])
      if out.returncode:
        raise RuntimeError(f"bench_loop failed ({out.returncode}):\n{out.stderr[-3000:]}")
      if path.exists():
        result["results"] = json.loads(path.read_text())
      results[name] = result
  return results


def train_phase(dry_run: bool, steps: int, timeout: float) -> dict:
  config = "experiments/spring.py:tiny" if dry_run else "experiments/spring.py:full"
  with tempfile.TemporaryDirectory(prefix="nlvae_bench_train_") as folder:
    command = [sys.executable, "-m", "experiments.run", f"--config={config}",
               f"--config.train.num_steps={steps}", f"--workdir={folder}/run"]
    start = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False,
                         cwd=ROOT)
    wall = time.perf_counter() - start
    if out.returncode:
      raise RuntimeError(f"{' '.join(command[1:])} failed ({out.returncode}):\n"
                         f"{out.stderr[-3000:]}")
    run = pathlib.Path(folder) / "run"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line]
    speeds = [r["train/steps_per_second"] for r in rows if "train/steps_per_second" in r]
    return dict(command=" ".join(["python"] + command[1:-1]), wall_s=wall, num_steps=steps,
                steps_per_second_logged=speeds,
                eval=json.loads((run / "eval.json").read_text()))


# The program's flags, in a private registry (data.cli): the phases import experiments.benchmark and
# experiments.bench_networks, whose flags have the same names.
FLAGS = flags.FlagValues()
flags.DEFINE_bool("dry_run", False, "CPU, tiny sizes, seconds.", flag_values=FLAGS)
flags.DEFINE_bool("install", False, "pip install the CUDA wheels first.", flag_values=FLAGS)
flags.DEFINE_string("json", "bench_gpu.json", "Output file.", flag_values=FLAGS)
flags.DEFINE_list("skip", [], f"Phases to leave out, of {', '.join(PHASES)}.", flag_values=FLAGS)
flags.DEFINE_integer("repeats", None, "Alternating timed rounds.", flag_values=FLAGS)
flags.DEFINE_integer("train_steps", None, "Steps of the train phase.", flag_values=FLAGS)
flags.DEFINE_float("budget_s", 540.0, "Total seconds; later phases get what is left.",
                   flag_values=FLAGS)
flags.DEFINE_bool("allow_cpu", False, "Go on at full sizes when JAX finds no GPU (slow; default: "
                  "stop).", flag_values=FLAGS)
flags.DEFINE_string("_install_record", None, "Internal: the install phase's record, passed to "
                    "the run after --install.", flag_values=FLAGS)


def main(argv: list[str] | None = None) -> dict:
  """Runs the phases and returns the results; argv (flags only) is parsed when given (a call from
  Python), else the flags are those of the command line."""
  if argv is not None:
    cli.parse(FLAGS, argv, "bench_gpu")
  args = FLAGS
  skip = set(args.skip)
  if skip - set(PHASES):
    raise ValueError(f"--skip: unknown {sorted(skip - set(PHASES))}; phases: {', '.join(PHASES)}")
  start = time.perf_counter()
  results = {"date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
             "dry_run": args.dry_run, "host": platform.node(), "errors": {}, "phase_s": {}}
  if args._install_record:
    results["install"] = json.loads(args._install_record)
  elif "install" not in skip:
    results["install"] = {"commands": [" ".join(c) for c in install_commands()], "ran": False}
    if args.install and not args.dry_run:
      run_install(results["install"], timeout=max(60.0, args.budget_s / 2))
      results["install"]["ran"] = True
      results["install"]["seconds"] = time.perf_counter() - start
      rest = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--install"]
      rest.append(f"--budget_s={args.budget_s - results['install']['seconds']:.0f}")
      rest.append(f"--_install_record={json.dumps(results['install'])}")
      sys.stdout.flush()
      os.chdir(ROOT)
      os.execv(sys.executable, [sys.executable, "-m", "experiments.bench_gpu"] + rest)

  # Before JAX starts its backend: the CPU flags nlvae trains with (GPUs ignore them), and no
  # up-front grab of 75% of GPU memory (the PyTorch worker and the training run share the GPU).
  from nlvae import xla_cpu
  xla_cpu.use_fast_flags()
  os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  batches = (2,) if args.dry_run else (64, 256)
  repeats = args.repeats or (1 if args.dry_run else 20)
  steps = args.train_steps or (2 if args.dry_run else 300)

  def remaining() -> float:
    return max(30.0, args.budget_s - (time.perf_counter() - start))

  runners = {
      "environment": lambda: environment(args.dry_run),
      "networks": lambda: networks_phase(args.dry_run, batches, repeats),
      "pytorch": lambda: pytorch_phase(args.dry_run, batches, repeats),
      "loop": lambda: loop_phase(args.dry_run, remaining()),
      "train": lambda: train_phase(args.dry_run, steps, remaining()),
  }
  for phase, runner in runners.items():
    if phase in skip:
      continue
    phase_start = time.perf_counter()
    print(f"bench_gpu: {phase}", flush=True)
    try:
      results[phase] = runner()
    except Exception:  # pylint: disable=broad-except  # keep the other phases' results
      results["errors"][phase] = traceback.format_exc()[-4000:]
      print(results["errors"][phase], file=sys.stderr, flush=True)
    results["phase_s"][phase] = time.perf_counter() - phase_start
    no_gpu = (phase == "environment" and not args.dry_run and phase in results
              and results[phase]["backend"] != "gpu")
    if no_gpu:
      results["errors"]["environment"] = f"no GPU backend: {results[phase]['devices']}"
    results["total_s"] = time.perf_counter() - start
    pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
    if no_gpu and not args.allow_cpu:
      print("bench_gpu: JAX sees no GPU; stopping (--allow_cpu goes on)", file=sys.stderr)
      break
  print(f"bench_gpu: wrote {args.json} ({results['total_s']:.0f} s; errors: "
        f"{sorted(results['errors']) or 'none'})", flush=True)
  return results


if __name__ == "__main__":
  cli.run(lambda argv: sys.exit(1 if main()["errors"] else 0), FLAGS)
