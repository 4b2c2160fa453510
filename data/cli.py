"""What the data layer's programs (data.build, data.make_videos) share: flags in a private registry
(so that importing the module never claims global flag names) and user errors as one line."""
from __future__ import annotations

import sys

from absl import app, flags


def run(main, flag_values: flags.FlagValues, required: tuple[str, ...] = ()) -> None:
  """app.run(main) with `flag_values` parsed first (absl's own --help etc. from the global
  registry); a bad flag, ValueError or FileNotFoundError exits with one line `error: ...`."""
  for name in required:
    flags.mark_flag_as_required(name, flag_values=flag_values)

  def parse(argv):
    try:
      return flags.FLAGS(flag_values(argv, known_only=True))
    except flags.Error as error:
      sys.exit(f"error: {error}")

  def main_or_exit(argv):
    try:
      main(argv)
    except (ValueError, FileNotFoundError) as error:
      sys.exit(f"error: {error}")

  app.run(main_or_exit, flags_parser=parse)
