"""Per-channel CNN feature extractor shared by the CNN-RNN and CNN-GCN models."""

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="stmd_keras")
class MultiChannelEncoder(layers.Layer):
    """Encodes every 30-s epoch of every channel with that channel's own CNN.

    Implements the encoder of Tables 9 and 11 of the paper, one independent
    stream per channel: Conv1D(filters, fs/2, stride fs/4, relu, same) ->
    Dropout -> MaxPool(8) -> 3 x Conv1D(filters, 8, relu, same) -> MaxPool(4)
    -> Dropout -> Flatten. The result is the multi-channel feature tensor H of
    Definition 3.

    >>> enc = MultiChannelEncoder(filters=32, fs=100)
    >>> enc(keras.ops.zeros((2, 20, 6, 3000))).shape
    (2, 20, 6, 96)

    Args:
        filters: number of convolution filters in every layer.
        fs: sampling rate in Hz; sets the first kernel (fs/2) and stride (fs/4).
        dropout: dropout rate after the first convolution and the last pool.
    """

    def __init__(self, filters, fs=100, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        if int(filters) < 1:
            raise ValueError(f"`filters` must be >= 1. Received: filters={filters}")
        if fs < 4:
            raise ValueError(f"`fs` must be >= 4 Hz. Received: fs={fs}")
        self.filters = int(filters)
        self.fs = fs
        self.dropout = float(dropout)

    def _stream(self, c):
        f, k, s = self.filters, max(1, int(self.fs // 2)), max(1, int(self.fs // 4))
        pre = f"{self.name}_ch{c}"
        return [
            layers.Conv1D(f, k, strides=s, padding="same", activation="relu", name=f"{pre}_conv1"),
            layers.Dropout(self.dropout, name=f"{pre}_drop1"),
            layers.MaxPooling1D(8, 8, name=f"{pre}_pool1"),
            layers.Conv1D(f, 8, padding="same", activation="relu", name=f"{pre}_conv2"),
            layers.Conv1D(f, 8, padding="same", activation="relu", name=f"{pre}_conv3"),
            layers.Conv1D(f, 8, padding="same", activation="relu", name=f"{pre}_conv4"),
            layers.MaxPooling1D(4, 4, name=f"{pre}_pool2"),
            layers.Dropout(self.dropout, name=f"{pre}_drop2"),
            layers.Flatten(name=f"{pre}_flatten"),
        ]

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "MultiChannelEncoder expects (batch, seq_len, channels, samples). "
                f"Received: input_shape={input_shape}"
            )
        self.n_channels, self.samples = int(input_shape[2]), int(input_shape[3])
        stride = max(1, int(self.fs // 4))
        if -(-self.samples // stride) < 32:  # 'same' conv, then pools of 8 and 4
            raise ValueError(
                f"Epochs of {self.samples} samples are too short for the encoder at "
                f"fs={self.fs} (need at least 32 * fs/4 = {32 * stride - stride + 1} samples)."
            )
        self.streams = [self._stream(c) for c in range(self.n_channels)]
        for stream in self.streams:
            shape = (None, self.samples, 1)
            for layer in stream:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
        self.feature_dim = int(shape[-1])

    def call(self, x, training=False):
        seq_len = ops.shape(x)[1]
        # Fold the sequence into the batch: every epoch is encoded alone.
        x = ops.reshape(x, (-1, self.n_channels, self.samples, 1))
        feats = []
        for c, stream in enumerate(self.streams):
            h = x[:, c]
            for layer in stream:
                h = layer(h, training=training)
            feats.append(h)
        h = ops.stack(feats, axis=1)
        return ops.reshape(h, (-1, seq_len, self.n_channels, self.feature_dim))

    def compute_output_shape(self, input_shape):
        if not hasattr(self, "feature_dim"):
            self.build(input_shape)
        return (input_shape[0], input_shape[1], input_shape[2], self.feature_dim)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, fs=self.fs, dropout=self.dropout)
        return config
