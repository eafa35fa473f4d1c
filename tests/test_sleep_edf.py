import datetime
import shutil
import warnings

import numpy as np
import pyedflib
import pytest

from stmd_keras.data.recording import DataError
from stmd_keras.data.sleep_edf import (
    DEFAULT_CHANNELS,
    find_pairs,
    load_night,
    load_sleep_edf,
    read_hypnogram,
)

START = datetime.datetime(1990, 3, 5, 22, 0, 0)
PSG_EPOCHS = 175  # 5250 s
EEG_FS = 100

# A night on the Sleep-EDF model. Epochs (30 s): 0-79 W, 80-81 S1, 82-84 S2,
# 85 S3, 86 S4, 87 ?, 88 movement, 89-90 REM, 91-170 W, then "?" running past
# the end of the PSG, as in the real files.
NIGHT = [
    (0, 2400, "Sleep stage W"),
    (2400, 60, "Sleep stage 1"),
    (2460, 90, "Sleep stage 2"),
    (2550, 30, "Sleep stage 3"),
    (2580, 30, "Sleep stage 4"),
    (2610, 30, "Sleep stage ?"),
    (2640, 30, "Movement time"),
    (2670, 60, "Sleep stage R"),
    (2730, 2400, "Sleep stage W"),
    (5130, 600, "Sleep stage ?"),
]
NIGHT_LABELS = np.array([0] * 80 + [1, 1, 2, 2, 2, 3, 3, -1, -1, 4, 4] + [0] * 80)


def write_psg(path, n_epochs=PSG_EPOCHS, pz_unit="mV"):
    """A PSG with the SC channel layout. "EEG Fpz-Cz" holds the time in seconds
    (so an epoch's first sample tells where it was cut from), "EEG Pz-Oz" a
    50-µV sine written in `pz_unit`, "EMG submental" a constant 5 µV at 1 Hz."""
    seconds = n_epochs * 30
    t = np.arange(seconds * EEG_FS) / EEG_FS
    pz_scale = {"mV": 1e-3, "uV": 1.0}[pz_unit]
    slow = np.zeros(seconds)
    signals = [
        ("EEG Fpz-Cz", "uV", EEG_FS, t, 0.0, 6000.0),
        ("EEG Pz-Oz", pz_unit, EEG_FS, 50 * pz_scale * np.sin(2 * np.pi * t), -100 * pz_scale, 100 * pz_scale),
        ("EOG horizontal", "uV", EEG_FS, np.cos(t), -100.0, 100.0),
        ("Resp oro-nasal", "", 1, slow, -1.0, 1.0),
        ("EMG submental", "uV", 1, slow + 5.0, -10.0, 10.0),
        ("Temp rectal", "DegC", 1, slow + 37.0, 30.0, 40.0),
        ("Event marker", "", 1, slow, -1.0, 1.0),
    ]
    w = pyedflib.EdfWriter(str(path), len(signals), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        with warnings.catch_warnings():  # 30 s suits every rate here
            warnings.simplefilter("ignore", UserWarning)
            w.setDatarecordDuration(30)  # as in the real files
        w.setSignalHeaders([
            dict(label=label, dimension=unit, sample_frequency=fs, physical_min=lo, physical_max=hi,
                 digital_min=-32768, digital_max=32767, transducer="", prefilter="")
            for label, unit, fs, _, lo, hi in signals
        ])
        w.setStartdatetime(START)
        w.writeSamples([x for _, _, _, x, _, _ in signals])
    finally:
        w.close()
    return path


def write_hypnogram(path, annotations=NIGHT, start=START):
    w = pyedflib.EdfWriter(str(path), 0, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setStartdatetime(start)
        for onset, duration, text in annotations:
            w.writeAnnotation(onset, duration, text)
    finally:
        w.close()
    return path


@pytest.fixture(scope="module")
def psg_file(tmp_path_factory):
    return write_psg(tmp_path_factory.mktemp("psg") / "SC4011E0-PSG.edf")


@pytest.fixture
def night(tmp_path, psg_file):
    """(psg, hypnogram) of subject 01, night 1, in a fresh directory."""
    psg = tmp_path / "SC4011E0-PSG.edf"
    shutil.copyfile(psg_file, psg)
    return psg, write_hypnogram(tmp_path / "SC4011EH-Hypnogram.edf")


def epoch_starts(rec):
    """Seconds from the PSG start at which each epoch of `rec` was cut."""
    return rec.epochs()[:, rec.channels.index("EEG Fpz-Cz"), 0]


# -- real fragments -------------------------------------------------------------

def test_real_hypnogram_counts(shared_data):
    onset, labels = read_hypnogram(shared_data / "sleep-edf/SC4001EC-Hypnogram.edf")
    assert onset == 0.0 and labels.size == 2880
    assert np.bincount(labels + 1).tolist() == [230, 1997, 58, 250, 220, 125]


def test_real_pair_excerpt(shared_data):
    psg = shared_data / "sleep-edf/SC4001E0-PSG-first300s.edf"
    hyp = shared_data / "sleep-edf/SC4001EC-Hypnogram.edf"
    with pytest.warns(UserWarning, match=r"SC4001EC-Hypnogram.*79500 s.*300 s"):
        rec = load_night(psg, hyp, allow_truncated_psg=True)
    assert rec.n_epochs == 10 and (rec.labels == 0).all()
    assert rec.signals.shape == (3, 30000) and rec.signals.dtype == np.float32
    assert rec.channels == DEFAULT_CHANNELS and rec.fs == 100.0
    assert rec.subject == "SC400" and rec.source == str(psg)
    raw = pyedflib.EdfReader(str(psg))
    try:  # µV as in the file (its unit is "uV")
        np.testing.assert_allclose(rec.signals[0], raw.readSignal(0), rtol=1e-6, atol=1e-3)
    finally:
        raw.close()

    with pytest.raises(DataError, match=r"SC4001EC-Hypnogram\.edf.*SC4001E0-PSG-first300s\.edf"):
        load_night(psg, hyp)


# -- generated files: labels and alignment ---------------------------------------

def test_night_without_trimming(night):
    rec = load_night(*night, trim_wake_min=None)
    kept = NIGHT_LABELS >= 0  # "?" and movement (epochs 87, 88) are cut out
    np.testing.assert_array_equal(rec.labels, NIGHT_LABELS[kept])
    np.testing.assert_allclose(epoch_starts(rec), 30.0 * np.flatnonzero(kept), atol=0.2)
    assert rec.signals.shape == (3, 169 * 3000) and rec.signals.dtype == np.float32
    assert rec.subject == "SC401"


def test_wake_trimmed_to_30_min_around_sleep(night):
    rec = load_night(*night)  # default trim_wake_min=30
    expected = [k for k in range(20, 151) if k not in (87, 88)]  # sleep is 80..90
    np.testing.assert_allclose(epoch_starts(rec), 30.0 * np.array(expected), atol=0.2)
    np.testing.assert_array_equal(rec.labels, NIGHT_LABELS[expected])
    assert (rec.labels[:60] == 0).all() and (rec.labels[-60:] == 0).all()
    assert np.bincount(rec.labels).tolist() == [120, 2, 3, 2, 2]  # S3 + S4 -> N3


@pytest.mark.parametrize("how, shift", [("onset", 60), ("onset", 15), ("start", 60), ("start", -60)])
def test_hypnogram_offset_is_aligned_by_time(tmp_path, psg_file, how, shift):
    psg = shutil.copyfile(psg_file, tmp_path / "SC4011E0-PSG.edf")
    if how == "onset":
        hyp = write_hypnogram(tmp_path / "SC4011EH-Hypnogram.edf",
                              [(o + shift, d, t) for o, d, t in NIGHT])
    else:
        hyp = write_hypnogram(tmp_path / "SC4011EH-Hypnogram.edf",
                              start=START + datetime.timedelta(seconds=shift))
    rec = load_night(psg, hyp, trim_wake_min=None)
    k = np.flatnonzero(NIGHT_LABELS >= 0)
    k = k[30.0 * k + shift >= 0]  # a hypnogram epoch before the PSG start has no signal
    np.testing.assert_array_equal(rec.labels, NIGHT_LABELS[k])
    np.testing.assert_allclose(epoch_starts(rec), 30.0 * k + shift, atol=0.2)


def test_units_and_channel_rates(night):
    rec = load_night(*night, channels=("EEG Pz-Oz", "EMG submental"))
    # Pz-Oz is written in mV: 0.05 mV amplitude must come back as 50 µV.
    assert 49.0 < np.abs(rec.signals[0]).max() < 51.0
    # The 1-Hz EMG is resampled to the 100-Hz grid, not dropped or crashing.
    assert rec.fs == 100.0 and rec.signals.shape[1] == rec.n_epochs * 3000
    np.testing.assert_allclose(rec.signals[1, 3000:-3000], 5.0, atol=0.05)

    rec = load_night(*night, channels=("EMG submental",))
    assert rec.fs == 1.0 and rec.signals.shape == (1, rec.n_epochs * 30)
    rec = load_night(*night, fs=50)
    assert rec.fs == 50.0 and rec.signals.shape == (3, rec.n_epochs * 1500)

    with pytest.raises(DataError, match=r"SC4011E0-PSG\.edf.*Temp rectal.*'DegC'"):
        load_night(*night, channels=("EEG Fpz-Cz", "Temp rectal"))
    with pytest.raises(DataError, match=r"SC4011E0-PSG\.edf.*'EEG C4'.*EEG Pz-Oz"):
        load_night(*night, channels=("EEG C4",))


# -- generated files: errors ------------------------------------------------------

def test_unknown_annotation_text(night):
    psg, _ = night
    hyp = write_hypnogram(psg.parent / "SC4011EH-Hypnogram.edf",
                          NIGHT[:2] + [(2460, 90, "Sleep stage X")] + NIGHT[3:])
    with pytest.raises(DataError, match=r"SC4011EH-Hypnogram\.edf.*'Sleep stage X'.*2460"):
        load_night(psg, hyp)


def test_duration_off_the_30s_grid(night):
    psg, _ = night
    hyp = write_hypnogram(psg.parent / "SC4011EH-Hypnogram.edf",
                          [(0, 45, "Sleep stage W"), (45, 30, "Sleep stage 1")])
    with pytest.raises(DataError, match=r"SC4011EH-Hypnogram\.edf.*duration 45.*multiple of 30"):
        load_night(psg, hyp)


def test_hypnogram_scoring_past_the_psg(night):
    psg, _ = night
    long = NIGHT[:-1] + [(5130, 900, "Sleep stage W")]  # scored to 6030 s > 5250 s
    hyp = write_hypnogram(psg.parent / "SC4011EH-Hypnogram.edf", long)
    with pytest.raises(DataError, match=r"SC4011EH-Hypnogram\.edf.*6030 s.*SC4011E0-PSG\.edf.*5250 s"):
        load_night(psg, hyp)
    with pytest.warns(UserWarning, match=r"keeping the 175 covered epochs"):
        rec = load_night(psg, hyp, trim_wake_min=None, allow_truncated_psg=True)
    assert rec.n_epochs == 175 - 2
    np.testing.assert_allclose(epoch_starts(rec)[-1], 174 * 30.0, atol=0.2)


def test_truncated_psg_file(night):
    psg, hyp = night
    with open(psg, "r+b") as f:
        f.truncate(psg.stat().st_size - 1000)
    with pytest.raises(DataError, match=r"SC4011E0-PSG\.edf.*truncated"):
        load_night(psg, hyp)


def test_mismatched_pair(night, tmp_path):
    psg, hyp = night
    other = shutil.copyfile(hyp, tmp_path / "SC4012EC-Hypnogram.edf")
    with pytest.raises(DataError, match=r"SC4011E0-PSG\.edf.*SC4012EC-Hypnogram\.edf"):
        load_night(psg, other)


# -- directory scans ---------------------------------------------------------------

def test_pairs_by_prefix_and_loads_subjects(night, tmp_path):
    psg, hyp = night
    shutil.copyfile(psg, tmp_path / "SC4012E0-PSG.edf")
    shutil.copyfile(hyp, tmp_path / "SC4012EC-Hypnogram.edf")
    (tmp_path / "README.txt").write_text("not a recording")
    pairs = find_pairs(tmp_path)
    assert [(p.split("/")[-1], h.split("/")[-1], s, n) for p, h, s, n in pairs] == [
        ("SC4011E0-PSG.edf", "SC4011EH-Hypnogram.edf", 1, 1),
        ("SC4012E0-PSG.edf", "SC4012EC-Hypnogram.edf", 1, 2),
    ]
    recs = load_sleep_edf(tmp_path, subjects=[1], trim_wake_min=None)
    assert [r.subject for r in recs] == ["SC401", "SC401"]  # both nights, one person
    assert [r.source.split("/")[-1] for r in recs] == ["SC4011E0-PSG.edf", "SC4012E0-PSG.edf"]
    with pytest.raises(DataError, match=r"subject\(s\) \[0, 2, 3"):
        load_sleep_edf(tmp_path, subset="sleep-edf-20")
    with pytest.raises(DataError, match=r"subject\(s\) \[5\]"):
        load_sleep_edf(tmp_path, subjects=[5])
    with pytest.raises(ValueError, match="not both"):
        load_sleep_edf(tmp_path, subjects=[1], subset="sleep-edf-20")


def test_orphans_are_errors(tmp_path, psg_file):
    write_hypnogram(tmp_path / "SC4021EH-Hypnogram.edf")
    with pytest.raises(DataError, match=r"SC4021EH-Hypnogram\.edf has no matching PSG"):
        find_pairs(tmp_path)
    other = tmp_path / "b"
    other.mkdir()
    shutil.copyfile(psg_file, other / "SC4031E0-PSG.edf")
    with pytest.raises(DataError, match=r"SC4031E0-PSG\.edf has no matching Hypnogram"):
        load_sleep_edf(other)
