"""CNN-GCN teacher/student: graph convolution, shapes, sizes, saving, STMD step."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from stmd_keras.distill import MutualDistiller
from stmd_keras.knowledge import SleepGraph
from stmd_keras.models import (
    ARCHITECTURES,
    GraphConvolution,
    build_cnn_gcn,
    build_model,
    cnn_gcn_student,
    cnn_gcn_teacher,
)

L, C, FS = 2, 3, 8  # tiny: 240 samples per epoch, features m = 3 * filters
MATRIX = [[0.0, 2.0, 0.5], [1.0, 0.0, 0.0], [0.0, 3.0, 1.0]]  # non-symmetric on purpose


def tiny(filters=4, units=3, adjacency="adaptive", dropout=0.5, name="cnn_gcn"):
    matrix = MATRIX if adjacency == "fixed" else None
    return build_cnn_gcn(filters, units, n_channels=C, seq_len=L, fs=FS, adjacency=adjacency,
                         adjacency_matrix=matrix, dropout=dropout, name=name)


def signals(seed=0, b=2):
    return np.random.default_rng(seed).standard_normal((b, L, C, 30 * FS)).astype("float32")


def softmax_rows(s):
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference_graph(x, adjacency, w=None, matrix=None):
    """Adjacency of one graph `x` `(C, F)`, written out entry by entry."""
    n = x.shape[0]
    if adjacency == "fixed":
        m = np.asarray(matrix, "float64") + np.eye(n)
        return m / m.sum(1, keepdims=True)
    s = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if adjacency == "adaptive":
                s[i, j] = max(0.0, float(np.dot(w, np.abs(x[i] - x[j]))))
            else:
                s[i, j] = np.dot(x[i], x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j]))
    return softmax_rows(s)


@pytest.mark.parametrize("adjacency", ["adaptive", "cosine", "fixed"])
def test_graph_convolution_matches_numpy(adjacency):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, C, 5)).astype("float32")  # (B, L, C, F)
    layer = GraphConvolution(4, adjacency=adjacency,
                             adjacency_matrix=MATRIX if adjacency == "fixed" else None)
    layer.build(x.shape)
    kernel, bias = rng.standard_normal((5, 4)), rng.standard_normal(4)
    layer.kernel.assign(kernel.astype("float32"))
    layer.bias.assign(bias.astype("float32"))  # non-zero bias: the ReLU clips some outputs
    w = None
    if adjacency == "adaptive":
        w = rng.standard_normal(5)
        layer.adjacency_weight.assign(w.astype("float32"))
    graphs = keras.ops.convert_to_numpy(layer.graph(x))
    out = keras.ops.convert_to_numpy(layer(x))
    assert graphs.shape == (2, 3, C, C) and out.shape == (2, 3, C, 4)
    for b in range(2):
        for t in range(3):
            a = reference_graph(x[b, t].astype("float64"), adjacency, w, MATRIX)
            np.testing.assert_allclose(graphs[b, t], a, rtol=1e-5, atol=1e-6)
            expected = np.maximum(a @ x[b, t] @ kernel + bias, 0.0)
            np.testing.assert_allclose(out[b, t], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(graphs.sum(-1), 1.0, rtol=1e-6)
    if adjacency == "cosine":  # the model's graph is the sleep graph of Eq. 5
        np.testing.assert_allclose(graphs, SleepGraph()(x), rtol=1e-6)


def test_graph_mixes_channels_only_through_edges():
    x = np.random.default_rng(4).standard_normal((1, C, 5)).astype("float32")
    x2 = x.copy()
    x2[:, 1] += 1.0
    for layer in (GraphConvolution(4, "adaptive"), GraphConvolution(4, "cosine"),
                  GraphConvolution(4, "fixed", MATRIX), GraphConvolution(4, activation=None)):
        assert not np.allclose(layer(x)[:, 0], layer(x2)[:, 0])  # node 0 hears node 1
    isolated = GraphConvolution(4, "fixed", np.zeros((C, C)))  # self-loops only
    np.testing.assert_allclose(isolated(x)[:, 0], isolated(x2)[:, 0], rtol=1e-6)


@pytest.mark.parametrize("adjacency", ["adaptive", "cosine", "fixed"])
def test_outputs_features_and_logits_with_the_right_shapes(adjacency):
    model = tiny(adjacency=adjacency)
    out = model(signals())
    assert set(out) == {"logits", "features"}
    assert tuple(out["logits"].shape) == (2, L, 5) and out["logits"].dtype == "float32"
    assert tuple(out["features"].shape) == (2, L, C, 12) and out["features"].dtype == "float32"
    assert model.get_layer("graph_conv").adjacency == adjacency


def test_epochs_are_classified_independently():
    keras.utils.set_random_seed(5)
    model = tiny(dropout=0.0)
    x = signals(5, b=1)
    x2 = x.copy()
    x2[:, 1] += 1.0
    a, b = model(x), model(x2)
    np.testing.assert_allclose(a["logits"][:, 0], b["logits"][:, 0], rtol=1e-6, atol=1e-7)
    assert not np.allclose(a["logits"][:, 1], b["logits"][:, 1])


def test_paper_sized_models_have_the_documented_parameter_counts():
    # Encoder as the CNN-RNN pair; graph conv m*u + u (+ m for the adaptive w); Dense(C*u -> 5).
    for model, f, u in ((cnn_gcn_teacher(), 128, 1024), (cnn_gcn_student(), 32, 32)):
        encoder = 6 * ((50 * f + f) + 3 * (8 * f * f + f))
        m = 3 * f
        assert model.count_params() == encoder + (m * u + u + m) + (6 * u * 5 + 5)
    assert cnn_gcn_teacher().count_params() == 2_826_117
    assert cnn_gcn_student().count_params() == 161_989


def test_registered_by_name_with_the_paper_sizes():
    assert set(ARCHITECTURES["cnn_gcn"]) == {"teacher", "student"}
    student = build_model("cnn_gcn", "student", n_channels=C, seq_len=L, fs=FS)
    assert student.name == "cnn_gcn_student"
    assert student.get_layer("encoder").filters == 32
    assert student.get_layer("graph_conv").units == 32
    assert tuple(student(signals())["logits"].shape) == (2, L, 5)
    teacher = build_model("cnn_gcn", "teacher", n_channels=C, seq_len=L, fs=FS, adjacency="cosine")
    assert teacher.get_layer("encoder").filters == 128
    assert teacher.get_layer("graph_conv").units == 1024
    assert teacher.get_layer("graph_conv").adjacency == "cosine"


@pytest.mark.parametrize("adjacency", ["adaptive", "cosine", "fixed"])
def test_save_and_reload_safely(tmp_path, adjacency):
    model = tiny(adjacency=adjacency)
    x = signals(6)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    layer = loaded.get_layer("graph_conv")
    assert isinstance(layer, GraphConvolution) and layer.adjacency == adjacency
    a, b = model(x), loaded(x)
    for key in ("logits", "features"):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a[key]), keras.ops.convert_to_numpy(b[key]))


def test_bad_arguments_and_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="units"):
        GraphConvolution(0)
    with pytest.raises(ValueError, match="adjacency"):
        GraphConvolution(4, adjacency="learned")
    with pytest.raises(ValueError, match="needs `adjacency_matrix`"):
        GraphConvolution(4, adjacency="fixed")
    with pytest.raises(ValueError, match="square"):
        GraphConvolution(4, adjacency="fixed", adjacency_matrix=np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        GraphConvolution(4, adjacency="fixed", adjacency_matrix=-np.ones((2, 2)))
    with pytest.raises(ValueError, match="only used with adjacency='fixed'"):
        GraphConvolution(4, adjacency="cosine", adjacency_matrix=np.ones((2, 2)))
    with pytest.raises(ValueError, match="has 3 channels"):
        GraphConvolution(4, adjacency="fixed", adjacency_matrix=np.ones((2, 2))).build((None, 3, 5))
    with pytest.raises(ValueError, match=r"\(\.\.\., channels, features\)"):
        GraphConvolution(4).build((None, 5))
    with pytest.raises(ValueError, match="has 3 channels"):
        build_cnn_gcn(4, 3, n_channels=C, seq_len=L, fs=FS, adjacency="fixed",
                      adjacency_matrix=np.ones((2, 2)))
    with pytest.raises(ValueError, match="too short"):
        build_cnn_gcn(4, 3, n_channels=1, seq_len=2, fs=100, epoch_sec=0.5)
    with pytest.raises(ValueError, match="Unknown role"):
        build_model("cnn_gcn", "assistant")


def test_one_mutual_distillation_step_trains_both_cnn_gcn_models():
    keras.utils.set_random_seed(7)
    teacher = tiny(6, 5, name="t")
    student = tiny(3, 2, adjacency="cosine", name="s")
    x = signals(7, b=4)
    y = np.random.default_rng(7).integers(0, 5, (4, L)).astype("int32")
    before = {m.name: [v.numpy() for v in m.trainable_variables] for m in (teacher, student)}
    distiller = MutualDistiller(teacher, student)
    distiller.compile(keras.optimizers.Adam(1e-2), keras.optimizers.Adam(1e-2))
    history = distiller.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(4), epochs=1, verbose=0)
    logs = {k: v[-1] for k, v in history.history.items()}
    for name in ("loss_teacher", "loss_student", "spatial", "temporal"):
        assert np.isfinite(logs[name]), (name, logs[name])
    assert logs["spatial"] > 0 and logs["temporal"] > 0
    for model in (teacher, student):
        after = [v.numpy() for v in model.trainable_variables]
        changed = {v.path for v, b, a in zip(model.trainable_variables, before[model.name], after)
                   if np.abs(b - a).max() > 0}
        assert any("encoder" in p for p in changed), model.name
        assert any("graph_conv/kernel" in p for p in changed), model.name
        if model is teacher:  # the adaptive graph is learned from the STMD losses
            assert any("graph_conv/adjacency_weight" in p for p in changed)
