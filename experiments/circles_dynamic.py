"""The dynamic task of disentangled-dynamics: 10-frame clips, the circle moving on a straight line.

  python -m experiments.run --config=experiments/circles_dynamic.py                     # beta-VAE
  python -m experiments.run --config=experiments/circles_dynamic.py:linear_prediction
  python -m experiments.run --config=experiments/circles_dynamic.py:inertia
  python -m experiments.run --config=experiments/circles_dynamic.py:autoencoder_prediction
  ... add ",full" (e.g. :inertia,full) for the reference scale on a GPU, ",tiny" for tests,
  ",tfds" to read the built circles_dynamic/32_t10 (python -m data.build --dataset=circles_dynamic
  --config=32_t10 --data_dir=DIR, then --config.data.data_dir=DIR).

Variants (model.dynamics / variational / gamma):
  beta_vae                plain per-frame beta-VAE (the default)
  linear_prediction       + gamma * sum_{t>=2} 0.5 ||mu_t - (2 mu_{t-1} - mu_{t-2})||^2
  inertia                 representational inertia, gamma the weight of the prediction, decoded
                          against the next frame (a one-frame conduction delay)
  autoencoder_prediction  deterministic autoencoder with the prediction loss
gamma multiplies a per-clip sum (the reference summed over the batch: its gamma was 64x ours).
The reference grid: beta_norm in {0.001, 0.0055, 0.0302, 0.1657, 0.9103, 5}, gamma in
{0, 1e-4, 0.01, 1, 100, 1e4}, 50k steps of 64 clips, RMSprop 1e-4 (full). Quick: 8 clips (80
frames) a step, Adam 1e-3, 3,000 steps (the circle is learnt after a plateau of ~2,000 steps of
64 frames on the static task; 800 steps stopped on it).
"""
from experiments import configs
from experiments.configs import circles

VARIANTS = ("beta_vae", "linear_prediction", "inertia", "autoencoder_prediction")


def get_config(arg: str = ""):
  variants = circles.parse(arg, VARIANTS)
  scale, variant = variants.scale, variants.one_of(VARIANTS, "beta_vae")
  sizes = dict(quick=(2048, 128), full=(40_000, 1024), tiny=(32, 8))[scale]
  model = dict(name="dynamics_vae", latent_dim=4, variational=True, beta=0.001,
               beta_is_normalized=True, likelihood="mse", dynamics="none", gamma=0.0, delay=1)
  if variant == "linear_prediction":
    model.update(dynamics="linear_prediction", gamma=1.0)
  elif variant == "inertia":
    model.update(dynamics="inertia", gamma=0.5)
  elif variant == "autoencoder_prediction":
    model.update(dynamics="linear_prediction", gamma=1.0, variational=False)
  train = circles.reference_train(scale, quick_steps=3000, tiny_steps=4, full_steps=50_000)
  train["batch_size"] = dict(quick=8, full=64, tiny=4)[scale]
  data = dict(name="circles_dynamic", num_train=sizes[0], num_test=sizes[1], seed=0,
              num_frames=10, min_distance=0.1, gauss_levels=32)
  return configs.base_config(data=circles.data_section(data, variants), model=model, train=train)
