"""Figures of the paper's visual analysis (Figures 3-7), hypnograms and training curves.

Every `plot_*` function returns a `matplotlib.figure.Figure` (built without
pyplot, so it works without a display and shows inline in Jupyter) and,
with `path=`, also writes it as PNG, PDF or SVG (by extension, atomically).
`stmd plot ...` draws the same figures from saved files.

| paper | function |
|---|---|
| Figure 3, sleep graphs per stage | `plot_sleep_graphs` |
| Figure 4, temporal relations per stage | `plot_temporal_relations` |
| Figures 5-7, confusion matrices | `plot_confusion` |
| hypnogram / hypnodensity of a night | `plot_hypnogram` |
| loss terms per epoch | `plot_training_curves` |
"""

from stmd_keras.viz._common import new_figure, save_figure
from stmd_keras.viz.hypnogram import PLOT_ORDER, STAGE_COLORS, plot_hypnogram, read_hypnogram, read_probabilities
from stmd_keras.viz.knowledge import (
    dominant_stage,
    extract_knowledge,
    plot_sleep_graphs,
    plot_temporal_relations,
    stage_means,
)
from stmd_keras.viz.results import (
    LOSS_TERMS,
    confusion_of,
    history_columns,
    load_runs,
    plot_confusion,
    plot_training_curves,
)

__all__ = [
    "LOSS_TERMS",
    "PLOT_ORDER",
    "STAGE_COLORS",
    "confusion_of",
    "dominant_stage",
    "extract_knowledge",
    "history_columns",
    "load_runs",
    "new_figure",
    "plot_confusion",
    "plot_hypnogram",
    "plot_sleep_graphs",
    "plot_temporal_relations",
    "plot_training_curves",
    "read_hypnogram",
    "read_probabilities",
    "save_figure",
    "stage_means",
]
