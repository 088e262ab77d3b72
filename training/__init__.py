"""``training``: train the DenseNet121 chest X-ray classifier and export it to the cxrviewer ONNX contract.

This is the only package that imports TensorFlow/Keras/tf2onnx, and it imports them lazily, inside
the functions that need them, so ``cxr-train --help`` and the data modules load without them.
It uses the app's own preprocessing (:mod:`cxrviewer.preprocess`) and metadata contract
(:mod:`cxrviewer.contract`): one implementation of each. See docs/training.md and
docs/model-format.md.
"""

from __future__ import annotations

__all__: list[str] = []
