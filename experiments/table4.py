"""Table 4: comparison with baseline methods on the CNN-GCN architecture.

    python experiments/table4.py [--quick] [--seeds 3] [--dataset isruc --data-dir D]
"""

from stmd_keras.runner import TableSpec, run_table
from stmd_keras.runner.rows import comparison_rows, diagnostic_rows

# Paper (accuracy %, macro-F1 %): Table 4; the teacher from Table 2.
PAPER = {
    "Knowledge Distillation": {"isruc": (75.07, 72.35), "mass": (84.75, 75.60)},
    "Decoupled Knowledge Distillation": {"isruc": (82.44, 80.26), "mass": (84.79, 80.32)},
    "Fitnets": {"isruc": (81.88, 80.76), "mass": (84.96, 75.82)},
    "Neuron Selectivity Transfer": {"isruc": (83.31, 80.94), "mass": (85.51, 76.81)},
    "Relational Knowledge Distillation": {"isruc": (76.68, 73.19), "mass": (80.50, 64.19)},
    "Distilling Knowledge from GCN": {"isruc": (82.65, 79.69), "mass": (83.67, 82.48)},
    "Deep Mutual Learning": {"isruc": (81.27, 77.84), "mass": (83.89, 72.64)},
    "Ours (STMD)": {"isruc": (84.26, 81.22), "mass": (85.71, 77.98)},
}

TABLE = TableSpec(
    name="table4",
    title="Table 4: comparison with baseline methods on the CNN-GCN architecture.",
    rows=comparison_rows(PAPER, teacher_paper={"isruc": (85.93, 83.95)}) + diagnostic_rows(),
    architecture="cnn_gcn",
    channel_set="eeg_eog6",
)

if __name__ == "__main__":
    run_table(TABLE)
