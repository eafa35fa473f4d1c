"""From `DataSettings` to train/validation/test `SequenceSet`s."""

import dataclasses

from stmd_keras.data import synthetic
from stmd_keras.data.preprocess import PreprocessConfig, prepare_all
from stmd_keras.data.sequences import SequenceSet
from stmd_keras.data.splits import paper_split, select

DATA_SEED = 0
"""Synthetic subjects and the subject split are fixed across training seeds,
as the paper's dataset and split are; seeds vary initialisation and order."""


@dataclasses.dataclass
class ExperimentData:
    """Prepared sequences of one split plus what describes it."""

    train: SequenceSet
    val: SequenceSet
    test: SequenceSet
    split: object
    channels: tuple
    fs: float


def load_recordings(settings):
    """Returns the raw `Recording`s of `settings.dataset`."""
    if settings.dataset == "synthetic":
        kwargs = {}
        if settings.night_epochs is not None:
            kwargs["n_epochs"] = settings.night_epochs
        if settings.difficulty is not None:
            kwargs["difficulty"] = settings.difficulty
        return synthetic.generate(
            settings.n_subjects, seed=DATA_SEED, fs=settings.synthetic_fs, channels=settings.channels, **kwargs
        )
    raise NotImplementedError(
        f"Dataset {settings.dataset!r} has no loader yet; only 'synthetic' is "
        "available in this version (real ISRUC-III, Sleep-EDF and MASS loaders "
        "are the next milestone)."
    )


def load_experiment_data(settings):
    """Loads, preprocesses and splits `settings.dataset` into sequence sets."""
    recordings = load_recordings(settings)
    config = PreprocessConfig(fs=settings.fs, channels=settings.channels)
    recordings = prepare_all(recordings, config)
    split = paper_split(
        [r.subject for r in recordings], seed=DATA_SEED, n_val=settings.n_val, n_test=settings.n_test
    )
    # Only training sequences overlap when a stride is set; evaluation always
    # scores each epoch from non-overlapping sequences (plus an end-aligned one).
    sets = {
        part: SequenceSet(
            select(recordings, getattr(split, part)), seq_len=settings.seq_len,
            stride=settings.stride if part == "train" else None,
        )
        for part in ("train", "val", "test")
    }
    return ExperimentData(channels=settings.channels, fs=settings.fs, split=split, **sets)
