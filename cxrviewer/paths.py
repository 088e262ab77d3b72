"""Where bundled resources live: from a source checkout, an installed wheel, or the frozen app.

One helper for all three so that nothing else hard-codes a path:
- frozen (PyInstaller): ``sys._MEIPASS/resources``;
- source checkout: ``<repo>/resources`` next to the ``cxrviewer`` package;
- installed wheel: the ``cxrviewer.resources`` package (pyproject maps ``resources/`` onto it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .errors import ModelError

DEMO_MODEL_NAME = "cxr-demo-densenet121-320.onnx"
MODEL_ENV = "CXRVIEWER_MODEL"


def resources_dir() -> Path:
    """The folder holding ``models/``, ``samples/`` and ``icons/``.

    Checked in this order: the frozen bundle; an installed wheel (``cxrviewer/resources/`` exists
    only there); else the source checkout (or an editable install), ``resources/`` beside the
    package. The wheel comes before the checkout so that some other distribution's top-level
    ``site-packages/resources`` folder is never taken for ours.
    """
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen:
        return Path(frozen) / "resources"
    here = Path(__file__).resolve().parent
    installed = here / "resources"
    if installed.is_dir():
        return installed
    return here.parent / "resources"


def resource_path(*parts: str) -> Path:
    return resources_dir().joinpath(*parts)


def samples_dir() -> Path:
    return resource_path("samples")


def default_model_path() -> Path:
    """The model used when none is given: ``$CXRVIEWER_MODEL`` or the bundled demo model."""
    env = os.environ.get(MODEL_ENV)
    if env:
        if not Path(env).is_file():
            raise ModelError(
                f"{MODEL_ENV} names {env}, which is not a file. Point it at an exported .onnx model, "
                f"or unset it to use the bundled demo model."
            )
        return Path(env)
    path = resource_path("models", DEMO_MODEL_NAME)
    if not path.is_file():
        raise ModelError(
            f"The bundled demo model is missing ({path}); reinstall cxrviewer, or choose an "
            f"exported .onnx model file (or set {MODEL_ENV})."
        )
    return path
