r"""beta-VAE baseline of SlowVAE on procedural dSprites pairs (every frame an independent image).

  python -m experiments.run --config=experiments/betavae_sprites.py[:VARIANT]

VARIANT as in experiments/slowvae_sprites.py: [quick|medium|full][_laplace|_uniform|_natural]
(e.g. :uniform, :medium, :full_uniform; aliases :lap, :loc, :uni). Same data, networks, schedules
and evaluation; only the model differs: recon + beta * KL with beta 4. The reference's baseline is
its SlowVAE loss with beta 8 and gamma 0, 2 recon + 8 KL = 2 (recon + 4 KL): beta 4 in this
per-image scaling.
"""
import ml_collections

from experiments.configs import sprites


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return sprites.baseline_config(arg, name="beta_vae", beta=4.0)
