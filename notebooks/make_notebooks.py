"""Writes the three notebooks of this folder, without outputs.

The notebooks are committed; edit this script and run it again
(`python notebooks/make_notebooks.py`) rather than editing the JSON. The
first code cell of each notebook is tagged `parameters`: the test suite
(`tests/test_notebooks.py`) runs every notebook end to end with smaller values
injected after it, as papermill would.
"""

import pathlib

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = pathlib.Path(__file__).resolve().parent


def params(source):
    cell = new_code_cell(source.strip())
    cell.metadata["tags"] = ["parameters"]
    return cell


def md(text):
    return new_markdown_cell(text.strip())


def code(text):
    return new_code_cell(text.strip())


DATA = '''
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras
import numpy as np

from stmd_keras import viz
from stmd_keras.data import SequenceSet, paper_split, prepare_all, select, synthetic
from stmd_keras.data.datasets import CHANNEL_SETS
from stmd_keras.distill import MutualDistiller, SupervisedTrainer
from stmd_keras.evaluation import evaluate, format_report
from stmd_keras.models import build_cnn_rnn, build_model

keras.utils.set_random_seed(SEED)
CHANNELS = CHANNEL_SETS["eeg_eog6"]  # F4-A1, C3-A2, C4-A1, O2-A1, LOC-A2, ROC-A1
recordings = prepare_all(synthetic.generate(N_SUBJECTS, seed=SEED, n_epochs=NIGHT_EPOCHS, channels=CHANNELS),
                         fs=FS, channels=CHANNELS)
split = paper_split([r.subject for r in recordings], seed=SEED, n_val=1, n_test=1)
train, val, test = (SequenceSet(select(recordings, getattr(split, part)), seq_len=SEQ_LEN)
                    for part in ("train", "val", "test"))
print(split.to_dict())
print(f"train {len(train)}, validation {len(val)}, test {len(test)} sequences of {SEQ_LEN} epochs")
'''

MODELS = '''
def model(role):
    """The paper's CNN-RNN teacher or student; 4-filter stand-ins when TINY (the test suite)."""
    if TINY:
        return build_cnn_rnn(8 if role == "teacher" else 4, 4, n_channels=len(CHANNELS), seq_len=SEQ_LEN, fs=FS,
                             name=f"tiny_{role}")
    return build_model("cnn_rnn", role, n_channels=len(CHANNELS), seq_len=SEQ_LEN, fs=FS)


def fit(trainer, epochs=EPOCHS):
    steps = min(STEPS, train.steps_per_epoch(BATCH))
    return trainer.fit(train.train_dataset(BATCH, seed=SEED, steps=steps), steps_per_epoch=steps, epochs=epochs,
                       validation_data=val.eval_dataset(4 * BATCH), verbose=VERBOSE)


def test_metrics(m):
    logits = m.predict(test.eval_dataset(4 * BATCH).map(lambda x, y: x), verbose=0)["logits"]
    probs = test.epoch_probabilities(keras.ops.convert_to_numpy(keras.ops.softmax(logits, axis=-1)))
    return evaluate(test.y, probs.argmax(-1), subjects=test.subject)


teacher, student = model("teacher"), model("student")
print(f"teacher {teacher.count_params():,} parameters, student {student.count_params():,}")
'''

DATA_PARAMS = '''
# Data: synthetic PSG nights (stmd_keras.data.synthetic), ISRUC-III channels.
N_SUBJECTS = 6        # nights, one per subject: 4 train, 1 validation, 1 test
NIGHT_EPOCHS = 240    # 30-s epochs per night (2 hours)
FS = 100              # model sampling rate (Hz)
SEQ_LEN = 20          # epochs per sequence (L)
# Training: Adam, a few short epochs (the paper trains 25+ full epochs).
EPOCHS = 3
STEPS = 20            # batches per epoch
BATCH = 8
LEARNING_RATE = 1e-3
TINY = False          # True: tiny stand-in models (the test suite)
SEED = 0
VERBOSE = 2
'''


def quickstart():
    return [
        md('''
# Quickstart: STMD from synthetic data to a staged night

Spatial-temporal mutual distillation (STMD) compresses a multi-channel sleep stager: a large **teacher**
and a small **student** are trained together, the student matching the teacher's *sleep graphs* (how the
channels relate, Eq. 5) and *temporal relations* (how the epochs of a sequence relate, Eq. 8), while both
learn the stages (Eqs. 12-13).

This notebook runs the whole story on the built-in synthetic PSG nights in a few minutes on a laptop CPU:
generate data, pre-train the teacher, distil the student, evaluate, export to TFLite and stage a night from
an EDF file. The settings below are far smaller than the paper's, so the scores only show that it works;
`stmd table 3` reproduces the paper's table.
'''),
        params(DATA_PARAMS + '''
PARITY_NIGHTS = 4     # synthetic nights checking the TFLite export against Keras
PARITY_EPOCHS = 100
STAGE_EPOCHS = 120    # length of the night staged at the end
WORK = "quickstart_run"  # where models, exports and the staged night go
'''),
        code('%matplotlib inline'),
        md('## 1. Data\nSynthetic nights are split by subject into training, validation and test nights, then cut '
           'into sequences of `SEQ_LEN` consecutive 30-s epochs, the models\' input `(L, C, samples)`.'),
        code(DATA),
        md('## 2. Models\nThe CNN-RNN teacher and student of the paper (Table 1): one CNN per channel gives the '
           'multi-channel features `H (B, L, C, m)`, a BiLSTM classifies every epoch.'),
        code(MODELS),
        md('## 3. Pre-train the teacher\nCross-entropy only (`SupervisedTrainer`).'),
        code('''
trainer = SupervisedTrainer(teacher)
trainer.compile(keras.optimizers.Adam(LEARNING_RATE))
teacher_history = fit(trainer)
print(format_report(test_metrics(teacher)))
'''),
        md('## 4. Distil the student with STMD\n`MutualDistiller.compile` takes the paper\'s weights '
           '(alpha=1, beta=5, gamma=1); both models are updated (`mutual=True`).'),
        code('''
distiller = MutualDistiller(teacher, student)
distiller.compile(keras.optimizers.Adam(LEARNING_RATE), keras.optimizers.Adam(LEARNING_RATE),
                  alpha=1.0, beta=5.0, gamma=1.0, mutual=True)
history = fit(distiller)
viz.plot_training_curves(history, title="STMD: loss terms per epoch")
'''),
        md('## 5. Evaluate'),
        code('''
metrics = test_metrics(student)
print(format_report(metrics))
viz.plot_confusion({"Student (STMD)": metrics}, normalize="both")
'''),
        md('## 6. Save and export to TFLite\n`save_model` writes `student.keras` with its model card '
           '`stmd_model.json` (channels, rate, sequence length, preprocessing); `export_checkpoint` '
           '(`stmd export`) converts it and checks the TFLite file against Keras on held-out nights.'),
        code('''
from stmd_keras.data.recording import STAGES
from stmd_keras.deploy.export import export_checkpoint
from stmd_keras.runner.training import save_model

card = {"architecture": "cnn_rnn", "role": "student", "channels": list(CHANNELS), "fs": float(FS),
        "seq_len": SEQ_LEN, "epoch_sec": 30.0, "stages": list(STAGES),
        "preprocess": {"bandpass": None, "notch": None, "standardize": True},
        "dataset": "synthetic", "seed": SEED, "test_metrics": metrics}
checkpoint = save_model(student, WORK, card, "student.keras")
report = export_checkpoint(checkpoint, os.path.join(WORK, "export"), formats=["tflite-fp32"],
                           parity_nights=PARITY_NIGHTS, night_epochs=PARITY_EPOCHS, latency_runs=0,
                           overwrite=True, verbose=False)
tflite = os.path.join(WORK, "export", "model_fp32.tflite")
print(tflite, f"{os.path.getsize(tflite) / 1e6:.2f} MB")
'''),
        md('## 7. Stage a night\nA new synthetic night written as an ISRUC-III EDF file is staged by the TFLite '
           'model (`stmd stage`): the hypnogram above the hypnodensity, with the scored stages for '
           'comparison.'),
        code('''
from stmd_keras.data.layouts import write_isruc
from stmd_keras.deploy.stage import stage_recording

(night,) = synthetic.generate(1, seed=SEED + 100, n_epochs=STAGE_EPOCHS, channels=CHANNELS)
edf = write_isruc(night, os.path.join(WORK, "night"))[0]
staged = stage_recording(edf, tflite, progress=False)
files = staged.to_files(os.path.join(WORK, "night", "staged"))
print(files)
viz.plot_hypnogram(staged.hypnogram, y_true=night.labels, probabilities=staged.probabilities,
                   title="Synthetic night staged by the TFLite student")
'''),
    ]


def inside_knowledge():
    return [
        md('''
# Inside the knowledge: sleep graphs and temporal relations, before and after distillation

STMD transfers two kinds of knowledge from the teacher's multi-channel features `H (B, L, C, m)`:

* the **sleep graph** of every epoch, `e_ij = softmax_j cos(h_i, h_j)`: how channel `i` relates to channel `j` (Eq. 5);
* the **temporal relation** of every sequence, `R_ij = ||u_i - u_j||`: how far apart epochs `i` and `j` are (Eq. 8).

This notebook computes both for a teacher and a student (`viz.extract_knowledge`), averages them per sleep
stage as the paper's Figures 3 and 4 do, and shows how they move together during distillation.
'''),
        params(DATA_PARAMS + '''
EVAL_SEQUENCES = 32   # test sequences whose knowledge is drawn
'''),
        code('%matplotlib inline'),
        code(DATA),
        code(MODELS),
        md('## Pre-train the teacher; the student is untrained'),
        code('''
trainer = SupervisedTrainer(teacher)
trainer.compile(keras.optimizers.Adam(LEARNING_RATE))
fit(trainer)
x, y = test.get(np.unique(np.linspace(0, len(test) - 1, EVAL_SEQUENCES).round().astype(int)))
print("sequences", x.shape, "labels", y.shape)
'''),
        md('## Before distillation'),
        code('''
from stmd_keras.knowledge import graph_distance, temporal_loss


def knowledge(normalize=False):
    return {name: viz.extract_knowledge(m, x, normalize=normalize) for name, m in
            (("Teacher", teacher), ("Student", student))}


def distances(k):
    """The spatial (KL between sleep graphs) and temporal (SmoothL1 between relations) terms of STMD."""
    spatial = graph_distance(k["Student"]["graphs"], k["Teacher"]["graphs"])
    temporal = temporal_loss(k["Student"]["relations"], k["Teacher"]["relations"])
    return {"spatial": float(spatial), "temporal": float(temporal)}


before = knowledge()
print("before:", distances(before))
viz.plot_sleep_graphs({k: v["graphs"] for k, v in before.items()}, y, CHANNELS,
                      title="Sleep graphs per stage, before distillation")
'''),
        code('''
viz.plot_temporal_relations({k: v["relations"] for k, v in before.items()}, y,
                            title="Temporal relations per stage, before distillation")
'''),
        md('## Distil with STMD'),
        code('''
distiller = MutualDistiller(teacher, student)
distiller.compile(keras.optimizers.Adam(LEARNING_RATE), keras.optimizers.Adam(LEARNING_RATE),
                  alpha=1.0, beta=5.0, gamma=1.0, mutual=True)
history = fit(distiller)
'''),
        md('## After distillation\nThe spatial and temporal distances between teacher and student shrink: the '
           'student\'s graphs and relations now look like the teacher\'s (the teacher moved too, since '
           'distillation is mutual).'),
        code('''
after = knowledge()
print("before:", distances(before))
print("after: ", distances(after))
viz.plot_sleep_graphs({k: v["graphs"] for k, v in after.items()}, y, CHANNELS,
                      title="Sleep graphs per stage, after distillation")
'''),
        code('''
viz.plot_temporal_relations({k: v["relations"] for k, v in after.items()}, y,
                            title="Temporal relations per stage, after distillation")
'''),
        md('## How the losses evolve\nEvery term of Eqs. 12-13 per epoch, training (solid) and validation (dashed).'),
        code('''
viz.plot_training_curves(history, title="STMD loss terms")
'''),
        code('''
viz.plot_training_curves(history, terms=["student_macro_f1", "teacher_macro_f1"], title="Macro-F1")
'''),
    ]


def reproduce_table():
    return [
        md('''
# Reproduce a table from saved results and compare with the paper

`stmd table 3` (`experiments/table3.py`) trains every row of the paper's Table 3 over several seeds and
writes `results/table3/DATASET/table3.{md,csv,json}`. The JSON keeps each run's test metrics, so the table
can be rebuilt, checked and drawn here without training anything.
'''),
        params('''
TABLE = "../results/table3/synthetic/table3.json"   # written by `stmd table 3`
CONFUSION_ROWS = ["Student (no KD)", "Knowledge Distillation", "Ours (STMD)"]
'''),
        code('%matplotlib inline'),
        code('''
import json

import numpy as np

from stmd_keras import viz

with open(TABLE) as f:
    table = json.load(f)
print(table["title"])
print(f"dataset {table['dataset']}, {table['seeds']} seed(s), {len(table['runs'])} runs")
print("data:", table["data_settings"])
print("training:", table["train_settings"])
'''),
        md('## Rebuild the table from the runs\nEach row is the mean (and sample std) over seeds of the test '
           'metrics of its runs; it must equal the summary the runner wrote.'),
        code('''
rows = []
for entry in table["rows"]:
    runs = [r for r in table["runs"] if r["row"] == entry["row"]]
    accuracy = np.array([100 * r["metrics"]["accuracy"] for r in runs])
    macro_f1 = np.array([100 * r["metrics"]["macro_f1"] for r in runs])
    std = (lambda v: v.std(ddof=1) if len(v) > 1 else 0.0)
    assert np.isclose(accuracy.mean(), entry["accuracy"]) and np.isclose(macro_f1.mean(), entry["macro_f1"])
    assert np.isclose(std(accuracy), entry["accuracy_std"]) and np.isclose(std(macro_f1), entry["macro_f1_std"])
    rows.append(dict(row=entry["row"], seeds=len(runs), acc=accuracy.mean(), acc_std=std(accuracy),
                     mf1=macro_f1.mean(), mf1_std=std(macro_f1), paper_acc=entry["paper_accuracy"],
                     paper_mf1=entry["paper_macro_f1"]))


def cell(v, fmt="{:.2f}"):
    return "—" if v is None else fmt.format(v)


print("| Method | seeds | acc. % | MF1 % | paper acc. | paper MF1 | Δ acc. | Δ MF1 |")
print("|---|---|---|---|---|---|---|---|")
for r in rows:
    d_acc = None if r["paper_acc"] is None else r["acc"] - r["paper_acc"]
    d_mf1 = None if r["paper_mf1"] is None else r["mf1"] - r["paper_mf1"]
    print(f"| {r['row']} | {r['seeds']} | {r['acc']:.2f} ± {r['acc_std']:.2f} | {r['mf1']:.2f} ± {r['mf1_std']:.2f} "
          f"| {cell(r['paper_acc'])} | {cell(r['paper_mf1'])} | {cell(d_acc, '{:+.2f}')} | {cell(d_mf1, '{:+.2f}')} |")
'''),
        md('## Ours against the paper\nThe synthetic default mimics ISRUC-III; the paper\'s column is ISRUC-III. '
           'Error bars: std over seeds.'),
        code('''
fig = viz.new_figure((10, 0.45 * len(rows) + 1.5))
axes = fig.subplots(1, 2, sharey=True)
ypos = np.arange(len(rows))
for ax, (ours, spread, paper, label) in zip(axes, (("acc", "acc_std", "paper_acc", "accuracy %"),
                                                 ("mf1", "mf1_std", "paper_mf1", "macro-F1 %"))):
    ax.barh(ypos + 0.2, [r[ours] for r in rows], 0.4, xerr=[r[spread] for r in rows], label="ours")
    ax.barh(ypos - 0.2, [np.nan if r[paper] is None else r[paper] for r in rows], 0.4, label="paper")
    ax.set_xlabel(label)
    ax.grid(axis="x", alpha=0.3)
axes[0].set_yticks(ypos, [r["row"] for r in rows])
axes[0].invert_yaxis()
axes[1].legend(loc="lower right")
fig.suptitle(table["title"])
fig
'''),
        md('## Confusion matrices (Figures 5-7)\nThe test epochs of every seed pooled; rows are true stages, '
           'cells the % of that stage\'s epochs.'),
        code('''
runs = viz.load_runs(TABLE, rows=[r for r in CONFUSION_ROWS if any(x["row"] == r for x in rows)])
viz.plot_confusion(dict(runs), normalize="true", title=f"{table['title']} — {table['dataset']}")
'''),
        md('To re-run the table: `stmd table 3` (about an hour on 2 CPU cores; `--quick` for a smoke run of a '
           'few minutes), then run this notebook again. From a shell, the same figure: '
           '`stmd plot confusion results/table3/synthetic/table3.json --rows "Student (no KD),Ours (STMD)" '
           '--out confusion.png`.'),
    ]


NOTEBOOKS = {
    "01_quickstart.ipynb": quickstart,
    "02_inside_the_knowledge.ipynb": inside_knowledge,
    "03_reproduce_a_table.ipynb": reproduce_table,
}


def main():
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells())
        nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
        nb.metadata["language_info"] = {"name": "python"}
        nbformat.validate(nb)
        # Ids from the cell's position keep regenerated notebooks diff-free.
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"cell-{i:02d}"
        nbformat.write(nb, HERE / name)
        print(HERE / name)


if __name__ == "__main__":
    main()
