"""Fault injection on the workdir guarantees (docs/workdir.md): every bad input and fault gives one
clear line (or the correct behaviour), its exit code, and loses no earlier result.

One reference run (tiny spring config, REFERENCE_STEPS steps, evaluated) is shared by the module;
the other runs resume into it bit for bit:
  - one workdir is stopped by SIGTERM, then SIGINT, then kill -9 (three `experiments.run`
    processes), its newest checkpoint is truncated and its metrics.jsonl gets a partial last
    line; the resumed run ends with the reference's arrays and eval.json, bit for bit;
  - damaged checkpoints (flipped bytes, truncated file, deleted _METADATA, emptied step, step
    without a checksum record, orbax tmp folder) are each warned about in one line, moved aside,
    and the run falls back to the newest good step;
  - bad configs and workdirs are refused with one line before anything is written.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from experiments import spring
from nlvae import train
from nlvae.metric_writer import read_metrics, write_atomically

ROOT = pathlib.Path(__file__).resolve().parent.parent
REFERENCE_STEPS = 300   # tiny steps take milliseconds; room for the interrupted runs to overshoot
CLI_CONFIG = ["--config=experiments/spring.py:tiny", "--config.train.num_steps=4000",
              "--config.train.log_every=1", "--config.train.checkpoint_every=4",
              "--config.train.eval_every=1000"]


def tiny_config(**train_overrides):
  """The tiny spring config without interventions (a faster evaluation), REFERENCE_STEPS steps.
  Its training equals CLI_CONFIG's: the two differ in harmless keys only."""
  config = spring.get_config("tiny")
  config.model.interventions = {}
  config.train.update(num_steps=REFERENCE_STEPS, log_every=50, eval_every=300,
                      checkpoint_every=100)
  config.train.update(train_overrides)
  return config


def checkpoint_arrays(workdir: pathlib.Path) -> tuple[int, dict]:
  """(latest step, {path: array} of its params and opt_state) of a workdir's checkpoints."""
  manager = ocp.CheckpointManager(workdir.absolute() / "checkpoints")
  step = manager.latest_step()
  restored = manager.restore(step, args=ocp.args.StandardRestore())
  manager.close()
  flat = jax.tree_util.tree_flatten_with_path({k: restored[k] for k in ("params", "opt_state")})
  return step, {jax.tree_util.keystr(p): np.asarray(v) for p, v in flat[0]}


def assert_bit_equal(workdir_a: pathlib.Path, workdir_b: pathlib.Path) -> None:
  (step_a, arrays_a), (step_b, arrays_b) = checkpoint_arrays(workdir_a), checkpoint_arrays(workdir_b)
  assert step_a == step_b and sorted(arrays_a) == sorted(arrays_b) and arrays_a
  for name, value in arrays_a.items():
    np.testing.assert_array_equal(value, arrays_b[name], err_msg=name)


def snapshot(workdir: pathlib.Path) -> dict:
  """{relative path: SHA-256} of every file (except the lock file): a workdir left untouched
  has the same snapshot."""
  return {str(p.relative_to(workdir)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(workdir.rglob("*")) if p.is_file() and p.name != train.LOCK_FILE}


def one_line(stderr: str) -> str:
  lines = [line for line in stderr.splitlines() if line.strip()]
  assert len(lines) == 1 and "Traceback" not in stderr, stderr[-3000:]
  return lines[0]


def cli(*args, env=None, timeout=180, background=False):
  """Runs `python -m experiments.run *args` (to the end, or in the background: a Popen)."""
  command = [sys.executable, "-m", "experiments.run", *args]
  environment = {**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})}
  if background:
    return subprocess.Popen(command, cwd=ROOT, env=environment, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  return subprocess.run(command, cwd=ROOT, env=environment, capture_output=True, text=True,
                        timeout=timeout)


def wait_for(predicate, process: subprocess.Popen, timeout: float = 180) -> None:
  deadline = time.monotonic() + timeout
  while not predicate():
    assert process.poll() is None, process.communicate()[1][-3000:]
    assert time.monotonic() < deadline, "timed out"
    time.sleep(0.01)


def trained_steps(workdir: pathlib.Path) -> list[int]:
  if not (workdir / "metrics.jsonl").exists():
    return []
  return [row["step"] for row in read_metrics(workdir) if "train/loss" in row]


def step_files(workdir: pathlib.Path, step: int) -> list[pathlib.Path]:
  """The files of saved step `step`, largest first."""
  files = [p for p in (workdir / "checkpoints" / str(step)).rglob("*") if p.is_file()]
  return sorted(files, key=lambda p: -p.stat().st_size)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> pathlib.Path:
  workdir = tmp_path_factory.mktemp("reference")
  train.train_and_evaluate(tiny_config(), workdir)
  return workdir


@pytest.mark.slow
def test_sigterm_sigint_kill_and_a_corrupt_checkpoint_resume_bit_for_bit(reference, tmp_path,
                                                                          capfd):
  workdir = tmp_path / "interrupted"
  stops = []
  for signum, exit_code in ((signal.SIGTERM, 143), (signal.SIGINT, 130)):
    process = cli(*CLI_CONFIG, f"--workdir={workdir}", background=True)
    previous = stops[-1] if stops else 0
    wait_for(lambda: any(s > previous + 1 for s in trained_steps(workdir)), process)
    process.send_signal(signum)
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == exit_code, stderr[-3000:]
    line = one_line(stderr)
    match = re.fullmatch(rf"stopped by {signum.name} at step (\d+) of 4000; checkpoint saved in "
                         rf"{re.escape(str(workdir / 'checkpoints'))}; rerun the same command to "
                         "resume", line)
    assert match, line
    stops.append(int(match[1]))
    assert train._saved_steps(workdir)[-1] == stops[-1] > previous  # noqa: SLF001
  # kill -9 once a new checkpoint is on disk (orbax may be writing the next one).
  process = cli(*CLI_CONFIG, f"--workdir={workdir}", background=True)
  wait_for(lambda: max(train._saved_steps(workdir), default=0) > stops[-1] + 4,  # noqa: SLF001
           process)
  process.kill()
  process.communicate(timeout=60)
  assert process.returncode == -signal.SIGKILL
  steps = train._saved_steps(workdir)  # noqa: SLF001
  assert steps[-1] < REFERENCE_STEPS
  newest, fallback = steps[-1], steps[-2]
  damaged = step_files(workdir, newest)[0]
  damaged.write_bytes(damaged.read_bytes()[:damaged.stat().st_size // 2])
  with (workdir / "metrics.jsonl").open("a") as f:
    f.write('{"step": 99999, "train/lo')  # a line cut short by the kill
  capfd.readouterr()

  train.train_and_evaluate(tiny_config(), workdir)  # resumes; harmless keys changed

  err = capfd.readouterr().err
  warning = [line for line in err.splitlines() if line.startswith("warning:")]
  assert len(warning) == 1 and f"checkpoint step {newest} " in warning[0], err
  assert f"falling back to step {fallback}" in warning[0]
  assert (workdir / train.CORRUPT_CHECKPOINTS / str(newest)).is_dir()
  assert not list((workdir / "checkpoints").glob("*tmp*"))
  assert_bit_equal(reference, workdir)
  assert (workdir / "eval.json").read_text() == (reference / "eval.json").read_text()
  logged = trained_steps(workdir)
  assert logged == sorted(set(logged)) and logged[:fallback] == list(range(1, fallback + 1))
  assert logged[-1] == REFERENCE_STEPS


def test_damaged_checkpoints_are_moved_aside_with_one_line_each(reference, tmp_path, capfd):
  workdir = tmp_path / "damaged"
  train.train_and_evaluate(tiny_config(checkpoint_every=2, keep_checkpoints=6), workdir,
                           stop_after=12)
  assert train._saved_steps(workdir) == [2, 4, 6, 8, 10, 12]  # noqa: SLF001
  checkpoints = workdir / "checkpoints"
  for path in (checkpoints / "12").iterdir():  # emptied step folder
    shutil.rmtree(path) if path.is_dir() else path.unlink()
  flipped = step_files(workdir, 10)[0]  # 64 flipped bytes
  data = bytearray(flipped.read_bytes())
  data[len(data) // 2:len(data) // 2 + 64] = bytes(b ^ 0xFF for b in data[len(data) // 2:][:64])
  flipped.write_bytes(bytes(data))
  truncated = step_files(workdir, 8)[0]
  truncated.write_bytes(truncated.read_bytes()[:truncated.stat().st_size // 3])
  (checkpoints / "6" / "default" / "_METADATA").unlink()
  unrecorded = step_files(workdir, 4)[0]  # truncated, and its checksum record lost
  unrecorded.write_bytes(b"")
  checksums = json.loads((workdir / train.CHECKSUMS).read_text())
  del checksums["4"]
  write_atomically(workdir / train.CHECKSUMS, json.dumps(checksums))
  (checkpoints / "14.orbax-checkpoint-tmp-1234").mkdir()  # a save cut short
  capfd.readouterr()

  # To step REFERENCE_STEPS without the final evaluation (num_steps is harmless, schedule constant).
  train.train_and_evaluate(tiny_config(num_steps=REFERENCE_STEPS + 1), workdir,
                           stop_after=REFERENCE_STEPS - 2)

  warnings = [line for line in capfd.readouterr().err.splitlines() if line.startswith("warning:")]
  reasons = {12: "incomplete", 10: "checksum mismatch", 8: "checksum mismatch",
             6: "missing default/_METADATA", 4: "restore failed"}
  assert len(warnings) == len(reasons), warnings
  for line, (step, reason) in zip(warnings, reasons.items()):
    assert line.startswith(f"warning: checkpoint step {step} ") and reason in line, line
    assert line.endswith(f"falling back to step {step - 2}."), line
    assert (workdir / train.CORRUPT_CHECKPOINTS / str(step)).is_dir()
  assert not (checkpoints / "14.orbax-checkpoint-tmp-1234").exists()
  assert_bit_equal(reference, workdir)


def test_an_intact_checkpoint_that_does_not_fit_is_refused_not_moved(reference, tmp_path,
                                                                     monkeypatch):
  workdir = tmp_path / "changed_model"
  shutil.copytree(reference, workdir)
  config = tiny_config()
  config.model.hidden = 32  # as if the network's code had changed
  monkeypatch.setattr(train, "HARMLESS_KEYS", train.HARMLESS_KEYS + ("model.hidden",))
  before = snapshot(workdir)
  with pytest.raises(train.UsageError, match=r"intact but does not fit this model"):
    train.train_and_evaluate(config, workdir)
  after = snapshot(workdir)
  assert {k: v for k, v in after.items() if k != "config.json"} == {
      k: v for k, v in before.items() if k != "config.json"}


@pytest.mark.parametrize("key, value", [
    ("num_steps", 0), ("num_steps", -1), ("batch_size", -4), ("log_every", 0),
    ("eval_every", 0), ("checkpoint_every", 0), ("keep_checkpoints", 0), ("steps_per_dispatch", 0),
    ("learning_rate", -1e-3), ("learning_rate", 0.0), ("learning_rate", float("nan")),
])
def test_invalid_train_values_are_refused_before_anything_is_written(reference, key, value):
  before = snapshot(reference)
  config = tiny_config(**{key: value})
  with pytest.raises(train.UsageError, match=rf"^train\.{key} must be a "):
    train.train_and_evaluate(config, reference)
  assert snapshot(reference) == before


def test_a_different_config_is_refused_and_harmless_changes_are_not(reference):
  before = snapshot(reference)
  config = tiny_config()
  config.seed, config.model.beta = 1, 2.0
  with pytest.raises(train.UsageError) as error:
    train.train_and_evaluate(config, reference)
  assert re.search(r"different config \(model\.beta, seed\); use another --workdir, or "
                   r"--config\.train\.restart=true", str(error.value)), error.value
  fewer = tiny_config(num_steps=REFERENCE_STEPS - 100)
  with pytest.raises(train.UsageError, match=rf"checkpoint at step {REFERENCE_STEPS}, past "
                     rf"train\.num_steps={REFERENCE_STEPS - 100}; evaluate it with --mode=eval"):
    train.train_and_evaluate(fewer, reference)
  assert snapshot(reference) == before
  harmless = tiny_config(progress_bar=True, log_every=7, keep_checkpoints=3, eval_every=11,
                         checkpoint_every=13, num_steps=REFERENCE_STEPS + 1)
  harmless.model.interventions = {"double_amplitude": {"amplitude_scale": 2.0}}
  recorded = json.loads((reference / "config.json").read_text())
  assert train.training_differences(recorded, harmless) == []
  harmless.train.schedule = "warmup_cosine"
  assert "train.num_steps" in train.training_differences(tiny_config(), harmless)


def test_restart_moves_the_previous_run_aside(reference, tmp_path):
  workdir = tmp_path / "restarted"
  shutil.copytree(reference, workdir)
  config = tiny_config(restart=True)
  config.seed = 1
  train.train_and_evaluate(config, workdir, stop_after=2)
  previous = workdir / train.PREVIOUS_RUN
  assert snapshot(previous) == {k: v for k, v in snapshot(reference).items()}
  assert train._saved_steps(workdir) == [2]  # noqa: SLF001
  assert json.loads((workdir / "config.json").read_text())["seed"] == 1


def test_a_second_run_on_a_locked_workdir_is_refused(reference):
  before = snapshot(reference)
  with (reference / train.LOCK_FILE).open("a+") as held:
    fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another run holds it
    with pytest.raises(train.UsageError, match=r"another run \(pid .*\) is using workdir"):
      train.train_and_evaluate(tiny_config(), reference)
  assert snapshot(reference) == before


def test_read_only_and_full_workdirs_are_refused(tmp_path, monkeypatch):
  read_only = tmp_path / "read_only"
  read_only.mkdir()
  read_only.chmod(0o555)
  if os.geteuid() == 0:  # root may write anywhere: make os.access report what the mode says
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: (
        pathlib.Path(path) != read_only and real_access(path, mode, **kw)))
  with pytest.raises(train.UsageError, match=r"is not writable"):
    train.train_and_evaluate(tiny_config(), read_only / "run")
  monkeypatch.undo()
  real_statvfs = os.statvfs

  def full_disk(path):
    result = real_statvfs(path)
    return os.statvfs_result((result.f_bsize, result.f_frsize, result.f_blocks, 8, 8,
                              *tuple(result)[5:]))
  monkeypatch.setattr(os, "statvfs", full_disk)
  with pytest.raises(train.UsageError, match=r"only 0\.0 MiB free on its disk"):
    train.train_and_evaluate(tiny_config(), tmp_path / "full")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["read_only"]


def test_a_model_error_leaves_no_workdir(tmp_path):
  config = tiny_config()
  config.model.interventions = {"stiffer": {"stifness": 2.0}}  # an unknown parameter
  with pytest.raises(ValueError, match="stifness"):
    train.train_and_evaluate(config, tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_eval_mode_rewrites_the_evaluation_of_the_newest_checkpoint(reference, tmp_path):
  workdir = tmp_path / "evaluated"
  shutil.copytree(reference, workdir)
  shutil.rmtree(workdir / "figures")
  (workdir / "eval.json").unlink()
  checkpoints = snapshot(workdir / "checkpoints")
  results = train.evaluate(tiny_config(), workdir)
  assert (workdir / "eval.json").read_text() == (reference / "eval.json").read_text()
  assert results["num_steps"] == REFERENCE_STEPS
  assert sorted(p.name for p in (workdir / "figures").iterdir()) == sorted(
      p.name for p in (reference / "figures").iterdir())
  assert snapshot(workdir / "checkpoints") == checkpoints
  assert not (workdir / ".evaluation.tmp").exists()


def test_atomic_write_leaves_the_old_file_when_the_write_fails(tmp_path, monkeypatch):
  path = tmp_path / "eval.json"
  path.write_text("old\n")

  def no_space(*args):
    raise OSError(errno.ENOSPC, "No space left on device")
  monkeypatch.setattr(os, "replace", no_space)
  with pytest.raises(OSError):
    write_atomically(path, "new\n")
  assert path.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [path]


def _config_file(tmp_path, text: str) -> pathlib.Path:
  path = tmp_path / "experiment.py"
  path.write_text(text)
  return path


@pytest.mark.parametrize("case", ["missing file", "syntax error", "unknown variant",
                                  "no --config", "zero steps", "no checkpoint to evaluate",
                                  "different config"])
def test_cli_errors_are_one_line_before_any_work(case, reference, tmp_path):
  workdir = tmp_path / "run"
  syntax_error = _config_file(tmp_path, "def get_config():\n  return {\n")
  args = {
      "missing file": ["--config=experiments/sprng.py"],
      "syntax error": [f"--config={syntax_error}"],
      "unknown variant": ["--config=experiments/spring.py:fulll"],
      "no --config": [],
      "zero steps": ["--config=experiments/spring.py:tiny", "--config.train.num_steps=0"],
      "no checkpoint to evaluate": ["--config=experiments/spring.py:tiny", "--mode=eval"],
      "different config": ["--config=experiments/spring.py:tiny", "--config.seed=3"],
  }[case]
  if case == "different config":
    workdir = tmp_path / "copy"
    shutil.copytree(reference, workdir)
  before = snapshot(workdir) if workdir.exists() else None
  out = cli(*args, f"--workdir={workdir}")
  assert out.returncode == 1, out.stderr[-3000:]
  line = one_line(out.stderr)
  expected = {
      "missing file": r"config error: config file experiments/sprng\.py not found",
      "syntax error": r"config error: syntax error in .*experiment\.py line 2: ",
      "unknown variant": r"config error: experiments/spring\.py: unknown config variant\(s\) "
                         r"\['fulll'\]; valid: ",
      "no --config": r"config error: --config=experiments/<name>\.py\[:variant\] is required",
      "zero steps": r"error: train\.num_steps must be a positive integer, got 0",
      "no checkpoint to evaluate": r"error: no checkpoint to evaluate in ",
      "different config": r"error: workdir .* holds a run with a different config \(seed\); use "
                          r"another --workdir, or --config\.train\.restart=true",
  }[case]
  assert re.match(expected, line) and len(line) < 400, line
  assert (snapshot(workdir) if workdir.exists() else None) == before


def test_debug_shows_the_traceback(tmp_path):
  out = cli("--config=experiments/spring.py:tiny", "--config.train.num_steps=0", "--debug",
            f"--workdir={tmp_path / 'run'}")
  assert out.returncode == 1 and "Traceback" in out.stderr and "UsageError" in out.stderr


def test_default_workdir_names_the_variants_and_the_overrides_that_change_training():
  from experiments import run
  config = spring.get_config("sequential")
  assert run.default_workdir("experiments/spring.py:sequential", config) == os.path.join(
      "runs", "spring_sequential")
  config.seed, config.train.progress_bar, config.train.log_every = 2, False, 7
  assert run.default_workdir("experiments/spring.py:sequential", config) == os.path.join(
      "runs", "spring_sequential_seed=2")
  assert run.default_workdir("experiments/spring.py", spring.get_config()) == os.path.join(
      "runs", "spring")
