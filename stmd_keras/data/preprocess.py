"""Preprocessing: channel selection, resampling and per-night standardisation.

`prepare(recording, config)` is the one entry point; every step is driven by a
`PreprocessConfig`, so a new step (notch, band-pass, ...) is a new config field
plus a few lines in `prepare`.
"""

from __future__ import annotations

import dataclasses
import fractions

import numpy as np
from scipy import signal as sps

from stmd_keras.data.recording import EPOCH_SEC, DataError, Recording

FLAT_STD = 1e-6
"""A channel whose standard deviation (µV) is below this is considered flat."""

# Largest relative error accepted between the requested rate and the rate a
# rational up/down factor with denominator <= 1000 actually achieves.
_MAX_RATE_ERROR = 1e-3


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    """How a `Recording` is turned into model input.

    Args:
        fs: target sampling rate in Hz (default 100). A 30-s epoch must be a
            whole number of samples at this rate.
        channels: channel names to keep, in this order; `None` keeps all
            channels in the recording's order.
        standardize: if True (default), z-score each channel over the
            labelled part of the night.
    """

    fs: float = 100.0
    channels: tuple | None = None
    standardize: bool = True

    def __post_init__(self):
        if isinstance(self.channels, str):
            # A bare string would otherwise be split into one-letter channels.
            object.__setattr__(self, "channels", (self.channels,))
        elif self.channels is not None:
            object.__setattr__(self, "channels", tuple(str(c) for c in self.channels))
            if not self.channels:
                raise ValueError(
                    "PreprocessConfig: `channels` is empty. Pass at least one "
                    "channel name, or None to keep all channels."
                )
        try:
            fs = float(self.fs)
        except (TypeError, ValueError):
            raise ValueError(f"PreprocessConfig: `fs` must be a number. Received: fs={self.fs!r}")
        if not np.isfinite(fs) or fs <= 0:
            raise ValueError(f"PreprocessConfig: `fs` must be > 0. Received: fs={self.fs!r}")
        n = EPOCH_SEC * fs
        if abs(n - round(n)) > 1e-6:
            raise ValueError(
                f"PreprocessConfig: a {EPOCH_SEC:g}-s epoch at fs={fs:g} Hz is not a "
                "whole number of samples; choose e.g. fs=100."
            )
        object.__setattr__(self, "fs", fs)


def _as_config(config, overrides) -> PreprocessConfig:
    if config is None:
        config = PreprocessConfig()
    elif isinstance(config, (int, float, np.integer, np.floating)) and not isinstance(config, bool):
        config = PreprocessConfig(fs=float(config))
    elif not isinstance(config, PreprocessConfig):
        raise TypeError(
            "`config` must be a PreprocessConfig, a sampling rate in Hz, or None. "
            f"Received: {type(config).__name__}"
        )
    return dataclasses.replace(config, **overrides) if overrides else config


def _resample(rec: Recording, fs: float) -> np.ndarray:
    ratio = fractions.Fraction(fs / rec.fs).limit_denominator(1000)
    achieved = rec.fs * ratio.numerator / ratio.denominator
    if abs(achieved - fs) / fs > _MAX_RATE_ERROR:
        raise DataError(
            f"{rec.source}: cannot resample {rec.fs:g} Hz to {fs:g} Hz with an "
            f"up/down ratio of denominator <= 1000 (best {ratio}, giving "
            f"{achieved:g} Hz). Choose a target rate closer to a simple fraction."
        )
    x = sps.resample_poly(rec.signals, ratio.numerator, ratio.denominator, axis=1)
    needed = rec.n_epochs * int(round(EPOCH_SEC * fs))
    if x.shape[1] < needed:
        # An inexact (limit_denominator) ratio can leave the last epoch a few
        # samples short; repeat the edge rather than dropping the epoch.
        x = np.pad(x, ((0, 0), (0, needed - x.shape[1])), mode="edge")
    return x


def prepare(recording: Recording, config: PreprocessConfig | float | None = None, **overrides) -> Recording:
    """Returns the recording as model input: selected, resampled, standardised.

    Steps, in order: keep `config.channels` (`Recording.select`), resample to
    `config.fs` with `scipy.signal.resample_poly` when the rate differs, drop
    the unlabelled tail after the last epoch, then z-score each channel over
    the labelled night (mean 0, std 1).

    Parameters
    ----------
    recording : Recording
    config : PreprocessConfig, float or None
        The settings; a number is shorthand for `PreprocessConfig(fs=number)`,
        None means `PreprocessConfig()`.
    **overrides
        Fields of `PreprocessConfig` that replace those of `config`,
        e.g. ``prepare(rec, fs=100, channels=["F3-A2", "C3-A2"])``.

    Returns
    -------
    Recording
        A new recording with float32 signals at `config.fs` Hz.

    Raises
    ------
    DataError
        A requested channel is missing, or a channel is flat (standard
        deviation below 1e-6 µV) and cannot be standardised.
    """
    config = _as_config(config, overrides)
    rec = recording
    if config.channels is not None:
        rec = rec.select(config.channels)
    x = rec.signals
    if abs(rec.fs - config.fs) > 1e-9 * config.fs:
        x = _resample(rec, config.fs)
    n_labelled = rec.n_epochs * int(round(EPOCH_SEC * config.fs))
    x = np.asarray(x[:, :n_labelled], dtype=np.float64)
    if config.standardize:
        mean = x.mean(axis=1, keepdims=True)
        std = x.std(axis=1, keepdims=True)
        flat = std[:, 0] < FLAT_STD
        if flat.any():
            names = [c for c, f in zip(rec.channels, flat) if f]
            raise DataError(
                f"{rec.source} (subject {rec.subject}): channel(s) {names} are flat "
                f"(std < {FLAT_STD:g} µV over the labelled night) and cannot be "
                "standardised. Drop them with `channels=` or fix the recording."
            )
        x = (x - mean) / std
    return dataclasses.replace(rec, signals=x.astype(np.float32), fs=config.fs)


def prepare_all(recordings, config: PreprocessConfig | float | None = None, **overrides) -> list:
    """Applies `prepare` to each recording; returns a list of `Recording`.

    Parameters are those of `prepare`; the same settings apply to every
    recording, so the results share one rate and one channel order.
    """
    config = _as_config(config, overrides)
    return [prepare(r, config) for r in recordings]
