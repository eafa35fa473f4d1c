"""The rows the paper's tables share: baselines, STMD and its variants.

A table script only says which rows it has and the paper's numbers for them:

>>> rows = comparison_rows(PAPER, teacher_paper={"isruc": (83.47, 80.50)})

Paper values are `{dataset: (accuracy %, macro-F1 %)}`; "isruc" is compared
with the synthetic default too (see `runner.table.PAPER_COLUMN`).
"""

from stmd_keras.runner.table import Row

STMD = dict(alpha=1.0, beta=5.0, gamma=1.0, spatial=True, temporal=True, mutual=True)
"""The paper's method: Eqs. 12-13 with alpha:beta:gamma = 1:5:1, both models trained."""

BASELINES = (
    ("Knowledge Distillation", "kd"),
    ("Decoupled Knowledge Distillation", "dkd"),
    ("Fitnets", "fitnets"),
    ("Neuron Selectivity Transfer", "nst"),
    ("Relational Knowledge Distillation", "rkd"),
    ("Distilling Knowledge from GCN", "lsp"),
    ("Deep Mutual Learning", "dml"),
)
"""(name in the paper's tables, `stmd_keras.distill.METHODS` key), in table order."""

OURS = "Ours (STMD)"


def teacher_row(paper=None):
    return Row("Teacher", "teacher", paper=paper or {})


def student_row():
    """The student trained alone: not in the paper's tables, the floor every method must beat."""
    return Row("Student (no KD)", "student")


def baseline_row(name, paper=None, label=None, **options):
    """The baseline called `name` in the paper, run by `MutualDistiller(method=...)`.

    `label` prints the row under another name (e.g. "Variant I"); `options`
    are the method's keyword arguments.
    """
    method = dict(BASELINES)[name]
    params = dict(method=method)
    if options:
        params["method_options"] = options
    return Row(label or name, "distill", params, paper=paper or {})


def stmd_row(name=OURS, paper=None, **overrides):
    """STMD with `overrides` of `STMD` (weights, switches, distance, ...)."""
    return Row(name, "distill", {**STMD, **overrides}, paper=paper or {})


def comparison_rows(paper, teacher_paper=None):
    """Teacher, student alone, the seven baselines and STMD (Tables 3, 4, 7, 8).

    Args:
        paper: `{row name: {dataset: (acc, mf1)}}` for the baselines and
            `OURS`; missing names have no paper values.
        teacher_paper: the teacher's paper values (Table 2).
    """
    return (
        teacher_row(teacher_paper),
        student_row(),
        *(baseline_row(name, paper.get(name)) for name, _ in BASELINES),
        stmd_row(paper=paper.get(OURS)),
    )


def diagnostic_rows():
    """Rows not in the paper that explain its comparison on our data (Tables 3, 4, 7, 8).

    STMD with the RKD-style normalised temporal relation (the other reading
    of "L2 normalization as R_t"), and DML with the original CE:KL = 1:1
    instead of Table 15's 0.1:0.9, under which the pre-trained teacher
    collapses towards the untrained student (docs/REPRODUCTION.md).
    """
    return (
        stmd_row("Ours (STMD) + normalised R_t", temporal_normalize=True),
        baseline_row("Deep Mutual Learning", label="Deep Mutual Learning, CE:KL 1:1",
                     ce_weight=1.0, loss_weight=1.0),
    )
