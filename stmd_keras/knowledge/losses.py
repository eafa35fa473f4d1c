"""Spatial and temporal distillation losses (paper Eqs. 6, 7 and 9).

Plain functions of two tensors returning a float32 scalar. Neither argument is
stopped: in mutual distillation the teacher is trained by the same terms as
the student, so gradients must reach both.

The sleep-graph distance is selectable by name (paper appendix A.8,
Table 17): `"kl"` (`spatial_loss`, Eqs. 6-7, the default), `"mmd"`
(`spatial_mmd`) and `"wasserstein"` (`spatial_wasserstein`). All three compare
node `i` of the student graph with node `i` of the teacher graph, i.e. row
`e_i^s` with row `e_i^t`, and average over nodes (Eq. 7), epochs and batch.
Further distances are added by writing a function
`f(student_graph, teacher_graph, **options) -> scalar` and one entry in
`GRAPH_DISTANCES`; `graph_distance` then selects it by name.
"""

import math
import numbers

from keras import ops

_DIRECTIONS = ("student_teacher", "teacher_student")


def _as_float32(x):
    return ops.cast(ops.convert_to_tensor(x), "float32")


def _check_same_shape(a, b, what):
    shape_a, shape_b = tuple(a.shape), tuple(b.shape)
    same = len(shape_a) == len(shape_b) and all(
        x is None or y is None or x == y for x, y in zip(shape_a, shape_b)
    )
    if not same:
        raise ValueError(
            f"The student and teacher {what} must have the same shape. "
            f"Received: student shape={shape_a}, teacher shape={shape_b}"
        )


def spatial_loss(
    student_graph, teacher_graph, direction="student_teacher", epsilon=1e-8
):
    """KL divergence between the rows of two sleep graphs (Eqs. 6-7).

    For node `i`, `D_i = sum_j e_ij^s * log(e_ij^s / e_ij^t)` (Eq. 6, as
    printed: the student is the first argument of the KL); the loss is the
    mean of `D_i` over nodes (Eq. 7), epochs and batch.

    Parameters
    ----------
    student_graph, teacher_graph : tensor, shape (batch, epochs, C, C)
        Row-stochastic sleep graphs, e.g. from `SleepGraph`. Any float dtype.
    direction : {"student_teacher", "teacher_student"}
        `"student_teacher"` computes KL(e^s || e^t) as in Eq. 6;
        `"teacher_student"` computes KL(e^t || e^s), the usual KD direction.
    epsilon : float
        Floor applied to probabilities inside the logarithms, so zero entries
        give finite values and gradients.

    Returns
    -------
    Scalar float32 tensor; 0 for identical graphs.
    """
    if direction not in _DIRECTIONS:
        raise ValueError(
            f"`direction` must be one of {_DIRECTIONS}. "
            f"Received: direction={direction!r}"
        )
    student = _as_float32(student_graph)
    teacher = _as_float32(teacher_graph)
    _check_same_shape(student, teacher, "sleep graphs")
    p, q = (student, teacher) if direction == "student_teacher" else (
        teacher,
        student,
    )
    # The floor sits inside the logs only: p * log(p) -> 0 as p -> 0, and
    # identical graphs give log(p) - log(q) == 0 exactly.
    log_ratio = ops.log(ops.maximum(p, epsilon)) - ops.log(
        ops.maximum(q, epsilon)
    )
    per_node = ops.sum(p * log_ratio, axis=-1)
    return ops.mean(per_node)


def temporal_loss(student_rel, teacher_rel):
    """SmoothL1 (Huber, beta = 1) between two temporal relations (Eq. 9).

    Parameters
    ----------
    student_rel, teacher_rel : tensor, shape (batch, epochs, epochs)
        Temporal relations, e.g. from `TemporalRelation`. Any float dtype.

    Returns
    -------
    Scalar float32 tensor: the mean over all elements of
    `0.5 * d**2` where `|d| < 1` and `|d| - 0.5` elsewhere,
    with `d = teacher_rel - student_rel`.
    """
    student = _as_float32(student_rel)
    teacher = _as_float32(teacher_rel)
    _check_same_shape(student, teacher, "temporal relations")
    diff = ops.abs(teacher - student)
    elementwise = ops.where(diff < 1.0, 0.5 * ops.square(diff), diff - 0.5)
    return ops.mean(elementwise)


# --------------------------------------------------------------------------
# Alternative sleep-graph distances (appendix A.8, Table 17)
# --------------------------------------------------------------------------
#
# The paper names the measures (MMD, Wasserstein) but not the space the node
# distributions live in. Both need a geometry on the C channels, set here by
# `support`, the same for both measures:
#
#   "index"   channel j is the point j on the real line (ground distance
#             |j - k|). Default. Keeps the channel correspondence of the KL
#             (mass on channel j is compared with mass on channel j and its
#             neighbours), but depends on the order of the input channels.
#   "onehot"  channel j is the one-hot vector delta_j in R^C: every pair of
#             distinct channels is sqrt(2) apart, so the distance is
#             invariant to reordering the channels, as the KL is.
#   "samples" the C edge weights e_i1..e_iC of a node are C equally weighted
#             scalar samples (the reading of scipy.stats.wasserstein_distance
#             (u, v)). Invariant to permuting a row: it ignores which channel
#             an edge points to.

_SUPPORTS = ("index", "onehot", "samples")


def _check_support(support):
    if support not in _SUPPORTS:
        raise ValueError(
            f"`support` must be one of {_SUPPORTS}. "
            f"Received: support={support!r}"
        )


def _graph_pair(student_graph, teacher_graph):
    student = _as_float32(student_graph)
    teacher = _as_float32(teacher_graph)
    _check_same_shape(student, teacher, "sleep graphs")
    return student, teacher


def spatial_wasserstein(student_graph, teacher_graph, support="index"):
    """Wasserstein-1 distance between the rows of two sleep graphs.

    Node `i` of a sleep graph is the distribution `e_i = (e_i1, ..., e_iC)`
    (row `i`, summing to 1). The per-node distance `W_i` is the exact
    1-Wasserstein (earth mover's) distance between `e_i^s` and `e_i^t` with
    the ground cost given by `support`; the loss is the mean of `W_i` over
    nodes, epochs and batch, as Eq. 7 does for the KL. With
    `d = e_i^s - e_i^t`:

    * `"index"` (default): `e_i` is a distribution on the channel indices
      `1..C`, ground cost `|j - k|`. Closed form (1-D optimal transport):
      `W_i = sum_{k=1}^{C-1} |sum_{j<=k} d_j|`, the L1 gap between the two
      CDFs. Range `[0, C - 1]`; depends on the channel order.
    * `"onehot"`: `e_i` is a distribution on the one-hot vectors
      `delta_1..delta_C` of R^C, Euclidean ground cost (`sqrt(2)` between any
      two distinct channels): `W_i = sqrt(2)/2 * sum_j |d_j|`, i.e.
      `sqrt(2)` times the total variation. Range `[0, sqrt(2)]`; invariant to
      the channel order.
    * `"samples"`: the C edge weights of each node are C equally weighted
      samples on the real line:
      `W_i = (1/C) * sum_k |sort(e_i^s)_k - sort(e_i^t)_k|`. Invariant to
      permuting a row, so it ignores which channel each edge points to.

    `W` is symmetric in its arguments. "index" and "onehot" assume both rows
    have the same total mass (true for row-stochastic graphs).

    Parameters
    ----------
    student_graph, teacher_graph : tensor, shape (batch, epochs, C, C)
        Row-stochastic sleep graphs, e.g. from `SleepGraph`. Any float dtype;
        any leading shape works, the last axis is the distribution.
    support : {"index", "onehot", "samples"}
        Where the node distributions live (see above).

    Returns
    -------
    Scalar float32 tensor; 0 for identical graphs. The gradient of `|x|` at
    0 is taken as 0 (finite everywhere, including identical inputs).
    """
    _check_support(support)
    student, teacher = _graph_pair(student_graph, teacher_graph)
    if support == "index":
        # cumsum of the difference (not difference of cumsums): identical
        # rows give exactly 0. The last CDF gap is the mass difference (0).
        cdf_gap = ops.cumsum(student - teacher, axis=-1)[..., :-1]
        per_node = ops.sum(ops.abs(cdf_gap), axis=-1)
    elif support == "onehot":
        per_node = (math.sqrt(2.0) / 2.0) * ops.sum(
            ops.abs(student - teacher), axis=-1
        )
    else:
        sorted_gap = ops.sort(student, axis=-1) - ops.sort(teacher, axis=-1)
        per_node = ops.mean(ops.abs(sorted_gap), axis=-1)
    return ops.mean(per_node)


def spatial_mmd(student_graph, teacher_graph, support="index", bandwidth=None):
    """Squared kernel MMD between the rows of two sleep graphs.

    Node `i` of a sleep graph is the distribution `e_i` (row `i`). With a
    Gaussian kernel `k(x, y) = exp(-||x - y||**2 / (2 * bandwidth**2))` on the
    points of `support`, the per-node distance is the squared maximum mean
    discrepancy between `e_i^s` and `e_i^t`,
    `M_i = E k(x, x') + E k(y, y') - 2 E k(x, y)`, `x, x' ~ e_i^s`,
    `y, y' ~ e_i^t` (the exact population value, no sampling); the loss is the
    mean of `M_i` over nodes, epochs and batch. With `d = e_i^s - e_i^t`:

    * `"index"` (default): points `1..C`, `K_jk = exp(-(j - k)**2 /
      (2 * bandwidth**2))`, `M_i = d^T K d`; `bandwidth` in channel steps,
      default 1.0. Depends on the channel order.
    * `"onehot"`: points `delta_1..delta_C`, so `K = (1 - a) I + a 1 1^T`
      with `a = exp(-1 / bandwidth**2)` and
      `M_i = (1 - a) * sum_j d_j**2 + a * (sum_j d_j)**2`, which for
      row-stochastic graphs is `(1 - a) * ||d||**2`; `bandwidth` only
      scales the loss; default 1.0. Invariant to the channel order.
    * `"samples"`: the C edge weights of each node are C equally weighted
      scalar samples, `M_i = mean_ab k(s_a, s_b) + mean_ab k(t_a, t_b)
      - 2 mean_ab k(s_a, t_b)` (the biased V-statistic); `bandwidth` in units
      of edge weight, default `1 / C` (the mean edge weight). Invariant to
      permuting a row.

    The squared MMD is returned, not its square root: the root has an
    infinite gradient at identical graphs. `M` is symmetric in its arguments
    and >= 0 (clipped at 0 against rounding).

    Parameters
    ----------
    student_graph, teacher_graph : tensor, shape (batch, epochs, C, C)
        Row-stochastic sleep graphs, e.g. from `SleepGraph`. Any float dtype;
        any leading shape works, the last axis is the distribution.
    support : {"index", "onehot", "samples"}
        Where the node distributions live (see above).
    bandwidth : positive float or None
        Gaussian kernel width `sigma`; None picks the default of `support`.

    Returns
    -------
    Scalar float32 tensor; 0 for identical graphs.
    """
    _check_support(support)
    if bandwidth is not None and (
        isinstance(bandwidth, bool)
        or not isinstance(bandwidth, numbers.Real)
        or not math.isfinite(bandwidth)
        or bandwidth <= 0
    ):
        raise ValueError(
            "`bandwidth` must be a positive finite number or None. "
            f"Received: bandwidth={bandwidth!r}"
        )
    student, teacher = _graph_pair(student_graph, teacher_graph)
    channels = ops.shape(student)[-1]
    if support == "index":
        sigma = 1.0 if bandwidth is None else float(bandwidth)
        position = ops.cast(ops.arange(channels), "float32")
        gap = position[:, None] - position[None, :]
        kernel = ops.exp(-ops.square(gap) / (2.0 * sigma**2))
        diff = student - teacher
        per_node = ops.sum(diff * ops.matmul(diff, kernel), axis=-1)
    elif support == "onehot":
        sigma = 1.0 if bandwidth is None else float(bandwidth)
        a = math.exp(-1.0 / sigma**2)
        diff = student - teacher
        per_node = (1.0 - a) * ops.sum(ops.square(diff), axis=-1)
        per_node = per_node + a * ops.square(ops.sum(diff, axis=-1))
    else:
        if bandwidth is None:
            sigma = 1.0 / ops.cast(channels, "float32")
        else:
            sigma = float(bandwidth)
        inv_two_var = 1.0 / (2.0 * sigma**2)

        def mean_kernel_minus_one(x, y):
            # k - 1 = expm1(-z): the three "1"s cancel (1 + 1 - 2), and
            # expm1 keeps the digits that exp(-z) ~ 1 would lose.
            z = ops.square(x[..., :, None] - y[..., None, :]) * inv_two_var
            return ops.mean(ops.expm1(-z), axis=(-2, -1))

        per_node = (
            mean_kernel_minus_one(student, student)
            + mean_kernel_minus_one(teacher, teacher)
            - 2.0 * mean_kernel_minus_one(student, teacher)
        )
    return ops.mean(ops.maximum(per_node, 0.0))


GRAPH_DISTANCES = {
    "kl": spatial_loss,
    "mmd": spatial_mmd,
    "wasserstein": spatial_wasserstein,
}


def graph_distance(student_graph, teacher_graph, distance="kl", **kwargs):
    """Distance between two sleep graphs, selected by name.

    Parameters
    ----------
    student_graph, teacher_graph : tensor, shape (batch, epochs, C, C)
        Row-stochastic sleep graphs.
    distance : {"kl", "mmd", "wasserstein"}
        A key of `GRAPH_DISTANCES`: `"kl"` (`spatial_loss`, the paper's
        Eqs. 6-7, default), `"mmd"` (`spatial_mmd`) or `"wasserstein"`
        (`spatial_wasserstein`).
    **kwargs
        Passed to the selected function (`direction`, `epsilon` for `"kl"`;
        `support`, `bandwidth` for `"mmd"`; `support` for `"wasserstein"`).

    Returns
    -------
    Scalar float32 tensor.
    """
    if distance not in GRAPH_DISTANCES:
        raise ValueError(
            f"Unknown graph distance. Available: {sorted(GRAPH_DISTANCES)}. "
            f"Received: distance={distance!r}"
        )
    return GRAPH_DISTANCES[distance](student_graph, teacher_graph, **kwargs)
