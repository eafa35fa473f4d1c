"""DeepSleepNet-style teacher / assistant / student (SleepKD, IJCAI 2023).

DeepSleepNet (Supratak et al., 2017) encodes every 30-s epoch with two CNN
branches - a small first kernel (fs/2, stride fs/16) for timing and a large
one (4 fs, stride fs/2) for frequency content - concatenates them
(`epoch_features`, SleepKD's epoch-level knowledge F_e), and runs a 2-layer
BiLSTM over the L epochs with a residual fully connected shortcut from the
CNN features (`sequence_features`, SleepKD's sequence-level knowledge F_s),
then a per-epoch classifier.

Widths: `filters` is the first convolution of each branch, the later three
use `2 * filters` (the original 64 / 128); `lstm_units` per LSTM direction,
so the shortcut and `sequence_features` have `2 * lstm_units` units (the
original 512 / 1024). The assistant (TA) takes the geometric mean of the
teacher's and student's widths.

Parameter counts (`model.count_params()`, BatchNorm moving statistics
included) at fs=100, C=1, L=20, 30-s epochs:

=========  =======  ==========  =========  =========  ===========
role       filters  lstm_units  ours       poster     ours/poster
=========  =======  ==========  =========  =========  ===========
teacher    64       139         5,498,907  5,502,474  0.9994
assistant  45       104         2,902,323  -          -
student    32       78          1,554,977  1,552,906  1.0013
=========  =======  ==========  =========  =========  ===========

The poster gives only the totals, not the widths. The original DeepSleepNet
(filters 64, 512 LSTM units) has ~2.5e7 parameters (the poster's Table
quotes 2.1e7), so SleepKD's teacher must be a narrowed one; we keep the
original CNN for the teacher and pick the LSTM width whose total comes
closest, and halve the CNN for the student (again the closest LSTM width).
Both land within 0.15 % of the poster's counts (one LSTM unit more or less
moves the total by ~40k / ~20k); the exact split between CNN and LSTM in
SleepKD is unknown, so only the totals are comparable.

With C > 1 channels one CNN (shared weights) encodes every channel, so
`features` is `(B, L, C, m)` as for the CNN-RNN models and only the sequence
model's input width depends on C.
"""

import math
import numbers

import keras
from keras import layers, ops

from stmd_keras.models.normalization import FusedBatchNormalization

N_CLASSES = 5

DEEPSLEEPNET_SIZES = {
    # role: (filters, lstm_units); see the module docstring for the counts.
    "teacher": (64, 139),
    "student": (32, 78),
}
DEEPSLEEPNET_SIZES["assistant"] = tuple(
    int(round(math.sqrt(t * s)))
    for t, s in zip(DEEPSLEEPNET_SIZES["teacher"], DEEPSLEEPNET_SIZES["student"])
)

# Totals reported on the SleepKD poster (teacher -> student).
POSTER_PARAMS = {"teacher": 5_502_474, "student": 1_552_906}


@keras.saving.register_keras_serializable(package="stmd_keras")
class FoldEpochs(layers.Layer):
    """Folds sequence and channels into the batch: `(B, L, C, S)` -> `(B*L*C, S, 1)`.

    Lets the per-epoch CNN see every epoch of every channel on its own.

    >>> FoldEpochs()(keras.ops.zeros((2, 3, 1, 50))).shape
    (6, 50, 1)
    """

    def call(self, x):
        return ops.reshape(x, (-1, ops.shape(x)[-1], 1))

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "FoldEpochs expects (batch, seq_len, channels, samples). "
                f"Received: input_shape={input_shape}"
            )
        return (None, input_shape[-1], 1)


@keras.saving.register_keras_serializable(package="stmd_keras")
class UnfoldEpochs(layers.Layer):
    """Inverse of `FoldEpochs` for features: `(B*L*C, m)` -> `(B, L, C, m)`.

    >>> UnfoldEpochs(3, 1)(keras.ops.zeros((6, 8))).shape
    (2, 3, 1, 8)

    Args:
        seq_len: number of epochs per sequence L.
        n_channels: number of channels C.
    """

    def __init__(self, seq_len, n_channels, **kwargs):
        super().__init__(**kwargs)
        if int(seq_len) < 1 or int(n_channels) < 1:
            raise ValueError(
                "`seq_len` and `n_channels` must be >= 1. "
                f"Received: seq_len={seq_len}, n_channels={n_channels}"
            )
        self.seq_len = int(seq_len)
        self.n_channels = int(n_channels)

    def call(self, x):
        return ops.reshape(x, (-1, self.seq_len, self.n_channels, ops.shape(x)[-1]))

    def compute_output_shape(self, input_shape):
        return (None, self.seq_len, self.n_channels, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(seq_len=self.seq_len, n_channels=self.n_channels)
        return config


def _conv_bn_relu(x, filters, kernel, strides, name):
    # DeepSleepNet's convolutions have no bias: BatchNorm follows each one.
    x = layers.Conv1D(filters, kernel, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = FusedBatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _branch(x, filters, kernel, stride, pool1, kernel2, pool2, dropout, name):
    x = _conv_bn_relu(x, filters, kernel, stride, f"{name}1")
    x = layers.MaxPooling1D(pool1, pool1, padding="same", name=f"{name}_pool1")(x)
    x = layers.Dropout(dropout, name=f"{name}_drop")(x)
    for i in (2, 3, 4):
        x = _conv_bn_relu(x, 2 * filters, kernel2, 1, f"{name}{i}")
    x = layers.MaxPooling1D(pool2, pool2, padding="same", name=f"{name}_pool2")(x)
    return layers.Flatten(name=f"{name}_flatten")(x)


def build_deepsleepnet(
    filters=64,
    lstm_units=512,
    seq_len=20,
    fs=100,
    n_channels=1,
    epoch_sec=30,
    dropout=0.5,
    n_classes=N_CLASSES,
    batch_size=None,
    name="deepsleepnet",
):
    """Builds a DeepSleepNet-style sleep stager returning multi-level features.

    Representation learning (per epoch, per channel): small branch
    Conv(filters, fs/2, stride fs/16) -> MaxPool(8) -> Dropout ->
    3 x Conv(2 filters, 8) -> MaxPool(4); large branch Conv(filters, 4 fs,
    stride fs/2) -> MaxPool(4) -> Dropout -> 3 x Conv(2 filters, 6) ->
    MaxPool(2); both flattened and concatenated, then Dropout. Every
    convolution is followed by BatchNorm and ReLU. Sequence residual learning:
    Dropout -> BiLSTM -> Dropout -> BiLSTM, plus the shortcut
    Dense(2 lstm_units) -> BatchNorm -> ReLU of the CNN features, added, then
    Dropout, then Dense(`n_classes`) logits per epoch.

    Args:
        filters: filters of the first convolution of each branch (later
            convolutions use twice as many). Original: 64.
        lstm_units: units of each LSTM direction. Original: 512.
        seq_len: number of epochs per sequence L.
        fs: sampling rate in Hz (>= 2); sets the first kernels and strides.
        n_channels: number of input channels C (one shared CNN).
        epoch_sec: epoch length in seconds.
        dropout: dropout rate (original: 0.5).
        n_classes: number of sleep stages.
        batch_size: fix the batch dimension (needed for builtin-op TFLite).
        name: model name.

    Returns:
        A functional `keras.Model` mapping `(B, L, C, fs * epoch_sec)` to
        `{"logits": (B, L, n_classes), "epoch_features": (B, L, C * m),
        "sequence_features": (B, L, 2 * lstm_units), "features": (B, L, C, m)}`
        with m = the concatenated CNN width (48 filters at fs=100).
    """
    for arg, value in (("filters", filters), ("lstm_units", lstm_units), ("seq_len", seq_len),
                       ("n_channels", n_channels), ("n_classes", n_classes)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{arg}` must be an integer >= 1. Received: {arg}={value!r}")
    if fs < 2:
        raise ValueError(f"`fs` must be >= 2 Hz (the small kernel is fs/2). Received: fs={fs}")
    if not 0 <= dropout < 1:
        raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
    samples = int(round(fs * epoch_sec))
    if samples < int(4 * fs):
        raise ValueError(
            f"Epochs of {samples} samples are shorter than the large kernel 4 * fs = {int(4 * fs)}. "
            f"Received: fs={fs}, epoch_sec={epoch_sec}"
        )

    inputs = keras.Input((seq_len, n_channels, samples), batch_size=batch_size, name="signals")
    x = FoldEpochs(name="fold_epochs")(inputs)
    small = _branch(x, filters, max(1, int(fs // 2)), max(1, int(fs // 16)), 8, 8, 4, dropout, "small")
    large = _branch(x, filters, max(1, int(fs * 4)), max(1, int(fs // 2)), 4, 6, 2, dropout, "large")
    h = layers.Concatenate(name="cnn_concat")([small, large])
    h = layers.Dropout(dropout, name="cnn_drop")(h)
    features = UnfoldEpochs(seq_len, n_channels, name="features")(h)
    m = features.shape[-1]
    epoch_features = layers.Reshape((seq_len, n_channels * m), name="epoch_features")(features)

    s = layers.Dropout(dropout, name="lstm_drop1")(epoch_features)
    s = layers.Bidirectional(layers.LSTM(lstm_units, return_sequences=True), name="bilstm1")(s)
    s = layers.Dropout(dropout, name="lstm_drop2")(s)
    s = layers.Bidirectional(layers.LSTM(lstm_units, return_sequences=True), name="bilstm2")(s)
    shortcut = layers.Dense(2 * lstm_units, use_bias=False, name="shortcut_fc")(epoch_features)
    shortcut = layers.BatchNormalization(name="shortcut_bn")(shortcut)
    shortcut = layers.ReLU(name="shortcut_relu")(shortcut)
    sequence_features = layers.Add(name="sequence_features")([s, shortcut])
    logits = layers.Dense(n_classes, name="logits")(layers.Dropout(dropout, name="out_drop")(sequence_features))
    outputs = {
        "logits": logits,
        "epoch_features": epoch_features,
        "sequence_features": sequence_features,
        "features": features,
    }
    return keras.Model(inputs, outputs, name=name)


def _role(role, kwargs):
    filters, units = DEEPSLEEPNET_SIZES[role]
    kwargs.setdefault("name", f"deepsleepnet_{role}")
    return build_deepsleepnet(filters=filters, lstm_units=units, **kwargs)


def deepsleepnet_teacher(**kwargs):
    """DeepSleepNet teacher: filters 64, BiLSTM 139 (5,498,907 parameters; poster 5,502,474)."""
    return _role("teacher", kwargs)


def deepsleepnet_assistant(**kwargs):
    """DeepSleepNet teacher assistant: geometric-mean widths (filters 45, BiLSTM 104; 2,902,323 parameters)."""
    return _role("assistant", kwargs)


def deepsleepnet_student(**kwargs):
    """DeepSleepNet student: filters 32, BiLSTM 78 (1,554,977 parameters; poster 1,552,906)."""
    return _role("student", kwargs)
