"""Table 8: comparison with baseline methods on 6-channel EEG + 2-channel EOG, CNN-GCN.

    python experiments/table8.py [--quick] [--seeds 3] [--dataset isruc --data-dir D]
"""

from stmd_keras.runner import TableSpec, run_table
from stmd_keras.runner.rows import comparison_rows, diagnostic_rows

PAPER = {
    "Knowledge Distillation": {"isruc": (73.80, 69.81)},
    "Decoupled Knowledge Distillation": {"isruc": (77.89, 74.15)},
    "Fitnets": {"isruc": (80.53, 78.09)},
    "Neuron Selectivity Transfer": {"isruc": (80.17, 77.51)},
    "Relational Knowledge Distillation": {"isruc": (71.52, 67.38)},
    "Distilling Knowledge from GCN": {"isruc": (82.40, 80.31)},
    "Deep Mutual Learning": {"isruc": (82.41, 78.64)},
    "Ours (STMD)": {"isruc": (84.51, 82.38)},
}

TABLE = TableSpec(
    name="table8",
    title="Table 8: comparison with baseline methods on 6-channel EEG and 2-channel EOG (CNN-GCN).",
    rows=comparison_rows(PAPER) + diagnostic_rows(),
    architecture="cnn_gcn",
    channel_set="eeg_eog8",
)

if __name__ == "__main__":
    run_table(TABLE)
