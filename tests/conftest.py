"""Test-suite set-up: the XLA:CPU flags the programs train with (before JAX starts its backend)."""
from nlvae import xla_cpu

xla_cpu.use_fast_flags()
