"""SleepKD and DGKD against independent NumPy float64 references."""

import keras
import numpy as np
import pytest

from stmd_keras.distill.sleepkd import (
    DGKD,
    SLEEPKD_METHODS,
    SleepKD,
    multilevel_feature_loss,
    soft_label_loss,
)

B, L, K = 2, 3, 4
D_E, D_S = 5, 4  # teacher widths of the epoch / sequence features
RTOL = 1e-5


def outputs(seed, d_e=D_E, d_s=D_S, scale=1.0):
    rng = np.random.default_rng(seed)
    return {
        "logits": (2.0 * rng.standard_normal((B, L, K))).astype("float32"),
        "epoch_features": np.abs(scale * rng.standard_normal((B, L, d_e))).astype("float32"),
        "sequence_features": (scale * rng.standard_normal((B, L, d_s))).astype("float32"),
        "features": np.abs(rng.standard_normal((B, L, 1, d_e))).astype("float32"),
    }


def labels(seed=9):
    return np.random.default_rng(seed).integers(0, K, (B, L)).astype("int32")


# --------------------------------------------------------------------------
# NumPy float64 references, one epoch (row) at a time.
# --------------------------------------------------------------------------


def np_softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def np_kl(p, q):
    return float(np.sum(p * np.log(p / q)))


def rows(x):
    x = np.asarray(x, dtype=float)
    return x.reshape(-1, x.shape[-1])


def np_mse(s, t):
    return float(np.mean([np.mean((ti - si) ** 2) for si, ti in zip(rows(s), rows(t))]))


def np_keras_kl(s, t):
    """tf.keras.losses.KLDivergence()(t, s): clip to [1e-7, 1], sum over d, mean."""
    out = []
    for si, ti in zip(rows(s), rows(t)):
        si, ti = np.clip(si, 1e-7, 1.0), np.clip(ti, 1e-7, 1.0)
        out.append(sum(a * np.log(a / b) for a, b in zip(ti, si)))
    return float(np.mean(out))


def np_kl_softmax(s, t):
    return float(np.mean([np_kl(np_softmax(ti), np_softmax(si)) for si, ti in zip(rows(s), rows(t))]))


def np_kd(s, t, temp):
    kls = [np_kl(np_softmax(ti / temp), np_softmax(si / temp)) for si, ti in zip(rows(s), rows(t))]
    return temp**2 * float(np.mean(kls))


def np_dense(x, layer):
    w, b = (np.asarray(v, dtype=float) for v in layer.get_weights())
    return np.asarray(x, dtype=float) @ w + b


# --------------------------------------------------------------------------
# Pure losses
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, reference", [("mse", np_mse), ("kl", np_keras_kl), ("kl_softmax", np_kl_softmax)]
)
def test_multilevel_feature_loss_matches_numpy(kind, reference):
    # scale 0.6 puts some features inside (0, 1) and some outside, so the
    # released KL's clipping is exercised.
    s, t = outputs(1, scale=0.6)["sequence_features"], outputs(2, scale=0.6)["sequence_features"]
    got = float(multilevel_feature_loss(s, t, kind))
    np.testing.assert_allclose(got, reference(s, t), rtol=RTOL)
    assert float(multilevel_feature_loss(t, t, kind)) == pytest.approx(0.0, abs=1e-6)


def test_released_kl_equals_keras_kl_divergence():
    s, t = outputs(1, scale=0.6)["epoch_features"], outputs(2, scale=0.6)["epoch_features"]
    keras_kl = float(keras.losses.KLDivergence()(t, s))
    np.testing.assert_allclose(float(multilevel_feature_loss(s, t, "kl")), keras_kl, rtol=RTOL)


def test_feature_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="kind"):
        multilevel_feature_loss(np.zeros((2, 3)), np.zeros((2, 3)), "l1")
    with pytest.raises(ValueError, match="same shape"):
        multilevel_feature_loss(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_soft_label_loss_matches_numpy(temperature):
    s, t = outputs(1)["logits"], outputs(2)["logits"]
    got = float(soft_label_loss(s, t, temperature))
    np.testing.assert_allclose(got, np_kd(s, t, temperature), rtol=RTOL)
    with pytest.raises(ValueError, match="rank 3"):
        soft_label_loss(s[0], t[0])
    with pytest.raises(ValueError, match="temperature"):
        soft_label_loss(s, t, 0.0)


def test_soft_label_loss_is_the_released_cross_entropy_minus_teacher_entropy():
    s, t = outputs(1)["logits"], outputs(2)["logits"]
    ce, ent = [], []
    for si, ti in zip(rows(s), rows(t)):
        p, q = np_softmax(ti), np_softmax(si)
        ce.append(-np.sum(p * np.log(q)))
        ent.append(-np.sum(p * np.log(p)))
    np.testing.assert_allclose(float(soft_label_loss(s, t)), np.mean(ce) - np.mean(ent), rtol=RTOL)


# --------------------------------------------------------------------------
# SleepKD
# --------------------------------------------------------------------------


def np_sleepkd(method, t, s, feature_ref=np_mse):
    se, ss = s["epoch_features"], s["sequence_features"]
    if method.epoch_projection is not None:
        se = np_dense(se, method.epoch_projection)
    if method.sequence_projection is not None:
        ss = np_dense(ss, method.sequence_projection)
    epoch = feature_ref(se, t["epoch_features"]) if method.use_epoch else 0.0
    seq = feature_ref(ss, t["sequence_features"]) if method.use_sequence else 0.0
    soft = np_kd(s["logits"], t["logits"], method.temperature) if method.use_soft else 0.0
    total = method.epoch_weight * epoch + method.sequence_weight * seq + method.soft_weight * soft
    return method.loss_weight * total, (epoch, seq, soft)


def test_sleepkd_defaults_are_the_released_layers():
    m = SleepKD()
    assert (m.ce_weight, m.soft_weight, m.epoch_weight, m.sequence_weight) == (0.1, 0.4, 0.3, 0.2)
    assert (m.temperature, m.feature_loss, m.loss_weight) == (1.0, "mse", 1.0)


@pytest.mark.parametrize("kind, reference", [("mse", np_mse), ("kl", np_keras_kl)])
def test_sleepkd_total_is_the_weighted_sum_of_numpy_terms(kind, reference):
    t, s = outputs(1), outputs(2, d_e=3, d_s=2)
    m = SleepKD(feature_loss=kind)
    m.build_for(t, s)
    expected, (epoch, seq, soft) = np_sleepkd(m, t, s, reference)
    got = m.terms(t, s)
    np.testing.assert_allclose(float(got["epoch"]), epoch, rtol=RTOL)
    np.testing.assert_allclose(float(got["sequence"]), seq, rtol=RTOL)
    np.testing.assert_allclose(float(got["soft"]), soft, rtol=RTOL)
    np.testing.assert_allclose(float(m(t, s, labels(), epoch=0)), expected, rtol=RTOL)


def test_projections_only_where_widths_differ_and_trainable():
    t = outputs(1)
    same = SleepKD()
    same.build_for(t, outputs(2))
    assert same.epoch_projection is None and same.sequence_projection is None
    assert same.trainable_variables == []

    only_seq = SleepKD()
    only_seq.build_for(t, outputs(2, d_e=D_E, d_s=3))
    assert only_seq.epoch_projection is None
    assert only_seq.sequence_projection.kernel.shape == (3, D_S)
    assert len(only_seq.trainable_variables) == 2

    both = SleepKD()
    both.build_for(t, outputs(2, d_e=2, d_s=3))
    assert both.epoch_projection.kernel.shape == (2, D_E)
    assert both.sequence_projection.kernel.shape == (3, D_S)
    assert len(both.trainable_variables) == 4

    # No projection for a disabled term (it would get no gradient).
    off = SleepKD(use_epoch=False)
    off.build_for(t, outputs(2, d_e=2, d_s=3))
    assert off.epoch_projection is None and off.sequence_projection is not None


def test_projection_receives_gradients_and_teacher_does_not():
    import tensorflow as tf

    t, s = outputs(1), outputs(2, d_e=2, d_s=3)
    m = SleepKD()
    m.build_for(t, s)
    t_vars = {k: tf.Variable(v) for k, v in t.items()}
    with tf.GradientTape() as tape:
        loss = m(t_vars, s, labels(), epoch=0)
    grads = tape.gradient(loss, m.trainable_variables + [t_vars["epoch_features"]])
    assert all(g is not None and np.all(np.isfinite(g)) for g in grads[:-1])
    assert grads[-1] is None


@pytest.mark.parametrize(
    "switch, zeroed", [("use_sequence", "sequence"), ("use_epoch", "epoch"), ("use_soft", "soft")]
)
def test_switches_zero_their_term(switch, zeroed):
    t, s = outputs(1), outputs(2)
    full, ablated = SleepKD(), SleepKD(**{switch: False})
    for m in (full, ablated):
        m.build_for(t, s)
    full_terms, ablated_terms = full.terms(t, s), ablated.terms(t, s)
    assert float(ablated_terms[zeroed]) == 0.0
    assert float(full_terms[zeroed]) > 0.0
    weight = {"epoch": full.epoch_weight, "sequence": full.sequence_weight, "soft": full.soft_weight}[zeroed]
    np.testing.assert_allclose(
        float(ablated(t, s, labels())),
        float(full(t, s, labels())) - weight * float(full_terms[zeroed]),
        rtol=RTOL,
    )
    assert ablated.ce_weight == 0.1


def test_use_hard_false_zeroes_the_cross_entropy_weight():
    m = SleepKD(use_hard=False)
    assert m.ce_weight == 0.0
    t, s = outputs(1), outputs(2)
    m.build_for(t, s)
    ref = SleepKD()
    ref.build_for(t, s)
    np.testing.assert_allclose(float(m(t, s, labels())), float(ref(t, s, labels())), rtol=RTOL)


def test_sleepkd_needs_the_multilevel_outputs():
    t = outputs(1)
    with pytest.raises(ValueError, match="epoch_features"):
        SleepKD().build_for({"logits": t["logits"], "features": t["features"]}, t)
    with pytest.raises(ValueError, match="feature_loss"):
        SleepKD(feature_loss="l2")


def test_sleepkd_config_round_trip_and_build_config():
    m = SleepKD(
        epoch_weight=0.5, sequence_weight=0.0, soft_weight=0.25, temperature=2.0,
        feature_loss="kl", use_soft=False, use_hard=False, name="skd",
    )
    config = m.get_config()
    clone = SleepKD.from_config(config)
    assert clone.get_config() == config
    assert clone.ce_weight == 0.0

    t, s = outputs(1), outputs(2, d_e=2, d_s=3)
    m = SleepKD()
    m.build_for(t, s)
    restored = keras.layers.deserialize(keras.layers.serialize(m))
    assert restored.get_config() == m.get_config()
    restored.build_from_config(m.get_build_config())
    assert restored.epoch_projection.kernel.shape == m.epoch_projection.kernel.shape
    assert restored.sequence_projection.kernel.shape == m.sequence_projection.kernel.shape
    restored.set_weights(m.get_weights())
    np.testing.assert_allclose(float(restored(t, s, labels())), float(m(t, s, labels())), rtol=RTOL)


# --------------------------------------------------------------------------
# DGKD
# --------------------------------------------------------------------------


def guides(n=3):
    return [outputs(10 + i) for i in range(n)]


def test_dgkd_without_dropping_is_the_mean_kd_over_guides():
    g, s = guides(3), outputs(2)
    m = DGKD(drop_prob=0.0, temperature=2.0)
    m.build_for(g, s)
    expected = m.loss_weight * np.mean([np_kd(s["logits"], gi["logits"], 2.0) for gi in g])
    np.testing.assert_allclose(float(m(g, s, labels(), epoch=0)), expected, rtol=RTOL)
    # A single dict is one guide.
    np.testing.assert_allclose(
        float(m(g[0], s, labels(), epoch=0)),
        m.loss_weight * np_kd(s["logits"], g[0]["logits"], 2.0), rtol=RTOL,
    )


def test_dgkd_drops_guides_reproducibly_and_averages_the_rest():
    g, s = guides(3), outputs(2)
    kds = np.array([np_kd(s["logits"], gi["logits"], 4.0) for gi in g])
    # Same seed, same draws: this first mask is the one `m` draws below.
    mask = np.asarray(DGKD(drop_prob=0.5, seed=3).sample_keep_mask(3))
    assert set(np.unique(mask)) <= {0.0, 1.0} and 1 <= mask.sum() <= 2, mask
    m = DGKD(drop_prob=0.5, seed=3)
    got = float(m(g, s, labels(), epoch=0))
    expected = m.loss_weight * kds[mask == 1].mean()
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    # Reproducible: a new layer with the same seed draws the same sequence.
    again = DGKD(drop_prob=0.5, seed=3)
    assert float(again(g, s, labels(), epoch=0)) == pytest.approx(got, rel=RTOL)
    # Evaluation (epoch=None) uses every guide.
    np.testing.assert_allclose(float(m(g, s, labels())), m.loss_weight * kds.mean(), rtol=RTOL)


def test_dgkd_drop_one_of_two_guides_with_a_fixed_seed():
    g, s = guides(2), outputs(2)
    kds = [np_kd(s["logits"], gi["logits"], 4.0) for gi in g]
    # Find (deterministically) a seed whose first draw keeps exactly one guide.
    seed = next(
        sd for sd in range(50)
        if float(np.sum(DGKD(drop_prob=0.5, seed=sd).sample_keep_mask(2))) == 1.0
    )
    mask = np.asarray(DGKD(drop_prob=0.5, seed=seed).sample_keep_mask(2))
    kept = int(np.argmax(mask))
    m = DGKD(drop_prob=0.5, seed=seed)
    np.testing.assert_allclose(
        float(m(g, s, labels(), epoch=0)), m.loss_weight * kds[kept], rtol=RTOL
    )


@pytest.mark.parametrize("p", [0.9, 1.0])
def test_dgkd_keeps_at_least_one_guide(p):
    m = DGKD(drop_prob=p, seed=0)
    masks = np.stack([np.asarray(m.sample_keep_mask(3)) for _ in range(30)])
    assert np.all(masks.sum(axis=1) >= 1)
    if p == 1.0:
        assert np.all(masks.sum(axis=1) == 1)  # exactly one guide, drawn at random
        assert len({int(np.argmax(r)) for r in masks}) > 1


def test_dgkd_stops_the_guides_gradients():
    import tensorflow as tf

    g, s = guides(2), outputs(2)
    g_logits = tf.Variable(g[0]["logits"])
    s_logits = tf.Variable(s["logits"])
    m = DGKD(drop_prob=0.0)
    with tf.GradientTape() as tape:
        loss = m([{"logits": g_logits}, g[1]], {"logits": s_logits}, labels(), epoch=0)
    grad_g, grad_s = tape.gradient(loss, [g_logits, s_logits])
    assert grad_g is None and grad_s is not None


def test_dgkd_config_round_trip_and_validation():
    m = DGKD(temperature=3.0, drop_prob=0.25, seed=7, ce_weight=0.2, loss_weight=0.8, name="dg")
    config = m.get_config()
    assert DGKD.from_config(config).get_config() == config
    with pytest.raises(ValueError, match="drop_prob"):
        DGKD(drop_prob=1.5)
    assert DGKD().ce_weight == 0.1 and DGKD().loss_weight == 0.9


def test_registry_dict():
    assert SLEEPKD_METHODS == {"sleepkd": SleepKD, "dgkd": DGKD}


def test_dgkd_draws_fresh_masks_inside_a_traced_function():
    import tensorflow as tf

    g, s = guides(3), outputs(2)
    m = DGKD(drop_prob=0.5, seed=1)
    step = tf.function(lambda: m.sample_keep_mask(3))
    masks = np.stack([np.asarray(step()) for _ in range(12)])
    assert np.all(masks.sum(axis=1) >= 1)
    assert len({tuple(r) for r in masks}) > 1  # the seed state advances per call
    traced = tf.function(lambda: m(g, s, labels(), epoch=0))
    assert np.isfinite(float(traced()))


def test_sleepkd_trains_a_tiny_deepsleepnet_student_with_the_mutual_distiller():
    from stmd_keras.distill.mutual import MutualDistiller
    from stmd_keras.models.deepsleepnet import build_deepsleepnet

    small = dict(seq_len=2, fs=16, epoch_sec=8, n_channels=1)
    teacher = build_deepsleepnet(filters=4, lstm_units=3, name="t", **small)
    student = build_deepsleepnet(filters=2, lstm_units=2, name="s", **small)
    distiller = MutualDistiller(teacher, student)
    distiller.compile(keras.optimizers.Adam(1e-3), keras.optimizers.Adam(1e-3), method=SleepKD())
    method = distiller.method
    assert method.epoch_projection is not None and method.sequence_projection is not None
    assert distiller.settings["alpha"] == 0.1 and not distiller.settings["mutual"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 2, 1, 16 * 8)).astype("float32")
    y = rng.integers(0, 5, (2, 2)).astype("int32")
    before = [v.numpy().copy() for v in method.trainable_variables]
    t_before = [v.numpy().copy() for v in teacher.trainable_variables]
    logs = distiller.fit(x, y, batch_size=2, epochs=1, verbose=0).history
    assert np.isfinite(logs["distill"][0]) and logs["distill"][0] > 0
    assert any(not np.allclose(a, v.numpy()) for a, v in zip(before, method.trainable_variables))
    assert all(np.allclose(a, v.numpy()) for a, v in zip(t_before, teacher.trainable_variables))


def test_distiller_passes_frozen_guides_to_dgkd_and_refuses_them_for_one_teacher_methods():
    from stmd_keras.distill import MutualDistiller
    from stmd_keras.models import build_cnn_rnn

    keras.utils.set_random_seed(0)
    tiny = lambda f, u, n: build_cnn_rnn(f, u, n_channels=2, seq_len=3, fs=8, name=n)  # noqa: E731
    teacher, ta, student = tiny(6, 5, "t"), tiny(4, 3, "ta"), tiny(3, 2, "s")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 2, 240)).astype("float32")
    y = rng.integers(0, 5, (2, 3)).astype("int32")
    frozen = [v.numpy() for v in teacher.trainable_variables + ta.trainable_variables]
    d = MutualDistiller(teacher, student, guides=[ta])
    d.compile(method="dgkd", method_options={"drop_prob": 0.0})
    logs = d.test_on_batch(x, y, return_dict=True)
    t_logits, ta_logits, s_logits = (m(x)["logits"] for m in (teacher, ta, student))
    from stmd_keras.distill.objectives import kd_loss

    expected = 0.9 * (float(kd_loss(s_logits, t_logits, 4.0)) + float(kd_loss(s_logits, ta_logits, 4.0))) / 2
    np.testing.assert_allclose(logs["distill"], expected, rtol=1e-5)
    d.train_on_batch(x, y)
    after = [v.numpy() for v in teacher.trainable_variables + ta.trainable_variables]
    assert all(np.array_equal(a, b) for a, b in zip(frozen, after))  # guides stay frozen
    with pytest.raises(ValueError, match="takes one teacher"):
        MutualDistiller(teacher, student, guides=[ta]).compile(method="kd")
