"""`stmd_keras.viz` and `stmd plot`: figures from known inputs, files written, clear errors."""

import json
import os

import numpy as np
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import confusion_matrix

from stmd_keras.cli import main
from stmd_keras.data.recording import STAGES
from stmd_keras import viz

CHANNELS = ["F4-A1", "C3-A2", "LOC-A2"]
PNG = b"\x89PNG\r\n\x1a\n"


def axis(fig, label):
    (ax,) = [a for a in fig.axes if a.get_label() == label]
    return ax


def tick_texts(labels):
    return [t.get_text() for t in labels]


@pytest.fixture
def knowledge():
    """Graphs `(N, L, C, C)` with rows summing to 1, relations `(N, L, L)`, labels `(N, L)`."""
    rng = np.random.default_rng(0)
    n, length, c = 6, 4, len(CHANNELS)
    graphs = rng.random((n, length, c, c))
    graphs /= graphs.sum(-1, keepdims=True)
    relations = rng.random((n, length, length))
    labels = rng.integers(0, 4, (n, length))  # no REM: an empty column
    labels[0] = 2  # N2 dominates sequence 0 for sure
    return graphs, relations, labels


# -- sleep graphs (Figure 3) ------------------------------------------------------

def test_sleep_graph_panels_are_the_per_stage_means(knowledge, tmp_path):
    graphs, _, labels = knowledge
    student = graphs[..., ::-1]
    fig = viz.plot_sleep_graphs({"Teacher": graphs, "Student": student}, labels, CHANNELS,
                                path=tmp_path / "graphs.png")
    assert isinstance(fig, Figure)
    for name, g in (("Teacher", graphs), ("Student", student)):
        for k, stage in enumerate(STAGES):
            ax = axis(fig, f"{name}/{stage}")
            # Channel names under the bottom row and left of the first column.
            assert tick_texts(ax.get_xticklabels()) == (CHANNELS if name == "Student" else [])
            assert tick_texts(ax.get_yticklabels()) == (CHANNELS if stage == "W" else [])
            mask = labels == k
            if mask.any():
                expected = g[mask].mean(axis=0)  # the (C, C) mean over that stage's epochs
                np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), expected, rtol=1e-12)
                if name == "Teacher":
                    assert ax.get_title() == f"{stage} (n={mask.sum()})"
            else:
                assert not ax.images and ax.texts[0].get_text() == "no epochs"
    assert (tmp_path / "graphs.png").read_bytes()[:8] == PNG


def test_stage_means_and_dominant_stage():
    values = np.arange(6.0).reshape(3, 2)
    means, counts = viz.stage_means(values, ["W", "N2", "W"])
    np.testing.assert_array_equal(counts, [2, 0, 1, 0, 0])
    np.testing.assert_array_equal(means[0], [2.0, 3.0])
    np.testing.assert_array_equal(means[2], [2.0, 3.0])
    assert np.isnan(means[1]).all()
    np.testing.assert_array_equal(viz.dominant_stage([[0, 4, 4], [1, 1, 2], [3, 2, 1]]), [4, 1, 1])


def test_sleep_graph_errors(knowledge):
    graphs, _, labels = knowledge
    with pytest.raises(ValueError, match="3 channels but 2 channel names"):
        viz.plot_sleep_graphs(graphs, labels, CHANNELS[:2])
    with pytest.raises(ValueError, match=r"two equal axes \(C, C\)"):
        viz.plot_sleep_graphs(graphs[..., :2], labels, CHANNELS)
    with pytest.raises(ValueError, match="do not match"):
        viz.plot_sleep_graphs(graphs, labels[:, :2], CHANNELS)
    with pytest.raises(ValueError, match="outside 0..4"):
        viz.plot_sleep_graphs(graphs, labels + 5, CHANNELS)
    with pytest.raises(ValueError, match="not among"):
        viz.plot_sleep_graphs(graphs, np.full(labels.shape, "S4"), CHANNELS)
    with pytest.raises(ValueError, match="1 names given for 2"):
        viz.plot_sleep_graphs([graphs, graphs], labels, CHANNELS, names=["Teacher"])


# -- temporal relations (Figure 4) ------------------------------------------------

def test_relation_panels_are_means_over_sequences_of_the_dominant_stage(knowledge, tmp_path):
    _, relations, labels = knowledge
    fig = viz.plot_temporal_relations([relations, 2 * relations], labels, names=["Teacher", "Student"],
                                      path=tmp_path / "relations.pdf")
    dominant = viz.dominant_stage(labels)
    for name, scale in (("Teacher", 1), ("Student", 2)):
        for k, stage in enumerate(STAGES):
            ax = axis(fig, f"{name}/{stage}")
            if (dominant == k).any():
                np.testing.assert_allclose(np.asarray(ax.images[0].get_array()),
                                           scale * relations[dominant == k].mean(axis=0))
                lo, hi = ax.images[0].get_clim()  # one scale for both rows
                assert lo == pytest.approx(min(relations[dominant == j].mean(0).min()
                                               for j in np.unique(dominant)))
    assert (tmp_path / "relations.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(ValueError, match=r"\(N, L, L\)"):
        viz.plot_temporal_relations(relations[:, :, :3], labels)
    with pytest.raises(ValueError, match="do not match"):
        viz.plot_temporal_relations(relations, labels[:3])


def test_extract_knowledge_matches_the_layers():
    import keras

    from stmd_keras.knowledge import SleepGraph, TemporalRelation
    from stmd_keras.models import build_cnn_rnn

    keras.utils.set_random_seed(0)
    model = build_cnn_rnn(4, 3, n_channels=3, seq_len=4, fs=20, dropout=0.0)
    x = np.random.default_rng(1).standard_normal((5, 4, 3, 600)).astype("float32")
    out = viz.extract_knowledge(model, x, batch_size=2, normalize=True)
    features = model(x, training=False)["features"]
    np.testing.assert_allclose(out["graphs"], np.asarray(SleepGraph()(features)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["relations"], np.asarray(TemporalRelation(normalize=True)(features)),
                               rtol=1e-5, atol=1e-6)
    assert out["graphs"].shape == (5, 4, 3, 3) and out["relations"].shape == (5, 4, 4)
    with pytest.raises(ValueError, match=r"\(N, L, C, S\)"):
        viz.extract_knowledge(model, x[0])


# -- confusion matrices (Figures 5-7) -----------------------------------------------

def test_confusion_counts_and_percentages_are_sklearns(tmp_path):
    rng = np.random.default_rng(2)
    y_true, y_pred = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    y_true[:40] = 1  # uneven rows
    counts = confusion_matrix(y_true, y_pred, labels=range(5))
    for normalize in ("none", "true", "both"):
        fig = viz.plot_confusion({"STMD": counts}, normalize=normalize, path=tmp_path / f"cm_{normalize}.png")
        ax = axis(fig, "STMD")
        texts = np.array([t.get_text() for t in ax.texts]).reshape(5, 5)
        percent = 100 * counts / counts.sum(axis=1, keepdims=True)
        for i in range(5):
            for j in range(5):
                expected = {"none": f"{counts[i, j]}", "true": f"{percent[i, j]:.0f}",
                            "both": f"{counts[i, j]}\n{percent[i, j]:.0f}%"}[normalize]
                assert texts[i, j] == expected
        shown = np.asarray(ax.images[0].get_array())
        np.testing.assert_allclose(shown, counts if normalize == "none" else percent / 100)
        assert tick_texts(ax.get_xticklabels()) == list(STAGES) == tick_texts(ax.get_yticklabels())
        assert ax.get_xlabel() == "Predicted" and ax.get_ylabel() == "True"
        assert f"acc. {100 * np.trace(counts) / 300:.1f} %" in ax.get_title()
        assert (tmp_path / f"cm_{normalize}.png").stat().st_size > 1000


def test_confusion_of_results_and_tables(tmp_path):
    from stmd_keras.evaluation import evaluate

    metrics = evaluate([0, 1, 2, 3, 4, 2], [0, 2, 2, 3, 4, 2])
    fig = viz.plot_confusion([{"metrics": metrics}, metrics], names=["a", "b"], normalize="none")
    for name in "ab":
        np.testing.assert_array_equal(axis(fig, name).images[0].get_array(), metrics["confusion_matrix"])
    table = {"runs": [{"row": r, "seed": s, "key": f"{r}{s}", "history": None,
                       "metrics": {"confusion_matrix": (np.eye(5, dtype=int) * (s + 1)).tolist()}}
                      for r in ("Teacher", "Ours") for s in (0, 1)]}
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    runs = viz.load_runs(path, rows=["Ours"])
    assert [name for name, _ in runs] == ["Ours"]
    np.testing.assert_array_equal(runs[0][1]["metrics"]["confusion_matrix"], np.eye(5) * 3)  # seeds pooled
    ((name, one),) = viz.load_runs(path, rows=["Ours"], seed=1)
    assert name == "Ours (seed 1)" and one["metrics"]["confusion_matrix"] == (np.eye(5) * 2).tolist()
    with pytest.raises(ValueError, match="no row"):
        viz.load_runs(path, rows=["Nope"])


def test_confusion_errors():
    with pytest.raises(ValueError, match="5 x 5"):
        viz.plot_confusion(np.ones((4, 4)))
    with pytest.raises(ValueError, match="non-negative whole counts"):
        viz.plot_confusion(-np.ones((5, 5)))
    with pytest.raises(ValueError, match="`normalize` must be one of"):
        viz.plot_confusion(np.ones((5, 5)), normalize="pred")
    with pytest.raises(ValueError, match="no confusion matrix"):
        viz.plot_confusion({"metrics": {"accuracy": 1.0}})


# -- training curves ----------------------------------------------------------------

HISTORY = [
    {"epoch": e, "ce_student": 1.5 - 0.1 * e, "ce_teacher": 1.0 - 0.1 * e, "spatial": 0.2 / (e + 1),
     "temporal": 0.3 / (e + 1), "kd": 0.0, "loss_student": 2.0 - 0.1 * e, "student_macro_f1": 0.1 * e,
     "val_ce_student": 1.6 - 0.1 * e, "val_spatial": 0.25 / (e + 1), "val_kd": 0.0}
    for e in range(3)
]


def test_training_curves_draw_each_nonzero_loss_term(tmp_path):
    fig = viz.plot_training_curves({"history": HISTORY}, path=tmp_path / "curves.pdf")
    drawn = [a.get_label() for a in fig.axes if a.get_visible()]
    assert drawn == ["loss_student", "ce_student", "ce_teacher", "spatial", "temporal"]  # kd is all 0
    ax = axis(fig, "spatial")
    (train, val) = ax.get_lines()
    np.testing.assert_array_equal(train.get_xdata(), [1, 2, 3])
    np.testing.assert_allclose(train.get_ydata(), [h["spatial"] for h in HISTORY])
    np.testing.assert_allclose(val.get_ydata(), [h["val_spatial"] for h in HISTORY])
    assert len(axis(fig, "temporal").get_lines()) == 1  # no validation column
    assert (tmp_path / "curves.pdf").stat().st_size > 1000
    # Keras' History.history form, and chosen terms.
    keras_form = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "macro_f1": [0.2, 0.4]}
    fig = viz.plot_training_curves(keras_form, terms=["loss", "macro_f1"], validation=False)
    assert [len(axis(fig, t).get_lines()) for t in ("loss", "macro_f1")] == [1, 1]
    with pytest.raises(ValueError, match="has no \\['nope'\\]"):
        viz.plot_training_curves(HISTORY, terms=["nope"])
    with pytest.raises(ValueError, match="no training history"):
        viz.plot_training_curves({"history": None})
    with pytest.raises(ValueError, match="empty"):
        viz.plot_training_curves([])


# -- hypnogram ----------------------------------------------------------------------

def test_hypnogram_true_vs_predicted_with_hypnodensity(tmp_path):
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 5, 40)
    pred = truth.copy()
    pred[:10] = (pred[:10] + 1) % 5
    probs = rng.dirichlet(np.ones(5), 40)
    fig = viz.plot_hypnogram(np.asarray(STAGES)[pred], y_true=truth, probabilities=probs, path=tmp_path / "h.png")
    assert [a.get_label() for a in fig.axes] == ["True", "Predicted", "Hypnodensity"]
    level = {s: i for i, s in enumerate(viz.PLOT_ORDER)}
    for label, y in (("True", truth), ("Predicted", pred)):
        line = axis(fig, label).get_lines()[0]
        np.testing.assert_array_equal(line.get_ydata()[:-1], [level[STAGES[k]] for k in y])
        assert tick_texts(axis(fig, label).get_yticklabels()) == list(viz.PLOT_ORDER)
    np.testing.assert_allclose(axis(fig, "Predicted").get_lines()[0].get_xdata()[-1], 40 * 30 / 3600)
    assert "agreement 75.0 %" in fig.axes[0].get_title()
    assert (tmp_path / "h.png").read_bytes()[:8] == PNG
    with pytest.raises(ValueError, match="one entry per epoch"):
        viz.plot_hypnogram(pred[:30], y_true=truth)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        viz.plot_hypnogram(probabilities=probs[:, :4])
    with pytest.raises(ValueError, match="Nothing to plot"):
        viz.plot_hypnogram()


def test_read_hypnogram_files(tmp_path):
    (tmp_path / "a.tsv").write_text("onset\tduration\tstage\n0.0\t30.0\tW\n30.0\t30.0\tREM\n")
    stages, onsets = viz.read_hypnogram(tmp_path / "a.tsv")
    assert list(stages) == ["W", "REM"] and list(onsets) == [0.0, 30.0]
    (tmp_path / "b.txt").write_text("0\n2\n4\n")
    assert list(viz.read_hypnogram(tmp_path / "b.txt")[0]) == ["W", "N2", "REM"]
    np.savez(tmp_path / "c.npz", labels=np.array([3, 1]))
    assert list(viz.read_hypnogram(tmp_path / "c.npz")[0]) == ["N3", "N1"]
    (tmp_path / "d.csv").write_text("onset,W,N1,N2,N3,REM\n0.0,0.5,0.5,0,0,0\n")
    onsets, probs, stages = viz.read_probabilities(tmp_path / "d.csv")
    assert probs.shape == (1, 5) and stages == STAGES
    (tmp_path / "e.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="`stage` column"):
        viz.read_hypnogram(tmp_path / "e.csv")


# -- files ----------------------------------------------------------------------------

def test_figures_are_deterministic_in_every_format(tmp_path):
    for ext in ("png", "pdf", "svg"):
        a, b = tmp_path / f"a.{ext}", tmp_path / f"b.{ext}"
        viz.plot_confusion(np.eye(5, dtype=int), path=a)
        viz.save_figure(viz.plot_confusion(np.eye(5, dtype=int)), b)
        assert a.stat().st_size > 1000 and a.read_bytes() == b.read_bytes()
    with pytest.raises(ValueError, match="Cannot tell the figure format"):
        viz.save_figure(viz.plot_confusion(np.eye(5, dtype=int)), tmp_path / "x.jpeg")
    assert sorted(os.listdir(tmp_path)) == sorted(f"{n}.{e}" for n in "ab" for e in ("png", "pdf", "svg"))


# -- stmd plot ------------------------------------------------------------------------

def test_cli_confusion_curves_and_hypnogram(tmp_path, capsys):
    result = {"row": "Ours (STMD)", "history": HISTORY,
              "metrics": {"confusion_matrix": (np.eye(5, dtype=int) * 7).tolist()}}
    (tmp_path / "row.json").write_text(json.dumps(result))
    main(["plot", "confusion", str(tmp_path / "row.json"), "--normalize", "both", "--out", str(tmp_path / "cm.pdf")])
    main(["plot", "curves", str(tmp_path / "row.json"), "--terms", "spatial,temporal", "--out", str(tmp_path / "k.png")])
    (tmp_path / "n.hypnogram.tsv").write_text("onset\tduration\tstage\n" + "".join(
        f"{30.0 * i}\t30.0\t{s}\n" for i, s in enumerate(["W", "N1", "N2", "N3", "REM", "N2"])))
    (tmp_path / "n.probabilities.csv").write_text("onset,W,N1,N2,N3,REM\n" + "".join(
        f"{30.0 * i},0.2,0.2,0.2,0.2,0.2\n" for i in range(6)))
    (tmp_path / "truth.txt").write_text("W\nN1\nN2\nN2\nREM\nN2\n")
    main(["plot", "hypnogram", str(tmp_path / "n"), "--truth", str(tmp_path / "truth.txt"),
          "--out", str(tmp_path / "n.png")])
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / f) for f in ("cm.pdf", "k.png", "n.png")]
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("cm.pdf", "k.png", "n.png"))
    with pytest.raises(SystemExit, match="stmd plot hypnogram: .* scores 2 epochs"):
        (tmp_path / "short.txt").write_text("W\nW\n")
        main(["plot", "hypnogram", str(tmp_path / "n"), "--truth", str(tmp_path / "short.txt"),
              "--out", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="Cannot tell the figure format"):
        main(["plot", "confusion", str(tmp_path / "row.json"), "--out", str(tmp_path / "cm.jpg")])
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "cm.jpg").exists()


def test_cli_graphs_and_relations_of_saved_models(tmp_path, capsys):
    import keras

    from stmd_keras.models import build_cnn_rnn
    from stmd_keras.runner.training import save_model

    card = {"architecture": "cnn_rnn", "channels": CHANNELS, "fs": 50.0, "seq_len": 4, "epoch_sec": 30.0,
            "stages": list(STAGES), "preprocess": {"bandpass": None, "notch": None, "standardize": True}}
    keras.utils.set_random_seed(0)
    paths = [save_model(build_cnn_rnn(f, 3, n_channels=3, seq_len=4, fs=50, name=f"m{f}"),
                        str(tmp_path / role), dict(card, role=role), f"{role}.keras")
             for f, role in ((6, "teacher"), (3, "student"))]
    data = ["--nights", "1", "--night-epochs", "24", "--max-sequences", "6"]
    main(["plot", "graphs", *paths, *data, "--out", str(tmp_path / "g.png")])
    main(["plot", "relations", *paths, *data, "--normalize", "--names", "T", "S", "--out", str(tmp_path / "r.pdf")])
    assert capsys.readouterr().out.split() == [str(tmp_path / "g.png"), str(tmp_path / "r.pdf")]
    assert (tmp_path / "g.png").stat().st_size > 5000 and (tmp_path / "r.pdf").stat().st_size > 1000
    with pytest.raises(SystemExit, match="--names gives 1 names for 2 models"):
        main(["plot", "graphs", *paths, *data, "--names", "T", "--out", str(tmp_path / "x.png")])
