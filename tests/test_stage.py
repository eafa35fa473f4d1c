"""`stmd stage`: EDF files (generated and real) -> hypnogram, probabilities, hypnodensity."""

import argparse
import os
import warnings

import numpy as np
import pyedflib
import pytest

from stmd_keras.data.edf import read_edf
from stmd_keras.data.layouts import write_isruc, write_mass
from stmd_keras.data.preprocess import PreprocessConfig, prepare
from stmd_keras.data.recording import STAGES, DataError, Recording
from stmd_keras.data.sleep_edf import _signals_at
from stmd_keras.data.synthetic import generate
from stmd_keras.deploy import stage
from stmd_keras.deploy.stage import StagingResult, accepted_spellings, map_channels, stage_recording

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CARD = {
    "architecture": "cnn_rnn",
    "role": "student",
    "channels": ["F4-A1", "LOC-A2"],
    "fs": 100.0,
    "seq_len": 3,
    "epoch_sec": 30.0,
    "stages": list(STAGES),
    "preprocess": {"bandpass": [0.3, 35.0], "notch": None, "standardize": True},
}


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class EpochwiseStager:
    """A stand-in `Stager` whose output for an epoch depends on that epoch alone.

    So the staged probabilities must equal `epoch_probs` of the prepared
    epochs, wherever the epoch sat in its sequence(s): a check of sequence
    cutting, padding and averaging that needs no trained model.
    """

    def __init__(self, card, batch_size=None):
        self.card = dict(card)
        self.seq_len = int(card["seq_len"])
        self.n_channels = len(card["channels"])
        self.fs = float(card["fs"])
        self.batch_size = batch_size
        self.calls = []

    @staticmethod
    def epoch_probs(x):
        """`(..., C, S)` -> `(..., 5)` from per-channel epoch statistics."""
        features = np.concatenate([x.mean(-1), x.std(-1), np.abs(np.diff(x, axis=-1)).mean(-1)], axis=-1)
        weights = np.linspace(-1.0, 1.0, features.shape[-1] * 5).reshape(features.shape[-1], 5)
        return softmax(features @ weights)

    def predict_proba(self, x):
        assert x.dtype == np.float32 and x.shape[1:] == (self.seq_len, self.n_channels, int(30 * self.fs))
        if self.batch_size is not None:
            assert x.shape[0] <= self.batch_size
        self.calls.append(x.shape[0])
        return self.epoch_probs(x.astype(np.float64)).astype(np.float32)


class KerasStager:
    """A `Stager` over an in-memory Keras model (the runtime's `.keras` path in miniature)."""

    def __init__(self, model, card):
        self.model, self.card = model, dict(card)
        self.seq_len, self.n_channels, self.fs = int(card["seq_len"]), len(card["channels"]), float(card["fs"])
        self.batch_size = None

    def predict_proba(self, x):
        return softmax(np.asarray(self.model(x, training=False)["logits"], dtype=np.float64)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """`(path to model.keras with its card, KerasStager)` of a tiny untrained CNN-RNN."""
    import keras

    from stmd_keras.models import build_cnn_rnn
    from stmd_keras.runner.training import save_model

    keras.utils.set_random_seed(0)
    model = build_cnn_rnn(4, 4, n_channels=2, seq_len=CARD["seq_len"], fs=CARD["fs"], dropout=0.0,
                          name="tiny")
    path = save_model(model, str(tmp_path_factory.mktemp("model")), CARD, "tiny.keras")
    return path, KerasStager(model, CARD)


def night(fs, n_epochs=10, channels=("F4-A1", "LOC-A2"), seed=0):
    (rec,) = generate(1, seed=seed, fs=fs, n_epochs=n_epochs, channels=channels)
    return rec


def write_edf(path, signals, record_seconds=1):
    """Writes `[(label, fs, samples)]` in µV as an EDF+ file with 1-s data records."""
    w = pyedflib.EdfWriter(os.fspath(path), len(signals), file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        w.setSignalHeaders([
            {"label": label, "dimension": "uV", "sample_frequency": fs, "physical_max": 1000.0,
             "physical_min": -1000.0, "digital_max": 32767, "digital_min": -32768}
            for label, fs, _ in signals
        ])
        w.writeSamples([np.clip(np.asarray(x, dtype=np.float64), -999, 999) for _, _, x in signals])
    finally:
        w.close()
    return os.fspath(path)


def read_tsv(path):
    with open(path) as f:
        lines = f.read().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def check_outputs(paths, n_epochs):
    """The three files are there, one row per epoch, valid labels, rows summing to 1."""
    header, rows = read_tsv(paths["hypnogram"])
    assert header == ["onset", "duration", "stage"]
    assert len(rows) == n_epochs
    assert [float(r[0]) for r in rows] == [30.0 * k for k in range(n_epochs)]
    assert {float(r[1]) for r in rows} == {30.0}
    assert {r[2] for r in rows} <= {"W", "N1", "N2", "N3", "REM"}
    table = np.loadtxt(paths["probabilities"], delimiter=",", skiprows=1, ndmin=2)
    with open(paths["probabilities"]) as f:
        assert f.readline().strip() == "onset,W,N1,N2,N3,REM"
    assert table.shape == (n_epochs, 6)
    np.testing.assert_allclose(table[:, 1:].sum(axis=1), 1.0, atol=1e-5)
    assert [STAGES[k] for k in table[:, 1:].argmax(axis=1)] == [r[2] for r in rows]
    with open(paths["plot"], "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    assert os.path.getsize(paths["plot"]) > 5000


def files_in(folder):
    return sorted(os.listdir(folder))


# -- channel names ------------------------------------------------------------

def test_accepted_spellings_reuse_the_loaders_alias_tables():
    assert accepted_spellings("C4-A1") == ("C4-A1", "C4-M1", "C4_A1", "EEG C4-CLE", "EEG C4-LER")
    assert "EOG Left Horiz" in accepted_spellings("LOC-A2") and "E1-M2" in accepted_spellings("LOC-A2")
    assert {"EEG F4-CLE", "EEG F4-LER", "F4-A1", "F4-M1"} <= set(accepted_spellings("F4"))
    assert accepted_spellings("EEG Fpz-Cz")[0] == "EEG Fpz-Cz"


@pytest.mark.parametrize("label", ["C4-M1", "EEG C4-A1", "c4:a1", "C4_A1", "C4 - M1", "EEG C4-CLE", "EEG C4-LER"])
def test_map_channels_accepts_common_spellings(label):
    assert map_channels(["ECG", label, "E1-M2"], ["C4-A1", "LOC-A2"]) == {"C4-A1": label, "LOC-A2": "E1-M2"}


def test_map_channels_prefers_the_exact_label_and_refuses_ambiguity():
    assert map_channels(["C4-M1", "C4-A1"], ["C4-A1"]) == {"C4-A1": "C4-A1"}
    with pytest.raises(DataError, match="several signals"):
        map_channels(["EEG F4-CLE", "EEG F4-LER"], ["F4"], "f.edf")


def test_missing_channel_error_names_file_channel_spellings_and_labels():
    with pytest.raises(DataError) as info:
        map_channels(["O1-A1", "C3-A1", "EMG1"], ["C4-A1"], "night.edf")
    message = str(info.value)
    for text in ("night.edf", "'C4-A1'", "C4-M1", "EEG C4-CLE", "'O1-A1'", "'C3-A1'", "'EMG1'", "channels="):
        assert text in message


def test_channel_override_by_position_or_name():
    labels = ["O1-A1", "C3-A1"]
    assert map_channels(labels, ["C4-A1", "O2-A1"], override="C3-A1, o1-a1") == {"C4-A1": "C3-A1", "O2-A1": "O1-A1"}
    assert map_channels(labels + ["O2-A1"], ["C4-A1", "O2-A1"], override={"C4-A1": "C3-A1"}) == {
        "C4-A1": "C3-A1", "O2-A1": "O2-A1"}
    with pytest.raises(ValueError, match="must name 2 file signals"):
        map_channels(labels, ["C4-A1", "O2-A1"], override=["C3-A1"])
    with pytest.raises(DataError, match=r"no signal labelled 'Cz'.*the file has \['O1-A1', 'C3-A1'\]"):
        map_channels(labels, ["C4-A1", "O2-A1"], override=["Cz", "O1-A1"])


# -- sequences --------------------------------------------------------------------

@pytest.mark.parametrize("n_epochs, seq_len", [(3, 3), (10, 3), (9, 3), (41, 20), (20, 20), (21, 20)])
def test_sequence_starts_are_those_of_evaluation(n_epochs, seq_len):
    from stmd_keras.data.sequences import SequenceSet

    rec = Recording("s", np.zeros((1, n_epochs * 300), np.float32), 10.0, ["c"], np.zeros(n_epochs, int))
    np.testing.assert_array_equal(stage.sequence_starts(n_epochs, seq_len), SequenceSet([rec], seq_len).starts)


def test_staging_a_file_needs_no_tensorflow(tmp_path):
    """The `.tflite` deployment path: reading, preprocessing, staging, writing without TF."""
    import subprocess
    import sys
    import textwrap

    path = write_edf(tmp_path / "n.edf", [("F4-A1", 100, np.random.default_rng(0).normal(0, 20, 100 * 120)),
                                          ("LOC-A2", 100, np.random.default_rng(1).normal(0, 20, 100 * 120))])
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_stage import CARD, EpochwiseStager
        from stmd_keras.deploy.stage import stage_recording
        stage_recording({path!r}, EpochwiseStager(CARD), progress=False).to_files({str(tmp_path / "o")!r})
        assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "TensorFlow was imported"
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    check_outputs(stage.output_paths(tmp_path / "o"), 4)


# -- generated nights -----------------------------------------------------------

@pytest.mark.parametrize("fs", [100, 200, 256, 512])
def test_generated_mass_night_at_any_rate(tmp_path, fs):
    """MASS-layout files ("EEG F4-CLE", "EOG Left Horiz") for a card in ISRUC names;
    12.5 s of signal before the first stage epoch and whole 1-s records make a 13-s tail."""
    psg, _ = write_mass(night(fs), tmp_path / "in", onset_offset=12.5)
    stager = EpochwiseStager(CARD)
    with pytest.warns(UserWarning, match=r"dropped the last 13 s"):
        result = stage_recording(psg, stager, progress=False)
    assert result.channels == {"F4-A1": "EEG F4-CLE", "LOC-A2": "EOG Left Horiz"}
    assert result.n_epochs == 10 and result.padded_epochs == 0
    assert result.fs == fs and result.dropped_samples == 13 * fs and result.dropped_seconds == 13
    # Sequences 0-2, 3-5, 6-8 and the end-aligned 7-9: epochs 7 and 8 are seen twice
    # and averaged, yet each epoch gets its own output back.
    raw = _signals_at(read_edf(psg), ["EEG F4-CLE", "EOG Left Horiz"], float(fs))[0]
    rec = Recording("x", raw[:, : 10 * 30 * fs], fs, CARD["channels"], np.zeros(10, dtype=int))
    expected = stager.epoch_probs(prepare(rec, PreprocessConfig(fs=100, bandpass=(0.3, 35))).epochs())
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-5, atol=1e-6)
    paths = result.to_files(tmp_path / "out" / "night")
    assert paths == {k: str(tmp_path / "out" / f"night{s}") for k, s in stage.SUFFIXES.items()}
    check_outputs(paths, 10)
    assert files_in(tmp_path / "out") == ["night.hypnogram.tsv", "night.png", "night.probabilities.csv"]


def test_isruc_file_with_aasm_names_and_a_keras_model(tmp_path, tiny_model):
    """"C4-M1"/"E1-M2" in the file for a card's "F4-A1"-style names, staged by a real model."""
    rec = night(200, channels=("C4-A1", "LOC-A2"))
    rec.channels = ("C4-M1", "E1-M2")
    write_isruc(rec, tmp_path, extra_label_lines=0)
    _, keras_stager = tiny_model
    card = dict(CARD, channels=["C4-A1", "LOC-A2"])
    keras_stager = KerasStager(keras_stager.model, card)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # whole epochs only: nothing to warn about
        result = stage_recording(tmp_path / "1" / "1.rec", keras_stager, progress=False, batch_size=1)
    assert result.channels == {"C4-A1": "C4-M1", "LOC-A2": "E1-M2"}
    assert result.dropped_samples == 0 and result.n_epochs == 10
    assert np.all(np.isin(result.hypnogram, STAGES))
    check_outputs(result.to_files(tmp_path / "out" / "isruc"), 10)


def test_channels_at_different_rates_and_batching(tmp_path):
    """EEG at 200 Hz with EOG at 50 Hz (brought to 200 Hz, then to the model's 100 Hz)."""
    rng = np.random.default_rng(0)
    path = write_edf(tmp_path / "mixed.edf", [("EEG F4-M1", 200, rng.normal(0, 30, 200 * 130)),
                                              ("EOG E1-M2", 50, rng.normal(0, 30, 50 * 130))])
    stager = EpochwiseStager(CARD, batch_size=1)
    with pytest.warns(UserWarning, match=r"dropped the last 10 s"):
        result = stage_recording(path, stager, progress=False)
    assert result.fs == 200 and result.n_epochs == 4 and result.dropped_seconds == 10
    assert stager.calls == [1, 1]  # sequences 0-2 and the end-aligned 1-3, one per call
    assert result.channels == {"F4-A1": "EEG F4-M1", "LOC-A2": "EOG E1-M2"}


def test_short_recording_is_padded_to_one_sequence(tmp_path):
    path = write_edf(tmp_path / "short.edf", [("F4-A1", 100, np.random.default_rng(1).normal(0, 20, 100 * 95)),
                                              ("LOC-A2", 100, np.random.default_rng(2).normal(0, 20, 100 * 95))])
    stager = EpochwiseStager(dict(CARD, seq_len=20))
    with pytest.warns(UserWarning) as caught:
        result = stage_recording(path, stager, progress=False)
    messages = " ".join(str(w.message) for w in caught)
    assert "dropped the last 5 s" in messages and "padded with 17 mirrored epochs" in messages
    assert result.n_epochs == 3 and result.padded_epochs == 17 and stager.calls == [1]
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_shorter_than_one_epoch_is_refused(tmp_path):
    path = write_edf(tmp_path / "tiny.edf", [("F4-A1", 100, np.zeros(2000)), ("LOC-A2", 100, np.zeros(2000))])
    with pytest.raises(DataError, match=r"lasts 20 s, shorter than one 30-s epoch"):
        stage_recording(path, EpochwiseStager(CARD), progress=False)


def test_missing_channel_writes_nothing(tmp_path):
    psg, _ = write_mass(night(100), tmp_path / "in", channels=("F4-A1",))
    with pytest.raises(DataError) as info:
        stage_recording(psg, EpochwiseStager(CARD), progress=False)
    assert psg in str(info.value) and "'LOC-A2'" in str(info.value) and "['EEG F4-CLE']" in str(info.value)


def test_write_outputs_is_all_or_nothing(tmp_path, monkeypatch):
    result = StagingResult(source="n.edf", hypnogram=np.array(["W", "N2", "REM"]),
                           probabilities=np.float32([[.6, .1, .1, .1, .1], [.1, .1, .6, .1, .1], [.1, .1, .1, .1, .6]]),
                           onsets=np.array([0.0, 30.0, 60.0]), channels={"C4-A1": "C4-M1"})
    out = tmp_path / "out"
    out.mkdir()
    (out / "n.hypnogram.tsv").write_text("old\n")
    from matplotlib.figure import Figure

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken)
    with pytest.raises(OSError, match="disk full"):
        result.to_files(out / "n")
    assert files_in(out) == ["n.hypnogram.tsv"] and (out / "n.hypnogram.tsv").read_text() == "old\n"
    monkeypatch.undo()
    paths = result.to_files(out)  # a folder: files named after the recording
    assert paths["plot"] == str(out / "n.png")
    check_outputs(paths, 3)


# -- real EDF fragments -----------------------------------------------------------

def test_real_sleep_edf_excerpt(shared_data, tmp_path, tiny_model):
    """The real SC4001 excerpt: 300 s = 10 whole epochs at 100 Hz, staged by a Keras model."""
    path = shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf"
    if not path.exists():
        pytest.skip(f"{path} not found")
    card = dict(CARD, channels=["EEG Fpz-Cz", "EEG Pz-Oz"])
    stager = KerasStager(tiny_model[1].model, card)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = stage_recording(path, stager, progress=False)
    assert result.reader == "pyedflib" and result.n_epochs == 10 and result.dropped_samples == 0
    assert result.channels == {"EEG Fpz-Cz": "EEG Fpz-Cz", "EEG Pz-Oz": "EEG Pz-Oz"}
    check_outputs(result.to_files(tmp_path / "SC4001"), 10)


def test_real_sleep_edf_excerpt_padded_with_a_1hz_channel(shared_data):
    """seq_len 20 (the default) on a 10-epoch excerpt; "EMG submental" is sampled at 1 Hz."""
    path = shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf"
    if not path.exists():
        pytest.skip(f"{path} not found")
    card = dict(CARD, channels=["Fpz-Cz", "EMG submental"], seq_len=20)
    with pytest.warns(UserWarning, match="padded with 10 mirrored epochs"):
        result = stage_recording(path, EpochwiseStager(card), progress=False)
    assert result.n_epochs == 10 and result.fs == 100
    assert result.channels == {"Fpz-Cz": "EEG Fpz-Cz", "EMG submental": "EMG submental"}


def test_real_dreams_excerpt_read_by_the_edfio_fallback(shared_data, tmp_path):
    """pyedflib refuses the DREAMS file; edfio reads it. 1800 s at 50 Hz, C3/O1 for a C4/O2 model."""
    path = shared_data / "dreams" / "excerpt3.edf"
    if not path.exists():
        pytest.skip(f"{path} not found")
    card = dict(CARD, channels=["C4-A1", "O2-A1"])
    with pytest.raises(DataError, match=r"no signal for the model's channel 'C4-A1'.*'C3-A1'.*'EOG1-A1'"):
        stage_recording(path, EpochwiseStager(card), progress=False)
    with pytest.warns(UserWarning, match="pyedflib refused the file"):
        result = stage_recording(path, EpochwiseStager(card), channels=["C3-A1", "O1-A1"], progress=False)
    assert result.reader == "edfio" and result.n_epochs == 60 and result.fs == 50
    assert result.channels == {"C4-A1": "C3-A1", "O2-A1": "O1-A1"}
    check_outputs(result.to_files(tmp_path / "dreams"), 60)


# -- command line -----------------------------------------------------------------

def parse(argv):
    return stage.add_arguments(argparse.ArgumentParser(prog="stmd stage")).parse_args(argv)


def test_cli_options():
    args = parse(["night.edf", "--model", "m.keras", "--out", "out/n", "--channels", "C3-M2,E1-M2",
                  "--threads", "2", "--no-progress"])
    assert (args.recording, args.model, args.out, args.channels) == ("night.edf", "m.keras", "out/n", "C3-M2,E1-M2")
    assert args.threads == 2 and args.progress is False and args.batch_size is None
    assert parse(["n.edf", "--model", "m", "--out", "o"]).progress is None


def test_keras_savedmodel_and_tflite_models_stage_alike(tmp_path, tiny_model):
    """The three forms `runtime.load_stager` opens, on one generated 256-Hz night."""
    runtime = pytest.importorskip("stmd_keras.deploy.runtime", reason="deploy.runtime not written yet")
    from stmd_keras.deploy.export import export_checkpoint

    model_path, keras_stager = tiny_model
    formats = ["savedmodel"]
    try:
        import ai_edge_litert  # noqa: F401

        formats.append("tflite-fp32")
    except ImportError:
        pass
    export_checkpoint(model_path, tmp_path / "export", formats=formats, parity_nights=2, night_epochs=10,
                      calibration_sequences=2, max_heldout_sequences=4, latency_runs=0, verbose=False)
    psg, _ = write_mass(night(256, n_epochs=12), tmp_path / "in")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the dropped 1-s tail
        reference = stage_recording(psg, keras_stager, progress=False)
        models = [model_path, tmp_path / "export" / "savedmodel"]
        if "tflite-fp32" in formats:
            models.append(tmp_path / "export" / "model_fp32.tflite")
        for model in models:
            stager = runtime.load_stager(model)
            result = stage_recording(psg, stager, progress=False)  # path or loaded Stager: both work
            np.testing.assert_allclose(result.probabilities, reference.probabilities, atol=1e-4, err_msg=str(model))
            assert list(result.hypnogram) == list(reference.hypnogram)
        result = stage_recording(psg, model_path, progress=False)
        np.testing.assert_allclose(result.probabilities, reference.probabilities, atol=1e-4)


def test_cli_stages_a_keras_model_and_fails_cleanly(tmp_path, tiny_model, capsys):
    pytest.importorskip("stmd_keras.deploy.runtime", reason="deploy.runtime not written yet")
    model_path, _ = tiny_model
    psg, _ = write_mass(night(256), tmp_path / "in", onset_offset=12.5)
    result = stage.run_from_args(parse([psg, "--model", model_path, "--out", str(tmp_path / "out" / "n"),
                                        "--no-progress"]))
    captured = capsys.readouterr()
    assert "dropped the last 13 s" in captured.err and "10 epochs" in captured.out
    check_outputs(stage.output_paths(tmp_path / "out" / "n"), result.n_epochs)
    with pytest.raises(SystemExit, match=r"no signal labelled 'EOG Right Horiz'.*'LOC-A2'.*EEG F4-CLE"):
        stage.run_from_args(parse([psg, "--model", model_path, "--out", str(tmp_path / "bad" / "n"),
                                   "--channels", "EEG F4-CLE,EOG Right Horiz"]))
    assert not (tmp_path / "bad").exists() or files_in(tmp_path / "bad") == []
