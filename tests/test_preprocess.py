import numpy as np
import pytest

from stmd_keras.data import DataError, PreprocessConfig, Recording, prepare, prepare_all


def make_recording(fs=200.0, n_epochs=6, channels=("C3", "C4", "EOG"), extra=0, seed=0, **kw):
    rng = np.random.default_rng(seed)
    t = int(n_epochs * 30 * fs) + extra
    signals = rng.normal(5.0, 20.0, size=(len(channels), t))
    labels = rng.integers(0, 5, size=n_epochs)
    return Recording(subject=kw.pop("subject", "s1"), signals=signals, fs=fs,
                     channels=channels, labels=labels, source=kw.pop("source", "mem.edf"))


def test_standardised_over_labelled_night_and_float32():
    rec = make_recording(fs=100.0, extra=500)
    out = prepare(rec, PreprocessConfig(fs=100))
    assert out.signals.dtype == np.float32
    # The unlabelled tail is dropped, the rest is z-scored per channel.
    assert out.signals.shape == (3, 6 * 3000)
    np.testing.assert_allclose(out.signals.mean(axis=1), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.signals.std(axis=1), 1.0, atol=1e-5)
    labelled = rec.signals[:, : 6 * 3000].astype(np.float64)
    expected = (labelled - labelled.mean(1, keepdims=True)) / labelled.std(1, keepdims=True)
    np.testing.assert_allclose(out.signals, expected, atol=1e-5)
    np.testing.assert_array_equal(out.labels, rec.labels)
    assert out.subject == "s1" and out.source == "mem.edf"


def test_channel_selection_order():
    rec = make_recording(fs=100.0)
    out = prepare(rec, channels=["EOG", "C3"], standardize=False)
    assert out.channels == ("EOG", "C3")
    np.testing.assert_array_equal(out.signals[0], rec.signals[2])
    np.testing.assert_array_equal(out.signals[1], rec.signals[0])


def test_missing_channel_names_it():
    with pytest.raises(DataError, match="Fp1"):
        prepare(make_recording(), channels=("C3", "Fp1"))


@pytest.mark.parametrize("fs_in", [200.0, 256.0, 128.0, 50.0])
def test_resample_to_100hz_preserves_a_sine(fs_in):
    n_epochs = 2
    t = np.arange(int(n_epochs * 30 * fs_in)) / fs_in
    sig = np.stack([np.sin(2 * np.pi * 3.0 * t), np.cos(2 * np.pi * 7.0 * t)]) * 40
    rec = Recording("s1", sig, fs_in, ("a", "b"), np.array([0, 2]))
    out = prepare(rec, 100, standardize=False)
    assert out.fs == 100.0 and out.epoch_samples == 3000
    assert out.signals.shape == (2, n_epochs * 3000)
    t100 = np.arange(n_epochs * 3000) / 100.0
    ref = np.stack([np.sin(2 * np.pi * 3.0 * t100), np.cos(2 * np.pi * 7.0 * t100)]) * 40
    # Away from the edges (filter transients) the resampled sine matches.
    np.testing.assert_allclose(out.signals[:, 200:-200], ref[:, 200:-200], atol=0.5)
    assert out.epochs().shape == (n_epochs, 2, 3000)


def test_flat_channel_raises_naming_source_and_channel():
    rec = make_recording(fs=100.0)
    rec.signals[1] = 3.0
    with pytest.raises(DataError, match=r"night7\.edf.*C4"):
        prepare(Recording("s1", rec.signals, 100.0, rec.channels, rec.labels, "night7.edf"))
    # Not standardising leaves a flat channel alone.
    assert prepare(rec, standardize=False).signals.shape == (3, 18000)


def test_config_validation_messages():
    with pytest.raises(ValueError, match="fs=-1"):
        PreprocessConfig(fs=-1)
    with pytest.raises(ValueError, match="whole number"):
        PreprocessConfig(fs=100.01)
    assert PreprocessConfig(channels="C3").channels == ("C3",)
    with pytest.raises(TypeError, match="PreprocessConfig"):
        prepare(make_recording(), config="100")


def test_prepare_all_shares_config():
    recs = [make_recording(fs=200.0, seed=i, subject=f"s{i}") for i in range(3)]
    out = prepare_all(recs, PreprocessConfig(fs=100, channels=("C4", "C3")))
    assert [r.subject for r in out] == ["s0", "s1", "s2"]
    assert all(r.fs == 100.0 and r.channels == ("C4", "C3") for r in out)
    assert all(r.signals.shape == (2, 18000) for r in out)
