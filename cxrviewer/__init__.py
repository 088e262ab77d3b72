"""cxrviewer: a chest X-ray viewer and batch scorer with per-finding Grad-CAM heatmaps.

The package root is headless: it imports numpy, pydicom, OpenCV and ONNX Runtime only.
Qt lives in :mod:`cxrviewer.ui`; TensorFlow lives in the separate ``training`` package.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
