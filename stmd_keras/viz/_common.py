"""What every figure shares: stage labels in, a saved `Figure` out."""

from __future__ import annotations

import os

import numpy as np

from stmd_keras.data.recording import STAGES
from stmd_keras.io import atomic_path

FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}
"""File extension -> the format `save_figure` writes."""

# Dates in the file metadata would make two saves of one figure differ.
_METADATA = {"png": {}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}


def new_figure(figsize):
    """A `Figure` on the Agg canvas, without pyplot: no display needed, no global state."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, layout="constrained")


def save_figure(fig, path, dpi=100):
    """Saves `fig` to `path` atomically, in the format its extension names.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or path-like
        Ends with ``.png``, ``.pdf`` or ``.svg``.
    dpi : int
        Resolution of a PNG.

    Returns
    -------
    str
        `path`.
    """
    path = os.fspath(path)
    fmt = FORMATS.get(os.path.splitext(path)[1].lower())
    if fmt is None:
        raise ValueError(f"Cannot tell the figure format from {path!r}: use a file name ending with "
                         f"{', '.join(FORMATS)}.")
    import matplotlib

    # A fixed salt makes SVG element ids (random by default) repeatable.
    with atomic_path(path) as tmp, matplotlib.rc_context({"svg.hashsalt": "stmd_keras"}):
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
    return path


def finish(fig, path, dpi=100):
    """Saves `fig` when `path` is given; returns `fig`."""
    if path is not None:
        save_figure(fig, path, dpi=dpi)
    return fig


def stage_codes(labels, name="labels", stages=STAGES) -> np.ndarray:
    """Integer stage codes (0 W ... 4 REM) from codes or stage names, any shape."""
    arr = np.asarray(labels)
    if arr.dtype.kind in "USO":
        lookup = {s: i for i, s in enumerate(stages)}
        unknown = sorted({str(v) for v in arr.ravel()} - set(lookup))
        if unknown:
            raise ValueError(f"`{name}` has stage names {unknown[:10]} not among {list(stages)}.")
        return np.array([lookup[str(v)] for v in arr.ravel()], np.int64).reshape(arr.shape)
    if arr.dtype.kind not in "iuf" or (arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0)):
        raise ValueError(f"`{name}` must be integer stage codes (0 W ... {len(stages) - 1} "
                         f"{stages[-1]}) or stage names. Received dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= len(stages)):
        raise ValueError(f"`{name}` has stage codes outside 0..{len(stages) - 1}: "
                         f"{sorted(set(arr.ravel().tolist()))[:10]}.")
    return arr


def named(items, what, default_names=None) -> list:
    """`[(name, value)]` from one value, a mapping {name: value} or a sequence of values."""
    from collections.abc import Mapping

    if isinstance(items, Mapping):
        pairs = [(str(k), v) for k, v in items.items()]
    elif isinstance(items, (list, tuple)):
        names = list(default_names or [])
        if len(names) not in (0, len(items)):
            raise ValueError(f"{len(names)} names given for {len(items)} {what}: {names}.")
        names = names or [f"{what} {i + 1}" for i in range(len(items))]
        pairs = list(zip(names, items))
    else:
        pairs = [((default_names or [""])[0], items)]
    if not pairs:
        raise ValueError(f"No {what} to plot.")
    return pairs
