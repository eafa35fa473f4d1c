"""The training engines: exact gradients of Eqs. 12-13, switches, KD, metrics."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stmd_keras.distill import MutualDistiller, SupervisedTrainer, kd_loss
from stmd_keras.knowledge import SleepGraph, TemporalRelation, spatial_loss, temporal_loss
from stmd_keras.models import build_cnn_rnn

L, C, FS = 3, 2, 8  # tiny: 240 samples per epoch


def tiny(filters, units, dropout=0.0, name=None):
    return build_cnn_rnn(filters, units, n_channels=C, seq_len=L, fs=FS, dropout=dropout, name=name)


def batch(seed=0, b=4):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((b, L, C, 30 * FS)).astype("float32")
    y = rng.integers(0, 5, (b, L)).astype("int32")
    return x, y


def weights(model):
    return [v.numpy() for v in model.trainable_variables]


def reference_terms(teacher, student, x, y):
    """Eqs. 10-13 computed directly, independently of the distiller."""
    t, s = teacher(x, training=True), student(x, training=True)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    sp = spatial_loss(SleepGraph()(s["features"]), SleepGraph()(t["features"]))
    tm = temporal_loss(TemporalRelation()(s["features"]), TemporalRelation()(t["features"]))
    return ce(y, t["logits"]), ce(y, s["logits"]), sp, tm


@pytest.mark.parametrize("alpha,beta,gamma", [(1.0, 5.0, 1.0), (0.5, 2.0, 3.0)])
def test_mutual_step_applies_exactly_eq12_to_teacher_and_eq13_to_student(alpha, beta, gamma):
    keras.utils.set_random_seed(1)
    teacher, student = tiny(6, 5, name="t"), tiny(3, 2, name="s")
    x, y = batch()
    # Reference gradients from two separate tapes: Loss^t wrt teacher, Loss^s wrt student.
    with tf.GradientTape(persistent=True) as tape:
        ce_t, ce_s, sp, tm = reference_terms(teacher, student, x, y)
        loss_t = alpha * ce_t + beta * sp + gamma * tm
        loss_s = alpha * ce_s + beta * sp + gamma * tm
    g_t = tape.gradient(loss_t, teacher.trainable_variables)
    g_s = tape.gradient(loss_s, student.trainable_variables)
    assert any(float(tf.reduce_sum(tf.abs(g))) > 0 for g in tape.gradient(sp, teacher.trainable_variables))

    before_t, before_s = weights(teacher), weights(student)
    d = MutualDistiller(teacher, student)
    d.compile(keras.optimizers.SGD(1.0), keras.optimizers.SGD(1.0), alpha=alpha, beta=beta, gamma=gamma)
    logs = d.train_on_batch(x, y, return_dict=True)
    for b, a, g in zip(before_t, weights(teacher), g_t):
        np.testing.assert_allclose(b - a, np.array(g), rtol=2e-3, atol=2e-6)
    for b, a, g in zip(before_s, weights(student), g_s):
        np.testing.assert_allclose(b - a, np.array(g), rtol=2e-3, atol=2e-6)
    np.testing.assert_allclose(logs["loss_teacher"], float(loss_t), rtol=1e-5)
    np.testing.assert_allclose(logs["loss_student"], float(loss_s), rtol=1e-5)
    np.testing.assert_allclose(logs["spatial"], float(sp), rtol=1e-5)
    np.testing.assert_allclose(logs["temporal"], float(tm), rtol=1e-5)


def test_frozen_teacher_is_not_updated_and_knowledge_flows_one_way():
    keras.utils.set_random_seed(2)
    teacher, student = tiny(6, 5, dropout=0.5, name="t"), tiny(3, 2, name="s")
    x, y = batch()
    before_t, before_s = weights(teacher), weights(student)
    d = MutualDistiller(teacher, student)
    d.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1), mutual=False)
    d.train_on_batch(x, y)
    for b, a in zip(before_t, weights(teacher)):
        np.testing.assert_array_equal(b, a)
    assert any(np.abs(b - a).max() > 0 for b, a in zip(before_s, weights(student)))


def test_switches_zero_the_disabled_terms():
    keras.utils.set_random_seed(3)
    d = MutualDistiller(tiny(4, 3, name="t"), tiny(3, 2, name="s"))
    d.compile(spatial=False, temporal=False, mutual=False)
    logs = d.train_on_batch(*batch(), return_dict=True)
    assert logs["spatial"] == 0.0 and logs["temporal"] == 0.0 and logs["kd"] == 0.0
    np.testing.assert_allclose(logs["loss_student"], logs["ce_student"], rtol=1e-6)


def np_kd(s, t, temp):
    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    p, q = softmax(t / temp), softmax(s / temp)
    return float(np.mean(np.sum(p * np.log(p / q), axis=-1)) * temp**2)


def test_kd_loss_matches_numpy_and_hand_value():
    rng = np.random.default_rng(0)
    s, t = rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 3, 5))
    for temp in (1.0, 4.0):
        np.testing.assert_allclose(float(kd_loss(s, t, temp)), np_kd(s, t, temp), rtol=1e-5)
    # Hand value: two classes, teacher (ln 3, 0) -> p = (3/4, 1/4); student (0, 0) -> q = (1/2, 1/2).
    expected = 0.75 * np.log(1.5) + 0.25 * np.log(0.5)
    got = float(kd_loss(np.array([[0.0, 0.0]]), np.array([[np.log(3.0), 0.0]]), 1.0))
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert float(kd_loss(t, t, 4.0)) == pytest.approx(0.0, abs=1e-6)


def test_kd_row_loss_is_weighted_ce_plus_kd():
    keras.utils.set_random_seed(4)
    d = MutualDistiller(tiny(4, 3, name="t"), tiny(3, 2, name="s"))
    d.compile(alpha=0.1, kd_weight=0.9, temperature=4.0, spatial=False, temporal=False, mutual=False)
    logs = d.test_on_batch(*batch(), return_dict=True)
    np.testing.assert_allclose(logs["loss_student"], 0.1 * logs["ce_student"] + 0.9 * logs["kd"], rtol=1e-5)
    assert logs["kd"] > 0


def test_metrics_reported_and_finite_on_degenerate_input():
    keras.utils.set_random_seed(5)
    d = MutualDistiller(tiny(4, 3, name="t"), tiny(3, 2, name="s"))
    d.compile()
    x = np.zeros((4, L, C, 30 * FS), "float32")  # zero features: zero norms, equal epochs
    y = np.zeros((4, L), "int32")
    logs = d.train_on_batch(x, y, return_dict=True)
    expected = {"loss_teacher", "loss_student", "ce_teacher", "ce_student", "spatial", "temporal",
                "kd", "teacher_accuracy", "student_accuracy", "teacher_macro_f1", "student_macro_f1"}
    assert expected <= set(logs)
    assert all(np.isfinite(v) for v in logs.values())
    big = batch()[0] * 1e4
    assert all(np.isfinite(v) for v in d.train_on_batch(big, y, return_dict=True).values())


def test_bad_settings_raise_clear_errors():
    d = MutualDistiller(tiny(4, 3, name="t"), tiny(3, 2, name="s"))
    with pytest.raises(ValueError, match="beta"):
        d.compile(beta=-1)
    with pytest.raises(ValueError, match="temperature"):
        d.compile(temperature=0)
    d.compile(distance="nope")
    with pytest.raises(ValueError, match="nope"):
        d.train_on_batch(*batch())


def test_fit_under_a_distribution_strategy():
    keras.utils.set_random_seed(6)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        d = MutualDistiller(tiny(4, 3, name="t"), tiny(3, 2, name="s"))
        d.compile()
    x, y = batch(b=8)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    history = d.fit(ds, epochs=2, verbose=0)
    assert len(history.history["loss_student"]) == 2
    assert np.isfinite(history.history["spatial"]).all()


def test_supervised_trainer_learns_a_separable_toy_problem():
    keras.utils.set_random_seed(7)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (64, L)).astype("int32")
    x = rng.standard_normal((64, L, C, 30 * FS)).astype("float32") * 0.1
    x += (y[..., None, None] * 2.0 - 1.0)  # the label sets the mean of the epoch
    trainer = SupervisedTrainer(tiny(4, 4, name="m"))
    trainer.compile(keras.optimizers.Adam(1e-2))
    history = trainer.fit(x, y, batch_size=8, epochs=8, verbose=0)
    assert history.history["accuracy"][-1] > 0.95
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("name", ["kd", "dkd", "fitnets", "nst", "rkd", "lsp", "dml"])
def test_baseline_method_step_trains_the_student_and_only_dml_trains_the_teacher(name):
    keras.utils.set_random_seed(2)
    teacher, student = tiny(6, 5, name="t"), tiny(3, 2, name="s")
    x, y = batch(b=2)
    before_t, before_s = weights(teacher), weights(student)
    d = MutualDistiller(teacher, student)
    d.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1), method=name)
    assert d.settings["method"] == d.method.name and d.settings["beta"] == d.settings["gamma"] == 0.0
    assert d.settings["alpha"] == d.method.ce_weight
    method_before = [v.numpy() for v in d.method.trainable_variables]
    logs = d.train_on_batch(x, y, return_dict=True)
    assert np.isfinite(logs["loss_student"]) and np.isfinite(logs["distill"])
    assert any(not np.array_equal(b, a) for b, a in zip(before_s, weights(student)))
    teacher_moved = any(not np.array_equal(b, a) for b, a in zip(before_t, weights(teacher)))
    assert teacher_moved == (name == "dml")
    if name == "fitnets":  # the hint regressor trains with the student's optimizer
        assert method_before and any(
            not np.array_equal(b, v.numpy()) for b, v in zip(method_before, d.method.trainable_variables))


def test_student_loss_is_ce_weight_times_ce_plus_the_methods_term():
    keras.utils.set_random_seed(3)
    teacher, student = tiny(6, 5, name="t"), tiny(3, 2, name="s")
    x, y = batch(b=2)
    d = MutualDistiller(teacher, student)
    d.compile(method="rkd", method_options={"group": "batch"})
    logs = d.test_on_batch(x, y, return_dict=True)
    ce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, student(x)["logits"])
    expected = 0.5 * float(ce) + d.method(teacher(x), student(x), y)
    np.testing.assert_allclose(logs["loss_student"], float(expected), rtol=1e-5)


def test_epoch_variable_follows_fit_for_warm_up_schedules():
    keras.utils.set_random_seed(4)
    teacher, student = tiny(6, 5, name="t"), tiny(3, 2, name="s")
    x, y = batch(b=2)
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    d = MutualDistiller(teacher, student)
    d.compile(method="dkd", method_options={"warmup": 4})
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: seen.append(int(d.epoch.numpy())))
    d.fit(ds, steps_per_epoch=1, epochs=3, initial_epoch=1, callbacks=[record], verbose=0)
    assert seen == [1, 2]  # resumed at epoch 1: the DKD ramp continues, it does not restart
    with pytest.raises(ValueError, match="Unknown distillation method"):
        MutualDistiller(teacher, student).compile(method="crd")
