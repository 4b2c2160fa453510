"""Config builder shared by the four physics experiments (spring, pendulum, falling, pulsar).

Variants, comma-separated after the config path (e.g. experiments/pendulum.py:full,learn); at
most one scale, and at most one of sequential / mixture, of video / realistic, of realistic / tfds:
  quick (default)  scale: runs on a 2-core CPU in a few minutes
  full             scale: paper-scale: 64x64 frames, 10x data, wide networks, 50k steps (a GPU)
  tiny             scale: seconds, for tests
  learn            learn the physical parameters named by `learnable` from a wrong start
  sequential       the exact sequential KL estimator (E_q(h) KL(q_t || p(z_t | h)))
  mixture          the seed's linearised-mixture KL estimator (KL(q_t || E_q(h) p(z_t | h)))
  video            train on a folder of your own videos: --config.data.video_dir=FOLDER
                   (data/user_video.py: frame rate kept as dt, whole videos held out, static
                   background removed, truth from <stem>.<state>.npy files when present)
  realistic        procedural data with every camera nuisance of data/camera.py at once
  tfds             a dataset built by `python -m data.build` (--config.data.dataset=NAME/CONFIG,
                   --config.data.data_dir=DIR), read with tfds.data_source: physics_<system>/...
  video,tfds       your videos built as a real_videos dataset (python -m data.build
                   --dataset=real_videos --config=CONFIG --manual_dir=FOLDER), trained exactly as
                   :video trains on FOLDER: the video model settings, the clips, dt, held-out
                   videos and truth of the same ingestion (data/user_video.py). The default
                   dataset is the one whose config name encodes :video's ingestion options
                   (real_videos/32_t20_grey; with full 64_..., tiny 32_t8_grey, the falling
                   object _stride1_bgquantile); --config.data.dataset=real_videos/CONFIG picks
                   another.
                   :tfds alone refuses a real_videos dataset, and :video,tfds any other, in one
                   line naming the right variant.
Each experiment sets its own default estimator and encoder (see the README's results section for
why the pendulum and the falling object use the sequential estimator and the keypoint encoder).
"""
from data import physics, user_video
from experiments import configs
from experiments.configs.variants import parse_variants

# Camera frame rates (20-60 fps) are 2-5x procedural ones: the video variant steps the prior over
# about 0.2 s, where one step's physics stands out of the encoder's noise (docs/user_video.md).
VIDEO_PRIOR_TIME_STEP = 0.2
SCALES = ("quick", "full", "tiny")
FLAGS = ("learn", "sequential", "mixture", "video", "realistic", "tfds")
EXCLUSIVE = (("sequential", "mixture"), ("video", "realistic"), ("realistic", "tfds"))
# What the full and tiny scales change (quick is the default): the data of the video variant, of the
# procedural variants (counts and data.options), the keypoint encoder's (conv stride 1, conv
# stride 2) or the conv encoder's features, the decoder, the hidden width and training.
SCALE_OVERRIDES = {
    "full": dict(video_data=dict(image_size=64), data=dict(num_train=20_000, num_test=512),
                 options=dict(image_size=64), keypoint_features=(32, 64),
                 conv_features=(32, 32, 64, 64), decoder_features=(64, 64, 32, 32), hidden=256,
                 train=dict(batch_size=64, num_steps=50_000, learning_rate=5e-4,
                            schedule="warmup_cosine", eval_every=5000, checkpoint_every=5000)),
    "tiny": dict(video_data=dict(num_frames=8), data=dict(num_train=64, num_test=16),
                 options=dict(num_frames=8), keypoint_features=(4, 8), conv_features=(4, 8, 8),
                 decoder_features=(8, 8, 4), hidden=16,
                 train=dict(batch_size=4, num_steps=6, log_every=2, eval_every=3,
                            checkpoint_every=3, progress_bar=False)),
}


def physics_config(arg: str, *, system: str, data_options: dict, prior: dict, interventions: dict,
                   learnable: dict, video: dict | None = None, context_frames: int = 1,
                   num_components: int = 1, estimator: str = "mixture",
                   model: dict | None = None, train: dict | None = None):
  """Builds the ConfigDict of one physics experiment.

  Args:
    arg: the variant string after ':' in --config=experiments/<system>.py:<arg>.
    system: data.physics system name.
    data_options: options of data.physics.generate (fixed physics, ranges of initial states).
    prior: dict(name=..., params=dict(...), noise_scale=..., init_scale=...).
    interventions: name -> data.physics.resimulate keyword arguments.
    learnable: parameter name -> wrong starting value, used by the "learn" variant.
    estimator: the default KL estimator ("mixture" or "sequential"; variants override it).
    model, train: overrides of config.model and config.train defaults.
    video: overrides of the video variant's config.data, config.model.prior_time_step,
      config.model.estimator (unless a sequential / mixture variant names one), and (under the
      keys "model" and "train") config.model and config.train.
  """
  parsed = parse_variants(arg, scales=SCALES, flags=FLAGS, exclusive=EXCLUSIVE)
  scale, variants = parsed.scale, parsed.flags
  estimator = parsed.one_of(("sequential", "mixture"), estimator)
  config = configs.base_config(
      # Every option of data.physics is listed, so that any can be overridden from the command
      # line (--config.data.options.sensor_noise=0.05).
      data=dict(name="physics", system=system, num_train=2000, num_test=64, seed=0,
                options={**physics.default_options(system), "num_frames": 20, "image_size": 32,
                         **data_options}),
      model=dict(
          name="physics_vae",
          prior={**dict(init_scale=1.0, learnable=[], learn_noise_scale=False), **prior},
          beta=1.0,
          posterior_log_var_shift=0.0,
          estimator=estimator,
          num_components=num_components, num_samples=1,
          encoder="conv", num_keypoints=8, keypoint_strides=(),  # () = (1, 2, ..., 2)
          encoder_features=(16, 32, 32), decoder_features=(32, 32, 16), hidden=64,
          likelihood="bernoulli", pixel_std=0.1, context_frames=context_frames,
          prior_time_step=0.0,  # seconds per prior step (0 = every frame; see physics_vae)
          calibrate_scale=False,  # evaluation: the latent's scale fitted to the prior's physics
          interventions=interventions),
      train={**dict(batch_size=8, num_steps=2000, learning_rate=1e-3, log_every=50,
                    eval_every=1000, checkpoint_every=1000), **(train or {})})
  config.model.update(model or {})
  if "realistic" in variants:
    config.data.options.update(physics.REALISTIC_OPTIONS)
  if "video" in variants:
    video = dict(video or {})
    config.model.prior_time_step = video.pop("prior_time_step", VIDEO_PRIOR_TIME_STEP)
    config.model.estimator = parsed.one_of(("sequential", "mixture"),
                                           video.pop("estimator", estimator))
    config.model.update(video.pop("model", {}))
    config.train.update(video.pop("train", {}))
    config.data = {**video_data_config(system), **video}
    config.model.calibrate_scale = True
    config.model.prior.learn_noise_scale = True  # the noise then fits the encoder's precision
  elif "tfds" in variants:  # a dataset built by python -m data.build, read from disk
    config.data = dict(name="tfds", dataset=f"physics_{system}/32_t20", data_dir="")
  if "learn" in variants:
    config.model.prior.params.update(learnable)
    config.model.prior.learnable = sorted(learnable)
  if scale in SCALE_OVERRIDES:
    overrides = SCALE_OVERRIDES[scale]
    if "video" in variants:
      config.data.update(overrides["video_data"])
    elif "tfds" not in variants:
      config.data.update(overrides["data"])
      config.data.options.update(overrides["options"])
    keypoints = config.model.encoder == "keypoints"
    config.model.encoder_features = overrides["keypoint_features" if keypoints else "conv_features"]
    config.model.update(decoder_features=overrides["decoder_features"], hidden=overrides["hidden"])
    config.train.update(overrides["train"])
  if "video" in variants and "tfds" in variants:  # the built real_videos dataset of those options
    config.data = built_video_data_config(config.data)
  return config


def built_video_data_config(video_data) -> dict:
  """config.data of the `video,tfds` variant: the real_videos dataset that ingests as the :video
  data config `video_data` does (data.user_video.config_name of its options), and its system."""
  name = user_video.config_name(user_video.IngestOptions.from_config(video_data))
  return dict(name="tfds", dataset=f"real_videos/{name}", data_dir="", system=video_data["system"])


def video_data_config(system: str) -> dict:
  """config.data of the `video` variant (fields: data.user_video.IngestOptions)."""
  return dict(name="video", system=system,
              video_dir="",          # the folder of videos (required)
              num_frames=20,         # T, frames per training clip
              stride=0,              # frames between clip starts (0 = T // 4)
              image_size=32,         # clips are resized to S x S (after the crop)
              channels=1,            # 1 grey, 3 RGB
              crop_box=(),           # (top, left, height, width) in input pixels; () = centre
              background="median",   # "median": remove each video's static background; "none"
              dt=0.0,                # seconds per frame; 0 = from the files' frame rate
              test_fraction=0.2,     # videos held out (or the end of a single video)
              cache_dir="")          # "" = $NLVAE_CACHE or ~/.cache/nlvae
