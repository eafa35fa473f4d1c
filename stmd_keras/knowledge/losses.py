"""Spatial and temporal distillation losses (paper Eqs. 6, 7 and 9).

Plain functions of two tensors returning a float32 scalar. Neither argument is
stopped: in mutual distillation the teacher is trained by the same terms as
the student, so gradients must reach both.

New graph distances (e.g. "mmd", "wasserstein") are added by writing a
function with the signature of `spatial_loss` and one entry in
`GRAPH_DISTANCES`; `graph_distance` then selects it by name.
"""

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


GRAPH_DISTANCES = {
    "kl": spatial_loss,
}


def graph_distance(student_graph, teacher_graph, distance="kl", **kwargs):
    """Distance between two sleep graphs, selected by name.

    Parameters
    ----------
    student_graph, teacher_graph : tensor, shape (batch, epochs, C, C)
        Row-stochastic sleep graphs.
    distance : str
        A key of `GRAPH_DISTANCES` (currently only `"kl"`, i.e.
        `spatial_loss`).
    **kwargs
        Passed to the selected function (e.g. `direction` for `"kl"`).

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
