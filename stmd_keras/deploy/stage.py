"""Staging a recording: an EDF/EDF+ file in, a hypnogram and a hypnodensity out.

`stage_recording` runs a trained model (`.keras`, SavedModel or `.tflite`,
with its model card `stmd_model.json` beside it) over a whole night with the
same preprocessing the model was trained with:

1. The file is read by `data.edf.read_edf` (pyedflib, or edfio with a warning
   when pyedflib refuses the file).
2. Each channel of the model card is found in the file by name through
   `accepted_spellings`: the ISRUC-III and MASS loaders' alias tables
   (`isruc.CHANNEL_ALIASES`, `mass.CHANNEL_ALIASES`) plus the usual spelling
   variants (case, spaces, "EEG " prefix, ":" or "_" for "-", M1/M2 for
   A1/A2, E1/E2 for LOC/ROC). `channels=` (`--channels`) names the file's
   signals instead, by position in the card's channel order.
3. The signals are converted to µV, brought to one rate (the highest among
   them, as the dataset loaders do), cut into whole 30-s epochs from the
   first sample (a trailing partial epoch is dropped with a warning) and
   passed through `data.preprocess.prepare` with the card's `fs` and
   `preprocess` settings.
4. Epochs are staged in sequences of the model's `seq_len` epochs:
   non-overlapping windows plus one aligned to the end of the night, the
   probabilities of an epoch seen twice averaged, as evaluation does
   (`SequenceSet(cover_all=True)`; TensorFlow is not needed for a `.tflite`
   model). A recording shorter than `seq_len` epochs is padded up to one
   sequence with its own epochs mirrored in time (see `_pad_epochs`); the
   padding's outputs are discarded.

`StagingResult.to_files(prefix)` writes `PREFIX.hypnogram.tsv` (`onset`,
`duration`, `stage`), `PREFIX.probabilities.csv` (`onset,W,N1,N2,N3,REM`) and
`PREFIX.png` (hypnogram above hypnodensity), each atomically, and none of them
when any fails.

Example:

>>> result = stage_recording("SC4001E0-PSG.edf", "runs/student.keras")
>>> result.hypnogram[:3]
array(['W', 'W', 'W'], dtype='<U3')
>>> paths = result.to_files("out/SC4001")
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import sys
import time
import warnings

import numpy as np

from stmd_keras.data import isruc, mass
from stmd_keras.data.edf import read_edf
from stmd_keras.data.preprocess import PreprocessConfig, prepare
from stmd_keras.data.recording import EPOCH_SEC, STAGES, DataError, Recording
# The Sleep-EDF loader's "every channel in µV at one rate" step, imported
# rather than copied (as the MASS loader does).
from stmd_keras.data.sleep_edf import _signals_at
from stmd_keras.io import atomic_path
# PLOT_ORDER and STAGE_COLORS (the hypnogram's look) live with the drawing code.
from stmd_keras.viz.hypnogram import PLOT_ORDER, STAGE_COLORS, plot_hypnogram  # noqa: F401

DEFAULT_BATCH_SIZE = 16
"""Sequences per `predict_proba` call when the model does not fix a batch size."""

SUFFIXES = {"hypnogram": ".hypnogram.tsv", "probabilities": ".probabilities.csv", "plot": ".png"}
"""Output kind -> what `to_files` appends to the prefix."""

_TYPE_WORDS = ("eeg", "eog", "emg", "ecg")
# Reference and EOG electrode synonyms: AASM's M1/M2 (mastoids) for the
# older A1/A2 (ear lobes), as ISRUC's own alias table does; E1/E2 for LOC/ROC.
_SYNONYMS = {"m1": "a1", "m2": "a2", "e1": "loc", "e2": "roc"}


# --------------------------------------------------------------------------
# Channels
# --------------------------------------------------------------------------
def _key(label) -> str:
    """The comparison key of a signal label (see `accepted_spellings`)."""
    words = str(label).strip().lower().split()
    if len(words) > 1 and words[0] in _TYPE_WORDS:
        words = words[1:]  # "EEG F4-A1" -> "F4-A1", "EEG Fpz-Cz" -> "Fpz-Cz"
    text = "".join(words).replace("_", "-").replace(":", "-")
    return "-".join(_SYNONYMS.get(part, part) for part in text.split("-"))


def accepted_spellings(name) -> tuple:
    """The file labels accepted for the model channel `name`, its own first.

    An ISRUC-III name ("F4-A1", "LOC-A2") accepts its `isruc.CHANNEL_ALIASES`
    and the MASS labels of the same electrode ("EEG F4-CLE", "EEG F4-LER",
    "EOG Left Horiz"); a MASS name ("F4") accepts its `mass.CHANNEL_ALIASES`
    and the ISRUC labels of that electrode. Every spelling is compared by
    `_key`: case, spaces, a leading "EEG"/"EOG"/"EMG"/"ECG" word, ":" or "_"
    for "-", M1/M2 for A1/A2 and E1/E2 for LOC/ROC do not matter, so "F4-A1"
    also accepts "EEG F4-M1", "f4:a1" and "F4_A1".

    >>> accepted_spellings("C4-A1")
    ('C4-A1', 'C4-M1', 'C4_A1', 'EEG C4-CLE', 'EEG C4-LER')
    """
    spellings = [str(name)]
    key = _key(name)
    for canonical, aliases in isruc.CHANNEL_ALIASES.items():
        if key in {_key(a) for a in (canonical, *aliases)}:
            electrode = canonical.split("-")[0]  # ISRUC "F4-A1" -> MASS "F4", as datasets does
            spellings += [canonical, *aliases, *mass.CHANNEL_ALIASES.get(electrode, ())]
    for canonical, aliases in mass.CHANNEL_ALIASES.items():
        if key in {_key(a) for a in (canonical, *aliases)}:
            spellings += [canonical, *aliases]
            spellings += [a for c, more in isruc.CHANNEL_ALIASES.items()
                          if c.split("-")[0] == canonical for a in (c, *more)]
    return tuple(dict.fromkeys(spellings))


def _override(labels, channels, override, where) -> dict:
    """Model channel -> file label from the user's `channels=` (see `map_channels`)."""
    if isinstance(override, str):
        override = [c.strip() for c in override.split(",")]
    if isinstance(override, dict):
        unknown = [c for c in override if c not in channels]
        if unknown:
            raise ValueError(f"`channels` names {unknown}, which are not model channels; "
                             f"the model's channels are {list(channels)}.")
        pairs = list(override.items())
    else:
        override = list(override)
        if len(override) != len(channels):
            raise ValueError(
                f"`channels` must name {len(channels)} file signals, one for each of the model's "
                f"channels {list(channels)} in that order. Received {len(override)}: {override}."
            )
        pairs = list(zip(channels, override))
    stripped = {str(label).strip(): label for label in labels}
    out = {}
    for model_channel, wanted in pairs:
        hits = [stripped[str(wanted).strip()]] if str(wanted).strip() in stripped else [
            label for label in labels if _key(label) == _key(wanted)]
        if len(hits) != 1:
            problem = "no signal" if not hits else f"several signals {hits}"
            raise DataError(
                f"{where}: {problem} labelled {wanted!r} (given for the model's channel "
                f"{model_channel!r}); the file has {list(labels)}."
            )
        out[model_channel] = hits[0]
    return out


def map_channels(labels, channels, where="", override=None) -> dict:
    """Finds the file signal of each model channel.

    Parameters
    ----------
    labels : sequence of str
        The signal labels of the file.
    channels : sequence of str
        The model card's channel names, in the model's input order.
    where : str
        The file, for error messages.
    override : sequence of str, dict, str or None
        File labels to use instead of the alias search: a sequence (or a
        comma-separated string) giving one label per model channel in the
        card's order, or a dict {model channel: file label} for some of them.

    Returns
    -------
    dict
        Model channel -> file label, in the model's channel order.

    Raises
    ------
    DataError
        A model channel has no signal in the file, or several (e.g. both
        "EEG F4-CLE" and "EEG F4-LER"); the message names the file, the
        channel, its accepted spellings and every label the file has.
    ValueError
        `override` has the wrong number of entries or names no model channel.

    Examples
    --------
    >>> map_channels(["EEG C4-M1", "E1-M2"], ["C4-A1", "LOC-A2"])
    {'C4-A1': 'EEG C4-M1', 'LOC-A2': 'E1-M2'}
    """
    channels = tuple(channels)
    forced = _override(labels, channels, override, where) if override is not None else {}
    stripped = {}
    for label in labels:
        stripped.setdefault(str(label).strip(), []).append(label)
    found = {}
    for c in channels:
        if c in forced:
            found[c] = forced[c]
            continue
        spellings = accepted_spellings(c)
        keys = {_key(s) for s in spellings}
        # The most specific match wins: the exact label, then the same name
        # spelt differently, then an alias.
        for hits in (stripped.get(c, []),
                     [x for x in labels if _key(x) == _key(c)],
                     [x for x in labels if _key(x) in keys]):
            if hits:
                break
        if len(hits) != 1:
            problem = "no signal" if not hits else f"several signals {hits}"
            raise DataError(
                f"{where}: {problem} for the model's channel {c!r} (accepted spellings "
                f"{list(spellings)}, in any case, spaces ignored, ':' or '_' for '-', M1/M2 "
                f"for A1/A2, E1/E2 for LOC/ROC); the file has {list(labels)}. Name the file's "
                f"signals for {list(channels)} with channels= (stmd stage --channels A,B,...)."
            )
        found[c] = hits[0]
    return found


# --------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------
@dataclasses.dataclass
class StagingResult:
    """The staging of one recording, one row per whole 30-s epoch.

    Args:
        source: the EDF file staged.
        hypnogram: str array `(N,)`, the most probable stage of each epoch
            (W, N1, N2, N3, REM).
        probabilities: float32 `(N, 5)`, stage probabilities per epoch, in
            the order of `stages`; rows sum to 1.
        onsets: float64 `(N,)`, epoch starts in seconds from the first sample.
        channels: model channel -> the file's signal label it was read from.
        stages: the column names of `probabilities`.
        epoch_sec: epoch duration in seconds.
        fs: the rate (Hz) the file's channels were read at, before
            resampling to the model's rate.
        dropped_samples: samples at `fs` after the last whole epoch, not
            staged.
        padded_epochs: epochs of padding added to reach one model sequence
            (0 unless the recording is shorter than the model's `seq_len`).
        start: start of the recording from the EDF header (None if absent).
        reader: "pyedflib" or "edfio", whichever read the file.
    """

    source: str
    hypnogram: np.ndarray
    probabilities: np.ndarray
    onsets: np.ndarray
    channels: dict
    stages: tuple = STAGES
    epoch_sec: float = EPOCH_SEC
    fs: float = 0.0
    dropped_samples: int = 0
    padded_epochs: int = 0
    start: datetime.datetime | None = None
    reader: str = ""

    @property
    def n_epochs(self) -> int:
        return int(self.hypnogram.size)

    @property
    def dropped_seconds(self) -> float:
        """Seconds of signal after the last whole epoch, not staged."""
        return self.dropped_samples / self.fs if self.fs else 0.0

    def stage_minutes(self) -> dict:
        """Minutes spent in each stage, {stage: minutes}, in the order of `stages`."""
        return {s: float(np.sum(self.hypnogram == s)) * self.epoch_sec / 60 for s in self.stages}

    def plot(self, title=None):
        """Returns a matplotlib `Figure`: hypnogram above, hypnodensity below.

        Drawn by `stmd_keras.viz.plot_hypnogram`: a step plot with stages W,
        REM, N1, N2, N3 from top to bottom (REM in red) above the stacked
        per-epoch probabilities; time in hours from the start. Built without
        pyplot (Agg canvas), so it works without a display.
        """
        return plot_hypnogram(self.hypnogram, probabilities=self.probabilities, onsets=self.onsets,
                              epoch_sec=self.epoch_sec, stages=self.stages,
                              title=title or f"{os.path.basename(self.source)}: {self.n_epochs} epochs "
                                             f"({self.n_epochs * self.epoch_sec / 3600:.2f} h)")

    def to_files(self, prefix) -> dict:
        """Writes the hypnogram, probabilities and plot; see `write_outputs`."""
        return write_outputs(self, prefix)


def output_paths(prefix, source=None) -> dict:
    """{"hypnogram", "probabilities", "plot"} -> the paths `write_outputs` writes.

    A `prefix` that is an existing folder, or ends with a path separator,
    means that folder with the recording's file name (without extension).
    """
    prefix = os.fspath(prefix)
    if os.path.isdir(prefix) or prefix.endswith(("/", os.sep)):
        stem = os.path.splitext(os.path.basename(source or "recording"))[0]
        prefix = os.path.join(prefix, stem)
    return {kind: prefix + suffix for kind, suffix in SUFFIXES.items()}


def write_outputs(result, prefix) -> dict:
    """Writes `PREFIX.hypnogram.tsv`, `PREFIX.probabilities.csv` and `PREFIX.png`.

    * hypnogram: tab-separated `onset`, `duration`, `stage` (seconds from the
      recording's first sample; W, N1, N2, N3, REM), one row per epoch.
    * probabilities: comma-separated `onset,W,N1,N2,N3,REM`, one row per epoch.
    * plot: `StagingResult.plot()` as a PNG.

    All three are written to temporary files first and renamed into place
    only once all are complete, so an error leaves none of them behind (and
    older files of the same names untouched).

    Parameters
    ----------
    result : StagingResult
    prefix : str or path-like
        Path prefix of the three files (see `output_paths` for a folder).

    Returns
    -------
    dict
        {"hypnogram", "probabilities", "plot"} -> path written.
    """
    paths = output_paths(prefix, result.source)
    rows = zip(result.onsets, result.hypnogram)
    hypnogram = "onset\tduration\tstage\n" + "".join(
        f"{onset:.1f}\t{result.epoch_sec:.1f}\t{stage}\n" for onset, stage in rows)
    probabilities = ",".join(("onset", *result.stages)) + "\n" + "".join(
        f"{onset:.1f}," + ",".join(f"{p:.6f}" for p in row) + "\n"
        for onset, row in zip(result.onsets, result.probabilities))
    fig = result.plot()
    with contextlib.ExitStack() as stack:  # every rename happens only if all writes succeeded
        tmp = {kind: stack.enter_context(atomic_path(path)) for kind, path in paths.items()}
        for kind, text in (("hypnogram", hypnogram), ("probabilities", probabilities)):
            with open(tmp[kind], "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
        fig.savefig(tmp["plot"], format="png", dpi=100)
    return paths


# --------------------------------------------------------------------------
# Staging
# --------------------------------------------------------------------------
def _as_stager(model):
    """A loaded stager: `model` itself, or `runtime.load_stager(model)` for a path."""
    if hasattr(model, "predict_proba") and hasattr(model, "card"):
        return model
    if isinstance(model, (str, os.PathLike)):
        from stmd_keras.deploy.runtime import load_stager

        return load_stager(model)
    raise TypeError(f"`model` must be a model path or a loaded Stager. Received: {type(model).__name__}")


def _card_settings(stager) -> tuple:
    """`(channels, PreprocessConfig, seq_len, stages)` from the stager's model card."""
    card = dict(stager.card or {})
    missing = [k for k in ("channels", "fs", "seq_len") if k not in card]
    if missing:
        raise DataError(f"the model card (stmd_model.json) lacks {missing}; it has {sorted(card)}.")
    channels = tuple(str(c) for c in card["channels"])
    epoch_sec = float(card.get("epoch_sec", EPOCH_SEC))
    if epoch_sec != EPOCH_SEC:
        raise DataError(f"the model card says epochs of {epoch_sec:g} s; only {EPOCH_SEC:g}-s epochs are staged.")
    stages = tuple(card.get("stages", STAGES))
    if sorted(stages) != sorted(STAGES):
        raise DataError(f"the model card's stages {list(stages)} are not the AASM stages {list(STAGES)}.")
    n_channels = getattr(stager, "n_channels", len(channels))
    if n_channels != len(channels):
        raise DataError(f"the model takes {n_channels} channels but its card lists {len(channels)}: {list(channels)}.")
    fs = getattr(stager, "fs", None)
    if fs is not None and abs(float(fs) - float(card["fs"])) > 1e-6:
        raise DataError(f"the model runs at {float(fs):g} Hz but its card says {float(card['fs']):g} Hz.")
    settings = {k: v for k, v in dict(card.get("preprocess") or {}).items()
                if k in ("standardize", "bandpass", "notch", "notch_q", "filter_order")}
    if settings.get("bandpass") is not None:
        settings["bandpass"] = tuple(settings["bandpass"])  # JSON gives a list
    config = PreprocessConfig(fs=float(card["fs"]), **settings)
    return channels, config, int(getattr(stager, "seq_len", card["seq_len"])), stages


def _common_rate(edf, labels, target) -> float:
    """The highest rate among `labels` (as the loaders do), or `target` if a
    30-s epoch is not a whole number of samples at it."""
    rate = max(edf.fs[label] for label in labels)
    n = EPOCH_SEC * rate
    return rate if abs(n - round(n)) <= 1e-6 else float(target)


def _pad_epochs(signals, n_epochs, seq_len, epoch_samples) -> np.ndarray:
    """Pads `signals (C, n_epochs * S)` to `seq_len` epochs with mirrored epochs.

    The padding repeats the recording's own epochs in reverse order (then
    forward again, as needed): the sequence model sees a context that looks
    like the recording rather than flat epochs it never saw in training,
    which would bias the bidirectional layer's view of the real epochs.
    """
    c = signals.shape[0]
    epochs = signals.reshape(c, n_epochs, epoch_samples)
    padded = np.pad(epochs, ((0, 0), (0, seq_len - n_epochs), (0, 0)), mode="symmetric")
    return padded.reshape(c, seq_len * epoch_samples)


def sequence_starts(n_epochs, seq_len) -> np.ndarray:
    """First epochs of the sequences that stage `n_epochs` epochs (`n_epochs >= seq_len`).

    One every `seq_len` epochs, plus one aligned to the end when they leave
    the last epochs uncovered: the sequences of
    `SequenceSet(..., seq_len, cover_all=True)`, which evaluation uses.
    """
    starts = list(range(0, n_epochs - seq_len + 1, seq_len))
    if starts[-1] + seq_len < n_epochs:
        starts.append(n_epochs - seq_len)
    return np.asarray(starts, dtype=np.int64)


def _predict(stager, signals, n_epochs, seq_len, batch_size, progress) -> np.ndarray:
    """`(n_epochs, 5)` probabilities of the epochs of `signals (C, n_epochs * S)`.

    Sequences from `sequence_starts` go through `stager.predict_proba`
    `batch_size` at a time; an epoch in two sequences gets the mean of both
    outputs (`SequenceSet.epoch_probabilities`, without TensorFlow, which a
    `.tflite` deployment does not need).
    """
    from tqdm import tqdm

    c = signals.shape[0]
    epochs = signals.reshape(c, n_epochs, -1).transpose(1, 0, 2)  # (N, C, S), a view
    starts = sequence_starts(n_epochs, seq_len)
    total = np.zeros((n_epochs, len(STAGES)), dtype=np.float64)
    count = np.zeros(n_epochs, dtype=np.int64)
    with tqdm(total=starts.size, desc="staging", unit="seq", disable=not progress) as bar:
        for first in range(0, starts.size, batch_size):
            batch = starts[first:first + batch_size]
            x = np.stack([epochs[s:s + seq_len] for s in batch]).astype(np.float32, copy=False)
            p = np.asarray(stager.predict_proba(x), dtype=np.float64)
            if p.shape != x.shape[:2] + (len(STAGES),):
                raise DataError(f"the model returned probabilities of shape {p.shape} for input "
                                f"{x.shape}; expected {x.shape[:2] + (len(STAGES),)}.")
            for s, row in zip(batch, p):
                total[s:s + seq_len] += row
                count[s:s + seq_len] += 1
            bar.update(batch.size)
    return total / count[:, None]


def stage_recording(edf_path, model, channels=None, progress=None, batch_size=None) -> StagingResult:
    """Stages every whole 30-s epoch of an EDF/EDF+ recording.

    Parameters
    ----------
    edf_path : str or path-like
        The recording (EDF or EDF+; files pyedflib refuses are read with
        edfio and a warning).
    model : str, path-like or Stager
        A `.keras` file, SavedModel folder or `.tflite` file with
        `stmd_model.json` beside it, or a `Stager` from
        `runtime.load_stager`. Its card gives the channels, rate, sequence
        length and preprocessing.
    channels : sequence of str, dict, str or None
        The file's signal labels to use for the model's channels, in the
        card's channel order (or a dict {model channel: file label}, or a
        comma-separated string). None finds them by name
        (`accepted_spellings`).
    progress : bool or None
        Show a progress bar; None shows one when stderr is a terminal.
    batch_size : int or None
        Sequences per inference call; default the model's fixed batch size,
        else `DEFAULT_BATCH_SIZE`.

    Returns
    -------
    StagingResult
        Hypnogram, probabilities, onsets and the channel mapping used.

    Warns
    -----
    UserWarning
        When a trailing partial epoch is dropped ("dropped the last 12.5 s"),
        when the recording is shorter than one model sequence and is padded,
        and when pyedflib refuses the file.

    Raises
    ------
    DataError
        The file cannot be read, a model channel is not in it (the message
        lists the file's labels), a channel has a non-voltage unit or is
        flat, or the recording is shorter than one 30-s epoch.

    Examples
    --------
    >>> r = stage_recording("night.edf", "student.keras", channels=["C3-M2", "E1-M2"])
    >>> r.to_files("out/night")
    """
    path = os.fspath(edf_path)
    stager = _as_stager(model)
    model_channels, config, seq_len, stages = _card_settings(stager)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fallback warning comes from the read below
        header = read_edf(path, channels=())
    mapping = map_channels(header.labels, model_channels, path, override=channels)
    labels = list(mapping.values())
    edf = read_edf(path, channels=list(dict.fromkeys(labels)))
    rate = _common_rate(edf, labels, config.fs)
    signals, rate = _signals_at(edf, labels, rate)
    step = int(round(EPOCH_SEC * rate))
    n_epochs = signals.shape[1] // step
    if n_epochs == 0:
        raise DataError(f"{path}: the recording lasts {signals.shape[1] / rate:g} s, shorter than "
                        f"one {EPOCH_SEC:g}-s epoch; nothing to stage.")
    dropped = signals.shape[1] - n_epochs * step
    if dropped:
        warnings.warn(f"{path}: dropped the last {dropped / rate:g} s (a partial {EPOCH_SEC:g}-s "
                      f"epoch after the {n_epochs} whole ones).", stacklevel=2)
    rec = Recording(subject=os.path.basename(path), signals=signals[:, : n_epochs * step], fs=rate,
                    channels=model_channels, labels=np.zeros(n_epochs, dtype=np.int64), source=path)
    rec = prepare(rec, config)
    padded = max(0, seq_len - n_epochs)
    if padded:
        warnings.warn(f"{path}: {n_epochs} epochs are fewer than the model's sequence of {seq_len}; "
                      f"padded with {padded} mirrored epochs, whose outputs are discarded. Staging "
                      "this short a recording has less context than the model was trained with.",
                      stacklevel=2)
        rec = dataclasses.replace(rec, signals=_pad_epochs(rec.signals, n_epochs, seq_len, rec.epoch_samples),
                                  labels=np.zeros(seq_len, dtype=np.int64))
    if batch_size is None:
        batch_size = getattr(stager, "batch_size", None) or DEFAULT_BATCH_SIZE
    if progress is None:
        progress = sys.stderr.isatty()
    probs = _predict(stager, rec.signals, rec.n_epochs, seq_len, int(batch_size), progress)[:n_epochs]
    probs /= np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)  # exact rows even from a quantised model
    return StagingResult(
        source=path,
        hypnogram=np.asarray(stages)[probs.argmax(axis=1)],
        probabilities=probs.astype(np.float32),
        onsets=np.arange(n_epochs, dtype=np.float64) * EPOCH_SEC,
        channels=mapping,
        stages=stages,
        epoch_sec=EPOCH_SEC,
        fs=float(rate),
        dropped_samples=int(dropped),
        padded_epochs=int(padded),
        start=edf.start,
        reader=edf.reader,
    )


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------
def add_arguments(parser):
    """Adds the options of `stmd stage` to the argparse `parser`."""
    parser.add_argument("recording", help="EDF/EDF+ file to stage")
    parser.add_argument("--model", required=True,
                        help=".keras file, SavedModel folder or .tflite file, with stmd_model.json beside it")
    parser.add_argument("--out", required=True, metavar="PREFIX",
                        help="writes PREFIX.hypnogram.tsv, PREFIX.probabilities.csv and PREFIX.png "
                             "(a folder: files named after the recording)")
    parser.add_argument("--channels", metavar="LABEL,LABEL,...",
                        help="the file's signal labels for the model's channels, in the model card's "
                             "order (default: found by name, with aliases)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads for inference (default 1)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help=f"sequences per inference call (default the model's, else {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                        help="no progress bar (it is off anyway when stderr is not a terminal)")
    return parser


def _say_warnings(caught):
    for w in caught:
        print(f"stmd stage: note: {w.message}", file=sys.stderr, flush=True)


def run_from_args(args, rest=None) -> StagingResult:
    """Runs `stage_recording` and `write_outputs` with the options of `add_arguments`.

    Warnings (a dropped partial epoch, padding, the edfio fallback) are
    printed as notes; errors exit with a message and write nothing.
    """
    if args.threads is not None and args.threads < 1:
        raise SystemExit(f"stmd stage: --threads must be >= 1. Received: {args.threads}")
    if args.batch_size is not None and args.batch_size < 1:
        raise SystemExit(f"stmd stage: --batch-size must be >= 1. Received: {args.batch_size}")
    began = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            from stmd_keras.deploy.runtime import load_stager

            stager = load_stager(args.model, num_threads=args.threads)
            result = stage_recording(args.recording, stager, channels=args.channels,
                                     progress=args.progress, batch_size=args.batch_size)
            paths = result.to_files(args.out)
        except (ValueError, OSError) as e:  # DataError included
            _say_warnings(w for w in caught if issubclass(w.category, UserWarning))
            raise SystemExit(f"stmd stage: {e}") from None
    _say_warnings(w for w in caught if issubclass(w.category, UserWarning))
    used = ", ".join(f"{c} <- {label!r}" for c, label in result.channels.items())
    minutes = ", ".join(f"{s} {m:.1f}" for s, m in result.stage_minutes().items())
    print(f"{result.source}: {result.n_epochs} epochs ({result.n_epochs * result.epoch_sec / 3600:.2f} h) "
          f"staged in {time.perf_counter() - began:.1f} s; channels {used}", flush=True)
    print(f"minutes per stage: {minutes}", flush=True)
    for path in paths.values():
        print(path, flush=True)
    return result
