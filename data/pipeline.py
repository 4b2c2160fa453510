"""Deterministic, resumable, process-sharded batching for training.

`Batches(source, global_batch_size, seed)` turns a random-access dataset into an endless stream
of batches whose content is a pure function of (seed, step): a run that restarts from a
checkpoint at step s gets exactly the batches it would have got without the restart, and every
process of a multi-host job takes its own contiguous slice of the same global batch.

Order. Epoch e is a permutation of the N examples drawn from np.random.default_rng([seed, e])
(the identity when shuffle=False). It is cut into steps_per_epoch = N // B global batches of B
examples; the N % B examples left at the end of each permutation are dropped, so a batch never
straddles two epochs and batch(step) belongs to epoch step // steps_per_epoch. A different
remainder is dropped every epoch, so no example is left out for good.

Sources. Either a mapping of arrays (nested dicts allowed, every leaf with the same leading
size N; batches are gathered with one fancy index per array, no per-example Python loop), or
any random-access object with __len__ and __getitem__(i) -> dict of arrays, such as a
tfds.data_source (batches use __getitems__ when the source has it, then stack).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jax
import numpy as np


# Procedural datasets draw their test split from seed + TEST_SEED_OFFSET, never the training seed.
TEST_SEED_OFFSET = 1_000_003


def stack_examples(examples: list) -> Any:
  """[dict of arrays] * n -> dict of stacked arrays [n, ...] (nested dicts allowed)."""
  return jax.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *examples)


def read_all(source) -> Any:
  """Every example of a random-access source (len, [i]), stacked: dict of arrays [len, ...]."""
  return stack_examples([source[i] for i in range(len(source))])


def epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  """The order of epoch `epoch`: a permutation of range(num_examples), int64."""
  return np.random.default_rng([seed, epoch]).permutation(num_examples)


class Batches:
  """Deterministic batches from a random-access source, resumable mid-epoch, sharded over processes.

  Attributes:
    num_examples: N, the size of the source.
    global_batch_size: B, examples per step over all processes.
    local_batch_size: B // process_count, examples per step in this process.
    steps_per_epoch: N // B (the remainder of each epoch is dropped).
  """

  def __init__(self, source, global_batch_size: int, seed: int, *, shuffle: bool = True,
               process_index: int | None = None, process_count: int | None = None):
    """Args:
      source: mapping of arrays with equal leading size N, or an object with __len__ and
        __getitem__(i) -> dict of arrays (e.g. a tfds.data_source).
      global_batch_size: B, must be divisible by process_count and at most N.
      seed: non-negative integer; with the step, it fixes every batch.
      shuffle: False keeps the source order (every epoch identical).
      process_index, process_count: this process and the number of processes; default to
        jax.process_index() and jax.process_count().
    """
    if process_index is None or process_count is None:
      process_index = jax.process_index() if process_index is None else process_index
      process_count = jax.process_count() if process_count is None else process_count
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index must be in [0, process_count = {process_count}), "
                       f"got {process_index}.")
    if int(seed) != seed or seed < 0:
      raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")
    if isinstance(source, Mapping):
      source = dict(source)
      leaves = jax.tree.leaves(source)
      if not leaves:
        raise ValueError("source mapping holds no arrays.")
      sizes = {np.shape(leaf)[0] if np.ndim(leaf) else None for leaf in leaves}
      if len(sizes) != 1 or None in sizes:
        raise ValueError("every array of the source must share the leading size N, got leading "
                         f"sizes {sorted(map(str, sizes))}.")
      self._arrays = jax.tree.map(np.asarray, source)
      self.num_examples = int(sizes.pop())
    elif hasattr(source, "__len__") and hasattr(source, "__getitem__"):
      self._arrays = None
      self.num_examples = len(source)
    else:
      raise ValueError("source must be a mapping of arrays or have __len__ and __getitem__, got "
                       f"{type(source).__name__}.")
    if global_batch_size < 1 or global_batch_size % process_count:
      raise ValueError(f"global_batch_size ({global_batch_size}) must be a positive multiple of "
                       f"process_count ({process_count}).")
    if global_batch_size > self.num_examples:
      raise ValueError(f"global_batch_size ({global_batch_size}) exceeds the number of examples "
                       f"({self.num_examples}); use a smaller batch or a bigger dataset.")
    self._source = source
    self.seed = int(seed)
    self.shuffle = shuffle
    self.process_index = process_index
    self.process_count = process_count
    self.global_batch_size = global_batch_size
    self.local_batch_size = global_batch_size // process_count
    self.steps_per_epoch = self.num_examples // global_batch_size
    self._cached_epoch: tuple[int, np.ndarray] | None = None

  def __len__(self) -> int:
    """Steps per epoch."""
    return self.steps_per_epoch

  def _order(self, epoch: int) -> np.ndarray:
    if not self.shuffle:
      return np.arange(self.num_examples)
    if self._cached_epoch is None or self._cached_epoch[0] != epoch:
      self._cached_epoch = (epoch, epoch_permutation(self.seed, epoch, self.num_examples))
    return self._cached_epoch[1]

  def indices(self, step: int) -> np.ndarray:
    """Source indices int64 [local_batch_size] of this process's slice of global batch `step`."""
    if int(step) != step or step < 0:
      raise ValueError(f"step must be a non-negative integer, got {step!r}.")
    epoch, position = divmod(int(step), self.steps_per_epoch)
    start = position * self.global_batch_size + self.process_index * self.local_batch_size
    return self._order(epoch)[start:start + self.local_batch_size]

  def batch(self, step: int) -> dict[str, np.ndarray]:
    """This process's slice of global batch `step`: leaves [local_batch_size, ...]."""
    indices = self.indices(step)
    if self._arrays is not None:
      return jax.tree.map(lambda array: array[indices], self._arrays)
    keys = [int(i) for i in indices]
    if hasattr(self._source, "__getitems__"):
      examples = self._source.__getitems__(keys)
    else:
      examples = [self._source[i] for i in keys]
    return stack_examples(list(examples))

  def iterate(self, start_step: int = 0, num_steps: int | None = None
              ) -> Iterator[dict[str, np.ndarray]]:
    """Yields batch(step) for step = start_step, start_step + 1, ... (num_steps of them, or
    forever)."""
    step = start_step
    while num_steps is None or step < start_step + num_steps:
      yield self.batch(step)
      step += 1

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    return self.iterate(0)


def prefetched(batches: Batches, start_step: int = 0, num_steps: int | None = None, *,
               num_threads: int = 2, buffer_size: int = 4) -> Iterator[dict[str, np.ndarray]]:
  """batches.batch(step) for step = start_step, start_step + 1, ..., read ahead in background
  threads by grain (tfds data sources decode in parallel while the consumer trains).

  The same batches in the same order as Batches.iterate: resuming at step s gives the batches
  an uninterrupted stream gives from s on.
  """
  import grain  # imported here: only the prefetching path needs it
  stop = start_step + num_steps if num_steps is not None else 2**62
  dataset = grain.MapDataset.range(start_step, stop).map(batches.batch)
  return iter(dataset.to_iter_dataset(grain.ReadOptions(num_threads=num_threads,
                                                        prefetch_buffer_size=buffer_size)))
