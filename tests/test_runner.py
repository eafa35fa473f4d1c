"""The table runner end to end: outputs, caching, determinism, SIGKILL resume."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time
import warnings

import pytest

from stmd_keras.runner import Row, TableSpec, run_table

REPO = pathlib.Path(__file__).resolve().parents[1]
# One training subject, 6 sequences of 10 epochs, 3 steps of 2 per epoch.
TINY = ["--subjects", "4", "--night-epochs", "60", "--seq-len", "10", "--batch-size", "2",
        "--epochs", "2", "--verbose", "0"]

SPEC = TableSpec(
    name="tiny",
    title="Tiny table for tests.",
    rows=(
        Row("Teacher", "teacher", paper={"isruc": (83.47, 80.50)}),
        Row("Student (no KD)", "student"),
        Row("Ours (STMD)", "distill", dict(beta=5.0, gamma=1.0), paper={"isruc": (82.42, 80.06)}),
    ),
)


def test_table_writes_markdown_csv_json_and_reuses_cached_rows(tmp_path):
    argv = TINY + ["--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    first = run_table(SPEC, argv)
    out = tmp_path / "out" / "tiny" / "synthetic"
    md = (out / "tiny.md").read_text()
    for row in ("Teacher", "Student (no KD)", "Ours (STMD)"):
        assert f"| {row} |" in md
    assert "| 83.47 | 80.50 |" in md  # the paper's values beside ours
    assert (out / "tiny.csv").read_text().count("\n") == 4
    saved = json.loads((out / "tiny.json").read_text())
    assert [r["row"] for r in saved["rows"]] == [r.name for r in SPEC.rows]
    for entry in first:
        assert 0 <= entry["accuracy"] <= 100 and 0 <= entry["macro_f1"] <= 100
    started = time.time()
    second = run_table(SPEC, argv)  # everything cached: no training
    assert time.time() - started < 20
    assert second == first


def test_same_seed_gives_identical_metrics(tmp_path):
    results = []
    for run in ("a", "b"):
        argv = TINY + ["--rows", "Student (no KD)", "--work-dir", str(tmp_path / run),
                       "--out", str(tmp_path / run)]
        results.append(run_table(SPEC, argv))
    for a, b in zip(*results):
        a.pop("seconds"), b.pop("seconds")  # wall time is the one thing allowed to differ
        assert a == b


def _table3(work, out, extra=()):
    cmd = [sys.executable, str(REPO / "experiments" / "table3.py"), *TINY, "--rows", "Ours (STMD)",
           "--epochs", "4", "--work-dir", str(work), "--out", str(out), *extra]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _result(work):
    (path,) = (pathlib.Path(work) / "results").glob("*.json")
    return json.loads(path.read_text())


def test_sigkill_during_distillation_resumes_to_the_same_result(tmp_path):
    reference = _table3(tmp_path / "ref", tmp_path / "ref-out")
    killed = _table3(tmp_path / "kill", tmp_path / "kill-out")
    # Kill once the distillation phase has checkpointed its second epoch.
    deadline = time.time() + 400
    state = None
    while time.time() < deadline and killed.poll() is None:
        states = list((tmp_path / "kill" / "rows").glob("*/state.h5"))
        if states and '"epoch": 1' in _meta(states[0]):
            state = states[0]
            break
        time.sleep(0.2)
    assert state is not None, killed.communicate()[0][-3000:]
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    assert not list((tmp_path / "kill" / "results").glob("*.json"))

    resumed = _table3(tmp_path / "kill", tmp_path / "kill-out")
    log = resumed.communicate(timeout=400)[0]
    assert resumed.returncode == 0, log[-3000:]
    assert "resuming from epoch 2" in log
    assert reference.wait(timeout=400) == 0
    a, b = _result(tmp_path / "ref"), _result(tmp_path / "kill")
    assert a["metrics"] == b["metrics"]
    assert len(a["history"]) == len(b["history"]) == 4
    # Logged per-epoch losses may differ in the last float32 bit between two
    # processes (graph optimisation of a sum under load); the test metrics
    # above, which depend on every weight, are compared exactly.
    for x, y in zip(a["history"], b["history"]):
        for k in x:
            assert x[k] == pytest.approx(y[k], rel=1e-6), (k, x["epoch"], x[k], y[k])


def _meta(path):
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f.attrs["meta"]
    except (OSError, KeyError):
        return ""  # being replaced right now


def test_synthetic_at_200_hz_is_resampled_and_stride_overlaps_training_only():
    from stmd_keras.runner.datasets import load_experiment_data
    from stmd_keras.runner.settings import DataSettings

    d = load_experiment_data(DataSettings(n_subjects=3, n_test=1, night_epochs=40, synthetic_fs=200,
                                          seq_len=10, stride=5))
    assert d.train.fs == 100 and d.train.epoch_samples == 3000
    assert len(d.train) == 7  # starts 0, 5, ..., 30 in one 40-epoch night
    assert len(d.test) == 4
    assert set(d.train.subjects).isdisjoint(d.test.subjects)


@pytest.mark.parametrize("dataset", ["isruc", "sleep-edf", "mass"])
def test_real_dataset_layouts_load_through_the_runner_and_its_cache(dataset, tmp_path):
    from stmd_keras.data import synthetic
    from stmd_keras.data.layouts import write_layout
    from stmd_keras.runner.datasets import load_experiment_data
    from stmd_keras.runner.settings import DataSettings

    fs = {"isruc": 200, "sleep-edf": 100, "mass": 256}[dataset]
    raw = tmp_path / "raw"
    write_layout(dataset, synthetic.generate(4, fs=fs, n_epochs=40), raw)
    settings = DataSettings(dataset=dataset, data_dir=str(raw), n_subjects=None, n_val=None,
                            n_test=None, seq_len=10, loader_options=(("trim_wake_min", None),)
                            if dataset == "sleep-edf" else ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ISRUC label files run past the signal, as the real ones
        d = load_experiment_data(settings, cache_dir=str(tmp_path / "cache"))
    n_channels = 3 if dataset == "sleep-edf" else 6  # Sleep-EDF falls back to its 3 channels
    assert d.train.fs == 100 and d.train.n_channels == n_channels and d.train.epoch_samples == 3000
    assert len(d.train.subjects) == 2 and len(d.val.subjects) == 1 and len(d.test.subjects) == 1
    assert d.train.n_epochs + d.val.n_epochs + d.test.n_epochs == 4 * 40
    assert list((tmp_path / "cache" / dataset).glob("*/*.h5"))  # prepared once, cached


def test_table_on_a_real_layout_end_to_end(tmp_path):
    from stmd_keras.data import synthetic
    from stmd_keras.data.layouts import write_layout

    raw = tmp_path / "isruc"
    write_layout("isruc", synthetic.generate(3, fs=200, n_epochs=40), raw)
    argv = ["--dataset", "isruc", "--data-dir", str(raw), "--rows", "Teacher", "--seq-len", "10",
            "--batch-size", "2", "--epochs", "1", "--verbose", "0",
            "--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (row,) = run_table(SPEC, argv)
    assert row["row"] == "Teacher" and 0 <= row["accuracy"] <= 100
    md = (tmp_path / "out" / "tiny" / "isruc" / "tiny.md").read_text()
    assert "Dataset: **isruc**" in md and "| 83.47 | 80.50 |" in md
    assert list((tmp_path / "runs" / "cache" / "isruc").glob("*/*.h5"))


def test_per_stage_f1_is_printed_in_stage_order_even_from_sorted_json():
    from stmd_keras.runner.table import summarize

    f1 = {"N1": 0.1, "N2": 0.2, "N3": 0.3, "REM": 0.4, "W": 0.9}  # json sort_keys order
    run = {"metrics": {"accuracy": 0.5, "macro_f1": 0.4, "kappa": 0.3, "per_class_f1": f1},
           "seconds": 1.0, "params": 10}
    (entry,) = summarize(SPEC, SPEC.rows[:1], {("Teacher", 0): run}, 1, "isruc")
    assert list(entry["per_class_f1"]) == ["W", "N1", "N2", "N3", "REM"]
    assert list(entry["per_class_f1"].values()) == pytest.approx([90, 10, 20, 30, 40])


def test_atomic_writes_get_normal_file_permissions(tmp_path):
    import stat

    from stmd_keras.io import write_text

    os.umask(0o022)
    write_text(tmp_path / "table.md", "x")
    assert stat.S_IMODE(os.stat(tmp_path / "table.md").st_mode) == 0o644


def test_trained_students_are_saved_as_keras_files_with_a_model_card(tmp_path):
    import keras

    argv = TINY + ["--rows", "Student (no KD)", "--work-dir", str(tmp_path / "runs"),
                   "--out", str(tmp_path / "out")]
    run_table(SPEC, argv)
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "results").glob("*.json")]
    model = keras.saving.load_model(result["model"], safe_mode=True)
    card = json.loads((pathlib.Path(result["model"]).parent / "stmd_model.json").read_text())
    assert card["role"] == "student" and card["seq_len"] == 10 and card["fs"] == 100
    assert card["channels"] == ["F4-A1", "C3-A2", "C4-A1", "O2-A1", "LOC-A2", "ROC-A1"]
    assert card["stages"] == ["W", "N1", "N2", "N3", "REM"]
    assert tuple(model.input.shape[1:]) == (10, 6, 3000)
    assert card["test_metrics"]["accuracy"] == result["metrics"]["accuracy"]


def test_partial_table_lists_pending_rows_and_resumes_from_its_json(tmp_path):
    out = tmp_path / "out" / "tiny" / "synthetic"
    base = TINY + ["--out", str(tmp_path / "out")]
    first = base + ["--work-dir", str(tmp_path / "runs")]
    run_table(SPEC, first + ["--rows", "Student (no KD)"])  # trains one row
    summary = run_table(SPEC, first + ["--cached-only"])  # trains nothing
    assert [e["seeds"] for e in summary] == [0, 1, 0]
    assert summary[0]["accuracy"] is None and summary[0]["paper_accuracy"] == 83.47
    md = (out / "tiny.md").read_text()
    assert "Partial table: 1 of 3 (row, seed) runs done" in md
    assert "| Teacher | 83.47 | 80.50 | pending | pending |" in md
    assert "--cached-only" not in md
    saved = json.loads((out / "tiny.json").read_text())
    assert saved["complete"] is False and len(saved["runs"]) == 1
    (student_run,) = saved["runs"]
    # A fresh work dir, e.g. a new clone with the partial table committed.
    table = tmp_path / "committed.json"
    table.write_text((out / "tiny.json").read_text())
    fresh = base + ["--work-dir", str(tmp_path / "fresh")]
    again = run_table(SPEC, fresh + ["--cached-only", "--resume-from", str(table)])
    assert again[1] == summary[1]
    cached = json.loads((tmp_path / "fresh" / "results" / f"{student_run['key']}.json").read_text())
    assert cached == student_run
    assert "--resume-from" not in (out / "tiny.md").read_text()


def test_partial_seeds_are_marked_in_the_markdown():
    from stmd_keras.runner.table import build_parser, format_markdown, summarize

    f1 = dict.fromkeys(["W", "N1", "N2", "N3", "REM"], 0.5)
    run = {"metrics": {"accuracy": 0.5, "macro_f1": 0.4, "kappa": 0.3, "per_class_f1": f1},
           "seconds": 1.0, "params": 10}
    results = {("Teacher", 0): run, ("Teacher", 1): run, ("Student (no KD)", 0): run}
    summary = summarize(SPEC, SPEC.rows, results, 2, "isruc")
    args = build_parser(SPEC).parse_args(["--seeds", "2"])
    md = format_markdown(SPEC, summary, args, None, None, "cmd")
    assert "| Teacher | 83.47 | 80.50 | 50.00 ± 0.00 | 40.00 ± 0.00 | -33.47 | -40.50 |" in md
    assert "| Student (no KD) | — | — | 50.00 (1 of 2 seeds) | 40.00 (1 of 2 seeds) |" in md
    assert "Partial table: 3 of 6 (row, seed) runs done" in md


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    ("{not json", "not a JSON file"),
    ('{"rows": []}', "not a table written by the runner"),
    ('{"runs": [{"metrics": {}}]}', "not a table written by the runner"),
])
def test_resume_from_a_bad_file_names_it(tmp_path, content, problem):
    path = tmp_path / "table.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=problem) as info:
        run_table(SPEC, TINY + ["--cached-only", "--resume-from", str(path),
                                "--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")])
    assert str(path) in str(info.value)
    assert not (tmp_path / "out").exists()  # nothing half written


def test_weights_fingerprint_changes_with_any_bit_of_any_weight():
    import keras
    import numpy as np

    from stmd_keras.reproducibility import weights_fingerprint

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    reference = weights_fingerprint(model)
    assert len(reference) == 16 and weights_fingerprint(model) == reference
    clone = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1)])
    clone.set_weights(model.get_weights())
    assert weights_fingerprint(clone) == reference  # weights, not the object, decide
    weights = model.get_weights()
    weights[2][0, 0] = np.nextafter(weights[2][0, 0], np.float32(np.inf))  # one ulp
    clone.set_weights(weights)
    assert weights_fingerprint(clone) != reference
    # The same values in another layout are another model.
    flat = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2), keras.layers.Dense(1, use_bias=False)])
    assert weights_fingerprint(flat) != reference


def test_rows_from_two_different_teachers_are_flagged(tmp_path):
    argv = TINY + ["--rows", "Teacher,Ours (STMD)", "--work-dir", str(tmp_path / "runs"),
                   "--out", str(tmp_path / "out")]
    run_table(SPEC, argv)
    results = {json.loads(p.read_text())["row"]: p for p in (tmp_path / "runs" / "results").glob("*.json")}
    teacher = json.loads(results["Teacher"].read_text())
    stmd = json.loads(results["Ours (STMD)"].read_text())
    assert teacher["teacher_fingerprint"] == stmd["teacher_fingerprint"]
    md_path = tmp_path / "out" / "tiny" / "synthetic" / "tiny.md"
    assert "Warning" not in md_path.read_text()
    # As if the distilled row had been computed elsewhere from a retrained teacher.
    stmd["teacher_fingerprint"] = "0" * 16
    results["Ours (STMD)"].write_text(json.dumps(stmd))
    run_table(SPEC, argv + ["--cached-only"])
    md = md_path.read_text()
    assert "Warning: seed 0's rows come from 2 different pre-trained teachers" in md
    assert teacher["teacher_fingerprint"] in md and "0" * 16 in md


def test_only_seeds_trains_those_seeds_and_lists_the_rest_as_pending(tmp_path):
    argv = TINY + ["--rows", "Student (no KD)", "--seeds", "2", "--work-dir", str(tmp_path / "runs"),
                   "--out", str(tmp_path / "out")]
    (entry,) = run_table(SPEC, argv + ["--only-seeds", "1"])
    assert entry["seeds"] == 1
    (result,) = [json.loads(p.read_text()) for p in (tmp_path / "runs" / "results").glob("*.json")]
    assert result["seed"] == 1
    md = (tmp_path / "out" / "tiny" / "synthetic" / "tiny.md").read_text()
    assert "(1 of 2 seeds)" in md and "--only-seeds" not in md
    for bad in ("2", "x", ","):
        with pytest.raises(ValueError, match="--only-seeds"):
            run_table(SPEC, argv + ["--only-seeds", bad])


def test_the_table_includes_runs_another_process_finished_meanwhile(tmp_path, monkeypatch):
    argv = TINY + ["--seeds", "2", "--rows", "Student (no KD)", "--work-dir", str(tmp_path / "runs"),
                   "--out", str(tmp_path / "out")]
    run_table(SPEC, argv + ["--only-seeds", "0"])
    (seed0,) = (tmp_path / "runs" / "results").glob("*.json")
    saved = seed0.read_text()
    seed0.unlink()  # as if another process had not finished seed 0 yet ...
    from stmd_keras.runner import table

    real_run_method = table.run_method

    def run_and_finish_the_other(*args, **kwargs):
        seed0.write_text(saved)  # ... and finished it while this one trained seed 1
        return real_run_method(*args, **kwargs)

    monkeypatch.setattr(table, "run_method", run_and_finish_the_other)
    (entry,) = run_table(SPEC, argv + ["--only-seeds", "1"])
    assert entry["seeds"] == 2
    md = (tmp_path / "out" / "tiny" / "synthetic" / "tiny.md").read_text()
    assert "Partial table" not in md and "of 2 seeds" not in md
