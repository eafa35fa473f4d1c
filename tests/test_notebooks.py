"""The notebooks of notebooks/: stored without outputs, and each runs end to end.

Every notebook's first code cell is tagged `parameters`; the run here inserts
a cell after it with tiny settings (a few short nights, one epoch of two
steps, 4-filter models), as papermill does, so the three notebooks run in
about a minute on two CPU cores. A notebook that raises fails its test.
"""

import json
import pathlib

import nbclient
import nbformat
import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"

TRAINING = dict(N_SUBJECTS=3, NIGHT_EPOCHS=20, FS=50, SEQ_LEN=5, EPOCHS=1, STEPS=2, BATCH=2, TINY=True, VERBOSE=0)
SMALL = {
    "01_quickstart.ipynb": dict(TRAINING, PARITY_NIGHTS=2, PARITY_EPOCHS=20, STAGE_EPOCHS=12),
    "02_inside_the_knowledge.ipynb": dict(TRAINING, EVAL_SEQUENCES=8),
    "03_reproduce_a_table.ipynb": {},
}


def notebooks():
    return sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))


def test_every_notebook_is_tested():
    assert notebooks() == sorted(SMALL)


@pytest.mark.parametrize("name", notebooks())
def test_notebook_is_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not dirty, f"{name}: cells {dirty} have outputs; clear them (or run notebooks/make_notebooks.py)"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is next(c for c in nb.cells if c.cell_type == "code")


def with_parameters(nb, values, **extra):
    """`nb` with a cell setting `values` (and `extra`) right after its `parameters` cell."""
    values = dict(values, **extra)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    source = "# Injected by tests/test_notebooks.py\n" + "\n".join(f"{k} = {v!r}" for k, v in values.items())
    cell = nbformat.v4.new_code_cell(source)
    cell["id"] = "injected-parameters"
    nb.cells.insert(index + 1, cell)
    return nb


@pytest.mark.parametrize("name", notebooks())
def test_notebook_runs_end_to_end(name, tmp_path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    extra = {"WORK": str(tmp_path / "work")} if name == "01_quickstart.ipynb" else {}
    if name == "03_reproduce_a_table.ipynb":
        extra["TABLE"] = str(NOTEBOOKS.parent / "results" / "table3" / "synthetic" / "table3.json")
    nb = with_parameters(nb, SMALL[name], **extra)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the failing cell's traceback, on any error
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no figure"
    text = json.dumps([c.outputs for c in nb.cells if c.cell_type == "code"])
    assert "Traceback" not in text
