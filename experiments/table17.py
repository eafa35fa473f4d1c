"""Table 17: the sleep-graph distance: KL, MMD, Wasserstein (CNN-GCN).

    python experiments/table17.py [--quick] [--seeds 3] [--dataset isruc --data-dir D]

The paper keeps beta = 5 for every distance; so do we (their scales differ,
docs/REPRODUCTION.md).
"""

from stmd_keras.runner import TableSpec, run_table
from stmd_keras.runner.rows import stmd_row

TABLE = TableSpec(
    name="table17",
    title="Table 17: results of different measurement functions for the sleep graph (CNN-GCN).",
    rows=(
        stmd_row("KL Divergence", {"isruc": (84.26, 81.22)}),
        stmd_row("MMD", {"isruc": (84.50, 82.10)}, distance="mmd"),
        stmd_row("Wasserstein distance", {"isruc": (85.20, 82.82)}, distance="wasserstein"),
    ),
    architecture="cnn_gcn",
    channel_set="eeg_eog6",
)

if __name__ == "__main__":
    run_table(TABLE)
