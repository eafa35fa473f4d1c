"""Spatial-temporal mutual distillation (paper Section 4.3, Eqs. 10-13)."""

import keras
import tensorflow as tf
from keras import ops

from stmd_keras.distill.base import LossTrackers, StagingMetrics, unpack
from stmd_keras.distill.methods import DistillationMethod, get_method
from stmd_keras.distill.objectives import classification_loss, kd_loss, scale_for_replicas
from stmd_keras.knowledge import SleepGraph, TemporalRelation, graph_distance, temporal_loss

LOSS_NAMES = ("loss_teacher", "loss_student", "ce_teacher", "ce_student", "spatial", "temporal", "kd", "distill")


class _EpochCounter(keras.callbacks.Callback):
    """Keeps `model.epoch` equal to the 0-based epoch `fit` is in (resumes included)."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.epoch.assign(epoch)


class MutualDistiller(keras.Model):
    """Trains a teacher and a student together with spatial-temporal knowledge.

    Each step forwards both models and computes the teacher and student
    cross-entropies `L_c^t`, `L_c^s`, the spatial loss between their sleep
    graphs and the temporal loss between their temporal relations. With
    `mutual=True` (the paper's framework) both models are updated:

        Loss^t = alpha * L_c^t + beta * L_spatial + gamma * L_temporal   (12)
        Loss^s = alpha * L_c^s + beta * L_spatial + gamma * L_temporal   (13)

    The knowledge terms depend on both models, so they train both (no stop
    gradient). Because the parameter sets are disjoint, one backward pass of
    `alpha * (L_c^t + L_c^s) + beta * L_spatial + gamma * L_temporal` gives
    exactly the gradient of (12) for the teacher and of (13) for the student.

    With `mutual=False` the teacher is frozen (inference mode, no gradient)
    and knowledge flows one way: the ablation Variants II-III, and with
    `kd_weight > 0` Hinton's knowledge distillation (Variant I).

    With `method=` (a name of `stmd_keras.distill.methods.METHODS` or a
    `DistillationMethod`) a baseline replaces the spatial-temporal terms:
    the student minimises `method.ce_weight * L_c^s + method(...)`, and the
    teacher is trained only when the method says so (Deep Mutual Learning).

    >>> distiller = MutualDistiller(teacher, student)
    >>> distiller.compile(keras.optimizers.Adam(1e-4), keras.optimizers.Adam(1e-4))
    >>> distiller.fit(train_ds, validation_data=val_ds, epochs=25)

    Args:
        teacher: a stager returning `{"logits": (B, L, K), "features": (B, L, C, m)}`.
        student: a stager with the same outputs (its `m` may differ).
        guides: further frozen models (teacher assistants) whose outputs a
            multi-guide method such as DGKD receives after the teacher's;
            they are never trained.
    """

    def __init__(self, teacher, student, guides=(), **kwargs):
        super().__init__(**kwargs)
        self.teacher = teacher
        self.student = student
        self.guides = list(guides)
        self.sleep_graph = SleepGraph(name="sleep_graph")
        self.temporal_relation = TemporalRelation(name="temporal_relation")
        self.loss_trackers = LossTrackers(LOSS_NAMES)
        self.teacher_staging = StagingMetrics("teacher")
        self.student_staging = StagingMetrics("student")
        self.settings = {}
        self.method = None
        self.epoch = keras.Variable(0, dtype="int32", trainable=False, name="epoch")
        self.built = True  # the wrapped models are built functional models

    @property
    def trainees(self):
        """The models `fit` updates: both when mutual, else the student."""
        return (self.teacher, self.student) if self.settings.get("mutual") else (self.student,)

    def compile(
        self,
        teacher_optimizer=None,
        student_optimizer=None,
        alpha=1.0,
        beta=5.0,
        gamma=1.0,
        spatial=True,
        temporal=True,
        mutual=True,
        kd_weight=0.0,
        temperature=4.0,
        distance="kl",
        temporal_normalize=False,
        distance_options=None,
        method=None,
        method_options=None,
        **kwargs,
    ):
        """Configures the optimizers, loss weights and ablation switches.

        Args:
            teacher_optimizer: optimizer of the teacher (default Adam 1e-4);
                unused when `mutual=False`.
            student_optimizer: optimizer of the student (default Adam 1e-4).
            alpha, beta, gamma: weights of the cross-entropy, spatial and
                temporal terms (paper: 1, 5, 1).
            spatial: include the spatial (sleep-graph) term.
            temporal: include the temporal-relation term.
            mutual: update the teacher too (paper); `False` freezes it.
            kd_weight: weight of Hinton's KD term in the student's loss.
            temperature: KD temperature.
            distance: name of the sleep-graph distance (see
                `stmd_keras.knowledge.GRAPH_DISTANCES`).
            temporal_normalize: divide each temporal relation by its mean
                off-diagonal distance (RKD-style) instead of the raw distances.
            distance_options: keyword arguments of the graph distance (e.g.
                `{"support": "onehot"}` for "mmd" or "wasserstein").
            method: a baseline (name or `DistillationMethod`) instead of the
                spatial-temporal terms; it sets the cross-entropy weight and
                whether the teacher trains, so `alpha`, `beta`, `gamma`,
                `mutual` and `kd_weight` are then ignored.
            method_options: keyword arguments of `get_method(method, ...)`.
        """
        for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma), ("kd_weight", kd_weight)):
            if value < 0:
                raise ValueError(f"`{name}` must be >= 0. Received: {name}={value}")
        if temperature <= 0:
            raise ValueError(f"`temperature` must be > 0. Received: temperature={temperature}")
        self.teacher_optimizer = teacher_optimizer or keras.optimizers.Adam(1e-4)
        self.student_optimizer = student_optimizer or keras.optimizers.Adam(1e-4)
        super().compile(optimizer=self.student_optimizer, **kwargs)
        if method is not None:
            if not isinstance(method, DistillationMethod):
                method = get_method(method, **(method_options or {}))
            elif method_options:
                raise ValueError("`method_options` applies to a method given by name only.")
            if self.guides and not getattr(method, "multi_guide", False):
                raise ValueError(
                    f"`guides` were given but method {method.name!r} takes one teacher; "
                    "use a multi-guide method such as 'dgkd'."
                )
            method.build_for([self.teacher, *self.guides] if self.guides else self.teacher, self.student)
            self.method = method
            alpha, spatial, temporal, kd_weight = method.ce_weight, False, False, 0.0
            mutual = method.trains_teacher
        self.settings = dict(
            alpha=float(alpha), beta=float(beta) if spatial else 0.0,
            gamma=float(gamma) if temporal else 0.0, mutual=bool(mutual),
            kd_weight=float(kd_weight), temperature=float(temperature), distance=distance,
            distance_options=dict(distance_options or {}),
            method=None if method is None else method.name,
        )
        self.temporal_relation = TemporalRelation(normalize=temporal_normalize, name="temporal_relation")
        self.student_optimizer.build(self._student_side_variables())
        if mutual:
            self.teacher_optimizer.build(self.teacher.trainable_variables)

    def _student_side_variables(self):
        """The student's trainable variables plus the method's (FitNets' regressor)."""
        extra = self.method.trainable_variables if self.method is not None else []
        return self.student.trainable_variables + list(extra)

    def fit(self, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or []) + [_EpochCounter()]
        return super().fit(*args, callbacks=callbacks, **kwargs)

    @property
    def metrics(self):
        return self.loss_trackers.metrics + self.teacher_staging.metrics + self.student_staging.metrics

    def call(self, x, training=False):
        return self.student(x, training=training)["logits"]

    def _compute_terms(self, x, y, training):
        cfg = self.settings
        teacher_out = self.teacher(x, training=training and cfg["mutual"])
        if not (training and cfg["mutual"]):
            teacher_out = {k: ops.stop_gradient(v) for k, v in teacher_out.items()}
        student_out = self.student(x, training=training)
        t_logits, s_logits = teacher_out["logits"], student_out["logits"]
        zero = ops.zeros((), "float32")
        terms = {
            "ce_teacher": classification_loss(y, t_logits),
            "ce_student": classification_loss(y, s_logits),
            "spatial": zero,
            "temporal": zero,
            "kd": zero,
            "distill": zero,
        }
        if cfg["beta"] > 0:
            terms["spatial"] = graph_distance(
                self.sleep_graph(student_out["features"]),
                self.sleep_graph(teacher_out["features"]),
                distance=cfg["distance"],
                **cfg["distance_options"],
            )
        if cfg["gamma"] > 0:
            terms["temporal"] = temporal_loss(
                self.temporal_relation(student_out["features"]),
                self.temporal_relation(teacher_out["features"]),
            )
        if cfg["kd_weight"] > 0:
            terms["kd"] = kd_loss(s_logits, ops.stop_gradient(t_logits), cfg["temperature"])
        knowledge = cfg["beta"] * terms["spatial"] + cfg["gamma"] * terms["temporal"]
        if self.method is not None:
            guide_out = teacher_out
            if self.guides:
                guide_out = [teacher_out] + [
                    {k: ops.stop_gradient(v) for k, v in g(x, training=False).items()} for g in self.guides
                ]
            terms["distill"] = self.method(guide_out, student_out, y, epoch=self.epoch if training else None)
            knowledge = knowledge + terms["distill"]
        terms["loss_teacher"] = cfg["alpha"] * terms["ce_teacher"] + knowledge
        terms["loss_student"] = (
            cfg["alpha"] * terms["ce_student"] + knowledge + cfg["kd_weight"] * terms["kd"]
        )
        return terms, t_logits, s_logits

    def train_step(self, data):
        x, y = unpack(data)
        cfg = self.settings
        with tf.GradientTape() as tape:
            terms, t_logits, s_logits = self._compute_terms(x, y, training=True)
            # Disjoint parameters: d/d(theta_t) of this is exactly Eq. 12 and
            # d/d(theta_s) exactly Eq. 13 (see the class docstring).
            objective = terms["loss_student"]
            if cfg["mutual"]:
                objective = objective + cfg["alpha"] * terms["ce_teacher"]
        student_vars = self._student_side_variables()
        teacher_vars = self.teacher.trainable_variables if cfg["mutual"] else []
        grads = tape.gradient(scale_for_replicas(objective), student_vars + teacher_vars)
        self.student_optimizer.apply_gradients(zip(grads[: len(student_vars)], student_vars))
        if teacher_vars:
            self.teacher_optimizer.apply_gradients(zip(grads[len(student_vars):], teacher_vars))
        return self._update_metrics(terms, y, t_logits, s_logits)

    def test_step(self, data):
        x, y = unpack(data)
        terms, t_logits, s_logits = self._compute_terms(x, y, training=False)
        return self._update_metrics(terms, y, t_logits, s_logits)

    def _update_metrics(self, terms, y, t_logits, s_logits):
        self.loss_trackers.update(terms)
        self.teacher_staging.update(y, t_logits)
        self.student_staging.update(y, s_logits)
        return {m.name: m.result() for m in self.metrics}
