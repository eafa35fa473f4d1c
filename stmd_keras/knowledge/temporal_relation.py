"""Temporal relation: the temporal knowledge of one model (Section 4.2, Eq. 8)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="stmd_keras")
class TemporalRelation(keras.layers.Layer):
    """Euclidean distance between every pair of epochs of a sequence.

    Epoch `i` of a sequence is the vector `u_i` of all its `C * F` features
    (the channels flattened together); the relation is

        R_ij = ||u_i - u_j||_2                                   (Eq. 8)

    for all `i, j` in `[1, L]`. The diagonal is exactly 0 and the matrix is
    exactly symmetric.

    With `normalize=False` (the default) the distances are used as printed in
    the paper. With `normalize=True` each sequence's matrix is divided by the
    mean of its off-diagonal distances, as in Relational Knowledge
    Distillation (Park et al., 2019), so teacher and student relations are
    compared at the same scale; a sequence whose epochs are all identical
    stays all zeros.

    Example:

    >>> features = np.random.rand(2, 20, 6, 128).astype("float32")
    >>> relation = TemporalRelation()(features)
    >>> relation.shape
    (2, 20, 20)

    Args:
        normalize: Boolean, whether to divide each sequence's distance matrix
            by the mean of its off-diagonal distances. Defaults to `False`.
        **kwargs: Base layer keyword arguments, such as `name` and `dtype`.

    Input shape:
        4D tensor `(batch_size, sequence_length, channels, features)`.

    Output shape:
        3D tensor `(batch_size, sequence_length, sequence_length)`.
    """

    def __init__(self, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(normalize, bool):
            raise ValueError(
                "`normalize` must be a boolean. "
                f"Received: normalize={normalize!r}"
            )
        self.normalize = normalize

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                "TemporalRelation expects features of shape (batch, epochs, "
                f"channels, features). Received: input_shape={input_shape}"
            )
        self.built = True

    def call(self, inputs):
        # Distances do not change under a common shift; centring the epochs
        # first keeps the Gram trick below from cancelling large offsets.
        centred = inputs - ops.mean(inputs, axis=1, keepdims=True)
        gram = ops.einsum("bicf,bjcf->bij", centred, centred)
        gram = 0.5 * (gram + ops.swapaxes(gram, -1, -2))
        norms = ops.diagonal(gram, axis1=-2, axis2=-1)
        # Taking the norms from the Gram diagonal makes d2_ii exactly 0;
        # rounding can make other entries slightly negative, hence the clamp.
        square = ops.maximum(
            norms[:, :, None] + norms[:, None, :] - 2.0 * gram, 0.0
        )
        # sqrt has an infinite gradient at 0: take the root only where it is
        # safely positive and give the rest (the diagonal) a zero gradient.
        positive = square > 1e-12
        distance = ops.where(
            positive, ops.sqrt(ops.maximum(square, 1e-12)), 0.0
        )
        if self.normalize:
            epochs = ops.cast(ops.shape(distance)[-1], distance.dtype)
            pairs = ops.maximum(epochs * (epochs - 1.0), 1.0)
            # The diagonal is 0, so the full sum is the off-diagonal sum.
            mean = ops.sum(distance, axis=(1, 2), keepdims=True) / pairs
            distance = distance / ops.maximum(mean, 1e-12)
        return distance

    def compute_output_shape(self, input_shape):
        batch, epochs = input_shape[0], input_shape[1]
        return (batch, epochs, epochs)

    def get_config(self):
        config = super().get_config()
        config.update({"normalize": self.normalize})
        return config
