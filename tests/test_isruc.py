import os
import shutil
import struct
import warnings
import zlib

import h5py
import numpy as np
import pyedflib
import pytest
import scipy.io

from stmd_keras.data import isruc
from stmd_keras.data.isruc import (
    CHANNELS,
    extract_rar,
    load_isruc,
    load_subject_mat,
    load_subject_raw,
    match_channels,
)
from stmd_keras.data.recording import DataError

FS = 200
EPOCHS = 10
STEP = 30 * FS

# Scorer 1 and 2 of the raw subject, as written (5 is REM) and as loaded.
CODES_1 = [0, 1, 2, 3, 5, 5, 2, 1, 0, 0]
CODES_2 = [0, 0, 2, 2, 5, 3, 3, 5, 1, 0]
LABELS_1 = [0, 1, 2, 3, 4, 4, 2, 1, 0, 0]
LABELS_2 = [0, 0, 2, 2, 4, 3, 3, 4, 1, 0]

# Channels of the raw file in another order than the file's, so a loader
# matching by position instead of by name gets the values wrong.
RAW_CHANNELS = ("X1", "C4-A1", "F3-A2", "LOC-A2", "C3-A2", "O2-A1")
QUANTUM = 0.01  # µV; EDF steps are 200 µV / 65535 ≈ 0.003 µV here


def expected_uv(n_epochs=EPOCHS):
    """Canonical name -> the µV signal at 200 Hz that `write_rec` stores."""
    t = np.arange(n_epochs * STEP) / FS
    return {
        "F3-A2": 40 * np.sin(2 * np.pi * 1.0 * t),
        "C3-A2": 30 * np.cos(2 * np.pi * 0.5 * t),
        "O2-A1": 20 * np.sin(2 * np.pi * 2.0 * t) + 10,
        "C4-A1": -25 * np.sin(2 * np.pi * 3.0 * t),
        "LOC-A2": 50 * np.sin(2 * np.pi * 0.25 * t),
        "X1": 5 * np.cos(2 * np.pi * 7.0 * t),
    }


def write_rec(path, n_epochs=EPOCHS):
    """An ISRUC-like .rec (EDF) with alternative label spellings: "F3-M2",
    "C3-M2" in mV, "O2 - M1" with spaces, "E1-M2" at 100 Hz, lower-case "x1",
    and an "SaO2" channel in % that must never be converted."""
    uv = expected_uv(n_epochs)
    seconds = n_epochs * 30
    signals = [
        ("F3-M2", "uV", FS, uv["F3-A2"], 100.0),
        ("C3-M2", "mV", FS, uv["C3-A2"] / 1000, 0.1),
        ("O2 - M1", "uV", FS, uv["O2-A1"], 100.0),
        ("C4-A1", "uV", FS, uv["C4-A1"], 100.0),
        ("E1-M2", "uV", 100, uv["LOC-A2"][::2], 100.0),
        ("x1", "uV", FS, uv["X1"], 100.0),
        ("SaO2", "%", 1, np.full(seconds, 97.0), 100.0),
    ]
    w = pyedflib.EdfWriter(str(path), len(signals), file_type=pyedflib.FILETYPE_EDF)
    try:
        w.setSignalHeaders([
            dict(label=label, dimension=unit, sample_frequency=fs, physical_min=-bound,
                 physical_max=bound, digital_min=-32768, digital_max=32767, transducer="", prefilter="")
            for label, unit, fs, _, bound in signals
        ])
        w.writeSamples([np.ascontiguousarray(x) for _, _, _, x, _ in signals])
    finally:
        w.close()
    return path


def write_labels(path, codes, tail="\n\n\n"):
    """One code per line, with the trailing blank lines of the real files."""
    path.write_text("\n".join(str(c) for c in codes) + tail)
    return path


@pytest.fixture
def raw_dir(tmp_path):
    """`1/1.rec`, `1/1_1.txt`, `1/1_2.txt` in the layout of the extracted 1.rar."""
    folder = tmp_path / "1"
    folder.mkdir()
    write_rec(folder / "1.rec")
    write_labels(folder / "1_1.txt", CODES_1)
    write_labels(folder / "1_2.txt", CODES_2)
    return folder


def mat_data(n_epochs=12, seed=0):
    """The ten arrays of an extracted subjectN.mat, (n_epochs, 6000) each."""
    rng = np.random.default_rng(seed)
    return {c.replace("-", "_"): rng.normal(0, 20, (n_epochs, STEP)) for c in CHANNELS}


def write_mat_v5(path, data):
    scipy.io.savemat(str(path), data)
    return path


def write_mat_v73(path, data):
    """A v7.3 .mat as MATLAB writes it: HDF5 after a 512-byte text userblock,
    each array stored column-major, i.e. transposed for h5py."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, x in data.items():
            f.create_dataset(name, data=np.ascontiguousarray(x.T))
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as f:
        f.write(header.ljust(128, b" "))
    return path


def make_rar4(path, files):
    """Writes a RAR 4 archive storing `files` (name -> bytes) uncompressed."""
    def block(head_type, flags, body):
        rest = struct.pack("<BHH", head_type, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    dos_time = (40 << 25) | (1 << 21) | (1 << 16)  # 2020-01-01 00:00
    parts = [b"Rar!\x1a\x07\x00", block(0x73, 0, bytes(6))]
    for name, data in files.items():
        raw = name.replace("/", "\\").encode()  # RAR stores paths with backslashes
        # pack/unpacked size, host OS 3 (Unix), CRC32, time, version 2.0,
        # method 0x30 (store), name length, Unix mode.
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), dos_time,
                           20, 0x30, len(raw), 0o100644) + raw
        parts += [block(0x74, 0x8000, body), data]
    parts.append(block(0x7B, 0x4000, b""))
    path.write_bytes(b"".join(parts))
    return path


# raw form ----------------------------------------------------------------


def test_raw_channels_by_name_in_canonical_names_and_requested_order(raw_dir):
    rec = load_subject_raw(raw_dir, channels=RAW_CHANNELS)
    assert rec.channels == RAW_CHANNELS
    assert rec.subject == "ISRUC3-01"
    assert rec.source == str(raw_dir / "1.rec")
    assert rec.fs == FS and rec.signals.dtype == np.float32
    assert rec.signals.shape == (len(RAW_CHANNELS), EPOCHS * STEP)
    uv = expected_uv()
    for row, name in zip(rec.signals, RAW_CHANNELS):
        if name == "LOC-A2":  # written at 100 Hz: resampled, so compare away from the edges
            np.testing.assert_allclose(row[400:-400], uv[name][400:-400], atol=0.5)
        else:  # "C3-M2" was written in mV: µV here only if converted
            np.testing.assert_allclose(row, uv[name], atol=QUANTUM, err_msg=name)


def test_raw_accepts_a_rec_path_and_alias_names_in_channels(raw_dir):
    rec = load_subject_raw(raw_dir / "1.rec", channels=("c3-m2", "E1 - M2"))
    assert rec.channels == ("C3-A2", "LOC-A2")
    np.testing.assert_allclose(rec.signals[0], expected_uv()["C3-A2"], atol=QUANTUM)


def test_raw_default_channels_missing_one_lists_aliases_and_file_labels(raw_dir):
    with pytest.raises(DataError) as info:
        load_subject_raw(raw_dir)  # all ten; the file lacks O1, F4, ROC, X2
    message = str(info.value)
    assert str(raw_dir / "1.rec") in message
    assert "'O1-A2'" in message and "'O1-M2'" in message
    assert "'O2 - M1'" in message and "'SaO2'" in message and "'E1-M2'" in message


def test_match_channels_refuses_two_spellings_of_one_channel():
    assert match_channels(["x", "C3-M2"], ["C3-A2"], "f.rec") == ["C3-M2"]
    with pytest.raises(DataError, match=r"f\.rec: channel 'C3-A2' matches several signals"):
        match_channels(["C3-A2", "c3 - m2"], ["C3-A2"], "f.rec")


def test_raw_labels_scorer_1_default_rem_code_5_and_scorer_2(raw_dir):
    assert load_subject_raw(raw_dir, channels=["F3-A2"]).labels.tolist() == LABELS_1
    assert load_subject_raw(raw_dir, channels=["F3-A2"], scorer=2).labels.tolist() == LABELS_2
    with pytest.raises(ValueError, match="scorer"):
        load_subject_raw(raw_dir, channels=["F3-A2"], scorer=3)


def test_trim_last_drops_the_last_epochs(raw_dir):
    full = load_subject_raw(raw_dir, channels=["F3-A2"])
    rec = load_subject_raw(raw_dir, channels=["F3-A2"], trim_last=3)
    assert rec.labels.tolist() == LABELS_1[:7]
    assert rec.signals.shape == (1, 7 * STEP)
    np.testing.assert_array_equal(rec.signals, full.signals[:, : 7 * STEP])
    with pytest.raises(DataError, match="trim_last=10 would drop all 10 epochs"):
        load_subject_raw(raw_dir, channels=["F3-A2"], trim_last=10)


def test_extra_label_lines_up_to_30_are_dropped_with_a_warning(raw_dir):
    write_labels(raw_dir / "1_1.txt", CODES_1 + [0] * 30)
    with pytest.warns(UserWarning, match="has 40 labels for the 10 epochs .* dropping the last 30 labels"):
        rec = load_subject_raw(raw_dir, channels=["F3-A2"])
    assert rec.labels.tolist() == LABELS_1
    assert rec.signals.shape == (1, EPOCHS * STEP)


def test_more_than_30_extra_label_lines_is_an_error_naming_both_files(raw_dir):
    write_labels(raw_dir / "1_1.txt", CODES_1 + [0] * 31)
    with pytest.raises(DataError) as info:
        load_subject_raw(raw_dir, channels=["F3-A2"])
    message = str(info.value)
    assert str(raw_dir / "1_1.txt") in message and str(raw_dir / "1.rec") in message
    assert "41 labels" in message and "10 whole 30-s epochs" in message


def test_short_label_file_cuts_the_unscored_signal_tail_with_a_warning(raw_dir):
    write_labels(raw_dir / "1_1.txt", CODES_1[:8])
    with pytest.warns(UserWarning, match="dropping the last 2 epochs of signal as unscored"):
        rec = load_subject_raw(raw_dir, channels=["F3-A2"])
    assert rec.labels.tolist() == LABELS_1[:8]
    assert rec.signals.shape == (1, 8 * STEP)
    np.testing.assert_allclose(rec.signals[0], expected_uv()["F3-A2"][: 8 * STEP], atol=QUANTUM)


def test_label_file_more_than_30_epochs_short_is_an_error(tmp_path):
    mat = write_mat_v5(tmp_path / "subject4.mat", {"C3_A2": np.zeros((40, STEP))})
    labels = write_labels(tmp_path / "4_1.txt", [0] * 9)
    with pytest.raises(DataError, match=r"has 9 labels but .*subject4\.mat has 40 whole"):
        load_subject_mat(mat, labels, channels=["C3-A2"])


@pytest.mark.parametrize("codes, line, text", [
    ([0, 1, 4, 2], 3, "'4' (ISRUC is scored with AASM, which has no stage 4)"),
    ([0, 1, 2, "W"], 4, "'W'"),
    ([0, 9], 2, "'9'"),
])
def test_unknown_stage_code_names_file_line_and_code(raw_dir, codes, line, text):
    path = write_labels(raw_dir / "1_1.txt", codes)
    with pytest.raises(DataError) as info:
        load_subject_raw(raw_dir, channels=["F3-A2"])
    assert f"{path}, line {line}: unknown stage code {text}" in str(info.value)


def test_blank_line_inside_the_labels_is_an_error(raw_dir):
    (raw_dir / "1_1.txt").write_text("0\n1\n\n2\n\n")
    with pytest.raises(DataError, match=r"1_1\.txt, line 3: blank line before the last stage code"):
        load_subject_raw(raw_dir, channels=["F3-A2"])


# extracted (.mat) form ---------------------------------------------------


def test_mat_v5_and_v73_give_identical_recordings_of_the_written_data(tmp_path):
    data = mat_data()
    codes = [0, 1, 2, 3, 5, 2, 2, 1, 0, 5, 3, 0]
    recs = []
    for version, write in (("v5", write_mat_v5), ("v73", write_mat_v73)):
        folder = tmp_path / version
        folder.mkdir()
        write(folder / "subject7.mat", data)
        write_labels(folder / "7_1.txt", codes)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # equal lengths: nothing to warn about
            recs.append(load_subject_mat(folder / "subject7.mat"))
    assert h5py.is_hdf5(tmp_path / "v73" / "subject7.mat")
    assert not h5py.is_hdf5(tmp_path / "v5" / "subject7.mat")
    v5, v73 = recs
    assert v5.channels == v73.channels == CHANNELS
    assert v5.subject == v73.subject == "ISRUC3-07"
    assert v5.fs == v73.fs == 200.0
    assert v5.source == str(tmp_path / "v5" / "subject7.mat")
    np.testing.assert_array_equal(v5.signals, v73.signals)
    np.testing.assert_array_equal(v5.labels, v73.labels)
    assert v5.labels.tolist() == [0, 1, 2, 3, 4, 2, 2, 1, 0, 4, 3, 0]
    # Epoch k of channel c is row k of the variable of c.
    epochs = v73.epochs()
    for c, name in enumerate(CHANNELS):
        np.testing.assert_array_equal(epochs[:, c], data[name.replace("-", "_")].astype(np.float32))


def test_mat_channels_selection_scorer_2_and_the_30_surplus_label_lines(tmp_path):
    data = mat_data(n_epochs=5)
    write_mat_v73(tmp_path / "subject2.mat", data)
    write_labels(tmp_path / "2_1.txt", [0] * 35)
    write_labels(tmp_path / "2_2.txt", [5, 3, 2, 1, 0] + [0] * 30)
    with pytest.warns(UserWarning, match="dropping the last 30 labels"):
        rec = load_subject_mat(tmp_path / "subject2.mat", tmp_path, scorer=2,
                               channels=("ROC-A1", "X1"), trim_last=1)
    assert rec.channels == ("ROC-A1", "X1")
    assert rec.labels.tolist() == [4, 3, 2, 1]
    np.testing.assert_array_equal(rec.signals[0], data["ROC_A1"][:4].reshape(-1).astype(np.float32))
    np.testing.assert_array_equal(rec.signals[1], data["X1"][:4].reshape(-1).astype(np.float32))


def test_mat_missing_channel_and_wrong_shape(tmp_path):
    write_labels(tmp_path / "3_1.txt", [0] * 4)
    mat = write_mat_v5(tmp_path / "subject3.mat", {"C3_A2": np.zeros((4, STEP)), "label": np.zeros(4)})
    with pytest.raises(DataError, match=r"no channel 'X2' .* the file has \['C3_A2', 'label'\]"):
        load_subject_mat(mat, channels=("C3-A2", "X2"))
    write_mat_v5(mat, {"C3_A2": np.zeros((STEP, 4))})  # saved the wrong way round
    with pytest.raises(DataError, match=r"'C3_A2' is a float64 array of shape \(6000, 4\); expected .*\(n_epochs, 6000\)"):
        load_subject_mat(mat, channels=("C3-A2",))


# load_isruc and extraction -----------------------------------------------


def test_load_isruc_raw_folders_subject_selection(raw_dir, tmp_path):
    shutil.copytree(raw_dir, tmp_path / "3")
    (tmp_path / "3" / "1.rec").rename(tmp_path / "3" / "3.rec")
    write_labels(tmp_path / "3" / "3_1.txt", CODES_2)
    recs = load_isruc(tmp_path, channels=["C4-A1"])
    assert [r.subject for r in recs] == ["ISRUC3-01", "ISRUC3-03"]
    assert recs[1].labels.tolist() == LABELS_2
    assert [r.subject for r in load_isruc(tmp_path, subjects=[3], channels=["C4-A1"])] == ["ISRUC3-03"]
    with pytest.raises(DataError, match=r"subject\(s\) \[2\]; found \[1, 3\]"):
        load_isruc(tmp_path, subjects=[1, 2], channels=["C4-A1"])


def test_load_isruc_extracted_form_with_a_labels_dir(tmp_path):
    data = mat_data(n_epochs=4)
    write_mat_v5(tmp_path / "subject1.mat", data)
    labels = tmp_path / "labels"
    (labels / "1").mkdir(parents=True)
    write_labels(labels / "1" / "1_1.txt", [5, 5, 0, 1])
    (recs,) = load_isruc(tmp_path, channels=["O1-A2"], labels_dir=labels)
    assert recs.source == str(tmp_path / "subject1.mat")
    assert recs.labels.tolist() == [4, 4, 0, 1]
    with pytest.raises(DataError, match=r"no label file for subject 1, scorer 1"):
        load_isruc(tmp_path, channels=["O1-A2"])


def test_load_isruc_extracts_an_archive_without_its_folder(raw_dir, tmp_path, monkeypatch):
    archive_contents = tmp_path / "unpacked"
    raw_dir.rename(archive_contents)
    (tmp_path / "1.rar").write_bytes(b"stand-in")
    calls = []

    def fake_extract(rar_path, dest):
        calls.append((rar_path, dest))
        shutil.copytree(archive_contents, dest)
        return dest

    monkeypatch.setattr(isruc, "extract_rar", fake_extract)
    (rec,) = load_isruc(tmp_path, channels=["F3-A2"])
    assert calls == [(str(tmp_path / "1.rar"), str(tmp_path / "1"))]
    assert rec.source == str(tmp_path / "1" / "1.rec") and rec.labels.tolist() == LABELS_1
    load_isruc(tmp_path, channels=["F3-A2"])  # the folder exists now: no second extraction
    assert len(calls) == 1


def test_extract_rar_without_a_tool_says_which_tools_work_and_how_to_install(tmp_path, monkeypatch):
    rar = tmp_path / "1.rar"
    rar.write_bytes(b"Rar!\x1a\x07\x00")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    with pytest.raises(DataError) as info:
        extract_rar(rar)
    message = str(info.value)
    for tool in ("unrar", "unar", "7z", "bsdtar"):
        assert f"'{tool}'" in message
    assert "apt-get install unar" in message and str(rar) in message
    assert sorted(os.listdir(tmp_path)) == ["1.rar"]  # nothing half-made


def test_extract_rar_failing_tool_leaves_no_destination(tmp_path, monkeypatch):
    false = shutil.which("false")
    if false is None:
        pytest.skip("no `false` command to stand in for a failing tool")
    rar = tmp_path / "1.rar"
    rar.write_bytes(b"not an archive")
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: false if name == "unar" else None)
    with pytest.raises(DataError, match=r"1\.rar: .*false failed \(exit status 1"):
        extract_rar(rar)
    assert sorted(os.listdir(tmp_path)) == ["1.rar"]


def test_extract_rar_with_a_real_tool(raw_dir, tmp_path):
    if not any(shutil.which(t) for t in isruc.RAR_TOOLS):
        pytest.skip(f"none of {isruc.RAR_TOOLS} installed (e.g. `apt-get install unar`)")
    files = {f"1/{p.name}": p.read_bytes() for p in sorted(raw_dir.iterdir())}
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    make_rar4(data_dir / "1.rar", files)
    dest = extract_rar(data_dir / "1.rar")
    assert dest == str(data_dir / "1")
    assert (data_dir / "1" / "1.rec").read_bytes() == files["1/1.rec"]
    assert sorted(os.listdir(data_dir)) == ["1", "1.rar"]  # no temporary folder left
    shutil.rmtree(data_dir / "1")
    (rec,) = load_isruc(data_dir, channels=["F3-A2"], scorer=2)
    assert rec.labels.tolist() == LABELS_2
    np.testing.assert_allclose(rec.signals[0], expected_uv()["F3-A2"], atol=QUANTUM)
