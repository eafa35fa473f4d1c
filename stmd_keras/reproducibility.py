"""Seeding: the same seed gives the same weights, batches and metrics."""

import keras
import tensorflow as tf


def set_seed(seed):
    """Seeds Python, NumPy and TensorFlow and makes TF ops deterministic."""
    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()
