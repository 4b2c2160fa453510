"""What nlvae's programs outside experiments.run share (data.build, data.make_videos, the
experiments.bench_* benchmarks): flags in a private registry (so that importing the module never
claims global flag names, and programs that import each other never clash), --help that lists
them, and user errors as one line."""
from __future__ import annotations

import sys

from absl import app, flags

HELP_ARGUMENTS = ("-h", "-help", "--help", "-?", "--helpshort", "--helpfull")


def parse(flag_values: flags.FlagValues, argv: list[str], program: str = "program") -> None:
  """Parses argv (flags only, without the program name) into `flag_values`, every flag not in
  argv at its default: calling a program's main from Python."""
  flag_values.unparse_flags()
  flag_values([program] + list(argv))


def run(main, flag_values: flags.FlagValues, required: tuple[str, ...] = ()) -> None:
  """app.run(main) with `flag_values` parsed first (absl's own flags from the global registry);
  --help prints the program's docstring and its flags; a bad flag, ValueError or
  FileNotFoundError exits with one line `error: ...`."""
  for name in required:
    flags.mark_flag_as_required(name, flag_values=flag_values)

  def parse_or_exit(argv):
    if any(argument in HELP_ARGUMENTS for argument in argv[1:]):
      print(((sys.modules["__main__"].__doc__ or "").strip() + "\n\n"
             + flag_values.get_help()).strip())
      sys.exit(0)
    try:
      return flags.FLAGS(flag_values(argv, known_only=True))
    except flags.Error as error:
      sys.exit(f"error: {error}")

  def main_or_exit(argv):
    try:
      main(argv)
    except (ValueError, FileNotFoundError) as error:
      sys.exit(f"error: {error}")

  app.run(main_or_exit, flags_parser=parse_or_exit)
