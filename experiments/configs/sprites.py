"""Config helpers of SlowVAE and its baselines on procedural dSprites pairs
(experiments/slowvae_sprites.py, betavae_sprites.py, adagvae_sprites.py; the variants are
described in experiments/slowvae_sprites.py).

A variant is [SCALE][_TRANSITIONS][_tfds] (any part may be left out; "_" joins them): SCALE one
of SCALES (default quick), TRANSITIONS one of data.sprites.TRANSITIONS (default laplace) or an
alias of data.sprites.TRANSITION_ALIASES; tfds reads the pairs of TFDS_DATASETS that
`python -m data.build` wrote (--config.data.data_dir=DIR, "" = TFDS' default) instead of
sampling them in memory.
"""
import ml_collections

from data.sprites import TRANSITION_ALIASES, TRANSITIONS
from experiments import configs
from experiments.configs.variants import parse_variants

SCALES = ("quick", "medium", "full")


# The data.build dataset of each transition type, read by the `tfds` variant.
TFDS_DATASETS = {"laplace": "sprites_lap/rate1", "uniform": "sprites_loc/default",
                 "natural": "sprites_natural/default"}


def parse_variant(arg: str | None) -> tuple[str, str, bool]:
  """"[SCALE][_TRANSITIONS][_tfds]" -> (scale, transitions, tfds), e.g. "" -> ("quick",
  "laplace", False), "full_loc" -> ("full", "uniform", False), "medium_tfds" -> ("medium",
  "laplace", True)."""
  variants = parse_variants(arg, scales=SCALES, flags=TRANSITIONS + ("tfds",),
                            exclusive=(TRANSITIONS,), aliases=TRANSITION_ALIASES, separator="_",
                            scale_first=True)
  return variants.scale, variants.one_of(TRANSITIONS, "laplace"), "tfds" in variants.flags


def train_schedule(scale: str) -> dict:
  """config.train overrides of a scale (experiments/slowvae_sprites.py)."""
  if scale == "full":
    return dict(batch_size=32, num_steps=300_000, learning_rate=1e-4, log_every=500,
                eval_every=5_000, checkpoint_every=10_000)
  if scale == "medium":
    return dict(batch_size=32, num_steps=7_500, learning_rate=1e-3, schedule="warmup_cosine",
                warmup_steps=500, log_every=100, eval_every=500, checkpoint_every=1_000)
  return dict(batch_size=32, num_steps=300, learning_rate=1e-3, log_every=25, eval_every=100,
              checkpoint_every=300)


def sprites_config(arg: str | None) -> ml_collections.ConfigDict:
  """The SlowVAE config of a variant ("" is the quick laplace default)."""
  scale, transitions, tfds = parse_variant(arg)
  full = scale == "full"
  data = dict(name="sprites", transitions=transitions, rate=1.0, max_changed=4, k=0,
              num_train={"quick": 10_000, "medium": 50_000, "full": 200_000}[scale],
              num_test=5_000 if full else 1_000, seed=0)
  if tfds:  # the pairs that `python -m data.build --dataset=...` wrote, read from disk
    data = dict(name="tfds", dataset=TFDS_DATASETS[transitions], data_dir="")
  model = dict(name="slowvae", latent_dim=10, beta=1.0, gamma=10.0, rate_prior=6.0,
               kl_form="symmetric", upsample="subpixel",
               eval_scale="full" if full else "quick",
               eval_metrics="all" if full else "mcc,mig,sap,modularity",
               observations_per_call=2048, traversal_limit=3.0, traversal_steps=15,
               traversal_examples=3)
  return configs.base_config(seed=0, data=data, model=model, train=train_schedule(scale))


def baseline_config(arg: str | None, **model_fields) -> ml_collections.ConfigDict:
  """A baseline's config: sprites_config(arg) without the SlowVAE-only model fields (gamma,
  rate_prior, kl_form), updated with model_fields (name, beta, ...)."""
  config = sprites_config(arg)
  model = config.model.to_dict()
  for slowvae_only in ("gamma", "rate_prior", "kl_form"):
    del model[slowvae_only]
  model.update(model_fields)
  config.model = ml_collections.ConfigDict(model)
  return config
