"""Options the command line and the desktop app share, defined once.

``--model``, ``--device``, ``--backend``, ``--precision``, ``--classes``, ``--alpha``, ``--colormap`` and ``--mode`` mean the same
in ``cxrviewer score``, ``cxrviewer export`` and ``cxrviewer`` (the app): their choices come from
the renderer's own constants, and a class list goes through :mod:`cxrviewer.classes` everywhere.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import heatmap
from .classes import ClassChoice
from .model import BACKEND_CHOICES, DEVICES, PRECISION_CHOICES
from .render import DEFAULT_ALPHA, MODES


def add_model_options(parser: argparse.ArgumentParser, engine_default: str | None = "auto") -> None:
    """``--model/--device/--backend/--precision``; ``engine_default=None``: the app's settings
    decide a backend or precision not given (auto unless changed there)."""
    remembered = "as in the app's settings, auto unless changed"
    parser.add_argument(
        "--model", type=Path, metavar="M.onnx",
        help="ONNX model file honouring docs/model-format.md (default: $CXRVIEWER_MODEL, else the bundled demo model)",
    )
    parser.add_argument(
        "--device", choices=DEVICES, default="auto",
        help="where the model runs: auto (CUDA when it works, else CPU), cpu or cuda (default: auto)",
    )
    parser.add_argument(
        "--backend", choices=BACKEND_CHOICES, default=engine_default,
        help="what runs the model on the CPU: onnxruntime, openvino (the 'openvino' extra), or auto: the "
        "fastest that keeps parity with fp32 ONNX Runtime here, measured once per model and machine "
        f"(default: {engine_default or remembered})",
    )
    parser.add_argument(
        "--precision", choices=PRECISION_CHOICES, default=engine_default,
        help="fp32; bf16 (OpenVINO, CPUs with AMX or AVX-512 BF16); int8 (the model's int8 copy, "
        f"model.int8.onnx beside it, or an int8 file itself); auto: measured as --backend (default: {engine_default or remembered})",
    )


def add_display_options(parser: argparse.ArgumentParser, default_classes: str | None) -> None:
    """``--classes/--alpha/--colormap/--mode``; ``default_classes=None``: the app's last settings."""
    remembered = "as last time"
    parser.add_argument(
        "--classes", type=_class_choice, default=None if default_classes is None else ClassChoice.parse(default_classes),
        metavar="all|none|positives|A,B",
        help="findings whose heatmaps are drawn: all, none, positives, or names such as "
        f"'Mass,Pleural Thickening' (default: {default_classes or remembered})",
    )
    parser.add_argument(
        "--alpha", type=_alpha, default=None if default_classes is None else DEFAULT_ALPHA, metavar="0..1",
        help=f"heatmap opacity (default: {remembered if default_classes is None else DEFAULT_ALPHA})",
    )
    parser.add_argument(
        "--colormap", choices=sorted(heatmap.COLORMAPS),
        default=None if default_classes is None else heatmap.DEFAULT_COLORMAP,
        help=f"heatmap colours (default: {remembered if default_classes is None else heatmap.DEFAULT_COLORMAP})",
    )
    parser.add_argument(
        "--mode", choices=MODES, default=None if default_classes is None else MODES[0],
        help="heatmap: blend the maps in; contour: outline their hot regions "
        f"(default: {remembered if default_classes is None else MODES[0]})",
    )


def _class_choice(text: str) -> ClassChoice:
    return ClassChoice.parse(text)


def _alpha(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value
