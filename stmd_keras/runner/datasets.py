"""From `DataSettings` to train/validation/test `SequenceSet`s."""

import dataclasses

from stmd_keras.data import synthetic
from stmd_keras.data.datasets import get_dataset
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


def preprocess_config(settings):
    """The `PreprocessConfig` of `settings` (channels in the dataset's names)."""
    return PreprocessConfig(
        fs=settings.fs, channels=settings.channels, bandpass=settings.effective_bandpass,
        notch=settings.notch,
    )


def load_recordings(settings, cache_dir=None):
    """Returns the prepared `Recording`s of `settings.dataset`.

    Real datasets go through the per-recording HDF5 cache in `cache_dir`
    (`stmd_keras.data.cache`), so a second run reads memory-mapped arrays
    instead of the EDF files; without `cache_dir` they are prepared in memory.
    """
    config = preprocess_config(settings)
    if not settings.real:
        kwargs = {}
        if settings.night_epochs is not None:
            kwargs["n_epochs"] = settings.night_epochs
        if settings.difficulty is not None:
            kwargs["difficulty"] = settings.difficulty
        recordings = synthetic.generate(
            settings.n_subjects, seed=DATA_SEED, fs=settings.synthetic_fs, channels=settings.channels, **kwargs
        )
        return prepare_all(recordings, config)
    if not settings.data_dir:
        raise ValueError(
            f"--dataset {settings.dataset} needs --data-dir, the folder with its files. "
            + get_dataset(settings.dataset).obtain
        )
    options = dict(settings.loader_options)
    if cache_dir is None:
        ds = get_dataset(settings.dataset)
        return prepare_all(ds.load(settings.data_dir, config.channels, settings.n_subjects, **options), config)
    from stmd_keras.data.cache import prepare_dataset

    return prepare_dataset(settings.dataset, settings.data_dir, cache_dir, config,
                           subjects=settings.n_subjects, **options)


def _held_out(n, n_subjects):
    return n if n is not None else max(1, round(0.1 * n_subjects))


def load_experiment_data(settings, cache_dir=None):
    """Loads, preprocesses and splits `settings.dataset` into sequence sets."""
    recordings = load_recordings(settings, cache_dir)
    subjects = sorted({r.subject for r in recordings})
    split = paper_split(
        [r.subject for r in recordings], seed=DATA_SEED,
        n_val=_held_out(settings.n_val, len(subjects)), n_test=_held_out(settings.n_test, len(subjects)),
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
