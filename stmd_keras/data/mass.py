"""MASS, subset SS3 (Montreal Archive of Sleep Studies): PSG + Base -> `Recording`.

MASS needs a registration, so this module only loads files already on disk.
Each SS3 subject `NN` (01-64) has two EDF files whose names contain a space:
`01-03-00NN PSG.edf` (the signals) and `01-03-00NN Base.edf` (EDF+
annotations only: the AASM scoring). They are paired by the `01-03-00NN`
prefix.

How a night becomes a `Recording`:

* Every "Sleep stage W/1/2/3/R/?" annotation is one 30-s epoch (SS3 is
  scored with AASM, so there is no stage 4). Its onset is measured from the
  PSG's start (the Base file's own start is taken into account when the two
  differ) and need not lie on a 30-s grid from the PSG's first sample: epoch
  `k` is the samples `[round(onset_k * fs), round(onset_k * fs) + 30 * fs)`.
* The `Recording`'s signals are the exact 30-s windows of the scored epochs,
  concatenated in onset order, so labels and samples align by construction.
  "Sleep stage ?" epochs are dropped (their windows are left out), and so is
  unscored time between annotations: the epochs on either side of a "?" or of
  a gap become neighbours in the `Recording`, as in `sleep_edf`.
* Annotations that do not start with "Sleep stage" (arousals, events) are
  ignored; an unknown "Sleep stage ..." text, a duration other than 30 s, or
  overlapping stage epochs raise `DataError` naming the file and the onset.
* A *scored* epoch outside the PSG's signal is a `DataError` naming both files
  and both lengths; a trailing "?" past the end is not an error.

Channels are asked for by canonical name ("F3", "C3", "O1", "LOC", "EMG",
...) and matched to the file's labels through `CHANNEL_ALIASES`, never by
position. SS3 EEG is referenced either to linked ears through a computed
average ("-CLE") or to linked ears directly ("-LER") depending on the subject;
both map to the same canonical name, so `Recording.channels` does not say
which reference a subject used (`match_channels` does). All channels are
brought to one rate (the EEG rate, or `fs`) with `scipy.signal.resample_poly`
and converted to µV.

Example:

>>> rec = load_subject("SS3/01-03-0001 PSG.edf", "SS3/01-03-0001 Base.edf")
>>> recs = load_mass("SS3/", subjects=[1, 2], channels=("C4", "LOC", "EMG"))
"""

from __future__ import annotations

import os
import re

import numpy as np

from stmd_keras.data.edf import read_edf
from stmd_keras.data.recording import EPOCH_SEC, DataError, Recording
# Private helpers of the Sleep-EDF loader (one rate for all channels in µV; a
# checked samples-per-epoch), imported rather than copied.
from stmd_keras.data.sleep_edf import _check_native_rate, _epoch_samples, _signals_at

_EEG_ELECTRODES = ("Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T3", "C3", "Cz",
                   "C4", "T4", "T5", "P3", "Pz", "P4", "T6", "O1", "Oz", "O2")

CHANNEL_ALIASES = {
    **{e: (f"EEG {e}-CLE", f"EEG {e}-LER") for e in _EEG_ELECTRODES},
    "LOC": ("EOG Left Horiz",),
    "ROC": ("EOG Right Horiz",),
    "EMG": ("EMG Chin1", "EMG Chin"),
    "ECG": ("ECG I", "ECG ECGI"),
}
"""Canonical channel name -> the file labels accepted for it. A file must hold
exactly one of them (two would be an ambiguous choice, e.g. of reference)."""

EEG_CHANNELS = frozenset(_EEG_ELECTRODES)

DEFAULT_CHANNELS = ("F3", "C3", "O1", "F4", "C4", "O2", "LOC", "ROC", "EMG")

STAGE_CODES = {
    "Sleep stage W": 0,
    "Sleep stage 1": 1,
    "Sleep stage 2": 2,
    "Sleep stage 3": 3,
    "Sleep stage R": 4,
    "Sleep stage ?": None,  # unscored: the epoch is dropped
}

_FILE_NAME = re.compile(r"^01-03-(\d{4}) (PSG|Base)\.edf$")
_PREFIX = re.compile(r"^\d\d-\d\d-\d{4}(?= )")
# EDF+ onsets are exact to 100 ns; allow for float round-off only.
_TOLERANCE_S = 1e-3


def subject_id(number) -> str:
    """Returns the subject id of SS3 subject `number`, e.g. 1 -> "MASS3-0001"."""
    return f"MASS3-{int(number):04d}"


def find_subjects(data_dir) -> list:
    """Pairs the `01-03-00NN PSG.edf` and `01-03-00NN Base.edf` files of `data_dir`.

    Files that do not follow the SS3 naming are ignored.

    Returns
    -------
    list of (psg_path, base_path, subject_id)
        Sorted by subject; `subject_id` is e.g. "MASS3-0001".

    Raises
    ------
    DataError
        `data_dir` is not a directory, holds no pair, or holds a PSG without
        its Base file or the reverse (all such orphans are named).
    """
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: not a directory.")
    found = {}
    for name in sorted(os.listdir(data_dir)):
        m = _FILE_NAME.match(name)
        if m:
            found.setdefault(int(m.group(1)), {})[m.group(2)] = os.path.join(data_dir, name)
    orphans = [
        f"{files[kind]} has no matching {other} file"
        for files in found.values()
        for kind, other in (("PSG", "Base"), ("Base", "PSG"))
        if kind in files and other not in files
    ]
    if orphans:
        raise DataError(f"{data_dir}: " + "; ".join(orphans) + ".")
    if not found:
        raise DataError(f"{data_dir}: no '01-03-00NN PSG.edf' / '01-03-00NN Base.edf' files.")
    return [(f["PSG"], f["Base"], subject_id(n)) for n, f in sorted(found.items())]


def match_channels(labels, channels, where="") -> tuple:
    """Returns the file label of each canonical name in `channels`, in order.

    Parameters
    ----------
    labels : sequence of str
        The signal labels of a PSG file.
    channels : sequence of str
        Canonical names, keys of `CHANNEL_ALIASES`.
    where : str
        The file, for error messages.

    Raises
    ------
    ValueError
        A name in `channels` is not a canonical name.
    DataError
        The file has none of the labels accepted for a channel, or more than
        one; the message names the file, the channel, the accepted labels and
        the labels the file has.
    """
    unknown = [c for c in channels if c not in CHANNEL_ALIASES]
    if unknown:
        raise ValueError(
            f"Unknown MASS channel name(s) {unknown}; expected canonical names from "
            f"{list(CHANNEL_ALIASES)}."
        )
    stripped = {label.strip(): label for label in labels}
    out = []
    for c in channels:
        present = [stripped[a] for a in CHANNEL_ALIASES[c] if a in stripped]
        if len(present) != 1:
            problem = "has no signal" if not present else f"has several signals {present}"
            raise DataError(
                f"{where}: {problem} for channel {c!r} (accepted labels "
                f"{list(CHANNEL_ALIASES[c])}); the file has {list(labels)}."
            )
        out.append(present[0])
    return tuple(out)


def read_stages(path, start=None) -> tuple:
    """Reads the 30-s stage epochs of a MASS Base file.

    Parameters
    ----------
    path : str or path-like
        An EDF+ annotation file (`01-03-00NN Base.edf`).
    start : datetime or None
        Time origin of the returned onsets, e.g. the PSG's start; None uses
        the Base file's own start.

    Returns
    -------
    onsets : float64 array
        Seconds from `start` to each epoch, increasing; "?" epochs included.
    labels : int64 array
        0 W, 1 N1, 2 N2, 3 N3, 4 REM, or -1 for "?".

    Raises
    ------
    DataError
        An unknown "Sleep stage" text, a duration other than 30 s,
        overlapping epochs, or no stage annotation; the message names the
        file and the onset.
    """
    data = read_edf(path, channels=())
    path = data.path
    epochs = []
    for onset, duration, text in data.annotations:
        if not text.startswith("Sleep stage"):
            continue  # arousals and other events
        where = f"{path}: annotation {text!r} at onset {onset:g} s"
        if text not in STAGE_CODES:
            raise DataError(f"{where}: unknown stage; expected one of {list(STAGE_CODES)}.")
        if duration is None or abs(duration - EPOCH_SEC) > _TOLERANCE_S:
            raise DataError(f"{where}: duration {duration} s; SS3 epochs last {EPOCH_SEC:g} s.")
        code = STAGE_CODES[text]
        epochs.append((onset, -1 if code is None else code))
    if not epochs:
        raise DataError(f"{path}: no 'Sleep stage' annotations; is this a MASS Base file?")
    epochs.sort()
    onsets = np.array([o for o, _ in epochs], dtype=np.float64)
    overlap = np.flatnonzero(np.diff(onsets) < EPOCH_SEC - _TOLERANCE_S)
    if overlap.size:
        k = overlap[0]
        raise DataError(
            f"{path}: stage epochs at onsets {onsets[k]:g} s and {onsets[k + 1]:g} s overlap."
        )
    if start is not None and data.start is not None:
        onsets += (data.start - start).total_seconds()
    return onsets, np.array([c for _, c in epochs], dtype=np.int64)


def _check_pair(psg_path, base_path):
    prefixes = [_PREFIX.match(os.path.basename(p)) for p in (psg_path, base_path)]
    if all(prefixes) and prefixes[0].group() != prefixes[1].group():
        raise DataError(
            f"{psg_path} and {base_path} are not one subject: their prefixes "
            f"differ ({prefixes[0].group()} vs {prefixes[1].group()})."
        )


def load_subject(psg_path, base_path, channels=DEFAULT_CHANNELS, fs=None) -> Recording:
    """Loads one SS3 night as a `Recording` (see the module docstring for the rules).

    Parameters
    ----------
    psg_path, base_path : str or path-like
        The two files of one subject (same `01-03-00NN` prefix).
    channels : sequence of str
        Canonical channel names, in this order (default F3, C3, O1, F4, C4,
        O2, LOC, ROC, EMG); see `CHANNEL_ALIASES`.
    fs : float or None
        Common sampling rate; None means the rate of the requested EEG
        channels (256 Hz in SS3), or the highest rate when no EEG is
        requested. Channels at another rate are resampled.

    Returns
    -------
    Recording
        Subject "MASS3-00NN", float32 signals in µV named by their canonical
        names, source `psg_path`.

    Raises
    ------
    DataError
        Mismatched or unreadable files, a missing channel, a non-voltage
        channel, scored epochs outside the PSG's signal, or no scored epoch.
    """
    psg_path, base_path = os.fspath(psg_path), os.fspath(base_path)
    if isinstance(channels, str):
        channels = (channels,)
    channels = tuple(channels)
    if not channels:
        raise ValueError("`channels` is empty; pass at least one canonical channel name.")
    if fs is not None:
        _epoch_samples(fs)
    _check_pair(psg_path, base_path)

    header = read_edf(psg_path, channels=())
    labels_in_file = match_channels(header.labels, channels, psg_path)
    psg = read_edf(psg_path, channels=labels_in_file)
    if fs is None:
        eeg = [psg.fs[f] for c, f in zip(channels, labels_in_file) if c in EEG_CHANNELS]
        fs = max(eeg) if eeg else None
        if fs is not None:
            _check_native_rate(psg_path, fs)
    signals, rate = _signals_at(psg, labels_in_file, fs)
    step = _epoch_samples(rate)

    onsets, labels = read_stages(base_path, start=psg.start)
    scored = labels >= 0
    if not scored.any():
        raise DataError(f"{base_path}: every stage epoch is 'Sleep stage ?'.")
    onsets, labels = onsets[scored], labels[scored]
    first = np.round(onsets * rate).astype(np.int64)
    if first[0] < 0 or first[-1] + step > signals.shape[1]:
        raise DataError(
            f"{base_path} scores epochs from {onsets[0]:g} s to {onsets[-1] + EPOCH_SEC:g} s "
            f"after the PSG start but {psg_path} has {signals.shape[1] / rate:g} s of signal."
        )
    windows = signals[:, first[:, None] + np.arange(step)]  # (C, n_epochs, step)

    m = _PREFIX.match(os.path.basename(psg_path))
    name = os.path.basename(psg_path)
    return Recording(
        subject=subject_id(m.group()[-4:]) if m else name.removesuffix(".edf"),
        signals=windows.reshape(len(channels), -1),
        fs=rate,
        channels=channels,
        labels=labels,
        source=psg_path,
    )


def load_mass(data_dir, subjects=None, **kwargs) -> list:
    """Loads the SS3 subjects of `data_dir` as a list of `Recording`.

    Parameters
    ----------
    data_dir : str or path-like
        A directory with the `01-03-00NN PSG.edf` / `01-03-00NN Base.edf` files.
    subjects : iterable of int or str, or None
        Subject numbers (1-64) or ids ("MASS3-0001") to load; each must be
        present. None loads every subject found.
    **kwargs
        Passed to `load_subject` (channels, fs).

    Returns
    -------
    list of Recording
        Ordered by subject.
    """
    pairs = find_subjects(data_dir)
    if subjects is not None:
        if isinstance(subjects, (str, int, np.integer)):
            raise ValueError(f"`subjects` must be a collection of ints or ids. Received: {subjects!r}")
        wanted = {s if isinstance(s, str) else subject_id(s) for s in subjects}
        missing = sorted(wanted - {s for _, _, s in pairs})
        if missing:
            raise DataError(f"{os.fspath(data_dir)}: no files for subject(s) {missing}.")
        pairs = [p for p in pairs if p[2] in wanted]
    return [load_subject(psg, base, **kwargs) for psg, base, _ in pairs]
