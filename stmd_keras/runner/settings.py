"""What an experiment run is made of: data settings and training settings."""

import dataclasses
import hashlib
import json

# The paper does not list its 6-channel EEG/EOG set; see docs/REPRODUCTION.md.
CHANNEL_SETS = {
    "eeg_eog6": ("F4-A1", "C3-A2", "C4-A1", "O2-A1", "LOC-A2", "ROC-A1"),
    "eeg6": ("F3-A2", "C3-A2", "O1-A2", "F4-A1", "C4-A1", "O2-A1"),
    "eeg_eog8": ("F3-A2", "C3-A2", "O1-A2", "F4-A1", "C4-A1", "O2-A1", "LOC-A2", "ROC-A1"),
}


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Which data, how it is cut and split.

    Args:
        dataset: "synthetic" (embedded default) or a real dataset name.
        data_dir: folder with the real dataset's files.
        channel_set: key of `CHANNEL_SETS`.
        n_subjects: synthetic subjects (the paper's ISRUC-III has 10).
        night_epochs: synthetic epochs per night (`None`: generator default).
        difficulty: synthetic difficulty (`None`: generator default).
        synthetic_fs: rate the synthetic nights are generated at (200 like
            ISRUC-III's EEG); the pipeline resamples them to `fs`.
        fs: model sampling rate in Hz.
        seq_len: epochs per sequence (L).
        stride: epochs between training sequence starts (`None`: `seq_len`).
        n_val, n_test: subjects held out for validation and test (8/1/1).
    """

    dataset: str = "synthetic"
    data_dir: str = None
    channel_set: str = "eeg_eog6"
    n_subjects: int = 10
    night_epochs: int = None
    difficulty: float = None
    synthetic_fs: int = 100
    fs: int = 100
    seq_len: int = 20
    stride: int = None
    n_val: int = 1
    n_test: int = 1

    @property
    def channels(self):
        if self.channel_set not in CHANNEL_SETS:
            raise ValueError(
                f"Unknown channel set {self.channel_set!r}; available: {sorted(CHANNEL_SETS)}"
            )
        return CHANNEL_SETS[self.channel_set]


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How every model of a row is trained (paper: Adam 1e-4, batch 8).

    Args:
        epochs: maximum training epochs of each phase.
        batch_size: sequences per step.
        learning_rate: Adam learning rate of every optimizer.
        patience: early-stopping patience on validation macro-F1 (`None`: off).
        restore_best: keep the weights of the best validation epoch.
    """

    epochs: int = 25
    batch_size: int = 8
    learning_rate: float = 1e-4
    patience: int = None
    restore_best: bool = True


# --quick: a smoke run of a few minutes on 2 CPU cores. Fewer, shorter nights
# and epochs; a 10x learning rate so that ~60 steps still learn something.
QUICK_DATA = dict(n_subjects=8, night_epochs=300)
QUICK_TRAIN = dict(epochs=5, learning_rate=1e-3)


def settings_key(*parts):
    """A short stable hash of dataclasses / dicts / scalars (for cache keys)."""
    def plain(p):
        return dataclasses.asdict(p) if dataclasses.is_dataclass(p) else p

    text = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
