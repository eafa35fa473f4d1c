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


# -- filters -----------------------------------------------------------------


def sines(fs, freqs, n_epochs=20, amplitude=10.0):
    """One channel: a sum of sines of `freqs` Hz (amplitude 10 µV each)."""
    t = np.arange(int(n_epochs * 30 * fs)) / fs
    x = sum(amplitude * np.sin(2 * np.pi * f * t + 0.3 * k) for k, f in enumerate(freqs))
    return Recording("s1", x[None], fs, ("C3",), np.zeros(n_epochs, int), "sines.edf"), t


def amplitude_at(x, fs, f):
    """Amplitude of the `f` Hz component of the middle half of `x` (a whole number of cycles)."""
    middle = x[len(x) // 4: len(x) // 4 + int(100 * fs)]  # 100 s
    spectrum = np.abs(np.fft.rfft(middle)) * 2 / middle.size
    return spectrum[int(round(f * 100))]


@pytest.mark.parametrize("fs_in", [200.0, 100.0, 256.0])
def test_bandpass_keeps_the_band_and_removes_the_rest(fs_in):
    rec, _ = sines(fs_in, (0.05, 10.0, 45.0))
    out = prepare(rec, fs=100, bandpass=(0.3, 35), standardize=False).signals[0]
    assert out.size == 20 * 3000
    assert amplitude_at(out, 100, 10.0) == pytest.approx(10.0, rel=0.02)
    assert amplitude_at(out, 100, 45.0) < 0.02   # >= 54 dB down (the FIR is designed for 60)
    assert amplitude_at(out, 100, 0.05) < 0.05   # high-pass: 0.05 Hz is far below 0.3 Hz


def test_bandpass_is_zero_phase():
    rec, t = sines(200.0, (7.0,))
    out = prepare(rec, fs=100, bandpass=(0.3, 35), standardize=False).signals[0]
    expected = 10.0 * np.sin(2 * np.pi * 7.0 * t[::2])
    middle = slice(1000, -1000)  # away from the edges of the night
    np.testing.assert_allclose(out[middle], expected[middle], atol=0.15)  # no delay, no phase shift


def test_highpass_matches_scipy_sosfiltfilt():
    rec = make_recording(fs=100.0)
    out = prepare(rec, fs=100, bandpass=(0.5, None), standardize=False, filter_order=3).signals
    from scipy import signal as sps

    sos = sps.butter(3, 0.5, btype="highpass", fs=100, output="sos")
    expected = sps.sosfiltfilt(sos, rec.signals.astype(np.float64), axis=1)
    np.testing.assert_allclose(out, expected, atol=1e-3 * np.abs(expected).max())


def test_notch_removes_mains_and_is_skipped_above_the_lowpass():
    rec, _ = sines(200.0, (10.0, 50.0))
    notched = prepare(rec, fs=200, notch=50, standardize=False).signals[0]
    assert amplitude_at(notched, 200, 50.0) < 0.05
    assert amplitude_at(notched, 200, 10.0) == pytest.approx(10.0, rel=0.01)
    # With a 35 Hz low-pass the FIR removes 50 Hz on its own; the notch is not run.
    both = prepare(rec, fs=100, notch=50, bandpass=(None, 35), standardize=False).signals[0]
    lowpass_only = prepare(rec, fs=100, bandpass=(None, 35), standardize=False).signals[0]
    np.testing.assert_array_equal(both, lowpass_only)
    assert amplitude_at(both, 100, 10.0) == pytest.approx(10.0, rel=0.01)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(bandpass=(0.3, 60)), "Nyquist"),
        (dict(bandpass=(35, 0.3)), "0 < low < high"),
        (dict(bandpass=0.3), r"\(low, high\)"),
        (dict(notch=-50), "notch"),
        (dict(filter_order=0), "filter_order"),
    ],
)
def test_bad_filter_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PreprocessConfig(fs=100, **kwargs)
