"""``cxr-train import-weights``: an existing Keras DenseNet121+GAP+Dense ``.h5`` → a contract ONNX file.

For the CheXNet-Keras ``best_weights.h5`` and the deeplearning.ai course's ``pretrained_model.h5``
(Keras 2 HDF5) and files saved by Keras 3. The file says nothing about its labels' names, their
order or the normalization it was trained with: the user gives them (``--labels``, ``--mean``,
``--std`` on the [0, 1] film scale), and the export records them in the metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrviewer import contract
from cxrviewer.types import ModelInfo

from .errors import TrainingError

logger = logging.getLogger(__name__)


def import_weights(
    weights: str | Path,
    labels: Sequence[str],
    mean: float,
    std: float,
    out: str | Path,
    input_size: int = 320,
    thresholds: Sequence[float] | float | None = None,
    model_version: str | None = None,
    trained_on: Mapping[str, Any] | str | None = None,
    demo: bool = False,
) -> dict[str, Any]:
    """Build the model, load every weight (or fail naming the first mismatching layer), export."""
    from .export import export_onnx
    from .model import build_classifier, check_input_size
    from .weights import load_weights

    labels = tuple(s.strip() for s in labels if s.strip())
    if not labels or len(set(labels)) != len(labels):
        raise TrainingError("--labels must name each output once, in the file's output order (A,B,C,...).")
    if not 0.0 < std < 1.0 or not 0.0 <= mean <= 1.0:
        raise TrainingError(
            f"--mean {mean} / --std {std} are not on the [0, 1] film scale the contract uses. "
            "Values computed on 0–255 pixels must be divided by 255."
        )
    size = check_input_size(input_size)
    w = Path(weights)
    if thresholds is None:
        thr = [0.5] * len(labels)
    elif isinstance(thresholds, (int, float)):
        thr = [float(thresholds)] * len(labels)
    else:
        thr = [float(t) for t in thresholds]
    if len(thr) != len(labels) or not all(0.0 <= t <= 1.0 for t in thr):
        raise TrainingError(f"--thresholds needs one value in [0, 1] or {len(labels)} (one per label).")
    model = build_classifier(len(labels), size)
    counts = load_weights(model, w, head="require")
    if isinstance(trained_on, str):
        trained_on = {"data": trained_on}
    info = ModelInfo(
        labels=labels,
        input_size=size,
        mean=float(mean),
        std=float(std),
        thresholds=dict(zip(labels, thr)),
        model_version=model_version or f"imported-{w.stem}",
        demo=bool(demo),
        trained_on={"data": "unknown (imported weights)", **(trained_on or {}), "weights_file": w.name},
        metrics={},
        format_version=contract.FORMAT_VERSION,  # cams of the class score (training.model.GradCam)
    )
    deltas = export_onnx(model, info, out)
    return {"onnx": str(out), "layers": counts["layers"], "check": deltas}
