"""Writes `Recording`s as files in each real dataset's exact distributed layout.

The real datasets cannot be shipped, but the real-data path (the loaders of
`datasets.get_dataset`, the cache, `experiments/table3.py --dataset NAME
--data-dir DIR`) can still be exercised end to end: write synthetic nights
(`synthetic.generate`) in the layout of the public release, then point the
real-data path at the folder.

>>> recs = generate(2, fs=200, n_epochs=120)
>>> paths = write_layout("isruc", recs, "fake_ISRUC_S3/")
>>> get_dataset("isruc").recordings("fake_ISRUC_S3/")          # ["1", "2"]

Recordings are given in ISRUC-III channel names (those of `generate`:
F3-A2, C3-A2, O1-A2, F4-A1, C4-A1, O2-A1, LOC-A2, ROC-A1 and X1, the chin
EMG). What each layout gets from them:

* **ISRUC-III** (`write_isruc`), raw form: per recording a folder `N/` with
  `N/N.rec` (plain EDF despite the extension; the recording's channels under
  their own names, in µV, at the recording's rate, 200 Hz in the release),
  `N/N_1.txt` and `N/N_2.txt` (one stage code per line: 0 W, 1 N1, 2 N2,
  3 N3, **5** REM). As in the public files, the label files end with blank
  lines and run `extra_label_lines` (30) epochs past the end of the signal,
  which the loader drops with a warning. Scorer 2 is scorer 1 with a
  fraction `scorer2_disagreement` of epochs moved to a neighbouring stage.
* **Sleep-EDF Expanded, sleep cassette** (`write_sleep_edf`): per recording
  `SC4ssNE0-PSG.edf` (EDF+, 30-s data records) with "EEG Fpz-Cz" <- F3-A2
  (or the mean of F3-A2 and F4-A1), "EEG Pz-Oz" <- O1-A2 and
  "EOG horizontal" <- LOC-A2 minus ROC-A1, at 100 Hz (resampled if the
  recording has another rate), plus the 1-Hz "Resp oro-nasal",
  "EMG submental" (the 1-s mean rectified X1 when the recording has it),
  "Temp rectal" and "Event marker" of the real files; and
  `SC4ssNEC-Hypnogram.edf` (EDF+, annotations only): one "Sleep stage
  W/1/2/3/4/R" annotation per run of equal stages, N3 runs written as
  "Sleep stage 3" then "Sleep stage 4", and a "Sleep stage ?" running past
  the end of the PSG as in the real files. Recording `i` is subject
  `ss = start_subject + i // nights_per_subject`, night
  `N = i % nights_per_subject + 1`. The loader keeps only
  `trim_wake_min` (30) minutes of wake before the first and after the last
  sleep epoch, so it may return fewer epochs than were written.
* **MASS-SS3** (`write_mass`): per recording `01-03-00NN PSG.edf` (EDF+;
  EEG "X-A1"/"X-A2" -> "EEG X-CLE", LOC-A2 -> "EOG Left Horiz", ROC-A1 ->
  "EOG Right Horiz", X1 -> "EMG Chin1", at the recording's rate, 256 Hz in
  SS3) and `01-03-00NN Base.edf` (EDF+ annotations only: one 30-s
  "Sleep stage W/1/2/3/R" per epoch). As in the real files, the stage
  epochs start `onset_offset` seconds (a fraction of a second, off the
  sample grid) after the PSG's first sample: the PSG gets that much signal
  before epoch 0 (the mirrored start of the recording) and the loader cuts
  each epoch at `round(onset * fs)`, so it gets back exactly the written
  epochs. A trailing "Sleep stage ?" epoch follows the last scored one; the
  loader drops it.

Signals are stored with 16-bit digital samples; each channel's physical
range is the smallest whole-µV range holding it, so a sample comes back
within half a step `(physical_max - physical_min) / 65535` of what was
written. Every file is written to a hidden temporary name in its folder and
renamed into place (`os.replace`), so a file either is complete or does not
exist; all recordings are checked (channels, names, options) before
anything is written.
"""

from __future__ import annotations

import datetime
import fractions
import os
import tempfile
import warnings

import numpy as np
from scipy import signal as sps

from stmd_keras.data import isruc as _isruc
from stmd_keras.data.recording import EPOCH_SEC, Recording

DEFAULT_START = datetime.datetime(2000, 1, 1, 22, 30, 0)
"""Start date and time written in every file (the same for all recordings)."""

DIGITAL_MIN, DIGITAL_MAX = -32768, 32767

ISRUC_CODES = {0: 0, 1: 1, 2: 2, 3: 3, 4: 5}
"""Label (0 W .. 4 REM) -> ISRUC stage code (REM is 5)."""

NEIGHBOUR_STAGES = {0: (1,), 1: (0, 2), 2: (1, 3), 3: (2,), 4: (1,)}
"""Label -> the stages a second scorer may give instead (used for `N_2.txt`)."""

SLEEP_EDF_FS = 100.0
"""Rate of the Sleep-EDF EEG/EOG channels."""

SLEEP_EDF_DERIVATIONS = {
    "EEG Fpz-Cz": {"F3-A2": 1.0},
    "EEG Pz-Oz": {"O1-A2": 1.0},
    "EOG horizontal": {"LOC-A2": 1.0, "ROC-A1": -1.0},
}
"""Sleep-EDF signal -> weights of the ISRUC-named channels it is made of."""

FPZ_CZ_MEAN = {"F3-A2": 0.5, "F4-A1": 0.5}
"""The "EEG Fpz-Cz" derivation of `write_sleep_edf(..., fpz_cz="mean")`."""

SLEEP_EDF_STAGES = {0: "Sleep stage W", 1: "Sleep stage 1", 2: "Sleep stage 2",
                    3: "Sleep stage 3", 4: "Sleep stage R"}

MASS_LABELS = {
    **{c: f"EEG {c.split('-')[0]}-{{ref}}" for c in _isruc.EEG_CHANNELS},
    "LOC-A2": "EOG Left Horiz",
    "ROC-A1": "EOG Right Horiz",
    "X1": "EMG Chin1",
}
"""ISRUC channel name -> MASS-SS3 signal label (`{ref}` is "CLE" or "LER")."""

MASS_STAGES = {0: "Sleep stage W", 1: "Sleep stage 1", 2: "Sleep stage 2",
               3: "Sleep stage 3", 4: "Sleep stage R"}


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------
def write_layout(name, recordings, out_dir, **options) -> list:
    """Writes `recordings` in the distributed layout of dataset `name`.

    Args:
        name: "isruc", "sleep-edf" or "mass" (the names of
            `datasets.DATASETS`).
        recordings: a `Recording` or a sequence of them, in ISRUC-III
            channel names (e.g. from `synthetic.generate`).
        out_dir: the folder to write into (created if needed); point the
            dataset's loader (`--data-dir`) at it afterwards.
        **options: passed to `write_isruc`, `write_sleep_edf` or
            `write_mass`.

    Returns:
        The list of written file paths, in writing order.

    Raises:
        ValueError: an unknown `name`, a bad option, or a recording missing
            a channel the layout needs (the message names it).
    """
    writers = {"isruc": write_isruc, "sleep-edf": write_sleep_edf, "mass": write_mass}
    if name not in writers:
        raise ValueError(f"Unknown dataset layout {name!r}; available: {sorted(writers)}.")
    return writers[name](recordings, out_dir, **options)


def write_isruc(recordings, out_dir, start_number=1, scorer2_disagreement=0.0, seed=0,
                channels=None, extra_label_lines=_isruc.MAX_LENGTH_MISMATCH,
                start=DEFAULT_START) -> list:
    """Writes recordings as ISRUC-III subjects in the raw form (`N/N.rec`, `N/N_s.txt`).

    Args:
        recordings: a `Recording` or a sequence of them.
        out_dir: the folder that gets one folder `N/` per recording.
        start_number: the subject number `N` of the first recording; the
            others follow in order.
        scorer2_disagreement: fraction in [0, 1] of epochs that scorer 2
            (`N_2.txt`) scores as a neighbouring stage (`NEIGHBOUR_STAGES`).
        seed: seed of those changes (recording `i` uses `[seed, i]`).
        channels: the channels written to `N.rec`, in this order; None
            writes all channels of each recording under their own names.
        extra_label_lines: label lines written past the end of the signal,
            as in the public files (code 0, W; 0 to
            `isruc.MAX_LENGTH_MISMATCH`; the loader drops them with a
            warning).
        start: start date and time of the EDF header.

    Returns:
        The written paths: for each recording `N.rec`, `N_1.txt`, `N_2.txt`.

    Raises:
        ValueError: a recording lacks one of `channels` (named), a channel
            name longer than EDF's 16 characters, or a bad option.
    """
    recordings = _as_list(recordings)
    _check_number("start_number", start_number, 0, None)
    if not 0.0 <= float(scorer2_disagreement) <= 1.0:
        raise ValueError(f"`scorer2_disagreement` must be in [0, 1]. Received: {scorer2_disagreement!r}")
    _check_number("extra_label_lines", extra_label_lines, 0, _isruc.MAX_LENGTH_MISMATCH)
    plans = []
    for rec in recordings:
        names = rec.channels if channels is None else tuple(channels)
        _require(rec, names, "ISRUC-III")
        _check_labels(names, rec)
        plans.append(names)
    paths = []
    for i, (rec, names) in enumerate(zip(recordings, plans)):
        number = start_number + i
        folder = os.path.join(os.fspath(out_dir), str(number))
        os.makedirs(folder, exist_ok=True)
        n = rec.n_epochs * rec.epoch_samples  # the labelled epochs: labels run past it
        signals = [(name, rec.fs, rec.signals[rec.channels.index(name), :n], "uV") for name in names]
        paths.append(_write_edf(os.path.join(folder, f"{number}.rec"), signals, start,
                                record_seconds=_record_seconds(rec.fs), plus=False))
        scorer2 = _disagree(rec.labels, scorer2_disagreement, np.random.default_rng([seed, i]))
        for scorer, labels in ((1, rec.labels), (2, scorer2)):
            codes = [ISRUC_CODES[int(k)] for k in labels] + [0] * int(extra_label_lines)
            text = "\n".join(str(c) for c in codes) + "\n\n\n"
            paths.append(_write_text(os.path.join(folder, f"{number}_{scorer}.txt"), text))
    return paths


def write_sleep_edf(recordings, out_dir, start_subject=0, nights_per_subject=1, fpz_cz="F3-A2",
                    stage4_fraction=0.5, trailing_unscored_s=3600.0, seed=0,
                    start=DEFAULT_START) -> list:
    """Writes recordings as Sleep-EDF sleep-cassette nights (PSG + hypnogram pairs).

    Args:
        recordings: a `Recording` or a sequence of them, with channels
            F3-A2 (and F4-A1 for `fpz_cz="mean"`), O1-A2, LOC-A2 and ROC-A1;
            X1, if present, becomes "EMG submental".
        out_dir: the folder that gets `SC4ssNE0-PSG.edf` and
            `SC4ssNEC-Hypnogram.edf` per recording.
        start_subject: the subject number `ss` of the first recording.
        nights_per_subject: 1, or 2 to make recordings `2k` and `2k + 1`
            nights 1 and 2 of one subject (as most SC subjects).
        fpz_cz: "F3-A2" or "mean" (of F3-A2 and F4-A1): the source of
            "EEG Fpz-Cz".
        stage4_fraction: share of each N3 run written as "Sleep stage 4"
            (its last epochs; R&K S4 is the deeper part), the rest as
            "Sleep stage 3". Both load as N3.
        trailing_unscored_s: seconds of "Sleep stage ?" written after the
            last label, running past the end of the PSG as in the real
            files (0: none).
        seed: seed of the 1-Hz channels' noise.
        start: start date and time of both files.

    Returns:
        The written paths: for each recording the PSG, then the hypnogram.

    Raises:
        ValueError: a recording lacks a needed channel (named), a subject
            number above 99, or a bad option.
    """
    recordings = _as_list(recordings)
    if fpz_cz not in ("F3-A2", "mean"):
        raise ValueError(f"`fpz_cz` must be 'F3-A2' or 'mean'. Received: fpz_cz={fpz_cz!r}")
    if nights_per_subject not in (1, 2):
        raise ValueError(f"`nights_per_subject` must be 1 or 2. Received: {nights_per_subject!r}")
    if not 0.0 <= float(stage4_fraction) <= 1.0:
        raise ValueError(f"`stage4_fraction` must be in [0, 1]. Received: {stage4_fraction!r}")
    if not float(trailing_unscored_s) >= 0:
        raise ValueError(f"`trailing_unscored_s` must be >= 0. Received: {trailing_unscored_s!r}")
    _check_number("start_subject", start_subject, 0, None)
    last = start_subject + (len(recordings) - 1) // nights_per_subject
    if recordings and last > 99:
        raise ValueError(f"Sleep-EDF subject numbers have two digits; recording {len(recordings) - 1} "
                         f"would be subject {last}. Lower `start_subject` or write fewer recordings.")
    derivations = dict(SLEEP_EDF_DERIVATIONS)
    if fpz_cz == "mean":
        derivations["EEG Fpz-Cz"] = FPZ_CZ_MEAN
    for rec in recordings:
        _require(rec, [c for weights in derivations.values() for c in weights], "Sleep-EDF")
    paths = []
    for i, rec in enumerate(recordings):
        subject, night = start_subject + i // nights_per_subject, i % nights_per_subject + 1
        prefix = os.path.join(os.fspath(out_dir), f"SC4{subject:02d}{night}")
        os.makedirs(os.fspath(out_dir), exist_ok=True)
        signals = _sleep_edf_signals(rec, derivations, np.random.default_rng([seed, i]))
        paths.append(_write_edf(f"{prefix}E0-PSG.edf", signals, start, record_seconds=EPOCH_SEC))
        annotations = _hypnogram_annotations(rec.labels, stage4_fraction, trailing_unscored_s)
        paths.append(_write_edf(f"{prefix}EC-Hypnogram.edf", [], start, annotations=annotations))
    return paths


def write_mass(recordings, out_dir, start_number=1, channels=None, reference="CLE",
               onset_offset=0.4, trailing_unscored=True, start=DEFAULT_START) -> list:
    """Writes recordings as MASS-SS3 subjects (`01-03-00NN PSG.edf` + `Base.edf`).

    Args:
        recordings: a `Recording` or a sequence of them.
        out_dir: the folder that gets both files of every recording.
        start_number: the subject number `NN` of the first recording.
        channels: ISRUC-named channels to write (keys of `MASS_LABELS`), in
            this order; None writes every channel of each recording, which
            must then all have a MASS label.
        reference: "CLE" or "LER", the EEG reference suffix of the labels.
        onset_offset: seconds, in [0, 30), from the PSG's first sample to
            the first stage epoch (real SS3 files are off by a fraction of a
            second, not on a sample).
        trailing_unscored: whether to add a 30-s "Sleep stage ?" after the
            last scored epoch, as the real files have.
        start: start date and time of both files.

    Returns:
        The written paths: for each recording the PSG, then the Base file.

    Raises:
        ValueError: a recording lacks one of `channels` or has a channel
            without a MASS label (named), or a bad option.
    """
    recordings = _as_list(recordings)
    if reference not in ("CLE", "LER"):
        raise ValueError(f"`reference` must be 'CLE' or 'LER'. Received: reference={reference!r}")
    if not 0.0 <= float(onset_offset) < EPOCH_SEC:
        raise ValueError(f"`onset_offset` must be in [0, 30) s. Received: onset_offset={onset_offset!r}")
    _check_number("start_number", start_number, 0, 9999 - len(recordings) + 1)
    plans = []
    for rec in recordings:
        names = rec.channels if channels is None else tuple(channels)
        unknown = [c for c in names if c not in MASS_LABELS]
        if unknown:
            raise ValueError(f"{rec.source} (subject {rec.subject}): channel(s) {unknown} have no MASS-SS3 "
                             f"label; MASS_LABELS maps {list(MASS_LABELS)}. Pass `channels=` to choose.")
        _require(rec, names, "MASS-SS3")
        plans.append((names, _mass_padding(rec, float(onset_offset))))
    paths = []
    for i, (rec, (names, pad)) in enumerate(zip(recordings, plans)):
        prefix = os.path.join(os.fspath(out_dir), f"01-03-{start_number + i:04d}")
        os.makedirs(os.fspath(out_dir), exist_ok=True)
        seconds = _record_seconds(rec.fs)
        x = _pad_to_records(_mirror_pad(rec.signals, pad), int(round(seconds * rec.fs)))
        signals = [(MASS_LABELS[c].format(ref=reference), rec.fs, x[rec.channels.index(c)], "uV")
                   for c in names]
        paths.append(_write_edf(f"{prefix} PSG.edf", signals, start, record_seconds=seconds))
        onsets = onset_offset + EPOCH_SEC * np.arange(rec.n_epochs + bool(trailing_unscored))
        texts = [MASS_STAGES[int(k)] for k in rec.labels] + ["Sleep stage ?"] * bool(trailing_unscored)
        annotations = [(float(o), EPOCH_SEC, t) for o, t in zip(onsets, texts)]
        paths.append(_write_edf(f"{prefix} Base.edf", [], start, annotations=annotations))
    return paths


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------
def _as_list(recordings) -> list:
    recordings = [recordings] if isinstance(recordings, Recording) else list(recordings)
    bad = [type(r).__name__ for r in recordings if not isinstance(r, Recording)]
    if bad:
        raise ValueError(f"`recordings` must hold `Recording`s. Received items of type {bad[:3]}.")
    return recordings


def _check_number(name, value, low, high):
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be an int {bound}. Received: {name}={value!r}")


def _require(rec, names, layout):
    """Raises ValueError naming the channels of `names` that `rec` lacks."""
    missing = [c for c in dict.fromkeys(names) if c not in rec.channels]
    if missing:
        raise ValueError(
            f"{rec.source} (subject {rec.subject}): missing channel(s) {missing} needed for the "
            f"{layout} layout; the recording has {list(rec.channels)}."
        )
    if not names:
        raise ValueError(f"{rec.source} (subject {rec.subject}): no channel to write.")


def _check_labels(names, rec):
    long = [c for c in names if len(c) > 16]
    if long:
        raise ValueError(f"{rec.source}: channel name(s) {long} exceed EDF's 16-character labels.")


# --------------------------------------------------------------------------
# Signals and annotations
# --------------------------------------------------------------------------
def _record_seconds(fs) -> float:
    """1-s data records when `fs` is whole, else 30-s ones (a whole epoch)."""
    return 1.0 if float(fs).is_integer() else EPOCH_SEC


def _resample(x, rate, target):
    if rate == target:
        return np.asarray(x, dtype=np.float64)
    ratio = fractions.Fraction(target / rate).limit_denominator(1000)
    return sps.resample_poly(np.asarray(x, dtype=np.float64), ratio.numerator, ratio.denominator, axis=-1)


def _sleep_edf_signals(rec, derivations, rng) -> list:
    """The seven SC signals of one night: `(label, fs, samples, unit)`."""
    step = int(EPOCH_SEC * SLEEP_EDF_FS)
    rows = {}
    for label, weights in derivations.items():
        x = sum(w * rec.signals[rec.channels.index(c)].astype(np.float64) for c, w in weights.items())
        rows[label] = _resample(x, rec.fs, SLEEP_EDF_FS)
    n_epochs = min(len(x) for x in rows.values()) // step  # whole 30-s data records
    seconds = int(n_epochs * EPOCH_SEC)
    signals = [(label, SLEEP_EDF_FS, x[: n_epochs * step], "uV") for label, x in rows.items()]
    if "X1" in rec.channels:  # rectified, 1-s mean: the SC EMG is an envelope
        emg = np.abs(_resample(rec.signals[rec.channels.index("X1")], rec.fs, SLEEP_EDF_FS))
        emg = emg[: seconds * int(SLEEP_EDF_FS)].reshape(seconds, -1).mean(axis=1)
    else:
        emg = np.abs(rng.normal(2.0, 0.5, seconds))
    t = np.arange(seconds)
    resp = 300 * np.sin(2 * np.pi * t / 4.3) + rng.normal(0, 20, seconds)
    temp = 37.0 - 0.4 * np.sin(np.pi * t / max(seconds, 1)) + rng.normal(0, 0.01, seconds)
    return signals + [
        ("Resp oro-nasal", 1.0, resp, ""),
        ("EMG submental", 1.0, emg, "uV"),
        ("Temp rectal", 1.0, temp, "DegC"),
        ("Event marker", 1.0, np.zeros(seconds), ""),
    ]


def _runs(labels) -> list:
    """`(first_epoch, length, label)` of each run of equal labels."""
    labels = np.asarray(labels)
    edges = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [labels.size]])
    return [(int(s), int(e - s), int(labels[s])) for s, e in zip(starts, ends)]


def _hypnogram_annotations(labels, stage4_fraction, trailing_unscored_s) -> list:
    """Sleep-EDF hypnogram annotations `(onset_s, duration_s, text)` of `labels`."""
    out = []
    for first, length, label in _runs(labels):
        deep = int(round(stage4_fraction * length)) if label == 3 else 0
        if length > deep:
            out.append((first * EPOCH_SEC, (length - deep) * EPOCH_SEC, SLEEP_EDF_STAGES[label]))
        if deep:
            out.append(((first + length - deep) * EPOCH_SEC, deep * EPOCH_SEC, "Sleep stage 4"))
    if trailing_unscored_s:
        seconds = np.ceil(float(trailing_unscored_s) / EPOCH_SEC) * EPOCH_SEC
        out.append((len(labels) * EPOCH_SEC, seconds, "Sleep stage ?"))
    return out


def _disagree(labels, fraction, rng) -> np.ndarray:
    """`labels` with `round(fraction * n)` epochs moved to a neighbouring stage."""
    out = np.array(labels, dtype=np.int64)
    k = int(round(float(fraction) * out.size))
    for i in rng.choice(out.size, size=k, replace=False):
        out[i] = rng.choice(NEIGHBOUR_STAGES[int(out[i])])
    return out


def _mass_padding(rec, onset_offset) -> int:
    """Samples before epoch 0 that the loader's `round(onset * fs)` expects.

    Raises ValueError when `onset_offset` falls (nearly) half-way between two
    samples, where rounding could disagree between epochs.
    """
    pad = round(onset_offset * rec.fs)
    onsets = onset_offset + EPOCH_SEC * np.arange(rec.n_epochs)
    firsts = np.round(onsets * rec.fs).astype(np.int64)
    frac = abs(onset_offset * rec.fs - pad)
    if abs(frac - 0.5) < 0.01 or not np.array_equal(firsts, pad + rec.epoch_samples * np.arange(rec.n_epochs)):
        raise ValueError(f"`onset_offset`={onset_offset} s lies half-way between two samples at "
                         f"{rec.fs:g} Hz; choose another offset.")
    return int(pad)


def _mirror_pad(x, pad) -> np.ndarray:
    """`x (C, T)` with `pad` samples before it: its start, mirrored."""
    if pad == 0:
        return x
    head = x[:, 1: pad + 1][:, ::-1] if pad < x.shape[1] else np.zeros((x.shape[0], pad), x.dtype)
    return np.concatenate([head, x], axis=1)


def _pad_to_records(x, per_record) -> np.ndarray:
    """`x (C, T)` lengthened to whole data records with its mirrored end."""
    short = -x.shape[1] % per_record
    if short == 0:
        return x
    tail = x[:, -short - 1: -1][:, ::-1] if short < x.shape[1] else np.zeros((x.shape[0], short), x.dtype)
    return np.concatenate([x, tail], axis=1)


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------
def _header(label, fs, x, unit) -> dict:
    """An EDF signal header with the smallest whole-unit physical range holding `x`."""
    lo = float(np.floor(np.min(x))) if len(x) else -1.0
    hi = float(np.ceil(np.max(x))) if len(x) else 1.0
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    return dict(label=label, dimension=unit, sample_frequency=fs, physical_min=lo, physical_max=hi,
                digital_min=DIGITAL_MIN, digital_max=DIGITAL_MAX, transducer="", prefilter="")


def _digital(x, header) -> np.ndarray:
    """Rounds physical `x` to the digital samples of `header` (int32)."""
    lo, hi = header["physical_min"], header["physical_max"]
    step = (hi - lo) / (DIGITAL_MAX - DIGITAL_MIN)
    d = np.round((np.asarray(x, dtype=np.float64) - lo) / step + DIGITAL_MIN)
    return np.clip(d, DIGITAL_MIN, DIGITAL_MAX).astype(np.int32)


def _write_edf(path, signals, start, record_seconds=1.0, annotations=(), plus=True) -> str:
    """Writes an EDF (`plus=False`) or EDF+ file atomically; returns `path`.

    Args:
        path: the final path.
        signals: `(label, fs, samples, unit)` per signal; every signal must
            fill whole data records of `record_seconds`.
        start: start date and time.
        record_seconds: data record duration.
        annotations: `(onset_s, duration_s, text)` (EDF+ only).
        plus: EDF+ (with an annotation channel) or plain EDF.
    """
    import pyedflib

    headers = [_header(label, fs, x, unit) for label, fs, x, unit in signals]
    data = [np.ascontiguousarray(_digital(x, h)) for (_, _, x, _), h in zip(signals, headers)]

    def write(tmp):
        kind = pyedflib.FILETYPE_EDFPLUS if plus else pyedflib.FILETYPE_EDF
        w = pyedflib.EdfWriter(tmp, len(signals), file_type=kind)
        try:
            if record_seconds != 1.0:
                with warnings.catch_warnings():  # pyedflib always warns when it is set
                    warnings.simplefilter("ignore", UserWarning)
                    w.setDatarecordDuration(record_seconds)
            if headers:
                w.setSignalHeaders(headers)
            w.setStartdatetime(start)
            for onset, duration, text in annotations:
                w.writeAnnotation(onset, duration, text)
            if data:
                w.writeSamples(data, digital=True)
        finally:
            w.close()

    return _atomic(path, write)


def _write_text(path, text) -> str:
    def write(tmp):
        with open(tmp, "w", encoding="ascii", newline="\n") as f:
            f.write(text)

    return _atomic(path, write)


def _atomic(path, write) -> str:
    """Calls `write(tmp)` for a hidden temporary file beside `path`, then renames it."""
    path = os.fspath(path)
    folder, name = os.path.split(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder or ".")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
