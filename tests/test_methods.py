"""Baseline distillation methods against independent NumPy float64 references."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from stmd_keras.distill.methods import (
    METHODS,
    DecoupledKD,
    DeepMutualLearning,
    DistillationMethod,
    FitNets,
    KnowledgeDistillation,
    get_method,
)
from stmd_keras.distill.objectives import kd_loss

TABLE_15 = {  # name: (epochs, ce weight, distillation weight)
    "kd": (30, 0.1, 0.9), "fitnets": (25, 0.5, 0.5), "nst": (25, 0.5, 0.5),
    "rkd": (25, 0.5, 0.5), "lsp": (25, 1.0, 5.0), "dkd": (25, 1.0, 1.0), "dml": (25, 0.1, 0.9),
}
BASELINES = sorted(TABLE_15)  # the paper's seven; METHODS also holds SleepKD's (issue 6)


B, L, C, K = 2, 3, 3, 4
M_T, M_S = 3, 2


def outputs(seed, m, b=B, l=L, c=C, positive=False):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((b, l, c, m))
    if positive:  # like the encoder's post-ReLU features
        feats = np.abs(feats)
    return {
        "logits": (2.0 * rng.standard_normal((b, l, K))).astype("float32"),
        "features": feats.astype("float32"),
    }


def labels(seed=9):
    return np.random.default_rng(seed).integers(0, K, (B, L)).astype("int32")


def run(method, t, s, y=None, epoch=None):
    return float(method(t, s, labels() if y is None else y, epoch=epoch))


# --------------------------------------------------------------------------
# NumPy float64 references, written from the papers' formulas with loops.
# --------------------------------------------------------------------------


def np_softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def np_kl(p, q):
    return float(np.sum(p * np.log(p / q)))


def np_kd(s, t, temp):
    s, t = s.reshape(-1, K).astype(float), t.reshape(-1, K).astype(float)
    kls = [np_kl(np_softmax(ti / temp), np_softmax(si / temp)) for si, ti in zip(s, t)]
    return temp**2 * np.mean(kls)


def np_dkd(s, t, y, alpha, beta, temp):
    s, t, y = s.reshape(-1, K).astype(float), t.reshape(-1, K).astype(float), y.ravel()
    tckd, nckd = [], []
    for si, ti, g in zip(s, t, y):
        ps, pt = np_softmax(si / temp), np_softmax(ti / temp)
        tckd.append(np_kl(np.array([pt[g], 1 - pt[g]]), np.array([ps[g], 1 - ps[g]])))
        others = [k for k in range(K) if k != g]
        nckd.append(np_kl(pt[others] / pt[others].sum(), ps[others] / ps[others].sum()))
    return temp**2 * (alpha * np.mean(tckd) + beta * np.mean(nckd))


def np_patterns(h):
    """Rows: the L2-normalised activation over time of each (channel, unit)."""
    rows = []
    for c in range(h.shape[1]):
        for k in range(h.shape[2]):
            f = h[:, c, k].astype(float)
            rows.append(f / np.linalg.norm(f))
    return rows


def np_nst(hs, ht):
    values = []
    for b in range(hs.shape[0]):
        fs, ft = np_patterns(hs[b]), np_patterns(ht[b])
        kern = lambda a, c: np.mean([[(x @ z) ** 2 for z in c] for x in a])  # noqa: E731
        values.append(kern(ft, ft) + kern(fs, fs) - 2 * kern(fs, ft))
    return np.mean(values)


def huber(a, b):
    d = np.abs(np.asarray(a) - np.asarray(b))
    return np.mean(np.where(d < 1, 0.5 * d**2, d - 0.5))


def np_rkd_terms(us, ut):
    """Distance and angle losses of one group of embeddings (rows)."""
    def psi_d(u):
        n = len(u)
        d = np.array([[np.linalg.norm(u[i] - u[j]) for j in range(n)] for i in range(n)])
        mu = np.sum(d) / (n * (n - 1))
        return d / mu

    def psi_a(u):
        n = len(u)
        out = np.zeros((n, n, n))
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    if j != i and k != i:
                        e1 = (u[j] - u[i]) / np.linalg.norm(u[j] - u[i])
                        e2 = (u[k] - u[i]) / np.linalg.norm(u[k] - u[i])
                        out[i, j, k] = e1 @ e2
        return out

    return huber(psi_d(ut), psi_d(us)), huber(psi_a(ut), psi_a(us))


def np_rkd(hs, ht, wd, wa, group):
    hs, ht = hs.astype(float), ht.astype(float)
    if group == "sequence":
        groups = [(hs[b].reshape(L, -1), ht[b].reshape(L, -1)) for b in range(hs.shape[0])]
    else:
        groups = [(hs.reshape(B * L, -1), ht.reshape(B * L, -1))]
    terms = [np_rkd_terms(us, ut) for us, ut in groups]
    return np.mean([wd * d + wa * a for d, a in terms])


def np_local_structure(z, sigma):
    c = len(z)
    out = []
    for i in range(c):
        nbrs = [j for j in range(c) if j != i]
        k = np.array([math.exp(-np.sum(np.abs(z[i] - z[j])) / sigma) for j in nbrs])
        out.append(np.exp(k) / np.exp(k).sum())
    return out


def np_lsp(hs, ht, sigma):
    kls = []
    for b in range(hs.shape[0]):
        for l in range(hs.shape[1]):
            ls_s = np_local_structure(hs[b, l].astype(float), sigma)
            ls_t = np_local_structure(ht[b, l].astype(float), sigma)
            kls += [np_kl(pt, ps) for pt, ps in zip(ls_t, ls_s)]
    return np.mean(kls)


# --------------------------------------------------------------------------
# Each loss against its reference.
# --------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_kd_matches_numpy_and_objectives_kd_loss(temperature):
    t, s = outputs(0, M_T), outputs(1, M_S)
    method = KnowledgeDistillation(temperature=temperature)
    expected = 0.9 * np_kd(s["logits"], t["logits"], temperature)
    np.testing.assert_allclose(run(method, t, s), expected, rtol=1e-5)
    np.testing.assert_allclose(
        run(method, t, s), 0.9 * float(kd_loss(s["logits"], t["logits"], temperature)), rtol=1e-6
    )


def test_dml_hand_computed():
    # One epoch, two classes: p_t = (3/4, 1/4), p_s = (1/2, 1/2).
    t = {"logits": np.array([[[math.log(3.0), 0.0]]], "float32")}
    s = {"logits": np.zeros((1, 1, 2), "float32")}
    kl_ts = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    kl_st = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    got = float(DeepMutualLearning(loss_weight=1.0)(t, s, None))
    np.testing.assert_allclose(got, kl_ts + kl_st, rtol=1e-6)


def test_dkd_matches_numpy_and_ramps_up():
    t, s, y = outputs(0, M_T), outputs(1, M_S), labels()
    method = DecoupledKD(alpha=1.0, beta=8.0, temperature=4.0, warmup=4)
    full = np_dkd(s["logits"], t["logits"], y, 1.0, 8.0, 4.0)
    np.testing.assert_allclose(run(method, t, s, y), full, rtol=1e-5)  # epoch=None: full weight
    np.testing.assert_allclose(run(method, t, s, y, epoch=0), 0.25 * full, rtol=1e-5)
    np.testing.assert_allclose(run(method, t, s, y, epoch=tf.Variable(2)), 0.75 * full, rtol=1e-5)
    np.testing.assert_allclose(run(method, t, s, y, epoch=10), full, rtol=1e-5)
    np.testing.assert_allclose(run(DecoupledKD(warmup=0), t, s, y, epoch=0), full, rtol=1e-5)



def test_dkd_terms_recompose_classical_kd_on_one_epoch():
    # DKD's Eq. 4: KD = TCKD + (1 - p_g^t) * NCKD, per epoch.
    z_t = np.array([[[2.0, 0.5, -1.0, 0.0]]], "float32")
    z_s = np.array([[[0.0, 1.0, 0.5, -0.5]]], "float32")
    t, s, y = {"logits": z_t}, {"logits": z_s}, np.array([[1]], "int32")
    tckd = DecoupledKD(alpha=1.0, beta=0.0, warmup=0).distillation_loss(t, s, y)
    nckd = DecoupledKD(alpha=0.0, beta=1.0, warmup=0).distillation_loss(t, s, y)
    p_g = np_softmax(z_t[0, 0].astype(float) / 4.0)[1]
    np.testing.assert_allclose(
        float(tckd) + (1 - p_g) * float(nckd), np_kd(z_s, z_t, 4.0), rtol=1e-5
    )


def test_fitnets_matches_numpy():
    t, s = outputs(0, M_T, positive=True), outputs(1, M_S, positive=True)
    method = FitNets()
    got = run(method, t, s)
    w, b = (v.numpy().astype(float) for v in method.regressor.weights)
    hint = np.maximum(s["features"].astype(float) @ w + b, 0.0)
    np.testing.assert_allclose(got, 0.5 * np.mean((t["features"] - hint) ** 2), rtol=1e-5)
    assert w.shape == (M_S, M_T)


def test_nst_matches_numpy():
    t, s = outputs(0, M_T, positive=True), outputs(1, M_S, positive=True)
    expected = 0.5 * np_nst(s["features"], t["features"])
    np.testing.assert_allclose(run(get_method("nst"), t, s), expected, rtol=1e-5)
    # Scaling a neuron does not change its normalised selectivity pattern.
    scaled = dict(t, features=t["features"] * np.array([1.0, 2.0, 5.0], "float32"))
    np.testing.assert_allclose(run(get_method("nst"), t, scaled), 0.0, atol=1e-6)


@pytest.mark.parametrize("group", ["sequence", "batch"])
def test_rkd_matches_numpy(group):
    t, s = outputs(0, M_T), outputs(1, M_S)
    method = get_method("rkd", group=group)
    expected = 0.5 * np_rkd(s["features"], t["features"], 1.0, 2.0, group)
    np.testing.assert_allclose(run(method, t, s), expected, rtol=1e-5)
    # Distances are normalised by their mean and angles scale-free: a
    # scaled, shifted copy of the teacher has the same relations.
    copy = dict(t, features=3.0 * t["features"] + 1.0)
    np.testing.assert_allclose(run(method, t, copy), 0.0, atol=1e-6)


def test_lsp_matches_numpy():
    # sigma sets the scale of the L1 distances that matter; at unit-scale
    # features sigma = 100 gives near-uniform structures (KL ~ 1e-4, float32
    # round-off), so each sigma is checked at its own feature scale.
    for sigma in (100.0, 1.0):
        t, s = outputs(0, M_T), outputs(1, M_S)
        for out in (t, s):
            out["features"] = out["features"] * np.float32(sigma)
        method = get_method("lsp", sigma=sigma)
        expected = 5.0 * np_lsp(s["features"], t["features"], sigma)
        np.testing.assert_allclose(run(method, t, s), expected, rtol=1e-5)
    t = outputs(0, M_T)
    np.testing.assert_allclose(run(get_method("lsp"), t, t), 0.0, atol=1e-7)


def test_dml_matches_numpy():
    t, s = outputs(0, M_T), outputs(1, M_S)
    expected = 0.9 * (np_kd(t["logits"], s["logits"], 1.0) + np_kd(s["logits"], t["logits"], 1.0))
    np.testing.assert_allclose(run(get_method("dml"), t, s), expected, rtol=1e-5)


# --------------------------------------------------------------------------
# Gradients.
# --------------------------------------------------------------------------


def gradients(method, t, s, y):
    t = {k: tf.constant(v) for k, v in t.items()}
    s = {k: tf.constant(v) for k, v in s.items()}
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([t, s])
        loss = method(t, s, y, epoch=3)
    return loss, tape.gradient(loss, t), tape.gradient(loss, s), tape


@pytest.mark.parametrize("name", BASELINES)
def test_gradients_are_finite_and_one_way_methods_leave_the_teacher_alone(name):
    t, s, y = outputs(0, M_T, positive=True), outputs(1, M_S, positive=True), labels()
    # Extreme logits: p_g -> 1 must not give inf/nan (DKD's 1 - p_g).
    t["logits"][0, 0] = [60.0, -60.0, 0.0, 0.0]
    s["logits"][0, 0] = [-60.0, 60.0, 0.0, 0.0]
    method = get_method(name)
    loss, g_t, g_s, _ = gradients(method, t, s, np.zeros_like(y))
    assert np.isfinite(float(loss)) and float(loss) > 0
    used = [g for g in g_s.values() if g is not None]
    assert used and all(np.isfinite(g.numpy()).all() for g in used)
    assert any(np.abs(g.numpy()).max() > 0 for g in used)
    for g in g_t.values():
        if method.trains_teacher:
            assert g is None or np.isfinite(g.numpy()).all()
        else:
            assert g is None or not np.any(g.numpy())


def test_dml_each_model_gets_only_its_own_term():
    t, s = outputs(0, M_T), outputs(1, M_S)
    method = DeepMutualLearning()
    _, g_t, g_s, _ = gradients(method, t, s, None)
    p_t = tf.nn.softmax(t["logits"].astype("float64")).numpy()
    p_s = tf.nn.softmax(s["logits"].astype("float64")).numpy()
    n = B * L
    # d/dz_s of KL(p_t || p_s) is (p_s - p_t) / n; KL(sg(p_s) || p_t) adds
    # nothing to it (and symmetrically for the teacher).
    np.testing.assert_allclose(g_s["logits"].numpy(), 0.9 * (p_s - p_t) / n, atol=1e-7)
    np.testing.assert_allclose(g_t["logits"].numpy(), 0.9 * (p_t - p_s) / n, atol=1e-7)


# --------------------------------------------------------------------------
# FitNets regressor: trainable, tracked, saved.
# --------------------------------------------------------------------------


class Holder(keras.Model):
    def __init__(self, method, **kwargs):
        super().__init__(**kwargs)
        self.method = method
        self.built = True  # as MutualDistiller: nothing of its own to build


def test_fitnets_regressor_is_trainable_and_saved(tmp_path):
    t, s, y = outputs(0, M_T, positive=True), outputs(1, M_S, positive=True), labels()
    method = FitNets(loss_weight=1.0)
    method.build_for(t, s)
    assert len(method.trainable_variables) == 2
    holder = Holder(method)
    assert len(holder.trainable_variables) == 2  # tracked by a model holding it
    with tf.GradientTape() as tape:
        loss = method(t, s, y)
    grads = tape.gradient(loss, method.trainable_variables)
    assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)

    # Config + build config recreate the layer; the weights travel in .weights.h5.
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(method))
    assert isinstance(clone, FitNets) and clone.built and clone.get_config() == method.get_config()
    path = str(tmp_path / "fitnets.weights.h5")
    holder.save_weights(path)
    other = Holder(clone)
    other.load_weights(path)
    for a, b in zip(method.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_allclose(float(clone(t, s, y)), float(method(t, s, y)), rtol=1e-6)


def test_build_for_reads_the_stagers_outputs():
    from stmd_keras.models import build_cnn_rnn

    teacher = build_cnn_rnn(4, 2, n_channels=2, seq_len=2, fs=8, dropout=0.0)
    student = build_cnn_rnn(2, 2, n_channels=2, seq_len=2, fs=8, dropout=0.0)
    method = FitNets()
    method.build_for(teacher, student)
    m_t, m_s = teacher.output["features"].shape[-1], student.output["features"].shape[-1]
    assert method.widths == (m_t, m_s)
    assert tuple(method.regressor.kernel.shape) == (m_s, m_t)
    with pytest.raises(ValueError, match="dict with keys"):
        FitNets().build_for(object(), student)


# --------------------------------------------------------------------------
# Registry, configs, graph mode.
# --------------------------------------------------------------------------


def test_registry():
    assert sorted(METHODS) == ["dgkd", "dkd", "dml", "fitnets", "kd", "lsp", "nst", "rkd", "sleepkd"]
    with pytest.raises(ValueError, match=r"Available: \['dgkd', 'dkd'.*Received: name='mmd'"):
        get_method("mmd")
    assert isinstance(get_method("KD", temperature=2.0), KnowledgeDistillation)
    assert get_method("kd", temperature=2.0).temperature == 2.0
    assert [n for n in BASELINES if METHODS[n].trains_teacher] == ["dml"]
    with pytest.raises(ValueError, match="temperature"):
        get_method("kd", temperature=0)
    with pytest.raises(ValueError, match="group"):
        get_method("rkd", group="epoch")
    with pytest.raises(ValueError, match="ce_weight"):
        get_method("nst", ce_weight=-1)




@pytest.mark.parametrize("name", BASELINES)
def test_defaults_follow_table_15_and_configs_round_trip(name):
    method = get_method(name)
    assert isinstance(method, DistillationMethod) and method.name_in_paper
    assert (method.paper_epochs, method.ce_weight, method.loss_weight) == TABLE_15[name]
    clone = type(method).from_config(method.get_config())
    assert clone.get_config() == method.get_config()


def test_methods_trace_with_an_unknown_batch_size():
    t, s, y = outputs(0, M_T, positive=True), outputs(1, M_S, positive=True), labels()
    spec = lambda m: {  # noqa: E731
        "logits": tf.TensorSpec((None, L, K), "float32"),
        "features": tf.TensorSpec((None, L, C, m), "float32"),
    }
    for name in BASELINES:
        method = get_method(name)
        method.build_for(t, s)
        fn = tf.function(
            lambda a, b, c, e: method(a, b, c, epoch=e),
            input_signature=[spec(M_T), spec(M_S), tf.TensorSpec((None, L), "int32"),
                             tf.TensorSpec((), "int32")],
        )
        np.testing.assert_allclose(
            float(fn(t, s, y, tf.constant(3))), run(method, t, s, y, epoch=3), rtol=1e-4, atol=1e-8
        )
