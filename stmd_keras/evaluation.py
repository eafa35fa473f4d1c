"""Sleep-staging metrics: accuracy, macro-F1, Cohen's kappa, per-class F1.

`evaluate` returns plain Python numbers and lists only, so its result can be
written with `json.dump` as is; an undefined value (kappa of a subject whose
truth and prediction are one single stage) is `None`.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn import metrics as skm

from stmd_keras.data.recording import STAGES

LABELS = list(range(len(STAGES)))
_SUMMARY = ("accuracy", "macro_f1", "kappa")


def _labels(name, y):
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == len(STAGES) and np.issubdtype(y.dtype, np.floating):
        y = y.argmax(axis=1)  # probabilities / hypnodensity -> hypnogram
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(
            f"`{name}` must be 1-D integer stage labels (0 W ... 4 REM) or (N, 5) "
            f"probabilities. Received dtype {y.dtype}, shape {y.shape}."
        )
    if y.size and (y.min() < 0 or y.max() >= len(STAGES)):
        raise ValueError(f"`{name}` has stage codes outside 0..4: {sorted(set(y.tolist()))[:10]}.")
    return y.astype(np.int64)


def _float(x):
    x = float(x)
    return None if math.isnan(x) else x


def _summary(y_true, y_pred) -> dict:
    present = sorted(set(np.unique(y_true).tolist()) | set(np.unique(y_pred).tolist()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the single-stage case is reported as None
        kappa = skm.cohen_kappa_score(y_true, y_pred, labels=LABELS, replace_undefined_by=np.nan)
    return {
        "n_epochs": int(y_true.size),
        "accuracy": float(np.mean(y_true == y_pred)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0)),
        "kappa": _float(kappa),
    }


def evaluate(y_true, y_pred, subjects=None) -> dict:
    """Scores predicted stages against the truth.

    Parameters
    ----------
    y_true : array (N,)
        True stages, 0 W, 1 N1, 2 N2, 3 N3, 4 REM.
    y_pred : array (N,) or (N, 5)
        Predicted stages, or per-stage probabilities (arg-maxed).
    subjects : array (N,), optional
        Subject id of each epoch; adds per-subject scores and their mean/std.

    Returns
    -------
    dict
        ``n_epochs``, ``accuracy``, ``macro_f1``, ``kappa`` over all epochs
        pooled; ``per_class_f1`` ``{"W": ..., ..., "REM": ...}`` (a stage absent
        from both truth and prediction scores 0); ``confusion_matrix`` 5x5
        nested list, rows true and columns predicted, in `STAGES` order. With
        `subjects`: ``per_subject`` ``{id: {n_epochs, accuracy, macro_f1,
        kappa}}`` and ``subject_mean`` / ``subject_std`` (population std) of
        the three scores across subjects.

    Notes
    -----
    ``macro_f1`` averages the F1 of the stages present in the truth or the
    prediction, so a subject without N3 is not penalised for it;
    ``per_class_f1`` always lists all five stages.
    """
    y_true, y_pred = _labels("y_true", y_true), _labels("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"`y_true` and `y_pred` must have the same length. Received {y_true.size} "
            f"and {y_pred.size} epochs."
        )
    if y_true.size == 0:
        raise ValueError("evaluate: no epochs to score (empty `y_true`).")
    out = _summary(y_true, y_pred)
    f1 = skm.f1_score(y_true, y_pred, labels=LABELS, average=None, zero_division=0)
    out["per_class_f1"] = {stage: float(v) for stage, v in zip(STAGES, f1)}
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=LABELS).tolist()
    if subjects is None:
        return out

    subjects = np.asarray(subjects)
    if subjects.shape != y_true.shape:
        raise ValueError(
            f"`subjects` must give one id per epoch: expected shape {y_true.shape}, "
            f"received {subjects.shape}."
        )
    per_subject = {}
    for s in np.unique(subjects):
        m = subjects == s
        key = s.item() if isinstance(s, np.generic) else s
        per_subject[key if isinstance(key, str) else str(key)] = _summary(y_true[m], y_pred[m])
    out["per_subject"] = per_subject
    out["subject_mean"], out["subject_std"] = {}, {}
    for name in _SUMMARY:
        values = np.array([np.nan if v[name] is None else v[name] for v in per_subject.values()])
        ok = values[~np.isnan(values)]
        out["subject_mean"][name] = float(ok.mean()) if ok.size else None
        out["subject_std"][name] = float(ok.std()) if ok.size else None
    return out


def _fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def format_report(metrics: dict) -> str:
    """Returns a short human-readable summary of an `evaluate` result."""
    lines = [
        f"epochs {metrics['n_epochs']} | accuracy {_fmt(metrics['accuracy'])} | "
        f"macro-F1 {_fmt(metrics['macro_f1'])} | kappa {_fmt(metrics['kappa'])}",
        "F1 per stage: " + "  ".join(f"{s} {_fmt(v)}" for s, v in metrics["per_class_f1"].items()),
        "confusion (rows true, columns predicted):",
        "      " + "".join(f"{s:>7}" for s in STAGES),
    ]
    for stage, row in zip(STAGES, metrics["confusion_matrix"]):
        lines.append(f"{stage:>5} " + "".join(f"{v:>7d}" for v in row))
    if "per_subject" in metrics:
        mean, std = metrics["subject_mean"], metrics["subject_std"]
        lines.append(
            f"per subject (n={len(metrics['per_subject'])}): "
            + " | ".join(f"{name} {_fmt(mean[name])} ± {_fmt(std[name])}" for name in _SUMMARY)
        )
    return "\n".join(lines)
