import collections
import datetime
import shutil

import numpy as np
import pyedflib
import pytest

from stmd_keras.data import edf
from stmd_keras.data.edf import read_annotations, read_edf, to_microvolts
from stmd_keras.data.recording import DataError

SC_PSG = "sleep-edf/SC4001E0-PSG-first300s.edf"
SC_HYP = "sleep-edf/SC4001EC-Hypnogram.edf"
DREAMS = "dreams/excerpt3.edf"


def _write(path, signals, annotations=(), start=datetime.datetime(2001, 2, 3, 22, 30)):
    """Writes an EDF+ file; `signals` is a list of (label, unit, fs, data)."""
    w = pyedflib.EdfWriter(str(path), len(signals), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setSignalHeaders([
            dict(label=label, dimension=unit, sample_frequency=fs, physical_max=1000.0,
                 physical_min=-1000.0, digital_max=32767, digital_min=-32768,
                 transducer="", prefilter="")
            for label, unit, fs, _ in signals
        ])
        w.setStartdatetime(start)
        for onset, duration, text in annotations:
            w.writeAnnotation(onset, duration, text)
        if signals:
            w.writeSamples([np.asarray(x, dtype=np.float64) for *_, x in signals])
    finally:
        w.close()


# -- real fragments -------------------------------------------------------------

def test_reads_real_sleep_edf_psg_with_pyedflib(shared_data):
    data = read_edf(shared_data / SC_PSG)
    assert data.reader == "pyedflib"
    assert data.labels == ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "Resp oro-nasal",
                           "EMG submental", "Temp rectal", "Event marker")
    assert data.fs["EEG Fpz-Cz"] == 100.0 and data.fs["EMG submental"] == 1.0
    assert data.signals["EEG Fpz-Cz"].shape == (30000,)
    assert data.signals["EMG submental"].shape == (300,)
    assert data.signals["EEG Fpz-Cz"].dtype == np.float64
    assert data.units["EEG Fpz-Cz"] == "uV" and data.units["Temp rectal"] == "DegC"
    assert data.duration == 300.0
    assert data.start == datetime.datetime(1989, 4, 24, 16, 13)
    # Physical units, not raw digital counts: EEG in a plausible µV range.
    assert 1.0 < data.signals["EEG Fpz-Cz"].std() < 500.0


def test_channels_restrict_what_is_loaded(shared_data):
    data = read_edf(shared_data / SC_PSG, channels=["EEG Pz-Oz"])
    assert list(data.signals) == ["EEG Pz-Oz"] and list(data.fs) == ["EEG Pz-Oz"]
    assert len(data.labels) == 7  # labels still lists the whole file
    with pytest.raises(DataError, match=r"SC4001E0-PSG-first300s\.edf.*'EEG C3'.*EEG Fpz-Cz"):
        read_edf(shared_data / SC_PSG, channels=["EEG C3"])


def test_edfio_fallback_reads_same_values_as_pyedflib(shared_data, monkeypatch):
    strict = read_edf(shared_data / SC_PSG)

    def refuse(path, channels):
        raise OSError("refused for the test")

    monkeypatch.setattr(edf, "_read_pyedflib", refuse)
    with pytest.warns(UserWarning, match=r"SC4001E0.*refused for the test.*edfio"):
        lenient = read_edf(shared_data / SC_PSG)
    assert lenient.reader == "edfio"
    assert lenient.labels == strict.labels and lenient.fs == strict.fs
    assert lenient.units == strict.units and lenient.start == strict.start
    assert lenient.duration == strict.duration
    for label in strict.labels:
        np.testing.assert_allclose(lenient.signals[label], strict.signals[label], rtol=0, atol=1e-9)


def test_dreams_excerpt_falls_back_to_edfio(shared_data):
    with pytest.warns(UserWarning, match=r"excerpt3\.edf.*Digital Minimum.*edfio"):
        data = read_edf(shared_data / DREAMS, channels=["C3-A1", "EOG1-A1"])
    assert data.reader == "edfio"
    assert len(data.labels) == 20 and "O1-A1" in data.labels
    assert data.fs == {"C3-A1": 50.0, "EOG1-A1": 50.0}
    assert data.signals["C3-A1"].shape == (1800 * 50,)
    assert data.units["C3-A1"].lower() == "uv"
    assert np.isfinite(data.signals["C3-A1"]).all() and data.signals["C3-A1"].std() > 1.0


def test_real_hypnogram_annotations_match_readme_counts(shared_data):
    annotations = read_annotations(shared_data / SC_HYP)
    epochs = collections.Counter()
    for _, duration, text in annotations:
        epochs[text] += duration / 30.0
    assert epochs["Sleep stage W"] == 1997
    assert epochs["Sleep stage 1"] == 58
    assert epochs["Sleep stage 2"] == 250
    assert epochs["Sleep stage 3"] + epochs["Sleep stage 4"] == 220
    assert epochs["Sleep stage R"] == 125
    assert epochs["Sleep stage ?"] == 230
    assert annotations[0] == (0.0, 30630.0, "Sleep stage W")


def test_truncated_real_file_is_an_error(shared_data, tmp_path):
    copy = tmp_path / "SC4001E0-PSG.edf"
    shutil.copyfile(shared_data / SC_PSG, copy)
    size = copy.stat().st_size
    with open(copy, "r+b") as f:
        f.truncate(size - 5000)  # inside the last 30-s data record (18240 bytes)
    with pytest.raises(DataError, match=r"SC4001E0-PSG\.edf.*truncated"):
        read_edf(copy)


# -- generated files ------------------------------------------------------------

def test_reads_generated_annotations_including_missing_duration(tmp_path):
    path = tmp_path / "annotated.edf"
    x = np.sin(np.arange(1000) / 10.0) * 100
    _write(path, [("EEG", "uV", 100, x)],
           annotations=[(0, 30, "Sleep stage W"), (30.5, -1, "Lights on")])
    data = read_edf(path)
    assert data.reader == "pyedflib"
    np.testing.assert_allclose(data.signals["EEG"], x, atol=0.05)
    assert data.annotations == [(0.0, 30.0, "Sleep stage W"), (30.5, None, "Lights on")]
    assert read_annotations(path) == data.annotations


def test_unreadable_file_names_both_readers(tmp_path):
    path = tmp_path / "garbage.edf"
    path.write_bytes(b"not an edf file at all" * 20)
    with pytest.raises(DataError, match=r"garbage\.edf.*pyedflib.*edfio"):
        read_edf(path)
    with pytest.raises(DataError, match=r"nowhere\.edf.*no such file"):
        read_edf(tmp_path / "nowhere.edf")


def test_to_microvolts_units():
    x = np.array([1.0, -2.0])
    for unit in ("uV", "UV", "µV", "μV", "uv"):
        np.testing.assert_array_equal(to_microvolts(x, unit), x)
    np.testing.assert_array_equal(to_microvolts(x, "mV"), x * 1e3)
    np.testing.assert_array_equal(to_microvolts(x, "MV"), x * 1e3)
    np.testing.assert_array_equal(to_microvolts(x, " V "), x * 1e6)
    assert to_microvolts(np.array([1], dtype=np.int16), "mV").dtype == np.float64
    with pytest.raises(DataError, match=r"night\.edf.*'DegC'"):
        to_microvolts(x, "DegC", where="night.edf")
    with pytest.raises(DataError, match=r"''"):
        to_microvolts(x, "")


def test_samples_decoded_by_edfio_equal_pyedflib_readsignal(shared_data):
    import pyedflib

    path = shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf"
    edf = read_edf(path)
    assert edf.reader == "pyedflib"  # validated and read by pyedflib's header parser
    with pyedflib.EdfReader(str(path)) as f:
        for i, label in enumerate(f.getSignalLabels()):
            np.testing.assert_allclose(edf.signals[label], f.readSignal(i), rtol=0, atol=1e-9, err_msg=label)
