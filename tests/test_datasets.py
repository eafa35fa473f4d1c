import pytest

from stmd_keras.data import DataError
from stmd_keras.data.datasets import CHANNEL_SETS, DATASETS, get_dataset
from stmd_keras.runner.settings import DataSettings, settings_key


def test_registry_names_and_unknown_dataset():
    assert sorted(DATASETS) == ["isruc", "mass", "sleep-edf"]
    with pytest.raises(ValueError, match=r"available: \['isruc', 'mass', 'sleep-edf'\]"):
        get_dataset("shhs")


def test_channel_sets_in_each_datasets_spelling():
    assert get_dataset("isruc").channels_for("eeg_eog6") == (CHANNEL_SETS["eeg_eog6"], "eeg_eog6")
    assert get_dataset("mass").channels_for("eeg_eog8") == (
        ("F3", "C3", "O1", "F4", "C4", "O2", "LOC", "ROC"), "eeg_eog8")
    # Sleep-EDF has three channels: every multi-channel set falls back to them.
    channels, used = get_dataset("sleep-edf").channels_for("eeg_eog6")
    assert used == "sleepedf3" and channels == ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal")
    with pytest.raises(ValueError, match="Unknown channel set 'eeg99'"):
        get_dataset("isruc").channels_for("eeg99")
    with pytest.raises(ValueError, match="Unknown channel set 'sleepedf3'; isruc has"):
        get_dataset("isruc").channels_for("sleepedf3")  # Sleep-EDF's own set


def test_mass_channel_sets_are_known_to_the_loader():
    from stmd_keras.data import mass

    for channels in get_dataset("mass").channel_sets.values():
        assert set(channels) <= set(mass.CHANNEL_ALIASES)


def test_select_by_count_subject_and_key(monkeypatch):
    ds = get_dataset("sleep-edf")
    keys = ["SC4001", "SC4002", "SC4011", "SC4021", "SC4022"]
    monkeypatch.setattr(type(ds), "recordings", lambda self, d: keys)
    assert ds.select("d") == keys
    assert ds.select("d", 2) == ["SC4001", "SC4002", "SC4011"]  # two subjects, all their nights
    assert ds.select("d", ["SC402", "SC4001"]) == ["SC4001", "SC4021", "SC4022"]
    with pytest.raises(DataError, match=r"no Sleep-EDF .* recording of \['SC499'\]"):
        ds.select("d", ["SC499"])
    with pytest.raises(ValueError, match="has 3 subjects"):
        ds.select("d", 4)


def test_empty_folder_says_how_to_obtain_the_data(tmp_path, monkeypatch):
    ds = get_dataset("isruc")
    with pytest.raises(DataError, match="stmd data download isruc"):
        ds.select(tmp_path)


def test_real_sleep_edf_fragment_through_the_registry(shared_data, tmp_path):
    # The real excerpt is renamed to the distributed name so that it pairs.
    (tmp_path / "SC4001E0-PSG.edf").symlink_to(shared_data / "sleep-edf" / "SC4001E0-PSG-first300s.edf")
    (tmp_path / "SC4001EC-Hypnogram.edf").symlink_to(shared_data / "sleep-edf" / "SC4001EC-Hypnogram.edf")
    ds = get_dataset("sleep-edf")
    assert ds.recordings(tmp_path) == ["SC4001"] and ds.subject_of("SC4001") == "SC400"
    channels = ds.channels_for("eeg_eog6")[0]
    with pytest.raises(DataError, match="has only 300 s of signal"):  # the excerpt is cut
        ds.load(tmp_path, channels)
    with pytest.warns(UserWarning, match="keeping the 10 covered epochs"):
        (rec,) = ds.load(tmp_path, channels, trim_wake_min=None, allow_truncated_psg=True)
    assert rec.channels == ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal") and rec.fs == 100
    assert rec.n_epochs == 10 and rec.labels.tolist() == [0] * 10  # 300 s of wake


def test_settings_keys_of_cached_results_are_unchanged_by_new_fields():
    # Key of the issue-2 synthetic Table 3 results (whole nights): fields
    # added later must not change it while at their defaults.
    whole_nights = DataSettings(n_test=1)
    assert settings_key(whole_nights) == "076050a6192b0384"
    assert settings_key(DataSettings(n_test=1, bandpass=(0.3, 35))) != "076050a6192b0384"


def test_real_settings_resolve_channels_and_default_bandpass():
    s = DataSettings(dataset="mass")
    assert s.channels == ("F4", "C3", "C4", "O2", "LOC", "ROC")
    assert s.effective_bandpass == (0.3, 35.0)
    assert DataSettings().effective_bandpass is None
