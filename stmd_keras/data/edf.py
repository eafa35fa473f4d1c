"""Reading EDF/EDF+ files: pyedflib first, edfio when pyedflib refuses the file.

pyedflib is strict: it rejects headers that break the EDF+ rules even when the
data are fine (the DREAMS excerpts fail on their "Digital Minimum"). edfio is
more lenient, so `read_edf` falls back to it and says so in a warning.
When pyedflib accepts a file, it reads the header and the annotations, and
the samples are decoded with edfio's vectorised numpy path, which is about
seven times faster than pyedflib's per-record `readSignal` on a whole night
(`bench/preprocess.py`); pyedflib decodes them only if edfio cannot.
Leniency must not hide damage, though: edfio silently drops an incomplete last
data record, so the file size is checked against the header first and a
truncated file is always a `DataError`.

Example:

>>> edf = read_edf("SC4001E0-PSG.edf", channels=["EEG Fpz-Cz"])
>>> x = to_microvolts(edf.signals["EEG Fpz-Cz"], edf.units["EEG Fpz-Cz"])
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import warnings

import numpy as np

from stmd_keras.data.recording import DataError

_MICROVOLTS_PER = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6}
"""Factor from a physical dimension (lower case) to µV. Both the micro sign
(U+00B5) and the Greek mu (U+03BC) occur in real headers."""


@dataclasses.dataclass
class EdfData:
    """The contents of one EDF/EDF+ file.

    Args:
        path: the file read.
        labels: all signal labels in the file, in file order (EDF+
            annotation channels excluded).
        signals: label -> float64 array in physical units, for the loaded
            signals only.
        fs: label -> sampling rate in Hz, for the loaded signals.
        units: label -> physical dimension as written in the header.
        start: start of the recording (None when the header's date is
            anonymised and the reader cannot parse it).
        duration: duration of the recording in seconds (0 for an
            annotation-only file).
        annotations: list of `(onset_s, duration_s, text)`, onset relative to
            `start`; `duration_s` is None when the file gives none.
        reader: "pyedflib" or "edfio", whichever read the file.
    """

    path: str
    labels: tuple
    signals: dict
    fs: dict
    units: dict
    start: datetime.datetime | None
    duration: float
    annotations: list
    reader: str


def to_microvolts(signal, unit: str, where: str = "") -> np.ndarray:
    """Returns `signal` converted from `unit` to µV, as float64.

    `unit` is an EDF physical dimension: "uV", "µV", "mV" or "V", in any case.
    Anything else raises `DataError` naming the unit (and `where`, e.g. the
    file and channel, when given).
    """
    factor = _MICROVOLTS_PER.get(str(unit).strip().lower())
    if factor is None:
        prefix = f"{where}: " if where else ""
        raise DataError(
            f"{prefix}unknown physical unit {unit!r}; expected one of uV, µV, mV, V "
            "(a non-voltage channel cannot be given in µV)."
        )
    return np.asarray(signal, dtype=np.float64) * factor


def _check_size(path: str) -> None:
    """Raises `DataError` when the file is shorter than its header says."""
    with open(path, "rb") as f:
        head = f.read(256)
        try:
            n_header = int(head[184:192])
            n_records = int(head[236:244])
            n_signals = int(head[252:256])
            f.seek(256 + n_signals * 216)  # the samples-per-record field
            per_record = [int(f.read(8)) for _ in range(n_signals)]
        except ValueError:
            return  # a malformed header: leave the diagnosis to the readers
    if n_records < 0:  # -1: "unknown", allowed while a recording is running
        return
    if n_records == 0:
        raise DataError(f"{path}: the file holds no data records (an empty recording).")
    sample_bytes = 3 if head[:1] == b"\xff" else 2  # BDF stores 24-bit samples
    expected = n_header + n_records * sum(per_record) * sample_bytes
    actual = os.path.getsize(path)
    if actual < expected:
        raise DataError(
            f"{path}: file is truncated: it has {actual} bytes but its header "
            f"({n_records} data records) says {expected}. Re-download or re-export it."
        )


def _missing(path, labels, channels):
    missing = [c for c in channels if c not in labels]
    if missing:
        raise DataError(f"{path}: no signal labelled {missing}; the file has {list(labels)}.")
    doubled = sorted({c for c in channels if labels.count(c) > 1})
    if doubled:
        raise DataError(
            f"{path}: label(s) {doubled} occur more than once; pass `channels=` "
            f"to pick unambiguous ones from {list(labels)}."
        )


def _read_pyedflib(path, channels) -> EdfData:
    import pyedflib

    with pyedflib.EdfReader(path) as f:
        labels = tuple(f.getSignalLabels())
        wanted = labels if channels is None else tuple(channels)
        _missing(path, labels, wanted)
        idx = {c: labels.index(c) for c in wanted}
        onsets, durations, texts = f.readAnnotations()
        try:
            signals = _decode_edfio(path, wanted) if wanted else {}
        except Exception:  # edfio dislikes something pyedflib accepted
            signals = {c: np.asarray(f.readSignal(i), dtype=np.float64) for c, i in idx.items()}
        return EdfData(
            path=path,
            labels=labels,
            signals=signals,
            fs={c: float(f.getSampleFrequency(i)) for c, i in idx.items()},
            units={c: f.getPhysicalDimension(i).strip() for c, i in idx.items()},
            start=f.getStartdatetime(),
            duration=float(f.getFileDuration()),
            # pyedflib writes -1 for "no duration", edfio None: keep None.
            annotations=[(float(o), float(d) if d >= 0 else None, str(t))
                         for o, d, t in zip(onsets, durations, texts)],
            reader="pyedflib",
        )


def _decode_edfio(path, wanted) -> dict:
    """label -> physical samples (float64) of the `wanted` labels, read by edfio."""
    import edfio

    by_label = {s.label: s for s in edfio.read_edf(path, lazy_load_data=True).signals}
    return {c: np.asarray(by_label[c].data, dtype=np.float64) for c in wanted}


def _read_edfio(path, channels) -> EdfData:
    import edfio

    edf = edfio.read_edf(path)
    by_label = {}
    for s in edf.signals:
        by_label.setdefault(s.label, []).append(s)
    labels = tuple(s.label for s in edf.signals)
    wanted = labels if channels is None else tuple(channels)
    _missing(path, labels, wanted)
    try:
        start = datetime.datetime.combine(edf.startdate, edf.starttime)
    except Exception:  # edfio raises for an anonymised ("X") start date
        start = None
    return EdfData(
        path=path,
        labels=labels,
        signals={c: np.asarray(by_label[c][0].data, dtype=np.float64) for c in wanted},
        fs={c: float(by_label[c][0].sampling_frequency) for c in wanted},
        units={c: by_label[c][0].physical_dimension.strip() for c in wanted},
        start=start,
        duration=float(edf.duration),
        annotations=[(float(a.onset), None if a.duration is None else float(a.duration), a.text)
                     for a in edf.annotations],
        reader="edfio",
    )


def read_edf(path, channels=None) -> EdfData:
    """Reads an EDF/EDF+ file into an `EdfData`.

    Parameters
    ----------
    path : str or path-like
    channels : sequence of str or None
        Labels of the signals to load, matched exactly; None loads all.
        An empty sequence loads only the header and the annotations.

    Returns
    -------
    EdfData
        `reader` says which library read the file: pyedflib, or edfio when
        pyedflib refused it (a `UserWarning` then names the file and why).

    Raises
    ------
    DataError
        The file is missing, truncated or empty (no data records), a
        requested label is not in it, or neither pyedflib nor edfio can
        read it (both errors are given).
    """
    path = os.fspath(path)
    if isinstance(channels, str):
        channels = (channels,)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file.")
    _check_size(path)
    try:
        return _read_pyedflib(path, channels)
    except DataError:
        raise
    except Exception as strict_error:
        try:
            data = _read_edfio(path, channels)
        except DataError:
            raise
        except Exception as lenient_error:
            raise DataError(
                f"{path}: cannot read as EDF/EDF+. pyedflib: {strict_error}; "
                f"edfio: {lenient_error}"
            ) from lenient_error
        warnings.warn(
            f"{path}: pyedflib refused the file ({strict_error}); read it with edfio instead.",
            stacklevel=2,
        )
        return data


def read_annotations(path) -> list:
    """Returns the EDF+ annotations of `path` as a list of `(onset_s, duration_s, text)`.

    Meant for annotation-only files such as hypnograms; no signal is loaded.
    Reading, fallback and errors are those of `read_edf`.
    """
    return read_edf(path, channels=()).annotations
