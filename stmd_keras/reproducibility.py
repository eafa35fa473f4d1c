"""Seeding: the same seed gives the same weights, batches and metrics."""

import hashlib

import keras
import numpy as np
import tensorflow as tf


def set_seed(seed):
    """Seeds Python, NumPy and TensorFlow and makes TF ops deterministic."""
    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def weights_fingerprint(model):
    """A short hash of `model`'s weights (values, shapes, dtypes, order).

    Two models have the same fingerprint only if their weights are equal bit
    for bit, so results that record it can be checked to come from the same
    trained model (e.g. rows of a table computed in different sessions).

    >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, kernel_initializer="ones")])
    >>> weights_fingerprint(m) == weights_fingerprint(m)
    True
    """
    digest = hashlib.sha256()
    for weight in model.get_weights():
        array = np.ascontiguousarray(weight)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]
