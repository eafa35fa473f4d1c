"""Model cost for Table 2: parameters, size on disk and FLOPs of one forward pass.

FLOPs are measured two independent ways and cross-checked:

* **TF profiler** (`profiler_flops`): the model is traced with
  `tf.function(model).get_concrete_function(tf.TensorSpec((B, L, C, S)))`,
  frozen with `convert_variables_to_constants_v2` and the frozen graph is
  handed to `tf.compat.v1.profiler.profile` with
  `ProfileOptionBuilder.float_operation()` (the recipe behind most published
  Keras FLOP counts, and presumably the paper's: TensorFlow 2.9).
* **Analytic** (`analytic_flops`): a closed-form count per layer (Conv1D,
  Dense, MaxPooling1D, LSTM / Bidirectional, `MultiChannelEncoder`,
  `GraphConvolution`); a layer type it does not know raises instead of being
  guessed.

Convention (both methods): **a multiply-add counts as 2 FLOPs** (one multiply,
one add), which is how TensorFlow's registered op statistics count MatMul,
BatchMatMul and Conv2D (`2 * MACs`). The analytic count also follows the
profiler's rules for the cheap ops so that the two agree to the FLOP:
1 FLOP per element for bias adds and element-wise add / sub / mul / maximum /
square, `pool_size` per output of a max-pool, 5 per element of a softmax,
2 per rsqrt, `n_in - n_out` for a sum; ReLU, sigmoid, tanh and abs count 0
(TF registers no FLOP statistic for them). The multiply-adds alone are also
returned (`macs`): "FLOPs" in the 1-FLOP-per-MAC sense is that number. At
inference dropout is the identity and costs nothing.

Which to trust: **the analytic count** (or, equivalently, the profiler on a
copy with the RNNs unrolled, `unroll_rnn=True`). The profiler counts each
graph node once with statically known shapes, so on a Keras LSTM, which runs
in a `tf.while_loop`, it (a) sees the loop body once instead of L times and
(b) skips the body's ops whose input shapes are unknown inside the loop (the
recurrent `h @ U` matmul, most of the state update): on the CNN-RNN models it
counts one time step's input projection and three element-wise ops per
direction, about 5 % of the BiLSTM's FLOPs. Without lowering
the control flow (`lower_control_flow=False`) it misses the LSTM entirely.
Unrolling the RNN (same weights, same maths, a straight-line graph) makes the
profiler see every step, and then profiler and analytic agree exactly on all
four models; loop-free models (CNN-GCN) agree exactly without unrolling.
The encoder dominates every model, so the as-traced profiler total is off by
the BiLSTM alone: at the default input (6 channels, L = 20, 100 Hz) it reports
1.609 B instead of 1.704 B for the CNN-RNN teacher (-5.6 %) and 0.1360 B
instead of 0.1419 B for the student (-4.2 %).

The paper's convention (Table 2 "FLOPS": 11.34 B, 1.15 B, 1.61 B, 0.034 B)
is most likely 2 FLOPs per multiply-add too: it used TensorFlow 2.9, whose
profiler (the usual Keras FLOP tool) counts that way, and its CNN-GCN teacher,
1.61 B, is within 0.4 % of our 128-filter encoder alone at 2 FLOPs/MAC
(1.604 B; the whole CNN-GCN teacher is 1.70 B) while 1 FLOP/MAC would give
half (0.85 B). Its CNN-RNN student, 1.15 B, equals 8 x our 0.142 B (1.14 B)
-- 8 is its training batch size -- which may be a coincidence: the same
reading gives 13.6 B for the teacher, not 11.34 B. No single convention
reproduces all four: the CNN-GCN student's 0.034 B is below what the
32-filter encoder alone costs on one sequence (0.136 B FLOPs, 0.067 B MACs),
although the paper gives that student 7x the CNN-RNN student's parameters.
We therefore report FLOPs (2 per MAC) and MACs side by side.

`size_on_disk` reports the bytes of the saved `.keras` archive and of the
float32 weights alone (`params * 4`); the paper's "Size" column is the latter
(8.72 M params -> 34.9 MB, 0.29 M -> 1.2 MB, 5.49 M -> 22 MB, 2.13 M -> 8.6 MB,
MB = 10^6 bytes).
"""

import dataclasses
import math
import os
import re
import tempfile

import keras

from stmd_keras.models.cnn_gcn import GraphConvolution
from stmd_keras.models.encoder import MultiChannelEncoder

# ---------------------------------------------------------------- parameters & size


def count_params(model):
    """Number of weights of `model` (trainable and not), as Keras counts them."""
    return int(model.count_params())


def size_on_disk(model):
    """Bytes of `model` saved as a `.keras` archive, and of its float32 weights alone.

    Returns:
        `{"keras_bytes": size of the .keras file, "weights_bytes": params * 4}`.
        The archive adds the config and the HDF5 container's overhead.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        keras_bytes = os.path.getsize(path)
    return {"keras_bytes": int(keras_bytes), "weights_bytes": 4 * count_params(model)}


# ---------------------------------------------------------------- TF profiler


def _input_spec(model, batch_size):
    import tensorflow as tf

    if isinstance(model.input, (list, tuple, dict)):
        raise ValueError("FLOP counting supports models with a single input.")
    shape = tuple(model.input.shape)
    if any(d is None for d in shape[1:]):
        raise ValueError(f"FLOP counting needs a fully defined input shape. Received: {shape}")
    if shape[0] is not None and shape[0] != batch_size:
        raise ValueError(f"The model's batch dimension is fixed to {shape[0]}, not {batch_size}.")
    return tf.TensorSpec((batch_size,) + shape[1:], model.input.dtype or "float32")


def unrolled_copy(model):
    """A copy of `model` (same weights) whose LSTM/GRU/SimpleRNN layers are unrolled.

    Unrolled, the recurrence is a straight-line graph the profiler can count.
    """
    def unroll(node):
        if isinstance(node, dict):
            if node.get("class_name") in ("LSTM", "GRU", "SimpleRNN") and isinstance(node.get("config"), dict):
                node["config"]["unroll"] = True
            for value in node.values():
                unroll(value)
        elif isinstance(node, list):
            for value in node:
                unroll(value)

    config = model.get_config()
    unroll(config)
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def frozen_graph(model, batch_size=1, lower_control_flow=True):
    """The inference graph of `model` for one batch, variables folded into constants."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    fn = tf.function(lambda x: model(x, training=False))
    concrete = fn.get_concrete_function(_input_spec(model, batch_size))
    return convert_variables_to_constants_v2(concrete, lower_control_flow=lower_control_flow).graph


def profile_graph(graph):
    """Runs the TF profiler's float-operation count on `graph`.

    Returns:
        `(total FLOPs, {op name: FLOPs})` over the ops the profiler counted.
    """
    import tensorflow as tf

    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    verbosity = tf.compat.v1.logging.get_verbosity()
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)  # v1-API deprecation notes
    try:
        info = tf.compat.v1.profiler.profile(
            graph=graph, run_meta=tf.compat.v1.RunMetadata(), cmd="scope", options=options
        )
    finally:
        tf.compat.v1.logging.set_verbosity(verbosity)
    per_op = {}
    stack = list(info.children)
    while stack:
        node = stack.pop()
        if node.float_ops:
            per_op[node.name] = int(node.float_ops)
        stack.extend(node.children)
    return int(info.total_float_ops), per_op


def profiler_flops(model, batch_size=1, unroll_rnn=False, by_layer=False):
    """FLOPs of one inference pass on `batch_size` inputs, by the TF profiler.

    Args:
        model: a single-input Keras model with a fully defined input shape.
        batch_size: inputs per pass (1: one sequence).
        unroll_rnn: profile `unrolled_copy(model)` so that RNN loops are counted.
        by_layer: also return the FLOPs per top-level layer.

    Returns:
        Total FLOPs (multiply-add = 2), or `(total, {layer name: FLOPs})`;
        ops outside any layer are under `"(other)"`.
    """
    target = unrolled_copy(model) if unroll_rnn else model
    total, per_op = profile_graph(frozen_graph(target, batch_size))
    if not by_layer:
        return total
    return total, _group_by_layer(per_op, [layer.name for layer in model.layers])


def _group_by_layer(per_op, layer_names):
    patterns = [(name, re.compile(re.escape(name) + r"(_\d+)?$")) for name in layer_names]
    grouped = {}
    for op_name, flops in per_op.items():
        owner = "(other)"
        for part in op_name.split("/"):
            owner = next((name for name, p in patterns if p.match(part)), None)
            if owner:
                break
        owner = owner or "(other)"
        grouped[owner] = grouped.get(owner, 0) + flops
    return grouped


# ---------------------------------------------------------------- analytic count


@dataclasses.dataclass(frozen=True)
class Cost:
    """FLOPs (multiply-add = 2, profiler rules for the rest) and multiply-adds."""

    flops: int = 0
    macs: int = 0

    def __add__(self, other):
        return Cost(self.flops + other.flops, self.macs + other.macs)

    def __mul__(self, n):
        return Cost(self.flops * int(n), self.macs * int(n))


_FREE_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh")


def _activation_cost(activation, n):
    name = keras.activations.serialize(activation)
    name = name if isinstance(name, str) else name.get("config", {}).get("name", str(name))
    if name in _FREE_ACTIVATIONS:
        return Cost()
    if name == "softmax":
        return Cost(5 * n)
    raise NotImplementedError(f"No FLOP rule for activation {name!r}.")


def _prod(shape):
    return int(math.prod(int(d) for d in shape))


def _conv1d(layer, in_shape, out_shape):
    if layer.data_format != "channels_last":
        raise NotImplementedError("Conv1D FLOPs are counted for channels_last only.")
    positions = _prod(out_shape[:-1])  # batch x output length
    macs = positions * layer.filters * layer.kernel_size[0] * (int(in_shape[-1]) // layer.groups)
    flops = 2 * macs + (positions * layer.filters if layer.use_bias else 0)
    return Cost(flops, macs) + _activation_cost(layer.activation, _prod(out_shape))


def _dense(layer, in_shape, out_shape):
    rows = _prod(in_shape[:-1])
    macs = rows * int(in_shape[-1]) * layer.units
    flops = 2 * macs + (rows * layer.units if layer.use_bias else 0)
    return Cost(flops, macs) + _activation_cost(layer.activation, _prod(out_shape))


def _pool1d(layer, in_shape, out_shape):
    # TF counts a pool as `pool_size` operations per output element.
    return Cost(_prod(out_shape) * layer.pool_size[0])


def lstm_step_cost(input_dim, units, use_bias=True):
    """One LSTM step for one sequence (Keras' fused cell, implementation 2).

    `z = x W + h U (+ b)`: 4u(in + u) multiply-adds, 4u adds (+ 4u bias adds);
    `c = f * c + i * g`: 3u; `h = o * tanh(c)`: u; the activations are free.
    """
    macs = 4 * units * (input_dim + units)
    return Cost(2 * macs + 4 * units + (4 * units if use_bias else 0) + 4 * units, macs)


def _lstm(layer, in_shape, out_shape):
    for activation in (layer.cell.activation, layer.cell.recurrent_activation):
        if _activation_cost(activation, 1).flops:
            raise NotImplementedError("LSTM FLOPs are counted for sigmoid/tanh-type activations only.")
    batch, steps, features = (int(d) for d in in_shape)
    return lstm_step_cost(features, layer.units, layer.cell.use_bias) * (batch * steps)


def _bidirectional(layer, in_shape, out_shape):
    cost = Cost()
    for direction in (layer.forward_layer, layer.backward_layer):
        cost = cost + _layer_cost(direction, in_shape, direction.compute_output_shape(in_shape))
    half = _prod(layer.forward_layer.compute_output_shape(in_shape))
    merge = {"concat": 0, None: 0, "sum": half, "mul": half, "ave": 2 * half}
    if layer.merge_mode not in merge:
        raise NotImplementedError(f"No FLOP rule for merge_mode={layer.merge_mode!r}.")
    return cost + Cost(merge[layer.merge_mode])


def _encoder(layer, in_shape, out_shape):
    batch, seq_len, channels, samples = (int(d) for d in in_shape)
    cost = Cost()
    for stream in layer.streams:
        shape = (batch * seq_len, samples, 1)  # every epoch of this channel
        for sub in stream:
            out = sub.compute_output_shape(shape)
            cost = cost + _layer_cost(sub, shape, out)
            shape = out
    return cost


def graph_convolution_cost(adjacency, graphs, nodes, features, units, use_bias=True):
    """`GraphConvolution` on `graphs` graphs of `nodes` x `features`."""
    g, c, f = graphs, nodes, features
    macs = g * c * c * f + g * c * f * units  # A @ X, then (A X) @ W
    flops = 2 * macs + (g * c * units if use_bias else 0)
    if adjacency == "adaptive":  # |x_i - x_j| (sub; abs free) . w, relu, softmax
        macs += g * c * c * f
        flops += g * c * c * f + 2 * g * c * c * f + 5 * g * c * c
    elif adjacency == "cosine":  # square, sum, max, rsqrt, scale, X X^T, softmax
        macs += g * c * c * f
        flops += (g * c * f + g * c * (f - 1) + g * c + 2 * g * c + g * c * f
                  + 2 * g * c * c * f + 5 * g * c * c)
    elif adjacency != "fixed":
        raise NotImplementedError(f"No FLOP rule for adjacency={adjacency!r}.")
    return Cost(flops, macs)


def _graph_conv(layer, in_shape, out_shape):
    graphs, nodes, features = _prod(in_shape[:-2]), int(in_shape[-2]), int(in_shape[-1])
    return (graph_convolution_cost(layer.adjacency, graphs, nodes, features, layer.units, layer.use_bias)
            + _activation_cost(layer.activation, _prod(out_shape)))


_FREE_LAYERS = (keras.layers.InputLayer, keras.layers.Dropout, keras.layers.Flatten,
                keras.layers.Reshape, keras.layers.Concatenate, keras.layers.Permute)

_RULES = (
    (MultiChannelEncoder, _encoder),
    (GraphConvolution, _graph_conv),
    (keras.layers.Bidirectional, _bidirectional),
    (keras.layers.LSTM, _lstm),
    (keras.layers.Conv1D, _conv1d),
    (keras.layers.Dense, _dense),
    (keras.layers.MaxPooling1D, _pool1d),
)


def _layer_cost(layer, in_shape, out_shape):
    if isinstance(layer, _FREE_LAYERS):
        return Cost()
    for cls, rule in _RULES:
        if isinstance(layer, cls):
            return rule(layer, in_shape, out_shape)
    raise NotImplementedError(
        f"No analytic FLOP rule for layer {layer.name!r} ({type(layer).__name__})."
    )


def analytic_cost(model, batch_size=1):
    """Closed-form cost of one inference pass, per top-level layer.

    Returns:
        `{layer name: Cost}` for every layer of the functional `model`.
    """
    def fix(shape):
        return tuple(batch_size if d is None else int(d) for d in shape)

    costs = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer.input, (list, tuple, dict)) and not isinstance(layer, keras.layers.Concatenate):
            raise NotImplementedError(f"Layer {layer.name!r} has several inputs.")
        if isinstance(layer, keras.layers.Concatenate):
            costs[layer.name] = Cost()
            continue
        costs[layer.name] = _layer_cost(layer, fix(layer.input.shape), fix(layer.output.shape))
    return costs


def analytic_flops(model, batch_size=1):
    """Total analytic FLOPs (multiply-add = 2) of one inference pass on `batch_size` inputs."""
    return sum(c.flops for c in analytic_cost(model, batch_size).values())


# ---------------------------------------------------------------- everything at once


@dataclasses.dataclass(frozen=True)
class FlopCount:
    """FLOPs of one forward pass of one input sequence (multiply-add = 2 FLOPs).

    Attributes:
        analytic: closed-form count (trusted).
        macs: multiply-adds alone (the 1-FLOP-per-MAC reading).
        profiler: TF profiler on the model as traced (undercounts RNN loops).
        profiler_unrolled: TF profiler with the RNNs unrolled (equals `analytic`).
        seq_len: epochs per sequence L, for the per-epoch figures.
        batch_size: sequences per pass.
    """

    analytic: int
    macs: int
    profiler: int
    profiler_unrolled: int
    seq_len: int
    batch_size: int = 1

    def per_epoch(self, field="analytic"):
        """`field` divided by the number of 30-s epochs in the pass."""
        return getattr(self, field) / (self.seq_len * self.batch_size)

    def to_dict(self):
        d = dataclasses.asdict(self)
        for field in ("analytic", "macs", "profiler", "profiler_unrolled"):
            d[field + "_per_epoch"] = self.per_epoch(field)
        return d


def _has_rnn(model):
    for layer in model.layers:
        if isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)):
            return True
        if isinstance(layer, keras.Model) and _has_rnn(layer):
            return True
    return False


def count_flops(model, batch_size=1):
    """FLOPs of one forward pass of `batch_size` input sequences `(B, L, C, S)`.

    Runs the TF profiler on the frozen graph (as traced and, if the model has
    an RNN, unrolled) and the analytic count; see the module docstring.
    """
    costs = analytic_cost(model, batch_size)
    profiled = profiler_flops(model, batch_size)
    unrolled = profiler_flops(model, batch_size, unroll_rnn=True) if _has_rnn(model) else profiled
    seq_len = int(model.input.shape[1]) if len(model.input.shape) == 4 else 1  # (B, L, C, S)
    return FlopCount(
        analytic=sum(c.flops for c in costs.values()),
        macs=sum(c.macs for c in costs.values()),
        profiler=profiled,
        profiler_unrolled=unrolled,
        seq_len=seq_len,
        batch_size=batch_size,
    )


def model_cost(model, batch_size=1):
    """Parameters, sizes and FLOPs of `model` as one JSON-ready dict."""
    flops = count_flops(model, batch_size)
    return {"params": count_params(model), **size_on_disk(model), "flops": flops.to_dict()}


__all__ = [
    "Cost", "FlopCount", "analytic_cost", "analytic_flops", "count_flops", "count_params",
    "frozen_graph", "graph_convolution_cost", "lstm_step_cost", "model_cost", "profile_graph",
    "profiler_flops", "size_on_disk", "unrolled_copy",
]
