"""Subject-wise train/validation/test splits (no subject is in two parts)."""

from __future__ import annotations

import dataclasses

import numpy as np

from stmd_keras.data.recording import DataError


@dataclasses.dataclass(frozen=True)
class Split:
    """Subject ids of one train/validation/test partition.

    Args:
        train, val, test: tuples of subject ids; pairwise disjoint.
    """

    train: tuple
    val: tuple
    test: tuple

    def __post_init__(self):
        for name in ("train", "val", "test"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            both = set(getattr(self, a)) & set(getattr(self, b))
            if both:
                raise ValueError(f"Split: subject(s) {sorted(both, key=str)} are in both {a} and {b}.")

    def to_dict(self) -> dict:
        """JSON-friendly `{"train": [...], "val": [...], "test": [...]}`."""
        return {"train": list(self.train), "val": list(self.val), "test": list(self.test)}


def _unique(subjects) -> list:
    if isinstance(subjects, str):
        raise ValueError(
            f"`subjects` must be a collection of subject ids, not one string. Received: {subjects!r}"
        )
    subjects = set(subjects)
    try:
        return sorted(subjects)
    except TypeError:  # mixed id types: any fixed order will do
        return sorted(subjects, key=lambda s: (type(s).__name__, str(s)))


def _count(name, value, minimum=0):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _ordered(ids, order) -> tuple:
    return tuple(sorted(ids, key=order.index))


def paper_split(subjects, seed=0, n_val=1, n_test=1) -> Split:
    """One random subject-wise split, as in the paper's hold-out protocol.

    ISRUC-III's 10 subjects give 8/1/1 with the defaults; MASS-SS3's 62
    subjects give 50/6/6 with `n_val=6, n_test=6`.

    Parameters
    ----------
    subjects : iterable of subject ids (duplicates are ignored)
    seed : int
        The same seed and subjects always give the same split.
    n_val, n_test : int
        Subjects in the validation and test parts; the rest train.

    Returns
    -------
    Split
        Each part sorted in the subjects' sorted order.
    """
    order = _unique(subjects)
    n_val, n_test = _count("n_val", n_val), _count("n_test", n_test)
    if len(order) < n_val + n_test + 1:
        raise ValueError(
            f"paper_split: {len(order)} subject(s) cannot give n_val={n_val}, "
            f"n_test={n_test} and at least one training subject; pass more "
            "subjects or smaller n_val/n_test."
        )
    perm = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
    return Split(
        train=_ordered(perm[n_test + n_val:], order),
        val=_ordered(perm[n_test:n_test + n_val], order),
        test=_ordered(perm[:n_test], order),
    )


def kfold_splits(subjects, k, seed=0, n_val=1) -> list:
    """Leave-subjects-out cross-validation folds.

    Subjects are shuffled once (by `seed`) and cut into `k` test folds of
    near-equal size, so each subject is tested exactly once. Each fold's
    `n_val` validation subjects are drawn from its remaining subjects.

    Parameters
    ----------
    subjects : iterable of subject ids (duplicates are ignored)
    k : int
        Number of folds, 2 <= k <= number of subjects.
    seed : int
    n_val : int
        Validation subjects per fold.

    Returns
    -------
    list of Split, one per fold.
    """
    order = _unique(subjects)
    k, n_val = _count("k", k, minimum=2), _count("n_val", n_val)
    n = len(order)
    largest = -(-n // k) if k <= n else 0
    if k > n or n - largest < n_val + 1:
        raise ValueError(
            f"kfold_splits: {n} subject(s) are too few for k={k} folds with "
            f"n_val={n_val} and at least one training subject per fold; use "
            "fewer folds, a smaller n_val, or more subjects."
        )
    perm = [order[i] for i in np.random.default_rng(seed).permutation(n)]
    splits = []
    for fold, test_idx in enumerate(np.array_split(np.arange(n), k)):
        test = [perm[i] for i in test_idx]
        rest = [s for s in order if s not in test]
        pick = np.random.default_rng([seed, fold]).permutation(len(rest))[:n_val]
        val = [rest[i] for i in pick]
        train = [s for s in rest if s not in val]
        splits.append(Split(_ordered(train, order), _ordered(val, order), _ordered(test, order)))
    return splits


def select(recordings, subjects) -> list:
    """Returns the recordings of `subjects`, in the recordings' order.

    Raises `DataError` naming any requested subject with no recording.
    """
    wanted = {subjects} if isinstance(subjects, str) else set(subjects)
    recordings = list(recordings)
    found = {r.subject for r in recordings}
    missing = wanted - found
    if missing:
        raise DataError(
            f"select: no recording for subject(s) {sorted(missing, key=str)}; the "
            f"recordings have subjects {sorted(found, key=str)}."
        )
    return [r for r in recordings if r.subject in wanted]
