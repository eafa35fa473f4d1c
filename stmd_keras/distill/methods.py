"""Baseline distillation methods (paper Appendix A.1), one small class each.

Every method is a loss component with one interface: the distiller forwards
both models and calls

    method(teacher_out, student_out, labels, epoch=epoch)

with the model outputs `{"logits": (B, L, K), "features": (B, L, C, m)}`,
the stage labels `(B, L)` and the 0-based training epoch. It returns the
already weighted distillation term; the distiller adds
`method.ce_weight * L_c^s` (and `method.ce_weight * L_c^t` when
`method.trains_teacher`). Defaults follow the paper's Table 15 (epochs and
the CE : distillation loss-weight ratio) and, where it is silent, the
original papers. `METHODS` maps names to classes; `get_method` selects one:

>>> method = get_method("kd")
>>> method.ce_weight, method.loss_weight, method.paper_epochs
(0.1, 0.9, 30)

Methods are Keras layers so that the FitNets regressor is tracked, trained
(with the student's optimizer) and saved with the distiller.
"""

import keras
from keras import ops

from stmd_keras.distill.objectives import kd_loss
from stmd_keras.knowledge.baselines import (
    dkd_loss,
    dml_loss,
    hint_loss,
    lsp_loss,
    nst_loss,
    rkd_loss,
)

_OUTPUT_KEYS = ("logits", "features")


def _output_shapes(model_or_outputs):
    """`{"logits": shape, "features": shape}` of a stager or of its outputs."""
    outputs = model_or_outputs
    if not isinstance(outputs, dict):
        outputs = getattr(model_or_outputs, "output", None)
    if not isinstance(outputs, dict) or any(k not in outputs for k in _OUTPUT_KEYS):
        raise ValueError(
            "Expected a stager whose output is a dict with keys "
            f"{_OUTPUT_KEYS}, or such a dict. Received: {model_or_outputs!r}"
        )
    return {
        k: tuple(v) if isinstance(v, (tuple, list)) else tuple(v.shape)
        for k, v in outputs.items()
    }


class DistillationMethod(keras.layers.Layer):
    """Base class: one baseline's distillation term on the two models' outputs.

    Subclasses set the class attributes and implement `distillation_loss`.
    `call` stops the teacher's gradients unless `trains_teacher` (the
    teacher of a one-way method is frozen, whatever the distiller does), and
    returns `loss_weight * schedule(epoch) * distillation_loss(...)`.

    Class attributes:
        name_in_paper: the method's name in the paper's tables.
        paper_epochs: training epochs of Table 15.
        trains_teacher: whether the teacher is trained too (the distiller
            must then run with `mutual=True`).
        default_ce_weight, default_loss_weight: Table 15's loss weights,
            CE : distillation.

    Args:
        ce_weight: weight of each trained model's cross-entropy, for the
            distiller (default: `default_ce_weight`).
        loss_weight: weight of the distillation term returned by `call`
            (default: `default_loss_weight`).
        **kwargs: base layer keyword arguments, such as `name`.
    """

    name_in_paper = ""
    paper_epochs = 25
    trains_teacher = False
    default_ce_weight = 1.0
    default_loss_weight = 1.0

    def __init__(self, ce_weight=None, loss_weight=None, **kwargs):
        super().__init__(**kwargs)
        ce_weight = self.default_ce_weight if ce_weight is None else ce_weight
        loss_weight = self.default_loss_weight if loss_weight is None else loss_weight
        for name, value in (("ce_weight", ce_weight), ("loss_weight", loss_weight)):
            if value < 0:
                raise ValueError(f"`{name}` must be >= 0. Received: {name}={value}")
        self.ce_weight = float(ce_weight)
        self.loss_weight = float(loss_weight)

    def build_for(self, teacher, student):
        """Creates the method's weights from the two stagers (or their outputs)."""
        self.build(_output_shapes(teacher), _output_shapes(student))

    def build(self, teacher_out_shape, student_out_shape, labels_shape=None, epoch_shape=None):
        self.built = True

    def schedule(self, epoch):
        """Multiplier of the term at `epoch` (0-based); constant 1 by default."""
        return 1.0

    def distillation_loss(self, teacher_out, student_out, labels):
        raise NotImplementedError

    def call(self, teacher_out, student_out, labels, epoch=None):
        if not self.trains_teacher:
            teacher_out = {k: ops.stop_gradient(v) for k, v in teacher_out.items()}
        loss = self.distillation_loss(teacher_out, student_out, labels)
        return self.loss_weight * self.schedule(epoch) * loss

    def get_config(self):
        config = super().get_config()
        config.update(ce_weight=self.ce_weight, loss_weight=self.loss_weight)
        return config


def _positive(name, value):
    if value <= 0:
        raise ValueError(f"`{name}` must be > 0. Received: {name}={value}")
    return float(value)


@keras.saving.register_keras_serializable(package="stmd_keras")
class KnowledgeDistillation(DistillationMethod):
    """Hinton et al. (2015): the student mimics the teacher's softened outputs.

        term = T^2 * KL(softmax(z_t / T) || softmax(z_s / T)), mean over epochs

    i.e. `objectives.kd_loss`; each of the `B * L` epochs is one sample.
    Table 15: 30 epochs, CE : KD = 0.1 : 0.9. `T = 4` (mdistiller's default;
    Hinton et al. fix none).

    Args:
        temperature: softmax temperature `T`. Defaults to 4.
        ce_weight, loss_weight: see `DistillationMethod` (0.1, 0.9).
    """

    name_in_paper = "Knowledge Distillation"
    paper_epochs = 30
    default_ce_weight = 0.1
    default_loss_weight = 0.9

    def __init__(self, temperature=4.0, **kwargs):
        super().__init__(**kwargs)
        self.temperature = _positive("temperature", temperature)

    def distillation_loss(self, teacher_out, student_out, labels):
        return kd_loss(student_out["logits"], teacher_out["logits"], self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="stmd_keras")
class DecoupledKD(DistillationMethod):
    """Zhao et al. (2022): KD split into target and non-target class terms.

        term = min((epoch + 1) / warmup, 1) * T^2 * (alpha * TCKD + beta * NCKD)

    (see `knowledge.baselines.dkd_loss`); each of the `B * L` epochs is one
    sample, labelled with its stage. The warm-up is a linear ramp over the
    first `warmup` training epochs, `epoch` being Keras' 0-based index (so
    it equals mdistiller's `epoch / warmup` with 1-based epochs); with
    `epoch=None` (e.g. evaluation) the full weight is used. Table 15: 25
    epochs, CE : DKD = 1 : 1. `alpha = 1, beta = 8, T = 4, warmup = 20` are
    DKD's CIFAR-100 defaults (its warm-up was tuned for 240 epochs).

    Args:
        alpha: weight of the target-class term TCKD. Defaults to 1.
        beta: weight of the non-target-class term NCKD. Defaults to 8.
        temperature: softmax temperature `T`. Defaults to 4.
        warmup: epochs of the linear warm-up; 0 disables it. Defaults to 20.
        ce_weight, loss_weight: see `DistillationMethod` (1, 1).
    """

    name_in_paper = "Decoupled Knowledge Distillation"

    def __init__(self, alpha=1.0, beta=8.0, temperature=4.0, warmup=20, **kwargs):
        super().__init__(**kwargs)
        if alpha < 0 or beta < 0:
            raise ValueError(
                f"`alpha` and `beta` must be >= 0. Received: alpha={alpha}, beta={beta}"
            )
        if int(warmup) != warmup or warmup < 0:
            raise ValueError(f"`warmup` must be an integer >= 0. Received: warmup={warmup}")
        self.alpha, self.beta = float(alpha), float(beta)
        self.temperature = _positive("temperature", temperature)
        self.warmup = int(warmup)

    def schedule(self, epoch):
        if epoch is None or self.warmup == 0:
            return 1.0
        done = ops.cast(epoch, "float32") + 1.0
        return ops.minimum(done / float(self.warmup), 1.0)

    def distillation_loss(self, teacher_out, student_out, labels):
        return dkd_loss(
            student_out["logits"], teacher_out["logits"], labels,
            self.alpha, self.beta, self.temperature,
        )

    def get_config(self):
        return {
            **super().get_config(), "alpha": self.alpha, "beta": self.beta,
            "temperature": self.temperature, "warmup": self.warmup,
        }


@keras.saving.register_keras_serializable(package="stmd_keras")
class FitNets(DistillationMethod):
    """Romero et al. (2014): the student's middle features regress the teacher's.

        term = mean((H_t - r(H_s))^2),  r = Dense(m_t) on each channel's vector

    The hint is the teacher's multi-channel features `H_t (B, L, C, m_t)`,
    the guided layer the student's `H_s (B, L, C, m_s)`. The regressor maps
    every channel's `m_s` features to `m_t` with one Dense layer shared by
    channels and epochs (as FitNets' convolutional regressor is shared by
    positions). Its default ReLU matches the non-linearity of the hint
    (the encoder ends with ReLU convolutions and max-pooling), as FitNets
    requires. The regressor is trained with the student, in one stage with
    the cross-entropy as in mdistiller (FitNets' separate hint stage is not
    used). Table 15: 25 epochs, CE : hint = 0.5 : 0.5.

    Call `build_for(teacher, student)` (or the layer once) before building
    the optimizer that trains `trainable_variables`.

    Args:
        activation: activation of the regressor. Defaults to "relu".
        ce_weight, loss_weight: see `DistillationMethod` (0.5, 0.5).
    """

    name_in_paper = "Fitnets"
    default_ce_weight = 0.5
    default_loss_weight = 0.5

    def __init__(self, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self.widths = None

    def build(self, teacher_out_shape, student_out_shape, labels_shape=None, epoch_shape=None):
        if self.built:
            return
        teacher_width = int(teacher_out_shape["features"][-1])
        student_width = int(student_out_shape["features"][-1])
        self.regressor = keras.layers.Dense(
            teacher_width, activation=self.activation, name="regressor"
        )
        self.regressor.build((None, student_width))
        self.widths = (teacher_width, student_width)
        self.built = True

    def get_build_config(self):
        if self.widths is None:
            return None
        teacher_width, student_width = self.widths
        return {"teacher_width": teacher_width, "student_width": student_width}

    def build_from_config(self, config):
        if config:
            self.build(
                {"features": (config["teacher_width"],)},
                {"features": (config["student_width"],)},
            )

    def distillation_loss(self, teacher_out, student_out, labels):
        return hint_loss(self.regressor(student_out["features"]), teacher_out["features"])

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@keras.saving.register_keras_serializable(package="stmd_keras")
class NeuronSelectivityTransfer(DistillationMethod):
    """Huang & Wang (2017): match the distributions of neuron selectivity patterns.

        term = MMD^2 with k(x, y) = (x^T y)^2 between the teacher's and the
               student's L2-normalised neuron patterns, mean over sequences

    The "feature map" is a sequence: a neuron is one of the `C * m` feature
    units (every channel's every feature), its selectivity pattern its
    activation over the `L` epochs (time replaces the image's spatial
    positions). See `knowledge.baselines.nst_loss`. Polynomial kernel
    `d = 2, c = 0` (NST's). Table 15: 25 epochs, CE : NST = 0.5 : 0.5.

    Args:
        ce_weight, loss_weight: see `DistillationMethod` (0.5, 0.5).
    """

    name_in_paper = "Neuron Selectivity Transfer"
    default_ce_weight = 0.5
    default_loss_weight = 0.5

    def distillation_loss(self, teacher_out, student_out, labels):
        return nst_loss(student_out["features"], teacher_out["features"])


@keras.saving.register_keras_serializable(package="stmd_keras")
class RelationalKD(DistillationMethod):
    """Park et al. (2019): match the distance and angle relations of embeddings.

        term = lambda_D * SmoothL1(d^t / mu^t, d^s / mu^s)
               + lambda_A * SmoothL1(cos^t, cos^s)

    An embedding is one epoch's features flattened, `C * m` values; with
    `group="sequence"` the relations are among the `L` epochs of each
    sequence (the paper credits RKD with "the relationship of contextual
    epochs"), with `group="batch"` among all `B * L` epochs. See
    `knowledge.baselines.rkd_loss`. `lambda_D = 1, lambda_A = 2` (RKD's);
    Table 15: 25 epochs, CE : RKD = 0.5 : 0.5.

    Args:
        distance_weight: `lambda_D`. Defaults to 1.
        angle_weight: `lambda_A`. Defaults to 2.
        group: "sequence" or "batch". Defaults to "sequence".
        ce_weight, loss_weight: see `DistillationMethod` (0.5, 0.5).
    """

    name_in_paper = "Relational Knowledge Distillation"
    default_ce_weight = 0.5
    default_loss_weight = 0.5

    def __init__(self, distance_weight=1.0, angle_weight=2.0, group="sequence", **kwargs):
        super().__init__(**kwargs)
        if distance_weight < 0 or angle_weight < 0:
            raise ValueError(
                "`distance_weight` and `angle_weight` must be >= 0. Received: "
                f"distance_weight={distance_weight}, angle_weight={angle_weight}"
            )
        if group not in ("sequence", "batch"):
            raise ValueError(
                f"`group` must be 'sequence' or 'batch'. Received: group={group!r}"
            )
        self.distance_weight, self.angle_weight = float(distance_weight), float(angle_weight)
        self.group = group

    def distillation_loss(self, teacher_out, student_out, labels):
        return rkd_loss(
            student_out["features"], teacher_out["features"],
            self.distance_weight, self.angle_weight, self.group,
        )

    def get_config(self):
        return {
            **super().get_config(), "distance_weight": self.distance_weight,
            "angle_weight": self.angle_weight, "group": self.group,
        }


@keras.saving.register_keras_serializable(package="stmd_keras")
class DistillingGCN(DistillationMethod):
    """Yang et al. (2020): local structure preservation (LSP).

        term = mean_i KL(LS_i^t || LS_i^s),
        LS_ij = softmax_{j != i} exp(-||z_i - z_j||_1 / sigma)

    The graph of an epoch has the `C` channels as nodes (`z_i = H[b, l, i]`,
    as in the sleep graph) and every other channel as a neighbour; the mean
    runs over nodes, epochs and sequences. Kernel, `sigma = 100` and the KL
    direction follow the authors' code. See `knowledge.baselines.lsp_loss`.
    Table 15: 25 epochs, CE : LSP = 1 : 5.

    Args:
        sigma: kernel bandwidth. Defaults to 100.
        ce_weight, loss_weight: see `DistillationMethod` (1, 5).
    """

    name_in_paper = "Distilling Knowledge from GCN"
    default_ce_weight = 1.0
    default_loss_weight = 5.0

    def __init__(self, sigma=100.0, **kwargs):
        super().__init__(**kwargs)
        self.sigma = _positive("sigma", sigma)

    def distillation_loss(self, teacher_out, student_out, labels):
        return lsp_loss(student_out["features"], teacher_out["features"], self.sigma)

    def get_config(self):
        return {**super().get_config(), "sigma": self.sigma}


@keras.saving.register_keras_serializable(package="stmd_keras")
class DeepMutualLearning(DistillationMethod):
    """Zhang et al. (2018): teacher and student learn from each other.

        term = KL(sg(p_s) || p_t) + KL(sg(p_t) || p_s),  p = softmax(z)

    Each model is trained by `ce_weight * CE + loss_weight * KL(other || own)`;
    the stop-gradients `sg` let one backward pass of the summed objective
    give each model exactly its own term (the models are updated together
    rather than in DML's alternating order). Temperature 1 (DML's). Table
    15: 25 epochs, CE : KL = 0.1 : 0.9. The distiller must train the
    teacher (`mutual=True`) and add `ce_weight * L_c^t`.

    Args:
        ce_weight, loss_weight: see `DistillationMethod` (0.1, 0.9).
    """

    name_in_paper = "Deep Mutual Learning"
    trains_teacher = True
    default_ce_weight = 0.1
    default_loss_weight = 0.9

    def distillation_loss(self, teacher_out, student_out, labels):
        return dml_loss(teacher_out["logits"], student_out["logits"])


METHODS = {
    "kd": KnowledgeDistillation,
    "dkd": DecoupledKD,
    "fitnets": FitNets,
    "nst": NeuronSelectivityTransfer,
    "rkd": RelationalKD,
    "lsp": DistillingGCN,
    "dml": DeepMutualLearning,
}


def get_method(name, **kwargs):
    """Instantiates the baseline called `name` (a key of `METHODS`).

    Args:
        name: method name, e.g. "kd", "fitnets" (case-insensitive).
        **kwargs: constructor arguments of the method, e.g. `temperature=2`.

    Returns:
        A `DistillationMethod`.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in METHODS:
        raise ValueError(
            f"Unknown distillation method. Available: {sorted(METHODS)}. "
            f"Received: name={name!r}"
        )
    return METHODS[key](**kwargs)
