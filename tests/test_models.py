"""CNN-RNN teacher/student: shapes, sizes, per-channel encoders, saving."""

import keras
import numpy as np
import pytest

from stmd_keras.models import MultiChannelEncoder, build_cnn_rnn, build_model, cnn_rnn_student, cnn_rnn_teacher


def test_paper_sized_models_have_the_documented_parameter_counts():
    # docs/REPRODUCTION.md explains these against the paper's 8.72 M / 0.29 M.
    assert cnn_rnn_teacher().count_params() == 4_893_445
    assert cnn_rnn_student().count_params() == 314_053


def test_encoder_parameter_count_matches_the_layer_tables():
    # Per channel: Conv1D(f, 50) + 3 x Conv1D(f, 8) with biases, at 100 Hz.
    f = 32
    per_channel = (50 * 1 * f + f) + 3 * (8 * f * f + f)
    enc = MultiChannelEncoder(f, fs=100)
    enc.build((None, 20, 6, 3000))
    assert enc.count_params() == 6 * per_channel
    assert enc.feature_dim == 3 * f  # 3000 -> 120 (stride 25) -> 15 -> 3


def test_outputs_features_and_logits_with_the_right_shapes():
    model = build_cnn_rnn(4, 3, n_channels=3, seq_len=5, fs=20)
    out = model(np.zeros((2, 5, 3, 600), "float32"))
    assert tuple(out["logits"].shape) == (2, 5, 5)
    assert tuple(out["features"].shape) == (2, 5, 3, 12)


def test_channels_have_independent_encoders():
    keras.utils.set_random_seed(0)
    model = build_cnn_rnn(4, 3, n_channels=2, seq_len=2, fs=20, dropout=0.0)
    x = np.random.default_rng(0).standard_normal((1, 2, 2, 600)).astype("float32")
    x[:, :, 1] = x[:, :, 0]  # same signal on both channels
    h = keras.ops.convert_to_numpy(model(x)["features"])
    assert not np.allclose(h[:, :, 0], h[:, :, 1])  # different weights, different features
    x2 = x.copy()
    x2[:, :, 1] += 1.0  # changing channel 1 leaves channel 0's features alone
    h2 = keras.ops.convert_to_numpy(model(x2)["features"])
    np.testing.assert_array_equal(h[:, :, 0], h2[:, :, 0])
    assert not np.allclose(h[:, :, 1], h2[:, :, 1])


def test_epochs_are_encoded_independently_and_the_rnn_mixes_them():
    keras.utils.set_random_seed(1)
    model = build_cnn_rnn(4, 3, n_channels=1, seq_len=3, fs=20, dropout=0.0)
    x = np.random.default_rng(1).standard_normal((1, 3, 1, 600)).astype("float32")
    x2 = x.copy()
    x2[:, 2] += 1.0
    a, b = model(x), model(x2)
    np.testing.assert_array_equal(a["features"][:, :2], b["features"][:, :2])
    assert not np.allclose(a["logits"][:, 0], b["logits"][:, 0])  # BiLSTM context


def test_save_and_reload_safely(tmp_path):
    model = build_cnn_rnn(4, 3, n_channels=2, seq_len=2, fs=20)
    x = np.random.default_rng(2).standard_normal((2, 2, 2, 600)).astype("float32")
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_allclose(loaded(x)["logits"], model(x)["logits"], rtol=1e-6)


def test_bad_arguments_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="filters"):
        MultiChannelEncoder(0)
    with pytest.raises(ValueError, match=r"\(batch, seq_len, channels, samples\)"):
        MultiChannelEncoder(4, fs=20).build((None, 600, 1))
    with pytest.raises(ValueError, match="too short"):
        build_cnn_rnn(4, 3, n_channels=1, seq_len=2, fs=100, epoch_sec=0.5)
    with pytest.raises(ValueError, match="Unknown architecture"):
        build_model("transformer", "teacher")
    with pytest.raises(ValueError, match="Unknown role"):
        build_model("cnn_rnn", "assistant")
    model = build_cnn_rnn(4, 3, n_channels=2, seq_len=2, fs=20)
    with pytest.raises(ValueError):
        model(np.zeros((1, 2, 3, 600), "float32"))  # 3 channels into a 2-channel model


@pytest.mark.parametrize("fs, n_channels", [(100, 6), (128, 3)])
def test_grouped_encoder_computes_the_per_channel_encoder(fs, n_channels):
    from stmd_keras.models.encoder import GroupedChannelEncoder

    enc = MultiChannelEncoder(8, fs=fs)
    x = np.random.default_rng(0).normal(size=(2, 3, n_channels, 30 * fs)).astype("float32")
    expected = keras.ops.convert_to_numpy(enc(x))
    fused = GroupedChannelEncoder.from_encoder(enc)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused(x)), expected, atol=1e-5)
    # Channel c of the output depends on input channel c only.
    x2 = x.copy()
    x2[:, :, 1] = 0.0
    changed = keras.ops.convert_to_numpy(fused(x2)) != keras.ops.convert_to_numpy(fused(x))
    assert changed[:, :, 1].any() and not np.delete(changed, 1, axis=2).any()
    assert fused.count_params() == enc.count_params()


def test_grouped_encoder_needs_a_built_encoder_or_a_shape():
    from stmd_keras.models.encoder import GroupedChannelEncoder

    with pytest.raises(ValueError, match="input_shape"):
        GroupedChannelEncoder.from_encoder(MultiChannelEncoder(8, fs=100))
