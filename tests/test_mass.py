import datetime
import shutil

import numpy as np
import pyedflib
import pytest

from stmd_keras.data.mass import (
    DEFAULT_CHANNELS,
    find_subjects,
    load_mass,
    load_subject,
    match_channels,
)
from stmd_keras.data.recording import DataError

START = datetime.datetime(2008, 1, 1, 23, 0, 0)
FS = 256
ECG_FS = 512
PSG_SECONDS = 330

# The Base scoring: stage epochs start 7.5 s after the PSG (off its 30-s
# grid), there is a "?" at 97.5 s, a 12.8-s gap after 187.5 s (the later
# onsets fall between samples: 200.3 s is sample 51276.8), an arousal, and a
# trailing "?" running past the end of the 330-s PSG.
NIGHT = [
    (7.5, 30, "Sleep stage W"),
    (37.5, 30, "Sleep stage 1"),
    (50.0, 3, "EEG arousal"),
    (67.5, 30, "Sleep stage 2"),
    (97.5, 30, "Sleep stage ?"),
    (127.5, 30, "Sleep stage 3"),
    (157.5, 30, "Sleep stage R"),
    (200.3, 30, "Sleep stage 2"),
    (230.3, 30, "Sleep stage W"),
    (260.3, 30, "Sleep stage ?"),
    (300.3, 30, "Sleep stage ?"),
]
STAGE_ONSETS = [o for o, _, t in NIGHT if t.startswith("Sleep stage")]
KEPT = [0, 1, 2, 4, 5, 6, 7]  # indices into STAGE_ONSETS of the scored epochs
EXPECTED_LABELS = [0, 1, 2, 3, 4, 2, 0]

# Canonical channel -> value offset of its pattern, so a swapped channel shows.
OFFSET = {c: i for i, c in enumerate(DEFAULT_CHANNELS)}
OFFSET.update({"A2": 50, "Chin2": 60})


def pattern(offset, fs=FS):
    """-100 µV outside the scored windows; 20 * (k + 1) + offset inside the
    exact window `[round(onset_k * fs), + 30 * fs)` of stage epoch k."""
    x = np.full(PSG_SECONDS * fs, -100.0)
    for k, onset in enumerate(STAGE_ONSETS):
        first = round(onset * fs)
        x[first: first + 30 * fs] = 20 * (k + 1) + offset
    return x


def ecg_uv(t):
    return 500.0 * np.sin(2 * np.pi * 0.5 * t)


def write_psg(path, ref="CLE", emg="EMG Chin1", extra=()):
    """A PSG with SS3-like labels in a shuffled order; "ECG I" is at 512 Hz, in mV."""
    eeg = lambda e: (f"EEG {e}-{ref}", "uV", FS, pattern(OFFSET[e]))  # noqa: E731
    t_ecg = np.arange(PSG_SECONDS * ECG_FS) / ECG_FS
    signals = [
        ("ECG I", "mV", ECG_FS, ecg_uv(t_ecg) / 1000),
        (emg, "uV", FS, pattern(OFFSET["EMG"])),
        eeg("O2"),
        ("EOG Right Horiz", "uV", FS, pattern(OFFSET["ROC"])),
        eeg("C4"),
        eeg("F3"),
        eeg("A2"),
        ("EOG Left Horiz", "uV", FS, pattern(OFFSET["LOC"])),
        eeg("C3"),
        eeg("O1"),
        eeg("F4"),
        ("EMG Chin2", "uV", FS, pattern(OFFSET["Chin2"])),
        *extra,
    ]
    w = pyedflib.EdfWriter(str(path), len(signals), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setSignalHeaders([
            dict(label=label, dimension=unit, sample_frequency=fs,
                 physical_min=-1.0 if unit == "mV" else -200.0,
                 physical_max=1.0 if unit == "mV" else 400.0,
                 digital_min=-32768, digital_max=32767, transducer="", prefilter="")
            for label, unit, fs, _ in signals
        ])
        w.setStartdatetime(START)
        w.writeSamples([x for _, _, _, x in signals])
    finally:
        w.close()
    return path


def write_base(path, annotations=NIGHT, start=START):
    w = pyedflib.EdfWriter(str(path), 0, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setStartdatetime(start)
        for onset, duration, text in annotations:
            w.writeAnnotation(onset, duration, text)
    finally:
        w.close()
    return path


@pytest.fixture(scope="module")
def ss3(tmp_path_factory):
    """A directory with subject 1 (-CLE, "EMG Chin1") and 2 (-LER, "EMG Chin")."""
    d = tmp_path_factory.mktemp("SS3")
    write_psg(d / "01-03-0001 PSG.edf")
    write_base(d / "01-03-0001 Base.edf")
    write_psg(d / "01-03-0002 PSG.edf", ref="LER", emg="EMG Chin")
    write_base(d / "01-03-0002 Base.edf")
    return d


@pytest.fixture
def subject1(ss3, tmp_path):
    """(psg, base) of subject 1, copied to a fresh directory."""
    psg = shutil.copyfile(ss3 / "01-03-0001 PSG.edf", tmp_path / "01-03-0001 PSG.edf")
    base = shutil.copyfile(ss3 / "01-03-0001 Base.edf", tmp_path / "01-03-0001 Base.edf")
    return psg, base


def check_pattern(rec):
    """Every sample of every epoch holds the value written into its window."""
    x = rec.epochs()  # (n_epochs, C, samples)
    for i, k in enumerate(KEPT):
        for j, c in enumerate(rec.channels):
            np.testing.assert_allclose(x[i, j], 20 * (k + 1) + OFFSET[c], atol=0.05,
                                       err_msg=f"epoch {i} (stage epoch {k}), channel {c}")


# -- alignment, labels, channels ----------------------------------------------------

@pytest.mark.parametrize("number", [1, 2])  # -CLE and -LER references
def test_windows_aligned_by_onset(ss3, number):
    psg = ss3 / f"01-03-000{number} PSG.edf"
    rec = load_subject(psg, ss3 / f"01-03-000{number} Base.edf")
    assert rec.channels == DEFAULT_CHANNELS
    assert rec.subject == f"MASS3-000{number}" and rec.source == str(psg)
    assert rec.fs == 256.0 and rec.signals.dtype == np.float32
    assert rec.signals.shape == (9, len(KEPT) * 30 * FS)
    np.testing.assert_array_equal(rec.labels, EXPECTED_LABELS)  # W/1/2/3/R, "?" dropped
    check_pattern(rec)  # exact windows: an off-by-one sample would show -100 or a neighbour


def test_channel_aliases_both_references():
    cle = ["ECG I", "EEG C3-CLE", "EMG Chin1 ", "EOG Left Horiz", "EOG Right Horiz"]
    ler = ["EEG C3-LER", "EMG Chin", "EOG Left Horiz", "EOG Right Horiz"]
    wanted = ("LOC", "C3", "EMG", "ROC")
    assert match_channels(cle, wanted) == ("EOG Left Horiz", "EEG C3-CLE", "EMG Chin1 ", "EOG Right Horiz")
    assert match_channels(ler, wanted) == ("EOG Left Horiz", "EEG C3-LER", "EMG Chin", "EOG Right Horiz")
    with pytest.raises(DataError, match=r"x\.edf.*several.*'C3'"):
        match_channels(["EEG C3-CLE", "EEG C3-LER"], ("C3",), "x.edf")
    with pytest.raises(ValueError, match=r"Unknown MASS channel.*EEG C3-CLE"):
        match_channels(cle, ("EEG C3-CLE",))


def test_other_rate_channel_is_resampled(ss3):
    rec = load_subject(ss3 / "01-03-0001 PSG.edf", ss3 / "01-03-0001 Base.edf",
                       channels=("ECG", "C3"))
    assert rec.fs == 256.0 and rec.channels == ("ECG", "C3")  # the EEG rate, not ECG's 512 Hz
    x = rec.epochs()
    for i, k in enumerate(KEPT):
        first = round(STAGE_ONSETS[k] * FS)
        t = (first + np.arange(30 * FS)) / FS
        np.testing.assert_allclose(x[i, 0], ecg_uv(t), atol=1.0)  # mV -> µV, 512 -> 256 Hz
        np.testing.assert_allclose(x[i, 1], 20 * (k + 1) + OFFSET["C3"], atol=0.05)

    rec = load_subject(ss3 / "01-03-0001 PSG.edf", ss3 / "01-03-0001 Base.edf",
                       channels=("C3", "ECG"), fs=128)
    assert rec.fs == 128.0 and rec.signals.shape == (2, len(KEPT) * 30 * 128)
    x = rec.epochs()
    for i, k in enumerate(KEPT):  # away from the windows' edges, where the filter rings
        np.testing.assert_allclose(x[i, 0, 64:-64], 20 * (k + 1) + OFFSET["C3"], atol=0.5)


def test_base_start_differs_from_psg_start(subject1):
    psg, base = subject1
    shifted = [(o + 10, d, t) for o, d, t in NIGHT]  # same times, counted from 10 s earlier
    write_base(base, shifted, start=START - datetime.timedelta(seconds=10))
    rec = load_subject(psg, base, channels=("F3", "EMG"))
    np.testing.assert_array_equal(rec.labels, EXPECTED_LABELS)
    check_pattern(rec)


# -- errors -----------------------------------------------------------------------------

def test_missing_channel(ss3):
    message = r"01-03-0002 PSG\.edf.*no signal.*'Pz'.*'EEG Pz-CLE', 'EEG Pz-LER'.*EEG C3-LER"
    with pytest.raises(DataError, match=message):
        load_subject(ss3 / "01-03-0002 PSG.edf", ss3 / "01-03-0002 Base.edf", channels=("C3", "Pz"))


def test_unknown_stage_annotation(subject1):
    psg, base = subject1
    write_base(base, NIGHT[:5] + [(127.5, 30, "Sleep stage 4")] + NIGHT[6:])
    with pytest.raises(DataError, match=r"01-03-0001 Base\.edf.*'Sleep stage 4'.*127\.5"):
        load_subject(psg, base)


def test_mismatched_prefix(ss3):
    with pytest.raises(DataError, match=r"01-03-0001 PSG\.edf.*01-03-0002 Base\.edf.*not one subject"):
        load_subject(ss3 / "01-03-0001 PSG.edf", ss3 / "01-03-0002 Base.edf")


def test_base_scoring_past_the_psg(subject1):
    psg, base = subject1
    write_base(base, NIGHT[:-1] + [(300.3, 30, "Sleep stage 2")])  # ends at 330.3 s > 330 s
    with pytest.raises(DataError, match=r"01-03-0001 Base\.edf.*330\.3 s.*01-03-0001 PSG\.edf.*330 s"):
        load_subject(psg, base)


def test_overlapping_epochs(subject1):
    psg, base = subject1
    write_base(base, NIGHT + [(215.3, 30, "Sleep stage 2")])
    with pytest.raises(DataError, match=r"01-03-0001 Base\.edf.*200\.3 s and 215\.3 s overlap"):
        load_subject(psg, base)


# -- directory scans -------------------------------------------------------------------

def test_find_and_load_subjects(ss3):
    pairs = find_subjects(ss3)
    assert [(p.split("/")[-1], b.split("/")[-1], s) for p, b, s in pairs] == [
        ("01-03-0001 PSG.edf", "01-03-0001 Base.edf", "MASS3-0001"),
        ("01-03-0002 PSG.edf", "01-03-0002 Base.edf", "MASS3-0002"),
    ]
    recs = load_mass(ss3, subjects=[2], channels=("O2",))
    assert [r.subject for r in recs] == ["MASS3-0002"] and recs[0].channels == ("O2",)
    recs = load_mass(ss3, channels=("C4",))
    assert [r.source.split("/")[-1] for r in recs] == ["01-03-0001 PSG.edf", "01-03-0002 PSG.edf"]
    with pytest.raises(DataError, match=r"subject\(s\) \['MASS3-0005'\]"):
        load_mass(ss3, subjects=["MASS3-0005"])


def test_orphans_are_errors(ss3, tmp_path):
    shutil.copyfile(ss3 / "01-03-0001 PSG.edf", tmp_path / "01-03-0001 PSG.edf")
    shutil.copyfile(ss3 / "01-03-0002 Base.edf", tmp_path / "01-03-0002 Base.edf")
    (tmp_path / "README.txt").write_text("not a recording")
    message = r"01-03-0001 PSG\.edf has no matching Base.*01-03-0002 Base\.edf has no matching PSG"
    with pytest.raises(DataError, match=message):
        find_subjects(tmp_path)
