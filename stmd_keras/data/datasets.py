"""One interface over the real datasets: list recordings, load one, name channels.

Each dataset is a small `Dataset` object in `DATASETS`. The experiment runner,
the cache (`stmd data prepare`) and the CLI only talk to this interface:

>>> ds = get_dataset("isruc")
>>> keys = ds.recordings("ISRUC_S3/")                 # ["1", "2", ...]
>>> channels = ds.channels_for("eeg_eog6")            # names in this dataset
>>> rec = ds.load_recording("ISRUC_S3/", keys[0], channels)

A recording key names one night (ISRUC subject number, Sleep-EDF "SC4001",
MASS "MASS3-0001"); `subject_of(key)` groups nights of one person, so splits
stay subject-wise (Sleep-EDF has two nights for most subjects).

Channel sets. The runner's sets (`CHANNEL_SETS`) are written in ISRUC-III
names. MASS-SS3 has the same electrodes under another reference (linked
ears), so a set maps electrode by electrode ("F4-A1" -> "F4"). Sleep-EDF has
only Fpz-Cz, Pz-Oz and one horizontal EOG: every multi-channel set falls back
to those three (`Dataset.fallback_set`), and the runner says so; its
"single_eeg" is Fpz-Cz (C4-A1 on ISRUC-III and the synthetic nights, C4 on
MASS).
"""

from __future__ import annotations

import dataclasses
import os

from stmd_keras.data import isruc, mass, sleep_edf
from stmd_keras.data.recording import DataError

CHANNEL_SETS = {
    "eeg_eog6": ("F4-A1", "C3-A2", "C4-A1", "O2-A1", "LOC-A2", "ROC-A1"),
    "eeg6": ("F3-A2", "C3-A2", "O1-A2", "F4-A1", "C4-A1", "O2-A1"),
    "eeg_eog8": ("F3-A2", "C3-A2", "O1-A2", "F4-A1", "C4-A1", "O2-A1", "LOC-A2", "ROC-A1"),
    # SleepKD's single-channel EEG: a central derivation (Sleep-EDF: Fpz-Cz).
    "single_eeg": ("C4-A1",),
}
"""The papers' channel sets in ISRUC-III names. The STMD paper does not list
its 6-channel EEG/EOG set, nor SleepKD its ISRUC-III channel; see
docs/REPRODUCTION.md for these choices."""


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A real dataset: where its recordings are and how one is loaded.

    Args:
        name: registry name (`--dataset NAME`).
        title: human-readable name.
        native_fs: the EEG sampling rate of the distributed files, in Hz.
        channel_sets: set name -> channel names as this dataset's loader
            spells them.
        fallback_set: the set used for a set this dataset cannot provide
            (None: such a request is an error).
        notch: mains frequency of the recording site, in Hz (the default
            notch of `default_preprocessing`).
        obtain: how a user gets the files (shown in errors and the README).
    """

    name: str
    title: str
    native_fs: float
    channel_sets: dict
    fallback_set: str | None
    notch: float | None
    obtain: str

    def recordings(self, data_dir) -> list:
        """The recording keys found in `data_dir`, sorted."""
        raise NotImplementedError

    def subject_of(self, key) -> str:
        """The subject id of recording `key` (nights of one person share it)."""
        raise NotImplementedError

    def load_recording(self, data_dir, key, channels, **options):
        """Loads recording `key` of `data_dir` with `channels` (this dataset's names)."""
        raise NotImplementedError

    def channels_for(self, channel_set) -> tuple:
        """Returns `(channels, set_used)` for a set name of `CHANNEL_SETS`.

        `set_used` differs from `channel_set` when the dataset lacks that set
        and falls back (Sleep-EDF).
        """
        if channel_set in self.channel_sets:
            return self.channel_sets[channel_set], channel_set
        if channel_set not in CHANNEL_SETS and channel_set not in self.channel_sets:
            raise ValueError(
                f"Unknown channel set {channel_set!r}; {self.name} has {sorted(self.channel_sets)}."
            )
        if self.fallback_set is None:
            raise DataError(f"{self.title} has no {channel_set!r} channel set; it has {sorted(self.channel_sets)}.")
        return self.channel_sets[self.fallback_set], self.fallback_set

    def select(self, data_dir, subjects=None) -> list:
        """The keys of `data_dir`'s recordings of `subjects` (all if None).

        `subjects` may hold subject ids or recording keys. An int `n` keeps the
        recordings of the first `n` subjects.
        """
        keys = self.recordings(data_dir)
        if not keys:
            raise DataError(f"{os.fspath(data_dir)}: no {self.title} recordings. {self.obtain}")
        if subjects is None:
            return keys
        if isinstance(subjects, int):
            order = list(dict.fromkeys(self.subject_of(k) for k in keys))
            if not 0 < subjects <= len(order):
                raise ValueError(f"`subjects`={subjects} but {data_dir} has {len(order)} subjects.")
            wanted = set(order[:subjects])
            return [k for k in keys if self.subject_of(k) in wanted]
        wanted = {str(s) for s in subjects}
        known = set(keys) | {self.subject_of(k) for k in keys}
        missing = sorted(wanted - known)
        if missing:
            raise DataError(
                f"{os.fspath(data_dir)}: no {self.title} recording of {missing}; "
                f"it has subjects {sorted({self.subject_of(k) for k in keys})}."
            )
        return [k for k in keys if k in wanted or self.subject_of(k) in wanted]

    def load(self, data_dir, channels, subjects=None, **options) -> list:
        """Loads every selected recording (see `select`) as a list of `Recording`."""
        return [self.load_recording(data_dir, k, channels, **options) for k in self.select(data_dir, subjects)]


class _Isruc(Dataset):
    def recordings(self, data_dir):
        found = isruc.find_subjects(data_dir)
        numbers = set(found["raw"]) | set(found["rar"]) | set(found["extracted"])
        return [str(n) for n in sorted(numbers)]

    def subject_of(self, key):
        return isruc._subject_id(key)

    def load_recording(self, data_dir, key, channels, scorer=1, trim_last=0, form="auto", **options):
        number = int(str(key).rsplit("-", 1)[-1])
        (rec,) = isruc.load_isruc(data_dir, subjects=[number], scorer=scorer, channels=channels,
                                  trim_last=trim_last, form=form, **options)
        return rec


class _SleepEdf(Dataset):
    def recordings(self, data_dir):
        return [os.path.basename(psg)[:6] for psg, _, _, _ in sleep_edf.find_pairs(data_dir)]

    def subject_of(self, key):
        return str(key)[:5]

    def load_recording(self, data_dir, key, channels, **options):
        for psg, hypnogram, _, _ in sleep_edf.find_pairs(data_dir):
            if os.path.basename(psg)[:6] == str(key):
                return sleep_edf.load_night(psg, hypnogram, channels=channels, **options)
        raise DataError(f"{os.fspath(data_dir)}: no Sleep-EDF night {key!r}.")


class _Mass(Dataset):
    def recordings(self, data_dir):
        return [sid for _, _, sid in mass.find_subjects(data_dir)]

    def subject_of(self, key):
        return str(key)

    def load_recording(self, data_dir, key, channels, **options):
        for psg, base, sid in mass.find_subjects(data_dir):
            if sid == key:
                return mass.load_subject(psg, base, channels=channels, **options)
        raise DataError(f"{os.fspath(data_dir)}: no MASS-SS3 subject {key!r}.")


def _mass_names(channels):
    # ISRUC "F4-A1" / "LOC-A2" -> MASS canonical "F4" / "LOC".
    return tuple(c.split("-")[0] for c in channels)


DATASETS = {
    "isruc": _Isruc(
        name="isruc",
        title="ISRUC-Sleep subgroup III",
        native_fs=200.0,
        channel_sets=dict(CHANNEL_SETS),
        fallback_set=None,
        notch=50.0,
        obtain="Download it with `stmd data download isruc --dest DIR` (public, "
        "https://sleeptight.isr.uc.pt/); raw `N.rar`/`N/N.rec` or extracted `subjectN.mat`.",
    ),
    "sleep-edf": _SleepEdf(
        name="sleep-edf",
        title="Sleep-EDF Expanded (sleep cassette)",
        native_fs=100.0,
        channel_sets={
            "sleepedf3": sleep_edf.DEFAULT_CHANNELS,
            "fpz_cz": ("EEG Fpz-Cz",),
            "single_eeg": ("EEG Fpz-Cz",),  # SleepKD's and DeepSleepNet's channel
        },
        fallback_set="sleepedf3",
        notch=50.0,
        obtain="Download it with `stmd data download sleep-edf --dest DIR` (public, "
        "https://physionet.org/content/sleep-edfx/).",
    ),
    "mass": _Mass(
        name="mass",
        title="MASS-SS3",
        native_fs=256.0,
        channel_sets={name: _mass_names(chs) for name, chs in CHANNEL_SETS.items()},
        fallback_set=None,
        notch=60.0,
        obtain="MASS needs registration (http://ceams-carsm.ca/mass/); put the "
        "`01-03-00NN PSG.edf` and `01-03-00NN Base.edf` files in one folder.",
    ),
}
"""Registry of the real datasets, by `--dataset` name."""


def get_dataset(name) -> Dataset:
    """Returns the `Dataset` registered as `name`; ValueError lists the names."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"Unknown dataset {name!r}; available: {sorted(DATASETS)}.") from None
