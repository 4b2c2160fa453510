import jax
import numpy as np

from nlvae import xla_cpu


def test_use_fast_flags_appends_once_and_keeps_the_users_value():
  environ = {}
  assert xla_cpu.use_fast_flags(environ) == " ".join(xla_cpu.FAST_FLAGS)
  assert xla_cpu.use_fast_flags(environ) == " ".join(xla_cpu.FAST_FLAGS)  # idempotent
  name = xla_cpu.FAST_FLAGS[0].split("=")[0]
  environ = {"XLA_FLAGS": f"--xla_force_host_platform_device_count=2 {name}=dot"}
  assert xla_cpu.use_fast_flags(environ) == environ["XLA_FLAGS"]
  assert environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2", f"{name}=dot"]


def test_the_test_process_runs_with_the_fast_flags_and_the_same_convolutions():
  # conftest.py set them before JAX started: this checks the suite tests what the programs run.
  import os
  assert all(flag in os.environ["XLA_FLAGS"].split() for flag in xla_cpu.FAST_FLAGS)
  x = jax.random.normal(jax.random.key(0), (2, 16, 16, 3))
  kernel = jax.random.normal(jax.random.key(1), (4, 4, 3, 5))
  y = jax.lax.conv_general_dilated(x, kernel, (2, 2), [(1, 1)] * 2,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  # The same strided conv in float64 numpy (direct sum over the 4x4 window).
  xp = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (1, 1), (0, 0)))
  k = np.asarray(kernel, np.float64)
  expected = np.zeros((2, 8, 8, 5))
  for i in range(8):
    for j in range(8):
      expected[:, i, j] = np.einsum("bhwc,hwco->bo", xp[:, 2 * i:2 * i + 4, 2 * j:2 * j + 4], k)
  np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
