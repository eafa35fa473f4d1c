"""Tests for stmd_keras.data.synthetic: contract, determinism, physiology, speed."""

import importlib.util
import pathlib
import time

import numpy as np
import pytest
import scipy.signal

from stmd_keras.data.recording import DataError, Recording
from stmd_keras.data.synthetic import (
    HYPNO_BOUT_LENGTH_Q,
    HYPNO_REM_HAZARD,
    HYPNO_TRANSITIONS,
    ISRUC_CHANNELS,
    STAGE_PARAMS,
    generate,
    generate_hypnogram,
)

W, N1, N2, N3, REM = range(5)


@pytest.fixture(scope="module")
def night():
    """One default night (seed 0): the recording and its epochs (n, C, T)."""
    rec = generate(1, seed=0)[0]
    return rec, rec.epochs().astype(np.float64)


@pytest.fixture(scope="module")
def night_psd(night):
    """Welch spectra (nperseg 256) of every epoch and channel of `night`."""
    rec, ep = night
    return scipy.signal.welch(ep, fs=rec.fs, nperseg=256, axis=-1)


def band_power(epochs, fs, lo, hi):
    f, p = scipy.signal.welch(epochs, fs=fs, nperseg=256, axis=-1)
    return p[..., (f >= lo) & (f < hi)].mean(axis=-1)


def band(psd, lo, hi):
    f, p = psd
    return p[..., (f >= lo) & (f < hi)].mean(axis=-1)


def stage_mean_correlation(epochs, labels, stage):
    e = epochs[labels == stage]
    e = e - e.mean(axis=-1, keepdims=True)
    cov = np.einsum("nct,ndt->ncd", e, e)
    sd = np.sqrt(np.einsum("ncc->nc", cov))
    return cov / sd[:, :, None] / sd[:, None, :]


# --------------------------------------------------------------------------
# Contract
# --------------------------------------------------------------------------
def test_shapes_dtypes_and_fields():
    recs = generate(2, seed=3, n_epochs=40)
    assert len(recs) == 2
    for k, rec in enumerate(recs):
        assert isinstance(rec, Recording)
        assert rec.subject == f"synth{k:02d}"
        assert rec.source == "synthetic(seed=3)"
        assert rec.channels == ISRUC_CHANNELS
        assert rec.fs == 100
        assert rec.signals.dtype == np.float32
        assert rec.signals.shape == (9, 40 * 3000)
        assert rec.labels.shape == (40,) and np.issubdtype(rec.labels.dtype, np.integer)
        assert rec.labels.min() >= 0 and rec.labels.max() <= 4
        assert np.isfinite(rec.signals).all()
    assert generate(0) == []


def test_default_length_and_night_starts_and_ends_awake(night):
    rec, _ = night
    assert 750 <= rec.n_epochs <= 1050
    assert rec.labels[0] == W and rec.labels[-1] == W
    assert set(np.unique(rec.labels)) == {W, N1, N2, N3, REM}


def test_channel_subset_is_the_same_data_in_the_requested_order():
    full = generate(1, seed=5, n_epochs=12)[0]
    sub = generate(1, seed=5, n_epochs=12, channels=("X1", "C3-A2"))[0]
    assert sub.channels == ("X1", "C3-A2")
    np.testing.assert_array_equal(sub.signals[0], full.signals[8])
    np.testing.assert_array_equal(sub.signals[1], full.signals[1])
    np.testing.assert_array_equal(sub.labels, full.labels)


def test_unknown_channel_raises_data_error_listing_valid_names():
    with pytest.raises(DataError, match="Fpz-Cz") as info:
        generate(1, n_epochs=12, channels=("C3-A2", "Fpz-Cz"))
    assert "O2-A1" in str(info.value)


@pytest.mark.parametrize(
    "kwargs",
    [{"fs": 100.01}, {"fs": 20}, {"n_epochs": 3}, {"difficulty": -1}, {"label_noise": 2.0}],
)
def test_bad_arguments_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        generate(1, **kwargs)


@pytest.mark.parametrize("fs,samples", [(200, 6000), (128, 3840), (256, 7680)])
def test_sampling_rates(fs, samples):
    rec = generate(1, seed=0, fs=fs, n_epochs=12, channels=("C3-A2", "X1"))[0]
    assert rec.fs == fs and rec.epoch_samples == samples
    assert rec.signals.shape == (2, 12 * samples)
    assert rec.epochs().shape == (12, 2, samples)


def test_label_noise_flips_to_confusable_stages_only():
    clean = generate(1, seed=2, n_epochs=300, channels=("C3-A2",))[0]
    noisy = generate(1, seed=2, n_epochs=300, channels=("C3-A2",), label_noise=0.2)[0]
    np.testing.assert_array_equal(clean.signals, noisy.signals)
    changed = clean.labels != noisy.labels
    assert 0.1 < changed.mean() < 0.3
    pairs = set(zip(clean.labels[changed].tolist(), noisy.labels[changed].tolist()))
    assert (W, N3) not in pairs and (N3, W) not in pairs and (N3, REM) not in pairs


# --------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------
def test_same_seed_is_bit_identical_and_seeds_differ():
    a = generate(2, seed=11, n_epochs=20)
    b = generate(2, seed=11, n_epochs=20)
    c = generate(2, seed=12, n_epochs=20)
    for x, y in zip(a, b):
        assert x.signals.tobytes() == y.signals.tobytes()
        np.testing.assert_array_equal(x.labels, y.labels)
    assert not np.array_equal(a[0].signals, c[0].signals)
    assert not np.array_equal(a[0].signals, a[1].signals)


def test_subject_does_not_depend_on_the_number_of_subjects():
    three = generate(3, seed=4, n_epochs=15)
    two = generate(2, seed=4, n_epochs=15)
    assert three[1].signals.tobytes() == two[1].signals.tobytes()
    np.testing.assert_array_equal(three[1].labels, two[1].labels)
    np.testing.assert_array_equal(generate_hypnogram(4, 1, 15), two[1].labels)


# --------------------------------------------------------------------------
# Hypnograms
# --------------------------------------------------------------------------
def test_stage_proportions_and_time_of_night_near_real():
    nights = [generate_hypnogram(seed=0, subject=k) for k in range(30)]
    labels = np.concatenate(nights)
    prop = np.bincount(labels, minlength=5) / labels.size
    # Real Sleep-EDF (45 nights): W 10.6, N1 8.5, N2 46.2, N3 15.2, REM 19.5 %.
    lo = np.array([0.05, 0.04, 0.35, 0.08, 0.12])
    hi = np.array([0.20, 0.15, 0.58, 0.25, 0.28])
    assert np.all(prop > lo) and np.all(prop < hi), prop
    first = np.concatenate([n[: n.size // 3] for n in nights])
    last = np.concatenate([n[-n.size // 3 :] for n in nights])
    assert (first == N3).mean() > 3 * (last == N3).mean()
    assert (last == REM).mean() > 1.5 * (first == REM).mean()
    for n in nights:
        assert n[0] == W and n[-1] == W


def test_hypnogram_constants_are_those_the_derivation_prints(shared_data):
    path = pathlib.Path(__file__).resolve().parents[1] / "docs" / "scripts" / "derive_hypnogram_stats.py"
    spec = importlib.util.spec_from_file_location("derive_hypnogram_stats", path)
    derive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(derive)
    model = derive.fit_model(derive.load_corpora(str(shared_data))["sleep-edf"])
    np.testing.assert_allclose(model["transitions"], HYPNO_TRANSITIONS, atol=6e-4)
    np.testing.assert_allclose(model["bout_length_q"], HYPNO_BOUT_LENGTH_Q, atol=0.06)
    np.testing.assert_allclose(model["rem_hazard"], HYPNO_REM_HAZARD, atol=6e-3)


# --------------------------------------------------------------------------
# Physiology of the default night
# --------------------------------------------------------------------------
def ch(rec, name):
    return rec.channels.index(name)


def test_n3_is_frontal_dominant_delta_and_larger_than_wake(night, night_psd):
    rec, ep = night
    y = rec.labels
    delta = band(night_psd, 0.5, 2.0)
    n3 = delta[y == N3]
    frontal = n3[:, [ch(rec, "F3-A2"), ch(rec, "F4-A1")]].mean()
    occipital = n3[:, [ch(rec, "O1-A2"), ch(rec, "O2-A1")]].mean()
    assert frontal > 1.5 * occipital
    std = ep.std(axis=-1)
    c3 = ch(rec, "C3-A2")
    assert std[y == N3, c3].mean() > 1.25 * std[y == W, c3].mean()
    # >75 uV peak-to-peak slow waves on the frontal channel.
    assert np.median(np.ptp(ep[y == N3, ch(rec, "F3-A2")], axis=-1)) > 150


def test_wake_occipital_alpha_exceeds_n3(night, night_psd):
    rec, _ = night
    alpha = band(night_psd, 8.0, 12.0)
    for name in ("O1-A2", "O2-A1"):
        c = ch(rec, name)
        assert alpha[rec.labels == W, c].mean() > 1.3 * alpha[rec.labels == N3, c].mean()


def test_rem_has_the_lowest_chin_emg(night, night_psd):
    rec, _ = night
    emg = band(night_psd, 20.0, 50.0)[:, ch(rec, "X1")]
    means = [emg[rec.labels == s].mean() for s in range(5)]
    assert means[REM] == min(means)
    assert means[REM] < 0.3 * means[W]


def test_eog_anti_correlated_in_rem_and_correlated_in_n3(night):
    rec, ep = night
    loc, roc = ch(rec, "LOC-A2"), ch(rec, "ROC-A1")
    r = {s: stage_mean_correlation(ep[:, [loc, roc]], rec.labels, s)[:, 0, 1] for s in (W, N3, REM)}
    assert r[REM].mean() < 0
    assert r[W].mean() < 0
    assert r[N3].mean() > 0.3


def test_spindle_band_power_central_highest_in_n2(night, night_psd):
    rec, _ = night
    sigma = band(night_psd, 11.0, 16.0)
    for name in ("C3-A2", "C4-A1"):
        c = ch(rec, name)
        n2 = sigma[rec.labels == N2, c].mean()
        assert n2 > 1.3 * sigma[rec.labels == N1, c].mean()
        assert n2 > 1.3 * sigma[rec.labels == REM, c].mean()


def test_channel_correlation_structure_depends_on_stage(night):
    rec, ep = night
    eeg = ep[:, :8]  # without the chin EMG
    mean_corr = {s: stage_mean_correlation(eeg, rec.labels, s).mean(axis=0) for s in range(5)}
    iu = np.triu_indices(8, 1)
    diff = lambda a, b: np.abs(mean_corr[a] - mean_corr[b])[iu].mean()  # noqa: E731
    assert diff(W, N3) > 0.2
    assert diff(N2, N3) > 0.08
    assert diff(REM, N2) > 0.1
    # Homologous channels are more coherent in N3 than in W and REM.
    c3, c4 = ch(rec, "C3-A2"), ch(rec, "C4-A1")
    assert mean_corr[N3][c3, c4] > mean_corr[W][c3, c4] + 0.2
    assert mean_corr[N3][c3, c4] > mean_corr[REM][c3, c4] + 0.2


def test_difficulty_zero_gives_prototypical_epochs():
    easy = generate(1, seed=0, n_epochs=200, difficulty=0.0, channels=("F3-A2", "O1-A2"))[0]
    ep = easy.epochs().astype(np.float64)
    delta = band_power(ep[:, 0], easy.fs, 0.5, 2.0)
    n3, n2 = delta[easy.labels == N3], delta[easy.labels == N2]
    if n3.size and n2.size:
        assert n3.min() > np.median(n2)


def test_stage_params_cover_every_state():
    for state, params in STAGE_PARAMS.items():
        assert set(params["rhythms"]) == {"background", "delta", "theta", "alpha", "beta", "emg"}, state
        for entry in params["rhythms"].values():
            assert len(entry["weights"]) == 5 and len(entry["shares"]) == 3


# --------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------
def test_two_nights_of_900_epochs_in_under_10_seconds():
    start = time.perf_counter()
    recs = generate(2, seed=1, n_epochs=900)
    elapsed = time.perf_counter() - start
    assert recs[1].signals.shape == (9, 900 * 3000)
    assert elapsed < 10.0, f"took {elapsed:.1f} s"
