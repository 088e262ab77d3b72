"""The Keras model: DenseNet121 → GlobalAveragePooling2D → Dense(C, sigmoid), and its export twin.

Every layer is named (:mod:`training.layer_names`): Keras' DenseNet121 names its last feature map
``relu`` (after the final ``bn``); the head is ``avg_pool`` then ``predictions``; the input is
``image``. The export model shares these layers and adds the in-graph Grad-CAM (:class:`GradCam`),
so one forward pass gives ``probs``, ``cams`` and ``features`` (docs/model-format.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

from cxrviewer import contract

from .errors import TrainingError
from .layer_names import GRADCAM_LAYER, HEAD_LAYER, POOL_LAYER
from .weights import load_weights

logger = logging.getLogger(__name__)


def check_input_size(size: int) -> int:
    """Input sizes must be multiples of 32 (DenseNet121's stride), at least 32."""
    s = int(size)
    if s < 32 or s % contract.CAM_STRIDE:
        raise TrainingError(
            f"--input-size {size} does not work: DenseNet121 needs a multiple of {contract.CAM_STRIDE} "
            "of at least 32 (e.g. 224, 320, 512)."
        )
    return s


def build_classifier(num_classes: int, input_size: int, weights: str | Path | None = None):
    """The functional training model. ``weights`` is a local ``.h5`` file (never downloaded).

    The file may hold the backbone only (Keras' ImageNet ``..._notop.h5``) or a whole
    DenseNet121+GAP+Dense (CheXNet-Keras, the course's ``pretrained_model.h5``); its head is
    loaded only when its class count matches.
    """
    import keras
    from keras import layers

    s = check_input_size(input_size)
    image = keras.Input(shape=(s, s, 3), name=contract.INPUT_NAME)
    base = keras.applications.DenseNet121(include_top=False, weights=None, input_tensor=image)
    pooled = layers.GlobalAveragePooling2D(name=POOL_LAYER)(base.output)
    probs = layers.Dense(num_classes, activation="sigmoid", name=HEAD_LAYER)(pooled)
    model = keras.Model(image, probs, name="cxr_densenet121")
    if weights is not None:
        load_weights(model, weights, head="optional")
    return model


def gradcam_layer_class():
    """The :class:`GradCam` Keras layer class (built on first use so this module imports without Keras)."""
    global _GRADCAM
    if _GRADCAM is None:
        import keras
        from keras import ops

        class GradCam(keras.layers.Layer):
            """Every class's Grad-CAM map of the class score (the logit), without autograd.

            For GAP → Dense, the logit is z_c = Σ_k w_kc · mean_ij A_ijk + b_c, so
            ∂z_c/∂A_ijk = w_kc/(h·w) at every position: the Grad-CAM weights are
            α_kc = w_kc/(h·w) and the map is ReLU(Σ_k α_kc A_k) = ReLU(A·W)_c/(h·w) — the class
            activation map of Zhou et al. 2016, independent of the probability (format version 2,
            docs/model-format.md). Input: A [N, h, w, K]; output [N, h, w, C].
            """

            def __init__(self, dense, **kwargs):
                super().__init__(**kwargs)
                self.dense = dense

            def call(self, feature_map):
                h, w = feature_map.shape[1], feature_map.shape[2]
                if h is None or w is None:
                    shape = ops.shape(feature_map)
                    hw = ops.cast(shape[1] * shape[2], feature_map.dtype)
                else:
                    hw = float(h * w)
                return ops.relu(ops.matmul(feature_map, self.dense.kernel)) / hw

            def compute_output_shape(self, feature_map_shape):
                return (*feature_map_shape[:3], self.dense.units)

        _GRADCAM = GradCam
    return _GRADCAM


_GRADCAM = None


def build_export_model(model):
    """A functional model sharing ``model``'s layers with outputs ``probs``, ``cams``, ``features``."""
    import keras

    try:
        feature_map = model.get_layer(contract.CAM_LAYER).output
        pooled = model.get_layer(POOL_LAYER).output
        head = model.get_layer(HEAD_LAYER)
    except ValueError as exc:
        raise TrainingError(
            f"The model lacks a layer the export needs ({exc}). Only DenseNet121 + '{POOL_LAYER}' + "
            f"'{HEAD_LAYER}' models made by cxr-train can be exported."
        ) from None
    probs = head.output
    cams = gradcam_layer_class()(head, name=GRADCAM_LAYER)(feature_map)
    return keras.Model(
        model.input,
        {contract.PROBS: probs, contract.CAMS: cams, contract.FEATURES: pooled},
        name="cxr_export",
    )


def load_model(path: str | Path):
    """A trained ``model.keras`` (without its optimizer and loss: they are not needed after training)."""
    import keras

    p = Path(path)
    if not p.is_file():
        raise TrainingError(f"{p} not found: train first with `cxr-train fit ... --out {p.parent}`.")
    from .loss import loss_class

    loss_class()  # registers WeightedBCE for files saved with their compile config
    return keras.models.load_model(p, compile=False)
