"""Sequences of `L` consecutive 30-s epochs, the model's input unit.

The set keeps each recording's `signals (C, T)` as it is given (an in-memory
array, or a read-only memmap into the preprocessing cache) and never
concatenates them: a sequence is a start index, and a batch is cut out of the
recordings' arrays slice by slice when it is needed. So overlapping sequences
(stride < seq_len) cost no memory, a cached dataset is read from disk only as
far as the batches need it, and the arrays are never embedded in the graph
(batches are gathered inside `tf.data` with `tf.numpy_function`).
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from stmd_keras.data.recording import DataError


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
    return int(value)


class SequenceSet:
    """Non-crossing sequences of `seq_len` epochs over prepared recordings.

    Sequences start every `stride` epochs inside each recording and never
    cross from one recording into the next. With `cover_all=True`, a last
    sequence aligned to the end of each recording is added when the stride
    grid would leave its final epochs uncovered, so every epoch is in at least
    one sequence.

    Example:

    >>> s = SequenceSet(prepare_all(recordings), seq_len=20)
    >>> x, y = s.get([0, 1])          # (2, 20, C, S) float32, (2, 20) int32
    >>> ds = s.train_dataset(batch_size=8, seed=0)
    >>> model.fit(ds, steps_per_epoch=s.steps_per_epoch(8), epochs=50)

    Args:
        recordings: prepared `Recording`s sharing one sampling rate and one
            channel list (see `stmd_keras.data.prepare_all`).
        seq_len: epochs per sequence, `L` in the paper (default 20).
        stride: epochs between consecutive sequence starts; default
            `seq_len` (non-overlapping).
        cover_all: add an end-aligned sequence per recording so that every
            epoch is covered (default True; needs `stride <= seq_len`).
    """

    def __init__(self, recordings, seq_len=20, stride=None, cover_all=True):
        self._seq_len = _positive_int("seq_len", seq_len)
        self._stride = self._seq_len if stride is None else _positive_int("stride", stride)
        if cover_all and self._stride > self._seq_len:
            raise ValueError(
                f"stride={self._stride} > seq_len={self._seq_len} skips epochs between "
                "sequences, so not every epoch can be covered. Use stride <= seq_len, "
                "or cover_all=False to subsample on purpose."
            )
        recordings = list(recordings)
        if not recordings:
            raise DataError("SequenceSet: no recordings given.")
        first = recordings[0]
        for r in recordings[1:]:
            if r.fs != first.fs or r.channels != first.channels:
                raise DataError(
                    f"SequenceSet: {r.source} (subject {r.subject}) has fs={r.fs:g} Hz and "
                    f"channels {list(r.channels)}, but {first.source} has fs={first.fs:g} Hz "
                    f"and channels {list(first.channels)}. Prepare all recordings with "
                    "the same PreprocessConfig (fs and channels) first."
                )
        kept = [r for r in recordings if r.n_epochs >= self._seq_len]
        short = [f"{r.source} (subject {r.subject}, {r.n_epochs} epochs)"
                 for r in recordings if r.n_epochs < self._seq_len]
        if short:
            warnings.warn(
                f"SequenceSet: skipping {len(short)} recording(s) shorter than "
                f"seq_len={self._seq_len}: {', '.join(short)}.",
                stacklevel=2,
            )
        if not kept:
            raise DataError(
                f"SequenceSet: every recording is shorter than seq_len={self._seq_len} "
                "epochs; use a smaller seq_len or longer recordings."
            )

        self._fs = float(first.fs)
        self._channels = tuple(first.channels)
        self._epoch_samples = first.epoch_samples
        self._signals = [r.signals for r in kept]
        self.y = np.concatenate([r.labels for r in kept]).astype(np.int32)
        self.subject = np.concatenate([np.full(r.n_epochs, r.subject) for r in kept])
        self.recording_index = np.concatenate(
            [np.full(r.n_epochs, i, dtype=np.int64) for i, r in enumerate(kept)]
        )
        self.sources = tuple(r.source for r in kept)

        starts, offset = [], 0
        for r in kept:
            local = list(range(0, r.n_epochs - self._seq_len + 1, self._stride))
            if cover_all and local[-1] + self._seq_len < r.n_epochs:
                local.append(r.n_epochs - self._seq_len)
            starts.extend(offset + s for s in local)
            offset += r.n_epochs
        # Global epoch index of each sequence's first epoch, in sequence order.
        self.starts = np.asarray(starts, dtype=np.int64)
        self._first_epoch = np.cumsum([0] + [r.n_epochs for r in kept])[:-1]

    # -- description ---------------------------------------------------------
    def __len__(self):
        return int(self.starts.size)

    def __repr__(self):
        return (
            f"SequenceSet({len(self)} sequences of {self.seq_len} epochs, "
            f"{self.n_epochs} epochs, {len(self.sources)} recordings, "
            f"{len(self.subjects)} subjects, channels={list(self.channels)}, fs={self.fs:g})"
        )

    @property
    def seq_len(self) -> int:
        return self._seq_len

    @property
    def stride(self) -> int:
        return self._stride

    @property
    def fs(self) -> float:
        return self._fs

    @property
    def channels(self) -> tuple:
        return self._channels

    @property
    def n_channels(self) -> int:
        return len(self._channels)

    @property
    def epoch_samples(self) -> int:
        return self._epoch_samples

    @property
    def n_epochs(self) -> int:
        return int(self.y.size)

    @property
    def subjects(self) -> tuple:
        """Sorted unique subject ids."""
        return tuple(sorted(set(self.subject.tolist())))

    def epoch_indices(self, indices=None) -> np.ndarray:
        """Returns `(n, L)` global epoch indices of the given sequences (all if None)."""
        starts = self.starts if indices is None else self.starts[np.asarray(indices, dtype=np.int64)]
        return starts[:, None] + np.arange(self._seq_len)

    # -- access --------------------------------------------------------------
    def get(self, indices):
        """Returns the sequences `indices` as `(x, y)`.

        Returns:
            x: float32 `(n, L, C, S)`; y: int32 `(n, L)`.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        if indices.size and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(
                f"Sequence index out of range for {len(self)} sequences. "
                f"Received indices in [{indices.min()}, {indices.max()}]."
            )
        n, S = self._seq_len, self._epoch_samples
        x = np.empty((indices.size, n, self.n_channels, S), dtype=np.float32)
        for row, start in enumerate(self.starts[indices]):
            r = self.recording_index[start]
            local = int(start - self._first_epoch[r])
            block = self._signals[r][:, local * S: (local + n) * S]
            x[row] = block.reshape(self.n_channels, n, S).transpose(1, 0, 2)
        return x, self.y[self.epoch_indices(indices)]

    def epochs(self, epoch_indices) -> np.ndarray:
        """Returns the epochs with the given global indices, float32 `(n, C, S)`."""
        epoch_indices = np.asarray(epoch_indices, dtype=np.int64).reshape(-1)
        S = self._epoch_samples
        x = np.empty((epoch_indices.size, self.n_channels, S), dtype=np.float32)
        for row, e in enumerate(epoch_indices):
            r = self.recording_index[e]
            local = int(e - self._first_epoch[r])
            x[row] = self._signals[r][:, local * S: (local + 1) * S]
        return x

    def steps_per_epoch(self, batch_size) -> int:
        """Full batches per training epoch, `len(self) // batch_size`."""
        batch_size = _positive_int("batch_size", batch_size)
        steps = len(self) // batch_size
        if steps == 0:
            raise ValueError(
                f"batch_size={batch_size} is larger than the {len(self)} sequences, so a "
                "training epoch has no full batch. Use a smaller batch_size, a smaller "
                "stride, or more recordings."
            )
        return steps

    def epoch_permutation(self, epoch, seed=0) -> np.ndarray:
        """The order of sequences in training epoch `epoch` for `seed`."""
        return np.random.default_rng([int(seed), int(epoch)]).permutation(len(self))

    def _map_gather(self, index_ds, batch_size):
        shape_x = (batch_size, self._seq_len, self.n_channels, self._epoch_samples)
        shape_y = (batch_size, self._seq_len)

        def gather(idx):
            x, y = tf.numpy_function(self.get, [idx], (tf.float32, tf.int32), stateful=False)
            return tf.ensure_shape(x, shape_x), tf.ensure_shape(y, shape_y)

        # A gather takes a few ms against >= 50 ms per train step, so a
        # sequential map with prefetch keeps the step fed; a parallel map
        # makes this TF build log a spurious 'use_unbounded_threadpool' error.
        return index_ds.map(gather).prefetch(tf.data.AUTOTUNE)

    def train_dataset(self, batch_size, seed=0, start_epoch=0, steps=None) -> tf.data.Dataset:
        """Infinite, shuffled `(x, y)` batches for `Model.fit`.

        Training epoch `e` visits the sequences in the order
        `np.random.default_rng([seed, e]).permutation(len(self))`, cut into
        `steps_per_epoch(batch_size)` full batches (the remainder is dropped),
        or only the first `steps` of them when `steps` is given (a fixed
        budget per epoch; each epoch still draws a new permutation).
        The stream starts at epoch `start_epoch`, so a run resumed with
        `fit(..., initial_epoch=k)` on `train_dataset(..., start_epoch=k)`
        sees the batches an uninterrupted run would.

        Returns:
            `tf.data.Dataset` of `x` float32 `(batch_size, L, C, S)` and `y`
            int32 `(batch_size, L)`.
        """
        batch_size = _positive_int("batch_size", batch_size)
        full = self.steps_per_epoch(batch_size)
        steps = full if steps is None else min(_positive_int("steps", steps), full)
        start_epoch = int(start_epoch)
        if start_epoch < 0:
            raise ValueError(f"`start_epoch` must be >= 0. Received: start_epoch={start_epoch}")

        def index_batches():
            epoch = start_epoch
            while True:
                perm = self.epoch_permutation(epoch, seed)
                yield from perm[: steps * batch_size].reshape(steps, batch_size)
                epoch += 1

        index_ds = tf.data.Dataset.from_generator(
            index_batches, output_signature=tf.TensorSpec((batch_size,), tf.int64)
        )
        return self._map_gather(index_ds, batch_size)

    def eval_dataset(self, batch_size) -> tf.data.Dataset:
        """Finite `(x, y)` batches of all sequences in order; keeps the last partial batch."""
        batch_size = _positive_int("batch_size", batch_size)
        index_ds = tf.data.Dataset.from_tensor_slices(np.arange(len(self), dtype=np.int64))
        index_ds = index_ds.batch(batch_size, drop_remainder=False)
        return self._map_gather(index_ds, None)

    # -- from sequence outputs back to epochs --------------------------------
    def epoch_probabilities(self, seq_probs) -> np.ndarray:
        """Averages per-sequence outputs into one row per epoch.

        Args:
            seq_probs: `(len(self), L, K)` outputs in sequence order (e.g.
                `model.predict(s.eval_dataset(64))`).

        Returns:
            float32 `(N, K)`: for each epoch, the mean over every sequence
            that covers it. Rows line up with `self.y` and `self.subject`.
        """
        p = np.asarray(seq_probs)
        if p.ndim != 3 or p.shape[:2] != (len(self), self._seq_len):
            raise ValueError(
                f"`seq_probs` must have shape ({len(self)}, {self._seq_len}, K), one row per "
                f"sequence in order. Received shape {p.shape}."
            )
        total = np.zeros((self.n_epochs, p.shape[2]), dtype=np.float64)
        count = np.zeros(self.n_epochs, dtype=np.int64)
        # Starts are unique, so for a fixed position j the targets starts + j are
        # unique and plain fancy-index accumulation is exact.
        for j in range(self._seq_len):
            total[self.starts + j] += p[:, j]
            count[self.starts + j] += 1
        if (count == 0).any():
            raise DataError(
                f"SequenceSet: {int((count == 0).sum())} epochs are in no sequence, so "
                "their probabilities are undefined; build the set with cover_all=True."
            )
        return (total / count[:, None]).astype(np.float32)
