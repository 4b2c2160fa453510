"""Supervised control of disentangled-dynamics: regress the four circle factors from the image.

  python -m experiments.run --config=experiments/circles_supervised.py        # quick CPU (~1 min)
  python -m experiments.run --config=experiments/circles_supervised.py:full   # reference scale, GPU
  python -m experiments.run --config=experiments/circles_supervised.py:tiny   # the test's setting
  ... add ",tfds" to read the built circles_static/32 (python -m data.build
  --dataset=circles_static).

The encoder is the beta-VAE's (four 3x3 stride-2 convs, 32, 32, 64, 64) with a linear head; the
reference reports perfect disentanglement. Quick uses Adam at 1e-3 and tiny Adam at 2e-3 (what
fits the CPU budget); full uses the reference's RMSprop at 1e-4, batch 64, on the whole
16x16x32x32 grid.
"""
from experiments import configs
from experiments.configs import circles


def get_config(arg: str = ""):
  variants = circles.parse(arg)
  scale = variants.scale
  config = configs.base_config(
      data=circles.data_section(circles.static_data(scale), variants),
      model=dict(name="supervised_control"),
      train=circles.reference_train(scale, quick_steps=2000, tiny_steps=400, full_steps=50_000))
  if scale == "tiny":  # MCC 0.997 in 400 steps (~10 s on CPU): what the test runs
    config.train.learning_rate = 2e-3
  return config
