"""ISRUC-Sleep subgroup III (10 healthy adults): PSG + stage files -> `Recording`.

The public release comes in two forms; `load_isruc` reads either.

* raw: per subject `N` a RAR archive `N.rar` that extracts to `N/N.rec` (an
  EDF file despite its extension, 200 Hz), `N/N_1.txt` and `N/N_2.txt` (the
  stages from scorer 1 and scorer 2, one code per line, one line per 30-s
  epoch). `extract_rar` unpacks an archive with a system tool.
* extracted: `subjectN.mat`, one `(n_epochs, 6000)` array per channel
  (`F3_A2`, ..., `X2`: 30-s epochs at 200 Hz, already in µV), MATLAB v5
  (read with scipy) or v7.3 (HDF5, read with h5py), with the same label
  files beside it, in a labels directory, or in the subject's `N/` folder.

How a subject becomes a `Recording` (the same rules for both forms):

* Channels are found by name through `CHANNEL_ALIASES`, never by position:
  releases spell them differently ("C3-A2", "C3-M2", "C3_A2"), and names are
  compared case-insensitively, ignoring spaces. The `Recording` uses the
  canonical names (`CHANNELS`). A raw channel at another rate than the EEG
  (EOG in some releases) is resampled to the EEG rate.
* Stage codes: 0 W, 1 N1, 2 N2, 3 N3, 5 REM (label 4). Any other code is a
  `DataError` naming the file, line and code; 4 included, since ISRUC is
  scored with AASM, which has no stage 4. Trailing blank lines are ignored;
  a blank line before the last code is an error (it would shift every later
  epoch).
* Lengths: label `k` scores epoch `k` of the signal, counted from the first
  sample; a partial last epoch of signal is dropped. When the label file and
  the signal's whole epochs differ by at most `MAX_LENGTH_MISMATCH` (30)
  epochs, the longer is cut to the shorter with a warning: label lines past
  the end of the signal are dropped (the public label files run past the
  signal), and a signal tail past the last label is dropped as unscored.
  A larger difference is a `DataError` naming both files and both lengths:
  the files do not belong together, or one is truncated.
* `trim_last=30` then drops the last 30 epochs, the customary ISRUC trim
  (off by default). It counts epochs that have both signal and a label, so
  it comes on top of the surplus label lines already dropped above.

Subject `N` is "ISRUC3-0N" (e.g. "ISRUC3-01"); `source` is the `.rec` or
`.mat` path.

Example:

>>> recs = load_isruc("ISRUC_S3/", channels=("F3-A2", "C4-A1", "LOC-A2"))
>>> rec = load_subject_mat("subject1.mat", "1_1.txt")
"""

from __future__ import annotations

import fractions
import os
import re
import shutil
import subprocess
import tempfile
import warnings

import numpy as np
from scipy import signal as sps

from stmd_keras.data.edf import read_edf, to_microvolts
from stmd_keras.data.recording import EPOCH_SEC, DataError, Recording

CHANNEL_ALIASES = {
    "F3-A2": ("F3-A2", "F3-M2", "F3_A2"),
    "C3-A2": ("C3-A2", "C3-M2", "C3_A2"),
    "O1-A2": ("O1-A2", "O1-M2", "O1_A2"),
    "F4-A1": ("F4-A1", "F4-M1", "F4_A1"),
    "C4-A1": ("C4-A1", "C4-M1", "C4_A1"),
    "O2-A1": ("O2-A1", "O2-M1", "O2_A1"),
    "LOC-A2": ("LOC-A2", "E1-M2", "LOC_A2"),
    "ROC-A1": ("ROC-A1", "E2-M1", "ROC_A1"),
    "X1": ("X1",),  # chin EMG
    "X2": ("X2",),
}
"""Canonical ISRUC-III channel name -> the spellings accepted for it in a file
(compared case-insensitively, ignoring spaces). A new release's spelling is
one more entry here."""

CHANNELS = tuple(CHANNEL_ALIASES)
"""The ten channels of the extracted .mat files, in their canonical names;
the default of `channels=`."""

EEG_CHANNELS = CHANNELS[:6]

FS = 200.0
"""Sampling rate of the extracted .mat files (and of the raw EEG)."""

STAGE_CODES = {0: 0, 1: 1, 2: 2, 3: 3, 5: 4}
"""ISRUC stage code -> label (0 W, 1 N1, 2 N2, 3 N3, 4 REM)."""

MAX_LENGTH_MISMATCH = 30
"""Most whole epochs by which a label file and its signal may differ before
the pair is refused (see the module docstring)."""

RAR_TOOLS = ("unrar", "unar", "7z", "bsdtar")
"""Tools `extract_rar` looks for on PATH, in this order."""

_RAR = re.compile(r"^(\d+)\.rar$", re.IGNORECASE)
_MAT = re.compile(r"^subject(\d+)\.mat$", re.IGNORECASE)
_LABELS = re.compile(r"^(\d+)_[12]\.txt$")


def _key(name) -> str:
    return "".join(str(name).split()).lower()


_CANONICAL = {_key(a): c for c, aliases in CHANNEL_ALIASES.items() for a in (c, *aliases)}


def _subject_id(stem) -> str:
    return f"ISRUC3-{int(stem):02d}" if str(stem).isdigit() else f"ISRUC3-{stem}"


def _check_options(channels, scorer, trim_last) -> tuple:
    """Returns `channels` as canonical names; raises ValueError for bad options."""
    if scorer not in (1, 2):
        raise ValueError(f"`scorer` must be 1 or 2. Received: scorer={scorer!r}")
    if isinstance(trim_last, bool) or not isinstance(trim_last, (int, np.integer)) or trim_last < 0:
        raise ValueError(f"`trim_last` must be an int >= 0. Received: trim_last={trim_last!r}")
    if channels is None:
        return CHANNELS
    if isinstance(channels, str):
        channels = (channels,)
    canonical = []
    for c in channels:
        if _key(c) not in _CANONICAL:
            raise ValueError(f"Unknown ISRUC-III channel {c!r}; expected one of {list(CHANNELS)}.")
        canonical.append(_CANONICAL[_key(c)])
    if not canonical:
        raise ValueError("`channels` is empty; pass at least one channel or None for all ten.")
    if len(set(canonical)) != len(canonical):
        raise ValueError(f"`channels` names a channel twice. Received: channels={tuple(channels)!r}")
    return tuple(canonical)


def match_channels(available, channels, where) -> list:
    """Returns the labels in `available` of the canonical `channels`, in order.

    Raises `DataError` naming `where` for a channel with no label among its
    `CHANNEL_ALIASES` (the message lists the aliases and `available`) or with
    more than one.
    """
    by_key = {}
    for label in available:
        by_key.setdefault(_key(label), []).append(label)
    found = []
    for c in channels:
        hits = list(dict.fromkeys(h for a in CHANNEL_ALIASES[c] for h in by_key.get(_key(a), [])))
        if not hits:
            raise DataError(
                f"{where}: no channel {c!r} (accepted spellings {list(CHANNEL_ALIASES[c])}, "
                f"in any case, spaces ignored); the file has {list(available)}."
            )
        if len(hits) > 1:
            raise DataError(f"{where}: channel {c!r} matches several signals {hits}; cannot choose.")
        found.append(hits[0])
    return found


def read_labels(path) -> np.ndarray:
    """Reads an ISRUC stage file (`N_1.txt`, `N_2.txt`): one code per line.

    Returns
    -------
    int64 array
        One label per line, 0 W, 1 N1, 2 N2, 3 N3, 4 REM (code 5).

    Raises
    ------
    DataError
        Missing or empty file, a blank line before the last code, or a code
        other than 0, 1, 2, 3, 5; the message names the file, line and code.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such label file.")
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataError(f"{path}: no stage codes; is this an ISRUC label file?")
    labels = np.empty(len(lines), dtype=np.int64)
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            raise DataError(f"{path}, line {number}: blank line before the last stage code.")
        code = int(text) if re.fullmatch(r"[0-9]+", text) else None
        if code not in STAGE_CODES:
            why = " (ISRUC is scored with AASM, which has no stage 4)" if code == 4 else ""
            raise DataError(
                f"{path}, line {number}: unknown stage code {text!r}{why}; "
                "expected 0 W, 1 N1, 2 N2, 3 N3 or 5 REM."
            )
        labels[number - 1] = STAGE_CODES[code]
    return labels


def _find_labels(labels_path, folder, stem, scorer) -> str:
    """The label file: `labels_path` itself, or `N_s.txt` or `N/N_s.txt` in a folder."""
    if labels_path is not None:
        if os.path.isfile(labels_path):
            return os.fspath(labels_path)
        if not os.path.isdir(labels_path):
            raise DataError(f"{os.fspath(labels_path)}: no such label file or folder.")
    folder = os.fspath(labels_path if labels_path is not None else folder)
    name = f"{stem}_{scorer}.txt"
    candidates = [os.path.join(folder, name), os.path.join(folder, str(stem), name)]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise DataError(f"no label file for subject {stem}, scorer {scorer}: looked for {candidates}.")


def _align(signals, step, labels, signal_path, labels_path, trim_last) -> tuple:
    """Cuts `signals (C, T)` and `labels` to each other (see the module docstring)."""
    n_signal, n_labels = signals.shape[1] // step, labels.size
    if abs(n_labels - n_signal) > MAX_LENGTH_MISMATCH:
        raise DataError(
            f"{labels_path} has {n_labels} labels but {signal_path} has {n_signal} whole "
            f"30-s epochs; more than {MAX_LENGTH_MISMATCH} epochs apart, so the files do not "
            "belong together or one is truncated."
        )
    if n_labels > n_signal:
        warnings.warn(
            f"{labels_path} has {n_labels} labels for the {n_signal} epochs of {signal_path}; "
            f"dropping the last {n_labels - n_signal} labels.",
            stacklevel=3,
        )
    elif n_labels < n_signal:
        warnings.warn(
            f"{labels_path} has {n_labels} labels for the {n_signal} epochs of {signal_path}; "
            f"dropping the last {n_signal - n_labels} epochs of signal as unscored.",
            stacklevel=3,
        )
    n = min(n_signal, n_labels)
    if trim_last and trim_last >= n:
        raise DataError(f"{signal_path}: trim_last={trim_last} would drop all {n} epochs.")
    n -= trim_last
    return signals[:, : n * step], labels[:n]


def _resample(x, rate, target, where) -> np.ndarray:
    if rate == target:
        return x
    ratio = fractions.Fraction(target / rate).limit_denominator(1000)
    if abs(rate * ratio - target) > 1e-3 * target:
        raise DataError(
            f"{where}: cannot resample from {rate:g} Hz to {target:g} Hz with a simple "
            "up/down ratio; choose another `fs`."
        )
    return sps.resample_poly(x, ratio.numerator, ratio.denominator)


def _rec_path(path) -> str:
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    if not os.path.isdir(path):
        raise DataError(f"{path}: neither an ISRUC subject folder nor a .rec file.")
    stem = os.path.basename(os.path.normpath(path))
    rec = os.path.join(path, f"{stem}.rec")
    if not os.path.isfile(rec):
        raise DataError(f"{path}: no {stem}.rec in this subject folder; it has {sorted(os.listdir(path))}.")
    return rec


def load_subject_raw(subject_dir_or_rec_path, scorer=1, channels=None, trim_last=0,
                     labels_path=None, fs=None) -> Recording:
    """Loads one subject of the raw release (`N/N.rec` + `N/N_1.txt`).

    Parameters
    ----------
    subject_dir_or_rec_path : str or path-like
        The extracted folder `N/` (holding `N.rec`) or the `.rec` file.
    scorer : {1, 2}
        Whose stages to use (`N_1.txt` or `N_2.txt`).
    channels : sequence of str or None
        Canonical names (or any alias) of the channels to load, in this
        order; None loads all ten of `CHANNELS`.
    trim_last : int
        Epochs dropped at the end after aligning labels and signal (0 keeps
        all; 30 is the customary ISRUC trim).
    labels_path : str, path-like or None
        The label file, or a folder holding `N_s.txt` (or `N/N_s.txt`);
        None looks beside the `.rec` file.
    fs : float or None
        Common sampling rate; None means the rate of the loaded EEG channels
        (the highest rate if no EEG channel is loaded). Channels at another
        rate are resampled with `scipy.signal.resample_poly`.

    Returns
    -------
    Recording
        Subject "ISRUC3-0N", float32 signals in µV, source the `.rec` path.

    Raises
    ------
    DataError
        Unreadable files, a missing channel, a non-voltage unit, an unknown
        stage code, or labels and signal too far apart in length.
    """
    channels = _check_options(channels, scorer, trim_last)
    rec_path = _rec_path(subject_dir_or_rec_path)
    stem = os.path.splitext(os.path.basename(rec_path))[0]
    labels_file = _find_labels(labels_path, os.path.dirname(rec_path), stem, scorer)
    names = match_channels(read_edf(rec_path, channels=()).labels, channels, rec_path)
    edf = read_edf(rec_path, channels=names)
    if fs is not None:
        rate = float(fs)
    else:
        eeg = [edf.fs[n] for n, c in zip(names, channels) if c in EEG_CHANNELS]
        rate = max(eeg or [edf.fs[n] for n in names])
    step = EPOCH_SEC * rate
    if fs is None and rate > 0 and abs(step - round(step)) > 1e-6:
        raise DataError(
            f"{rec_path}: sampled at {rate:g} Hz, where a {EPOCH_SEC:g}-s epoch is not a whole "
            f"number of samples ({step:g}); pass fs= (e.g. fs=100) to resample it on loading."
        )
    if not rate > 0 or abs(step - round(step)) > 1e-6:
        raise ValueError(f"`fs` must be > 0 with a whole number of samples per 30 s. Received: fs={fs!r}")
    rows = []
    for name in names:
        where = f"{rec_path}, channel {name!r}"
        x = to_microvolts(edf.signals[name], edf.units[name], where)
        rows.append(_resample(x, edf.fs[name], rate, where).astype(np.float32))
    length = min(len(x) for x in rows)
    signals = np.stack([x[:length] for x in rows])
    signals, labels = _align(signals, int(round(step)), read_labels(labels_file), rec_path,
                             labels_file, trim_last)
    return Recording(subject=_subject_id(stem), signals=signals, fs=rate, channels=channels,
                     labels=labels, source=rec_path)


def _read_mat(path, channels) -> list:
    """Returns the `(n_epochs, samples)` arrays of `channels` in a .mat file."""
    import h5py
    import scipy.io

    if h5py.is_hdf5(path):
        # MATLAB v7.3: HDF5 stores MATLAB's column-major arrays, so h5py sees
        # (samples, n_epochs); transposing restores MATLAB's (n_epochs, samples).
        with h5py.File(path, "r") as f:
            available = [k for k in f.keys() if not k.startswith("#") and isinstance(f[k], h5py.Dataset)]
            names = match_channels(available, channels, path)
            return [(n, np.asarray(f[n][()]).T) for n in names]
    try:
        available = [name for name, _, _ in scipy.io.whosmat(path)]
    except Exception as error:
        raise DataError(f"{path}: cannot read as a MATLAB file ({error}).") from error
    names = match_channels(available, channels, path)
    data = scipy.io.loadmat(path, variable_names=names)
    return [(n, np.asarray(data[n])) for n in names]


def load_subject_mat(mat_path, labels_path=None, scorer=1, channels=None, trim_last=0) -> Recording:
    """Loads one subject of the extracted release (`subjectN.mat` + `N_1.txt`).

    Parameters
    ----------
    mat_path : str or path-like
        `subjectN.mat`, MATLAB v5 or v7.3, one `(n_epochs, 6000)` array per
        channel in µV.
    labels_path : str, path-like or None
        The label file, or a folder holding `N_s.txt` (or `N/N_s.txt`);
        None looks beside the .mat file.
    scorer, channels, trim_last
        As for `load_subject_raw`.

    Returns
    -------
    Recording
        Subject "ISRUC3-0N", 200 Hz, float32 signals in µV, source `mat_path`.

    Raises
    ------
    DataError
        Unreadable file, a missing channel, arrays not `(n_epochs, 6000)` or
        of unequal lengths, an unknown stage code, or labels and signal too
        far apart in length.
    """
    channels = _check_options(channels, scorer, trim_last)
    mat_path = os.fspath(mat_path)
    if not os.path.isfile(mat_path):
        raise DataError(f"{mat_path}: no such file.")
    m = _MAT.match(os.path.basename(mat_path))
    stem = m.group(1) if m else os.path.splitext(os.path.basename(mat_path))[0]
    labels_file = _find_labels(labels_path, os.path.dirname(mat_path), stem, scorer)
    step = int(EPOCH_SEC * FS)
    arrays = _read_mat(mat_path, channels)
    for name, x in arrays:
        if x.ndim != 2 or x.shape[1] != step or not np.issubdtype(x.dtype, np.number):
            raise DataError(
                f"{mat_path}: variable {name!r} is a {x.dtype} array of shape {x.shape}; expected "
                f"numbers of shape (n_epochs, {step}): 30-s epochs at {FS:g} Hz."
            )
    lengths = {name: x.shape[0] for name, x in arrays}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{mat_path}: channels have different numbers of epochs {lengths}.")
    signals = np.stack([x.reshape(-1) for _, x in arrays]).astype(np.float32)
    signals, labels = _align(signals, step, read_labels(labels_file), mat_path, labels_file, trim_last)
    return Recording(subject=_subject_id(stem), signals=signals, fs=FS, channels=channels,
                     labels=labels, source=mat_path)


def _rar_command(name, tool, rar_path, into) -> list:
    return {
        "unrar": [tool, "x", "-o+", "-y", "-idq", rar_path, into + os.sep],
        "unar": [tool, "-q", "-f", "-D", "-o", into, rar_path],
        "7z": [tool, "x", "-y", f"-o{into}", rar_path],
        "bsdtar": [tool, "-x", "-f", rar_path, "-C", into],
    }[name]


def extract_rar(rar_path, dest=None) -> str:
    """Extracts an ISRUC archive `N.rar` into the folder `dest`, atomically.

    The archive is unpacked into a temporary folder beside `dest`, which is
    renamed to `dest` only once the tool succeeded, so `dest` is either
    complete or absent. An archive whose only top-level entry is a folder
    named like the archive (ISRUC's `N.rar` holds `N/`) has that folder's
    contents put in `dest`, so `dest/N.rec` exists afterwards.

    Parameters
    ----------
    rar_path : str or path-like
    dest : str, path-like or None
        Default: the archive's path without `.rar` (`.../N.rar` -> `.../N`).
        An existing `dest` is taken as a finished extraction and returned
        as it is.

    Returns
    -------
    str
        `dest`.

    Raises
    ------
    DataError
        The archive is missing, none of `RAR_TOOLS` (unrar, unar, 7z,
        bsdtar) is on PATH (the message says how to install one), or the
        tool failed (its output is quoted).
    """
    rar_path = os.fspath(rar_path)
    if not os.path.isfile(rar_path):
        raise DataError(f"{rar_path}: no such archive.")
    stem = os.path.splitext(os.path.basename(rar_path))[0]
    dest = os.fspath(dest) if dest is not None else os.path.splitext(rar_path)[0]
    if os.path.exists(dest):
        return dest
    name, tool = next(((n, shutil.which(n)) for n in RAR_TOOLS if shutil.which(n)), (None, None))
    if tool is None:
        raise DataError(
            f"{rar_path}: cannot extract the archive: none of the RAR tools {list(RAR_TOOLS)} is "
            "on PATH. Install one, e.g. `apt-get install unar` (or `apt-get install "
            "libarchive-tools` for bsdtar) on Debian/Ubuntu, `brew install unar` on macOS; "
            f"or extract it yourself so that {os.path.join(dest, stem + '.rec')} exists."
        )
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.extracting-", dir=parent)
    try:
        run = subprocess.run(_rar_command(name, tool, rar_path, tmp), capture_output=True, text=True)
        entries = os.listdir(tmp)
        if run.returncode != 0 or not entries:
            output = (run.stderr.strip() or run.stdout.strip())[-2000:]
            raise DataError(
                f"{rar_path}: {tool} failed (exit status {run.returncode}, "
                f"{len(entries)} entries extracted): {output or 'no output'}"
            )
        inner = os.path.join(tmp, stem)
        source = inner if entries == [stem] and os.path.isdir(inner) else tmp
        try:
            os.rename(source, dest)
        except OSError:
            if not os.path.isdir(dest):  # else another process finished it first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def find_subjects(data_dir) -> dict:
    """Lists what `data_dir` holds of ISRUC-III, by form.

    Returns
    -------
    dict
        {"raw": {N: folder with N.rec}, "rar": {N: N.rar}, "extracted":
        {N: subjectN.mat}}, subject numbers as ints.

    Raises
    ------
    DataError
        `data_dir` is not a directory, or holds a label file `N_s.txt` or
        `N/N_s.txt` of a subject with no `N/N.rec`, `N.rar` or
        `subjectN.mat` (all such orphans are named), rather than silently
        listing one subject fewer.
    """
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise DataError(f"{data_dir}: not a directory.")
    found = {"raw": {}, "rar": {}, "extracted": {}}
    labels = {}
    for name in sorted(os.listdir(data_dir)):
        path = os.path.join(data_dir, name)
        if name.isdigit() and os.path.isfile(os.path.join(path, f"{name}.rec")):
            found["raw"][int(name)] = path
        elif _RAR.match(name) and os.path.isfile(path):
            found["rar"][int(_RAR.match(name).group(1))] = path
        elif _MAT.match(name) and os.path.isfile(path):
            found["extracted"][int(_MAT.match(name).group(1))] = path
        elif _LABELS.match(name) and os.path.isfile(path):
            labels.setdefault(int(_LABELS.match(name).group(1)), path)
        if name.isdigit() and os.path.isdir(path):
            for scorer in (1, 2):
                inner = os.path.join(path, f"{name}_{scorer}.txt")
                if os.path.isfile(inner):
                    labels.setdefault(int(name), inner)
    orphans = [f"{path} has no matching recording ({n}/{n}.rec, {n}.rar or subject{n}.mat)"
               for n, path in sorted(labels.items())
               if not any(n in found[form] for form in found)]
    if orphans:
        raise DataError(f"{data_dir}: " + "; ".join(orphans) + ".")
    return found


def load_isruc(data_dir, subjects=None, scorer=1, channels=None, trim_last=0, form="auto",
               labels_dir=None, fs=None) -> list:
    """Loads ISRUC-Sleep subgroup III subjects of `data_dir` as `Recording`s.

    Parameters
    ----------
    data_dir : str or path-like
        A folder with the raw release (`N/N.rec` folders and/or `N.rar`
        archives) or the extracted one (`subjectN.mat`).
    subjects : iterable of int or None
        Subject numbers (1-10) to load; each must be present. None loads
        every subject found.
    scorer : {1, 2}
        Whose stages to use (`N_1.txt` or `N_2.txt`).
    channels : sequence of str or None
        Canonical names (or aliases) of the channels, in this order; None
        loads all ten of `CHANNELS`.
    trim_last : int
        Epochs dropped at the end of each subject (0 keeps all; 30 is the
        customary ISRUC trim).
    form : {"auto", "raw", "extracted"}
        "raw" reads `N/N.rec`, extracting `N.rar` to `N/` first where the
        folder is missing (see `extract_rar`). "extracted" reads
        `subjectN.mat`. "auto" picks "raw" if any `N/N.rec` exists, else
        "extracted" if any `subjectN.mat` does, else "raw" if any `N.rar`
        does; forms are never mixed within one call.
    labels_dir : str, path-like or None
        Where the extracted form's label files are (`N_s.txt` or
        `N/N_s.txt`); None looks in `data_dir`, extracting `N.rar` there
        when it is the only source of the labels.
    fs : float or None
        Raw form only: the common sampling rate (see `load_subject_raw`);
        None keeps the file's EEG rate. The extracted form is always 200 Hz.

    Returns
    -------
    list of Recording
        Ordered by subject number.
    """
    if form not in ("auto", "raw", "extracted"):
        raise ValueError(f"`form` must be 'auto', 'raw' or 'extracted'. Received: form={form!r}")
    _check_options(channels, scorer, trim_last)
    data_dir = os.fspath(data_dir)
    found = find_subjects(data_dir)
    if form == "auto":
        form = "raw" if found["raw"] else "extracted" if found["extracted"] else "raw"
    if form == "extracted" and fs is not None and float(fs) != FS:
        raise ValueError(f"`fs` applies to the raw form only; the extracted .mat files are {FS:g} Hz. "
                         f"Received: fs={fs!r}")
    available = set(found["raw"]) | set(found["rar"]) if form == "raw" else set(found["extracted"])
    if not available:
        raise DataError(
            f"{data_dir}: no ISRUC-III subject in the {form} form; expected "
            + ("`N/N.rec` folders or `N.rar` archives." if form == "raw" else "`subjectN.mat` files.")
        )
    if subjects is None:
        numbers = sorted(available)
    else:
        if isinstance(subjects, (str, int, np.integer)):
            raise ValueError(f"`subjects` must be a collection of ints. Received: {subjects!r}")
        numbers = sorted({int(s) for s in subjects})
        missing = [n for n in numbers if n not in available]
        if missing:
            raise DataError(f"{data_dir}: no {form} files for subject(s) {missing}; found {sorted(available)}.")
    recordings = []
    for n in numbers:
        options = dict(scorer=scorer, channels=channels, trim_last=trim_last)
        if form == "raw":
            folder = found["raw"].get(n) or extract_rar(found["rar"][n], os.path.join(data_dir, str(n)))
            recordings.append(load_subject_raw(folder, fs=fs, **options))
        else:
            where = labels_dir
            if where is None:
                where = data_dir
                name = f"{n}_{scorer}.txt"
                beside = [os.path.join(data_dir, name), os.path.join(data_dir, str(n), name)]
                if not any(map(os.path.isfile, beside)) and n in found["rar"]:
                    extract_rar(found["rar"][n], os.path.join(data_dir, str(n)))
            recordings.append(load_subject_mat(found["extracted"][n], where, **options))
    return recordings
