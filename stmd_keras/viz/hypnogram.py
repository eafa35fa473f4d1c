"""Hypnograms (true and predicted) and the hypnodensity of one night.

`plot_hypnogram` is what `stmd stage` draws (`StagingResult.plot`); the
readers load the files `stmd stage` writes (`PREFIX.hypnogram.tsv`,
`PREFIX.probabilities.csv`) and truth files, for `stmd plot hypnogram`.
"""

from __future__ import annotations

import csv
import os

import numpy as np

from stmd_keras.data.recording import EPOCH_SEC, STAGES
from stmd_keras.viz._common import finish, new_figure, stage_codes

PLOT_ORDER = ("W", "REM", "N1", "N2", "N3")
"""Stages from top to bottom of the hypnogram, as clinicians read it."""

STAGE_COLORS = {"W": "#f2c14e", "REM": "#e4572e", "N1": "#9ad1f5", "N2": "#2e86c1", "N3": "#1b2f6e"}


def _draw_hypnogram(ax, t, names, label, color="k"):
    level = {s: i for i, s in enumerate(PLOT_ORDER)}
    y = np.array([level[s] for s in names] + [level[names[-1]]], dtype=float)
    ax.step(t, y, where="post", color=color, linewidth=1, label=label)
    rem = np.where(y == level["REM"], y, np.nan)
    ax.step(t, rem, where="post", color=STAGE_COLORS["REM"], linewidth=3)
    ax.set_yticks(range(len(PLOT_ORDER)), PLOT_ORDER)
    ax.set_ylim(len(PLOT_ORDER) - 0.5, -0.5)
    ax.set_ylabel(label)


def plot_hypnogram(y_pred=None, y_true=None, probabilities=None, onsets=None, epoch_sec=EPOCH_SEC,
                   stages=STAGES, title=None, path=None, dpi=100):
    """The hypnogram(s) of a night above its hypnodensity.

    Parameters
    ----------
    y_pred : array (N,), optional
        Predicted stage of each epoch (names W, N1, N2, N3, REM or codes
        0..4). Default, when `probabilities` is given: their arg-max.
    y_true : array (N,), optional
        The scored (true) stage of each epoch.
    probabilities : float array (N, K), optional
        Stage probabilities per epoch, columns in `stages` order; drawn as
        a stacked hypnodensity.
    onsets : float array (N,), optional
        Epoch starts in seconds (default ``0, epoch_sec, ...``).
    epoch_sec : float
        Epoch length in seconds.
    stages : sequence of str
        The stage of each code / probability column.
    title : str, optional
        Default: the night's length, and the agreement when both
        hypnograms are given.
    path : str or path-like, optional
        Also save the figure there (``.png``, ``.pdf`` or ``.svg``).
    dpi : int
        Resolution of a PNG.

    Returns
    -------
    matplotlib.figure.Figure
        One step-plot panel per hypnogram ("True" above "Predicted"; stages
        W, REM, N1, N2, N3 top to bottom, REM in red) and, with
        `probabilities`, the hypnodensity below. Time in hours.

    Raises
    ------
    ValueError
        Nothing to draw, unknown stages, lengths that differ, or
        probabilities that are not (N, K) with K stages.
    """
    stages = tuple(str(s) for s in stages)
    if sorted(stages) != sorted(PLOT_ORDER):
        raise ValueError(f"`stages` must be the five stages {list(STAGES)} in some order. Received {list(stages)}.")
    if probabilities is not None:
        probabilities = np.asarray(probabilities, dtype=np.float64)
        if probabilities.ndim != 2 or probabilities.shape[1] != len(stages):
            raise ValueError(f"`probabilities` must be (N, {len(stages)}), columns {list(stages)}. "
                             f"Received shape {probabilities.shape}.")
        if y_pred is None:
            y_pred = probabilities.argmax(axis=1)
    panels = [(label, np.asarray(stages)[stage_codes(y, label, stages)])
              for label, y in (("True", y_true), ("Predicted", y_pred)) if y is not None]
    if not panels:
        raise ValueError("Nothing to plot: give `y_pred`, `y_true` or `probabilities`.")
    lengths = {label: len(y) for label, y in panels}
    if probabilities is not None:
        lengths["probabilities"] = len(probabilities)
    if onsets is not None:
        onsets = np.asarray(onsets, dtype=np.float64)
        lengths["onsets"] = len(onsets)
    if len(set(lengths.values())) != 1 or any(y.ndim != 1 for _, y in panels):
        raise ValueError(f"Every input must have one entry per epoch (1-D). Received lengths {lengths}.")
    n = next(iter(lengths.values()))
    if n == 0:
        raise ValueError("Nothing to plot: the night has no epochs.")
    if onsets is None:
        onsets = np.arange(n) * float(epoch_sec)
    t = np.append(onsets, onsets[-1] + epoch_sec) / 3600.0

    heights = [1.0] * len(panels) + ([1.3] if probabilities is not None else [])
    fig = new_figure((12, 2.5 * len(heights) + 0.5))
    axes = fig.subplots(len(heights), 1, sharex=True, height_ratios=heights, squeeze=False)[:, 0]
    for ax, (label, names) in zip(axes, panels):
        ax.set_label(label)
        _draw_hypnogram(ax, t, names, label if len(panels) > 1 else "Stage")
    if title is None:
        title = f"{n} epochs ({n * epoch_sec / 3600:.2f} h)"
        if len(panels) == 2:
            title += f"; agreement {100 * np.mean(panels[0][1] == panels[1][1]):.1f} %"
    axes[0].set_title(title)
    if probabilities is not None:
        ax = axes[-1]
        ax.set_label("Hypnodensity")
        cumulative = np.zeros(n + 1)
        for s in reversed(PLOT_ORDER):  # N3 at the bottom, W on top, as above
            p = probabilities[:, stages.index(s)]
            upper = cumulative + np.append(p, p[-1])
            ax.fill_between(t, cumulative, upper, step="post", color=STAGE_COLORS[s], linewidth=0, label=s)
            cumulative = upper
        ax.set_ylim(0, 1)
        ax.set_ylabel("Probability")
        handles, labels = ax.get_legend_handles_labels()
        ax.legend(handles[::-1], labels[::-1], loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False,
                  title="Hypnodensity")
    axes[-1].set_xlim(t[0], t[-1])
    axes[-1].set_xlabel("Time (hours)")
    return finish(fig, path, dpi)


def read_hypnogram(path):
    """Reads one stage per epoch from a file.

    Accepted: the ``PREFIX.hypnogram.tsv`` of `stmd stage` (or any TSV/CSV
    with a ``stage`` column, and optionally ``onset``), an ``.npz`` night of
    `stmd synth` (its ``labels``), or plain text with one stage per line
    (W, N1, N2, N3, REM or codes 0..4).

    Returns
    -------
    stages : str array (N,)
    onsets : float array (N,) or None
    """
    path = os.fspath(path)
    if path.endswith(".npz"):
        with np.load(path) as f:
            if "labels" not in f:
                raise ValueError(f"{path} has no `labels` array (expected a night from `stmd synth`).")
            return np.asarray(STAGES)[stage_codes(f["labels"], path)], None
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    if not lines:
        raise ValueError(f"{path} is empty.")
    delimiter = "\t" if "\t" in lines[0] else ("," if "," in lines[0] else None)
    header = [h.strip().lower() for h in lines[0].split(delimiter)] if delimiter else []
    if "stage" in header:
        rows = [{k.strip().lower(): (v or "").strip() for k, v in r.items() if k is not None}
                for r in csv.DictReader(lines, delimiter=delimiter)]
        names = [r["stage"] for r in rows]
        onsets = np.array([float(r["onset"]) for r in rows]) if "onset" in header else None
    elif delimiter is None:
        names, onsets = lines, None
    else:
        raise ValueError(f"{path}: a table of stages needs a `stage` column; the header is {lines[0]!r}.")
    codes = np.array([int(v) for v in names]) if all(v.isdigit() for v in names) else np.array(names)
    return np.asarray(STAGES)[stage_codes(codes, path)], onsets


def read_probabilities(path):
    """Reads the ``PREFIX.probabilities.csv`` of `stmd stage`.

    Returns
    -------
    onsets : float array (N,)
    probabilities : float array (N, K)
    stages : tuple of str
        The K column names, in file order.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(line for line in f if line.strip()))
    if not rows or rows[0][:1] != ["onset"] or sorted(rows[0][1:]) != sorted(STAGES):
        raise ValueError(f"{path}: expected a header `onset,{','.join(STAGES)}` (as `stmd stage` writes). "
                         f"Found {rows[0] if rows else 'nothing'}.")
    values = np.array(rows[1:], dtype=np.float64).reshape(-1, len(rows[0]))
    return values[:, 0], values[:, 1:], tuple(rows[0][1:])
