"""SleepKD backbones: DeepSleepNet- and SalientSleepNet-style teacher / TA / student."""

import numpy as np
import pytest

import keras

from stmd_keras.models.deepsleepnet import (
    DEEPSLEEPNET_SIZES,
    build_deepsleepnet,
    deepsleepnet_assistant,
    deepsleepnet_student,
    deepsleepnet_teacher,
)
from stmd_keras.models.salientsleepnet import (
    SALIENTSLEEPNET_SIZES,
    build_salientsleepnet,
    salientsleepnet_assistant,
    salientsleepnet_student,
    salientsleepnet_teacher,
)

FS, L = 10, 3  # 300-sample epochs: tiny but valid for both backbones
TINY_SSN = dict(filters=(4, 4, 8), inner_filters=4, pool_sizes=(5, 6), u_depth=3)

BUILDERS = {
    "deepsleepnet_teacher": deepsleepnet_teacher,
    "deepsleepnet_assistant": deepsleepnet_assistant,
    "deepsleepnet_student": deepsleepnet_student,
    "salientsleepnet_teacher": salientsleepnet_teacher,
    "salientsleepnet_assistant": salientsleepnet_assistant,
    "salientsleepnet_student": salientsleepnet_student,
}

# Counts at fs=100, C=1, L=20 as reported in the module docstrings.
EXPECTED_PARAMS = {
    "deepsleepnet_teacher": 5_498_907,
    "deepsleepnet_assistant": 2_902_323,
    "deepsleepnet_student": 1_554_977,
    "salientsleepnet_teacher": 466_461,
    "salientsleepnet_assistant": 226_326,
    "salientsleepnet_student": 119_729,
}
POSTER = {
    "deepsleepnet_teacher": 5_502_474,
    "deepsleepnet_student": 1_552_906,
    "salientsleepnet_teacher": 474_662,
    "salientsleepnet_student": 120_181,
}


def _signals(batch=2, channels=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, L, channels, FS * 30)).astype("float32")


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_roles_output_shapes(name, channels):
    # The roles at a tiny fs/L: full widths, but few samples per epoch.
    model = BUILDERS[name](fs=FS, seq_len=L, n_channels=channels)
    out = model(_signals(channels=channels))
    assert set(out) == {"logits", "epoch_features", "sequence_features", "features"}
    assert out["logits"].shape == (2, L, 5)
    b, l, c, m = out["features"].shape
    assert (b, l, c) == (2, L, channels)
    assert out["epoch_features"].shape == (2, L, channels * m)
    assert out["sequence_features"].shape[:2] == (2, L)
    for value in out.values():
        assert value.dtype == "float32"
    # For C=1 the epoch features are the per-channel features reshaped.
    if channels == 1:
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(out["epoch_features"]),
            keras.ops.convert_to_numpy(out["features"])[:, :, 0],
        )


def test_sequence_feature_widths():
    dsn = build_deepsleepnet(filters=4, lstm_units=6, fs=FS, seq_len=L)
    assert dsn.output["sequence_features"].shape == (None, L, 12)
    ssn = build_salientsleepnet(fs=FS, seq_len=L, n_channels=2, **TINY_SSN)
    assert ssn.output["sequence_features"].shape == (None, L, 2 * 4)
    assert ssn.output["features"].shape == (None, L, 2, 4)  # mse_filters[-1] = 8 // 2


def test_assistant_is_between_teacher_and_student():
    for sizes in (DEEPSLEEPNET_SIZES, {k: (*v[0], v[1]) for k, v in SALIENTSLEEPNET_SIZES.items()}):
        for t, a, s in zip(sizes["teacher"], sizes["assistant"], sizes["student"]):
            assert s <= a <= t


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_parameter_counts_at_paper_setting(name):
    # Building (not running) the full-size models takes < 1 s each.
    model = BUILDERS[name](fs=100, seq_len=20, n_channels=1)
    n = model.count_params()
    assert n == EXPECTED_PARAMS[name]
    if name in POSTER:
        assert abs(n / POSTER[name] - 1) < 0.02


@pytest.mark.parametrize(
    "build",
    [
        lambda: build_deepsleepnet(filters=4, lstm_units=6, fs=FS, seq_len=L, n_channels=2),
        lambda: build_salientsleepnet(fs=FS, seq_len=L, n_channels=2, **TINY_SSN),
    ],
    ids=["deepsleepnet", "salientsleepnet"],
)
def test_save_load_round_trip(build, tmp_path):
    model = build()
    x = _signals(channels=2)
    before = model(x, training=False)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    after = loaded(x, training=False)
    for key in before:
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(after[key]), keras.ops.convert_to_numpy(before[key]), rtol=1e-5, atol=1e-6
        )


def test_deepsleepnet_epoch_features_are_epoch_independent():
    model = build_deepsleepnet(filters=4, lstm_units=6, fs=FS, seq_len=L)
    x = _signals(batch=1)
    y = x.copy()
    y[:, 0] += 1.0
    a, b = model(x)["epoch_features"], model(y)["epoch_features"]
    a, b = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
    assert not np.allclose(a[:, 0], b[:, 0])
    np.testing.assert_allclose(a[:, 1:], b[:, 1:], rtol=1e-5, atol=1e-6)


def test_salientsleepnet_looks_across_epochs():
    # Documented: convolutions over the concatenated signal cross epoch
    # boundaries, so changing epoch 0 changes the next epoch's output too.
    model = build_salientsleepnet(fs=FS, seq_len=L, **TINY_SSN)
    x = _signals(batch=1)
    y = x.copy()
    y[:, 0] += 1.0
    a, b = model(x)["logits"], model(y)["logits"]
    a, b = keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b)
    assert not np.allclose(a[:, 1], b[:, 1])


def test_salientsleepnet_channels_are_independent_streams():
    # One shared stream per channel: channel 1 does not affect channel 0's features.
    model = build_salientsleepnet(fs=FS, seq_len=L, n_channels=2, **TINY_SSN)
    x = _signals(batch=1, channels=2)
    y = x.copy()
    y[:, :, 1] += 1.0
    a = keras.ops.convert_to_numpy(model(x)["features"])
    b = keras.ops.convert_to_numpy(model(y)["features"])
    np.testing.assert_allclose(a[:, :, 0], b[:, :, 0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(a[:, :, 1], b[:, :, 1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters=0), "filters"),
        (dict(lstm_units=2.5), "lstm_units"),
        (dict(seq_len=0), "seq_len"),
        (dict(n_channels=0), "n_channels"),
        (dict(fs=1), "fs"),
        (dict(dropout=1.0), "dropout"),
        (dict(epoch_sec=3), "large kernel"),
    ],
)
def test_deepsleepnet_bad_arguments(kwargs, match):
    base = dict(filters=4, lstm_units=6, fs=FS, seq_len=L)
    with pytest.raises(ValueError, match=match):
        build_deepsleepnet(**{**base, **kwargs})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(filters=(4,)), "at least 2 levels"),
        (dict(filters=(4, 0, 8)), "filters"),
        (dict(mse_filters=(2, 2)), "mse_filters"),
        (dict(pool_sizes=(5,)), "pool_sizes"),
        (dict(pool_sizes=(7, 6)), "must divide the epoch length"),
        (dict(u_depth=1), "u_depth"),
        (dict(dilations=()), "dilations"),
        (dict(seq_len=0), "seq_len"),
        (dict(n_channels=0), "n_channels"),
    ],
)
def test_salientsleepnet_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_salientsleepnet(**{**dict(fs=FS, seq_len=L, **TINY_SSN), **kwargs})
