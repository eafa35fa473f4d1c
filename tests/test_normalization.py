"""FusedBatchNormalization (stmd_keras.models.normalization) against NumPy and Keras' layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stmd_keras.distill.batch_norm import recalibrate_batch_norm
from stmd_keras.models.normalization import FusedBatchNormalization


def twin_layers(channels=3, momentum=0.9, ndim=3, **kwargs):
    """A FusedBatchNormalization and a Keras BatchNormalization with the same random weights."""
    fused = FusedBatchNormalization(momentum=momentum, **kwargs)
    plain = keras.layers.BatchNormalization(momentum=momentum, **kwargs)
    rng = np.random.default_rng(0)
    for layer in (fused, plain):
        layer.build((None,) * (ndim - 1) + (channels,))
    weights = [rng.normal(size=w.shape).astype("float32") ** 2 + 0.5 for w in plain.weights]
    for layer in (fused, plain):
        layer.set_weights(weights)
    return fused, plain


def signals(shape=(2, 5, 3), seed=1):
    return np.random.default_rng(seed).normal(loc=1.5, scale=2.0, size=shape).astype("float32")


@pytest.mark.parametrize("shape", [(2, 5, 3), (4, 3), (2, 3, 4, 3)])
def test_training_step_normalises_with_batch_moments_and_moves_the_averages(shape):
    fused, _ = twin_layers(momentum=0.9, ndim=len(shape))
    x = signals(shape)
    gamma, beta, old_mean, old_var = (keras.ops.convert_to_numpy(w) for w in fused.weights)
    y = keras.ops.convert_to_numpy(fused(x, training=True))
    # Independent NumPy: statistics over every axis but the last.
    flat = x.reshape(-1, 3)
    mean, var = flat.mean(0), flat.var(0)
    np.testing.assert_allclose(y, gamma * (x - mean) / np.sqrt(var + fused.epsilon) + beta, rtol=1e-4, atol=1e-5)
    n = flat.shape[0]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(fused.moving_mean), 0.9 * old_mean + 0.1 * mean, rtol=1e-5)
    # The fused kernel's one documented difference: the unbiased variance.
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused.moving_variance), 0.9 * old_var + 0.1 * var * n / (n - 1), rtol=1e-5
    )


def test_outputs_and_gradients_match_keras_batch_normalization():
    fused, plain = twin_layers()
    x = tf.constant(signals((3, 40, 3)))
    results = []
    for layer in (fused, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.range(3, dtype="float32"))
        results.append([y, *tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])])
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-4)
    # Inference is Keras' own code path (fresh twins: the moving variances now differ by n / (n - 1)).
    fused, plain = twin_layers()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused(x, training=False)), keras.ops.convert_to_numpy(plain(x, training=False))
    )


def test_falls_back_to_keras_where_the_fused_kernel_does_not_apply():
    x = signals((2, 6, 3))
    mask = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]], bool)
    fused, plain = twin_layers()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fused(x, training=True, mask=mask)),
        keras.ops.convert_to_numpy(plain(x, training=True, mask=mask)),
        rtol=1e-5,
    )
    first_axis = FusedBatchNormalization(axis=1)
    assert not first_axis._fused(x, True, None)
    assert not FusedBatchNormalization()._fused(x.astype("float16"), True, None)
    assert not FusedBatchNormalization()._fused(x, False, None)


def test_without_scale_or_center_and_round_trip_through_keras_saving(tmp_path):
    layer = FusedBatchNormalization(center=False, scale=False)
    x = signals()
    y = keras.ops.convert_to_numpy(layer(x, training=True))
    np.testing.assert_allclose(y.reshape(-1, 3).mean(0), 0.0, atol=1e-5)
    inputs = keras.Input((5, 3))
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert isinstance(loaded.get_layer("bn"), FusedBatchNormalization)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(loaded(x)), keras.ops.convert_to_numpy(model(x)), rtol=1e-6)


def test_recalibration_drives_the_fused_layer():
    inputs = keras.Input((4, 3))
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(keras.layers.Dropout(0.5)(inputs)))
    data = [signals((5, 4, 3), seed=s) for s in range(3)]
    recalibrate_batch_norm(model, data, momentum=0.5)
    mean = var = np.zeros(3)
    for x in data:
        flat = x.reshape(-1, 3)
        mean = 0.5 * mean + 0.5 * flat.mean(0)
        var = 0.5 * var + 0.5 * flat.var(0, ddof=1)
    bn = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), mean / (1 - 0.5**3), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), var / (1 - 0.5**3), rtol=1e-4)
