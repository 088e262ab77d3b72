"""Class-weighted binary cross-entropy (the CheXNet / deeplearning.ai course loss).

For each class c, with positive weight ``w_pos[c] = freq_neg[c]`` and negative weight
``w_neg[c] = freq_pos[c]`` (see :func:`training.stats.loss_weights`)::

    L = -Σ_c  mean_n [ w_pos[c] · y · log(p + ε)  +  w_neg[c] · (1 − y) · log(1 − p + ε) ]

Optional per-element weights (uncertain labels, ``--uncertain-weight``) multiply each term; the
mean still runs over the whole batch. With ε = 1 and the course's example the loss is −0.4956
(the tests keep that golden value).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence


def weighted_bce(y_true, y_pred, pos_weights, neg_weights, epsilon: float = 1e-7, sample_weight=None):
    """The scalar loss above, in Keras ops (works on NumPy arrays and tensors alike)."""
    from keras import ops

    return ops.sum(_elementwise(y_true, y_pred, pos_weights, neg_weights, epsilon, sample_weight)) / ops.cast(
        ops.shape(y_pred)[0], "float32"
    )


def _elementwise(y_true, y_pred, pos_weights, neg_weights, epsilon, sample_weight=None):
    from keras import ops

    y = ops.cast(y_true, "float32")
    p = ops.cast(y_pred, "float32")
    wp = ops.convert_to_tensor(pos_weights, "float32")
    wn = ops.convert_to_tensor(neg_weights, "float32")
    terms = -(wp * y * ops.log(p + epsilon) + wn * (1.0 - y) * ops.log(1.0 - p + epsilon))
    if sample_weight is not None:
        terms = terms * ops.cast(sample_weight, "float32")
    return terms


def make_loss(pos_weights: Sequence[float], neg_weights: Sequence[float], epsilon: float = 1e-7):
    """A serializable Keras loss object for ``model.compile``."""
    return loss_class()(pos_weights, neg_weights, epsilon)


@functools.cache
def loss_class():
    """The ``WeightedBCE`` Keras loss class, defined (and registered) on first use."""
    import keras

    @keras.saving.register_keras_serializable(package="cxrviewer")
    class WeightedBCE(keras.losses.Loss):
        """Per-element terms × C under ``sum_over_batch_size``, so Keras' mean equals Σ_c mean_n.

        Keras multiplies the (N, C) terms by the (N, C) ``sample_weight`` from the dataset (uncertain
        label weights) before reducing, and scales for tf.distribute replicas itself.
        """

        def __init__(self, pos_weights, neg_weights, epsilon=1e-7, name="weighted_bce", **kwargs):
            super().__init__(name=name, **kwargs)
            self.pos_weights = [float(v) for v in pos_weights]
            self.neg_weights = [float(v) for v in neg_weights]
            self.epsilon = float(epsilon)

        def call(self, y_true, y_pred):
            terms = _elementwise(y_true, y_pred, self.pos_weights, self.neg_weights, self.epsilon)
            return terms * float(len(self.pos_weights))

        def get_config(self):
            return {**super().get_config(), "pos_weights": self.pos_weights,
                    "neg_weights": self.neg_weights, "epsilon": self.epsilon}

    return WeightedBCE
