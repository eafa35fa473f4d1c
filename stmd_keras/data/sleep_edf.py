"""Sleep-EDF Expanded, sleep-cassette (SC) study: PSG + hypnogram -> `Recording`.

Files come in pairs `SC4ssNE0-PSG.edf` / `SC4ssNEx-Hypnogram.edf` (`ss` the
subject 00-82, `N` the night 1 or 2; the letter `x` after `E` differs between
the two files, so they are paired by the 6-character prefix `SC4ssN`).

How a night becomes a `Recording` (the customary protocol of DeepSleepNet and
its successors):

* The hypnogram's annotations ("Sleep stage W/1/2/3/4/R/?", "Movement time")
  are expanded to one label per 30-s epoch, starting at the first
  annotation's onset measured from the PSG's start (so a hypnogram that starts
  later, or earlier, than the PSG is aligned by time). R&K stages map to AASM:
  W->W, 1->N1, 2->N2, 3 and 4->N3, R->REM.
* Unscored time ("Sleep stage ?", "Movement time", or a gap between
  annotations) is dropped wherever it is, the leading and trailing parts as
  well as interior epochs: those epochs' samples are cut out of the signals,
  so labels and signals always align, but the epochs on either side of an
  interior cut become neighbours in the `Recording`. Real SC nights have few
  such interior epochs; the full-night tail of "?" is the bulk of them.
* With `trim_wake_min=30`, only 30 min of time before the first and after the
  last sleep epoch (N1-REM) is kept. A night, or the part of it the PSG
  covers, without any sleep epoch is kept whole.
* The hypnogram's trailing "?" often runs past the end of the PSG; that is
  not an error. A *scored* epoch past the end is: `DataError`, or, with
  `allow_truncated_psg=True` (for excerpts), a warning and only the covered
  epochs.
* A directory scan (`find_pairs`) raises `DataError` for a PSG without a
  hypnogram or the reverse, rather than silently loading fewer nights.

The subject id of both nights of subject `ss` is "SC4ss" (e.g. "SC400"), so a
subject-wise split never puts one person's two nights on both sides.

Example:

>>> rec = load_night("SC4001E0-PSG.edf", "SC4001EC-Hypnogram.edf")
>>> recs = load_sleep_edf("sleep-cassette/", subset="sleep-edf-20")  # 39 nights
"""

from __future__ import annotations

import fractions
import math
import os
import re
import warnings

import numpy as np
from scipy import signal as sps

from stmd_keras.data.edf import read_edf, to_microvolts
from stmd_keras.data.recording import EPOCH_SEC, DataError, Recording

DEFAULT_CHANNELS = ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal")
"""The three 100-Hz electrophysiology channels of the SC recordings."""

UNSCORED = -1
"""Label of an epoch without a usable stage (before it is dropped)."""

STAGE_CODES = {
    "Sleep stage W": 0,
    "Sleep stage 1": 1,
    "Sleep stage 2": 2,
    "Sleep stage 3": 3,  # R&K S3 and S4 are both AASM N3
    "Sleep stage 4": 3,
    "Sleep stage R": 4,
    "Sleep stage ?": UNSCORED,
    "Movement time": UNSCORED,
}

SUBSETS = {"sleep-edf-20": tuple(range(20)), "sleep-edf-78": None}
"""Subject numbers of the usual subsets (None: every subject found). Sleep-EDF-20
is subjects 0-19, 39 nights (subject 13 has one night); Sleep-EDF-78 is the
whole SC study, 78 subjects and 153 nights."""

_FILE_NAME = re.compile(r"^SC4(\d\d)([12])E.-(PSG|Hypnogram)\.edf$")
_PREFIX = re.compile(r"^SC4\d\d[12]")
# Onsets in EDF+ are exact to 100 ns; allow for float round-off only.
_TOLERANCE_S = 1e-3


def find_pairs(data_dir) -> list:
    """Pairs the PSG and hypnogram files of `data_dir` by their `SC4ssN` prefix.

    Files that do not follow the SC naming are ignored.

    Returns
    -------
    list of (psg_path, hypnogram_path, subject, night)
        Sorted by subject and night; `subject` (0-82) and `night` (1, 2) are ints.

    Raises
    ------
    DataError
        `data_dir` is not a directory, holds no pair, or holds a PSG without
        its hypnogram (or the reverse), or two files of one kind for a night.
    """
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: not a directory.")
    found = {}
    for name in sorted(os.listdir(data_dir)):
        m = _FILE_NAME.match(name)
        if m:
            key = (int(m.group(1)), int(m.group(2)))
            kind = found.setdefault(key, {"PSG": [], "Hypnogram": []})[m.group(3)]
            kind.append(os.path.join(data_dir, name))
    problems = []
    for files in found.values():
        for kind, other in (("PSG", "Hypnogram"), ("Hypnogram", "PSG")):
            if len(files[kind]) > 1:
                problems.append(f"several {kind} files for one night: {files[kind]}")
            elif files[kind] and not files[other]:
                problems.append(f"{files[kind][0]} has no matching {other} file")
    if problems:
        raise DataError(f"{data_dir}: " + "; ".join(problems) + ".")
    if not found:
        raise DataError(f"{data_dir}: no SC4ssNE0-PSG.edf / SC4ssNEx-Hypnogram.edf files.")
    return [(f["PSG"][0], f["Hypnogram"][0], s, n) for (s, n), f in sorted(found.items())]


def read_hypnogram(path, start=None) -> tuple:
    """Expands a Sleep-EDF hypnogram to one label per 30-s epoch.

    Parameters
    ----------
    path : str or path-like
        An EDF+ hypnogram (annotation-only file).
    start : datetime or None
        Time origin of the returned onset, e.g. the PSG's start; None uses
        the hypnogram file's own start.

    Returns
    -------
    onset : float
        Seconds from `start` to the first epoch (the first annotation).
    labels : int64 array
        0 W, 1 N1, 2 N2, 3 N3, 4 REM; `UNSCORED` (-1) for "?", movement
        time and gaps.

    Raises
    ------
    DataError
        Unknown annotation text, a duration that is missing or not a
        multiple of 30 s, an onset off the 30-s grid, conflicting overlaps,
        or no annotation at all; the message names the file and the onset.
    """
    data = read_edf(path, channels=())
    path = data.path
    if not data.annotations:
        raise DataError(f"{path}: no annotations; is this a Sleep-EDF hypnogram?")
    first = min(onset for onset, _, _ in data.annotations)
    labels = {}
    for onset, duration, text in data.annotations:
        where = f"{path}: annotation {text!r} at onset {onset:g} s"
        if text not in STAGE_CODES:
            raise DataError(f"{where}: unknown text; expected one of {sorted(STAGE_CODES)}.")
        for name, seconds in (("onset", onset - first), ("duration", duration)):
            if seconds is None or abs(seconds / EPOCH_SEC - round(seconds / EPOCH_SEC)) > _TOLERANCE_S:
                raise DataError(f"{where}: {name} {seconds} s is not a multiple of {EPOCH_SEC:g} s.")
        k0 = round((onset - first) / EPOCH_SEC)
        for k in range(k0, k0 + round(duration / EPOCH_SEC)):
            if labels.get(k, STAGE_CODES[text]) != STAGE_CODES[text]:
                raise DataError(f"{where}: overlaps a different stage at epoch {k}.")
            labels[k] = STAGE_CODES[text]
    out = np.full(max(labels, default=-1) + 1, UNSCORED, dtype=np.int64)
    out[list(labels)] = list(labels.values())
    if start is not None and data.start is not None:
        first += (data.start - start).total_seconds()
    return float(first), out


def _check_pair(psg_path, hypnogram_path):
    prefixes = [_PREFIX.match(os.path.basename(p)) for p in (psg_path, hypnogram_path)]
    if all(prefixes) and prefixes[0].group() != prefixes[1].group():
        raise DataError(
            f"{psg_path} and {hypnogram_path} are not one night: their "
            f"SC4ssN prefixes differ ({prefixes[0].group()} vs {prefixes[1].group()})."
        )


def _epoch_samples(fs) -> int:
    n = EPOCH_SEC * fs
    if not fs > 0 or abs(n - round(n)) > 1e-6:
        raise ValueError(f"`fs` must be > 0 with a whole number of samples per 30 s. Received: fs={fs!r}")
    return int(round(n))


def _check_native_rate(path, rate) -> None:
    """DataError when a file's own `rate` has no whole number of samples per 30 s."""
    n = EPOCH_SEC * rate
    if rate > 0 and abs(n - round(n)) > 1e-6:
        raise DataError(
            f"{path}: sampled at {rate:g} Hz, where a {EPOCH_SEC:g}-s epoch is not a whole "
            f"number of samples ({n:g}); pass fs= (e.g. fs=100) to resample it on loading."
        )


def _signals_at(psg, channels, fs) -> tuple:
    """Returns `(signals (C, T) in µV, rate)`, every channel at one rate.

    The rate is `fs`, or the highest rate among `channels` when `fs` is None;
    other channels are resampled with `scipy.signal.resample_poly` (the SC
    "EMG submental" is a 1-Hz envelope: upsampled, it is a smooth curve).
    """
    rate = max(psg.fs[c] for c in channels) if fs is None else float(fs)
    if fs is None:
        _check_native_rate(psg.path, rate)
    rows = []
    for c in channels:
        x = to_microvolts(psg.signals[c], psg.units[c], f"{psg.path}, channel {c!r}")
        if psg.fs[c] != rate:
            ratio = fractions.Fraction(rate / psg.fs[c]).limit_denominator(1000)
            if abs(psg.fs[c] * ratio - rate) > 1e-3 * rate:
                raise DataError(
                    f"{psg.path}: cannot resample channel {c!r} from {psg.fs[c]:g} Hz "
                    f"to {rate:g} Hz with a simple up/down ratio; choose another `fs`."
                )
            x = sps.resample_poly(x, ratio.numerator, ratio.denominator)
        rows.append(x.astype(np.float32))  # float32 before stacking: half the memory traffic
    n = min(len(x) for x in rows)
    return np.stack([x[:n] for x in rows]), rate


def _wake_window(labels, trim_wake_min) -> np.ndarray:
    """Boolean mask: the epochs within `trim_wake_min` of the sleep period."""
    keep = np.ones(labels.size, dtype=bool)
    sleep = np.flatnonzero(labels >= 1)
    if trim_wake_min is None or sleep.size == 0:
        return keep
    margin = int(trim_wake_min * 60 // EPOCH_SEC)
    keep[: max(0, sleep[0] - margin)] = False
    keep[sleep[-1] + margin + 1:] = False
    return keep


def load_night(psg_path, hypnogram_path, channels=DEFAULT_CHANNELS, trim_wake_min=30,
               allow_truncated_psg=False, fs=None) -> Recording:
    """Loads one SC night as a `Recording` (see the module docstring for the rules).

    Parameters
    ----------
    psg_path, hypnogram_path : str or path-like
        The two files of one night (same `SC4ssN` prefix).
    channels : sequence of str
        PSG signal labels to load, in this order (default the three 100-Hz
        channels "EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal").
    trim_wake_min : float or None
        Minutes of time kept before the first and after the last sleep epoch
        (default 30); None keeps the whole night.
    allow_truncated_psg : bool
        If True, a hypnogram scoring past the end of the PSG is cut to the
        PSG with a warning instead of raising (for excerpts of a night).
    fs : float or None
        Common sampling rate; None means the highest rate among `channels`.
        Channels at another rate are resampled.

    Returns
    -------
    Recording
        Subject "SC4ss", float32 signals in µV, source `psg_path`.

    Raises
    ------
    DataError
        Mismatched or unreadable files, a missing channel, a non-voltage
        channel, a hypnogram longer than the PSG, or no scored epoch left.
    """
    psg_path, hypnogram_path = os.fspath(psg_path), os.fspath(hypnogram_path)
    if isinstance(channels, str):
        channels = (channels,)
    channels = tuple(channels)
    if not channels:
        raise ValueError("`channels` is empty; pass at least one PSG signal label.")
    if trim_wake_min is not None and not trim_wake_min >= 0:
        raise ValueError(f"`trim_wake_min` must be >= 0 or None. Received: trim_wake_min={trim_wake_min!r}")
    _check_pair(psg_path, hypnogram_path)

    psg = read_edf(psg_path, channels=channels)
    signals, rate = _signals_at(psg, channels, fs)
    step = _epoch_samples(rate)
    onset, labels = read_hypnogram(hypnogram_path, start=psg.start)
    if onset < 0:  # the hypnogram starts before the PSG: drop what has no signal
        skip = math.ceil(-onset / EPOCH_SEC - _TOLERANCE_S)
        onset, labels = onset + skip * EPOCH_SEC, labels[skip:]
    first = int(round(onset * rate))
    covered = max(0, (signals.shape[1] - first) // step)
    scored = np.flatnonzero(labels != UNSCORED)
    if scored.size and scored[-1] >= covered:
        message = (
            f"{hypnogram_path} scores epochs up to {onset + (scored[-1] + 1) * EPOCH_SEC:g} s "
            f"({scored[-1] + 1} epochs from {onset:g} s) but {psg_path} has only "
            f"{signals.shape[1] / rate:g} s of signal ({covered} epochs)"
        )
        if not allow_truncated_psg:
            raise DataError(f"{message}. Pass allow_truncated_psg=True to keep the covered epochs.")
        warnings.warn(f"{message}; keeping the {covered} covered epochs.", stacklevel=2)
    labels = labels[:covered]
    keep = _wake_window(labels, trim_wake_min) & (labels != UNSCORED)
    if not keep.any():
        raise DataError(f"{psg_path} + {hypnogram_path}: no scored epoch within the PSG's signal.")

    epochs = signals[:, first: first + covered * step].reshape(len(channels), covered, step)
    m = _PREFIX.match(os.path.basename(psg_path))
    return Recording(
        subject=m.group()[:5] if m else os.path.basename(psg_path).split("-")[0],
        signals=epochs[:, keep].reshape(len(channels), -1),
        fs=rate,
        channels=channels,
        labels=labels[keep],
        source=psg_path,
    )


def load_sleep_edf(data_dir, subjects=None, subset=None, **kwargs) -> list:
    """Loads the SC nights of `data_dir` as a list of `Recording`.

    Parameters
    ----------
    data_dir : str or path-like
        A directory with the `SC4*-PSG.edf` and `SC4*-Hypnogram.edf` files.
    subjects : iterable of int or None
        Subject numbers (0-82) to load; each must be present.
    subset : {"sleep-edf-20", "sleep-edf-78"} or None
        "sleep-edf-20": subjects 0-19 (39 nights), all must be present;
        "sleep-edf-78": every subject found (warns unless 78 are found).
        Give `subjects` or `subset`, not both; neither loads every night.
    **kwargs
        Passed to `load_night` (channels, trim_wake_min, fs, ...).

    Returns
    -------
    list of Recording
        Ordered by subject and night.
    """
    if subjects is not None and subset is not None:
        raise ValueError("Give `subjects` or `subset`, not both.")
    if subset is not None:
        if subset not in SUBSETS:
            raise ValueError(f"Unknown subset {subset!r}; expected one of {sorted(SUBSETS)}.")
        subjects = SUBSETS[subset]
    pairs = find_pairs(data_dir)
    found = {s for _, _, s, _ in pairs}
    if subjects is not None:
        if isinstance(subjects, (str, int, np.integer)):
            raise ValueError(f"`subjects` must be a collection of ints. Received: {subjects!r}")
        subjects = {int(s) for s in subjects}
        missing = sorted(subjects - found)
        if missing:
            raise DataError(f"{os.fspath(data_dir)}: no files for subject(s) {missing}.")
        pairs = [p for p in pairs if p[2] in subjects]
    elif subset == "sleep-edf-78" and len(found) != 78:
        warnings.warn(
            f"{os.fspath(data_dir)}: found {len(found)} subjects, not the 78 of Sleep-EDF-78.",
            stacklevel=2,
        )
    return [load_night(psg, hyp, **kwargs) for psg, hyp, _, _ in pairs]
