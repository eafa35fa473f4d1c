import dataclasses
import functools
import json
import os
import shutil
import warnings

import h5py
import numpy as np
import pyedflib
import pytest

from stmd_keras.data import cache
from stmd_keras.data.cache import (
    CacheError,
    cache_folder,
    prepare_dataset,
    read_cached,
    settings_hash,
)
from stmd_keras.data.datasets import get_dataset
from stmd_keras.data.preprocess import PreprocessConfig, prepare
from stmd_keras.data.recording import DataError

FS = 200
EPOCHS = 40
FILE_CHANNELS = ("C3-A2", "F4-A1", "LOC-A2", "X1")
CONFIG = PreprocessConfig(fs=100, channels=("F4-A1", "C3-A2"), bandpass=(0.3, 35), notch=50)
KEYS = ["1", "2", "3"]


def write_subject(root, n, n_epochs=EPOCHS):
    """`root/N/N.rec` (EDF, 200 Hz, µV) and `root/N/N_1.txt` as in the raw ISRUC-III release."""
    folder = root / str(n)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(int(n))
    t = np.arange(n_epochs * 30 * FS) / FS
    signals = [20 * rng.standard_normal(t.size) + 30 * np.sin(2 * np.pi * (k + 1) * t)
               for k in range(len(FILE_CHANNELS))]
    w = pyedflib.EdfWriter(str(folder / f"{n}.rec"), len(signals), file_type=pyedflib.FILETYPE_EDF)
    try:
        w.setSignalHeaders([
            dict(label=c, dimension="uV", sample_frequency=FS, physical_min=-500.0, physical_max=500.0,
                 digital_min=-32768, digital_max=32767, transducer="", prefilter="")
            for c in FILE_CHANNELS
        ])
        w.writeSamples([np.ascontiguousarray(x) for x in signals])
    finally:
        w.close()
    codes = rng.choice([0, 1, 2, 3, 5], n_epochs)
    (folder / f"{n}_1.txt").write_text("\n".join(map(str, codes)) + "\n\n")


@pytest.fixture
def raw(tmp_path):
    root = tmp_path / "raw"
    for n in KEYS:
        write_subject(root, n)
    return root


@pytest.fixture
def loads(monkeypatch):
    """The keys the ISRUC loader is called with (it still loads)."""
    calls = []
    cls = type(get_dataset("isruc"))
    original = cls.load_recording

    @functools.wraps(original)
    def counting(self, data_dir, key, *args, **kwargs):
        calls.append(key)
        return original(self, data_dir, key, *args, **kwargs)

    monkeypatch.setattr(cls, "load_recording", counting)
    return calls


def folder_of(cache_dir, config=CONFIG, **options):
    return cache_folder(cache_dir, "isruc", config, options)


def build(raw, cache_dir, config=CONFIG, **kwargs):
    return prepare_dataset("isruc", raw, cache_dir, config, progress=False, **kwargs)


def test_first_call_builds_second_reads_the_same_arrays_without_loading(raw, tmp_path, loads, capsys):
    cache_dir = tmp_path / "cache"
    built = prepare_dataset("isruc", raw, cache_dir, CONFIG)
    assert loads == KEYS
    folder = folder_of(cache_dir)
    assert os.path.dirname(folder) == str(cache_dir / "isruc")
    assert sorted(os.listdir(folder)) == ["1.h5", "2.h5", "3.h5", "settings.json"]
    out = capsys.readouterr().out
    assert all(f"isruc {k}: built {os.path.join(folder, k + '.h5')}" in out for k in KEYS)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cached = prepare_dataset("isruc", raw, cache_dir, CONFIG)
    assert loads == KEYS  # no second load
    out = capsys.readouterr().out
    assert all(f"isruc {k}: cached" in out for k in KEYS) and "built" not in out

    for key, a, b in zip(KEYS, built, cached):
        expected = prepare(get_dataset("isruc").load_recording(raw, key, CONFIG.channels), CONFIG)
        for rec in (a, b):
            assert rec.signals.shape == (2, EPOCHS * 3000) and rec.signals.dtype == np.float32
            np.testing.assert_array_equal(rec.signals, expected.signals)
            np.testing.assert_array_equal(rec.labels, expected.labels)
            assert (rec.subject, rec.channels, rec.fs, rec.source) == (
                f"ISRUC3-0{key}", ("F4-A1", "C3-A2"), 100.0, str(raw / key / f"{key}.rec"))


def test_settings_json_describes_the_hash_folder(raw, tmp_path):
    build(raw, tmp_path, trim_last=2)
    folder = folder_of(tmp_path, trim_last=2)
    about = json.loads(open(os.path.join(folder, "settings.json")).read())
    assert about["settings_hash"] == os.path.basename(folder)
    assert about["dataset"] == "isruc" and about["cache_version"] == cache.CACHE_VERSION
    assert about["preprocess"] == {"fs": 100, "channels": ["F4-A1", "C3-A2"], "standardize": True,
                                   "bandpass": [0.3, 35], "notch": 50, "notch_q": 30, "filter_order": 2}
    assert about["load_options"] == {"scorer": 1, "trim_last": 2, "form": "auto"}


def test_settings_hash_is_stable_and_covers_every_setting():
    base = settings_hash("isruc", CONFIG, {})
    assert len(base) == 16 and int(base, 16) >= 0
    # The same settings spelled differently: explicit loader defaults, 50 vs 50.0.
    assert settings_hash("isruc", CONFIG) == base
    assert settings_hash("isruc", dataclasses.replace(CONFIG, notch=50.0), {"scorer": 1, "trim_last": 0}) == base
    others = [
        settings_hash("isruc", dataclasses.replace(CONFIG, **change))
        for change in ({"fs": 50, "bandpass": (0.3, 20)}, {"bandpass": (0.5, 35)}, {"bandpass": None}, {"notch": 60},
                       {"notch_q": 10}, {"filter_order": 4}, {"standardize": False},
                       {"channels": ("C3-A2", "F4-A1")}, {"channels": None})
    ]
    others += [settings_hash("isruc", CONFIG, {"trim_last": 30}), settings_hash("isruc", CONFIG, {"scorer": 2}),
               settings_hash("sleep-edf", CONFIG)]
    assert len({base, *others}) == len(others) + 1
    with pytest.raises(TypeError, match="PreprocessConfig"):
        settings_hash("isruc", {"fs": 100})


def test_a_changed_setting_builds_into_another_folder(raw, tmp_path, loads):
    first = build(raw, tmp_path)
    other = dataclasses.replace(CONFIG, bandpass=(0.5, 30))
    second = build(raw, tmp_path, other)
    assert loads == KEYS + KEYS
    assert folder_of(tmp_path) != folder_of(tmp_path, other)
    assert sorted(os.listdir(tmp_path / "isruc")) == sorted(
        os.path.basename(folder_of(tmp_path, c)) for c in (CONFIG, other))
    assert not np.allclose(first[0].signals, second[0].signals)
    build(raw, tmp_path)  # switching back costs nothing
    assert loads == KEYS + KEYS


def test_subjects_selects_what_is_built(raw, tmp_path, loads):
    (rec,) = build(raw, tmp_path, subjects=["ISRUC3-02"])
    assert loads == ["2"] and rec.subject == "ISRUC3-02"
    assert sorted(os.listdir(folder_of(tmp_path))) == ["2.h5", "settings.json"]


def flip_signal_byte(path):
    with h5py.File(path, "r") as f:
        offset = f["signals"].id.get_offset()
    with open(path, "r+b") as f:  # the low mantissa byte of sample 1000: stays finite
        f.seek(offset + 4 * 1000)
        byte = f.read(1)[0]
        f.seek(offset + 4 * 1000)
        f.write(bytes([byte ^ 0x01]))


def truncate(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def garbage(path):
    with open(path, "wb") as f:
        f.write(b"this is not an HDF5 file\n" * 100)


@pytest.mark.parametrize("damage, reason", [
    (flip_signal_byte, r"CRC32 mismatch in 'signals'"),
    (truncate, r"truncated|not a readable HDF5"),
    (garbage, r"not a readable HDF5 cache file"),
])
def test_a_damaged_file_is_detected_and_rebuilt_with_a_warning(raw, tmp_path, loads, damage, reason):
    good = build(raw, tmp_path)[1].signals.copy()
    path = os.path.join(folder_of(tmp_path), "2.h5")
    damage(path)
    with pytest.raises(CacheError, match=reason) as info:
        read_cached(path)
    assert path in str(info.value) and isinstance(info.value, DataError)
    with pytest.warns(UserWarning, match=rf"rebuilding corrupt cache file .*2\.h5: ({reason})"):
        recs = build(raw, tmp_path)
    assert loads == KEYS + ["2"]
    np.testing.assert_array_equal(recs[1].signals, good)
    np.testing.assert_array_equal(read_cached(path).signals, good)


def test_verify_false_skips_the_crc_pass(raw, tmp_path, loads):
    build(raw, tmp_path)
    path = os.path.join(folder_of(tmp_path), "1.h5")
    before = read_cached(path).signals.copy()
    flip_signal_byte(path)
    after = read_cached(path, verify=False).signals
    assert np.count_nonzero(after != before) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(raw, tmp_path, verify=False)
    assert loads == KEYS


def set_attr(name, value):
    def damage(path):
        with h5py.File(path, "r+") as f:
            f.attrs[name] = value
    return damage


def del_item(name):
    def damage(path):
        with h5py.File(path, "r+") as f:
            del (f.attrs if name in f.attrs else f)[name]
    return damage


def rechunk(path):
    with h5py.File(path, "r+") as f:
        x = f["signals"][()]
        del f["signals"]
        f.create_dataset("signals", data=x, chunks=(1, 1000))


@pytest.mark.parametrize("damage, message", [
    (set_attr("cache_version", 99), rf"cache version 99, expected {cache.CACHE_VERSION}"),
    (set_attr("settings_hash", "0" * 16), r"settings hash 0{16}, expected"),
    (set_attr("n_epochs", EPOCHS - 1), rf"signals \(2, {EPOCHS * 3000}\) .* do not fit {EPOCHS - 1} epochs"),
    (set_attr("fs", 50.0), r"do not fit .* at 50 Hz"),
    (set_attr("channels", "not json"), r"invalid attributes"),
    (set_attr("labels_crc32", 1), r"CRC32 mismatch in 'labels'"),
    (del_item("signals_crc32"), r"missing attribute\(s\) \['signals_crc32'\]"),
    (del_item("labels"), r"no dataset \['labels'\]"),
    (rechunk, r"'signals' is not stored contiguously"),
])
def test_inconsistent_files_are_refused_naming_the_problem(raw, tmp_path, damage, message):
    build(raw, tmp_path)
    folder = folder_of(tmp_path)
    path = os.path.join(folder, "3.h5")
    damage(path)
    with pytest.raises(CacheError, match=message) as info:
        read_cached(path, settings_hash=os.path.basename(folder))
    assert str(info.value).startswith(f"{path}: ")


def test_a_file_from_another_settings_folder_is_refused(raw, tmp_path):
    build(raw, tmp_path)
    other = folder_of(tmp_path, trim_last=1)
    os.makedirs(other)
    shutil.copy(os.path.join(folder_of(tmp_path), "1.h5"), other)
    with pytest.warns(UserWarning, match=r"rebuilding corrupt cache file .*1\.h5: settings hash"):
        rec = build(raw, tmp_path, subjects=[1], trim_last=1)[0]
    assert rec.n_epochs == EPOCHS - 1


def test_a_loader_error_propagates_and_leaves_no_file(raw, tmp_path):
    build(raw, tmp_path)
    folder = folder_of(tmp_path)
    garbage(os.path.join(folder, "2.h5"))
    (raw / "2" / "2_1.txt").write_text("0\n9\n")
    with pytest.warns(UserWarning, match="rebuilding corrupt"), pytest.raises(DataError) as info:
        build(raw, tmp_path)
    assert f"{raw / '2' / '2_1.txt'}, line 2: unknown stage code '9'" in str(info.value)
    assert sorted(os.listdir(folder)) == ["1.h5", "3.h5", "settings.json"]  # no 2.h5, no temporary file


def test_a_failed_write_leaves_no_temporary_file(raw, tmp_path, monkeypatch):
    def failing(f, signals, labels, attrs):
        f.create_dataset("signals", data=signals)
        raise OSError("No space left on device")

    monkeypatch.setattr(cache, "_fill", failing)
    with pytest.raises(OSError, match="No space left"):
        build(raw, tmp_path)
    assert os.listdir(folder_of(tmp_path)) == ["settings.json"]


def test_signals_are_a_lazy_read_only_memmap_into_the_file(raw, tmp_path):
    build(raw, tmp_path)
    path = os.path.join(folder_of(tmp_path), "1.h5")
    rec = read_cached(path)
    base = rec.signals
    while not isinstance(base, np.memmap) and base is not None:
        base = base.base
    assert isinstance(base, np.memmap) and os.path.samefile(base.filename, path)
    assert np.shares_memory(rec.signals, base)
    with h5py.File(path, "r") as f:
        assert f["signals"].chunks is None and f["signals"].compression is None
        assert base.offset == f["signals"].id.get_offset()
        np.testing.assert_array_equal(f["signals"][()], rec.signals)
    assert not rec.signals.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        rec.signals[0, 0] = 1.0
    epochs = rec.epochs()  # a copy, as (n_epochs, C, 3000)
    assert epochs.shape == (EPOCHS, 2, 3000) and epochs.flags.writeable
    np.testing.assert_array_equal(epochs[3, 1], rec.signals[1, 9000:12000])


def test_a_changed_source_file_is_rebuilt(raw, tmp_path, loads):
    build(raw, tmp_path)
    source = raw / "1" / "1.rec"
    stat = os.stat(source)
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5 * 10**9))
    with pytest.warns(UserWarning, match=r"rebuilding stale cache file .*1\.h5: source .*1\.rec changed"):
        build(raw, tmp_path)
    assert loads == KEYS + ["1"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        build(raw, tmp_path)
    assert loads == KEYS + ["1"]


def test_a_cache_built_from_another_data_folder_is_rebuilt(raw, tmp_path, loads):
    build(raw, tmp_path / "cache")
    moved = tmp_path / "moved"
    shutil.copytree(raw, moved)
    with pytest.warns(UserWarning, match=r"rebuilding stale cache file .*: built from .*raw.*, which is not in"):
        recs = build(moved, tmp_path / "cache")
    assert loads == KEYS + KEYS
    assert recs[0].source == str(moved / "1" / "1.rec")
