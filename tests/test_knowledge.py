"""Tests for stmd_keras.knowledge against independent NumPy float64 references."""

import math

import keras
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import tensorflow as tf

from stmd_keras.knowledge import (
    GRAPH_DISTANCES,
    SleepGraph,
    TemporalRelation,
    graph_distance,
    spatial_loss,
    temporal_loss,
)
from stmd_keras.knowledge.losses import spatial_mmd, spatial_wasserstein

B, L, C, F = 2, 3, 4, 5


# --------------------------------------------------------------------------
# Independent NumPy float64 references (explicit loops, no shared code).
# --------------------------------------------------------------------------


def np_sleep_graph(x):
    x = np.asarray(x, dtype=np.float64)
    b, l, c, _ = x.shape
    out = np.zeros((b, l, c, c))
    for bi in range(b):
        for li in range(l):
            cos = np.zeros((c, c))
            for i in range(c):
                for j in range(c):
                    ni = np.linalg.norm(x[bi, li, i])
                    nj = np.linalg.norm(x[bi, li, j])
                    if ni == 0 or nj == 0:
                        cos[i, j] = 0.0
                    else:
                        cos[i, j] = x[bi, li, i] @ x[bi, li, j] / (ni * nj)
            for i in range(c):
                e = np.exp(cos[i])
                out[bi, li, i] = e / e.sum()
    return out


def np_temporal_relation(x, normalize=False):
    x = np.asarray(x, dtype=np.float64)
    b, l = x.shape[:2]
    u = x.reshape(b, l, -1)
    out = np.zeros((b, l, l))
    for bi in range(b):
        for i in range(l):
            for j in range(l):
                out[bi, i, j] = math.sqrt(np.sum((u[bi, i] - u[bi, j]) ** 2))
        if normalize:
            off = out[bi][~np.eye(l, dtype=bool)]
            out[bi] /= off.mean()
    return out


def np_kl_rows(p, q):
    """Mean over all rows of sum_j p_j log(p_j / q_j)."""
    p = np.asarray(p, dtype=np.float64).reshape(-1, np.shape(p)[-1])
    q = np.asarray(q, dtype=np.float64).reshape(-1, np.shape(q)[-1])
    total = 0.0
    for pr, qr in zip(p, q):
        total += sum(pj * math.log(pj / qj) for pj, qj in zip(pr, qr) if pj > 0)
    return total / len(p)


def np_smooth_l1(a, b):
    d = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).ravel()
    return np.mean([0.5 * v * v if v < 1 else v - 0.5 for v in d])


def random_features(seed=0, shape=(B, L, C, F), scale=1.0):
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal(shape)).astype("float32")


def random_graph(seed):
    logits = np.random.default_rng(seed).standard_normal((B, L, C, C))
    e = np.exp(logits)
    return (e / e.sum(-1, keepdims=True)).astype("float32")


def value_and_grad(fn, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = fn(x)
        s = tf.reduce_sum(y * tf.random.stateless_normal(y.shape, [1, 2]))
    return y.numpy(), tape.gradient(s, x).numpy()


# --------------------------------------------------------------------------
# SleepGraph
# --------------------------------------------------------------------------


def test_sleep_graph_matches_numpy():
    x = random_features(0)
    y = SleepGraph()(x)
    assert tuple(y.shape) == (B, L, C, C)
    np.testing.assert_allclose(y.numpy(), np_sleep_graph(x), atol=1e-6)
    np.testing.assert_allclose(y.numpy().sum(-1), 1.0, atol=1e-6)


def test_sleep_graph_hand_computed_orthogonal_channels():
    x = np.array([[[[1.0, 0.0], [0.0, 1.0]]]], dtype="float32")  # (1,1,2,2)
    e = math.e
    expected = np.array([[e / (e + 1), 1 / (e + 1)], [1 / (e + 1), e / (e + 1)]])
    np.testing.assert_allclose(SleepGraph()(x).numpy()[0, 0], expected, atol=1e-6)


def test_sleep_graph_output_shape():
    layer = SleepGraph()
    assert layer.compute_output_shape((None, 20, 6, 128)) == (None, 20, 6, 6)
    assert layer(keras.Input((20, 6, 128))).shape == (None, 20, 6, 6)


def test_sleep_graph_rejects_wrong_rank():
    with pytest.raises(ValueError, match="input_shape"):
        SleepGraph()(np.zeros((2, 4, 5), "float32"))


def test_sleep_graph_zero_norm_channel():
    x = random_features(1)
    x[:, :, 2, :] = 0.0
    y, g = value_and_grad(SleepGraph(), x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    # A zero channel has cosine 0 with every channel: its row is uniform.
    np.testing.assert_allclose(y[:, :, 2, :], 1.0 / C, atol=1e-6)
    np.testing.assert_allclose(y, np_sleep_graph(x), atol=1e-6)


def test_sleep_graph_identical_channels():
    x = np.repeat(random_features(2, (B, L, 1, F)), C, axis=2)
    y, g = value_and_grad(SleepGraph(), x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    np.testing.assert_allclose(y, 1.0 / C, atol=1e-6)


def test_sleep_graph_large_magnitude():
    x = random_features(3)
    y, g = value_and_grad(SleepGraph(), x * 1e6)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    # Cosine similarity is scale invariant.
    np.testing.assert_allclose(y, np_sleep_graph(x), atol=1e-6)


# --------------------------------------------------------------------------
# TemporalRelation
# --------------------------------------------------------------------------


def test_temporal_relation_matches_numpy():
    x = random_features(4)
    y = TemporalRelation()(x).numpy()
    assert y.shape == (B, L, L)
    np.testing.assert_allclose(y, np_temporal_relation(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, np.swapaxes(y, 1, 2))
    np.testing.assert_allclose(np.diagonal(y, axis1=1, axis2=2), 0.0, atol=1e-6)


def test_temporal_relation_hand_computed():
    # Epoch 0 is the origin, epoch 1 is (3, 4) over (C=1, F=2): distance 5.
    x = np.array([[[[0.0, 0.0]], [[3.0, 4.0]]]], dtype="float32")
    np.testing.assert_allclose(
        TemporalRelation()(x).numpy()[0], [[0.0, 5.0], [5.0, 0.0]], atol=1e-5
    )
    np.testing.assert_allclose(
        TemporalRelation(normalize=True)(x).numpy()[0],
        [[0.0, 1.0], [1.0, 0.0]],
        atol=1e-6,
    )


def test_temporal_relation_output_shape():
    layer = TemporalRelation()
    assert layer.compute_output_shape((None, 20, 6, 128)) == (None, 20, 20)
    assert layer(keras.Input((20, 6, 128))).shape == (None, 20, 20)


def test_temporal_relation_rejects_bad_arguments():
    with pytest.raises(ValueError, match="normalize='yes'"):
        TemporalRelation(normalize="yes")
    with pytest.raises(ValueError, match="input_shape"):
        TemporalRelation()(np.zeros((2, 3, 5), "float32"))


def test_temporal_relation_normalize():
    x = random_features(5, (B, 6, C, F))
    y = TemporalRelation(normalize=True)(x).numpy()
    off = ~np.eye(6, dtype=bool)
    for bi in range(B):
        np.testing.assert_allclose(y[bi][off].mean(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        y, np_temporal_relation(x, normalize=True), rtol=1e-5, atol=1e-6
    )


def test_temporal_relation_identical_epochs_zero_and_finite_grad():
    x = np.repeat(random_features(6, (B, 1, C, F)), L, axis=1)
    for normalize in (False, True):
        y, g = value_and_grad(TemporalRelation(normalize=normalize), x)
        np.testing.assert_array_equal(y, 0.0)
        assert np.all(np.isfinite(g))


def test_temporal_relation_gradient_finite_with_zero_diagonal():
    x = random_features(7)
    x[:, 1] = x[:, 0]  # one off-diagonal zero as well
    for normalize in (False, True):
        y, g = value_and_grad(TemporalRelation(normalize=normalize), x)
        assert np.all(np.isfinite(g)) and np.any(g != 0)
        np.testing.assert_allclose(y[:, 0, 1], 0.0, atol=1e-6)


@pytest.mark.parametrize("scale", [1e3, 1e6])
def test_temporal_relation_large_magnitude(scale):
    x = random_features(8, scale=scale)
    y, g = value_and_grad(TemporalRelation(), x)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(g))
    ref = np_temporal_relation(x)
    off = ~np.eye(L, dtype=bool)
    rel = np.abs(y[:, off] - ref[:, off]) / ref[:, off]
    assert rel.max() < 1e-4


def test_temporal_relation_large_common_offset():
    # Epochs 1e3 apart from the origin but ~1 apart from each other: the
    # plain Gram trick loses every digit here; centring keeps them.
    x = (1e3 + random_features(9)).astype("float32")
    y = TemporalRelation()(x).numpy()
    ref = np_temporal_relation(x)
    off = ~np.eye(L, dtype=bool)
    rel = np.abs(y[:, off] - ref[:, off]) / ref[:, off]
    assert rel.max() < 1e-4


def test_layers_in_tf_function_with_dynamic_shapes():
    sleep_graph, relation = SleepGraph(), TemporalRelation(normalize=True)

    @tf.function(input_signature=[tf.TensorSpec((None, None, C, F), tf.float32)])
    def fn(x):
        return sleep_graph(x), relation(x)

    x = random_features(10)
    graph, rel = fn(tf.constant(x))
    np.testing.assert_allclose(graph.numpy(), np_sleep_graph(x), atol=1e-6)
    np.testing.assert_allclose(
        rel.numpy(), np_temporal_relation(x, normalize=True), rtol=1e-5, atol=1e-6
    )


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


def test_spatial_loss_matches_numpy_both_directions():
    s, t = random_graph(11), random_graph(12)
    loss = spatial_loss(s, t)
    assert loss.dtype == "float32" and tuple(loss.shape) == ()
    np.testing.assert_allclose(float(loss), np_kl_rows(s, t), rtol=1e-5)
    reverse = spatial_loss(s, t, direction="teacher_student")
    np.testing.assert_allclose(float(reverse), np_kl_rows(t, s), rtol=1e-5)
    assert abs(float(loss) - float(reverse)) > 1e-4  # KL is not symmetric


def test_spatial_loss_hand_computed():
    s = np.array([[[[0.5, 0.5], [0.5, 0.5]]]], dtype="float32")
    t = np.array([[[[0.25, 0.75], [0.5, 0.5]]]], dtype="float32")
    node0 = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    np.testing.assert_allclose(float(spatial_loss(s, t)), node0 / 2, rtol=1e-5)


def test_spatial_loss_zero_for_identical_positive_otherwise():
    s, t = random_graph(13), random_graph(14)
    assert abs(float(spatial_loss(s, s))) < 1e-7
    assert abs(float(spatial_loss(s, s, direction="teacher_student"))) < 1e-7
    assert float(spatial_loss(s, t)) > 1e-3


def test_spatial_loss_zero_entries_finite():
    s = np.array([[[[1.0, 0.0], [0.0, 1.0]]]], dtype="float32")
    t = np.array([[[[0.0, 1.0], [0.5, 0.5]]]], dtype="float32")
    for direction in ("student_teacher", "teacher_student"):
        s_var, t_var = tf.Variable(s), tf.Variable(t)
        with tf.GradientTape() as tape:
            loss = spatial_loss(s_var, t_var, direction=direction)
        gs, gt = tape.gradient(loss, [s_var, t_var])
        assert np.isfinite(float(loss)) and float(loss) > 0
        assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gt))
    assert abs(float(spatial_loss(s, s))) < 1e-7


def test_spatial_loss_bad_direction_and_shape():
    g = random_graph(15)
    with pytest.raises(ValueError, match="sideways"):
        spatial_loss(g, g, direction="sideways")
    with pytest.raises(ValueError, match="same shape"):
        spatial_loss(g, g[:, :, :2, :2])


def test_temporal_loss_quadratic_and_linear_regimes():
    s = np.zeros((1, 2, 2), "float32")
    t = np.array([[[0.5, 3.0], [-0.2, -2.0]]], dtype="float32")
    expected = (0.5 * 0.25 + 2.5 + 0.5 * 0.04 + 1.5) / 4
    loss = float(temporal_loss(s, t))
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(loss, np_smooth_l1(s, t), rtol=1e-6)

    rng = np.random.default_rng(16)
    a = (3 * rng.standard_normal((B, L, L))).astype("float32")
    b = (3 * rng.standard_normal((B, L, L))).astype("float32")
    d = np.abs(a - b)
    assert np.any(d < 1) and np.any(d >= 1)  # both regimes exercised
    loss = temporal_loss(a, b)
    assert loss.dtype == "float32" and tuple(loss.shape) == ()
    np.testing.assert_allclose(float(loss), np_smooth_l1(a, b), rtol=1e-5)
    assert float(temporal_loss(a, a)) == 0.0


def test_temporal_loss_bad_shape():
    with pytest.raises(ValueError, match="same shape"):
        temporal_loss(np.zeros((1, 3, 3)), np.zeros((1, 2, 2)))


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_losses_accept_any_float_dtype(dtype):
    s, t = random_graph(17), random_graph(18)
    loss = spatial_loss(tf.constant(s, dtype), tf.constant(t, dtype))
    assert loss.dtype == "float32"
    np.testing.assert_allclose(float(loss), np_kl_rows(s, t), rtol=5e-2)
    a, b = random_features(19, (B, L, L)), random_features(20, (B, L, L))
    loss = temporal_loss(tf.constant(a, dtype), tf.constant(b, dtype))
    assert loss.dtype == "float32"
    np.testing.assert_allclose(float(loss), np_smooth_l1(a, b), rtol=1e-2)


def test_gradients_flow_to_both_arguments():
    fs = tf.Variable(random_features(21))
    ft = tf.Variable(random_features(22))
    with tf.GradientTape(persistent=True) as tape:
        spatial = spatial_loss(SleepGraph()(fs), SleepGraph()(ft))
        temporal = temporal_loss(TemporalRelation()(fs), TemporalRelation()(ft))
    for loss in (spatial, temporal):
        for g in tape.gradient(loss, [fs, ft]):
            assert g is not None
            assert np.all(np.isfinite(g)) and np.any(np.abs(g.numpy()) > 0)


def test_graph_distance_registry():
    s, t = random_graph(23), random_graph(24)
    assert GRAPH_DISTANCES["kl"] is spatial_loss
    assert float(graph_distance(s, t)) == float(spatial_loss(s, t))
    np.testing.assert_allclose(
        float(graph_distance(s, t, "kl", direction="teacher_student")),
        np_kl_rows(t, s),
        rtol=1e-5,
    )
    with pytest.raises(
        ValueError, match=r"\['kl', 'mmd', 'wasserstein'\].*'sinkhorn'"
    ):
        graph_distance(s, t, distance="sinkhorn")


# --------------------------------------------------------------------------
# Serialization
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "layer", [SleepGraph(name="graph"), TemporalRelation(normalize=True, name="rel")]
)
def test_layer_serialize_round_trip(layer):
    config = keras.layers.serialize(layer)
    assert config["registered_name"].startswith("stmd_keras>")
    restored = keras.layers.deserialize(config)
    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()


def test_model_save_and_load(tmp_path):
    inputs = keras.Input((L, C, F))
    graph = SleepGraph(name="graph")(inputs)
    rel = TemporalRelation(normalize=True, name="rel")(inputs)
    model = keras.Model(inputs, [graph, rel])
    path = tmp_path / "knowledge.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    assert loaded.get_layer("rel").normalize is True
    x = random_features(25)
    before, after = model.predict(x, verbose=0), loaded.predict(x, verbose=0)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------
# Alternative sleep-graph distances (Table 17): Wasserstein and MMD
# --------------------------------------------------------------------------

SUPPORTS = ("index", "onehot", "samples")
ALT_DISTANCES = [
    (fn, support) for fn in (spatial_wasserstein, spatial_mmd) for support in SUPPORTS
]
ALT_IDS = [f"{fn.__name__}-{support}" for fn, support in ALT_DISTANCES]


def np_support_points(row, support):
    """(points, weights) of one node distribution, float64, points 2-D."""
    row = np.asarray(row, np.float64)
    c = len(row)
    if support == "index":
        return np.arange(c, dtype=np.float64)[:, None], row
    if support == "onehot":
        return np.eye(c), row
    return row[:, None], np.full(c, 1.0 / c)


def np_ot_w1(p_points, p_weights, q_points, q_weights):
    """Exact W1 by the transport linear program (Euclidean ground cost)."""
    n, m = len(p_weights), len(q_weights)
    p_weights = p_weights / p_weights.sum()
    q_weights = q_weights / q_weights.sum()
    cost = np.array(
        [
            [np.linalg.norm(p_points[a] - q_points[b]) for b in range(m)]
            for a in range(n)
        ]
    )
    a_eq, b_eq = [], []
    for a in range(n):  # plan rows sum to p
        row = np.zeros((n, m))
        row[a, :] = 1
        a_eq.append(row.ravel())
        b_eq.append(p_weights[a])
    for b in range(m - 1):  # plan columns sum to q (last one is implied)
        col = np.zeros((n, m))
        col[:, b] = 1
        a_eq.append(col.ravel())
        b_eq.append(q_weights[b])
    res = scipy.optimize.linprog(
        cost.ravel(), A_eq=np.array(a_eq), b_eq=b_eq, bounds=(0, None), method="highs"
    )
    assert res.success
    return res.fun


def np_mmd2(p_points, p_weights, q_points, q_weights, sigma):
    def mean_k(xs, wx, ys, wy):
        return sum(
            wx[a] * wy[b] * math.exp(-np.sum((xs[a] - ys[b]) ** 2) / (2 * sigma**2))
            for a in range(len(wx))
            for b in range(len(wy))
        )

    return (
        mean_k(p_points, p_weights, p_points, p_weights)
        + mean_k(q_points, q_weights, q_points, q_weights)
        - 2 * mean_k(p_points, p_weights, q_points, q_weights)
    )


def np_graph_mean(s, t, per_node):
    s = np.asarray(s, np.float64).reshape(-1, np.shape(s)[-1])
    t = np.asarray(t, np.float64).reshape(-1, np.shape(t)[-1])
    return np.mean([per_node(sr, tr) for sr, tr in zip(s, t)])


@pytest.mark.parametrize("support", SUPPORTS)
def test_graph_wasserstein_matches_ot_reference(support):
    s, t = random_graph(30), random_graph(31)
    loss = spatial_wasserstein(s, t, support=support)
    assert loss.dtype == "float32" and tuple(loss.shape) == ()

    def per_node(sr, tr):
        return np_ot_w1(
            *np_support_points(sr, support), *np_support_points(tr, support)
        )

    np.testing.assert_allclose(float(loss), np_graph_mean(s, t, per_node), rtol=1e-5)
    if support == "samples":  # the same reading as scipy's default
        ref = np_graph_mean(s, t, scipy.stats.wasserstein_distance)
        np.testing.assert_allclose(float(loss), ref, rtol=1e-5)


@pytest.mark.parametrize(
    "support, bandwidth",
    [("index", None), ("index", 0.5), ("onehot", None), ("onehot", 2.0),
     ("samples", None), ("samples", 0.3)],
)
def test_graph_mmd_matches_numpy(support, bandwidth):
    s, t = random_graph(32), random_graph(33)
    loss = spatial_mmd(s, t, support=support, bandwidth=bandwidth)
    assert loss.dtype == "float32" and tuple(loss.shape) == ()
    sigma = bandwidth or (1.0 / C if support == "samples" else 1.0)

    def per_node(sr, tr):
        return np_mmd2(
            *np_support_points(sr, support), *np_support_points(tr, support), sigma
        )

    np.testing.assert_allclose(float(loss), np_graph_mean(s, t, per_node), rtol=1e-4)


def test_graph_distances_hand_computed():
    # C = 3, one graph of one epoch. Node 0: all mass on channel 1 (student)
    # vs channel 3 (teacher); nodes 1 and 2 are identical, so each loss is
    # node 0's distance / 3.
    s = np.array([[[[1, 0, 0], [0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]]]], "float32")
    t = np.array([[[[0, 0, 1], [0.2, 0.3, 0.5], [1 / 3, 1 / 3, 1 / 3]]]], "float32")
    expected = {
        # W1, index: CDFs (1, 1) vs (0, 0) -> |1| + |1| = 2 (move 1 over 2 steps).
        (spatial_wasserstein, "index"): 2.0,
        # W1, one-hot: distinct channels are sqrt(2) apart -> sqrt(2).
        (spatial_wasserstein, "onehot"): math.sqrt(2),
        # samples: both rows are the multiset {0, 0, 1} -> 0 (identity lost).
        (spatial_wasserstein, "samples"): 0.0,
        # MMD^2, index, sigma 1: d = (1, 0, -1), d^T K d = K11 + K33 - 2 K13
        # = 2 - 2 exp(-2) = 1.729329...
        (spatial_mmd, "index"): 2 - 2 * math.exp(-2),
        # MMD^2, one-hot, sigma 1: (1 - exp(-1)) * ||d||^2 = 1.264241...
        (spatial_mmd, "onehot"): 2 * (1 - math.exp(-1)),
        (spatial_mmd, "samples"): 0.0,
    }
    for (fn, support), node0 in expected.items():
        np.testing.assert_allclose(
            float(fn(s, t, support=support)), node0 / 3, rtol=1e-6, atol=1e-7
        )
    np.testing.assert_allclose(float(spatial_wasserstein(s, t)), 2.0 / 3, rtol=1e-6)
    np.testing.assert_allclose(
        float(spatial_mmd(s, t)), (2 - 2 * math.exp(-2)) / 3, rtol=1e-6
    )
    # Half the mass moves one step: (.5, .5, 0) -> (0, .5, .5): W1 index = 1.
    a = np.array([[0.5, 0.5, 0.0]], "float32")
    b = np.array([[0.0, 0.5, 0.5]], "float32")
    np.testing.assert_allclose(float(spatial_wasserstein(a, b)), 1.0, rtol=1e-6)


@pytest.mark.parametrize("fn, support", ALT_DISTANCES, ids=ALT_IDS)
def test_graph_distances_zero_identical_symmetric_positive(fn, support):
    s, t = random_graph(34), random_graph(35)
    assert float(fn(s, s, support=support)) == 0.0
    forward = float(fn(s, t, support=support))
    backward = float(fn(t, s, support=support))
    np.testing.assert_allclose(forward, backward, rtol=1e-5)
    assert forward > 1e-6


@pytest.mark.parametrize("fn, support", ALT_DISTANCES, ids=ALT_IDS)
def test_graph_distances_gradient_finite(fn, support):
    one_hot = np.tile(np.eye(C, dtype="float32"), (B, L, 1, 1))
    uniform = np.full((B, L, C, C), 1.0 / C, "float32")
    cases = [(g, g) for g in (random_graph(36), one_hot, uniform)]
    cases.append((one_hot, uniform))
    for s, t in cases:
        s_var, t_var = tf.Variable(s), tf.Variable(t)
        with tf.GradientTape() as tape:
            loss = fn(s_var, t_var, support=support)
        gs, gt = tape.gradient(loss, [s_var, t_var])
        assert np.isfinite(float(loss))
        assert np.all(np.isfinite(gs)) and np.all(np.isfinite(gt))
    assert np.any(np.abs(gs.numpy()) > 0)  # distinct graphs: a real signal


def test_graph_distances_channel_permutation():
    s, t = random_graph(37), random_graph(38)
    perm = np.array([2, 0, 3, 1])
    relabel = lambda g: g[:, :, perm][:, :, :, perm]  # noqa: E731
    shuffle_rows = lambda g: g[:, :, :, perm]  # noqa: E731
    for fn in (spatial_wasserstein, spatial_mmd):
        # one-hot support: relabelling the channels of both graphs is harmless
        np.testing.assert_allclose(
            float(fn(relabel(s), relabel(t), support="onehot")),
            float(fn(s, t, support="onehot")),
            rtol=1e-5,
        )
        # samples support: permuting one graph's rows is not even seen
        np.testing.assert_allclose(
            float(fn(shuffle_rows(s), t, support="samples")),
            float(fn(s, t, support="samples")),
            rtol=1e-5,
        )
        # index support depends on the channel order
        assert abs(
            float(fn(relabel(s), relabel(t))) - float(fn(s, t))
        ) > 1e-4


def test_graph_distance_selects_mmd_and_wasserstein():
    s, t = random_graph(39), random_graph(40)
    assert sorted(GRAPH_DISTANCES) == ["kl", "mmd", "wasserstein"]
    assert GRAPH_DISTANCES["mmd"] is spatial_mmd
    assert GRAPH_DISTANCES["wasserstein"] is spatial_wasserstein
    assert float(graph_distance(s, t, distance="mmd")) == float(spatial_mmd(s, t))
    assert float(graph_distance(s, t, "wasserstein")) == float(
        spatial_wasserstein(s, t)
    )
    options = dict(support="samples", bandwidth=0.2)
    assert float(graph_distance(s, t, "mmd", **options)) == float(
        spatial_mmd(s, t, **options)
    )
    assert float(graph_distance(s, t)) == float(spatial_loss(s, t))
    with pytest.raises(ValueError, match=r"'kl', 'mmd', 'wasserstein'.*'emd'"):
        graph_distance(s, t, distance="emd")


def test_graph_distances_bad_arguments():
    g = random_graph(41)
    for fn in (spatial_wasserstein, spatial_mmd):
        with pytest.raises(ValueError, match=r"support.*'index'.*'ordered'"):
            fn(g, g, support="ordered")
        with pytest.raises(ValueError, match="same shape"):
            fn(g, g[:, :, :2, :2])
    for bad in (0, -1.0, float("nan"), float("inf"), "1", True):
        with pytest.raises(ValueError, match="bandwidth"):
            spatial_mmd(g, g, bandwidth=bad)
    ok = spatial_mmd(g, random_graph(44), bandwidth=np.float32(2.0))
    np.testing.assert_allclose(
        float(ok), float(spatial_mmd(g, random_graph(44), bandwidth=2)), rtol=1e-6
    )
    with pytest.raises(TypeError):
        spatial_wasserstein(g, g, bandwidth=1.0)  # no such option


def test_graph_distances_dtype_and_dynamic_shapes():
    s, t = random_graph(42), random_graph(43)
    for dtype in ("float16", "float64"):
        for fn in (spatial_wasserstein, spatial_mmd):
            loss = fn(tf.constant(s, dtype), tf.constant(t, dtype))
            assert loss.dtype == "float32"
            np.testing.assert_allclose(float(loss), float(fn(s, t)), rtol=5e-2)

    spec = tf.TensorSpec((None, None, None, None), tf.float32)

    @tf.function(input_signature=[spec, spec])
    def fn(a, b):
        return [
            f(a, b, support=support)
            for f in (spatial_wasserstein, spatial_mmd)
            for support in SUPPORTS
        ]

    eager = [
        float(f(s, t, support=support))
        for f in (spatial_wasserstein, spatial_mmd)
        for support in SUPPORTS
    ]
    np.testing.assert_allclose([float(v) for v in fn(s, t)], eager, rtol=1e-5)
