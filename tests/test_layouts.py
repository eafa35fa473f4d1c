"""Round trips: synthetic nights written in each real layout, read back by the real loaders."""

import dataclasses
import os
import warnings

import numpy as np
import pyedflib
import pytest

from stmd_keras.data import layouts
from stmd_keras.data.datasets import get_dataset
from stmd_keras.data.isruc import MAX_LENGTH_MISMATCH
from stmd_keras.data.layouts import write_isruc, write_layout, write_mass, write_sleep_edf
from stmd_keras.data.synthetic import generate

N_EPOCHS = 40

# A night with every stage, N3 long enough to be split into S3 + S4, 20
# epochs of wake before sleep onset and 12 after the last sleep epoch.
NIGHT = np.array([0] * 20 + [1] * 3 + [2] * 10 + [3] * 8 + [4] * 5 + [2] * 2 + [0] * 12)


def quanta(path):
    """Signal label -> physical step of one digital unit, from the EDF header."""
    with pyedflib.EdfReader(os.fspath(path)) as f:
        return {
            label: (f.getPhysicalMaximum(i) - f.getPhysicalMinimum(i))
            / (f.getDigitalMaximum(i) - f.getDigitalMinimum(i))
            for i, label in enumerate(f.getSignalLabels())
        }


def assert_close(loaded, written, quantum):
    """Equal within half a digital step (plus float32 round-off)."""
    written = np.asarray(written, dtype=np.float64)
    assert loaded.shape == written.shape
    err = np.abs(loaded.astype(np.float64) - written).max()
    assert err <= 0.5 * quantum + 1e-4, (err, quantum)


def no_temp_files(folder):
    left = [os.path.join(d, n) for d, _, names in os.walk(folder) for n in names
            if n.startswith(".") or n.endswith(".tmp")]
    assert left == []


def annotations(path):
    with pyedflib.EdfReader(os.fspath(path)) as f:
        onsets, durations, texts = f.readAnnotations()
    return list(zip(onsets.tolist(), durations.tolist(), [str(t) for t in texts]))


# -- ISRUC-III ----------------------------------------------------------------

@pytest.fixture(scope="module")
def isruc_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("ISRUC_S3")
    recs = generate(2, seed=0, fs=200, n_epochs=N_EPOCHS)
    paths = write_layout("isruc", recs, out, scorer2_disagreement=0.25, seed=1)
    return out, recs, paths


def test_isruc_layout_files(isruc_dir):
    out, recs, paths = isruc_dir
    expected = [out / str(n) / name for n in (1, 2) for name in (f"{n}.rec", f"{n}_1.txt", f"{n}_2.txt")]
    assert paths == [str(p) for p in expected]
    assert sorted(os.listdir(out)) == ["1", "2"]
    assert get_dataset("isruc").recordings(out) == ["1", "2"]
    no_temp_files(out)
    lines = (out / "1" / "1_1.txt").read_text().split("\n")
    assert lines[-3:] == ["", "", ""]  # trailing blank lines, as in the public files
    codes = [int(c) for c in lines if c]
    assert len(codes) == N_EPOCHS + MAX_LENGTH_MISMATCH
    assert set(codes) <= {0, 1, 2, 3, 5}
    assert codes[:N_EPOCHS] == [5 if k == 4 else int(k) for k in recs[0].labels]
    with pyedflib.EdfReader(str(out / "1" / "1.rec")) as f:
        assert f.filetype == pyedflib.FILETYPE_EDF
        assert tuple(f.getSignalLabels()) == recs[0].channels
        assert {f.getPhysicalDimension(i) for i in range(f.signals_in_file)} == {"uV"}
        assert f.getSampleFrequency(0) == 200


def test_isruc_round_trip_eeg_eog6(isruc_dir):
    out, recs, _ = isruc_dir
    ds = get_dataset("isruc")
    channels, used = ds.channels_for("eeg_eog6")
    assert used == "eeg_eog6"
    q = quanta(out / "2" / "2.rec")
    with pytest.warns(UserWarning, match=f"dropping the last {MAX_LENGTH_MISMATCH} labels"):
        rec = ds.load_recording(out, "2", channels)
    written = recs[1]
    assert rec.subject == "ISRUC3-02" and rec.fs == 200 and rec.channels == channels
    np.testing.assert_array_equal(rec.labels, written.labels)
    n = written.n_epochs * written.epoch_samples
    for c in channels:
        assert_close(rec.signals[channels.index(c)], written.signals[written.channels.index(c), :n], q[c])


def test_isruc_scorer2_disagrees_with_neighbouring_stages(isruc_dir):
    out, recs, _ = isruc_dir
    ds = get_dataset("isruc")
    with pytest.warns(UserWarning):
        rec2 = ds.load_recording(out, "1", ("C3-A2",), scorer=2)
    changed = np.flatnonzero(rec2.labels != recs[0].labels)
    assert changed.size == round(0.25 * N_EPOCHS)
    for k in changed:
        assert rec2.labels[k] in layouts.NEIGHBOUR_STAGES[int(recs[0].labels[k])]


def test_isruc_without_extra_label_lines_loads_silently(tmp_path):
    rec = generate(1, seed=2, fs=200, n_epochs=10, channels=("C4-A1", "X1"))
    write_isruc(rec, tmp_path, start_number=7, extra_label_lines=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loaded = get_dataset("isruc").load_recording(tmp_path, "ISRUC3-07", ("X1", "C4-A1"))
    np.testing.assert_array_equal(loaded.labels, rec[0].labels)
    with pytest.raises(ValueError, match="extra_label_lines"):
        write_isruc(rec, tmp_path / "x", extra_label_lines=MAX_LENGTH_MISMATCH + 1)


# -- Sleep-EDF --------------------------------------------------------------------

@pytest.fixture(scope="module")
def sleep_edf_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("sleep-cassette")
    recs = generate(2, seed=3, fs=100, n_epochs=len(NIGHT))
    recs[0] = dataclasses.replace(recs[0], labels=NIGHT)
    paths = write_layout("sleep-edf", recs, out, nights_per_subject=2, start_subject=4)
    return out, recs, paths


def test_sleep_edf_layout_files(sleep_edf_dir):
    out, _, paths = sleep_edf_dir
    names = ["SC4041E0-PSG.edf", "SC4041EC-Hypnogram.edf", "SC4042E0-PSG.edf", "SC4042EC-Hypnogram.edf"]
    assert paths == [str(out / n) for n in names]
    assert sorted(os.listdir(out)) == sorted(names)
    no_temp_files(out)
    ds = get_dataset("sleep-edf")
    assert ds.recordings(out) == ["SC4041", "SC4042"]
    assert {ds.subject_of(k) for k in ds.recordings(out)} == {"SC404"}
    with pyedflib.EdfReader(str(out / names[0])) as f:
        assert f.getSignalLabels() == ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "Resp oro-nasal",
                                       "EMG submental", "Temp rectal", "Event marker"]
        assert [f.getSampleFrequency(i) for i in range(7)] == [100] * 3 + [1] * 4
        assert f.datarecord_duration == 30
    hyp = annotations(out / names[1])
    assert [t for _, _, t in hyp] == ["Sleep stage W", "Sleep stage 1", "Sleep stage 2", "Sleep stage 3",
                                      "Sleep stage 4", "Sleep stage R", "Sleep stage 2", "Sleep stage W",
                                      "Sleep stage ?"]
    assert hyp[3][:2] == (33 * 30.0, 4 * 30.0) and hyp[4][:2] == (37 * 30.0, 4 * 30.0)
    assert hyp[-1][0] == len(NIGHT) * 30.0  # "?" runs past the end of the PSG


@pytest.mark.parametrize("trim_wake_min", [30, 5])
def test_sleep_edf_round_trip_after_wake_trimming(sleep_edf_dir, trim_wake_min):
    out, recs, _ = sleep_edf_dir
    ds = get_dataset("sleep-edf")
    channels, used = ds.channels_for("eeg_eog6")  # falls back to the three SC channels
    assert used == "sleepedf3"
    rec = ds.load_recording(out, "SC4041", channels, trim_wake_min=trim_wake_min)
    # The documented rule: keep trim_wake_min minutes around the sleep period.
    margin = trim_wake_min * 2
    sleep = np.flatnonzero(NIGHT >= 1)
    kept = np.arange(max(0, sleep[0] - margin), min(len(NIGHT), sleep[-1] + margin + 1))
    if trim_wake_min == 5:
        assert kept[0] == 10 and kept[-1] == 57  # both ends really trimmed
    np.testing.assert_array_equal(rec.labels, NIGHT[kept])
    written = recs[0].epochs()[kept]  # (n, C, 3000) in ISRUC channels
    c = recs[0].channels.index
    q = quanta(out / "SC4041E0-PSG.edf")
    epochs = rec.epochs()
    assert_close(epochs[:, 0], written[:, c("F3-A2")], q["EEG Fpz-Cz"])
    assert_close(epochs[:, 1], written[:, c("O1-A2")], q["EEG Pz-Oz"])
    eog = written[:, c("LOC-A2")].astype(np.float64) - written[:, c("ROC-A1")]
    assert_close(epochs[:, 2], eog, q["EOG horizontal"])


def test_sleep_edf_resamples_and_mean_fpz(tmp_path):
    rec = generate(1, seed=4, fs=200, n_epochs=10)[0]
    write_sleep_edf(rec, tmp_path, fpz_cz="mean", trailing_unscored_s=0)
    assert annotations(tmp_path / "SC4001EC-Hypnogram.edf")[-1][2] != "Sleep stage ?"
    loaded = get_dataset("sleep-edf").load_recording(tmp_path, "SC4001", ("EEG Fpz-Cz",), trim_wake_min=None)
    assert loaded.fs == 100 and loaded.signals.shape == (1, 10 * 3000)
    np.testing.assert_array_equal(loaded.labels, rec.labels)
    mean = 0.5 * (rec.signals[rec.channels.index("F3-A2")] + rec.signals[rec.channels.index("F4-A1")])
    # Decimated 2:1: compare with the mean's every other sample, loosely (filtering).
    assert np.corrcoef(loaded.signals[0], mean[::2])[0, 1] > 0.9


# -- MASS-SS3 ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def mass_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("SS3")
    recs = generate(2, seed=5, fs=256, n_epochs=N_EPOCHS)
    paths = write_layout("mass", recs, out, start_number=3)
    return out, recs, paths


def test_mass_layout_files(mass_dir):
    out, recs, paths = mass_dir
    names = ["01-03-0003 PSG.edf", "01-03-0003 Base.edf", "01-03-0004 PSG.edf", "01-03-0004 Base.edf"]
    assert paths == [str(out / n) for n in names]
    assert sorted(os.listdir(out)) == sorted(names)
    no_temp_files(out)
    assert get_dataset("mass").recordings(out) == ["MASS3-0003", "MASS3-0004"]
    with pyedflib.EdfReader(str(out / names[0])) as f:
        assert f.getSignalLabels() == ["EEG F3-CLE", "EEG C3-CLE", "EEG O1-CLE", "EEG F4-CLE", "EEG C4-CLE",
                                       "EEG O2-CLE", "EOG Left Horiz", "EOG Right Horiz", "EMG Chin1"]
        assert f.getSampleFrequency(0) == 256
    base = annotations(out / names[1])
    assert base[0][:2] == (pytest.approx(0.4), 30.0)  # off the PSG's first sample, as in SS3
    assert [t for _, _, t in base[:-1]] == [layouts.MASS_STAGES[int(k)] for k in recs[0].labels]
    assert base[-1][2] == "Sleep stage ?"


def test_mass_round_trip_eeg_eog6(mass_dir):
    out, recs, _ = mass_dir
    ds = get_dataset("mass")
    channels, used = ds.channels_for("eeg_eog6")
    assert channels == ("F4", "C3", "C4", "O2", "LOC", "ROC") and used == "eeg_eog6"
    rec = ds.load_recording(out, "MASS3-0004", channels + ("EMG",))
    written = recs[1]
    assert rec.subject == "MASS3-0004" and rec.fs == 256
    np.testing.assert_array_equal(rec.labels, written.labels)
    q = quanta(out / "01-03-0004 PSG.edf")
    n = written.n_epochs * written.epoch_samples
    pairs = {"F4": ("F4-A1", "EEG F4-CLE"), "C3": ("C3-A2", "EEG C3-CLE"),
             "LOC": ("LOC-A2", "EOG Left Horiz"), "EMG": ("X1", "EMG Chin1")}
    for name, (source, label) in pairs.items():
        assert_close(rec.signals[rec.channels.index(name)], written.signals[written.channels.index(source), :n],
                     q[label])


def test_mass_reference_and_channel_subset(tmp_path):
    rec = generate(1, seed=6, fs=256, n_epochs=10)[0]
    write_mass(rec, tmp_path, channels=("C4-A1", "ROC-A1"), reference="LER", onset_offset=0.73)
    loaded = get_dataset("mass").load_recording(tmp_path, "MASS3-0001", ("ROC", "C4"))
    np.testing.assert_array_equal(loaded.labels, rec.labels)
    q = quanta(tmp_path / "01-03-0001 PSG.edf")
    assert set(q) == {"EEG C4-LER", "EOG Right Horiz"}
    assert_close(loaded.signals[1], rec.signals[rec.channels.index("C4-A1")], q["EEG C4-LER"])
    with pytest.raises(ValueError, match="half-way"):
        write_mass(rec, tmp_path / "x", onset_offset=0.5 / 256)


# -- refusals -------------------------------------------------------------------------

@pytest.mark.parametrize("name, missing, options", [
    ("sleep-edf", "LOC-A2", {}),
    ("sleep-edf", "F4-A1", {"fpz_cz": "mean"}),
    ("isruc", "X2", {"channels": ("F3-A2", "X2")}),
    ("mass", "O2-A1", {"channels": ("F3-A2", "O2-A1")}),
])
def test_missing_channel_is_refused_before_writing(tmp_path, name, missing, options):
    good = generate(1, seed=7, fs=100, n_epochs=10)[0]
    bad = good.select(("F3-A2", "O1-A2", "ROC-A1"))
    with pytest.raises(ValueError, match=missing):
        write_layout(name, [good, bad], tmp_path / "out", **options)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").rglob("*")) == []


def test_unmappable_mass_channel_and_unknown_layout(tmp_path):
    rec = generate(1, seed=8, fs=256, n_epochs=10, channels=("C3-A2", "X1"))[0]
    rec = dataclasses.replace(rec, channels=("C3-A2", "Fpz"))
    with pytest.raises(ValueError, match="Fpz"):
        write_mass(rec, tmp_path)
    with pytest.raises(ValueError, match="available"):
        write_layout("shhs", [rec], tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_no_file(tmp_path):
    def fail(tmp):
        with open(tmp, "w") as f:
            f.write("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        layouts._atomic(tmp_path / "1.rec", fail)
    assert list(tmp_path.iterdir()) == []
