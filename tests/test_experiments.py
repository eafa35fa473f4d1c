"""Every experiments/tableN.py declares a valid table: rows run through one runner."""

import pathlib
import runpy
import warnings

import keras
import pytest

from stmd_keras.distill import METHODS, MutualDistiller
from stmd_keras.models import build_model
from stmd_keras.runner import run_table
from stmd_keras.runner.rows import BASELINES, OURS
from stmd_keras.runner.training import METHODS as ROW_METHODS

EXPERIMENTS = pathlib.Path(__file__).resolve().parents[1] / "experiments"
SCRIPTS = sorted(p.name for p in EXPERIMENTS.glob("table*.py") if p.name != "table2.py")


def spec(script):
    return runpy.run_path(str(EXPERIMENTS / script), run_name="not_main")["TABLE"]


def test_every_paper_table_has_a_script():
    assert {"table3.py", "table4.py", "table5.py", "table7.py", "table8.py", "table16.py",
            "table17.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_rows_are_valid_and_their_settings_compile(script):
    table = spec(script)
    names = [r.name for r in table.rows]
    assert len(names) == len(set(names)), "row names must be unique"
    keras.utils.set_random_seed(0)
    tiny = dict(n_channels=3, seq_len=2, fs=8)
    teacher = build_model(table.architecture, "student", **tiny)  # small stand-ins
    student = build_model(table.architecture, "student", **tiny)
    for row in table.rows:
        assert row.method in ROW_METHODS
        for dataset, values in row.paper.items():
            assert dataset in ("isruc", "mass") and len(values) == 2
            assert all(0 < v < 100 for v in values)
        if row.method == "distill":
            MutualDistiller(teacher, student).compile(**row.params)  # raises on a bad setting


@pytest.mark.parametrize("script", ["table3.py", "table4.py", "table7.py", "table8.py"])
def test_comparison_tables_have_all_baselines_and_stmd(script):
    names = [r.name for r in spec(script).rows]
    for name, method in BASELINES:
        assert name in names and method in METHODS
    assert names[:2] == ["Teacher", "Student (no KD)"] and OURS in names


def test_shared_rows_share_the_cache_key():
    # The same (architecture, method, params) in two tables is trained once.
    t4 = {r.name: r for r in spec("table4.py").rows}
    t16 = {r.name: r for r in spec("table16.py").rows}
    t17 = {r.name: r for r in spec("table17.py").rows}
    assert t4[OURS].params == t16["1:5:1"].params == t17["KL Divergence"].params


def test_cnn_gcn_table_runs_end_to_end_with_a_mutual_baseline(tmp_path):
    argv = ["--subjects", "4", "--night-epochs", "40", "--seq-len", "10", "--batch-size", "2",
            "--epochs", "1", "--verbose", "0", "--rows", "Teacher,Deep Mutual Learning,Fitnets",
            "--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = run_table(spec("table4.py"), argv)
    assert [r["row"] for r in rows] == ["Teacher", "Deep Mutual Learning", "Fitnets"]  # --rows order
    assert all(0 <= r["accuracy"] <= 100 for r in rows)
    md = (tmp_path / "out" / "table4" / "synthetic" / "table4.md").read_text()
    assert "| Deep Mutual Learning | 81.27 | 77.84 |" in md


def test_run_all_index_collects_the_tables_and_names_the_missing_ones(tmp_path):
    run_all = runpy.run_path(str(EXPERIMENTS / "run_all.py"), run_name="not_main")
    (tmp_path / "table3" / "synthetic").mkdir(parents=True)
    (tmp_path / "table3" / "synthetic" / "table3.md").write_text("### Table 3: fake\n\n| a |\n")
    run_all["main"](["--index-only", "--out", str(tmp_path)])
    index = (tmp_path / "README.md").read_text()
    assert "### Table 3: fake" in index
    assert "Not run yet for `synthetic`" in index and "table17.md" in index
    assert index.index("Table 3: fake") < index.index("table4.md") < index.index("table2.md")
    assert index.index("table2.md") < index.index("sleepkd_deepsleepnet.md")  # SleepKD tables follow
    with pytest.raises(SystemExit, match=r"no table\(s\) \[6\]"):
        run_all["main"](["--only", "6", "--out", str(tmp_path)])


@pytest.mark.slow
def test_table3_quick_runs_every_row_end_to_end(tmp_path):
    # Issue 4: "the whole of Table 3 --quick runs in CI-friendly time" (~4 min on 2 cores).
    import json
    import subprocess
    import sys
    import time

    start = time.time()
    subprocess.run(
        [sys.executable, str(EXPERIMENTS / "table3.py"), "--quick", "--verbose", "0",
         "--work-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "out")],
        check=True, timeout=1800,
    )
    minutes = (time.time() - start) / 60
    result = json.loads((tmp_path / "out" / "table3" / "synthetic-quick" / "table3.json").read_text())
    assert [r["row"] for r in result["rows"]] == [r.name for r in spec("table3.py").rows]
    assert all(0 <= r["accuracy"] <= 100 and 0 <= r["macro_f1"] <= 100 for r in result["rows"])
    assert minutes < 15, f"Table 3 --quick took {minutes:.1f} min"
