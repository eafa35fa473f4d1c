"""Loss terms on logits shared by the training engines."""

import tensorflow as tf
from keras import ops


def classification_loss(labels, logits):
    """Cross-entropy (Eqs. 10-11), mean over every epoch of every sequence.

    Args:
        labels: int tensor `(B, L)`.
        logits: float tensor `(B, L, K)`.
    """
    ce = ops.sparse_categorical_crossentropy(ops.cast(labels, "int32"), logits, from_logits=True)
    return ops.mean(ce)


def kd_loss(student_logits, teacher_logits, temperature=4.0):
    """Hinton et al. (2015): `T^2 * KL(softmax(t / T) || softmax(s / T))`.

    Averaged over epochs; the `T^2` factor keeps gradient magnitudes
    comparable across temperatures.
    """
    t = ops.cast(temperature, "float32")
    log_p_t = ops.log_softmax(ops.cast(teacher_logits, "float32") / t, axis=-1)
    log_p_s = ops.log_softmax(ops.cast(student_logits, "float32") / t, axis=-1)
    kl = ops.sum(ops.exp(log_p_t) * (log_p_t - log_p_s), axis=-1)
    return ops.mean(kl) * t * t


def scale_for_replicas(loss):
    """Divides a per-replica mean loss so that summed replica gradients average."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss
