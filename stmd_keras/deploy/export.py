"""`stmd export`: a trained `.keras` stager as SavedModel and TFLite files, each checked.

    stmd export runs/.../student.keras --out export/ \\
        [--formats savedmodel,tflite-fp32,tflite-fp16,tflite-dynamic,tflite-int8]

What is exported is the deployed function only: signals `(B, L, C, S)` ->
stage probabilities `(B, L, 5)` (the softmax of the logits; the feature
tensor H the distillation needs is dropped).

Formats and files (in `--out`):

=================  ===================  =====================================
format             file                 what
=================  ===================  =====================================
savedmodel         savedmodel/          `model.export` with the input
                                        signature `(None, L, C, S)`: any batch
tflite-fp32        model_fp32.tflite    float32, fixed batch
tflite-fp16        model_fp16.tflite    float16 weights (dequantised on CPU)
tflite-dynamic     model_dynamic.tflite dynamic-range: int8 weights, float
                                        activations quantised on the fly
tflite-int8        model_int8.tflite    full-integer: int8 weights and
                                        activations, calibrated on a
                                        representative set of training
                                        sequences; float32 input and output
=================  ===================  =====================================

plus `stmd_model.json` (the model card with an `exports` entry per file:
format, batch size, LSTM form, parity results, size, latency) and
`export_report.json` / `export_report.md`. The SavedModel folder holds its own
card. Every file is written under a temporary name and renamed into place
only after its checks pass, so `--out` never holds a file that failed them.

TFLite: builtin ops only. The converter runs with `TFLITE_BUILTINS`
(`TFLITE_BUILTINS_INT8` for int8), never `SELECT_TF_OPS`: Flex ops need the
TensorFlow-linked interpreter, which the standard LiteRT runtimes (Android,
iOS, microcontrollers, `ai-edge-litert`) do not have; the operator table of
each file is read back and any custom op fails the export. With a dynamic
batch the Keras 3 BiLSTM does not lower to builtins ("TensorListReserve
requires element_shape to be static"), so every TFLite file has a fixed batch
(`--batch-size`, default 1); `Stager.predict_proba` pads the last batch.

The LSTM (`--lstm-form`). A Keras 3 LSTM reaches TFLite in one of three forms:

* `while`: the Keras loop as is; with a fixed batch it lowers to a TFLite
  WHILE loop whose body runs op by op (outside XNNPACK);
* `unroll`: the layer rebuilt with `unroll=True`, one set of ops per epoch
  of the fixed `L`;
* `fused`: TFLite's own UNIDIRECTIONAL_SEQUENCE_LSTM kernel, one op per
  direction. The converter fuses only functions marked the way Keras 2
  marked its LSTM (`api_implements="lstm_<id>"`, `time_major`), which a
  Keras 3 LSTM no longer is; the export graph therefore runs each direction
  through such a function (`_lstm_function`) with the layer's own weights.
  Two properties of the kernel: it keeps its state in variable tensors from
  one invoke to the next, so a caller must reset them before each invoke
  (`Interpreter.reset_all_variables()`; `load_stager` does, and the card
  says `reset_variables_before_invoke`), and it clips the cell state at
  +-10 (`cell_clip=10`), which a Keras LSTM does not (the parity check
  would catch a model whose cell state goes beyond).

Measured for the CNN-RNN student (`cnn_rnn_student()`: 6 channels, L = 20,
100 Hz, weights of a trained "Student (no KD)" row) on this project's CPU
(x86-64 with AVX-512, two cores shared with a training job, load ~2.5):
batch 1, LiteRT 2.3 interpreter, one thread, the candidates timed
interleaved, median of 100 runs, ms per 20-epoch sequence; parity on 600
held-out synthetic epochs:

=======  ========  =======  ========  ========  =======  ======================
form     fp32      fp32     fp32      int8      int8     int8 parity
         XNNPACK   builtin  size      XNNPACK   builtin  (agreement, Δ macro-F1)
=======  ========  =======  ========  ========  =======  ======================
while    4.96      8.02     1.32 MB   converter crashes (calibrating the loop)
unroll   5.83      7.94     1.42 MB   6.00      4.90     99.3 %, +2.0: fails
fused    4.76      7.86     1.30 MB   6.02      4.97     99.8 %, +0.04 (0.38 MB)
=======  ========  =======  ========  ========  =======  ======================

(Earlier runs: fused 4.4-4.8, while 4.7-5.0, unroll 5.1-5.7 ms; batch 8
costs ~36 ms, the same ~4.5 ms per sequence, in every form.) The CNN
dominates, so the forms differ little in float, but `fused` was the fastest
in every run, is the smallest, and is the only form whose int8 keeps parity
(its kernel keeps 16-bit cell state; `unroll` quantises every gate of every
step to int8 and leaves float ops between them). So `auto` (the default)
takes `fused` for every TFLite file when the LSTM allows it (tanh / sigmoid,
no state output), else `while` (float) or `unroll` (int8); `while` remains
the stateless choice for runtimes that cannot reset variables, and
`fastest` converts the float model in every form, times them on the
exporting machine and keeps the fastest correct one. int8 is full-integer
inside with float32 input and output (QUANTIZE / DEQUANTIZE at the ends):
callers pass the standardised signals and get probabilities as from every
other form, and the quantisation parameters stay inside the file. On this
CPU int8 is no faster than float with XNNPACK, and faster without it; the
export times both backends for each file and records the faster in the
card, which `load_stager` then uses.

The same trained student exported with the defaults (`auto`, batch 1;
`export_report.md`; ms per sequence with the backend the card records):

==============  =======  ==========================================  =======
format          size     parity on 600 held-out epochs               ms
==============  =======  ==========================================  =======
savedmodel      3.10 MB  max |Δprob| 0                               (TF)
tflite-fp32     1.30 MB  max |Δprob| 2.4e-7                          4.4
tflite-fp16     0.69 MB  max |Δprob| 2.7e-4, agreement 100 %         4.4
tflite-dynamic  0.37 MB  agreement 99.83 %, macro-F1 +0.04 points    4.8
tflite-int8     0.38 MB  agreement 99.67 %, macro-F1 +0.18 points    4.8
==============  =======  ==========================================  =======

(Keras: macro-F1 0.784 on those epochs; the `.keras` file is 1.42 MB.)

The channel streams (`grouped_encoder`, default on; `--per-channel-encoder`
turns it off). The per-channel encoder is C small CNNs, i.e. 4 C convolution
ops of a few hundred thousand multiply-adds each, where per-op overhead
dominates. For TFLite the exporter replaces it by `GroupedChannelEncoder`:
the same weights re-laid out as one depthwise convolution and three
convolutions with `groups=C` (the same function; fp32 parity 3e-7). Same
trained student, batch 1, one thread, ms per sequence, both exports timed on
the same idle machine (`bench/deploy.py`): fp32 XNNPACK 2.2 (per-channel
4.5), int8 XNNPACK 3.8 (per-channel 5.5; builtin 4.9), so one night with
the int8 file went from 0.23 s to 0.17 s. The builtin (non-XNNPACK) kernels
run grouped convolutions slowly (12-18 ms); the export times both backends
and the card records XNNPACK, which `load_stager` then uses. Batching
several sequences per invoke (`--batch-size 4`, `16`) was no faster per
sequence in either layout.

Parity (checked per file on a held-out set, reported, and fatal):

* savedmodel, tflite-fp32: max |Δprob| vs Keras <= `PROBABILITY_TOLERANCE`
  (1e-4) over every epoch of the held-out sequences;
* tflite-fp16, tflite-dynamic, tflite-int8: the predicted stage agrees with
  Keras on >= `MIN_AGREEMENT` (98 %) of the held-out epochs, and the
  macro-F1 against the labels is within `MAX_MACRO_F1_CHANGE` (1 point) of
  the Keras model's.

TFLite files are checked with XNNPACK and with the builtin kernels: both
must pass. A failure leaves no file for that format, the other formats are
still exported and reported, and `ExportError` then names every failed
format with the measured and the required values.

Parity data (`--parity-data`): `synthetic` (default) generates
`--parity-nights` nights (seed 1, which the training pipeline's seed-0 data
never produces) at the card's channels, and prepares them with the card's
preprocessing; or a folder of prepared cache files (`*.h5`, `stmd data
prepare`) or raw `*.npz` nights (`stmd synth`). The subjects are split in
two: a calibration part (the int8 representative set, "training data") and a
held-out part (the parity set). Real data is the better check for a model
trained on real data: int8 calibration ranges come from it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import glob
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid

import numpy as np

from stmd_keras.deploy.runtime import (
    EPOCH_SEC,
    MODEL_CARD,
    STAGES,
    ModelCardError,
    check_card,
    find_card,
    read_card,
)
from stmd_keras.io import atomic_path, write_json, write_text

FORMATS = ("savedmodel", "tflite-fp32", "tflite-fp16", "tflite-dynamic", "tflite-int8")
"""Every format `export_checkpoint` writes, in the order it writes them."""

OUTPUT_NAMES = {
    "savedmodel": "savedmodel",
    "tflite-fp32": "model_fp32.tflite",
    "tflite-fp16": "model_fp16.tflite",
    "tflite-dynamic": "model_dynamic.tflite",
    "tflite-int8": "model_int8.tflite",
}

LSTM_FORMS = ("auto", "fused", "while", "unroll", "fastest")

FLOAT_FORMATS = ("savedmodel", "tflite-fp32")

PROBABILITY_TOLERANCE = 1e-4
"""Largest |Δprob| vs Keras allowed for the float formats."""

MIN_AGREEMENT = 0.98
"""Smallest share of held-out epochs whose predicted stage must equal Keras'
(fp16, dynamic-range and int8)."""

MAX_MACRO_F1_CHANGE = 0.01
"""Largest |macro-F1 - Keras macro-F1| allowed (fp16, dynamic-range, int8)."""

PARITY_SEED = 1
"""Seed of the synthetic parity nights (training data uses seed 0)."""

SYNTHETIC_STAND_INS = ("F4-A1", "C3-A2", "C4-A1", "O2-A1", "LOC-A2", "ROC-A1", "F3-A2", "O1-A2", "X1")
"""Generator channels used, in order, when the card's channels are not
synthetic (ISRUC-III) names."""


class ExportError(RuntimeError):
    """An export failed: a conversion, an op check or a parity check."""


# ---------------------------------------------------------------------------
# The checkpoint and its card
# ---------------------------------------------------------------------------
def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(path, channels=None, fs=None, seq_len=None):
    """Loads a `.keras` stager and its model card.

    The card is `stmd_model.json` beside the file. Without one, `channels`,
    `fs` and `seq_len` make a minimal card (preprocessing then assumed:
    z-scored channels, no filters); with one, any of them given must agree
    with it.

    Returns
    -------
    (keras.Model, dict)

    Raises
    ------
    ModelCardError
        No card and not all three values given, or a card (or values) that
        does not fit the model's input shape.
    """
    import keras

    import stmd_keras.models  # noqa: F401  (registers the custom layers)

    path = os.fspath(path)
    if not path.endswith(".keras") or not os.path.isfile(path):
        raise FileNotFoundError(f"No .keras checkpoint at {path}.")
    given = {"channels": list(channels) if channels else None, "fs": fs, "seq_len": seq_len}
    card_path = find_card(path)
    if card_path is not None:
        card = read_card(card_path)
        for key, value in given.items():
            if value is not None and value != card[key]:
                raise ModelCardError(
                    f"--{key.replace('_', '-')} {value!r} contradicts the model card {card_path} "
                    f"({key}={card[key]!r})."
                )
    else:
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise ModelCardError(
                f"No model card ({MODEL_CARD}) beside {path}. It says which channels, sampling "
                "rate and sequence length the model expects (training writes it); without it pass "
                "--channels NAME... --fs HZ --seq-len L (missing: "
                + ", ".join("--" + k.replace("_", "-") for k in missing) + ")."
            )
        card = {
            "architecture": None, "role": None, "channels": given["channels"], "fs": float(fs),
            "seq_len": int(seq_len), "epoch_sec": EPOCH_SEC, "stages": list(STAGES),
            "preprocess": {"bandpass": None, "notch": None, "standardize": True},
            "card_source": "command line (preprocessing assumed: z-score only)",
        }
        check_card(card, where="the --channels/--fs/--seq-len values")
    model = keras.saving.load_model(path, safe_mode=True)
    samples = int(round(float(card["fs"]) * float(card.get("epoch_sec") or EPOCH_SEC)))
    expected = (int(card["seq_len"]), len(card["channels"]), samples)
    shape = tuple(model.input.shape[1:])
    if shape != expected:
        raise ModelCardError(
            f"{path}: the model takes sequences {shape} (seq_len, channels, samples) but the card "
            f"says {expected} (seq_len={card['seq_len']}, {len(card['channels'])} channels, "
            f"{card['fs']:g} Hz x 30 s)."
        )
    return model, card


# ---------------------------------------------------------------------------
# The exported function: signals -> probabilities, with a chosen LSTM form
# ---------------------------------------------------------------------------
def _recurrent_layers(model):
    from keras import layers

    return [l for l in model.layers if isinstance(l, (layers.Bidirectional, layers.RNN))]


def _directions(rnn):
    from keras import layers

    return [rnn.forward_layer, rnn.backward_layer] if isinstance(rnn, layers.Bidirectional) else [rnn]


def fused_lstm_problem(rnn) -> str | None:
    """Why TFLite's fused LSTM kernel cannot run `rnn` (None if it can)."""
    import keras
    from keras import layers

    if isinstance(rnn, layers.Bidirectional) and rnn.merge_mode not in ("concat", "sum", "ave", "mul"):
        return f"{rnn.name}: merge_mode={rnn.merge_mode!r}"
    for lstm in _directions(rnn):
        if not isinstance(lstm, layers.LSTM):
            return f"{rnn.name}: {type(lstm).__name__} is not an LSTM"
        cell = lstm.cell
        if cell.activation is not keras.activations.get("tanh"):
            return f"{rnn.name}: activation is not tanh"
        if cell.recurrent_activation is not keras.activations.get("sigmoid"):
            return f"{rnn.name}: recurrent_activation is not sigmoid"
        if lstm.stateful or lstm.return_state:
            return f"{rnn.name}: stateful or return_state"
    return None


def _lstm_function():
    """A standard LSTM the TFLite converter replaces by UNIDIRECTIONAL_SEQUENCE_LSTM.

    The attributes and the signature are those of Keras 2's `standard_lstm`
    (inputs, init_h, init_c, kernel, recurrent_kernel, bias) -> (last
    output, outputs, h, c, runtime), which the converter's
    prepare-composite-functions pass recognises (`api_implements` starting
    with "lstm_", `time_major`, static batch and weights). The body is the
    same LSTM, so TensorFlow computes what TFLite will.
    """
    import tensorflow as tf

    @tf.function(autograph=False, experimental_attributes={
        "api_implements": f"lstm_{uuid.uuid4().hex}",
        "api_preferred_device": "CPU",
        "time_major": False,
        "go_backwards": False,
    })
    def standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        h, c = init_h, init_c
        z_in = tf.matmul(inputs, kernel) + bias  # (B, T, 4 units), gates i, f, c, o
        outputs = []
        for t in range(inputs.shape[1]):
            i, f, g, o = tf.split(z_in[:, t] + tf.matmul(h, recurrent_kernel), 4, axis=-1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outputs.append(h)
        outputs = tf.stack(outputs, axis=1)
        return outputs[:, -1], outputs, h, c, tf.constant(1.0)

    return standard_lstm


def _fused_rnn_layer(rnn):
    """A layer computing `rnn` (LSTM or Bidirectional LSTM) through `_lstm_function`s."""
    import tensorflow as tf
    from keras import layers

    class FusibleRNN(layers.Layer):
        def __init__(self):
            super().__init__(name=rnn.name)
            self.rnn = rnn  # shares the trained weights
            self.functions = [_lstm_function() for _ in _directions(rnn)]

        def _lstm(self, lstm, function, x):
            cell = lstm.cell
            batch = x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]
            zeros = tf.zeros((batch, cell.units), x.dtype)
            bias = (tf.convert_to_tensor(cell.bias) if cell.use_bias
                    else tf.zeros((4 * cell.units,), x.dtype))
            # Keras' go_backwards: read the sequence reversed, return outputs in that order.
            seq = tf.reverse(x, [1]) if lstm.go_backwards else x
            out = function(seq, zeros, zeros, tf.convert_to_tensor(cell.kernel),
                           tf.convert_to_tensor(cell.recurrent_kernel), bias)
            return out[1] if lstm.return_sequences else out[0]

        def call(self, x, mask=None, training=None, initial_state=None):
            outs = [self._lstm(l, f, x) for l, f in zip(_directions(self.rnn), self.functions)]
            if not isinstance(self.rnn, layers.Bidirectional):
                return outs[0]
            y, y_rev = outs
            if self.rnn.return_sequences:
                y_rev = tf.reverse(y_rev, [1])
            mode = self.rnn.merge_mode
            if mode == "concat":
                return tf.concat([y, y_rev], axis=-1)
            if mode == "sum":
                return y + y_rev
            if mode == "ave":
                return (y + y_rev) / 2
            return y * y_rev

        def compute_output_shape(self, input_shape):
            return self.rnn.compute_output_shape(input_shape)

    return FusibleRNN()


def _rebuilt_rnn(rnn, **changes):
    """`rnn` rebuilt from its config with `changes` on every LSTM/GRU inside."""
    config = rnn.get_config()
    for key in ("layer", "backward_layer"):
        if key in config:
            config[key]["config"].update(changes)
    if "layer" not in config:
        config.update(changes)
    return type(rnn).from_config(config)


def probability_model(model, lstm_form="while", grouped_encoder=False):
    """The deployed function of `model` as a Keras model: signals -> probabilities.

    Shares the weights of `model`. `lstm_form` ("while", "unroll" or
    "fused") says how its LSTMs are computed (see the module docstring);
    every form computes the same function. The recurrent layers are rebuilt
    without cuDNN: a graph traced on a GPU would otherwise hold CudnnRNN
    ops, which neither a CPU nor TFLite can run. `grouped_encoder=True`
    replaces every `MultiChannelEncoder` by its `GroupedChannelEncoder`
    (the same function, one grouped op per layer instead of one op per
    channel; used for TFLite, not for the SavedModel, since TensorFlow runs
    grouped convolutions on a CPU only through XLA).
    """
    import keras
    from keras import layers

    from stmd_keras.models.encoder import GroupedChannelEncoder, MultiChannelEncoder

    if lstm_form not in ("while", "unroll", "fused"):
        raise ValueError(f"lstm_form must be 'while', 'unroll' or 'fused'. Received: {lstm_form!r}")
    rebuilt = {}

    def clone(layer):
        if grouped_encoder and isinstance(layer, MultiChannelEncoder):
            return GroupedChannelEncoder.from_encoder(layer)
        if not isinstance(layer, (layers.Bidirectional, layers.RNN)):
            return layer
        if lstm_form == "fused":
            problem = fused_lstm_problem(layer)
            if problem:
                raise ExportError(f"The fused TFLite LSTM cannot compute {problem}; use lstm_form='unroll'.")
            return _fused_rnn_layer(layer)
        changes = {"use_cudnn": False} if _has_cudnn_option(layer) else {}
        if lstm_form == "unroll":
            changes["unroll"] = True
        new = _rebuilt_rnn(layer, **changes)
        rebuilt[layer.name] = (layer, new)
        return new

    clone_ = keras.models.clone_model(model, clone_function=clone)
    for old, new in rebuilt.values():
        new.set_weights(old.get_weights())
    out = clone_.output
    logits = out["logits"] if isinstance(out, dict) else out
    probs = layers.Softmax(axis=-1, name="probabilities")(logits)
    return keras.Model(clone_.input, probs, name=f"{model.name}_probabilities")


def _has_cudnn_option(rnn):
    return all("use_cudnn" in d.get_config() for d in _directions(rnn))


# ---------------------------------------------------------------------------
# TFLite conversion and inspection
# ---------------------------------------------------------------------------
def tflite_operators(model) -> list:
    """The operators a TFLite model uses: builtin names, or custom codes (e.g. "FlexConv2D").

    `model` is a path or the flatbuffer bytes; read with LiteRT's schema,
    without building an interpreter.
    """
    from ai_edge_litert import schema_py_generated as schema

    if not isinstance(model, (bytes, bytearray)):
        with open(model, "rb") as f:
            model = f.read()
    root = schema.Model.GetRootAs(model, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = set()
    for i in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(i)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            ops.add("custom:" + (custom.decode() if isinstance(custom, bytes) else str(custom)))
        else:
            ops.add(names.get(builtin, f"builtin#{builtin}"))
    return sorted(ops)


def lstm_form_of(ops) -> str:
    """How a TFLite op list computes its LSTM: "fused", "while", "unroll" or "none"."""
    if "UNIDIRECTIONAL_SEQUENCE_LSTM" in ops or "BIDIRECTIONAL_SEQUENCE_LSTM" in ops:
        return "fused"
    if "WHILE" in ops:
        return "while"
    if "LOGISTIC" in ops and "TANH" in ops:
        return "unroll"
    return "none"


def _write_conversion_saved_model(prob_model, batch_size, directory):
    """A SavedModel with a fixed-batch `serve` endpoint, the converter's input.

    Conversion goes through a SavedModel (as Keras' own LiteRT export does):
    only the SavedModel import keeps the `api_implements` functions that the
    LSTM fusion needs; converting a concrete function inlines them first.
    """
    import keras
    import tensorflow as tf

    shape = (batch_size,) + tuple(prob_model.input.shape[1:])
    archive = keras.export.ExportArchive()
    archive.track(prob_model)
    archive.add_endpoint(
        "serve", lambda x: prob_model(x, training=False),
        input_signature=[tf.TensorSpec(shape, tf.float32, name="signals")],
    )
    archive.write_out(directory, verbose=False)


def convert_tflite(saved_model_dir, fmt, representative=None) -> bytes:
    """Converts a SavedModel (from `_write_conversion_saved_model`) to `fmt`, builtin ops only.

    Args:
        saved_model_dir: the fixed-batch SavedModel.
        fmt: "tflite-fp32", "tflite-fp16", "tflite-dynamic" or "tflite-int8".
        representative: int8 only, float32 batches `(B, L, C, S)` of the
            fixed batch size for calibration.
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if fmt == "tflite-fp16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt == "tflite-dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt == "tflite-int8":
        if representative is None or not len(representative):
            raise ExportError("tflite-int8 needs a representative dataset (calibration sequences).")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([batch] for batch in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        # Input and output stay float32 (the converter's default): QUANTIZE and
        # DEQUANTIZE ops at the ends keep the scales inside the file.
    elif fmt != "tflite-fp32":
        raise ValueError(f"Not a TFLite format: {fmt!r}")
    return converter.convert()


# ---------------------------------------------------------------------------
# Parity data
# ---------------------------------------------------------------------------
@dataclasses.dataclass
class ParityData:
    """Sequences to calibrate int8 with and to check parity on.

    Attributes:
        calibration: float32 `(n, L, C, S)`, from the calibration ("training") part.
        x: float32 `(m, L, C, S)`, held-out sequences (non-overlapping).
        y: int `(m, L)`, their labels.
        info: where they came from, for the report.
    """

    calibration: np.ndarray
    x: np.ndarray
    y: np.ndarray
    info: dict


def _preprocess_config(card, channels):
    from stmd_keras.data.preprocess import PreprocessConfig

    pre = card.get("preprocess") or {}
    bandpass = pre.get("bandpass")
    return PreprocessConfig(
        fs=float(card["fs"]), channels=tuple(channels), standardize=bool(pre.get("standardize", True)),
        bandpass=tuple(bandpass) if bandpass is not None else None, notch=pre.get("notch"),
    )


def _synthetic_recordings(card, nights, night_epochs):
    from stmd_keras.data import synthetic
    from stmd_keras.data.preprocess import prepare_all

    channels = list(card["channels"])
    info = {"source": "synthetic", "seed": PARITY_SEED, "nights": nights, "night_epochs": night_epochs}
    if not set(channels) <= set(synthetic.ISRUC_CHANNELS):
        if len(channels) > len(SYNTHETIC_STAND_INS):
            raise ExportError(
                f"The synthetic generator has {len(SYNTHETIC_STAND_INS)} channels; the model takes "
                f"{len(channels)}. Pass --parity-data with prepared recordings."
            )
        channels = list(SYNTHETIC_STAND_INS[:len(channels)])
        info["stand_in_channels"] = channels
    fs = float(card["fs"])
    gen_fs = fs if fs >= 100 and float(EPOCH_SEC * fs).is_integer() else 100.0
    recordings = synthetic.generate(nights, seed=PARITY_SEED, fs=gen_fs, n_epochs=night_epochs,
                                    channels=tuple(channels))
    return prepare_all(recordings, _preprocess_config(card, channels)), info


def _folder_recordings(card, folder):
    from stmd_keras.data.preprocess import prepare_all
    from stmd_keras.data.recording import DataError, Recording

    h5 = sorted(glob.glob(os.path.join(folder, "*.h5")))
    npz = sorted(glob.glob(os.path.join(folder, "*.npz")))
    channels = tuple(card["channels"])
    if h5:
        from stmd_keras.data.cache import read_cached

        recordings = []
        for path in h5:
            rec = read_cached(path, verify=True)
            if abs(rec.fs - float(card["fs"])) > 1e-9:
                raise DataError(
                    f"{path} is prepared at {rec.fs:g} Hz; the model takes {float(card['fs']):g} Hz. "
                    "Prepare the parity data with the model's settings (stmd data prepare --fs ...)."
                )
            recordings.append(rec.select(channels))
        return recordings, {"source": os.path.abspath(folder), "kind": "prepared cache (.h5)",
                            "recordings": len(recordings)}
    if npz:
        raw = []
        for path in npz:
            with np.load(path) as f:
                raw.append(Recording(subject=os.path.splitext(os.path.basename(path))[0],
                                     signals=f["signals"], fs=float(f["fs"]),
                                     channels=tuple(str(c) for c in f["channels"]),
                                     labels=f["labels"], source=path))
        return prepare_all(raw, _preprocess_config(card, channels)), {
            "source": os.path.abspath(folder), "kind": "raw nights (.npz), prepared with the card",
            "recordings": len(raw)}
    raise ExportError(
        f"--parity-data {folder}: no prepared cache files (*.h5, from `stmd data prepare`) or raw "
        "nights (*.npz, from `stmd synth`) in that folder."
    )


def parity_data(card, source="synthetic", nights=5, night_epochs=300, calibration_sequences=100,
                max_heldout_sequences=100) -> ParityData:
    """Calibration and held-out sequences for a model with this `card`.

    Parameters
    ----------
    card : dict
        The model card: channels, fs, seq_len, preprocess.
    source : "synthetic" or a folder
        Synthetic nights, or a folder of `*.h5` cache files / `*.npz` nights.
    nights, night_epochs : int
        Synthetic only: nights generated, epochs per night.
    calibration_sequences : int
        Most sequences in the representative set (drawn at random, seeded,
        from half-overlapping windows of the calibration part).
    max_heldout_sequences : int or None
        Most held-out sequences (evenly spread); None: all.
    """
    from stmd_keras.data.sequences import SequenceSet
    from stmd_keras.data.splits import paper_split, select

    if source == "synthetic":
        recordings, info = _synthetic_recordings(card, nights, night_epochs)
    else:
        recordings, info = _folder_recordings(card, source)
    subjects = sorted({r.subject for r in recordings})
    if len(subjects) < 2:
        raise ExportError(
            f"Parity data needs at least two subjects (one to calibrate int8, one held out); "
            f"{info['source']} has {len(subjects)}."
        )
    split = paper_split(subjects, seed=0, n_val=0, n_test=max(1, len(subjects) // 2))
    seq_len = int(card["seq_len"])
    calib_set = SequenceSet(select(recordings, split.train), seq_len=seq_len,
                            stride=max(1, seq_len // 2), cover_all=False)
    held_set = SequenceSet(select(recordings, split.test), seq_len=seq_len, cover_all=False)
    rng = np.random.default_rng(PARITY_SEED)
    calib_idx = np.sort(rng.permutation(len(calib_set))[:calibration_sequences])
    held_idx = np.arange(len(held_set))
    if max_heldout_sequences is not None and len(held_idx) > max_heldout_sequences:
        held_idx = np.unique(np.linspace(0, len(held_set) - 1, max_heldout_sequences).round().astype(int))
    calibration, _ = calib_set.get(calib_idx)
    x, y = held_set.get(held_idx)
    info.update(calibration_subjects=list(split.train), heldout_subjects=list(split.test),
                calibration_sequences=int(len(calib_idx)), heldout_sequences=int(len(held_idx)),
                heldout_epochs=int(y.size))
    return ParityData(calibration=calibration, x=x, y=y, info=info)


# ---------------------------------------------------------------------------
# Parity
# ---------------------------------------------------------------------------
def parity(fmt, reference, probs, y) -> dict:
    """Compares `probs` of `fmt` with the Keras `reference` on held-out epochs.

    Returns a dict of the measured values, the `required` ones, `ok`, and a
    `message` saying what failed (empty when ok).
    """
    from stmd_keras.evaluation import evaluate

    diff = np.abs(np.asarray(probs, np.float64) - np.asarray(reference, np.float64))
    keras_pred = reference.argmax(-1).ravel()
    pred = probs.argmax(-1).ravel()
    truth = np.asarray(y).ravel()
    keras_f1 = evaluate(truth, keras_pred)["macro_f1"]
    scores = evaluate(truth, pred)
    result = {
        "n_epochs": int(truth.size),
        "max_abs_prob_diff": float(diff.max()),
        "mean_abs_prob_diff": float(diff.mean()),
        "agreement": float(np.mean(pred == keras_pred)),
        "macro_f1": float(scores["macro_f1"]),
        "accuracy": float(scores["accuracy"]),
        "keras_macro_f1": float(keras_f1),
        "macro_f1_change": float(scores["macro_f1"] - keras_f1),
    }
    if fmt in FLOAT_FORMATS:
        result["required"] = {"max_abs_prob_diff": f"<= {PROBABILITY_TOLERANCE:g}"}
        result["ok"] = result["max_abs_prob_diff"] <= PROBABILITY_TOLERANCE
        measured = (f"max |Δprob| vs Keras {result['max_abs_prob_diff']:.3g} "
                    f"(required <= {PROBABILITY_TOLERANCE:g})")
    else:
        result["required"] = {"agreement": f">= {MIN_AGREEMENT:g}",
                              "abs_macro_f1_change": f"<= {MAX_MACRO_F1_CHANGE:g}"}
        result["ok"] = (result["agreement"] >= MIN_AGREEMENT
                        and abs(result["macro_f1_change"]) <= MAX_MACRO_F1_CHANGE)
        measured = (f"stage agreement with Keras {100 * result['agreement']:.2f} % (required >= "
                    f"{100 * MIN_AGREEMENT:g} %), macro-F1 {result['macro_f1']:.4f} vs Keras "
                    f"{keras_f1:.4f} = {100 * result['macro_f1_change']:+.2f} points (required within "
                    f"+-{100 * MAX_MACRO_F1_CHANGE:g})")
    result["message"] = "" if result["ok"] else measured
    return result


def interleaved_latency(stagers, x, runs) -> dict:
    """Median milliseconds of one `_predict_batch(x)` per stager, runs interleaved.

    Interleaving gives every candidate the same share of a busy machine;
    the median drops the runs another process interrupted.
    """
    times = {key: [] for key in stagers}
    for stager in stagers.values():
        stager._predict_batch(x)  # warm-up: allocation, first-call costs
    for _ in range(runs):
        for key, stager in stagers.items():
            start = time.perf_counter()
            stager._predict_batch(x)
            times[key].append(time.perf_counter() - start)
    return {key: round(1e3 * float(np.median(t)), 3) for key, t in times.items()}


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
@contextlib.contextmanager
def _atomic_dir(path):
    """Yields a temporary folder beside `path`; puts it in place on success."""
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if os.path.exists(path):
        old = tempfile.mkdtemp(prefix=".old-", dir=parent)
        os.replace(path, os.path.join(old, "x"))
    os.replace(tmp, path)
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.remove(path)


def _versions():
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for name in ("tensorflow", "tensorflow-cpu", "keras", "ai-edge-litert"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


class _Exporter:
    """One export run: the state shared by the formats (see `export_checkpoint`)."""

    def __init__(self, model, card, out, batch_size, latency_runs, verbose, grouped_encoder=True):
        self.model, self.card, self.out = model, card, out
        self.grouped_encoder = grouped_encoder
        self.batch_size, self.latency_runs, self.verbose = batch_size, latency_runs, verbose
        self.tmp = tempfile.mkdtemp(prefix="stmd-export-")
        self._converted = {}  # (lstm_form) -> SavedModel dir for conversion

    def say(self, message):
        if self.verbose:
            print(message, flush=True)

    def close(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def conversion_dir(self, form):
        if form not in self._converted:
            directory = os.path.join(self.tmp, f"convert-{form}")
            _write_conversion_saved_model(probability_model(self.model, form, grouped_encoder=self.grouped_encoder), self.batch_size, directory)
            self._converted[form] = directory
        return self._converted[form]

    def timing_batch(self, data):
        batch = data.x[:self.batch_size]
        return np.resize(batch, (self.batch_size,) + batch.shape[1:]) if len(batch) < self.batch_size else batch

    def check_tflite(self, fmt, path, card, data, reference, time_it=True):
        """Op check, parity with XNNPACK and with builtin kernels, latency.

        Returns `(entry, {backend: TFLiteStager})`.
        """
        from stmd_keras.deploy.runtime import TFLiteStager

        ops = tflite_operators(path)
        custom = [op for op in ops if op.startswith("custom:")]
        if custom:
            raise ExportError(
                f"{fmt}: the converted model uses non-builtin ops {custom}, which the standard "
                "LiteRT interpreters cannot run."
            )
        entry = {"ops": ops, "lstm_form": lstm_form_of(ops), "parity": {}}
        stagers = {backend: TFLiteStager(path, card, num_threads=1, xnnpack=xnnpack)
                   for backend, xnnpack in (("xnnpack", True), ("builtin", False))}
        for backend, stager in stagers.items():
            entry["parity"][backend] = parity(fmt, reference, stager.predict_proba(data.x), data.y)
        failed = {b: p["message"] for b, p in entry["parity"].items() if not p["ok"]}
        if failed:
            raise ExportError(
                f"{fmt}: parity check failed on {data.info['heldout_epochs']} held-out epochs ("
                + "; ".join(f"{b}: {m}" for b, m in failed.items()) + ")."
            )
        entry["xnnpack"] = True
        if time_it and self.latency_runs:
            latency = interleaved_latency(stagers, self.timing_batch(data), self.latency_runs)
            entry["latency_ms_per_batch"] = latency
            entry["xnnpack"] = latency["xnnpack"] <= latency["builtin"]
        return entry, stagers

    def export_tflite(self, fmt, form, data, reference):
        representative = None
        if fmt == "tflite-int8":
            n = (len(data.calibration) // self.batch_size) * self.batch_size
            calibration = data.calibration[:n] if n else np.resize(
                data.calibration, (self.batch_size,) + data.calibration.shape[1:])
            representative = calibration.reshape((-1, self.batch_size) + calibration.shape[1:])
        try:
            flatbuffer = convert_tflite(self.conversion_dir(form), fmt, representative)
        except ExportError:
            raise
        except Exception as e:  # the converter raises many types; name the format
            raise ExportError(f"{fmt}: conversion failed ({type(e).__name__}: {e})") from e
        final = os.path.join(self.out, OUTPUT_NAMES[fmt])
        card = dict(self.card, format=fmt, batch_size=self.batch_size)
        with atomic_path(final) as tmp:
            with open(tmp, "wb") as f:
                f.write(flatbuffer)
            entry, _ = self.check_tflite(fmt, tmp, card, data, reference)
        entry.update(format=fmt, batch_size=self.batch_size, bytes=os.path.getsize(final),
                     encoder="grouped" if self.grouped_encoder else "per-channel")
        if entry["lstm_form"] == "fused":
            # The fused LSTM op keeps its state in variable tensors between invokes.
            entry["reset_variables_before_invoke"] = True
        return entry

    def export_saved_model(self, data, reference):
        import tensorflow as tf

        from stmd_keras.deploy.runtime import SavedModelStager

        final = os.path.join(self.out, OUTPUT_NAMES["savedmodel"])
        prob_model = probability_model(self.model, "while")
        signature = [tf.TensorSpec((None,) + tuple(prob_model.input.shape[1:]), tf.float32, name="signals")]
        with _atomic_dir(final) as tmp:
            try:
                prob_model.export(tmp, format="tf_saved_model", input_signature=signature, verbose=False)
            except Exception as e:
                raise ExportError(f"savedmodel: export failed ({type(e).__name__}: {e})") from e
            card = dict(self.card, format="savedmodel", batch_size=None)
            result = parity("savedmodel", reference, SavedModelStager(tmp, card).predict_proba(data.x), data.y)
            if not result["ok"]:
                raise ExportError(f"savedmodel: parity check failed on {data.info['heldout_epochs']} "
                                  f"held-out epochs ({result['message']}).")
            entry = {"format": "savedmodel", "batch_size": None,
                     "lstm_form": "while" if _recurrent_layers(self.model) else "none",
                     "parity": {"tensorflow": result}}
            write_json(os.path.join(tmp, MODEL_CARD), dict(card, **entry))
        entry["bytes"] = sum(os.path.getsize(os.path.join(d, f))
                             for d, _, files in os.walk(final) for f in files)
        return entry


def _form_for(fmt, requested, model, fastest=None):
    """The LSTM form `fmt` is converted with, and why (see the module docstring)."""
    rnns = _recurrent_layers(model)
    if not rnns:
        return "while", "the model has no recurrent layer"
    problems = [p for p in map(fused_lstm_problem, rnns) if p]
    if requested == "fused" and problems:
        raise ExportError(f"--lstm-form fused: the fused TFLite LSTM cannot compute {problems[0]}.")
    if fmt == "tflite-int8" and requested == "while":
        raise ExportError(
            "tflite-int8: the TFLite converter crashes calibrating an LSTM WHILE loop; "
            "use --lstm-form fused (or unroll)."
        )
    if requested in ("fused", "while", "unroll"):
        return requested, "requested"
    if fmt == "tflite-int8":
        if problems:
            return "unroll", f"int8 cannot use while; the fused LSTM cannot compute {problems[0]}"
        return "fused", "the only int8 form that keeps parity"
    if requested == "fastest" and fastest is not None:
        return fastest, "fastest measured here"
    if problems:
        return "while", f"faster than unroll; the fused LSTM cannot compute {problems[0]}"
    return "fused", "fastest and smallest measured (module docstring)"


def _read_out_card(out, sha, overwrite):
    """The `exports` already in `out` that this export keeps."""
    path = os.path.join(out, MODEL_CARD)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
    except (OSError, ValueError):
        old = {}
    exports = old.get("exports") or {}
    previous = (old.get("exported_from") or {}).get("sha256")
    if exports and previous != sha:
        if not overwrite:
            raise ExportError(
                f"{out} holds an export of another model ({(old.get('exported_from') or {}).get('path')}); "
                "choose another --out, or pass --overwrite to replace it."
            )
        for name in exports:
            _remove(os.path.join(out, name))
        return {}
    return exports


def export_checkpoint(checkpoint, out, formats=FORMATS, batch_size=1, lstm_form="auto",
                      parity_source="synthetic", parity_nights=5, night_epochs=300,
                      calibration_sequences=100, max_heldout_sequences=100, latency_runs=20,
                      channels=None, fs=None, seq_len=None, overwrite=False, verbose=True,
                      grouped_encoder=True) -> dict:
    """Exports a `.keras` stager to `formats` in `out`, checking each file.

    Parameters
    ----------
    checkpoint : path
        The `.keras` file; its model card `stmd_model.json` lies beside it.
    out : path
        Output folder (see the module docstring for its files).
    formats : sequence of str
        Any of `FORMATS`.
    batch_size : int
        The fixed batch of the TFLite files (default 1).
    lstm_form : str
        "auto", "fused", "while", "unroll" or "fastest" (module docstring).
    parity_source : "synthetic" or a folder
        Parity and calibration data (`parity_data`).
    parity_nights, night_epochs, calibration_sequences, max_heldout_sequences
        See `parity_data`.
    latency_runs : int
        Timed interpreter runs per TFLite file and backend (0: no timing;
        XNNPACK is then recorded as the backend).
    channels, fs, seq_len
        Card values for a checkpoint without a card.
    overwrite : bool
        Replace an export of another model in `out`.
    verbose : bool
        Print progress.
    grouped_encoder : bool
        TFLite files compute the per-channel CNN streams as grouped
        convolutions (`GroupedChannelEncoder`, the same function, about 2x
        faster on one thread); False keeps one op per channel.

    Returns
    -------
    dict
        The report (also written as `export_report.json` / `.md`).

    Raises
    ------
    ExportError
        After every format was tried, if any failed: the message names each
        failed format with the measured and the required values. Files of
        the formats that passed are written; none for those that failed.
    ModelCardError
        No card (and not all of channels, fs, seq_len), or one that does not
        fit the model.
    """
    formats = list(dict.fromkeys(formats))
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"Unknown format(s) {unknown}; choose from {list(FORMATS)}.")
    if lstm_form not in LSTM_FORMS:
        raise ValueError(f"lstm_form must be one of {LSTM_FORMS}. Received: {lstm_form!r}")
    if isinstance(batch_size, bool) or int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1. Received: batch_size={batch_size!r}")
    from stmd_keras.deploy.runtime import KerasStager

    out = os.fspath(out)
    model, card = load_checkpoint(checkpoint, channels=channels, fs=fs, seq_len=seq_len)
    sha = _sha256(checkpoint)
    os.makedirs(out, exist_ok=True)
    exports = _read_out_card(out, sha, overwrite)
    exporter = _Exporter(model, card, out, int(batch_size), int(latency_runs), verbose, bool(grouped_encoder))
    started = time.time()
    report = {
        "checkpoint": os.path.abspath(checkpoint), "sha256": sha,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": _versions(), "batch_size": int(batch_size),
        "thresholds": {"probability_tolerance": PROBABILITY_TOLERANCE, "min_agreement": MIN_AGREEMENT,
                       "max_macro_f1_change": MAX_MACRO_F1_CHANGE},
        "formats": {}, "failures": {},
    }
    try:
        exporter.say(f"parity data: {parity_source}")
        data = parity_data(card, parity_source, parity_nights, night_epochs, calibration_sequences,
                           max_heldout_sequences)
        report["parity_data"] = data.info
        reference = KerasStager(checkpoint, card, model=model).predict_proba(data.x)
        from stmd_keras.evaluation import evaluate

        keras_scores = evaluate(data.y.ravel(), reference.argmax(-1).ravel())
        report["keras"] = {"macro_f1": keras_scores["macro_f1"], "accuracy": keras_scores["accuracy"]}

        tflite = [f for f in formats if f.startswith("tflite")]
        fastest = None
        if lstm_form == "fastest" and tflite and _recurrent_layers(model):
            fastest, report["lstm_forms"] = _fastest_form(exporter, model, data, reference)
        report["lstm_form"] = {"requested": lstm_form, "fastest": fastest}

        for fmt in formats:
            exporter.say(f"{fmt} ...")
            name = OUTPUT_NAMES[fmt]
            try:
                if fmt == "savedmodel":
                    entry = exporter.export_saved_model(data, reference)
                else:
                    form, why = _form_for(fmt, lstm_form, model, fastest)
                    entry = exporter.export_tflite(fmt, form, data, reference)
                    entry["lstm_form_why"] = why
            except ExportError as e:
                # No file for a failed format, not even one from an earlier export.
                _remove(os.path.join(out, name))
                exports.pop(name, None)
                report["failures"][fmt] = str(e)
                report["formats"][fmt] = {"format": fmt, "ok": False, "error": str(e)}
                exporter.say(f"  FAILED: {e}")
            else:
                entry["ok"] = True
                exports[name] = entry
                report["formats"][fmt] = dict(entry, file=name)
                exporter.say("  " + _summary_line(fmt, entry))
            write_json(os.path.join(out, MODEL_CARD), dict(
                card, exported_from={"path": os.path.abspath(checkpoint), "sha256": sha}, exports=exports))
    finally:
        exporter.close()
    report["seconds"] = round(time.time() - started, 1)
    write_json(os.path.join(out, "export_report.json"), report)
    write_text(os.path.join(out, "export_report.md"), report_markdown(report))
    if report["failures"]:
        raise ExportError(
            f"{len(report['failures'])} of {len(formats)} format(s) failed; no file was written for them "
            f"(report: {os.path.join(out, 'export_report.md')}):\n"
            + "\n".join(f"  {msg}" for msg in report["failures"].values())
        )
    return report


def _fastest_form(exporter, model, data, reference):
    """Converts fp32 in every applicable LSTM form and times it.

    Returns `(fastest correct form or None, {form: timings or error})`.
    """
    candidates = ["while", "unroll"]
    if not any(map(fused_lstm_problem, _recurrent_layers(model))):
        candidates.insert(0, "fused")
    timings, stagers = {}, {}
    for form in candidates:
        exporter.say(f"lstm form {form} ...")
        path = os.path.join(exporter.tmp, f"{form}.tflite")
        try:
            with open(path, "wb") as f:
                f.write(convert_tflite(exporter.conversion_dir(form), "tflite-fp32"))
            card = dict(exporter.card, format="tflite-fp32", batch_size=exporter.batch_size)
            _, found = exporter.check_tflite("tflite-fp32", path, card, data, reference, time_it=False)
        except Exception as e:  # a form that fails is reported, not fatal
            timings[form] = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            continue
        timings[form] = {"ok": True, "bytes": os.path.getsize(path), "latency_ms_per_batch": {}}
        stagers.update({(form, backend): stager for backend, stager in found.items()})
    if not stagers:
        return None, timings
    # Timed together, interleaved, so that load from other processes hits all alike.
    latency = interleaved_latency(stagers, exporter.timing_batch(data), max(exporter.latency_runs, 20))
    for (form, backend), ms in latency.items():
        timings[form]["latency_ms_per_batch"][backend] = ms
    best = min(latency, key=latency.get)[0]
    return best, timings


def _summary_line(fmt, entry):
    parts = [f"{entry['bytes'] / 1e6:.2f} MB"]
    for backend, p in entry["parity"].items():
        parts.append(f"{backend}: max|Δp| {p['max_abs_prob_diff']:.2e}, agreement {100 * p['agreement']:.2f} %, "
                     f"macro-F1 {p['macro_f1']:.4f} (Keras {p['keras_macro_f1']:.4f})")
    for backend, ms in entry.get("latency_ms_per_batch", {}).items():
        parts.append(f"{backend} {ms:.2f} ms/batch")
    return " | ".join(parts)


def report_markdown(report) -> str:
    """The export report as a Markdown page."""
    data = report["parity_data"]
    lines = [
        "# Export report", "",
        f"- checkpoint: `{report['checkpoint']}` (sha256 `{report['sha256'][:16]}…`)",
        f"- created: {report['created']}; versions: "
        + ", ".join(f"{k} {v}" for k, v in report["versions"].items()),
        f"- TFLite batch size: {report['batch_size']}; --lstm-form {report['lstm_form']['requested']}"
        + (f" (fastest measured: {report['lstm_form']['fastest']})" if report["lstm_form"].get("fastest") else ""),
        f"- parity data: {data.get('kind', data['source'])} `{data['source']}`; "
        f"{data['calibration_sequences']} calibration sequences (subjects {data['calibration_subjects']}), "
        f"{data['heldout_sequences']} held-out sequences = {data['heldout_epochs']} epochs "
        f"(subjects {data['heldout_subjects']})",
        f"- Keras on the held-out epochs: macro-F1 {report['keras']['macro_f1']:.4f}, "
        f"accuracy {report['keras']['accuracy']:.4f}",
        f"- required: float formats max |Δprob| <= {report['thresholds']['probability_tolerance']:g}; "
        f"fp16/dynamic/int8 agreement >= {100 * report['thresholds']['min_agreement']:g} % and "
        f"|Δ macro-F1| <= {100 * report['thresholds']['max_macro_f1_change']:g} point", "",
        "| format | file | size | backend | max abs Δprob | agreement | macro-F1 (Δ points) | "
        "ms / batch | LSTM | result |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fmt, entry in report["formats"].items():
        if not entry.get("ok"):
            error = entry["error"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {fmt} | — | — | — | — | — | — | — | — | **FAILED**: {error} |")
            continue
        for backend, p in entry["parity"].items():
            ms = entry.get("latency_ms_per_batch", {}).get(backend)
            chosen = " (default)" if entry.get("xnnpack") == (backend == "xnnpack") and backend != "tensorflow" else ""
            lines.append(
                f"| {fmt} | `{entry['file']}` | {entry['bytes'] / 1e6:.3f} MB | {backend}{chosen} | "
                f"{p['max_abs_prob_diff']:.2e} | {100 * p['agreement']:.2f} % | {p['macro_f1']:.4f} "
                f"({100 * p['macro_f1_change']:+.2f}) | {'' if ms is None else f'{ms:.2f}'} | "
                f"{entry['lstm_form']} | ok |"
            )
    if report.get("lstm_forms"):
        lines += ["", "## LSTM forms (tflite-fp32, one thread)", "",
                  "| form | ms / batch (XNNPACK) | ms / batch (builtin) | size | result |", "|---|---|---|---|---|"]
        for form, t in report["lstm_forms"].items():
            if t["ok"]:
                ms = t["latency_ms_per_batch"]
                lines.append(f"| {form} | {ms.get('xnnpack', '')} | {ms.get('builtin', '')} | "
                             f"{t['bytes'] / 1e6:.3f} MB | ok |")
            else:
                lines.append(f"| {form} | | | | failed: {t['error']} |".replace("\n", " "))
    lines.append("")
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------
def add_arguments(parser):
    """Adds the `stmd export` arguments to `parser`."""
    parser.add_argument("checkpoint", help="a .keras model with its stmd_model.json beside it")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help=f"comma-separated, any of {','.join(FORMATS)} (default: all)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="fixed batch of the TFLite files (default 1)")
    parser.add_argument("--lstm-form", choices=LSTM_FORMS, default="auto",
                        help="how TFLite computes the LSTM: auto (the fused kernel when it can, else "
                             "while / unroll for int8), fused, while (stateless), unroll, or fastest "
                             "(time the forms here)")
    parser.add_argument("--parity-data", default="synthetic",
                        help="'synthetic' (default) or a folder of prepared *.h5 cache files / *.npz nights")
    parser.add_argument("--parity-nights", type=int, default=5, help="synthetic nights (default 5)")
    parser.add_argument("--night-epochs", type=int, default=300, help="epochs per synthetic night (default 300)")
    parser.add_argument("--calibration-sequences", type=int, default=100,
                        help="int8 representative sequences (default 100)")
    parser.add_argument("--max-heldout-sequences", type=int, default=100,
                        help="held-out parity sequences at most (default 100)")
    parser.add_argument("--latency-runs", type=int, default=20,
                        help="timed runs per TFLite file and backend (default 20; 0: none)")
    parser.add_argument("--channels", nargs="+", default=None,
                        help="channel names, in order (only for a checkpoint without a model card)")
    parser.add_argument("--fs", type=float, default=None, help="sampling rate in Hz (without a card)")
    parser.add_argument("--seq-len", type=int, default=None, help="epochs per sequence (without a card)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an export of another model in --out")
    parser.add_argument("--per-channel-encoder", action="store_true",
                        help="TFLite: keep one op per channel stream instead of grouped convolutions")
    parser.add_argument("--quiet", action="store_true", help="print only the result")
    return parser


def run_from_args(args, rest=None):
    """Runs `stmd export` with parsed `args`; errors exit with a message."""
    from stmd_keras.data.recording import DataError

    if rest:
        raise SystemExit(f"stmd export: unrecognised arguments {rest}")
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    try:
        report = export_checkpoint(
            args.checkpoint, args.out, formats=formats, batch_size=args.batch_size,
            lstm_form=args.lstm_form, parity_source=args.parity_data, parity_nights=args.parity_nights,
            night_epochs=args.night_epochs, calibration_sequences=args.calibration_sequences,
            max_heldout_sequences=args.max_heldout_sequences, latency_runs=args.latency_runs,
            channels=args.channels, fs=args.fs, seq_len=args.seq_len, overwrite=args.overwrite,
            verbose=not args.quiet, grouped_encoder=not args.per_channel_encoder,
        )
    except (ExportError, ModelCardError, DataError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f"stmd export: {e}") from None
    for fmt, entry in report["formats"].items():
        print(f"{os.path.join(args.out, entry['file'])}: {fmt}, {_summary_line(fmt, entry)}")
    print(f"report: {os.path.join(args.out, 'export_report.md')}")
    return report
