"""SleepKD's table: teacher-assistant recipes (cached TA, chain, DGKD guides) and its script."""

import functools
import pathlib
import runpy

import keras
import numpy as np
import pytest

from stmd_keras.data.datasets import get_dataset
from stmd_keras.distill import MutualDistiller
from stmd_keras.models import ARCHITECTURES, build_deepsleepnet, build_model
from stmd_keras.reproducibility import weights_fingerprint
from stmd_keras.runner import TableSpec
from stmd_keras.runner import chains
from stmd_keras.runner.datasets import load_experiment_data
from stmd_keras.runner.settings import DataSettings, TrainSettings
from stmd_keras.runner.table import paper_column
from stmd_keras.runner.training import METHODS, RunContext, run_method

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "experiments" / "sleepkd_table.py"

# DeepSleepNet-shaped stand-ins, small enough to train in seconds.
TINY_ROLES = {
    role: functools.partial(build_deepsleepnet, filters=f, lstm_units=u, name=f"tiny_{role}")
    for role, (f, u) in {"teacher": (4, 6), "assistant": (3, 4), "student": (2, 3)}.items()
}


@pytest.fixture(scope="module")
def tiny_data():
    settings = DataSettings(channel_set="single_eeg", n_subjects=3, n_val=1, n_test=1,
                            night_epochs=20, seq_len=5)
    return settings, load_experiment_data(settings)


def _ctx(tiny_data, work_dir):
    settings, data = tiny_data
    return RunContext(data=data, data_settings=settings, architecture="tiny_ta", seed=0,
                      train_settings=TrainSettings(epochs=1, batch_size=2, steps_per_epoch=2),
                      work_dir=str(work_dir), verbose=0)


class _NoTraining:
    """Stands in for `fit_resumable`: counts the phases, trains nothing (a fast wiring test)."""

    def __init__(self):
        self.calls = []

    def __call__(self, trainer, ctx, directory, monitor):
        trainee = trainer.student if hasattr(trainer, "student") else trainer.model
        self.calls.append((trainee.name, directory))
        return type("Checkpoint", (), {"history": [], "best_epoch": None})()


def test_recipes_train_each_model_once_and_reuse_the_cached_assistant(tiny_data, tmp_path, monkeypatch):
    from stmd_keras.runner import training

    monkeypatch.setitem(ARCHITECTURES, "tiny_ta", TINY_ROLES)
    fit = _NoTraining()
    for module in (training, chains):
        monkeypatch.setattr(module, "fit_resumable", fit)
    monkeypatch.setattr(training, "evaluate_model", lambda model, sequences: {"accuracy": 0.5})
    monkeypatch.setattr(chains, "evaluate_model", lambda model, sequences: {"accuracy": 0.5})
    taught = []

    def spy(ctx, teacher, params, guides=()):
        taught.append((teacher.name, [g.name for g in guides], params))
        return distill(ctx, teacher, params, guides)

    distill = chains.distill_student
    monkeypatch.setattr(chains, "distill_student", spy)
    ctx = _ctx(tiny_data, tmp_path)
    rows = tmp_path / "rows"
    takd = run_method(ctx, "chain", {"method": "kd"}, str(rows / "takd"))
    dgkd = run_method(ctx, "guided", {"method": "dgkd"}, str(rows / "dgkd"))  # its TA: KD by default
    ta = run_method(ctx, "assistant", {"method": "kd"}, str(rows / "ta"))
    run_method(ctx, "chain", {"method": "sleepkd"}, str(rows / "sleepkd"))  # a second TA
    # Every row records the pre-trained teacher it used, directly or behind its TA.
    (teacher_weights,) = (tmp_path / "teacher").glob("*/final.weights.h5")
    teacher = build_model("tiny_ta", "teacher", n_channels=1, seq_len=5)
    teacher.load_weights(teacher_weights)
    fingerprint = weights_fingerprint(teacher)
    assert takd["assistant_teacher_fingerprint"] == fingerprint and "teacher_fingerprint" not in takd
    assert dgkd["teacher_fingerprint"] == dgkd["assistant_teacher_fingerprint"] == fingerprint
    assert ta["teacher_fingerprint"] == fingerprint
    trained = [name for name, _ in fit.calls]
    assert trained == ["tiny_teacher", "tiny_assistant", "tiny_student", "tiny_student",
                       "tiny_assistant", "tiny_student"]
    assert len(list((tmp_path / "assistant").iterdir())) == 2
    assert taught == [("tiny_assistant", [], {"method": "kd"}),
                      ("tiny_teacher", ["tiny_assistant"], {"method": "dgkd"}),
                      ("tiny_assistant", [], {"method": "sleepkd"})]


@pytest.mark.slow
def test_chain_and_dgkd_share_one_cached_assistant(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(ARCHITECTURES, "tiny_ta", TINY_ROLES)
    taught = []

    def spy(ctx, teacher, params, guides=()):
        taught.append((teacher.name, [g.name for g in guides], [g.get_weights() for g in guides]))
        return distill(ctx, teacher, params, guides)

    distill = chains.distill_student
    monkeypatch.setattr(chains, "distill_student", spy)
    ctx = _ctx(tiny_data, tmp_path)
    assert tiny_data[1].train.n_channels == 1  # single-channel input

    takd = run_method(ctx, "chain", {"method": "kd"}, str(tmp_path / "rows" / "takd"))
    (cached,) = (tmp_path / "assistant").iterdir()
    assert capsys.readouterr().out.count("distilling the teacher assistant") == 1
    assert takd["assistant_key"] == cached.name and 0 <= takd["metrics"]["accuracy"] <= 1
    assert (cached / "assistant.keras").exists() and (cached / "final.weights.h5").exists()

    # A row whose first link is also KD reuses the TA; DGKD's TA defaults to KD.
    run_method(ctx, "chain", {"method": "sleepkd", "assistant": {"method": "kd"}},
               str(tmp_path / "rows" / "sleepkd"))
    run_method(ctx, "guided", {"method": "dgkd", "method_options": {"drop_prob": 0.5}},
               str(tmp_path / "rows" / "dgkd"))
    assert "distilling the teacher assistant" not in capsys.readouterr().out
    assert len(list((tmp_path / "assistant").iterdir())) == 1
    assert [t[:2] for t in taught] == [("tiny_assistant", []), ("tiny_assistant", []),
                                       ("tiny_teacher", ["tiny_assistant"])]
    trained_ta = build_model("tiny_ta", "assistant", n_channels=1, seq_len=5)
    trained_ta.load_weights(cached / "final.weights.h5")
    for got, want in zip(taught[2][2][0], trained_ta.get_weights()):
        np.testing.assert_array_equal(got, want)  # the guide is the cached, trained TA

    # The TA row scores the same cached model; another link trains another TA.
    ta = run_method(ctx, "assistant", {"method": "kd"}, str(tmp_path / "rows" / "ta"))
    assert ta["assistant_key"] == cached.name and ta["params"] == trained_ta.count_params()
    assert chains.assistant_key(ctx, {"method": "sleepkd"}) != cached.name


def test_an_assistant_link_must_freeze_the_teacher(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setitem(ARCHITECTURES, "tiny_ta", TINY_ROLES)
    monkeypatch.setattr(chains, "pretrained_teacher",
                        lambda ctx: (ctx.model("teacher"), {}))  # no pre-training needed here
    with pytest.raises(ValueError, match="frozen teacher"):
        chains.pretrained_assistant(_ctx(tiny_data, tmp_path), {"method": "dml"})


def test_row_methods_are_registered():
    assert {"teacher", "student", "distill", "assistant", "chain", "guided"} <= set(METHODS)


def test_single_channel_set_of_every_dataset():
    assert DataSettings(channel_set="single_eeg").channels == ("C4-A1",)
    assert get_dataset("isruc").channels_for("single_eeg") == (("C4-A1",), "single_eeg")
    assert get_dataset("sleep-edf").channels_for("single_eeg") == (("EEG Fpz-Cz",), "single_eeg")
    assert get_dataset("mass").channels_for("single_eeg") == (("C4",), "single_eeg")


def test_paper_column_follows_the_tables_paper():
    stmd = TableSpec("t", "t", ())
    sleepkd = TableSpec("t", "t", (), paper_datasets=("isruc", "sleep-edf"))
    assert [paper_column(stmd, d) for d in ("synthetic", "isruc", "mass", "sleep-edf")] == [
        "isruc", "isruc", "mass", None]
    assert [paper_column(sleepkd, d) for d in ("synthetic", "sleep-edf", "mass")] == [
        "isruc", "sleep-edf", None]


@pytest.fixture(scope="module")
def script():
    return runpy.run_path(str(SCRIPT), run_name="not_main")


def test_script_declares_both_backbones_with_the_posters_rows(script):
    poster_rows = {"Teacher", "KD", "Fitnets", "NST", "TAKD", "DGKD", "DKD",
                   "SleepKD (variant b: multi-level + TA)"}
    for backbone, table in script["TABLES"].items():
        names = [r.name for r in table.rows]
        assert len(names) == len(set(names)) == 16
        assert table.architecture == backbone and table.channel_set == "single_eeg"
        assert {n for n in names if table.rows[names.index(n)].paper} == poster_rows
        for row in table.rows:
            assert row.method in METHODS
            for dataset, (acc, mf1) in row.paper.items():
                assert dataset in table.paper_datasets and 50 < acc < 100
                assert mf1 is None or 50 < mf1 < 100
        by_name = {r.name: r for r in table.rows}
        assert by_name["TAKD"].method == "chain" and by_name["TAKD"].params == {"method": "kd"}
        assert by_name["DGKD"].method == "guided"
        assert by_name["Variant a: SleepKD without TA"].method == "distill"
        ablations = [by_name[f"L{i}: SleepKD without {t}"].params["method_options"]
                     for i, t in enumerate(("L_seq", "L_epoch", "L_soft", "L_hard"), 1)]
        assert ablations == [{"use_sequence": False}, {"use_epoch": False}, {"use_soft": False},
                             {"use_hard": False}]
    assert script["POSTER"]["deepsleepnet"]["SleepKD"]["sleep-edf"] == (85.66, 69.46)


def test_script_rows_compile_on_small_stand_ins(script):
    keras.utils.set_random_seed(0)
    models = {role: TINY_ROLES[role](n_channels=1, seq_len=3) for role in TINY_ROLES}
    for row in script["TABLES"]["deepsleepnet"].rows:
        if row.method in ("teacher", "student"):
            continue
        _, link = chains._split_link(row.params)
        guides = [models["assistant"]] if row.method == "guided" else []
        MutualDistiller(models["teacher"], models["student"], guides=guides).compile(**link)


def test_script_budget_applies_to_the_synthetic_default_only(script, monkeypatch):
    budget = script["_budget"]
    monkeypatch.setitem(budget.__globals__, "SYNTHETIC_BUDGET", ("--epochs", "12"))
    assert budget([]) == ["--epochs", "12"]
    assert budget(["--quick"]) == [] and budget(["--dataset", "isruc", "--data-dir", "d"]) == []


def test_script_backbone_option(script, monkeypatch):
    calls = []
    monkeypatch.setitem(script["main"].__globals__, "run_table",
                        lambda spec, argv: calls.append((spec.name, spec.notes, argv)) or [])
    monkeypatch.setitem(script["main"].__globals__, "parameter_notes", lambda b: f"sizes of {b}")
    script["main"](["--backbone", "salientsleepnet", "--quick", "--seeds", "2"])
    assert calls == [("sleepkd_salientsleepnet", "sizes of salientsleepnet", ["--quick", "--seeds", "2"])]
    calls.clear()
    monkeypatch.setitem(script["main"].__globals__, "SYNTHETIC_BUDGET", ("--epochs", "12"))
    script["main"](["--epochs", "3"])
    assert [c[0] for c in calls] == ["sleepkd_deepsleepnet", "sleepkd_salientsleepnet"]
    assert calls[0][2][-2:] == ["--epochs", "3"]  # the user's override comes last and wins


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["deepsleepnet", "salientsleepnet"])
def test_script_quick_runs_every_row_end_to_end(backbone, tmp_path, script):
    # Issue 6: "the SleepKD table script runs end to end on the synthetic default".
    import json
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, str(SCRIPT), "--backbone", backbone, "--quick", "--verbose", "0",
         "--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")],
        check=True, timeout=3600,
    )
    name = f"sleepkd_{backbone}"
    result = json.loads((tmp_path / "out" / name / "synthetic-quick" / f"{name}.json").read_text())
    assert [r["row"] for r in result["rows"]] == [r.name for r in script["TABLES"][backbone].rows]
    assert all(0 <= r["accuracy"] <= 100 and 0 <= r["macro_f1"] <= 100 for r in result["rows"])
    # The poster's ISRUC-III numbers (the synthetic default's column) are beside ours.
    sleepkd = next(r for r in result["rows"] if r["row"].startswith("SleepKD (variant b"))
    poster = script["POSTER"][backbone]["SleepKD"]["isruc"]
    assert (sleepkd["paper_accuracy"], sleepkd["paper_macro_f1"]) == poster


def test_script_accepts_real_data_in_the_sleep_edf_layout(tmp_path, script):
    # Single-channel Fpz-Cz from Sleep-EDF files; the poster's Sleep-EDF column beside ours.
    import json
    import warnings

    from stmd_keras.data import synthetic
    from stmd_keras.data.layouts import write_layout

    raw = tmp_path / "sleep-edf"
    write_layout("sleep-edf", synthetic.generate(4, fs=100, n_epochs=40), raw)
    argv = ["--backbone", "deepsleepnet", "--dataset", "sleep-edf", "--data-dir", str(raw),
            "--loader-option", "trim_wake_min=null", "--rows", "Teacher,KD",
            "--seq-len", "10", "--batch-size", "2", "--epochs", "1", "--steps-per-epoch", "2",
            "--verbose", "0", "--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = script["main"](argv)["deepsleepnet"]
    assert [r["row"] for r in rows] == ["Teacher", "KD"]
    assert all(0 <= r["accuracy"] <= 100 for r in rows)
    poster = script["POSTER"]["deepsleepnet"]
    assert (rows[1]["paper_accuracy"], rows[1]["paper_macro_f1"]) == poster["KD"]["sleep-edf"]
    assert rows[0]["paper_accuracy"] is None  # the poster gives the teacher on ISRUC-III only
    out = tmp_path / "out" / "sleepkd_deepsleepnet" / "sleep-edf"
    assert "Dataset: **sleep-edf**" in (out / "sleepkd_deepsleepnet.md").read_text()
    settings = json.loads((out / "sleepkd_deepsleepnet.json").read_text())["data_settings"]
    assert settings["dataset"] == "sleep-edf" and settings["channel_set"] == "single_eeg"
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "results").glob("*.json")
                 if json.loads(p.read_text())["row"] == "KD"]
    card = json.loads((pathlib.Path(result["model"]).parent / "stmd_model.json").read_text())
    assert card["channels"] == ["EEG Fpz-Cz"] and card["architecture"] == "deepsleepnet"
