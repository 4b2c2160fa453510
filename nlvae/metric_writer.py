"""Metrics as JSON lines (workdir/metrics.jsonl) and TensorBoard events (workdir/tensorboard), and
the atomic file writes of the workdir (a reader sees the old file or the new one, never a part)."""
from __future__ import annotations

import json
import os
import pathlib


def write_atomically(path, text: str) -> None:
  """Writes `text` to a temporary file beside `path`, flushes it to disk and renames it over
  `path` (atomic on POSIX): a crash leaves either the old file or the new one."""
  path = pathlib.Path(path)
  temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  try:
    with temporary.open("w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(temporary, path)
  finally:
    temporary.unlink(missing_ok=True)


def truncate_metrics(workdir, last_step: int) -> None:
  """Keeps the rows of workdir/metrics.jsonl up to `last_step` (the restored checkpoint; later rows
  will be written again) and drops a partly written last line, rewriting the file atomically."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  if not path.exists():
    return
  rows = []
  for line in path.read_text().splitlines():
    try:
      row = json.loads(line)
    except json.JSONDecodeError:  # a line cut short by a kill during its write
      continue
    if isinstance(row, dict) and row.get("step", 0) <= last_step:
      rows.append(line)
  write_atomically(path, "".join(row + "\n" for row in rows))


class MetricWriter:
  """Appends {"step": s, "<prefix><name>": value, ...} rows; mirrors scalars to TensorBoard."""

  def __init__(self, workdir: pathlib.Path, enabled: bool = True):
    self.enabled = enabled
    self.path = pathlib.Path(workdir) / "metrics.jsonl"
    self._tensorboard = None
    if enabled:
      from tensorboardX import SummaryWriter
      self._tensorboard = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))

  def write(self, step: int, scalars: dict, prefix: str = "") -> None:
    if not self.enabled:
      return
    row = {"step": int(step), **{prefix + k: float(v) for k, v in scalars.items()}}
    with self.path.open("a") as f:  # one write per row: a kill leaves at most a partial last line
      f.write(json.dumps(row) + "\n")
    for name, value in row.items():
      if name != "step":
        self._tensorboard.add_scalar(name, value, step)

  def close(self) -> None:
    if self._tensorboard is not None:
      self._tensorboard.close()


def read_metrics(workdir) -> list[dict]:
  """The rows of workdir/metrics.jsonl (a partly written last line is skipped)."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  rows = []
  for line in path.read_text().splitlines():
    try:
      rows.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return rows
