r"""SlowVAE on procedural dSprites pairs (Klindt et al. 2021).

  python -m experiments.run --config=experiments/slowvae_sprites.py                 # quick, laplace
  python -m experiments.run --config=experiments/slowvae_sprites.py:uniform         # quick, uniform
  python -m experiments.run --config=experiments/slowvae_sprites.py:medium          # ~20 min on CPU
  python -m experiments.run --config=experiments/slowvae_sprites.py:full            # paper scale
  python -m experiments.run --config=experiments/slowvae_sprites.py:full_uniform

A variant is [SCALE][_TRANSITIONS][_tfds] (any part may be left out):
  SCALE
    (none), quick  CPU smoke scale: 300 steps of 32 pairs (64 images), Adam 1e-3 (10x the paper's,
                   to get somewhere in 300 steps), 10k training pairs; metrics at quick scale
                   (sample sizes / 10) without DCI, BetaVAE and FactorVAE scores (minutes on
                   CPU): the whole pipeline in 1.5-3 minutes a seed on 2 CPU cores, not a
                   reproduction.
    medium         the best schedule for about 20 minutes a seed on a quiet 2-core CPU: 7,500
                   steps of 32 pairs, Adam with a 500-step linear warm-up to 1e-3 and a cosine
                   decay to 1e-5, 50k training pairs, quick-scale metrics. Budget (measured
                   2026-12-01, 2 cores, lightly shared): 7.7 steps/s (0.13 s a step; the quiet
                   benchmark's step is 0.147 s, 6.8 steps/s), so 7,500 steps take 16-18.5 min, plus
                   about 1 min for data, compilation, checkpoints and the 27 s evaluation.
                   Why: batch 64 images is the CPU's most efficient batch (images/s fall at 256),
                   so the budget buys steps, not batch; 1e-3 is what got the quick runs to x and
                   y within 300 steps without divergence; 1e-4 (the paper's, for 300k steps)
                   would cover a tenth of the distance in 7.5k steps; the cosine decay anneals
                   Adam's noise so that the evaluated end point is not a noisy iterate; 50k pairs
                   (410 MB) make the 240k pair draws about 5 epochs.
    full           the reference setting: 300k steps of 32 pairs, Adam 1e-4 constant, beta 1,
                   gamma 10, lambda 6, z 10, 200k training pairs (1.6 GB of uint8 frames), every
                   metric at disentanglement_lib's sample sizes. Meant for an accelerator.
  TRANSITIONS (the reference's --data-distribution names; data/sprites.py)
    (none), laplace  "LAP": every non-categorical factor takes a truncated discrete Laplace step
                     of scale log(size) / rate (data.rate, default 1; <= 0 draws a rate per pair
                     from U(1, 10), the reference's -1); shape held; at least one factor changes.
    uniform          k factors change, k drawn per pair uniformly from 1..max_changed
                     (data.max_changed, default 4 = n_factors - 1, the reference's
                     randint(1, n_factors) and Locatello et al.'s k = rand); which k factors is
                     a uniform random subset (shape included); each is redrawn uniformly among
                     its other values. data.k > 0 fixes k instead (the reference's --data-k;
                     the default 0, like its -1, draws it).
    natural          heavy-tailed natural-motion stand-in for Natural Sprites / KITTI Masks.
    Aliases: lap = laplace, loc = uni = uniform (earlier nlvae names; e.g. :loc, :full_loc).
  _tfds (last)     read the pairs that `python -m data.build --dataset=sprites_lap` (sprites_loc,
                   sprites_natural) wrote, from disk (--config.data.data_dir=DIR), instead of
                   sampling them in memory; e.g. :medium_tfds, :uniform_tfds.

Model options: --config.model.kl_form=reference reproduces the release's Laplace term (entropy
subtracted once per pair); the default "symmetric" is the true KL (nlvae/models/slowvae.py).
"""
import ml_collections

from experiments.configs import sprites


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """Config of a variant (module docstring; "" is the quick laplace default)."""
  return sprites.sprites_config(arg)
