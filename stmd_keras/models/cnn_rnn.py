"""CNN-RNN teacher and student (paper Tables 1, 9-12)."""

import keras
from keras import layers

from stmd_keras.models.encoder import MultiChannelEncoder

N_CLASSES = 5

CNN_RNN_SIZES = {
    # role: (conv filters, LSTM units), paper Table 1.
    "teacher": (128, 128),
    "student": (32, 32),
}


def build_cnn_rnn(
    filters,
    lstm_units,
    n_channels=6,
    seq_len=20,
    fs=100,
    epoch_sec=30,
    dropout=0.5,
    n_classes=N_CLASSES,
    batch_size=None,
    name="cnn_rnn",
):
    """Builds a CNN-RNN sleep stager returning features and logits.

    Per-channel CNN encoders (`MultiChannelEncoder`) -> concatenation of the
    channel features of each epoch -> BiLSTM over the `seq_len` epochs ->
    Dropout -> Dense(`n_classes`) per epoch. The classifier outputs logits
    (the paper's softmax is applied in the losses, which is numerically
    safer); `features` is the multi-channel feature tensor H `(B, L, C, m)`.

    Args:
        filters: convolution filters per encoder layer.
        lstm_units: units of each LSTM direction.
        n_channels: number of input channels C.
        seq_len: number of epochs per sequence L.
        fs: sampling rate in Hz.
        epoch_sec: epoch length in seconds.
        dropout: dropout rate (paper: 0.5).
        n_classes: number of sleep stages.
        batch_size: fix the batch dimension (needed for builtin-op TFLite).
        name: model name.

    Returns:
        A functional `keras.Model` mapping `(B, L, C, fs * epoch_sec)` to
        `{"logits": (B, L, n_classes), "features": (B, L, C, m)}`.
    """
    samples = int(round(fs * epoch_sec))
    inputs = keras.Input((seq_len, n_channels, samples), batch_size=batch_size, name="signals")
    features = MultiChannelEncoder(filters, fs=fs, dropout=dropout, name="encoder")(inputs)
    m = features.shape[-1]
    h = layers.Reshape((seq_len, n_channels * m), name="concatenate")(features)
    h = layers.Bidirectional(layers.LSTM(lstm_units, return_sequences=True), name="bilstm")(h)
    h = layers.Dropout(dropout, name="dropout")(h)
    logits = layers.Dense(n_classes, name="logits")(h)
    return keras.Model(inputs, {"logits": logits, "features": features}, name=name)


def cnn_rnn_teacher(**kwargs):
    """CNN-RNN teacher: 128 filters, BiLSTM 128 (Tables 9-10)."""
    filters, units = CNN_RNN_SIZES["teacher"]
    return build_cnn_rnn(filters, units, name=kwargs.pop("name", "cnn_rnn_teacher"), **kwargs)


def cnn_rnn_student(**kwargs):
    """CNN-RNN student: 32 filters, BiLSTM 32 (Tables 11-12)."""
    filters, units = CNN_RNN_SIZES["student"]
    return build_cnn_rnn(filters, units, name=kwargs.pop("name", "cnn_rnn_student"), **kwargs)
