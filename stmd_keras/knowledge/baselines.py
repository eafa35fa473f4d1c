"""Losses of the baseline distillation methods (paper Appendix A.1).

Plain functions of tensors returning a float32 scalar, in the style of
`losses.py`. Logits are `(B, L, K)`: every one of the `B * L` sleep epochs is
one classification sample. Features are the multi-channel feature tensor
`H` of shape `(B, L, C, m)`; teacher and student may differ in `m`.

None of these functions stops a gradient: which side is frozen is decided
by the method classes in `stmd_keras.distill.methods`. Hinton's KD loss is
`stmd_keras.distill.objectives.kd_loss`.
"""

from keras import ops

from stmd_keras.knowledge.losses import _as_float32

_RKD_GROUPS = ("sequence", "batch")


def _check_rank(x, rank, what):
    if len(x.shape) != rank:
        raise ValueError(
            f"{what} must have rank {rank}. Received: shape={tuple(x.shape)}"
        )


def _check_leading(a, b, n, what):
    """Same first `n` dimensions (the last ones may differ: m_s != m_t)."""
    shape_a, shape_b = tuple(a.shape), tuple(b.shape)
    same = len(shape_a) == len(shape_b) and all(
        x is None or y is None or x == y for x, y in zip(shape_a[:n], shape_b[:n])
    )
    if not same:
        raise ValueError(
            f"The student and teacher {what} must agree on their first {n} "
            f"dimensions. Received: student shape={shape_a}, "
            f"teacher shape={shape_b}"
        )


def _kl_rows(log_p, log_q):
    """`sum_k p_k (log p_k - log q_k)` along the last axis."""
    return ops.sum(ops.exp(log_p) * (log_p - log_q), axis=-1)


def _pairwise_square_distances(x):
    """`||x_i - x_j||^2` for `x` of shape `(G, N, D)`, exactly 0 on the diagonal."""
    # Distances ignore a common shift; centring keeps the Gram trick from
    # cancelling large offsets.
    x = x - ops.mean(x, axis=1, keepdims=True)
    gram = ops.einsum("gid,gjd->gij", x, x)
    gram = 0.5 * (gram + ops.swapaxes(gram, -1, -2))
    norms = ops.diagonal(gram, axis1=-2, axis2=-1)
    square = norms[:, :, None] + norms[:, None, :] - 2.0 * gram
    return ops.maximum(square, 0.0), gram


def dkd_loss(student_logits, teacher_logits, labels, alpha=1.0, beta=8.0, temperature=4.0):
    """Decoupled KD (Zhao et al., 2022): `alpha * TCKD + beta * NCKD`.

    With `p = softmax(z / T)` and `g` the labelled stage of an epoch,

        TCKD = T^2 * KL([p_g^t, 1 - p_g^t] || [p_g^s, 1 - p_g^s])
        NCKD = T^2 * KL(p_hat^t || p_hat^s),  p_hat = softmax over k != g

    each averaged over the `B * L` epochs.

    Parameters
    ----------
    student_logits, teacher_logits : tensor, shape (batch, epochs, K)
    labels : int tensor, shape (batch, epochs)
    alpha, beta : float
        Weights of the target-class and non-target-class terms.
    temperature : float
        Softmax temperature `T`.

    Returns
    -------
    Scalar float32 tensor; 0 for identical logits.
    """
    s, t = _as_float32(student_logits), _as_float32(teacher_logits)
    _check_rank(s, 3, "Logits")
    _check_leading(s, t, 3, "logits")
    temp = ops.cast(temperature, "float32")
    target = ops.one_hot(ops.cast(labels, "int32"), s.shape[-1])
    is_target = target > 0.5

    def binary_log_probs(z):
        # log p_g and log(1 - p_g) from log-sum-exps, stable when p_g -> 1.
        z = z / temp
        log_all = ops.logsumexp(z, axis=-1)
        log_target = ops.sum(z * target, axis=-1) - log_all
        # -1e4 removes the target (exp underflows to exactly 0) yet keeps
        # the values finite, so no 0 * inf appears in the gradients.
        log_others = ops.logsumexp(ops.where(is_target, -1e4, z), axis=-1) - log_all
        return ops.stack([log_target, log_others], axis=-1)

    def non_target_log_probs(z):
        return ops.log_softmax(ops.where(is_target, -1e4, z / temp), axis=-1)

    tckd = ops.mean(_kl_rows(binary_log_probs(t), binary_log_probs(s)))
    nckd = ops.mean(_kl_rows(non_target_log_probs(t), non_target_log_probs(s)))
    return (alpha * tckd + beta * nckd) * temp * temp


def hint_loss(student_hint, teacher_features):
    """FitNets hint loss (Romero et al., 2014): mean squared error.

    Parameters
    ----------
    student_hint : tensor, shape (batch, epochs, C, m_t)
        The student's features after the regressor.
    teacher_features : tensor, same shape
        The teacher's features (the hint).

    Returns
    -------
    Scalar float32 tensor: the mean over all elements of `(t - r(s))^2`.
    """
    s, t = _as_float32(student_hint), _as_float32(teacher_features)
    _check_leading(s, t, len(t.shape), "hint features")
    return ops.mean(ops.square(t - s))


def _selectivity_gram(features, epsilon):
    """`A[b] = F_b^T F_b` (L x L) of the L2-normalised neuron patterns over time."""
    b, l, c, m = features.shape
    # Neuron n = (channel, unit); its selectivity pattern is its activation
    # over the L epochs of the sequence: F_b has shape (C*m, L).
    patterns = ops.reshape(ops.transpose(features, (0, 2, 3, 1)), (-1, c * m, l))
    square = ops.sum(ops.square(patterns), axis=-1, keepdims=True)
    patterns = patterns * ops.rsqrt(ops.maximum(square, epsilon))
    return ops.einsum("bnl,bnk->blk", patterns, patterns), c * m


def nst_loss(student_features, teacher_features, epsilon=1e-12):
    """Neuron selectivity transfer (Huang & Wang, 2017): squared MMD.

    The neurons of a sequence are its `C * m` feature units; neuron `n`'s
    selectivity pattern `f_n` is its activation over the `L` epochs,
    L2-normalised. With the polynomial kernel `k(x, y) = (x^T y)^2`
    (`d = 2, c = 0`), per sequence

        MMD^2 = mean_{i,i'} k(t_i, t_i') + mean_{j,j'} k(s_j, s_j')
                - 2 mean_{i,j} k(s_j, t_i)

    averaged over the batch. Computed through `sum_{i,j} (f_i^T g_j)^2 =
    <F^T F, G^T G>` so only `L x L` matrices are formed, never `Cm x Cm`.

    Parameters
    ----------
    student_features, teacher_features : tensor, shape (batch, epochs, C, m)
        `m` may differ between them.
    epsilon : float
        Floor of a pattern's squared norm (an all-zero neuron stays zero).

    Returns
    -------
    Scalar float32 tensor; 0 when the two sets of patterns coincide.
    """
    s, t = _as_float32(student_features), _as_float32(teacher_features)
    _check_rank(s, 4, "Features")
    _check_leading(s, t, 3, "features")
    gram_s, n_s = _selectivity_gram(s, epsilon)
    gram_t, n_t = _selectivity_gram(t, epsilon)

    def mean_kernel(a, b, n_a, n_b):
        return ops.sum(a * b, axis=(1, 2)) / float(n_a * n_b)

    mmd = (
        mean_kernel(gram_t, gram_t, n_t, n_t)
        + mean_kernel(gram_s, gram_s, n_s, n_s)
        - 2.0 * mean_kernel(gram_s, gram_t, n_s, n_t)
    )
    return ops.mean(mmd)


def _smooth_l1(a, b):
    diff = ops.abs(a - b)
    return ops.mean(ops.where(diff < 1.0, 0.5 * ops.square(diff), diff - 0.5))


def _normalised_distances(x):
    """`||x_i - x_j|| / mu` per group, `mu` = the group's mean off-diagonal distance."""
    square, _ = _pairwise_square_distances(x)
    # sqrt has an infinite gradient at 0: the diagonal gets a zero gradient.
    distance = ops.where(square > 1e-12, ops.sqrt(ops.maximum(square, 1e-12)), 0.0)
    n = ops.cast(ops.shape(distance)[-1], "float32")
    mean = ops.sum(distance, axis=(1, 2), keepdims=True) / ops.maximum(n * (n - 1.0), 1.0)
    return distance / ops.maximum(mean, 1e-12)


def _angles(x):
    """`cos(x_j, x_i, x_k) = <e_ij, e_ik>` with `e_ij = (x_j - x_i) / ||x_j - x_i||`.

    Returns `(G, N, N, N)` indexed `[g, i, j, k]` (vertex `i`); triples with
    `j == i` or `k == i` are 0, as when normalising a zero vector.
    """
    square, gram = _pairwise_square_distances(x)
    valid = square > 1e-12
    inv = ops.where(valid, ops.rsqrt(ops.maximum(square, 1e-12)), 0.0)
    diag = ops.diagonal(gram, axis1=-2, axis2=-1)
    # <x_j - x_i, x_k - x_i> = G_jk - G_ij - G_ik + G_ii, from the Gram matrix
    # instead of the (G, N, N, D) tensor of differences.
    dot = (
        gram[:, None, :, :]
        - gram[:, :, :, None]
        - gram[:, :, None, :]
        + diag[:, :, None, None]
    )
    return dot * inv[:, :, :, None] * inv[:, :, None, :]


def _rkd_groups(features, group):
    b, l, c, m = features.shape
    if group == "sequence":
        return ops.reshape(features, (-1, l, c * m))
    return ops.reshape(features, (1, -1, c * m))


def rkd_loss(
    student_features,
    teacher_features,
    distance_weight=1.0,
    angle_weight=2.0,
    group="sequence",
):
    """Relational KD (Park et al., 2019): distance and angle terms.

    The embeddings are the epochs' feature vectors `u = vec(H_epoch)` of
    length `C * m`. Within each group of `N` embeddings,

        L_D = mean_{i,j} SmoothL1(d_ij^t / mu^t, d_ij^s / mu^s)
        L_A = mean_{i,j,k} SmoothL1(cos_ijk^t, cos_ijk^s)

    with `d_ij = ||u_i - u_j||`, `mu` the mean of `d_ij` over `i != j` and
    `cos_ijk` the cosine of the angle at `u_i` of the triangle
    `(u_j, u_i, u_k)`; the means run over all `N^2` pairs and `N^3` triples,
    as in the authors' code. Returns
    `distance_weight * L_D + angle_weight * L_A`, averaged over groups.

    Parameters
    ----------
    student_features, teacher_features : tensor, shape (batch, epochs, C, m)
        `m` may differ between them.
    distance_weight, angle_weight : float
        `lambda_D` and `lambda_A` (paper: 1 and 2).
    group : {"sequence", "batch"}
        `"sequence"`: relations among the `L` epochs of each sequence;
        `"batch"`: among all `B * L` epochs of the batch.

    Returns
    -------
    Scalar float32 tensor; 0 when the student is a scaled, shifted copy of
    the teacher.
    """
    if group not in _RKD_GROUPS:
        raise ValueError(
            f"`group` must be one of {_RKD_GROUPS}. Received: group={group!r}"
        )
    s, t = _as_float32(student_features), _as_float32(teacher_features)
    _check_rank(s, 4, "Features")
    _check_leading(s, t, 3, "features")
    s, t = _rkd_groups(s, group), _rkd_groups(t, group)
    loss_d = _smooth_l1(_normalised_distances(t), _normalised_distances(s))
    loss_a = _smooth_l1(_angles(t), _angles(s))
    return distance_weight * loss_d + angle_weight * loss_a


def _local_structure(features, sigma):
    """`log LS_ij = log softmax_{j != i} exp(-||z_i - z_j||_1 / sigma)` per epoch."""
    c = features.shape[2]
    l1 = ops.sum(ops.abs(features[:, :, :, None, :] - features[:, :, None, :, :]), axis=-1)
    kernel = ops.exp(-l1 / sigma)
    self_loop = ops.eye(c, dtype="bool")
    # A node is not its own neighbour; -1e4 keeps the masked logits finite.
    return ops.log_softmax(ops.where(self_loop, -1e4, kernel), axis=-1), self_loop


def lsp_loss(student_features, teacher_features, sigma=100.0):
    """Local structure preservation (Yang et al., 2020).

    The nodes are the `C` channels of an epoch, `z_i = H[b, l, i]`, and the
    neighbours of a node are all other channels. Each node's local structure
    is a distribution over its neighbours,

        LS_ij = exp(k_ij) / sum_{j' != i} exp(k_ij'),
        k_ij = exp(-||z_i - z_j||_1 / sigma)

    (the kernel of the authors' code), and the loss is
    `KL(LS_i^t || LS_i^s)` averaged over nodes, epochs and batch.

    Parameters
    ----------
    student_features, teacher_features : tensor, shape (batch, epochs, C, m)
        `m` may differ between them. `C >= 3` for a non-trivial structure.
    sigma : float
        Kernel bandwidth (authors' code: 100).

    Returns
    -------
    Scalar float32 tensor; 0 for identical features.
    """
    s, t = _as_float32(student_features), _as_float32(teacher_features)
    _check_rank(s, 4, "Features")
    _check_leading(s, t, 3, "features")
    log_s, self_loop = _local_structure(s, sigma)
    log_t, _ = _local_structure(t, sigma)
    per_edge = ops.where(self_loop, 0.0, ops.exp(log_t) * (log_t - log_s))
    return ops.mean(ops.sum(per_edge, axis=-1))


def dml_loss(teacher_logits, student_logits):
    """Deep mutual learning (Zhang et al., 2018): both models' mimicry terms.

    `KL(sg(p^s) || p^t) + KL(sg(p^t) || p^s)` with `p = softmax(z)`, each
    averaged over epochs; `sg` is a stop-gradient, so the first term trains
    only the teacher and the second only the student.

    Returns
    -------
    Scalar float32 tensor; 0 for identical logits.
    """
    s, t = _as_float32(student_logits), _as_float32(teacher_logits)
    _check_rank(s, 3, "Logits")
    _check_leading(s, t, 3, "logits")
    log_s, log_t = ops.log_softmax(s, axis=-1), ops.log_softmax(t, axis=-1)
    to_teacher = _kl_rows(ops.stop_gradient(log_s), log_t)
    to_student = _kl_rows(ops.stop_gradient(log_t), log_s)
    return ops.mean(to_teacher) + ops.mean(to_student)
