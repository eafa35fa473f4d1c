"""Table 5: ablation of STMD on the CNN-RNN architecture (Variants I-IV).

    python experiments/table5.py [--quick] [--seeds 3] [--dataset isruc --data-dir D]

Variant I: Hinton KD, frozen teacher (the paper's numbers equal its KD row).
Variant II: cross-entropy + temporal knowledge, frozen teacher.
Variant III: cross-entropy + temporal + spatial knowledge, frozen teacher.
Variant IV (ours): spatial-temporal knowledge, both models trained.
See docs/REPRODUCTION.md for how the variants are read.
"""

from stmd_keras.runner import TableSpec, run_table
from stmd_keras.runner.rows import baseline_row, stmd_row, student_row

TABLE = TableSpec(
    name="table5",
    title="Table 5: the results of each variant (CNN-RNN).",
    rows=(
        student_row(),
        baseline_row("Knowledge Distillation", {"isruc": (77.47, 73.82), "mass": (81.27, 69.27)},
                     label="Variant I (Knowledge Distillation)"),
        stmd_row("Variant II (temporal, frozen teacher)", {"isruc": (78.10, 75.07), "mass": (83.03, 72.29)},
                 spatial=False, mutual=False),
        stmd_row("Variant III (spatial + temporal, frozen teacher)",
                 {"isruc": (80.52, 77.40), "mass": (83.58, 73.29)}, mutual=False),
        stmd_row("Variant IV: Ours (STMD)", {"isruc": (82.42, 80.06), "mass": (84.22, 73.94)}),
    ),
    architecture="cnn_rnn",
    channel_set="eeg_eog6",
)

if __name__ == "__main__":
    run_table(TABLE)
