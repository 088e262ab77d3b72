"""Names of the layers cxr-train gives the classifier, shared by the model builder and the weight loader.

Weight files are matched to the model by layer name, and the export finds its outputs by name, so
the names live here, apart from both (a module that needs Keras and one that needs h5py). The
input (``image``) and the last feature map (``relu``, named by Keras' DenseNet121) are part of the
app's model contract: :data:`cxrviewer.contract.INPUT_NAME` and :data:`cxrviewer.contract.CAM_LAYER`.
"""

from __future__ import annotations

#: GlobalAveragePooling2D over the last feature map: its output is the exported ``features``.
POOL_LAYER = "avg_pool"
#: The Dense(C, sigmoid) head: one output per label. Files may name it otherwise (the course's
#: ``dense_1``); the weight loader then takes the one leftover Dense layer.
HEAD_LAYER = "predictions"
#: The in-graph Grad-CAM of the export model.
GRADCAM_LAYER = "gradcam"
