"""Table 7: comparison with baseline methods on the 6-channel EEG of ISRUC-III.

    python experiments/table7.py [--quick] [--seeds 3] [--dataset isruc --data-dir D]

The paper does not say which architecture Table 7 uses (Table 8 says
CNN-GCN); we use CNN-RNN, the paper's main pair (docs/REPRODUCTION.md).
"""

from stmd_keras.runner import TableSpec, run_table
from stmd_keras.runner.rows import comparison_rows, diagnostic_rows

PAPER = {
    "Knowledge Distillation": {"isruc": (84.84, 82.15)},
    "Decoupled Knowledge Distillation": {"isruc": (84.90, 82.11)},
    "Fitnets": {"isruc": (82.32, 80.67)},
    "Neuron Selectivity Transfer": {"isruc": (83.32, 80.91)},
    "Relational Knowledge Distillation": {"isruc": (85.26, 82.09)},
    "Distilling Knowledge from GCN": {"isruc": (84.35, 81.96)},
    "Deep Mutual Learning": {"isruc": (84.18, 81.88)},
    "Ours (STMD)": {"isruc": (86.00, 82.36)},
}

TABLE = TableSpec(
    name="table7",
    title="Table 7: comparison with baseline methods on 6-channel EEG (CNN-RNN).",
    rows=comparison_rows(PAPER) + diagnostic_rows(),
    architecture="cnn_rnn",
    channel_set="eeg6",
)

if __name__ == "__main__":
    run_table(TABLE)
