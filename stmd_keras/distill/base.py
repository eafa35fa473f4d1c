"""Shared machinery of the training engines (metrics, prediction, configs)."""

import keras
from keras import ops

from stmd_keras.models.cnn_rnn import N_CLASSES


class StagingMetrics:
    """Loss means, accuracy and macro-F1 for one model, named with a prefix."""

    def __init__(self, prefix, n_classes=N_CLASSES):
        p = f"{prefix}_" if prefix else ""
        self.n_classes = n_classes
        self.accuracy = keras.metrics.SparseCategoricalAccuracy(name=f"{p}accuracy")
        self.macro_f1 = keras.metrics.F1Score(average="macro", name=f"{p}macro_f1")

    def update(self, labels, logits):
        y = ops.reshape(ops.cast(labels, "int32"), (-1,))
        z = ops.reshape(logits, (-1, self.n_classes))
        self.accuracy.update_state(y, z)
        self.macro_f1.update_state(ops.one_hot(y, self.n_classes), ops.softmax(z))

    @property
    def metrics(self):
        return [self.accuracy, self.macro_f1]


class LossTrackers:
    """A `keras.metrics.Mean` per named loss term, created on first use."""

    def __init__(self, names):
        self.trackers = {n: keras.metrics.Mean(name=n) for n in names}

    def update(self, values):
        for name, value in values.items():
            self.trackers[name].update_state(value)

    @property
    def metrics(self):
        return list(self.trackers.values())


def unpack(data):
    """Returns `(x, y)` from a `(x, y)` or `(x, y, sample_weight)` batch."""
    x, y = data[0], data[1]
    return x, y
