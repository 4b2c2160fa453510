"""Config helpers of the disentangled-dynamics experiments (experiments/circles_*.py).

Scales, the variants every circles config accepts (comma-separated, at most one; with the
config's own flags, e.g. experiments/circles_dynamic.py:inertia,full):
  quick (default)  a few CPU minutes, Adam 1e-3
  full             the reference scale (RMSprop 1e-4, batch 64, the whole grid): a GPU
  tiny             seconds, for tests
and, with any of them:
  tfds             read the dataset of TFDS_DATASETS that `python -m data.build` wrote
                   (--config.data.data_dir=DIR, "" = TFDS' default; another build:
                   --config.data.dataset=NAME/CONFIG) instead of generating it in memory; the
                   scale then sets training only (the built dataset has its own size)
"""
from experiments.configs.variants import Variants, parse_variants

SCALES = ("quick", "full", "tiny")
# The data.build dataset of each in-memory circles dataset, read by the `tfds` variant.
TFDS_DATASETS = {"circles_static": "circles_static/32", "circles_dynamic": "circles_dynamic/32_t10"}


def parse(arg: str, flags: tuple[str, ...] = ()) -> Variants:
  """A circles config's variants: one of SCALES, at most one of `flags`, and tfds."""
  return parse_variants(arg, scales=SCALES, flags=flags + ("tfds",), exclusive=(flags,))


def data_section(data: dict, variants: Variants) -> dict:
  """config.data: the in-memory `data` (static_data, or a config's own), or with the tfds
  variant the built dataset of the same kind (TFDS_DATASETS), read from disk."""
  if "tfds" not in variants.flags:
    return data
  return dict(name="tfds", dataset=TFDS_DATASETS[data["name"]], data_dir="")


def static_data(scale: str) -> dict:
  """data section: distinct grid points (262,144 in all), split into train / test."""
  sizes = dict(quick=(8192, 1024), full=(250_000, 12_144), tiny=(4096, 512))[scale]
  return dict(name="circles_static", num_train=sizes[0], num_test=sizes[1], seed=0,
              circle_levels=16, gauss_levels=32)


def reference_train(scale: str, quick_steps: int, tiny_steps: int, full_steps: int) -> dict:
  """train section: reference optimiser for full, Adam 1e-3 for the CPU scales."""
  if scale == "full":
    return dict(batch_size=64, num_steps=full_steps, optimizer="rmsprop", learning_rate=1e-4,
                log_every=500, eval_every=10_000, checkpoint_every=10_000)
  steps = quick_steps if scale == "quick" else tiny_steps
  return dict(batch_size=64, num_steps=steps, optimizer="adam", learning_rate=1e-3,
              log_every=min(100, steps), eval_every=steps, checkpoint_every=steps,
              progress_bar=scale == "quick")
