"""What an experiment run is made of: data settings and training settings."""

import dataclasses
import hashlib
import json

from stmd_keras.data.datasets import CHANNEL_SETS, get_dataset

REAL_BANDPASS = (0.3, 35.0)
"""Band-pass (Hz) applied to the real datasets by default; the synthetic
nights are generated band-limited and are not filtered."""


def _added(default=None):
    """A field added after results were cached: left out of `settings_key`
    while it has its default, so earlier cache keys stay valid."""
    return dataclasses.field(default=default, metadata={"omit_default_from_key": True})


@dataclasses.dataclass(frozen=True)
class DataSettings:
    """Which data, how it is cut and split.

    Args:
        dataset: "synthetic" (embedded default) or a real dataset name.
        data_dir: folder with the real dataset's files.
        channel_set: key of `CHANNEL_SETS`.
        n_subjects: synthetic subjects (the paper's ISRUC-III has 10); for a
            real dataset, the first `n_subjects` subjects (`None`: all).
        night_epochs: synthetic epochs per night (`None`: the generator's
            ~900-epoch whole nights).
        difficulty: synthetic difficulty (`None`: generator default).
        synthetic_fs: rate the synthetic nights are generated at (200 like
            ISRUC-III's EEG); the pipeline resamples them to `fs`.
        fs: model sampling rate in Hz.
        seq_len: epochs per sequence (L).
        stride: epochs between training sequence starts (`None`: `seq_len`).
        n_val, n_test: subjects held out for validation and test; `None`:
            10 % of the subjects each (at least one), 8/1/1 on ISRUC-III.
            Synthetic default 7/1/2: two test nights, so that every stage
            has enough test epochs (docs/REPRODUCTION.md).
        bandpass: `(low, high)` Hz; `None`: `REAL_BANDPASS` for real data,
            no filter for synthetic data.
        notch: mains notch in Hz; `None`: no notch (the default band-pass
            already removes 50/60 Hz).
        loader_options: `(name, value)` pairs passed to the dataset's loader,
            e.g. `(("scorer", 2), ("trim_last", 30))` for ISRUC-III.
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
    n_test: int = 2
    bandpass: tuple = _added()
    notch: float = _added()
    loader_options: tuple = _added(())

    @property
    def real(self) -> bool:
        return self.dataset != "synthetic"

    @property
    def channels(self):
        """The channel names of `channel_set` as the dataset spells them."""
        return self.resolve_channels()[0]

    def resolve_channels(self):
        """Returns `(channels, set_used)`; a real dataset may fall back to another set."""
        if self.real:
            return get_dataset(self.dataset).channels_for(self.channel_set)
        if self.channel_set not in CHANNEL_SETS:
            raise ValueError(
                f"Unknown channel set {self.channel_set!r}; available: {sorted(CHANNEL_SETS)}"
            )
        return CHANNEL_SETS[self.channel_set], self.channel_set

    @property
    def effective_bandpass(self):
        return self.bandpass if self.bandpass is not None or not self.real else REAL_BANDPASS


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How every model of a row is trained (paper: Adam 1e-4, batch 8).

    Args:
        epochs: maximum training epochs of each phase.
        batch_size: sequences per step.
        learning_rate: Adam learning rate of every optimizer.
        patience: early-stopping patience on validation macro-F1 (`None`: off).
        restore_best: keep the weights of the best validation epoch.
        steps_per_epoch: batches per training epoch (`None`: a full pass).
            The synthetic tables use `SYNTHETIC_STEPS_PER_EPOCH`.
    """

    epochs: int = 25
    batch_size: int = 8
    learning_rate: float = 1e-4
    patience: int = None
    restore_best: bool = True
    steps_per_epoch: int = _added()


SYNTHETIC_STEPS_PER_EPOCH = 16
"""Steps per epoch of the synthetic tables: 25 epochs x 16 batches of 8
sequences (~40 % of the training nights per epoch, a new random part each
epoch), so a table of ten rows x three seeds trains in well under an hour
on two CPU cores (issue 4). Real datasets train full passes, as the paper."""


# --quick: a smoke run of a few minutes on 2 CPU cores for a whole table.
# Six 100-epoch nights (3/1/2), 5 epochs of 1-2 steps; a 10x learning rate.
# Its numbers only say that every row runs.
QUICK_DATA = dict(n_subjects=6, night_epochs=100)
QUICK_TRAIN = dict(epochs=5, learning_rate=1e-3)


def settings_key(*parts):
    """A short stable hash of dataclasses / dicts / scalars (for cache keys)."""
    def plain(p):
        if not dataclasses.is_dataclass(p):
            return p
        d = dataclasses.asdict(p)
        for f in dataclasses.fields(p):
            if f.metadata.get("omit_default_from_key") and d[f.name] == f.default:
                del d[f.name]
        return d

    text = json.dumps([plain(p) for p in parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
