"""beta-VAE on the static circle task of disentangled-dynamics (MSE reconstruction, 4 latents).

  python -m experiments.run --config=experiments/circles_betavae.py         # quick CPU (~3 min)
  python -m experiments.run --config=experiments/circles_betavae.py:full    # reference scale, GPU
  python -m experiments.run --config=experiments/circles_betavae.py:tfds --config.data.data_dir=DIR
      # the built circles_static/32 (python -m data.build --dataset=circles_static --data_dir=DIR)
  python -m experiments.sweep --config=experiments/circles_betavae.py \
      --grid=model.beta=0.001,0.0055,0.0302 --seeds=0,1,2 --workdir=runs/sweep_circles_betavae

model.beta is normalised (beta_norm = beta * latents / pixels; the KL weight is 256 * beta_norm
for 32x32 images and 4 latents); the reference swept 0.001, 0.0055, 0.0302, 0.1657, 0.9103, 5.
Quick uses Adam at 1e-3 (the reference's RMSprop at 1e-4 learns too little in CPU minutes); full
uses RMSprop 1e-4, batch 64, 500k steps on the whole grid, as the reference. Quick trains 3,000
steps: with Adam 1e-3 at beta_norm 0.001 the VAE encodes the blob within ~250 steps and sits on a
plateau that ignores the circle until ~1,750-2,000 steps (experiments/circles_diagnose.py), so
fewer steps (the earlier 1,500) never reach the circle.
"""
from experiments import configs
from experiments.configs import circles


def get_config(arg: str = ""):
  variants = circles.parse(arg)
  scale = variants.scale
  return configs.base_config(
      data=circles.data_section(circles.static_data(scale), variants),
      model=dict(name="dynamics_vae", latent_dim=4, variational=True, beta=0.001,
                 beta_is_normalized=True, likelihood="mse", dynamics="none", gamma=0.0, delay=1),
      train=circles.reference_train(scale, quick_steps=3000, tiny_steps=4, full_steps=500_000))
