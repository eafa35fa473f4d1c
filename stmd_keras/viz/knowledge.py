"""Figures 3 and 4 of the paper: sleep graphs and temporal relations per sleep stage.

A model's knowledge of a batch of sequences comes from `extract_knowledge`
(its `SleepGraph` and `TemporalRelation` of the model's multi-channel
features, as `MutualDistiller` computes them); `plot_sleep_graphs` and
`plot_temporal_relations` average it per sleep stage and draw one row of
panels per model (teacher above student), one column per stage.

>>> x, y = test_set.get(range(32))
>>> knowledge = {"Teacher": extract_knowledge(teacher, x), "Student": extract_knowledge(student, x)}
>>> fig = plot_sleep_graphs({k: v["graphs"] for k, v in knowledge.items()}, y, channels)
"""

from __future__ import annotations

import numpy as np

from stmd_keras.data.recording import STAGES
from stmd_keras.viz._common import finish, named, new_figure, stage_codes


def extract_knowledge(model, x, batch_size=8, normalize=False) -> dict:
    """Sleep graphs and temporal relations of `model` for the sequences `x`.

    Parameters
    ----------
    model : keras.Model
        A stager returning ``{"logits", "features"}`` (every model of
        `stmd_keras.models`), run in inference mode.
    x : float array (N, L, C, S)
        Prepared sequences, e.g. ``SequenceSet.get(indices)[0]``.
    batch_size : int
        Sequences per forward pass.
    normalize : bool
        Divide each temporal relation by its mean off-diagonal distance
        (`TemporalRelation(normalize=True)`), so models with features of
        different sizes are drawn at one scale.

    Returns
    -------
    dict
        ``graphs`` float32 (N, L, C, C), rows summing to 1 (Eq. 5);
        ``relations`` float32 (N, L, L) (Eq. 8).
    """
    from keras import ops

    from stmd_keras.knowledge import SleepGraph, TemporalRelation

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"`x` must be sequences of shape (N, L, C, S). Received shape {x.shape}.")
    if int(batch_size) < 1:
        raise ValueError(f"`batch_size` must be >= 1. Received: batch_size={batch_size}")
    graph, relation = SleepGraph(), TemporalRelation(normalize=bool(normalize))
    graphs, relations = [], []
    for start in range(0, len(x), int(batch_size)):
        out = model(x[start:start + int(batch_size)], training=False)
        if not isinstance(out, dict) or "features" not in out:
            raise ValueError("`model` must return a dict with multi-channel `features` (B, L, C, m), "
                             "as the stmd_keras models do.")
        features = out["features"]
        graphs.append(ops.convert_to_numpy(graph(features)))
        relations.append(ops.convert_to_numpy(relation(features)))
    return {"graphs": np.concatenate(graphs), "relations": np.concatenate(relations)}


def dominant_stage(labels) -> np.ndarray:
    """The most frequent stage of each sequence: (N, L) labels -> (N,) codes (ties: lower code)."""
    codes = stage_codes(labels)
    if codes.ndim != 2:
        raise ValueError(f"`labels` must be (N, L) stage labels of N sequences. Received shape {codes.shape}.")
    counts = np.stack([(codes == k).sum(axis=1) for k in range(len(STAGES))], axis=1)
    return counts.argmax(axis=1)


def stage_means(values, labels, n_stages=len(STAGES)):
    """Mean of `values` over the items of each stage.

    Parameters
    ----------
    values : array (*shape, ...)
        One value (scalar, vector or matrix) per labelled item.
    labels : int or str array `shape`
        The stage of each item; its shape must begin `values`' shape.

    Returns
    -------
    means : float64 array (n_stages, ...)
        NaN for a stage without items.
    counts : int array (n_stages,)
        Items per stage.
    """
    values = np.asarray(values, dtype=np.float64)
    codes = stage_codes(labels)
    if values.shape[:codes.ndim] != codes.shape:
        raise ValueError(f"`labels` of shape {codes.shape} do not match the leading dimensions of "
                         f"`values` of shape {values.shape}.")
    flat = values.reshape((-1,) + values.shape[codes.ndim:])
    codes = codes.ravel()
    means = np.full((n_stages,) + flat.shape[1:], np.nan)
    counts = np.bincount(codes, minlength=n_stages)[:n_stages]
    for k in range(n_stages):
        if counts[k]:
            means[k] = flat[codes == k].mean(axis=0)
    return means, counts


def _grid(rows, stages, matrices, counts, ticks, xlabel, ylabel, title, vmin, vmax, share_scale, cmap,
          tick_rotation, cbar_label):
    """Draws `matrices[row][stage]` as an `len(rows) x len(stages)` grid of heatmaps."""
    n_rows, n_cols = len(rows), len(stages)
    size = 2.1 if len(ticks) <= 8 else 2.5
    fig = new_figure((size * n_cols + 1.2, size * n_rows + 0.6))
    axes = np.atleast_2d(fig.subplots(n_rows, n_cols, squeeze=False))

    def limits(blocks):
        finite = np.concatenate([m[np.isfinite(m)].ravel() for m in blocks] + [np.zeros(0)])
        lo = float(finite.min()) if finite.size and vmin is None else vmin
        hi = float(finite.max()) if finite.size and vmax is None else vmax
        return lo, hi

    all_limits = limits([m for row in matrices for m in row])
    for r, name in enumerate(rows):
        lo, hi = all_limits if share_scale else limits(matrices[r])
        image = None
        for c, stage in enumerate(stages):
            ax = axes[r, c]
            ax.set_label(f"{name}/{stage}")
            m = matrices[r][c]
            ax.set_xticks(range(len(ticks)), ticks, rotation=tick_rotation, fontsize=7)
            ax.set_yticks(range(len(ticks)), ticks, fontsize=7)
            ax.tick_params(labelleft=c == 0, labelbottom=r == n_rows - 1)
            if counts[c] == 0:
                ax.set_xlim(-0.5, len(ticks) - 0.5)
                ax.set_ylim(len(ticks) - 0.5, -0.5)
                ax.text(0.5, 0.5, "no epochs", ha="center", va="center", transform=ax.transAxes,
                        color="0.4")
            else:
                image = ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
            if r == 0:
                ax.set_title(f"{stage} (n={counts[c]})", fontsize=10)
            if c == 0:
                ax.set_ylabel(f"{name}\n{ylabel}" if name else ylabel)
            if r == n_rows - 1:
                ax.set_xlabel(xlabel)
        if image is not None and (not share_scale or r == n_rows - 1):
            targets = axes[r, :] if not share_scale else axes[:, :]
            fig.colorbar(image, ax=list(np.ravel(targets)), shrink=0.85, label=cbar_label)
    if title:
        fig.suptitle(title)
    return fig


def _named_arrays(arrays, names, what):
    pairs = named(arrays, "model", names)
    return [(name, np.asarray(a, dtype=np.float64)) for name, a in pairs]


def plot_sleep_graphs(graphs, labels, channels, names=None, stages=STAGES, title=None, vmin=None,
                      vmax=None, share_scale=True, cmap="viridis", path=None, dpi=100):
    """Mean sleep graph of each sleep stage, one row per model (Figure 3).

    Parameters
    ----------
    graphs : array (N, L, C, C) or (N, C, C), or {name: array}, or a list
        Sleep graphs of the same epochs from each model (e.g. teacher and
        student), from `extract_knowledge`.
    labels : array (N, L) or (N,)
        Stage of each epoch (codes 0 W ... 4 REM, or names); its shape is
        the leading shape of every `graphs` array.
    channels : sequence of str
        The C channel names, in the models' input order.
    names : sequence of str, optional
        Row names when `graphs` is a list (default "model 1", ...).
    stages : sequence of str
        Stage names of codes 0, 1, ... (the columns).
    title : str, optional
    vmin, vmax : float, optional
        Colour limits; default the range of the drawn means.
    share_scale : bool
        One colour scale for all rows (default) or one per row.
    cmap : str
    path : str or path-like, optional
        Also save the figure there (``.png``, ``.pdf`` or ``.svg``).
    dpi : int
        Resolution of a PNG.

    Returns
    -------
    matplotlib.figure.Figure
        One heatmap per (model, stage): the per-stage mean of the C x C
        graphs (rows: source channel i, columns: target channel j), titled
        with the number of epochs; a stage without epochs is an empty panel.

    Raises
    ------
    ValueError
        Graphs that are not square in the last two axes, a channel count
        that is not C, or labels that do not match the graphs.
    """
    channels = [str(c) for c in channels]
    rows = _named_arrays(graphs, names, "graphs")
    matrices, counts = [], None
    for name, g in rows:
        if g.ndim < 3 or g.shape[-1] != g.shape[-2]:
            raise ValueError(f"Sleep graphs of {name or 'the model'} must end with two equal axes (C, C). "
                             f"Received shape {g.shape}.")
        if g.shape[-1] != len(channels):
            raise ValueError(f"The sleep graphs have C={g.shape[-1]} channels but {len(channels)} channel "
                             f"names were given: {channels}.")
        means, counts = stage_means(g, labels, len(stages))
        matrices.append(list(means))
    return finish(_grid([n for n, _ in rows], list(stages), matrices, counts, channels, "channel j",
                        "channel i", title, vmin, vmax, share_scale, cmap, 90, "edge weight $e_{ij}$"),
                  path, dpi)


def plot_temporal_relations(relations, labels, names=None, stages=STAGES, title=None, vmin=None,
                            vmax=None, share_scale=True, cmap="magma", path=None, dpi=100):
    """Mean temporal relation of the sequences of each sleep stage (Figure 4).

    A sequence belongs to the stage most of its epochs have
    (`dominant_stage`); each panel is the mean L x L distance matrix
    `R_ij = ||u_i - u_j||` of those sequences.

    Parameters
    ----------
    relations : array (N, L, L), or {name: array}, or a list
        Temporal relations of the same sequences from each model, from
        `extract_knowledge`.
    labels : array (N, L) or (N,)
        Stage of every epoch, or one stage per sequence.
    names, stages, title, vmin, vmax, share_scale, cmap, path, dpi
        As in `plot_sleep_graphs`. With `share_scale` (default) raw
        distances of models with features of different sizes may differ in
        scale; `extract_knowledge(..., normalize=True)` removes that.

    Returns
    -------
    matplotlib.figure.Figure
        One heatmap per (model, stage), titled with the number of sequences.

    Raises
    ------
    ValueError
        Relations not of shape (N, L, L), or labels of another N or L.
    """
    rows = _named_arrays(relations, names, "relations")
    codes = stage_codes(labels)
    seq_stage = dominant_stage(codes) if codes.ndim == 2 else codes
    matrices, counts, length = [], None, None
    for name, rel in rows:
        if rel.ndim != 3 or rel.shape[1] != rel.shape[2]:
            raise ValueError(f"Temporal relations of {name or 'the model'} must have shape (N, L, L). "
                             f"Received shape {rel.shape}.")
        if codes.ndim == 2 and codes.shape != rel.shape[:2]:
            raise ValueError(f"`labels` of shape {codes.shape} do not match relations of shape {rel.shape} "
                             "(expected (N, L)).")
        if length not in (None, rel.shape[1]):
            raise ValueError(f"All models must relate sequences of one length; got L={length} and {rel.shape[1]}.")
        length = rel.shape[1]
        means, counts = stage_means(rel, seq_stage, len(stages))
        matrices.append(list(means))
    step = max(1, length // 5)
    ticks = [str(i + 1) if i % step == 0 else "" for i in range(length)]
    return finish(_grid([n for n, _ in rows], list(stages), matrices, counts, ticks, "epoch j", "epoch i",
                        title, vmin, vmax, share_scale, cmap, 0, "distance $R_{ij}$"), path, dpi)
