"""The helpers of the experiment config files (experiments/<name>.py, each a `get_config(arg)`).

  configs (this module)  train_config, base_config: the sections every config starts from.
  configs.variants       parse_variants: the one parser of the variant string after ':' in
                         --config=experiments/<name>.py:<variants>.
  configs.physics        physics_config: the four physics experiments (spring.py, pendulum.py, ...).
  configs.sprites        sprites_config, baseline_config: SlowVAE and its baselines on sprite pairs.
  configs.circles        static_data, reference_train: the disentangled-dynamics configs.
"""
import ml_collections


def train_config(**overrides) -> ml_collections.ConfigDict:
  """config.train with its defaults; keyword arguments override them."""
  train = ml_collections.ConfigDict(dict(
      batch_size=16,            # global batch (clips or pairs), split over all devices
      num_steps=1000,
      optimizer="adam",         # adam | rmsprop | adamw
      learning_rate=1e-3,
      schedule="constant",      # constant | warmup_cosine
      warmup_steps=100,
      grad_clip_norm=0.0,       # 0 disables clipping
      log_every=50,
      eval_every=250,
      checkpoint_every=250,
      keep_checkpoints=2,       # >= 1: the final checkpoint is always kept
      progress_bar=True,
      steps_per_dispatch=1,     # > 1: that many steps per device dispatch (lax.scan)
      prefetch=2,               # batches built and put on the devices ahead, in a thread
      restart=False,            # true: move an existing run of the workdir to previous_run/
      compute_dtype="float32",  # float32 | bfloat16: the networks' convs and dense layers compute
                                # in bfloat16, parameters, optimizer state, losses, priors and KLs
                                # stay float32 (docs/training.md); for accelerators: on a CPU
                                # bfloat16 is emulated, slower than float32
  ))
  train.update(overrides)
  return train


def base_config(*, seed: int = 0, data: dict, model: dict, train: dict) -> ml_collections.ConfigDict:
  """The whole config: seed, data, model and train (train_config's defaults, overridden)."""
  config = ml_collections.ConfigDict()
  config.seed = seed
  config.data = ml_collections.ConfigDict(data)
  config.model = ml_collections.ConfigDict(model)
  config.train = train_config(**train)
  return config
