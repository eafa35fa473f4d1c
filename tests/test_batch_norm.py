"""BatchNorm statistics re-estimated without dropout (stmd_keras.distill.batch_norm)."""

import keras
import numpy as np
import pytest

from stmd_keras.distill import SupervisedTrainer
from stmd_keras.distill.batch_norm import BatchNormRecalibration, batch_norm_layers, recalibrate_batch_norm


def dropout_then_bn(seq_len=2, width=3):
    """(B, L, width) -> {"logits": (B, L, 5)}, Dropout in front of BatchNorm."""
    x = keras.Input((seq_len, width))
    h = keras.layers.Dropout(0.5, name="drop")(x)
    h = keras.layers.BatchNormalization(name="bn")(h)
    return keras.Model(x, {"logits": keras.layers.Dense(5)(h)})


def batches(n=3, size=6, seq_len=2, width=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(loc=2.0, scale=3.0, size=(size, seq_len, width)).astype("float32") for _ in range(n)]


@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_statistics_are_the_bias_corrected_average_of_the_batch_moments(momentum):
    model = dropout_then_bn()
    data = batches()
    assert recalibrate_batch_norm(model, data, momentum=momentum) == 3
    # Independent NumPy: EMA from zero of each batch's mean / biased variance, bias-corrected.
    mean = var = np.zeros(3)
    for x in data:  # dropout off: the BN input is x itself
        mean = momentum * mean + (1 - momentum) * x.mean((0, 1))
        var = momentum * var + (1 - momentum) * x.var((0, 1))
    bn = model.get_layer("bn")
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_mean), mean / (1 - momentum**3), rtol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(bn.moving_variance), var / (1 - momentum**3), rtol=1e-4)
    # Dropout and momentum are restored.
    assert model.get_layer("drop").rate == 0.5 and bn.momentum == 0.99


def test_models_without_batch_norm_are_left_alone_and_bad_arguments_raise():
    x = keras.Input((2, 3))
    plain = keras.Model(x, keras.layers.Dense(2)(x))
    assert batch_norm_layers(plain) == [] and recalibrate_batch_norm(plain, batches()) == 0
    with pytest.raises(ValueError, match="momentum"):
        recalibrate_batch_norm(dropout_then_bn(), batches(), momentum=1.0)
    with pytest.raises(ValueError, match="at least one batch"):
        recalibrate_batch_norm(dropout_then_bn(), [])


def test_callback_recalibrates_before_validation_and_at_the_end():
    keras.utils.set_random_seed(0)
    model = dropout_then_bn()
    trainer = SupervisedTrainer(model)
    trainer.compile(keras.optimizers.Adam(1e-2))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, 2, 3)).astype("float32")
    y = rng.integers(0, 5, size=(16, 2))
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_test_begin(self, logs=None):  # runs after the recalibration (listed first)
            seen.append(keras.ops.convert_to_numpy(model.get_layer("bn").moving_mean).copy())

    calib = batches(n=2, seed=3)
    trainer.fit(x, y, batch_size=8, epochs=2, validation_data=(x, y), verbose=0,
                callbacks=[BatchNormRecalibration([model], lambda: calib, momentum=0.5), Spy()])
    expected = (0.5 * 0.5 * calib[0].mean((0, 1)) + 0.5 * calib[1].mean((0, 1))) / (1 - 0.25)
    assert len(seen) == 2
    for moving_mean in seen:
        np.testing.assert_allclose(moving_mean, expected, rtol=1e-5)


def test_runner_recalibrates_only_trained_models_with_batch_norm(tmp_path):
    from stmd_keras.distill import MutualDistiller
    from stmd_keras.models import build_cnn_rnn, build_deepsleepnet
    from stmd_keras.runner.datasets import load_experiment_data
    from stmd_keras.runner.settings import DataSettings, TrainSettings
    from stmd_keras.runner.training import RunContext, _batch_norm_callbacks

    settings = DataSettings(channel_set="single_eeg", n_subjects=3, n_val=1, n_test=1, night_epochs=20, seq_len=5)
    ctx = RunContext(data=load_experiment_data(settings), data_settings=settings, architecture="deepsleepnet",
                     train_settings=TrainSettings(epochs=1, batch_size=2), seed=0, work_dir=str(tmp_path))
    with_bn = build_deepsleepnet(filters=2, lstm_units=3, n_channels=1, seq_len=5, name="bn_student")
    (callback,) = _batch_norm_callbacks(SupervisedTrainer(with_bn), ctx)
    n = ctx.data.train.steps_per_epoch(2)
    assert len(list(callback.make_batches())) == min(16, n)  # finite, though the training stream repeats
    assert _batch_norm_callbacks(SupervisedTrainer(build_cnn_rnn(2, 2, n_channels=1, seq_len=5)), ctx) == []
    # A frozen teacher keeps its statistics; a mutual one is recalibrated too.
    teacher = build_deepsleepnet(filters=2, lstm_units=3, n_channels=1, seq_len=5, name="bn_teacher")
    distiller = MutualDistiller(teacher, with_bn)
    distiller.compile(keras.optimizers.Adam(), keras.optimizers.Adam(), mutual=False)
    (frozen,) = _batch_norm_callbacks(distiller, ctx)
    assert [r.model.name for r in frozen.recalibrators] == ["bn_student"]
    distiller.compile(keras.optimizers.Adam(), keras.optimizers.Adam(), mutual=True)
    (both,) = _batch_norm_callbacks(distiller, ctx)
    assert [r.model.name for r in both.recalibrators] == ["bn_teacher", "bn_student"]
