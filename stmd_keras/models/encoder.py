"""Per-channel CNN feature extractor shared by the CNN-RNN and CNN-GCN models."""

import keras
from keras import layers, ops


def first_conv_geometry(fs):
    """Kernel (fs/2) and stride (fs/4) of the encoder's first convolution at `fs` Hz."""
    return max(1, int(fs // 2)), max(1, int(fs // 4))


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
        f, (k, s) = self.filters, first_conv_geometry(self.fs)
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
        _, stride = first_conv_geometry(self.fs)
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


@keras.saving.register_keras_serializable(package="stmd_keras")
class GroupedChannelEncoder(layers.Layer):
    """`MultiChannelEncoder`'s function with the C streams fused into grouped convolutions.

    The C independent streams become one depthwise convolution (the first
    layer: one input channel per stream, `filters` outputs each) and three
    convolutions with `groups=C`, so every layer is one op over all channels
    instead of C small ones. It computes exactly what the per-channel
    encoder computes (same weights, re-laid out by `from_encoder`) and is
    about twice as fast in TFLite/XNNPACK, which is why the exporter uses it;
    training keeps the per-channel layer (its checkpoints stay valid).

    >>> enc = MultiChannelEncoder(filters=32, fs=100)
    >>> x = keras.ops.zeros((2, 20, 6, 3000))
    >>> fused = GroupedChannelEncoder.from_encoder(enc, x.shape)
    >>> fused(x).shape
    (2, 20, 6, 96)

    Args:
        filters: convolution filters per channel in every layer.
        n_channels: number of input channels C.
        fs: sampling rate in Hz; sets the first kernel (fs/2) and stride (fs/4).
    """

    def __init__(self, filters, n_channels, fs=100, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.n_channels, self.fs = int(filters), int(n_channels), fs
        f, c = self.filters, self.n_channels
        k, s = first_conv_geometry(fs)
        self.conv1 = layers.DepthwiseConv1D(k, strides=s, padding="same", depth_multiplier=f,
                                            activation="relu", name="conv1")
        self.pool1 = layers.MaxPooling1D(8, 8, name="pool1")
        self.convs = [layers.Conv1D(f * c, 8, padding="same", groups=c, activation="relu", name=f"conv{i}")
                      for i in (2, 3, 4)]
        self.pool2 = layers.MaxPooling1D(4, 4, name="pool2")

    def build(self, input_shape):
        self.samples = int(input_shape[3])
        shape = (None, self.samples, self.n_channels)
        for layer in (self.conv1, self.pool1, *self.convs, self.pool2):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.steps = int(shape[1])
        self.feature_dim = self.steps * self.filters

    def call(self, x):
        seq_len = ops.shape(x)[1]
        h = ops.reshape(x, (-1, self.n_channels, self.samples))
        h = ops.transpose(h, (0, 2, 1))  # channels last: (B*L, T, C)
        for layer in (self.conv1, self.pool1, *self.convs, self.pool2):
            h = layer(h)
        # (B*L, steps, C*F) -> (B*L, C, steps*F): the per-stream Flatten order.
        h = ops.reshape(h, (-1, self.steps, self.n_channels, self.filters))
        h = ops.transpose(h, (0, 2, 1, 3))
        return ops.reshape(h, (-1, seq_len, self.n_channels, self.feature_dim))

    def compute_output_shape(self, input_shape):
        if not hasattr(self, "feature_dim"):
            self.build(input_shape)
        return (input_shape[0], input_shape[1], input_shape[2], self.feature_dim)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, n_channels=self.n_channels, fs=self.fs)
        return config

    @classmethod
    def from_encoder(cls, encoder, input_shape=None):
        """A `GroupedChannelEncoder` holding `encoder`'s weights (a built `MultiChannelEncoder`)."""
        if not encoder.built:
            if input_shape is None:
                raise ValueError("`encoder` is not built; pass its `input_shape`.")
            encoder.build(input_shape)
        c = encoder.n_channels
        fused = cls(encoder.filters, c, fs=encoder.fs, name=encoder.name)
        fused.build((None, None, c, encoder.samples))
        convs = [[layer for layer in stream if isinstance(layer, layers.Conv1D)] for stream in encoder.streams]
        # Depthwise kernel (k, C, F): input channel c, multiplier f -> output c*F + f.
        kernel = ops.stack([ops.convert_to_tensor(s[0].kernel)[:, 0, :] for s in convs], axis=1)
        bias = ops.concatenate([s[0].bias for s in convs], axis=0)
        fused.conv1.set_weights([ops.convert_to_numpy(kernel), ops.convert_to_numpy(bias)])
        for i, conv in enumerate(fused.convs, start=1):
            # Grouped kernel (8, F, C*F): group c reads inputs c*F.. and writes outputs c*F..
            kernel = ops.concatenate([s[i].kernel for s in convs], axis=-1)
            bias = ops.concatenate([s[i].bias for s in convs], axis=0)
            conv.set_weights([ops.convert_to_numpy(kernel), ops.convert_to_numpy(bias)])
        return fused
