"""The one parser of config variants: the string after ':' in --config=experiments/<name>.py:<arg>.

A variant string is names joined by a separator (",": `pendulum.py:full,learn`,
`circles_dynamic.py:inertia,tiny`; the sprite configs join with "_":
`slowvae_sprites.py:full_uniform`).
Each name is a scale (at most one; the config's default otherwise) or a flag; a config may give
aliases (other names for a flag) and exclusive groups (flags of which at most one may be given).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import NamedTuple


class Variants(NamedTuple):
  """A parsed variant string: the scale and the set of flags."""
  scale: str
  flags: frozenset[str]

  def one_of(self, group: Iterable[str], default: str | None = None) -> str | None:
    """The flag of `group` that was given (parse_variants allows at most one of an exclusive
    group), else `default`."""
    return next((name for name in group if name in self.flags), default)


def parse_variants(arg: str | None, *, scales: tuple[str, ...], default_scale: str | None = None,
                   flags: tuple[str, ...] = (), exclusive: Iterable[Iterable[str]] = (),
                   aliases: Mapping[str, str] | None = None, separator: str = ",",
                   scale_first: bool = False) -> Variants:
  """arg (None or "" for the defaults) -> Variants(scale, flags).

  Args:
    arg: names joined by `separator`.
    scales: the scale names; the result's scale is the one given, else `default_scale` (default:
      scales[0]).
    flags: the other names.
    exclusive: groups of flags of which at most one may be given.
    aliases: other name -> a scale or flag name.
    separator: what joins the names.
    scale_first: a scale, when given, must be the first name (the sprite grammar SCALE_FLAG).
  Raises:
    ValueError, naming the valid variants, for an unknown or empty name, two scales, two flags
    of an exclusive group, or (scale_first) a scale after a flag.
  """
  aliases = dict(aliases or {})
  valid = tuple(scales) + tuple(flags)
  names = (arg or "").strip().split(separator) if (arg or "").strip() else []
  resolved = [aliases.get(name.strip(), name.strip()) for name in names]
  unknown = [name for name in names if aliases.get(name.strip(), name.strip()) not in valid]
  if unknown:
    alias_text = f" (aliases {dict(sorted(aliases.items()))})" if aliases else ""
    raise ValueError(f"unknown config variant(s) {unknown}; valid: {', '.join(valid)}"
                     f"{alias_text}, joined by {separator!r}")
  given_scales = [name for name in resolved if name in scales]
  if len(set(given_scales)) > 1:
    raise ValueError(f"config variants {given_scales}: give at most one of the scales "
                     f"{list(scales)}")
  if scale_first and given_scales and resolved[0] not in scales:
    raise ValueError(f"config variant {arg!r}: the scale ({given_scales[0]}) comes first, e.g. "
                     f"{given_scales[0]}{separator}{resolved[0]}")
  chosen = frozenset(name for name in resolved if name in flags)
  for group in exclusive:
    clash = sorted(chosen & set(group))
    if len(clash) > 1:
      raise ValueError(f"config variants {clash}: give at most one of {list(group)}")
  scale = given_scales[0] if given_scales else (default_scale or scales[0])
  return Variants(scale, chosen)
