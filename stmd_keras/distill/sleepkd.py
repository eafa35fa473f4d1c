"""SleepKD (Liang et al., IJCAI 2023) and the DGKD baseline of its tables.

SleepKD's multi-level module distils the teacher's epoch-level features
`F_e` (the per-epoch CNN output, `"epoch_features"` of
`stmd_keras.models.deepsleepnet`) and sequence-level features `F_s` (the
sequence model's output, `"sequence_features"`), plus the soft and hard
labels (poster, "Module Integration"):

    L_total = alpha * L_epoch + beta * L_seq + gamma * L_soft + delta * L_hard
    L_epoch = MSE(F_e^T, P_e(F_e^S)),   L_seq = MSE(F_s^T, P_s(F_s^S))
    L_soft  = KL(p^T || p^S),           L_hard = CE(y, p^S)

Defaults are those hard-coded in the released layer (`loss_function.py`
of github.com/HychaoWang/SleepKD, class `SleepKD`: `e1 = 0.1` hard,
`e2 = 0.4` soft, `e3 = 0.3` epoch, `e4 = 0.2` sequence); neither the poster
nor the README gives the values. What the released layer actually computes
differs from the poster in two places, both kept here as options:

* its feature terms are `tf.keras.losses.KLDivergence()(F^T, F^S)` on the
  raw features, not an MSE: Keras clips both arguments to `[1e-7, 1]` (no
  softmax, no normalisation) and takes `sum_d t_d log(t_d / s_d)` over the
  feature axis, averaged over the other axes. `feature_loss="kl"`
  reproduces exactly that; `feature_loss="kl_softmax"` is the
  better-posed reading `KL(softmax(F^T) || softmax(F^S))` over the feature
  axis (our variant, in no released file); the default `"mse"` is the
  poster's formula (and the `MLKDLoss` of the released training scripts).
* its soft term is `categorical_crossentropy(p^T, p^S)`, i.e.
  `KL(p^T || p^S) + H(p^T)`: same gradient for the student, offset by the
  teacher's entropy. We return the KL (the poster's formula), at the
  released temperature `T = 1` (the layer applies none).

The poster writes the projection on the teacher side, `Phi(F^T)`; the
released models sidestep it by giving the student the teacher's widths. We
project the student (`Dense(d_T)`, linear, trained with the student as
FitNets' regressor), because a learned map on the frozen teacher's side
can shrink both sides towards zero. It is created only where the widths
differ; otherwise the student's features are compared directly.

DGKD (Son et al., ICCV 2021) teaches the student with the teacher and all
teacher assistants ("guides") at once, dropping each guide at random every
step. `DGKD` takes a *list* of guide outputs as `teacher_out`; see its
docstring for the (small) `MutualDistiller` change that provides it. TAKD
(Mirzadeh et al., AAAI 2020) needs no new loss: it is `"kd"` run twice,
teacher -> TA then TA -> student.

`SLEEPKD_METHODS` is meant to be merged into `methods.METHODS`.
"""

import keras
from keras import ops

from stmd_keras.distill.methods import DistillationMethod, _positive
from stmd_keras.knowledge.losses import _as_float32, _check_same_shape

FEATURE_LOSSES = ("mse", "kl", "kl_softmax")
_KERAS_EPSILON = 1e-7  # keras.config.epsilon(), the clip of Keras' KLDivergence
_SLEEPKD_KEYS = ("logits", "epoch_features", "sequence_features")


def multilevel_feature_loss(student_feat, teacher_feat, kind="mse"):
    """SleepKD's epoch- or sequence-level term on already projected features.

    With features of shape `(..., d)` (e.g. `(B, L, d)`):

    * `"mse"` (poster): `mean((F^T - F^S)^2)` over all elements.
    * `"kl"` (released layer, `tf.keras.losses.KLDivergence()(F^T, F^S)`):
      with `c(x) = clip(x, 1e-7, 1)`,
      `mean_over_leading( sum_d c(t_d) * log(c(t_d) / c(s_d)) )`. Raw
      features, not distributions: values above 1 or below 1e-7 are
      clipped (and pass no gradient).
    * `"kl_softmax"` (our variant): `mean_over_leading(KL(softmax(F^T) ||
      softmax(F^S)))`, softmax over the feature axis.

    Parameters
    ----------
    student_feat, teacher_feat : tensor, same shape (..., d)
    kind : "mse", "kl" or "kl_softmax"

    Returns
    -------
    Scalar float32 tensor; 0 for identical features.
    """
    if kind not in FEATURE_LOSSES:
        raise ValueError(f"`kind` must be one of {FEATURE_LOSSES}. Received: kind={kind!r}")
    s, t = _as_float32(student_feat), _as_float32(teacher_feat)
    if len(s.shape) < 1:
        raise ValueError(f"Features must have rank >= 1. Received: shape={tuple(s.shape)}")
    _check_same_shape(s, t, "features")
    if kind == "mse":
        return ops.mean(ops.square(t - s))
    if kind == "kl":
        t = ops.clip(t, _KERAS_EPSILON, 1.0)
        s = ops.clip(s, _KERAS_EPSILON, 1.0)
        return ops.mean(ops.sum(t * ops.log(t / s), axis=-1))
    log_t = ops.log_softmax(t, axis=-1)
    log_s = ops.log_softmax(s, axis=-1)
    return ops.mean(ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1))


def soft_label_loss(student_logits, teacher_logits, temperature=1.0):
    """SleepKD's `L_soft = T^2 * KL(softmax(z_t / T) || softmax(z_s / T))`.

    Mean over the `B * L` epochs. `T = 1` is the released layer's (it uses
    the teacher's plain softmax); at `T = 1` the `T^2` factor is 1 and this
    equals `objectives.kd_loss(..., 1)`. The released layer returns the
    cross-entropy `H(p^T, p^S)` = this + `H(p^T)` (constant for the student).

    Parameters
    ----------
    student_logits, teacher_logits : tensor, shape (batch, epochs, K)
    temperature : float > 0

    Returns
    -------
    Scalar float32 tensor; 0 for identical logits.
    """
    s, t = _as_float32(student_logits), _as_float32(teacher_logits)
    if len(s.shape) != 3:
        raise ValueError(f"Logits must have rank 3. Received: shape={tuple(s.shape)}")
    _check_same_shape(s, t, "logits")
    temp = _positive("temperature", temperature)
    log_t = ops.log_softmax(t / temp, axis=-1)
    log_s = ops.log_softmax(s / temp, axis=-1)
    kl = ops.sum(ops.exp(log_t) * (log_t - log_s), axis=-1)
    return ops.mean(kl) * temp * temp


def _nonnegative(name, value):
    if value < 0:
        raise ValueError(f"`{name}` must be >= 0. Received: {name}={value}")
    return float(value)


@keras.saving.register_keras_serializable(package="stmd_keras")
class SleepKD(DistillationMethod):
    """Liang et al. (2023): multi-level (epoch + sequence) features + soft labels.

        term = loss_weight * (alpha * L_epoch + beta * L_seq + gamma * L_soft)

    and the distiller adds `ce_weight * CE(y, p^S)` (`delta * L_hard`). See
    the module docstring for the terms, their defaults (the released layer's
    0.3 / 0.2 / 0.4 / 0.1) and how the released code differs from the poster.
    The models must output `"logits"`, `"epoch_features"` and
    `"sequence_features"` (the DeepSleepNet stagers do). The ablations of the
    poster are `use_sequence=False` (L1), `use_epoch=False` (L2),
    `use_soft=False` (L3) and `use_hard=False` (L4, `ce_weight = 0`).

    Call `build_for(teacher, student)` before building the optimizer: it
    creates the projections `Dense(d_T)` of the student's features where
    `d_S != d_T` (for enabled terms only), trained with the student.

    Args:
        epoch_weight: `alpha`. Defaults to 0.3.
        sequence_weight: `beta`. Defaults to 0.2.
        soft_weight: `gamma`. Defaults to 0.4.
        temperature: softmax temperature of `L_soft`. Defaults to 1.
        feature_loss: "mse" (poster, default), "kl" (released layer) or
            "kl_softmax"; see `multilevel_feature_loss`.
        use_epoch, use_sequence, use_soft, use_hard: switches of the four
            terms (a disabled term is not computed and weighs 0).
        ce_weight: `delta`, the hard-label weight. Defaults to 0.1 (0 when
            `use_hard=False`).
        loss_weight: overall multiplier of the returned term. Defaults to 1.
    """

    name_in_paper = "SleepKD"
    default_ce_weight = 0.1
    default_loss_weight = 1.0

    def __init__(
        self,
        epoch_weight=0.3,
        sequence_weight=0.2,
        soft_weight=0.4,
        temperature=1.0,
        feature_loss="mse",
        use_epoch=True,
        use_sequence=True,
        use_soft=True,
        use_hard=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if feature_loss not in FEATURE_LOSSES:
            raise ValueError(
                f"`feature_loss` must be one of {FEATURE_LOSSES}. Received: feature_loss={feature_loss!r}"
            )
        self.epoch_weight = _nonnegative("epoch_weight", epoch_weight)
        self.sequence_weight = _nonnegative("sequence_weight", sequence_weight)
        self.soft_weight = _nonnegative("soft_weight", soft_weight)
        self.temperature = _positive("temperature", temperature)
        self.feature_loss = feature_loss
        self.use_epoch, self.use_sequence = bool(use_epoch), bool(use_sequence)
        self.use_soft, self.use_hard = bool(use_soft), bool(use_hard)
        if not self.use_hard:
            self.ce_weight = 0.0
        self.epoch_projection = None
        self.sequence_projection = None
        self.widths = None

    # -- weights -----------------------------------------------------------

    def build_for(self, teacher, student):
        t_shapes, s_shapes = _sleepkd_shapes(teacher), _sleepkd_shapes(student)
        self.build(t_shapes, s_shapes)

    def build(self, teacher_out_shape, student_out_shape, labels_shape=None, epoch_shape=None):
        if self.built:
            return
        widths = {}
        for key in ("epoch_features", "sequence_features"):
            if key not in teacher_out_shape or key not in student_out_shape:
                raise ValueError(
                    f"SleepKD needs the models' {key!r} output (see "
                    "stmd_keras.models.deepsleepnet)."
                )
            widths[key] = (int(teacher_out_shape[key][-1]), int(student_out_shape[key][-1]))
        self._make_projections(widths)
        self.built = True

    def _make_projections(self, widths):
        self.widths = widths
        for key, attr, used in (
            ("epoch_features", "epoch_projection", self.use_epoch and self.epoch_weight > 0),
            ("sequence_features", "sequence_projection", self.use_sequence and self.sequence_weight > 0),
        ):
            d_t, d_s = widths[key]
            if used and d_t != d_s:
                layer = keras.layers.Dense(d_t, name=attr)
                layer.build((None, d_s))
                setattr(self, attr, layer)

    def get_build_config(self):
        if self.widths is None:
            return None
        return {k: list(v) for k, v in self.widths.items()}

    def build_from_config(self, config):
        if config and not self.built:
            self._make_projections({k: tuple(v) for k, v in config.items()})
            self.built = True

    # -- loss --------------------------------------------------------------

    def terms(self, teacher_out, student_out):
        """Unweighted `{"epoch", "sequence", "soft"}` terms (disabled ones are 0)."""
        zero = ops.zeros((), "float32")
        out = {"epoch": zero, "sequence": zero, "soft": zero}
        if self.use_epoch and self.epoch_weight > 0:
            s = student_out["epoch_features"]
            if self.epoch_projection is not None:
                s = self.epoch_projection(s)
            out["epoch"] = multilevel_feature_loss(s, teacher_out["epoch_features"], self.feature_loss)
        if self.use_sequence and self.sequence_weight > 0:
            s = student_out["sequence_features"]
            if self.sequence_projection is not None:
                s = self.sequence_projection(s)
            out["sequence"] = multilevel_feature_loss(
                s, teacher_out["sequence_features"], self.feature_loss
            )
        if self.use_soft and self.soft_weight > 0:
            out["soft"] = soft_label_loss(student_out["logits"], teacher_out["logits"], self.temperature)
        return out

    def distillation_loss(self, teacher_out, student_out, labels):
        t = self.terms(teacher_out, student_out)
        return (
            self.epoch_weight * t["epoch"]
            + self.sequence_weight * t["sequence"]
            + self.soft_weight * t["soft"]
        )

    def get_config(self):
        return {
            **super().get_config(),
            "epoch_weight": self.epoch_weight, "sequence_weight": self.sequence_weight,
            "soft_weight": self.soft_weight, "temperature": self.temperature,
            "feature_loss": self.feature_loss, "use_epoch": self.use_epoch,
            "use_sequence": self.use_sequence, "use_soft": self.use_soft,
            "use_hard": self.use_hard,
        }


def _sleepkd_shapes(model_or_outputs):
    outputs = model_or_outputs
    if not isinstance(outputs, dict):
        outputs = getattr(model_or_outputs, "output", None)
    if not isinstance(outputs, dict) or any(k not in outputs for k in _SLEEPKD_KEYS):
        raise ValueError(
            f"SleepKD expects a stager whose output is a dict with keys {_SLEEPKD_KEYS} "
            f"(see stmd_keras.models.deepsleepnet), or such a dict. Received: {model_or_outputs!r}"
        )
    return {
        k: tuple(v) if isinstance(v, (tuple, list)) else tuple(v.shape)
        for k, v in outputs.items()
    }


@keras.saving.register_keras_serializable(package="stmd_keras")
class DGKD(DistillationMethod):
    """Son et al. (2021): densely guided KD by the teacher and all assistants.

        term = loss_weight * sum_i m_i * KD(z_s, z_i) / sum_i m_i
        KD(z_s, z_i) = T^2 * KL(softmax(z_i / T) || softmax(z_s / T))

    over the guides `i` (teacher first, then the assistants). During training
    (`epoch` given, as the distiller does) each guide is dropped
    independently with probability `drop_prob` (`m_i = 0`); if all are
    dropped, one guide drawn uniformly is kept, so at least one always
    teaches. At evaluation (`epoch=None`) all guides count. The draws come
    from a `keras.random.SeedGenerator(seed)`, so a fixed seed reproduces
    the masks.

    `teacher_out` is a list of guide output dicts (a single dict is one
    guide). Our `MutualDistiller` forwards one teacher; DGKD needs it to
    also forward frozen guides and pass `[teacher_out, *guide_outs]`.

    Defaults: `T = 4` and CE : KD = 0.1 : 0.9 follow our "kd" baseline (the
    released SleepKD code's DGKD layer sums `CE(y) + CE(p^T) + CE(p^TA)`
    at `T = 1` with no dropping). `drop_prob = 0.5` is our choice; DGKD
    treats it as a hyper-parameter.

    Args:
        temperature: KD temperature. Defaults to 4.
        drop_prob: probability of dropping each guide in a training step,
            in [0, 1]. Defaults to 0.5.
        seed: seed of the drop masks. Defaults to None (unseeded).
        ce_weight, loss_weight: see `DistillationMethod` (0.1, 0.9).
    """

    name_in_paper = "DGKD"
    multi_guide = True  # MutualDistiller(guides=[...]) passes [teacher, *guides]
    paper_epochs = 30
    default_ce_weight = 0.1
    default_loss_weight = 0.9

    def __init__(self, temperature=4.0, drop_prob=0.5, seed=None, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= drop_prob <= 1.0:
            raise ValueError(f"`drop_prob` must be in [0, 1]. Received: drop_prob={drop_prob}")
        self.temperature = _positive("temperature", temperature)
        self.drop_prob = float(drop_prob)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="dgkd_seed")

    def build_for(self, teacher, student):
        guides = teacher if isinstance(teacher, (list, tuple)) else [teacher]
        for model in list(guides) + [student]:
            outputs = model if isinstance(model, dict) else getattr(model, "output", None)
            if not isinstance(outputs, dict) or "logits" not in outputs:
                raise ValueError(
                    "DGKD expects stagers (or output dicts) with a 'logits' output. "
                    f"Received: {model!r}"
                )
        self.built = True

    def sample_keep_mask(self, num_guides):
        """Float mask `(num_guides,)` of the guides kept in one training step."""
        if self.drop_prob == 0.0:
            return ops.ones((num_guides,), "float32")
        u = keras.random.uniform((num_guides,), seed=self.seed_generator)
        keep = ops.cast(u >= self.drop_prob, "float32")
        pick = keras.random.randint((), 0, num_guides, seed=self.seed_generator)
        fallback = ops.one_hot(pick, num_guides, dtype="float32")
        return ops.where(ops.sum(keep) > 0, keep, fallback)

    def guide_losses(self, guide_outs, student_out):
        """`(G,)` KD term of every guide."""
        return ops.stack([
            soft_label_loss(student_out["logits"], g["logits"], self.temperature)
            for g in guide_outs
        ])

    def call(self, teacher_out, student_out, labels, epoch=None):
        guides = list(teacher_out) if isinstance(teacher_out, (list, tuple)) else [teacher_out]
        if not guides:
            raise ValueError("DGKD needs at least one guide.")
        guides = [{k: ops.stop_gradient(v) for k, v in g.items()} for g in guides]
        losses = self.guide_losses(guides, student_out)
        if epoch is None:
            mask = ops.ones((len(guides),), "float32")
        else:
            mask = self.sample_keep_mask(len(guides))
        loss = ops.sum(mask * losses) / ops.sum(mask)
        return self.loss_weight * loss

    def get_config(self):
        return {
            **super().get_config(), "temperature": self.temperature,
            "drop_prob": self.drop_prob, "seed": self.seed,
        }


SLEEPKD_METHODS = {"sleepkd": SleepKD, "dgkd": DGKD}
