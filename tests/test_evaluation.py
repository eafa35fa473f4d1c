import json

import numpy as np
import pytest

from stmd_keras.evaluation import evaluate, format_report


def kappa_by_formula(t, p, k=5):
    cm = np.zeros((k, k))
    np.add.at(cm, (t, p), 1)
    n = cm.sum()
    po = np.trace(cm) / n
    pe = (cm.sum(0) * cm.sum(1)).sum() / n**2
    return (po - pe) / (1 - pe)


def test_two_class_example_by_hand():
    # W/N2 only: confusion [[3, 1], [2, 4]] (rows true).
    y_true = np.array([0, 0, 0, 0, 2, 2, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 0, 2, 0, 0, 2, 2, 2, 2])
    m = evaluate(y_true, y_pred)
    assert m["accuracy"] == pytest.approx(7 / 10)
    # po = 0.7, pe = (4*5 + 6*5) / 100 = 0.5 -> kappa = 0.4
    assert m["kappa"] == pytest.approx(0.4)
    assert m["kappa"] == pytest.approx(kappa_by_formula(y_true, y_pred))
    f1_w = 2 * 3 / (2 * 3 + 1 + 2)   # tp 3, fn 1, fp 2
    f1_n2 = 2 * 4 / (2 * 4 + 2 + 1)  # tp 4, fn 2, fp 1
    assert m["per_class_f1"] == pytest.approx({"W": f1_w, "N1": 0.0, "N2": f1_n2, "N3": 0.0, "REM": 0.0})
    assert list(m["per_class_f1"]) == ["W", "N1", "N2", "N3", "REM"]
    # Absent stages (N1, N3, REM) do not dilute macro-F1.
    assert m["macro_f1"] == pytest.approx((f1_w + f1_n2) / 2)
    cm = m["confusion_matrix"]
    assert cm[0] == [3, 0, 1, 0, 0] and cm[2] == [2, 0, 4, 0, 0]
    assert sum(map(sum, cm)) == 10 and len(cm) == 5
    assert m["n_epochs"] == 10
    assert "per_subject" not in m


def test_five_class_against_formula_and_probabilities_input():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, 200)
    y_pred = np.where(rng.random(200) < 0.6, y_true, rng.integers(0, 5, 200))
    m = evaluate(y_true, y_pred)
    assert m["kappa"] == pytest.approx(kappa_by_formula(y_true, y_pred))
    assert m["accuracy"] == pytest.approx(np.mean(y_true == y_pred))
    cm = np.array(m["confusion_matrix"])
    assert cm[1, 3] == np.sum((y_true == 1) & (y_pred == 3))
    tp = np.diag(cm)
    f1 = 2 * tp / (cm.sum(0) + cm.sum(1))
    assert list(m["per_class_f1"].values()) == pytest.approx(f1.tolist())
    assert m["macro_f1"] == pytest.approx(f1.mean())
    probs = np.eye(5)[y_pred] * 0.9 + 0.02
    assert evaluate(y_true, probs) == m


def test_per_subject_scores_and_json():
    y_true = np.array([0, 0, 2, 2, 1, 1, 4, 4])
    y_pred = np.array([0, 2, 2, 2, 1, 1, 4, 4])
    subjects = np.array(["a", "a", "a", "a", "b", "b", "b", "b"])
    m = evaluate(y_true, y_pred, subjects=subjects)
    assert set(m["per_subject"]) == {"a", "b"}
    a, b = m["per_subject"]["a"], m["per_subject"]["b"]
    assert a["accuracy"] == pytest.approx(0.75) and b["accuracy"] == 1.0
    assert a["kappa"] == pytest.approx(kappa_by_formula(y_true[:4], y_pred[:4]))  # = 0.5
    assert a["kappa"] == pytest.approx(0.5) and b["kappa"] == pytest.approx(1.0)
    assert m["subject_mean"]["accuracy"] == pytest.approx(0.875)
    assert m["subject_std"]["accuracy"] == pytest.approx(0.125)
    assert m["subject_mean"]["kappa"] == pytest.approx(0.75)
    text = json.dumps(m, allow_nan=False)  # plain, strict JSON
    assert json.loads(text) == m


def test_single_stage_subject_kappa_is_none():
    m = evaluate([2, 2, 2, 0], [2, 2, 2, 0], subjects=[1, 1, 1, 2])
    assert m["per_subject"]["1"]["kappa"] is None
    assert m["per_subject"]["1"]["accuracy"] == 1.0
    assert m["subject_mean"]["kappa"] is None  # subject 2 is single-stage too
    assert m["kappa"] == pytest.approx(1.0)
    json.dumps(m, allow_nan=False)


def test_input_errors():
    with pytest.raises(ValueError, match="same length"):
        evaluate([0, 1], [0])
    with pytest.raises(ValueError, match="outside 0..4"):
        evaluate([0, 5], [0, 1])
    with pytest.raises(ValueError, match="integer"):
        evaluate([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="one id per epoch"):
        evaluate([0, 1], [0, 1], subjects=["a"])
    with pytest.raises(ValueError, match="empty"):
        evaluate([], [])


def test_format_report():
    m = evaluate([0, 0, 2, 2, 4], [0, 2, 2, 2, 4], subjects=["a", "a", "b", "b", "b"])
    text = format_report(m)
    assert "accuracy 0.800" in text
    assert f"kappa {m['kappa']:.3f}" in text
    assert "REM 1.000" in text
    assert "per subject (n=2)" in text
    assert text.splitlines()[4].split() == ["W", "1", "0", "1", "0", "0"]
