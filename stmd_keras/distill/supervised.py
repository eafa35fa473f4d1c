"""Training one model on its own with cross-entropy (teacher, no-KD student)."""

import keras
import tensorflow as tf

from stmd_keras.distill.base import LossTrackers, StagingMetrics, unpack
from stmd_keras.distill.objectives import classification_loss, scale_for_replicas


class SupervisedTrainer(keras.Model):
    """Trains `model` (a stager with a "logits" output) with cross-entropy.

    Used to pre-train the teacher and for the "Student (no KD)" row.

    >>> trainer = SupervisedTrainer(cnn_rnn_student())
    >>> trainer.compile(keras.optimizers.Adam(1e-4))
    >>> trainer.fit(train_ds, epochs=25, steps_per_epoch=n)

    Args:
        model: a `keras.Model` returning `{"logits": (B, L, K), ...}`.
    """

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        self.model = model
        self.trainees = (model,)
        self.loss_trackers = LossTrackers(["loss"])
        self.staging = StagingMetrics("")
        self.built = True  # the wrapped models are built functional models

    def call(self, x, training=False):
        return self.model(x, training=training)["logits"]

    def compile(self, optimizer=None, **kwargs):
        optimizer = optimizer or keras.optimizers.Adam(1e-4)
        super().compile(optimizer=optimizer, **kwargs)
        optimizer.build(self.model.trainable_variables)

    @property
    def metrics(self):
        return self.loss_trackers.metrics + self.staging.metrics

    def train_step(self, data):
        x, y = unpack(data)
        with tf.GradientTape() as tape:
            logits = self.model(x, training=True)["logits"]
            loss = classification_loss(y, logits)
        variables = self.model.trainable_variables
        grads = tape.gradient(scale_for_replicas(loss), variables)
        self.optimizer.apply_gradients(zip(grads, variables))
        self.loss_trackers.update({"loss": loss})
        self.staging.update(y, logits)
        return {m.name: m.result() for m in self.metrics}

    def test_step(self, data):
        x, y = unpack(data)
        logits = self.model(x, training=False)["logits"]
        self.loss_trackers.update({"loss": classification_loss(y, logits)})
        self.staging.update(y, logits)
        return {m.name: m.result() for m in self.metrics}
