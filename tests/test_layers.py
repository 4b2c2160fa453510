"""The layers import one way: data/ -> nlvae/ -> experiments/ (docs/ARCHITECTURE.md)."""
import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _imported_packages(path: pathlib.Path) -> set[str]:
  """Top-level package names imported anywhere in a file (function-level imports included)."""
  names = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      names.update(alias.name.split(".")[0] for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      names.add(node.module.split(".")[0])
  return names


@pytest.mark.parametrize("layer, forbidden", [("data", {"nlvae", "experiments"}),
                                              ("nlvae", {"experiments"})])
def test_no_layer_imports_a_layer_above_it(layer, forbidden):
  offenders = {str(path.relative_to(ROOT)): sorted(_imported_packages(path) & forbidden)
               for path in sorted((ROOT / layer).rglob("*.py"))}
  assert len(offenders) > 5  # the files were found
  assert {path: names for path, names in offenders.items() if names} == {}
