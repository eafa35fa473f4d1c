"""Sleep graph: the spatial knowledge of one model (paper Section 4.1, Eq. 5)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="stmd_keras")
class SleepGraph(keras.layers.Layer):
    """Row-softmax of the cosine similarity between channels, per epoch.

    For every epoch of a sequence, each of the `C` channels is a node `v_i`
    with feature vector of length `F`; the edge weights are

        e_ij = exp(cos(v_i, v_j)) / sum_k exp(cos(v_i, v_k))     (Eq. 5)

    so each row `e_i` is a probability distribution over the `C` channels.
    A channel whose features are all zero has cosine 0 with every channel
    (instead of NaN), so its row is uniform.

    Example:

    >>> features = np.random.rand(2, 20, 6, 128).astype("float32")
    >>> graph = SleepGraph()(features)
    >>> graph.shape
    (2, 20, 6, 6)

    Args:
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        4D tensor `(batch_size, sequence_length, channels, features)`.

    Output shape:
        4D tensor `(batch_size, sequence_length, channels, channels)`; rows
        sum to 1 over the last axis.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "SleepGraph expects features of shape (batch, epochs, "
                f"channels, features). Received: input_shape={input_shape}"
            )
        self.built = True

    def call(self, inputs):
        square_sum = ops.sum(ops.square(inputs), axis=-1, keepdims=True)
        # Guard as in keras.ops.normalize: a zero-norm channel becomes the zero
        # vector (cosine 0 with everything) and its gradient stays finite.
        unit = inputs * ops.rsqrt(ops.maximum(square_sum, 1e-12))
        cosine = ops.matmul(unit, ops.swapaxes(unit, -1, -2))
        # cosine is in [-1, 1], so the softmax cannot overflow.
        return ops.softmax(cosine, axis=-1)

    def compute_output_shape(self, input_shape):
        batch, epochs, channels, _ = input_shape
        return (batch, epochs, channels, channels)

    def get_config(self):
        return super().get_config()
