"""Figures of saved results: confusion matrices (Figures 5-7) and training curves.

Both take what training saves: a row result of the table runner
(``runs/results/KEY.json``: ``metrics`` with a ``confusion_matrix``, and a
per-epoch ``history``), a table summary (``results/tableN/DATASET/tableN.json``,
whose ``runs`` hold each row's metrics), an `evaluate` result, or plain
arrays. `load_runs` reads them from disk.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping

import numpy as np

from stmd_keras.data.recording import STAGES
from stmd_keras.viz._common import finish, named, new_figure

NORMALIZE = ("true", "none", "both")

LOSS_TERMS = ("loss_student", "loss_teacher", "ce_student", "ce_teacher", "spatial", "temporal", "kd",
              "distill", "loss")
"""Loss terms `plot_training_curves` draws by default, in this order when present:
those of `MutualDistiller` (Eqs. 12-13), then `SupervisedTrainer`'s `loss`."""


# --------------------------------------------------------------------------
# Confusion matrices
# --------------------------------------------------------------------------
def confusion_of(result) -> np.ndarray:
    """The confusion matrix of a result dict, an `evaluate` dict or an array (rows true)."""
    if isinstance(result, Mapping):
        if "confusion_matrix" in result:
            return np.asarray(result["confusion_matrix"])
        if isinstance(result.get("metrics"), Mapping) and "confusion_matrix" in result["metrics"]:
            return np.asarray(result["metrics"]["confusion_matrix"])
        raise ValueError("The result has no confusion matrix: expected `confusion_matrix` or "
                         f"`metrics.confusion_matrix`; its keys are {sorted(result)}.")
    return np.asarray(result)


def _is_single(matrices):
    """One matrix (array, nested lists, result dict), not a mapping or list of them."""
    if isinstance(matrices, Mapping):
        return "confusion_matrix" in matrices or "metrics" in matrices
    if isinstance(matrices, (list, tuple)):
        return not all(isinstance(m, Mapping) or np.ndim(m) == 2 for m in matrices)
    return True


def plot_confusion(matrices, normalize="true", names=None, stages=STAGES, title=None, cmap="Blues",
                   ncols=4, path=None, dpi=100):
    """Confusion matrices, rows true stage and columns predicted (Figures 5-7).

    Parameters
    ----------
    matrices : array (K, K), result dict, or {name: either}, or a list
        Counts, as `stmd_keras.evaluation.evaluate` returns them under
        ``confusion_matrix`` (a row result or an `evaluate` dict is read
        for it). Several matrices are drawn side by side.
    normalize : {"true", "none", "both"}
        "true": each row as % of the true stage's epochs (the paper's
        figures); "none": raw counts; "both": counts with the row % below.
        Colours follow the row %, except for "none" (counts).
    names : sequence of str, optional
        Panel titles when `matrices` is a list.
    stages : sequence of str
        The K stage names, in the matrices' order.
    title : str, optional
        Title above all panels.
    cmap : str
    ncols : int
        Panels per row.
    path : str or path-like, optional
        Also save the figure there (``.png``, ``.pdf`` or ``.svg``).
    dpi : int
        Resolution of a PNG.

    Returns
    -------
    matplotlib.figure.Figure
        One heatmap per matrix, each cell annotated; each panel titled with
        its name, accuracy and number of epochs.

    Raises
    ------
    ValueError
        Unknown `normalize`, a matrix that is not K x K, or counts that are
        negative or not whole numbers.
    """
    if normalize is None:
        normalize = "none"
    if normalize not in NORMALIZE:
        raise ValueError(f"`normalize` must be one of {NORMALIZE}. Received: normalize={normalize!r}")
    stages = [str(s) for s in stages]
    k = len(stages)
    pairs = named(matrices, "result", names) if not _is_single(matrices) else [((names or [""])[0], matrices)]
    checked = []
    for name, m in pairs:
        m = np.asarray(confusion_of(m), dtype=np.float64)
        if m.shape != (k, k):
            raise ValueError(f"The confusion matrix {name!r} must be {k} x {k} (stages {stages}). "
                             f"Received shape {m.shape}.")
        if not np.all(np.isfinite(m)) or m.min() < 0 or not np.all(m == np.round(m)):
            raise ValueError(f"The confusion matrix {name!r} must hold non-negative whole counts.")
        checked.append((name, m))
    ncols = max(1, min(int(ncols), len(checked)))
    nrows = -(-len(checked) // ncols)
    fig = new_figure((3.4 * ncols + 0.4, 3.3 * nrows + (0.4 if title else 0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(checked):]:
        ax.set_visible(False)
    for ax, (name, m) in zip(axes.ravel(), checked):
        ax.set_label(name)
        totals = m.sum(axis=1, keepdims=True)
        share = np.divide(m, totals, out=np.zeros_like(m), where=totals > 0)
        shown = m if normalize == "none" else share
        ax.imshow(shown, cmap=cmap, vmin=0, vmax=max(float(shown.max()), 1e-12) if normalize == "none" else 1,
                  interpolation="nearest")
        for i in range(k):
            for j in range(k):
                count, pct = int(m[i, j]), 100 * share[i, j]
                text = {"none": f"{count}", "true": f"{pct:.0f}", "both": f"{count}\n{pct:.0f}%"}[normalize]
                dark = shown[i, j] > 0.55 * (shown.max() if normalize == "none" else 1)
                ax.text(j, i, text, ha="center", va="center", fontsize=8 if normalize == "both" else 9,
                        color="white" if dark else "black")
        ax.set_xticks(range(k), stages)
        ax.set_yticks(range(k), stages)
        ax.set_xlabel("Predicted")
        ax.set_ylabel("True")
        n = int(m.sum())
        accuracy = f"acc. {100 * np.trace(m) / n:.1f} %, " if n else ""
        unit = "" if normalize == "none" else " (row %)"
        ax.set_title(f"{name}\n{accuracy}n={n}{unit}" if name else f"{accuracy}n={n}{unit}", fontsize=9)
    if title:
        fig.suptitle(title)
    return finish(fig, path, dpi)


# --------------------------------------------------------------------------
# Training curves
# --------------------------------------------------------------------------
def history_columns(history) -> dict:
    """`{name: float array (epochs,)}` from any saved form of a training history.

    Accepted: the runner's list of per-epoch dicts, Keras'
    ``History.history`` dict of lists, a ``keras.callbacks.History``, or a
    result dict with a ``history``. An ``epoch`` column (0-based) is added
    when missing.
    """
    if hasattr(history, "history") and not isinstance(history, Mapping):
        history = history.history
    if isinstance(history, Mapping) and "history" in history:
        history = history["history"]
    if history is None:
        raise ValueError("The result has no training history (a table JSON keeps none: use the row's "
                         "result in runs/results/KEY.json, or `load_runs(..., work_dir=...)`).")
    if isinstance(history, Mapping):
        columns = {str(k): list(v) for k, v in history.items()}
    elif isinstance(history, (list, tuple)) and all(isinstance(e, Mapping) for e in history):
        names = list(dict.fromkeys(k for e in history for k in e))
        columns = {k: [e.get(k, np.nan) for e in history] for k in names}
    else:
        raise ValueError("`history` must be a list of per-epoch dicts, a dict of lists or a keras History. "
                         f"Received {type(history).__name__}.")
    lengths = {len(v) for v in columns.values()}
    if len(lengths) > 1:
        raise ValueError(f"The history's columns have different lengths: {sorted(lengths)}.")
    if not columns or lengths == {0}:
        raise ValueError("The history is empty: nothing was trained.")
    out = {k: np.asarray([np.nan if x is None else x for x in v], dtype=np.float64) for k, v in columns.items()}
    out.setdefault("epoch", np.arange(lengths.pop(), dtype=np.float64))
    return out


def plot_training_curves(history, terms=None, validation=True, title=None, ncols=4, path=None, dpi=100):
    """Each loss term of a training run against the epoch.

    Parameters
    ----------
    history : list of dicts, dict of lists, keras History or result dict
        See `history_columns`.
    terms : sequence of str, optional
        Columns to draw, one panel each, e.g. ``["spatial", "temporal",
        "student_macro_f1"]``. Default: the loss terms of `LOSS_TERMS`
        present in the history, leaving out those that are 0 throughout
        (a term switched off, e.g. ``kd`` in STMD).
    validation : bool
        Also draw ``val_<term>`` (dashed) where the history has it.
    title : str, optional
    ncols : int
        Panels per row.
    path : str or path-like, optional
        Also save the figure there (``.png``, ``.pdf`` or ``.svg``).
    dpi : int
        Resolution of a PNG.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per term (titled with its name): the training value
        (solid) and the validation value (dashed), epochs counted from 1.

    Raises
    ------
    ValueError
        An unreadable or empty history, or a term the history lacks (the
        message lists those it has).
    """
    columns = history_columns(history)
    epochs = columns["epoch"] + 1
    available = [k for k in columns if k != "epoch" and not k.startswith("val_")]
    if terms is None:
        terms = [t for t in LOSS_TERMS if t in columns and
                 not (np.all(columns[t] == 0) and np.all(columns.get("val_" + t, np.zeros(1)) == 0))]
        if not terms:
            raise ValueError(f"The history has none of the loss terms {list(LOSS_TERMS)}; it has {available}. "
                             "Name the columns to draw with `terms=`.")
    else:
        terms = [terms] if isinstance(terms, str) else list(terms)
        missing = [t for t in terms if t not in columns]
        if missing or not terms:
            raise ValueError(f"The history has no {missing or 'terms'}; it has {available}.")
    ncols = max(1, min(int(ncols), len(terms)))
    nrows = -(-len(terms) // ncols)
    fig = new_figure((3.6 * ncols, 2.8 * nrows + (0.4 if title else 0)))
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.ravel()[len(terms):]:
        ax.set_visible(False)
    for ax, term in zip(axes.ravel(), terms):
        ax.set_label(term)
        ax.plot(epochs, columns[term], "-o", markersize=3, color="C0", label="train")
        if validation and "val_" + term in columns:
            ax.plot(epochs, columns["val_" + term], "--s", markersize=3, color="C1", label="validation")
        ax.set_title(term, fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return finish(fig, path, dpi)


# --------------------------------------------------------------------------
# Reading results
# --------------------------------------------------------------------------
def load_runs(path, rows=None, seed=None, work_dir=None) -> list:
    """The runs saved in a row result or a table JSON, as `[(label, result)]`.

    Parameters
    ----------
    path : str or path-like
        A row result (``runs/results/KEY.json``) or a table summary
        (``results/tableN/DATASET/tableN.json``).
    rows : sequence of str, optional
        Table only: the rows wanted, in this order (default all).
    seed : int, optional
        Table only: that seed's run of each row. Default: all seeds, one
        entry per row with the confusion matrices summed (the test epochs
        of every seed pooled) and the first seed's history.
    work_dir : str, optional
        Table only: the runner's work folder (``runs``); a run whose history
        the table leaves out gets it from ``WORK_DIR/results/KEY.json``
        when that file exists.

    Returns
    -------
    list of (str, dict)
        The row name (with the seed when one is chosen) and a result dict
        with ``metrics`` (``confusion_matrix``...) and ``history``.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if "runs" not in data:
        if rows or seed is not None:
            raise ValueError(f"{path} is one row's result; `rows` and `seed` apply to a table JSON.")
        return [(str(data.get("row", os.path.splitext(os.path.basename(path))[0])), data)]
    runs = data["runs"]
    known = list(dict.fromkeys(r["row"] for r in runs))
    rows = known if not rows else [rows] if isinstance(rows, str) else list(rows)
    unknown = [r for r in rows if r not in known]
    if unknown:
        raise ValueError(f"{path} has no row(s) {unknown}; its rows are {known}.")
    out = []
    for row in rows:
        mine = sorted((r for r in runs if r["row"] == row), key=lambda r: r.get("seed", 0))
        if seed is not None:
            mine = [r for r in mine if r.get("seed") == seed]
            if not mine:
                raise ValueError(f"{path}: row {row!r} has no run with seed {seed}.")
        result = dict(mine[0])
        if result.get("history") is None and work_dir is not None and result.get("key"):
            saved = os.path.join(os.fspath(work_dir), "results", f"{result['key']}.json")
            if os.path.exists(saved):
                with open(saved, encoding="utf-8") as f:
                    result["history"] = json.load(f).get("history")
        if len(mine) > 1:
            metrics = dict(result["metrics"])
            metrics["confusion_matrix"] = np.sum([r["metrics"]["confusion_matrix"] for r in mine], axis=0).tolist()
            result["metrics"], result["seeds"] = metrics, [r.get("seed") for r in mine]
        out.append((row if seed is None else f"{row} (seed {seed})", result))
    return out
