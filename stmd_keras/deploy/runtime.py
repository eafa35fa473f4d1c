"""One way to run a sleep stager, whatever form it was saved in.

`load_stager(path)` opens a trained or exported model and returns a
`Stager` whose `predict_proba(x)` maps preprocessed sequences
`(N, L, C, S)` to stage probabilities `(N, L, 5)`:

* a `.keras` file (a training checkpoint, `stmd_keras.runner.training.save_model`):
  the model is called inside one compiled `tf.function` (an eager call per
  batch is ~40x slower);
* a SavedModel folder written by `stmd export` (`model.export`): its `serve`
  endpoint;
* a `.tflite` file written by `stmd export`: the LiteRT interpreter
  (`ai_edge_litert`, the successor of the deprecated `tf.lite.Interpreter`),
  `num_threads` threads. TensorFlow is not imported for this form, so a
  deployment needs only `ai-edge-litert` and numpy.

Every form comes with its model card, `stmd_model.json`, which says what the
input must be (channel names and order, sampling rate, sequence length,
preprocessing) and, for exported files, how the file was checked:

* `.keras` and `.tflite`: the card lies beside the file. A folder written by
  `stmd export` has one card for all its files, with an `exports` entry per
  file (format, fixed batch size, parity results); the `Stager.card` of a
  file is the card with that entry merged in.
* SavedModel: the card inside the folder (else beside it).

A TFLite model has a fixed batch (builtin-op TFLite needs one for the
LSTM); `predict_proba` cuts any `N` into batches of that size and pads the
last one.

Example:

>>> stager = load_stager("export/model_int8.tflite")
>>> x, _ = sequences.get(range(len(sequences)))   # prepared as stager.card says
>>> probs = stager.predict_proba(x)               # (N, L, 5)
>>> hypnogram = probs.argmax(-1)
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

MODEL_CARD = "stmd_model.json"
"""The model card's file name (`stmd_keras.runner.training.MODEL_CARD`)."""

STAGES = ("W", "N1", "N2", "N3", "REM")

EPOCH_SEC = 30.0

KERAS_BATCH = 32
"""Sequences per call for the Keras and SavedModel forms (any batch works)."""


class ModelCardError(ValueError):
    """A model card is missing, unreadable, or does not fit its model."""


def find_card(path) -> str | None:
    """The path of the model card that belongs to the model at `path`, or None."""
    path = os.path.abspath(os.fspath(path))
    candidates = []
    if os.path.isdir(path):
        candidates.append(os.path.join(path, MODEL_CARD))
    candidates.append(os.path.join(os.path.dirname(path), MODEL_CARD))
    return next((c for c in candidates if os.path.isfile(c)), None)


def read_card(path) -> dict:
    """Reads a model card (JSON) and checks the fields every stager needs.

    Raises
    ------
    ModelCardError
        The file is not JSON, or `channels`, `fs` or `seq_len` is missing or
        malformed.
    """
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            card = json.load(f)
    except (OSError, ValueError) as e:
        raise ModelCardError(f"Cannot read the model card {path}: {e}") from None
    if not isinstance(card, dict):
        raise ModelCardError(f"{path}: a model card is a JSON object; found {type(card).__name__}.")
    check_card(card, where=path)
    return card


def check_card(card, where="model card"):
    """Raises `ModelCardError` unless `card` has usable `channels`, `fs`, `seq_len`."""
    missing = [k for k in ("channels", "fs", "seq_len") if card.get(k) is None]
    if missing:
        raise ModelCardError(
            f"{where}: the model card lacks {missing}; it must say which channels (in order), "
            "sampling rate (Hz) and sequence length (epochs) the model expects."
        )
    channels = card["channels"]
    if isinstance(channels, str) or not channels or not all(isinstance(c, str) for c in channels):
        raise ModelCardError(f"{where}: `channels` must be a non-empty list of names. Received {channels!r}")
    try:
        fs, seq_len = float(card["fs"]), int(card["seq_len"])
        epoch_sec = float(card.get("epoch_sec") or EPOCH_SEC)
    except (TypeError, ValueError):
        raise ModelCardError(
            f"{where}: `fs`, `seq_len` and `epoch_sec` must be numbers. Received fs={card['fs']!r}, "
            f"seq_len={card['seq_len']!r}, epoch_sec={card.get('epoch_sec')!r}"
        ) from None
    if fs <= 0 or seq_len < 1 or epoch_sec <= 0 or seq_len != card["seq_len"]:
        raise ModelCardError(
            f"{where}: needs fs > 0, an integer seq_len >= 1 and epoch_sec > 0. "
            f"Received fs={card['fs']!r}, seq_len={card['seq_len']!r}, epoch_sec={epoch_sec!r}"
        )


def card_for(path) -> dict:
    """The model card of the model at `path` (see the module docstring).

    Raises
    ------
    ModelCardError
        No `stmd_model.json` beside (or inside) `path`, or, for a file of an
        export folder, a card without an entry for that file.
    """
    found = find_card(path)
    if found is None:
        raise ModelCardError(
            f"No model card ({MODEL_CARD}) found for {path}: it should lie beside the model "
            "(inside a SavedModel folder). The card says which channels, sampling rate, sequence "
            "length and preprocessing the model expects; `save_model` and `stmd export` write it. "
            "Pass `card=` to `load_stager` to supply one."
        )
    card = read_card(found)
    exports = card.pop("exports", None)
    if exports is not None and not os.path.isdir(path):
        name = os.path.basename(os.fspath(path))
        if name not in exports:
            raise ModelCardError(
                f"{found} lists the exported files {sorted(exports)} but not {name!r}: the file "
                "was not written (or not checked) by the export that wrote this card. Export again."
            )
        card.update(exports[name])
    return card


class Stager:
    """A sleep stager: preprocessed sequences in, stage probabilities out.

    Use `load_stager` to get one. Subclasses implement `_predict_batch`.

    Attributes:
        card: the model card (channels, fs, seq_len, stages, preprocess ...;
            plus format, batch_size and parity for an exported file).
        path: the model's path.
        format: "keras", "savedmodel" or "tflite-..." (the card's `format`).
        seq_len: epochs per sequence L.
        n_channels: channels C, in the order of `card["channels"]`.
        fs: sampling rate in Hz.
        epoch_samples: samples per epoch S (`fs * epoch_sec`).
        batch_size: the fixed batch of a TFLite model; None when any batch works.
    """

    format = None

    def __init__(self, path, card, batch_size=None):
        check_card(card, where=f"model card of {path}")
        self.path = os.fspath(path)
        self.card = dict(card)
        self.seq_len = int(card["seq_len"])
        self.n_channels = len(card["channels"])
        self.fs = float(card["fs"])
        self.epoch_samples = int(round(self.fs * float(card.get("epoch_sec") or EPOCH_SEC)))
        self.stages = tuple(card.get("stages") or STAGES)
        self.batch_size = batch_size

    @property
    def input_shape(self) -> tuple:
        """`(L, C, S)`, the shape of one sequence."""
        return (self.seq_len, self.n_channels, self.epoch_samples)

    def __repr__(self):
        return (f"{type(self).__name__}({self.path!r}, format={self.format!r}, "
                f"input (N, {self.seq_len}, {self.n_channels}, {self.epoch_samples}), "
                f"batch_size={self.batch_size})")

    def _check_input(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise ValueError(
                f"{self.path} expects sequences of shape (N, {self.seq_len}, {self.n_channels}, "
                f"{self.epoch_samples}) = (N, seq_len, channels {list(self.card['channels'])}, "
                f"{self.fs:g} Hz x 30 s). Received shape {x.shape}."
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise ValueError(f"Signals must be floating point. Received dtype {x.dtype}.")
        return np.ascontiguousarray(x, dtype=np.float32)

    def predict_proba(self, x) -> np.ndarray:
        """Stage probabilities of every epoch of every sequence.

        Parameters
        ----------
        x : float array (N, L, C, S)
            Sequences prepared as the card says (channels in its order,
            resampled to `fs`, filtered and standardised), e.g.
            `SequenceSet.get(indices)[0]`.

        Returns
        -------
        float32 array (N, L, 5)
            Probabilities in `card["stages"]` order (W, N1, N2, N3, REM).
        """
        x = self._check_input(x)
        n = x.shape[0]
        step = self.batch_size or KERAS_BATCH
        out = np.empty((n, self.seq_len, len(self.stages)), np.float32)
        for start in range(0, n, step):
            chunk = x[start:start + step]
            k = chunk.shape[0]
            if self.batch_size and k < self.batch_size:
                # A fixed-batch model: pad the last chunk and drop the padding.
                chunk = np.concatenate([chunk, np.zeros((self.batch_size - k,) + chunk.shape[1:], np.float32)])
            out[start:start + k] = self._predict_batch(chunk)[:k]
        return out

    def _predict_batch(self, x) -> np.ndarray:
        raise NotImplementedError


def _keras_probabilities(model, x):
    """Softmax of a Keras model's logits (its output, or its `"logits"` output)."""
    import tensorflow as tf

    out = model(x, training=False)
    logits = out["logits"] if isinstance(out, dict) else out
    return tf.nn.softmax(logits, axis=-1)


class KerasStager(Stager):
    """A `.keras` checkpoint whose model outputs `{"logits": ...}` (or logits)."""

    format = "keras"

    def __init__(self, path, card, model=None):
        super().__init__(path, card)
        import keras
        import tensorflow as tf

        import stmd_keras.models  # noqa: F401  (registers the custom layers)

        self.model = model if model is not None else keras.saving.load_model(path, safe_mode=True)
        shape = tuple(self.model.input.shape[1:])
        if shape != self.input_shape:
            raise ModelCardError(
                f"{path}: the model takes sequences {shape} but its card says {self.input_shape} "
                "(seq_len, channels, fs x epoch_sec). The card belongs to another model."
            )
        # One trace for every batch size: a compiled graph, never eager calls. A
        # partial, not a closure: TF counts traces per code object, so closures
        # of several stagers would look like retracing and warn.
        self._fn = tf.function(
            functools.partial(_keras_probabilities, self.model),
            input_signature=[tf.TensorSpec((None,) + shape, tf.float32)],
        )

    def _predict_batch(self, x):
        return self._fn(x).numpy()


class SavedModelStager(Stager):
    """A SavedModel folder with a `serve` endpoint returning probabilities."""

    format = "savedmodel"

    def __init__(self, path, card):
        super().__init__(path, card)
        import tensorflow as tf

        self._loaded = tf.saved_model.load(os.fspath(path))
        if not hasattr(self._loaded, "serve"):
            raise ModelCardError(
                f"{path}: this SavedModel has no `serve` endpoint; export it with `stmd export`."
            )
        self._tf = tf

    def _predict_batch(self, x):
        out = self._loaded.serve(self._tf.constant(x))
        if isinstance(out, dict):
            out = next(iter(out.values()))
        return np.asarray(out)


class TFLiteStager(Stager):
    """A `.tflite` file run by the LiteRT interpreter.

    Args:
        path: the `.tflite` file.
        card: its model card.
        num_threads: interpreter threads (default 1).
        xnnpack: use the XNNPACK delegate (LiteRT's default CPU backend).
            None: the card's `xnnpack` (the faster setting measured at
            export), else True.
    """

    def __init__(self, path, card, num_threads=1, xnnpack=None):
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:
            raise ImportError(
                "Running a .tflite model needs the LiteRT interpreter: pip install ai-edge-litert"
            ) from None
        if xnnpack is None:
            xnnpack = card.get("xnnpack", True)
        resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        self.format = card.get("format", "tflite")
        self.xnnpack = bool(xnnpack)
        self.num_threads = num_threads
        self.interpreter = Interpreter(
            model_path=os.fspath(path), num_threads=num_threads, experimental_op_resolver_type=resolver
        )
        self.interpreter.allocate_tensors()
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise ModelCardError(f"{path}: expected one input tensor (the signals); found {len(inputs)}.")
        self._input = inputs[0]
        probs = [d for d in outputs if len(d["shape"]) == 3]
        if not probs:
            raise ModelCardError(f"{path}: no (batch, seq_len, stages) output among {len(outputs)} outputs.")
        self._output = probs[0]
        shape = tuple(int(s) for s in self._input["shape"])
        super().__init__(path, card, batch_size=shape[0])
        if shape[1:] != self.input_shape:
            raise ModelCardError(
                f"{path}: the model takes sequences {shape[1:]} but its card says {self.input_shape} "
                "(seq_len, channels, fs x epoch_sec). The card belongs to another model."
            )

    def _predict_batch(self, x):
        it, d = self.interpreter, self._input
        if d["dtype"] != np.float32:  # integer input: quantise with the tensor's scale
            scale, zero = d["quantization"]
            info = np.iinfo(d["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(d["dtype"])
        it.set_tensor(d["index"], x)
        # A fused LSTM op keeps its state in variable tensors across invokes;
        # every batch starts from a zero state, as in Keras (costs < 1 us).
        it.reset_all_variables()
        it.invoke()
        y = it.get_tensor(self._output["index"])
        if self._output["dtype"] != np.float32:
            scale, zero = self._output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return np.array(y, dtype=np.float32)


def load_stager(path, num_threads=1, card=None, xnnpack=None) -> Stager:
    """Opens a `.keras` file, a SavedModel folder or a `.tflite` file as a `Stager`.

    Parameters
    ----------
    path : str or path
        The model.
    num_threads : int
        Interpreter threads for a `.tflite` model (default 1).
    card : dict, optional
        The model card; by default read from `stmd_model.json` beside the
        model (inside a SavedModel folder).
    xnnpack : bool, optional
        TFLite only: use the XNNPACK delegate; default as measured at export.

    Raises
    ------
    ModelCardError
        No card, or a card that does not fit the model.
    FileNotFoundError, ValueError
        No model at `path`, or not one of the three forms.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model at {path}.")
    if card is None:
        card = card_for(path)
    else:
        check_card(card, where="the card passed to load_stager")
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "saved_model.pb")):
            raise ValueError(f"{path} is a folder but not a SavedModel (no saved_model.pb).")
        return SavedModelStager(path, card)
    if path.endswith(".keras"):
        return KerasStager(path, card)
    if path.endswith(".tflite"):
        return TFLiteStager(path, card, num_threads=num_threads, xnnpack=xnnpack)
    raise ValueError(
        f"{path}: not a model this loads. Expected a .keras file, a SavedModel folder or a .tflite file."
    )
