"""SalientSleepNet-style teacher / assistant / student (SleepKD, IJCAI 2023).

SalientSleepNet (Jia et al., 2021) is fully convolutional: the L epochs of a
sequence are concatenated into one signal of L * S samples and segmented by
a U^2-structure - an encoder / decoder U-net whose every level is itself a
small U-net (a "U-unit"), with a multi-scale extraction (MSE) module of
parallel dilated convolutions on every skip connection (and on the
bottleneck). The decoder output is pooled over each epoch's
samples and classified per epoch. The original has two streams (EEG, EOG)
fused by multimodal attention; SleepKD uses single-channel EEG, so we build
one stream. With C > 1 channels that one stream (shared weights) runs on
every channel and the per-epoch outputs are concatenated before the
classifier; there is no multimodal attention.

Multi-level features for SleepKD:

* `epoch_features` (B, L, C * mse_filters[-1]): the encoder bottleneck (the
  deepest level's MSE output) averaged over each epoch's (downsampled)
  samples. `features` is the same per channel, `(B, L, C, mse_filters[-1])`.
* `sequence_features` (B, L, C * filters[0]): the decoder output after a
  1 x 1 tanh convolution, averaged over each epoch's samples - the input of
  the per-epoch classifier.

Not epoch-independent: convolutions and pooling run across the concatenated
signal, so the receptive field crosses epoch boundaries and an epoch's output
depends on its neighbours (this is how SalientSleepNet models transitions;
there is no recurrent part). The encoder pools (`pool_sizes`) must divide
the epoch length so that every bottleneck sample belongs to one epoch.

Widths: `filters` per encoder level, `inner_filters` inside the U-units,
`mse_filters` per level (default `filters // 2`, the original's ratio). The assistant (TA) takes the geometric mean of the
teacher's and student's widths.

Parameter counts (`model.count_params()`, BatchNorm moving statistics
included) at fs=100, C=1, L=20, 30-s epochs:

=========  ======================  =====  ===================  =======  =======  ===========
role       filters                 inner  mse_filters          ours     poster   ours/poster
=========  ======================  =====  ===================  =======  =======  ===========
teacher    (16, 32, 48, 64, 64)    16     (8, 16, 24, 32, 32)  466,461  474,662  0.9827
assistant  (11, 23, 34, 45, 45)    11     (5, 11, 17, 22, 22)  226,326  -        -
student    (8, 16, 24, 32, 32)     8      (4, 8, 12, 16, 16)   119,729  120,181  0.9962
=========  ======================  =====  ===================  =======  =======  ===========

The poster gives only totals. The original single-stream SalientSleepNet
code (filters 16..256) is larger than the poster's teacher, so SleepKD's
teacher must be narrowed; we keep 5 levels, U-unit depth 4, kernel 5 and
dilations 1-4, cap the deep levels at 64 filters, and make the student
exactly half the teacher's widths. Both land within 2 % of the poster's
totals; layer-level details of SleepKD's variant (pool sizes, bilinear
resizing, bias and activation placement) are unknown, so only totals are
comparable.
"""

import math
import numbers

import keras
from keras import layers, ops

from stmd_keras.models.normalization import FusedBatchNormalization

N_CLASSES = 5

SALIENTSLEEPNET_SIZES = {
    # role: (filters per level, U-unit inner filters)
    "teacher": ((16, 32, 48, 64, 64), 16),
    "student": ((8, 16, 24, 32, 32), 8),
}
SALIENTSLEEPNET_SIZES["assistant"] = (
    tuple(
        int(round(math.sqrt(t * s)))
        for t, s in zip(SALIENTSLEEPNET_SIZES["teacher"][0], SALIENTSLEEPNET_SIZES["student"][0])
    ),
    int(round(math.sqrt(SALIENTSLEEPNET_SIZES["teacher"][1] * SALIENTSLEEPNET_SIZES["student"][1]))),
)

# Totals reported on the SleepKD poster (teacher -> student).
POSTER_PARAMS = {"teacher": 474_662, "student": 120_181}


@keras.saving.register_keras_serializable(package="stmd_keras")
class FoldChannels(layers.Layer):
    """Concatenates the epochs of each channel: `(B, L, C, S)` -> `(B*C, L*S, 1)`.

    >>> FoldChannels()(keras.ops.zeros((2, 3, 1, 50))).shape
    (2, 150, 1)
    """

    def call(self, x):
        seq_len, samples = ops.shape(x)[1], ops.shape(x)[3]
        x = ops.transpose(x, (0, 2, 1, 3))
        return ops.reshape(x, (-1, seq_len * samples, 1))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "FoldChannels expects (batch, seq_len, channels, samples). "
                f"Received: input_shape={input_shape}"
            )
        return (None, input_shape[1] * input_shape[3], 1)


@keras.saving.register_keras_serializable(package="stmd_keras")
class EpochPooling(layers.Layer):
    """Averages each epoch's samples: `(N, L*T, F)` -> `(N, L, F)`.

    >>> EpochPooling(3)(keras.ops.zeros((2, 12, 4))).shape
    (2, 3, 4)

    Args:
        seq_len: number of epochs L the time axis is split into.
    """

    def __init__(self, seq_len, **kwargs):
        super().__init__(**kwargs)
        if int(seq_len) < 1:
            raise ValueError(f"`seq_len` must be >= 1. Received: seq_len={seq_len}")
        self.seq_len = int(seq_len)

    def build(self, input_shape):
        if input_shape[1] is not None and input_shape[1] % self.seq_len:
            raise ValueError(
                f"EpochPooling needs a time axis divisible by seq_len={self.seq_len}. "
                f"Received: input_shape={input_shape}"
            )

    def call(self, x):
        t = ops.shape(x)[1] // self.seq_len
        x = ops.reshape(x, (-1, self.seq_len, t, ops.shape(x)[-1]))
        return ops.mean(x, axis=2)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.seq_len, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(seq_len=self.seq_len)
        return config


@keras.saving.register_keras_serializable(package="stmd_keras")
class UnfoldChannels(layers.Layer):
    """Inverse of `FoldChannels` for per-epoch features: `(B*C, L, F)` -> `(B, L, C, F)`.

    >>> UnfoldChannels(2)(keras.ops.zeros((4, 3, 5))).shape
    (2, 3, 2, 5)

    Args:
        n_channels: number of channels C.
    """

    def __init__(self, n_channels, **kwargs):
        super().__init__(**kwargs)
        if int(n_channels) < 1:
            raise ValueError(f"`n_channels` must be >= 1. Received: n_channels={n_channels}")
        self.n_channels = int(n_channels)

    def call(self, x):
        seq_len, dim = ops.shape(x)[1], ops.shape(x)[2]
        x = ops.reshape(x, (-1, self.n_channels, seq_len, dim))
        return ops.transpose(x, (0, 2, 1, 3))

    def compute_output_shape(self, input_shape):
        return (None, input_shape[1], self.n_channels, input_shape[2])

    def get_config(self):
        config = super().get_config()
        config.update(n_channels=self.n_channels)
        return config


def _conv_bn(x, filters, kernel, name, dilation=1):
    x = layers.Conv1D(filters, kernel, padding="same", dilation_rate=dilation, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _resize_to(x, length, name):
    # Pool-2 with 'same' padding rounds odd lengths up; upsampling then
    # overshoots by at most one sample, which is cropped off the end.
    x = layers.UpSampling1D(2, name=f"{name}_up")(x)
    extra = x.shape[1] - length
    if extra:
        x = layers.Cropping1D((0, extra), name=f"{name}_crop")(x)
    return x


def _u_unit(x, filters, inner, depth, kernel, name):
    """U-unit: a small U-net (pool 2, dilated bottom) with a residual input conv."""
    x0 = _conv_bn(x, filters, kernel, f"{name}_in")
    h, skips = x0, []
    for d in range(depth - 1):
        h = _conv_bn(h, inner, kernel, f"{name}_enc{d}")
        skips.append(h)
        if d < depth - 2:
            h = layers.MaxPooling1D(2, 2, padding="same", name=f"{name}_pool{d}")(h)
    h = _conv_bn(h, inner, kernel, f"{name}_bottom", dilation=2)
    for d in reversed(range(depth - 1)):
        if d < depth - 2:
            h = _resize_to(h, skips[d].shape[1], f"{name}_dec{d}")
        h = layers.Concatenate(name=f"{name}_cat{d}")([h, skips[d]])
        h = _conv_bn(h, filters if d == 0 else inner, kernel, f"{name}_dec{d}")
    return layers.Add(name=f"{name}_res")([h, x0])


def _mse(x, filters, kernel, dilations, name):
    """Multi-scale extraction: parallel dilated convolutions, fused down to `filters`."""
    branches = [_conv_bn(x, filters, kernel, f"{name}_d{r}", dilation=r) for r in dilations]
    h = layers.Concatenate(name=f"{name}_cat")(branches)
    h = _conv_bn(h, 2 * filters, kernel, f"{name}_fuse1")
    return _conv_bn(h, filters, kernel, f"{name}_fuse2")


def _check_int(name, value, minimum=1):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}. Received: {name}={value!r}")


def build_salientsleepnet(
    filters=(16, 32, 64, 128, 256),
    inner_filters=16,
    mse_filters=None,
    pool_sizes=(5, 5, 4, 3),
    u_depth=4,
    kernel_size=5,
    dilations=(1, 2, 3, 4),
    seq_len=20,
    fs=100,
    n_channels=1,
    epoch_sec=30,
    n_classes=N_CLASSES,
    batch_size=None,
    name="salientsleepnet",
):
    """Builds a single-stream SalientSleepNet-style sleep stager.

    Encoder level i: U-unit(filters[i]) -> Conv(filters[i] // 2, 1, relu)
    -> MaxPool(pool_sizes[i]) down to the next level; its skip connection is
    MSE(mse_filters[i]) of the same tensor. The last level's MSE output is
    the bottleneck. Decoder level i (deepest first): UpSampling(pool_sizes[i])
    -> concatenate skip i -> U-unit(filters[i]) -> Conv(filters[i] // 2, 1,
    relu) (not at level 0). Head: Conv(filters[0], 1, tanh) -> average over
    each epoch -> Dense(`n_classes`) logits per epoch (the original uses a
    5-epoch convolution here; a Dense keeps the classifier per epoch).
    U-units pool by 2 inside and use a dilated bottom convolution; every
    convolution except the 1 x 1 ones is Conv -> BatchNorm -> ReLU, 'same'.

    Args:
        filters: filters per encoder level (its length is the U depth).
        inner_filters: filters inside every U-unit.
        mse_filters: filters of each level's MSE module; default `filters // 2`.
        pool_sizes: encoder pooling per level, `len(filters) - 1` of them; their
            product must divide the epoch length `fs * epoch_sec`.
        u_depth: depth of every U-unit (>= 2).
        kernel_size: convolution kernel size.
        dilations: dilation rates of the MSE branches.
        seq_len: number of epochs per sequence L.
        fs: sampling rate in Hz.
        n_channels: number of input channels C (one shared stream).
        epoch_sec: epoch length in seconds.
        n_classes: number of sleep stages.
        batch_size: fix the batch dimension (needed for builtin-op TFLite).
        name: model name.

    Returns:
        A functional `keras.Model` mapping `(B, L, C, fs * epoch_sec)` to
        `{"logits": (B, L, n_classes), "epoch_features": (B, L, C * mse_filters[-1]),
        "sequence_features": (B, L, C * filters[0]),
        "features": (B, L, C, mse_filters[-1])}`.
    """
    filters = tuple(filters)
    if len(filters) < 2:
        raise ValueError(f"`filters` needs at least 2 levels. Received: filters={filters}")
    for f in filters:
        _check_int("filters", f)
    mse_filters = tuple(max(1, f // 2) for f in filters) if mse_filters is None else tuple(mse_filters)
    if len(mse_filters) != len(filters):
        raise ValueError(
            f"`mse_filters` needs one entry per level ({len(filters)}). Received: mse_filters={mse_filters}"
        )
    for f in mse_filters:
        _check_int("mse_filters", f)
    pool_sizes = tuple(pool_sizes)
    if len(pool_sizes) != len(filters) - 1:
        raise ValueError(
            f"`pool_sizes` needs len(filters) - 1 = {len(filters) - 1} entries. Received: pool_sizes={pool_sizes}"
        )
    for p in pool_sizes:
        _check_int("pool_sizes", p)
    for arg, value, minimum in (("inner_filters", inner_filters, 1), ("u_depth", u_depth, 2),
                                ("kernel_size", kernel_size, 1), ("seq_len", seq_len, 1),
                                ("n_channels", n_channels, 1), ("n_classes", n_classes, 1)):
        _check_int(arg, value, minimum)
    if not dilations:
        raise ValueError(f"`dilations` must not be empty. Received: dilations={dilations}")
    for r in dilations:
        _check_int("dilations", r)
    samples = int(round(fs * epoch_sec))
    if samples < 1:
        raise ValueError(f"`fs * epoch_sec` must be >= 1 sample. Received: fs={fs}, epoch_sec={epoch_sec}")
    total_pool = math.prod(pool_sizes)
    if samples % total_pool:
        raise ValueError(
            f"The product of `pool_sizes` ({total_pool}) must divide the epoch length "
            f"fs * epoch_sec = {samples} so that every bottleneck sample belongs to one epoch. "
            f"Received: pool_sizes={pool_sizes}, fs={fs}, epoch_sec={epoch_sec}"
        )

    inputs = keras.Input((seq_len, n_channels, samples), batch_size=batch_size, name="signals")
    h = FoldChannels(name="fold_channels")(inputs)
    skips = []
    for i, f in enumerate(filters):
        u = _u_unit(h, f, inner_filters, u_depth, kernel_size, f"enc{i}_u")
        u = layers.Conv1D(max(1, f // 2), 1, activation="relu", name=f"enc{i}_reduce")(u)
        # MSE sits on the skip path; the pooled path goes straight down.
        skips.append(_mse(u, mse_filters[i], kernel_size, dilations, f"enc{i}_mse"))
        if i < len(filters) - 1:
            h = layers.MaxPooling1D(pool_sizes[i], pool_sizes[i], name=f"enc{i}_pool")(u)
    h = skips[-1]
    bottleneck = EpochPooling(seq_len, name="bottleneck_pool")(h)
    for i in reversed(range(len(filters) - 1)):
        h = layers.UpSampling1D(pool_sizes[i], name=f"dec{i}_up")(h)
        h = layers.Concatenate(name=f"dec{i}_cat")([h, skips[i]])
        h = _u_unit(h, filters[i], inner_filters, u_depth, kernel_size, f"dec{i}_u")
        if i > 0:
            h = layers.Conv1D(max(1, filters[i] // 2), 1, activation="relu", name=f"dec{i}_reduce")(h)
    h = layers.Conv1D(filters[0], 1, activation="tanh", name="head_conv")(h)
    head = EpochPooling(seq_len, name="head_pool")(h)

    features = UnfoldChannels(n_channels, name="features")(bottleneck)
    epoch_features = layers.Reshape((seq_len, n_channels * mse_filters[-1]), name="epoch_features")(features)
    per_channel = UnfoldChannels(n_channels, name="head_unfold")(head)
    sequence_features = layers.Reshape((seq_len, n_channels * filters[0]), name="sequence_features")(per_channel)
    logits = layers.Dense(n_classes, name="logits")(sequence_features)
    outputs = {
        "logits": logits,
        "epoch_features": epoch_features,
        "sequence_features": sequence_features,
        "features": features,
    }
    return keras.Model(inputs, outputs, name=name)


def _role(role, kwargs):
    filters, inner = SALIENTSLEEPNET_SIZES[role]
    kwargs.setdefault("name", f"salientsleepnet_{role}")
    return build_salientsleepnet(filters=filters, inner_filters=inner, **kwargs)


def salientsleepnet_teacher(**kwargs):
    """SalientSleepNet teacher: filters 16..64, inner 16 (~4.66e5 parameters, poster 474,662)."""
    return _role("teacher", kwargs)


def salientsleepnet_assistant(**kwargs):
    """SalientSleepNet teacher assistant: geometric-mean widths of teacher and student."""
    return _role("assistant", kwargs)


def salientsleepnet_student(**kwargs):
    """SalientSleepNet student: half the teacher's widths (~1.20e5 parameters, poster 120,181)."""
    return _role("student", kwargs)
