r"""Ada-GVAE (Locatello et al. 2020), the weakly supervised baseline of SlowVAE, on sprite pairs.

  python -m experiments.run --config=experiments/adagvae_sprites.py[:VARIANT]
  python -m experiments.run --config=experiments/adagvae_sprites.py:uniform   # Locatello's pairs

VARIANT as in experiments/slowvae_sprites.py: [quick|medium|full][_laplace|_uniform|_natural]
(e.g. :uniform, :medium, :medium_uniform, :full_uniform; aliases :lap, :loc, :uni). Same data,
networks, schedules and evaluation as SlowVAE; the model (nlvae/models/adagvae.py) averages, in
each pair, the latents whose per-dimension KL between the two posteriors is below
tau = 0.5 (max_j delta_j + min_j delta_j), and trains recon + beta KL with beta 1 (the SlowVAE
release's --gvae setting). Locatello et al. train it on pairs with k ~ U{1..4} changed factors:
the `uniform` transitions; the SlowVAE paper also reports it on `laplace` pairs.

Model options: --config.model.threshold=release (the SlowVAE release's min-max normalised split
at 0.5, which differs only when every delta_j is equal), --config.model.aggregation=mlvae
(Ada-ML-VAE), --config.model.beta.
"""
import ml_collections

from experiments.configs import sprites


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  return sprites.baseline_config(arg, name="adagvae", beta=1.0, threshold="adaptive",
                                 aggregation="gvae")
