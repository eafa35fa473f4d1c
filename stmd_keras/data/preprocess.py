"""Preprocessing: channel selection, filtering, resampling, standardisation.

`prepare(recording, config)` is the one entry point; every step is driven by a
`PreprocessConfig`, so a new step is a new config field plus a few lines in
`prepare`.

Filters are zero-phase and run in float32 (scipy.signal's float32 paths are
several times faster than float64 on a whole night):

* notch: `iirnotch` (quality `notch_q`), forward-backward at the recording's
  rate; skipped when the frequency is above the band-pass's upper edge or
  the new Nyquist rate, where the low-pass below removes it anyway.
* upper band edge: a linear-phase Kaiser FIR low-pass used as the
  anti-aliasing filter of `resample_poly`, which compensates its delay; so
  low-pass and resampling are one pass.
* lower band edge: Butterworth high-pass of order `filter_order`,
  forward-backward (`sosfiltfilt`) at the target rate.
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
        bandpass: `(low, high)` band edges in Hz, zero-phase; either may be
            None (no high-pass / no low-pass). None (default): no band-pass.
        notch: mains frequency in Hz to notch out (50 or 60), or None.
        notch_q: quality factor of the notch (bandwidth = notch / notch_q).
        filter_order: order of the Butterworth high-pass (applied forward
            and backward, so the magnitude response is squared).
    """

    fs: float = 100.0
    channels: tuple | None = None
    standardize: bool = True
    bandpass: tuple | None = None
    notch: float | None = None
    notch_q: float = 30.0
    filter_order: int = 2

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
        if self.bandpass is not None:
            low, high = _band(self.bandpass)
            if high is not None and high > fs / 2:
                raise ValueError(
                    f"PreprocessConfig: the band-pass upper edge {high:g} Hz is above the "
                    f"Nyquist rate of fs={fs:g} Hz ({fs / 2:g} Hz)."
                )
            object.__setattr__(self, "bandpass", (low, high))
        if self.notch is not None and not float(self.notch) > 0:
            raise ValueError(f"PreprocessConfig: `notch` must be > 0 Hz. Received: notch={self.notch!r}")
        if isinstance(self.filter_order, bool) or not isinstance(self.filter_order, int) or self.filter_order < 1:
            raise ValueError(
                f"PreprocessConfig: `filter_order` must be a positive int. Received: {self.filter_order!r}"
            )


def _band(bandpass) -> tuple:
    try:
        low, high = bandpass
    except (TypeError, ValueError):
        raise ValueError(
            f"PreprocessConfig: `bandpass` must be (low, high) in Hz. Received: {bandpass!r}"
        ) from None
    low = None if low is None else float(low)
    high = None if high is None else float(high)
    if (low is not None and not low > 0) or (high is not None and not high > 0) or (
        low is not None and high is not None and low >= high
    ):
        raise ValueError(
            f"PreprocessConfig: `bandpass` needs 0 < low < high (Hz). Received: {bandpass!r}"
        )
    return low, high


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


def _ratio(rec: Recording, fs: float) -> fractions.Fraction:
    ratio = fractions.Fraction(fs / rec.fs).limit_denominator(1000)
    achieved = rec.fs * ratio.numerator / ratio.denominator
    if abs(achieved - fs) / fs > _MAX_RATE_ERROR:
        raise DataError(
            f"{rec.source}: cannot resample {rec.fs:g} Hz to {fs:g} Hz with an "
            f"up/down ratio of denominator <= 1000 (best {ratio}, giving "
            f"{achieved:g} Hz). Choose a target rate closer to a simple fraction."
        )
    return ratio


def _lowpass_fir(cutoff, rate, fs_out) -> np.ndarray:
    """Kaiser FIR low-pass (-6 dB at `cutoff`, 60 dB stop band) at `rate` Hz.

    The transition band ends where aliasing after resampling to `fs_out`
    would fold back below `cutoff`, and is at most `cutoff / 2` wide.
    """
    width = min(fs_out - 2 * cutoff, cutoff / 2) if fs_out > 2 * cutoff else cutoff / 4
    numtaps, beta = sps.kaiserord(60.0, max(width, 0.5) / (0.5 * rate))
    numtaps += 1 - numtaps % 2  # odd: a whole-sample delay, exactly compensated
    return sps.firwin(numtaps, cutoff, window=("kaiser", beta), fs=rate).astype(np.float32)


def _resample(x: np.ndarray, rec: Recording, fs: float, cutoff) -> np.ndarray:
    """Resamples `x (C, T)` from `rec.fs` to `fs`, low-passing at `cutoff` Hz (or None)."""
    ratio = _ratio(rec, fs) if abs(rec.fs - fs) > 1e-9 * fs else fractions.Fraction(1)
    up, down = ratio.numerator, ratio.denominator
    if cutoff is None:
        if up == down:
            return x
        y = sps.resample_poly(x, up, down, axis=1)
    else:
        h = _lowpass_fir(cutoff, rec.fs * up, fs)  # resample_poly applies the gain `up`
        if up == down:
            delay = (h.size - 1) // 2
            y = sps.upfirdn(h, x, axis=1)[:, delay: delay + x.shape[1]]
        else:
            y = sps.resample_poly(x, up, down, axis=1, window=h)
    needed = rec.n_epochs * int(round(EPOCH_SEC * fs))
    if y.shape[1] < needed:
        # An inexact (limit_denominator) ratio can leave the last epoch a few
        # samples short; repeat the edge rather than dropping the epoch.
        y = np.pad(y, ((0, 0), (0, needed - y.shape[1])), mode="edge")
    return y


def _filter(x: np.ndarray, rec: Recording, config: PreprocessConfig) -> np.ndarray:
    """Notch, low-pass + resample, high-pass (see the module docstring)."""
    low, high = config.bandpass if config.bandpass is not None else (None, None)
    x = np.asarray(x, dtype=np.float32)
    if config.notch is not None:
        notch = float(config.notch)
        if notch < min(high or np.inf, config.fs / 2, rec.fs / 2):
            b, a = sps.iirnotch(notch, config.notch_q, fs=rec.fs)
            x = sps.sosfiltfilt(sps.tf2sos(b, a).astype(np.float32), x, axis=1)
    if high is not None and high >= rec.fs / 2:
        high = None  # nothing above the recording's own Nyquist rate to remove
    x = _resample(x, rec, config.fs, high)
    if low is not None:
        sos = sps.butter(config.filter_order, low, btype="highpass", fs=config.fs, output="sos")
        x = sps.sosfiltfilt(sos.astype(np.float32), x, axis=1)
    return x


def prepare(recording: Recording, config: PreprocessConfig | float | None = None, **overrides) -> Recording:
    """Returns the recording as model input: selected, resampled, standardised.

    Steps, in order: keep `config.channels` (`Recording.select`), notch,
    low-pass and resample to `config.fs` with `scipy.signal.resample_poly`
    when the rate differs, high-pass (see the module docstring), drop the
    unlabelled tail after the last epoch, then z-score each channel over the
    labelled night (mean 0, std 1).

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
    if config.standardize:
        # Check the input, not only the output: resampling rings at the ends
        # of a constant channel, which then no longer looks flat.
        raw = rec.signals[:, : rec.n_epochs * rec.epoch_samples]
        _refuse_flat(rec, raw.max(axis=1) - raw.min(axis=1) < FLAT_STD)
    x = _filter(rec.signals, rec, config)
    n_labelled = rec.n_epochs * int(round(EPOCH_SEC * config.fs))
    x = np.asarray(x[:, :n_labelled], dtype=np.float32)
    if config.standardize:
        # float64 statistics over float32 samples: accurate without a float64 copy.
        mean = x.mean(axis=1, keepdims=True, dtype=np.float64)
        std = np.sqrt(np.mean(np.square(x - mean.astype(np.float32)), axis=1, keepdims=True, dtype=np.float64))
        _refuse_flat(rec, std[:, 0] < FLAT_STD)
        x = (x - mean.astype(np.float32)) / std.astype(np.float32)
    return dataclasses.replace(rec, signals=x, fs=config.fs)


def _refuse_flat(rec: Recording, flat) -> None:
    """Raises DataError naming the source and the channels where `flat` is True."""
    if np.any(flat):
        names = [c for c, f in zip(rec.channels, flat) if f]
        raise DataError(
            f"{rec.source} (subject {rec.subject}): channel(s) {names} are flat "
            f"(std < {FLAT_STD:g} µV over the labelled night) and cannot be "
            "standardised. Drop them with `channels=` or fix the recording."
        )


def prepare_all(recordings, config: PreprocessConfig | float | None = None, **overrides) -> list:
    """Applies `prepare` to each recording; returns a list of `Recording`.

    Parameters are those of `prepare`; the same settings apply to every
    recording, so the results share one rate and one channel order.
    """
    config = _as_config(config, overrides)
    return [prepare(r, config) for r in recordings]
