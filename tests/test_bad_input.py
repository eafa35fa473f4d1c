"""Bad input through the one public path users take (issue 3).

Every case starts from synthetic nights written in a real dataset's layout
(`layouts.write_layout`), damages the files, and loads them the way the
runner does: `get_dataset(name).load(...)`, `preprocess.prepare` and the
cache (`cache.prepare_dataset`). Each must fail with a `DataError` whose
message names the file and the problem, or do the documented thing (fall
back to edfio, resample, rebuild a corrupt cache file) and say so; and no
half-written file may be left behind (no hidden temporary file anywhere, no
cache file for a refused recording).

The interrupted download (a `.part` file resumed, a hash mismatch leaving
no file) is covered by tests/test_download.py and not repeated here.
"""

import fractions
import os
import re
import shutil

import numpy as np
import pytest
from scipy import signal as sps

from stmd_keras.data import layouts
from stmd_keras.data.cache import cache_folder, prepare_dataset
from stmd_keras.data.datasets import get_dataset
from stmd_keras.data.edf import read_annotations, read_edf
from stmd_keras.data.preprocess import PreprocessConfig, prepare
from stmd_keras.data.recording import DataError, Recording
from stmd_keras.data.synthetic import generate

pytestmark = pytest.mark.filterwarnings("ignore:.*dropping the last:UserWarning")

FS = {"isruc": 200, "sleep-edf": 100, "mass": 256}
"""The native rate of each layout (the rate `generate` writes it at)."""
LAYOUTS = list(FS)
N_EPOCHS = 40

DROPPED = {"isruc": "F4-A1", "sleep-edf": "EEG Pz-Oz", "mass": "EEG F4-CLE"}
"""A channel of the loaded set, as the file labels it ..."""
REQUESTED = {"isruc": "F4-A1", "sleep-edf": "EEG Pz-Oz", "mass": "F4"}
"""... and as the loader is asked for it."""
FLAT_SOURCE = {"isruc": "F4-A1", "sleep-edf": "O1-A2", "mass": "F4-A1"}
"""The ISRUC-named channel written flat, and the loaded channel it becomes."""
FLAT_LOADED = {"isruc": "F4-A1", "sleep-edf": "EEG Pz-Oz", "mass": "F4"}


# -- helpers ------------------------------------------------------------------

def channels(name):
    return get_dataset(name).channels_for("eeg_eog6")[0]  # Sleep-EDF falls back to its three


def config(name):
    return PreprocessConfig(fs=100, channels=channels(name))


def write(name, folder, n=1, fs=None, n_epochs=N_EPOCHS, edit=None, **options):
    """Writes `n` synthetic nights in the layout `name`; returns `(folder, paths, recordings)`.

    `paths[0]` is the first night's PSG (`N.rec` for ISRUC), `paths[1]` its
    label file (`N_1.txt`, the hypnogram, the Base file).
    """
    recs = generate(n, seed=3, fs=fs or FS[name], n_epochs=n_epochs)
    if edit is not None:
        edit(recs)
    paths = layouts.write_layout(name, recs, folder, **options)
    return os.fspath(folder), paths, recs


def load(name, folder, **options):
    """What the runner does: every recording of the folder, with the set's channels."""
    return get_dataset(name).load(folder, channels(name), **options)


def rewrite_edf(path, drop=(), factor=None, record_seconds=None, annotations=None):
    """Re-writes the EDF `path` with the layouts' writer, changed.

    Args:
        drop: signal labels to leave out.
        factor: resample the signals at the file's highest rate by this
            factor (the 1-Hz Sleep-EDF channels keep theirs).
        record_seconds: new data record duration; signals are lengthened
            to whole records by repeating their last sample.
        annotations: new EDF+ annotations (default: the file's own).
    """
    edf = read_edf(path)
    with open(path, "rb") as f:
        head = f.read(256)
    seconds = record_seconds or float(head[244:252])
    top = max(edf.fs.values(), default=0)
    signals = []
    for label in edf.labels:
        if label in drop:
            continue
        fs, x = edf.fs[label], edf.signals[label]
        if factor is not None and fs == top:
            ratio = fractions.Fraction(factor).limit_denominator(100)
            fs, x = fs * ratio.numerator / ratio.denominator, sps.resample_poly(x, ratio.numerator, ratio.denominator)
        short = -len(x) % round(fs * seconds)
        signals.append((label, fs, np.pad(x, (0, short), mode="edge"), edf.units[label]))
    layouts._write_edf(path, signals, edf.start, record_seconds=seconds,
                       annotations=edf.annotations if annotations is None else annotations,
                       plus=head[192:197] == b"EDF+C")


def names_files(error, *files):
    message = str(error)
    for f in files:
        assert os.fspath(f) in message, (os.fspath(f), message)


def no_partial_output(root):
    """No hidden temporary file or folder anywhere under `root`."""
    left = [os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files
            if n.startswith(".") or n.endswith(".tmp")]
    assert left == []


def refused(name, folder, tmp_path, problem, *files, **options):
    """Asserts loading and caching `folder` both raise DataError naming `files` and `problem`.

    The cache must then hold no file for the refused recording. Returns the message.
    """
    with pytest.raises(DataError, match=problem) as info:
        load(name, folder, **options)
    names_files(info.value, *files)
    cache_dir = tmp_path / "cache"
    with pytest.raises(DataError, match=problem) as cached:
        prepare_dataset(name, folder, cache_dir, config(name), progress=False, **options)
    names_files(cached.value, *files)
    built = cache_folder(cache_dir, name, config(name), options)
    assert not os.path.exists(built) or os.listdir(built) == ["settings.json"]
    no_partial_output(tmp_path)
    return str(info.value)


# -- missing channel ------------------------------------------------------------

@pytest.mark.parametrize("name", LAYOUTS)
def test_missing_required_channel_lists_what_the_file_has(name, tmp_path):
    folder, paths, _ = write(name, tmp_path / "raw")
    before = read_edf(paths[0], channels=()).labels
    rewrite_edf(paths[0], drop=[DROPPED[name]])
    message = refused(name, folder, tmp_path, r"(no channel|no signal)", paths[0])
    # The message names the wanted channel and lists every signal the file has.
    assert repr(REQUESTED[name]) in message
    assert re.search(r"the file has \[", message)
    assert all(repr(label) in message for label in before if label != DROPPED[name])


# -- sampling rate --------------------------------------------------------------

@pytest.mark.parametrize("name, fs, factor", [
    ("isruc", 333, None),        # written at 333 Hz
    ("mass", 250, None),         # written at 250 Hz
    ("sleep-edf", 100, 1.28),    # written at 100 Hz, EEG/EOG rewritten at 128 Hz
])
def test_unexpected_sampling_rate_is_resampled_to_100_hz(name, fs, factor, tmp_path):
    folder, paths, recs = write(name, tmp_path / "raw", fs=fs)
    if factor is None:  # the written night, resampled in memory
        reference = recs[0].select(channels("isruc"))
    else:               # the intact file, loaded at its 100 Hz
        reference = load(name, folder)[0]
        rewrite_edf(paths[0], factor=factor)
    # Loading keeps the file's rate; `prepare` (and so the cache) resamples to 100 Hz.
    (rec,) = load(name, folder)
    assert rec.fs == pytest.approx(fs * (factor or 1)) and rec.n_epochs == reference.n_epochs
    cached = prepare_dataset(name, folder, tmp_path / "cache", config(name), progress=False)[0]
    expected = prepare(reference, fs=100).signals
    for got in (prepare(rec, config(name)).signals, cached.signals):
        assert got.shape == expected.shape
        for a, b in zip(got, expected):
            assert np.corrcoef(a, b)[0, 1] > 0.999
    no_partial_output(tmp_path)


@pytest.mark.parametrize("name", LAYOUTS)
def test_rate_without_whole_samples_per_epoch_is_refused_with_a_reason(name, tmp_path):
    folder, paths, _ = write(name, tmp_path / "raw")
    # 7-s data records: FS * 10/7 Hz, e.g. 142.857 Hz, is not a whole number of samples per 30 s.
    rewrite_edf(paths[0], factor=10 / 7, record_seconds=7.0)
    refused(name, folder, tmp_path, r"\d+\.\d+ Hz.*not a whole number of samples.*fs=", paths[0])
    # The reason says how to go on: the loaders' `fs` resamples on loading.
    (rec,) = load(name, folder, fs=100)
    assert rec.fs == 100 and rec.n_epochs > 0


# -- NaN and flat channels -----------------------------------------------------

def test_nan_samples_in_memory_name_the_channel():
    rec = generate(1, seed=3, fs=100, n_epochs=10)[0]
    signals = rec.signals.copy()
    signals[rec.channels.index("C4-A1"), 1234] = np.nan
    with pytest.raises(DataError, match=r"night\.edf.*NaN or infinite samples in channel\(s\) \['C4-A1'\]"):
        Recording(rec.subject, signals, rec.fs, rec.channels, rec.labels, source="night.edf")


@pytest.mark.parametrize("name", LAYOUTS)
def test_flat_channel_names_the_file_and_the_channel(name, tmp_path):
    # EDF cannot hold NaN; a dead electrode is a constant digital value.
    def flatten(recs):
        recs[0].signals[recs[0].channels.index(FLAT_SOURCE[name])] = 5.0

    folder, paths, _ = write(name, tmp_path / "raw", edit=flatten)
    (rec,) = load(name, folder)  # loading is fine; standardising is not
    problem = rf"\[{FLAT_LOADED[name]!r}\] are flat"
    with pytest.raises(DataError, match=problem) as info:
        prepare(rec, config(name))
    names_files(info.value, paths[0])
    cache_dir = tmp_path / "cache"
    with pytest.raises(DataError, match=problem) as info:
        prepare_dataset(name, folder, cache_dir, config(name), progress=False)
    names_files(info.value, paths[0])
    assert os.listdir(cache_folder(cache_dir, name, config(name))) == ["settings.json"]
    no_partial_output(tmp_path)


# -- damaged and non-compliant EDF ---------------------------------------------

EDF_FILES = [("isruc", 0), ("sleep-edf", 0), ("sleep-edf", 1), ("mass", 0), ("mass", 1)]
"""(layout, index into the written paths) of every EDF file: PSGs and EDF+ label files."""


@pytest.mark.parametrize("name, which", EDF_FILES)
def test_truncated_edf_names_the_file(name, which, tmp_path):
    folder, paths, _ = write(name, tmp_path / "raw")
    with open(paths[which], "r+b") as f:
        f.truncate(os.path.getsize(paths[which]) - 7)
    refused(name, folder, tmp_path, r"file is truncated: it has \d+ bytes but its header", paths[which])


@pytest.mark.parametrize("name, which", EDF_FILES)
def test_non_compliant_edf_is_read_by_the_fallback_reader(name, which, tmp_path):
    folder, paths, _ = write(name, tmp_path / "raw")
    intact = load(name, folder)[0]
    # A patient name in Latin-1, as some exporters write it: pyedflib refuses
    # the file (EDF headers are ASCII), edfio reads it.
    with open(paths[which], "r+b") as f:
        f.seek(8)
        f.write("Jérôme".ljust(80).encode("latin-1"))
    with pytest.warns(UserWarning, match=rf"{re.escape(paths[which])}: pyedflib refused .*edfio"):
        (rec,) = load(name, folder)
    np.testing.assert_array_equal(rec.signals, intact.signals)
    np.testing.assert_array_equal(rec.labels, intact.labels)


# -- labels: length, codes -----------------------------------------------------

def _lines(path, keep=None, add=0):
    with open(path) as f:
        codes = [line for line in f.read().splitlines() if line.strip()]
    codes = codes[:keep] + ["0"] * add
    with open(path, "w") as f:
        f.write("\n".join(codes) + "\n")


@pytest.mark.parametrize("name, longer", [
    ("isruc", True), ("isruc", False), ("sleep-edf", True), ("mass", True),
])
def test_label_file_longer_or_shorter_than_the_signal_beyond_the_trim(name, longer, tmp_path):
    if name == "isruc":
        # The documented trim: up to 30 label lines more or fewer than the
        # signal's epochs are cut with a warning; 31 is an error.
        folder, paths, _ = write(name, tmp_path / "raw", extra_label_lines=0)
        if longer:
            _lines(paths[1], add=30)
        else:
            _lines(paths[1], keep=N_EPOCHS - 30)
        with pytest.warns(UserWarning, match=rf"{re.escape(paths[1])} has \d+ labels .* dropping the last 30"):
            assert load(name, folder)[0].n_epochs == N_EPOCHS - (0 if longer else 30)
        if longer:
            _lines(paths[1], add=1)
        else:
            _lines(paths[1], keep=N_EPOCHS - 31)
        problem = rf"has {N_EPOCHS + 31 if longer else N_EPOCHS - 31} labels but .* has {N_EPOCHS} whole"
    else:
        # Label epochs past the end of the PSG (beyond the trailing "?" of the
        # real files): the label file of a longer night beside this PSG.
        folder, paths, _ = write(name, tmp_path / "raw")
        _, longer_paths, _ = write(name, tmp_path / "longer", n_epochs=2 * N_EPOCHS)
        shutil.copyfile(longer_paths[1], paths[1])
        problem = r"scores epochs .* but .* has (only )?\d+ s of signal"
    refused(name, folder, tmp_path, problem, paths[0], paths[1])


@pytest.mark.parametrize("name", ["sleep-edf", "mass"])
def test_label_file_shorter_than_the_psg_keeps_the_scored_epochs(name, tmp_path):
    # Documented: unscored signal (after the last label) is dropped, as the
    # real PSGs run on past the scoring. Not an error.
    folder, paths, _ = write(name, tmp_path / "raw", n_epochs=2 * N_EPOCHS)
    _, shorter_paths, _ = write(name, tmp_path / "shorter")
    shutil.copyfile(shorter_paths[1], paths[1])
    (rec,) = load(name, folder)
    assert 0 < rec.n_epochs <= N_EPOCHS


def _edit_annotations(path, text):
    """Replaces the text of the first stage annotation of an EDF+ label file."""
    notes = read_annotations(path)
    notes[0] = (notes[0][0], notes[0][1], text)
    rewrite_edf(path, annotations=notes)


@pytest.mark.parametrize("name, code", [
    ("isruc", "7"), ("isruc", "4"), ("sleep-edf", "Sleep stage 5"), ("mass", "Sleep stage 4"),
])
def test_unknown_stage_code_names_the_file_and_the_code(name, code, tmp_path):
    folder, paths, _ = write(name, tmp_path / "raw")
    if name == "isruc":
        with open(paths[1]) as f:
            lines = f.read().splitlines()
        lines[4] = code
        with open(paths[1], "w") as f:
            f.write("\n".join(lines) + "\n")
        problem = rf"line 5: unknown stage code '{code}'"
    else:
        _edit_annotations(paths[1], code)
        problem = rf"annotation '{code}' at onset [\d.]+ s: unknown"
    refused(name, folder, tmp_path, problem, paths[1])


# -- empty recordings ----------------------------------------------------------

@pytest.mark.parametrize("name", LAYOUTS)
def test_psg_without_data_records_is_an_empty_recording(name, tmp_path):
    folder, paths, _ = write(name, tmp_path / "raw")
    with open(paths[0], "rb") as f:
        head = f.read(256)
        header = head + f.read(int(head[184:192]) - 256)
    with open(paths[0], "wb") as f:  # the header alone, saying 0 data records
        f.write(header[:236] + b"0".ljust(8) + header[244:])
    refused(name, folder, tmp_path, r"no data records", paths[0])


@pytest.mark.parametrize("name", LAYOUTS)
def test_no_labelled_epoch_is_an_error(name, tmp_path):
    folder, paths, _ = write(name, tmp_path / "raw")
    if name == "isruc":
        with open(paths[1], "w") as f:
            f.write("\n\n")
        problem = r"no stage codes"
    else:
        notes = [(onset, duration, "Sleep stage ?") for onset, duration, _ in read_annotations(paths[1])]
        rewrite_edf(paths[1], annotations=notes)
        problem = r"no scored epoch|every stage epoch is 'Sleep stage \?'"
    refused(name, folder, tmp_path, problem, paths[1])


# -- orphans -------------------------------------------------------------------

@pytest.mark.parametrize("name", LAYOUTS)
def test_hypnogram_without_a_matching_psg_is_named(name, tmp_path):
    folder, paths, _ = write(name, tmp_path / "raw", n=2)
    per_night = len(paths) // 2
    second_psg, second_labels = paths[per_night], paths[per_night + 1]
    os.remove(second_psg)
    # Not silently one night fewer: the orphaned label file is named.
    refused(name, folder, tmp_path, r"no matching", second_labels)


# -- cache ---------------------------------------------------------------------

def _garbage(path):
    with open(path, "wb") as f:
        f.write(b"not an HDF5 file\n" * 64)


def _truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


@pytest.mark.parametrize("damage", [_garbage, _truncate])
@pytest.mark.parametrize("name", LAYOUTS)
def test_corrupted_cache_file_is_rebuilt_with_a_warning(name, damage, tmp_path):
    folder, _, _ = write(name, tmp_path / "raw")
    cache_dir = tmp_path / "cache"
    good = prepare_dataset(name, folder, cache_dir, config(name), progress=False)[0].signals.copy()
    built = cache_folder(cache_dir, name, config(name))
    (h5,) = [n for n in os.listdir(built) if n.endswith(".h5")]
    damage(os.path.join(built, h5))
    with pytest.warns(UserWarning, match=rf"rebuilding corrupt cache file .*{h5}: "
                                         r"(not a readable HDF5|truncated)"):
        (rec,) = prepare_dataset(name, folder, cache_dir, config(name), progress=False)
    np.testing.assert_array_equal(rec.signals, good)
    assert sorted(os.listdir(built)) == sorted([h5, "settings.json"])
    no_partial_output(tmp_path)
