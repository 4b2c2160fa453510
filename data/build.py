r"""Builds one nlvae dataset with tensorflow-datasets and writes a preview video.

  python -m data.build --dataset=physics_pendulum --config=32_t20 --preview=pendulum.gif
  python -m data.build --dataset=real_videos --config=32_t20_grey --manual_dir=~/my_videos \
      --preview=mine.mp4

real_videos ingests the folder of videos (and <stem>.<state>.npy truth files) exactly as the
:video config variant does (data.user_video.load_folder: frame rate as dt, whole videos held out,
background removal, truth, skipped files listed with their reasons); the config name sets the
options, {size}_t{frames}_{grey|rgb}[_stride{k}][_crop{top}x{left}x{h}x{w}][_test{percent}]
[_bg{median|none}][_fps{N}] (32_t20_grey is the :video default; folders of frames need _fps{N}).
Train on it with --config=experiments/<system>.py:video,tfds (docs/datasets.md, "Real videos").

--data_dir defaults to TFDS' own default ($TFDS_DATA_DIR, else ~/tensorflow_datasets), the place
`data.builders.load` reads from by default; building an existing dataset again only reads it.
The preview shows the first --preview_count examples of the train split side by side (pairs as
2-frame videos, static images as 1 frame), upscaled to at least 128 pixels high.
"""

from __future__ import annotations


from absl import flags
import numpy as np
import tensorflow_datasets as tfds

from data import builders, cli, video

# A private flag registry: importing this module (e.g. from tests) defines no global
# flags, so it never clashes with experiments.run's --config.
_FLAGS = flags.FlagValues()
_DATASET = flags.DEFINE_enum("dataset", None, builders.DATASETS, "Dataset to build.", flag_values=_FLAGS)
_CONFIG = flags.DEFINE_string("config", None, "Builder config (default: the first one listed "
                              "in data/builders.py; real_videos also takes custom names).", flag_values=_FLAGS)
_DATA_DIR = flags.DEFINE_string("data_dir", builders.DEFAULT_DATA_DIR, "TFDS data directory.", flag_values=_FLAGS)
_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder of videos (real_videos only).", flag_values=_FLAGS)
_PREVIEW = flags.DEFINE_string("preview", None, "Preview video path (.gif, .mp4 or a folder).", flag_values=_FLAGS)
_PREVIEW_COUNT = flags.DEFINE_integer("preview_count", 6, "Examples in the preview.", flag_values=_FLAGS)
_FPS = flags.DEFINE_float("fps", None, "Preview frame rate (default: the clips' own rate from "
                          "the metadata, at most 25; 5 for pairs and images).", flag_values=_FLAGS)

PREVIEW_HEIGHT = 128
MAX_PREVIEW_FPS = 25.0


def preview_video(examples: list[dict]) -> np.ndarray:
  """Examples -> one uint8 video [T, H, W, C]: their frames (or images) side by side, upscaled."""
  clips = []
  for example in examples:
    frames = np.asarray(example["frames"] if "frames" in example else example["images"])
    if frames.ndim == 3:  # A single image [H, W, C].
      frames = frames[None]
    clips.append(video.to_uint8(frames))
  scale = max(1, -(-PREVIEW_HEIGHT // clips[0].shape[1]))
  return video.upscale(video.side_by_side(*clips), scale)


def preview_fps(metadata) -> float:
  dt = (metadata or {}).get("dt")
  return min(MAX_PREVIEW_FPS, 1.0 / dt) if dt else 5.0


def main(argv):
  del argv
  tfds.disable_progress_bar()
  builder = builders.build(_DATASET.value, _CONFIG.value, _DATA_DIR.value,
                           manual_dir=_MANUAL_DIR.value)
  print(f"{builder.name}/{builder.builder_config.name} in {builder.data_dir}:")
  for name, split in builder.info.splits.items():
    print(f"  {name}: {split.num_examples} examples")
  if builder.info.metadata and "skipped" in builder.info.metadata:
    for path, reason in builder.info.metadata["skipped"]:
      print(f"  skipped {path}: {reason}")
  if _PREVIEW.value:
    source = builder.as_data_source(split="train")
    count = min(_PREVIEW_COUNT.value, len(source))
    frames = preview_video([source[i] for i in range(count)])
    fps = _FPS.value or preview_fps(builder.info.metadata)
    video.write_video(_PREVIEW.value, frames, fps=fps)
    print(f"Preview of {count} examples ({frames.shape[0]} frames at {fps:g} fps): "
          f"{_PREVIEW.value}")


if __name__ == "__main__":
  cli.run(main, _FLAGS, required=("dataset",))
