"""The `Recording` type every data source returns, and the project's errors."""

from __future__ import annotations

import dataclasses

import numpy as np

STAGES = ("W", "N1", "N2", "N3", "REM")
"""AASM stage names; a label is the index into this tuple (0 W ... 4 REM)."""

EPOCH_SEC = 30.0


class DataError(ValueError):
    """Raised for input data that cannot be used as it is.

    The message always names the offending file (or source) and the problem.
    """


@dataclasses.dataclass
class Recording:
    """One night of multi-channel PSG with one AASM label per 30-s epoch.

    Epoch `k` covers samples `[k * epoch_samples, (k + 1) * epoch_samples)` of
    `signals`, counted from the first sample.

    Args:
        subject: subject identifier (string), used for subject-wise splits.
        signals: float32 array `(C, T)` in microvolts.
        fs: sampling rate in Hz (the same for all channels).
        channels: the `C` channel names, in the order of `signals`.
        labels: int array `(n_epochs,)`, 0 W, 1 N1, 2 N2, 3 N3, 4 REM.
        source: where the data came from (file path or "synthetic"); used in
            error messages.
    """

    subject: str
    signals: np.ndarray
    fs: float
    channels: tuple
    labels: np.ndarray
    source: str = "<memory>"

    def __post_init__(self):
        self.channels = tuple(str(c) for c in self.channels)
        self.signals = np.asarray(self.signals, dtype=np.float32)
        self.labels = np.asarray(self.labels)
        where = f"{self.source} (subject {self.subject})"
        if self.signals.ndim != 2:
            raise DataError(
                f"{where}: signals must be 2-D (channels, samples). "
                f"Received shape {self.signals.shape}."
            )
        if len(self.channels) != self.signals.shape[0]:
            raise DataError(
                f"{where}: {len(self.channels)} channel names for "
                f"{self.signals.shape[0]} signal rows."
            )
        if len(set(self.channels)) != len(self.channels):
            raise DataError(f"{where}: duplicate channel names {self.channels}.")
        if not self.fs > 0:
            raise DataError(f"{where}: sampling rate must be > 0, got {self.fs}.")
        if self.labels.ndim != 1 or not np.issubdtype(self.labels.dtype, np.integer):
            raise DataError(
                f"{where}: labels must be a 1-D integer array. Received "
                f"dtype {self.labels.dtype}, shape {self.labels.shape}."
            )
        if self.labels.size and (self.labels.min() < 0 or self.labels.max() >= len(STAGES)):
            bad = sorted(set(self.labels[(self.labels < 0) | (self.labels >= len(STAGES))].tolist()))
            raise DataError(f"{where}: unknown stage codes {bad[:10]} (expected 0..4).")
        if self.labels.size == 0:
            raise DataError(f"{where}: recording has no labelled epochs.")
        needed = self.labels.size * self.epoch_samples
        if needed > self.signals.shape[1]:
            raise DataError(
                f"{where}: {self.labels.size} labels need {needed} samples at "
                f"{self.fs:g} Hz but the signals have only {self.signals.shape[1]}."
            )
        bad_rows = ~np.isfinite(self.signals).all(axis=1)
        if bad_rows.any():
            names = [c for c, b in zip(self.channels, bad_rows) if b]
            raise DataError(f"{where}: NaN or infinite samples in channel(s) {names}.")
        self.labels = self.labels.astype(np.int64)

    @property
    def epoch_samples(self) -> int:
        """Samples per 30-s epoch (must be an integer)."""
        n = EPOCH_SEC * self.fs
        if abs(n - round(n)) > 1e-6:
            raise DataError(
                f"{self.source}: a 30-s epoch at {self.fs:g} Hz is not a whole "
                "number of samples; resample first."
            )
        return int(round(n))

    @property
    def n_epochs(self) -> int:
        return int(self.labels.size)

    def epochs(self) -> np.ndarray:
        """Returns the labelled epochs as a float32 array `(n_epochs, C, epoch_samples)`."""
        n, s = self.n_epochs, self.epoch_samples
        x = self.signals[:, : n * s].reshape(len(self.channels), n, s)
        return np.ascontiguousarray(x.transpose(1, 0, 2))

    def select(self, channels) -> "Recording":
        """Returns a copy with only `channels`, in that order.

        Raises `DataError` naming the missing channels and listing the ones the
        recording has.
        """
        channels = tuple(channels)
        missing = [c for c in channels if c not in self.channels]
        if missing:
            raise DataError(
                f"{self.source}: missing channel(s) {missing}; the recording "
                f"has {list(self.channels)}."
            )
        idx = [self.channels.index(c) for c in channels]
        return dataclasses.replace(self, signals=self.signals[idx], channels=channels)
