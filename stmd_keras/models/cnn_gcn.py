"""CNN-GCN teacher and student (paper Tables 1, 13, 14).

The paper's CNN-GCN pair is "inspired by GraphSleepNet" (Section 5.2) and
Tables 13-14 list, after the per-channel feature extractor of Tables 9/11:
Concatenate -> Graph Convolution (1024 teacher, 32 student) -> Dropout 0.5 ->
Dense(5, softmax). Where the paper is silent we chose:

* Concatenate = stacking the `C` channel feature vectors of an epoch as the
  node-feature matrix `X` `(C, m)` of that epoch's channel graph (this is the
  multi-channel feature tensor H the distillation uses).
* Graph convolution = first-order propagation `relu(A X W + b)` with a
  row-stochastic adjacency `A`, one graph per epoch (the tables have no
  temporal layer, and GraphSleepNet classifies each epoch from its own graph).
  ReLU as in GraphSleepNet; the tables print no activation (`activation=`).
* Adjacency, default `"adaptive"`: GraphSleepNet's graph learning from the
  node features, `A_ij = softmax_j(relu(w . |x_i - x_j|))` with a trainable
  `w` of length `m`. GraphSleepNet's graph regularisation loss (smoothness +
  Frobenius norm) is not added: our trainers optimise only the paper's
  Eqs. 10-13, so the graph is learned from those losses alone.
  `"cosine"`: `A_ij = softmax_j(cos(x_i, x_j))`, exactly the sleep graph of
  Eq. 5 (the spatial loss then acts on the very graph the model propagates
  over). `"fixed"`: a given `(C, C)` non-negative matrix with self-loops added
  and rows normalised, `D^-1 (A + I)`.
* Dense(5) reads the `C * units` graph-convolution outputs of the epoch
  (flattened nodes); it outputs logits, the softmax is in the losses.

Table 1's "Dense" column (1024 / 128) appears in no layer table and is not
implemented, as for the CNN-RNN pair.
"""

import keras
import numpy as np
from keras import layers, ops

from stmd_keras.models.cnn_rnn import N_CLASSES
from stmd_keras.models.encoder import MultiChannelEncoder

ADJACENCIES = ("adaptive", "cosine", "fixed")

CNN_GCN_SIZES = {
    # role: (conv filters, graph-convolution units), paper Table 1 / 13 / 14.
    "teacher": (128, 1024),
    "student": (32, 32),
}


@keras.saving.register_keras_serializable(package="stmd_keras")
class GraphConvolution(layers.Layer):
    """Graph convolution over the channel graph of every epoch.

    For node features `X` `(C, F)` of one epoch (one row per channel) it
    computes `activation(A X W + b)`, where `A` `(C, C)` is row-stochastic:

        adaptive: A_ij = softmax_j(relu(w . |x_i - x_j|))   (GraphSleepNet)
        cosine:   A_ij = softmax_j(cos(x_i, x_j))           (sleep graph, Eq. 5)
        fixed:    A = D^-1 (M + I), D = diag(rowsum(M + I)) (given matrix M)

    All leading axes (batch, epochs) are independent graphs.

    >>> gc = GraphConvolution(32)
    >>> gc(np.zeros((2, 20, 6, 96), "float32")).shape
    (2, 20, 6, 32)

    Args:
        units: output features per node.
        adjacency: `"adaptive"` (default), `"cosine"` or `"fixed"`.
        adjacency_matrix: `(C, C)` non-negative edge weights, required with
            `adjacency="fixed"` and refused otherwise; self-loops are added.
        activation: activation of the output (default `"relu"`).
        use_bias: whether to add the bias `b` (default `True`).

    Input shape:
        `(..., channels, features)`, at least 3D.

    Output shape:
        `(..., channels, units)`.
    """

    def __init__(self, units, adjacency="adaptive", adjacency_matrix=None, activation="relu",
                 use_bias=True, **kwargs):
        super().__init__(**kwargs)
        if int(units) != units or units < 1:
            raise ValueError(f"`units` must be an integer >= 1. Received: units={units}")
        if adjacency not in ADJACENCIES:
            raise ValueError(
                f"`adjacency` must be one of {ADJACENCIES}. Received: adjacency={adjacency!r}"
            )
        if adjacency == "fixed":
            if adjacency_matrix is None:
                raise ValueError(
                    "adjacency='fixed' needs `adjacency_matrix`, a (C, C) array of non-negative "
                    "edge weights (e.g. numpy.ones((C, C)) for the complete graph)."
                )
            matrix = np.asarray(adjacency_matrix, dtype="float64")
            if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
                raise ValueError(
                    f"`adjacency_matrix` must be square (C, C). Received shape {matrix.shape}"
                )
            if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
                raise ValueError("`adjacency_matrix` must be finite and non-negative.")
            adjacency_matrix = matrix.tolist()
        elif adjacency_matrix is not None:
            raise ValueError(
                "`adjacency_matrix` is only used with adjacency='fixed'. "
                f"Received: adjacency={adjacency!r} with a matrix"
            )
        self.units = int(units)
        self.adjacency = adjacency
        self.adjacency_matrix = adjacency_matrix
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)

    def build(self, input_shape):
        if len(input_shape) < 3 or input_shape[-1] is None or input_shape[-2] is None:
            raise ValueError(
                "GraphConvolution expects (..., channels, features) with known channels "
                f"and features. Received: input_shape={input_shape}"
            )
        channels, features = int(input_shape[-2]), int(input_shape[-1])
        self.kernel = self.add_weight(name="kernel", shape=(features, self.units),
                                      initializer="glorot_uniform")
        self.bias = (self.add_weight(name="bias", shape=(self.units,), initializer="zeros")
                     if self.use_bias else None)
        if self.adjacency == "adaptive":
            # GraphSleepNet initialises `w` with Keras' "uniform" (+-0.05):
            # the first graphs are nearly uniform.
            self.adjacency_weight = self.add_weight(
                name="adjacency_weight", shape=(features,), initializer="random_uniform"
            )
        elif self.adjacency == "fixed":
            matrix = np.asarray(self.adjacency_matrix, dtype="float64")
            if matrix.shape[0] != channels:
                raise ValueError(
                    f"`adjacency_matrix` is {matrix.shape[0]}x{matrix.shape[0]} but the input "
                    f"has {channels} channels. Received: input_shape={input_shape}"
                )
            matrix = matrix + np.eye(channels)  # self-loops keep every row sum >= 1
            self.normalized_adjacency = (matrix / matrix.sum(-1, keepdims=True)).astype("float32")

    def graph(self, inputs):
        """The row-stochastic adjacency `(..., C, C)` of every graph in `inputs`."""
        if self.adjacency == "adaptive":
            diff = ops.abs(ops.expand_dims(inputs, -2) - ops.expand_dims(inputs, -3))
            return ops.softmax(ops.relu(ops.matmul(diff, self.adjacency_weight)), axis=-1)
        if self.adjacency == "cosine":
            square_sum = ops.sum(ops.square(inputs), axis=-1, keepdims=True)
            # Guard as in SleepGraph: a zero-norm node has cosine 0 with all.
            unit = inputs * ops.rsqrt(ops.maximum(square_sum, 1e-12))
            return ops.softmax(ops.matmul(unit, ops.swapaxes(unit, -1, -2)), axis=-1)
        channels = self.normalized_adjacency.shape[0]
        batch_shape = tuple(ops.shape(inputs)[:-2])
        return ops.broadcast_to(ops.convert_to_tensor(self.normalized_adjacency),
                                batch_shape + (channels, channels))

    def call(self, inputs):
        outputs = ops.matmul(ops.matmul(self.graph(inputs), inputs), self.kernel)
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units,
            adjacency=self.adjacency,
            adjacency_matrix=self.adjacency_matrix,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
        )
        return config


def build_cnn_gcn(
    filters,
    graph_units,
    n_channels=6,
    seq_len=20,
    fs=100,
    epoch_sec=30,
    adjacency="adaptive",
    adjacency_matrix=None,
    activation="relu",
    dropout=0.5,
    n_classes=N_CLASSES,
    batch_size=None,
    name="cnn_gcn",
):
    """Builds a CNN-GCN sleep stager returning features and logits.

    Per-channel CNN encoders (`MultiChannelEncoder`, as in the CNN-RNN pair)
    -> the channel features of each epoch as the nodes of a graph ->
    `GraphConvolution(graph_units)` per epoch -> Dropout -> Dense(`n_classes`)
    on the flattened nodes of each epoch. Every epoch is classified from its
    own signals (no temporal layer, as in Tables 13-14). `features` is the
    multi-channel feature tensor H `(B, L, C, m)` before the graph
    convolution, as for the CNN-RNN pair, so STMD applies unchanged.

    Args:
        filters: convolution filters per encoder layer.
        graph_units: output features per node of the graph convolution.
        n_channels: number of input channels C (graph nodes).
        seq_len: number of epochs per sequence L.
        fs: sampling rate in Hz.
        epoch_sec: epoch length in seconds.
        adjacency: `"adaptive"` (GraphSleepNet, default), `"cosine"` or
            `"fixed"` (see `GraphConvolution`).
        adjacency_matrix: `(C, C)` edge weights for `adjacency="fixed"`.
        activation: activation of the graph convolution (default `"relu"`).
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
    h = GraphConvolution(graph_units, adjacency=adjacency, adjacency_matrix=adjacency_matrix,
                         activation=activation, name="graph_conv")(features)
    h = layers.Dropout(dropout, name="dropout")(h)
    h = layers.Reshape((seq_len, n_channels * graph_units), name="flatten_nodes")(h)
    logits = layers.Dense(n_classes, name="logits")(h)
    return keras.Model(inputs, {"logits": logits, "features": features}, name=name)


def cnn_gcn_teacher(**kwargs):
    """CNN-GCN teacher: 128 filters, graph convolution 1024 (Tables 1, 13)."""
    filters, units = CNN_GCN_SIZES["teacher"]
    return build_cnn_gcn(filters, units, name=kwargs.pop("name", "cnn_gcn_teacher"), **kwargs)


def cnn_gcn_student(**kwargs):
    """CNN-GCN student: 32 filters, graph convolution 32 (Tables 1, 14)."""
    filters, units = CNN_GCN_SIZES["student"]
    return build_cnn_gcn(filters, units, name=kwargs.pop("name", "cnn_gcn_student"), **kwargs)
