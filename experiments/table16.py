"""Table 16: sensitivity to the loss weights alpha:beta:gamma (CNN-GCN).

    python experiments/table16.py [--quick] [--seeds 3] [--dataset isruc --data-dir D]
"""

from stmd_keras.runner import TableSpec, run_table
from stmd_keras.runner.rows import stmd_row

PAPER = {(1, 1, 1): (84.25, 81.93), (1, 3, 1): (84.69, 81.96), (1, 5, 1): (84.26, 81.22),
         (1, 7, 1): (84.07, 81.60)}

TABLE = TableSpec(
    name="table16",
    title="Table 16: results under different weight settings alpha:beta:gamma (CNN-GCN).",
    rows=tuple(
        stmd_row(f"{a}:{b}:{g}", {"isruc": paper}, alpha=float(a), beta=float(b), gamma=float(g))
        for (a, b, g), paper in PAPER.items()
    ),
    architecture="cnn_gcn",
    channel_set="eeg_eog6",
)

if __name__ == "__main__":
    run_table(TABLE)
