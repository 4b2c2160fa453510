"""Opt-in XLA:CPU flags that make nlvae's training steps faster (measured, same function).

``use_fast_flags()`` adds ``FAST_FLAGS`` to the ``XLA_FLAGS`` environment variable, which XLA reads
once, when JAX's CPU backend starts (at the first computation). Call it before that; later calls
have no effect on the running process. Nothing is changed on import, and a flag the user already
put in ``XLA_FLAGS`` is kept as given. The programs in experiments/ and the test suite call it.

``--xla_cpu_experimental_ynn_fusion_type=`` (an empty list) keeps XLA:CPU from handing
convolutions and fusions to YNNPACK. On this project's 2-core CPU machine (jax 0.9.2) it makes the
SlowVAE training step 1.6x faster (186 -> 116 ms at batch 64) and the physics configs' steps
1.1-1.8x faster, with losses equal to float32 rounding; a large float32 matmul becomes ~10% slower
(python -m experiments.bench_networks [--xla_flags=...], README "Benchmarks"). GPUs ignore it.
"""
import os

FAST_FLAGS = ("--xla_cpu_experimental_ynn_fusion_type=",)


def use_fast_flags(environ=os.environ) -> str:
  """Appends each of ``FAST_FLAGS`` whose name is not yet in ``environ['XLA_FLAGS']``; returns it."""
  current = environ.get("XLA_FLAGS", "").split()
  names = {flag.split("=", 1)[0] for flag in current}
  added = [flag for flag in FAST_FLAGS if flag.split("=", 1)[0] not in names]
  environ["XLA_FLAGS"] = " ".join(current + added)
  return environ["XLA_FLAGS"]
