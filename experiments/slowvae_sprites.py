r"""SlowVAE on procedural dSprites pairs (Klindt et al. 2021).

  python -m experiments.run --config=experiments/slowvae_sprites.py            # quick, LAP pairs
  python -m experiments.run --config=experiments/slowvae_sprites.py:loc        # quick, LOC pairs
  python -m experiments.run --config=experiments/slowvae_sprites.py:full       # paper scale, LAP
  python -m experiments.run --config=experiments/slowvae_sprites.py:full_loc   # paper scale, LOC

Variants:
  (default) quick CPU scale: 300 steps of 32 pairs (64 images), Adam 1e-3 (10x the paper's, to get
            somewhere in 300 steps), 10k training pairs; metrics at quick scale (sample sizes / 10)
            without DCI, BetaVAE and FactorVAE scores (minutes on CPU): a smoke run of the whole
            pipeline (2.5-3 minutes a seed on 2 shared CPU cores), not a reproduction.
  loc       the same on LOC pairs.
  full      the reference setting: 300k steps of 32 pairs, Adam 1e-4, beta 1, gamma 10, lambda 6,
            z 10, 200k training pairs (1.6 GB of uint8 frames), every metric at
            disentanglement_lib's sample sizes. Meant for an accelerator.
  full_loc  the same on LOC pairs.

Model options: --config.model.kl_form=reference reproduces the release's Laplace term (entropy
subtracted once per pair); the default "symmetric" is the true KL (nlvae/models/slowvae.py).
Data options: --config.data.rate (LAP rate, default 1; <= 0 draws U(1, 10) per pair),
--config.data.max_changed (LOC, default 4), --config.data.transitions=natural.
"""
import ml_collections

from experiments import common

VARIANTS = ("", "loc", "full", "full_loc")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Config of `variant` (VARIANTS; "" is the quick LAP default)."""
  variant = (arg or "").strip()
  if variant not in VARIANTS:
    raise ValueError(f"unknown variant {variant!r}; valid: default (no suffix), "
                     f"{', '.join(v for v in VARIANTS if v)}")
  full = variant.startswith("full")
  data = dict(name="sprites", transitions="loc" if variant.endswith("loc") else "lap",
              rate=1.0, max_changed=4, num_train=200_000 if full else 10_000,
              num_test=5_000 if full else 1_000, seed=0)
  model = dict(name="slowvae", latent_dim=10, beta=1.0, gamma=10.0, rate_prior=6.0,
               kl_form="symmetric", upsample="subpixel",
               eval_scale="full" if full else "quick",
               eval_metrics="all" if full else "mcc,mig,sap,modularity",
               observations_per_call=2048, traversal_limit=3.0, traversal_steps=15,
               traversal_examples=3)
  if full:
    train = dict(batch_size=32, num_steps=300_000, learning_rate=1e-4, log_every=500,
                 eval_every=5_000, checkpoint_every=10_000)
  else:
    train = dict(batch_size=32, num_steps=300, learning_rate=1e-3, log_every=25, eval_every=100,
                 checkpoint_every=300)
  return common.base_config(seed=0, data=data, model=model, train=train)
