"""The one variant parser (experiments/configs/variants.py) and the configs built with it."""
import pytest

from experiments import (circles_betavae, circles_dynamic, circles_supervised, falling,
                         pendulum, slowvae_sprites, spring)
from experiments.configs.variants import Variants, parse_variants

SCALES = ("quick", "full", "tiny")
FLAGS = ("learn", "sequential", "mixture")


def _parse(arg, **kwargs):
  return parse_variants(arg, scales=SCALES, flags=FLAGS,
                        exclusive=(("sequential", "mixture"),), **kwargs)


def test_scale_and_flags_in_any_order_with_defaults():
  assert _parse("") == _parse(None) == Variants("quick", frozenset())
  assert _parse("learn,full,sequential") == Variants("full", frozenset({"learn", "sequential"}))
  assert _parse("tiny", default_scale="full").scale == "tiny"
  assert _parse("learn", default_scale="full").scale == "full"
  parsed = _parse("mixture")
  assert parsed.one_of(("sequential", "mixture"), "none") == "mixture"
  assert _parse("").one_of(("sequential", "mixture"), "none") == "none"


def test_aliases_separator_and_scale_first():
  kwargs = dict(aliases={"seq": "sequential", "big": "full"}, separator="_", scale_first=True)
  assert _parse("big_seq", **kwargs) == Variants("full", frozenset({"sequential"}))
  assert _parse("seq", **kwargs) == Variants("quick", frozenset({"sequential"}))
  with pytest.raises(ValueError, match="comes first"):
    _parse("seq_full", **kwargs)
  assert _parse("learn,full").scale == "full"  # without scale_first the order is free


@pytest.mark.parametrize("arg, match", [
    ("fulll", r"unknown config variant\(s\) \['fulll'\]; valid: quick, full, tiny, learn"),
    ("full,,learn", r"unknown config variant\(s\) \[''\]"),
    ("full,tiny", "at most one of the scales"),
    ("sequential,mixture", r"at most one of \['sequential', 'mixture'\]"),
])
def test_bad_variants_raise_one_clear_error(arg, match):
  with pytest.raises(ValueError, match=match):
    _parse(arg)


def test_every_config_family_uses_the_parser():
  # physics: comma separated, scale anywhere, exclusive pairs.
  assert pendulum.get_config("learn,full").train.num_steps == 50_000
  assert pendulum.get_config("full,learn").to_dict() == pendulum.get_config("learn,full").to_dict()
  assert pendulum.get_config("mixture").model.estimator == "mixture"
  # The spring's video variant defaults to the sequential estimator; a named estimator wins.
  assert spring.get_config("").model.estimator == "mixture"
  assert spring.get_config("video").model.estimator == "sequential"
  assert spring.get_config("video,mixture").model.estimator == "mixture"
  # The falling object's video variant stacks each frame with its neighbours; its clips do not.
  assert falling.get_config("video").model.context_frames == 3
  assert falling.get_config("").model.context_frames == 1
  assert falling.get_config("video").data.background == "quantile"
  assert spring.get_config("video").data.background == "median"
  with pytest.raises(ValueError, match="at most one of"):
    pendulum.get_config("realistic,tfds")
  # video,tfds: the built real_videos dataset of :video's ingestion options, with its system.
  assert pendulum.get_config("video,tfds").data.to_dict() == dict(
      name="tfds", dataset="real_videos/32_t20_grey", data_dir="", system="pendulum")
  assert pendulum.get_config("full,video,tfds").data.dataset == "real_videos/64_t20_grey"
  assert (falling.get_config("video,tfds").data.dataset
          == "real_videos/32_t20_grey_stride1_bgquantile")
  assert pendulum.get_config("tfds").data.dataset == "physics_pendulum/32_t20"
  # circles: one scale, at most one of the config's own variants, and tfds with any of them.
  assert circles_dynamic.get_config("inertia,tiny").model.dynamics == "inertia"
  with pytest.raises(ValueError, match="unknown config variant"):
    circles_dynamic.get_config("kalman")
  for config, dataset in (
      (circles_dynamic.get_config("tfds,inertia,full"), "circles_dynamic/32_t10"),
      (circles_betavae.get_config("tfds"), "circles_static/32"),
      (circles_supervised.get_config("tiny,tfds"), "circles_static/32")):
    assert config.data.to_dict() == dict(name="tfds", dataset=dataset, data_dir="")
  assert circles_dynamic.get_config("tfds,inertia").model.dynamics == "inertia"
  assert circles_betavae.get_config("tfds,full").train.num_steps == 500_000
  # sprites: SCALE_TRANSITIONS with aliases.
  assert slowvae_sprites.get_config("full_loc").data.transitions == "uniform"
  with pytest.raises(ValueError, match="comes first"):
    slowvae_sprites.get_config("uniform_full")
