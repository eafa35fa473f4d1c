import numpy as np
import pytest

from stmd_keras.data import DataError, Recording, Split, kfold_splits, paper_split, select

ISRUC = [f"subject{i}" for i in range(1, 11)]


def test_paper_split_isruc_8_1_1_disjoint_and_deterministic():
    split = paper_split(ISRUC, seed=3)
    assert (len(split.train), len(split.val), len(split.test)) == (8, 1, 1)
    assert set(split.train) | set(split.val) | set(split.test) == set(ISRUC)
    assert not (set(split.train) & set(split.val) or set(split.train) & set(split.test)
                or set(split.val) & set(split.test))
    assert paper_split(list(reversed(ISRUC)) + ISRUC, seed=3) == split  # order/duplicates ignored
    assert len({paper_split(ISRUC, seed=s).test for s in range(10)}) > 1  # the seed matters
    assert isinstance(split.train, tuple)


def test_paper_split_follows_the_seeded_permutation():
    subjects = ["a", "b", "c", "d", "e"]
    perm = [subjects[i] for i in np.random.default_rng(7).permutation(5)]
    split = paper_split(subjects, seed=7, n_val=2, n_test=1)
    assert split.test == (perm[0],)
    assert split.val == tuple(sorted(perm[1:3]))
    assert split.train == tuple(sorted(perm[3:]))


def test_paper_split_mass_style():
    mass = [f"01-03-{i:04d}" for i in range(1, 63)]
    split = paper_split(mass, seed=0, n_val=6, n_test=6)
    assert (len(split.train), len(split.val), len(split.test)) == (50, 6, 6)
    assert set(split.train + split.val + split.test) == set(mass)


def test_paper_split_too_few_subjects():
    with pytest.raises(ValueError, match=r"2 subject\(s\).*n_val=1, n_test=1"):
        paper_split(["a", "b"])
    with pytest.raises(ValueError, match="one string"):
        paper_split("abc")
    with pytest.raises(ValueError, match="n_val=-1"):
        paper_split(ISRUC, n_val=-1)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_kfold_each_subject_tested_exactly_once(k):
    folds = kfold_splits(ISRUC, k=k, seed=1, n_val=1)
    assert len(folds) == k
    tested = [s for f in folds for s in f.test]
    assert sorted(tested) == sorted(ISRUC)
    sizes = sorted(len(f.test) for f in folds)
    assert sizes[-1] - sizes[0] <= 1
    for f in folds:
        assert len(f.val) == 1
        assert set(f.train) | set(f.val) | set(f.test) == set(ISRUC)
        assert not (set(f.train) & set(f.val) or set(f.train) & set(f.test)
                    or set(f.val) & set(f.test))
    assert kfold_splits(ISRUC, k=k, seed=1) == folds
    assert kfold_splits(ISRUC, k=k, seed=2) != folds


def test_kfold_too_few_subjects():
    with pytest.raises(ValueError, match="k=4"):
        kfold_splits(["a", "b", "c"], k=4)
    with pytest.raises(ValueError, match="n_val=2"):
        kfold_splits(["a", "b", "c"], k=3, n_val=2)
    with pytest.raises(ValueError, match="k=1"):
        kfold_splits(ISRUC, k=1)


def test_split_rejects_overlap():
    with pytest.raises(ValueError, match=r"\['b'\].*train and test"):
        Split(train=("a", "b"), val=("c",), test=("b",))
    assert Split(["a"], ["b"], ["c"]).to_dict() == {"train": ["a"], "val": ["b"], "test": ["c"]}


def _rec(subject, night):
    return Recording(subject, np.zeros((1, 30)), 1.0, ("C3",), np.array([0]), source=f"{subject}-{night}")


def test_select_keeps_recording_order_and_all_nights():
    recs = [_rec("a", 1), _rec("b", 1), _rec("a", 2), _rec("c", 1)]
    out = select(recs, ("c", "a"))
    assert [r.source for r in out] == ["a-1", "a-2", "c-1"]
    assert [r.source for r in select(recs, "b")] == ["b-1"]
    with pytest.raises(DataError, match=r"\['z'\]"):
        select(recs, ["a", "z"])
