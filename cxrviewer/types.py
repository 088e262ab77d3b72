"""The data objects that flow through the pipeline: ``Film``, ``Prediction``, ``ModelInfo``.

They are frozen dataclasses. Arrays inside them are treated as read-only by convention (and
flagged non-writeable where we create them), so a film or a prediction can be handed between
threads and front ends without copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np


def _frozen_array(a: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=dtype)
    if arr is a:
        arr = arr.view()
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Film:
    """A radiograph ready for display and inference.

    ``pixels`` is float32 H×W in [0, 1] with white = dense (MONOCHROME1 already inverted, the
    modality and VOI transforms already applied for DICOM). ``pixel_spacing`` is (row, column)
    in mm when the file says so. ``metadata`` is a small mapping of non-identifying facts
    (format, modality, photometric interpretation, bits stored, ...): never patient names or IDs.
    """

    pixels: np.ndarray
    source: Path | None = None
    pixel_spacing: tuple[float, float] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        px = _frozen_array(self.pixels)
        if px.ndim != 2:
            raise ValueError(f"Film pixels must be 2-D (H, W), got shape {px.shape}")
        object.__setattr__(self, "pixels", px)
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def name(self) -> str:
        return self.source.name if self.source is not None else "<film>"


@dataclass(frozen=True)
class OodStats:
    """Statistics of the pooled features on the training films (out-of-distribution guard).

    A probabilistic-PCA summary: the feature mean, the top ``r`` principal directions
    (``components``, r×K, orthonormal rows) with their variances, and the mean variance left
    in the other directions. ``threshold`` is the score above which a film is flagged; it was
    set at ``percentile`` of the validation films' scores.
    """

    mean: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]
    variances: tuple[float, ...]
    residual_variance: float
    threshold: float
    percentile: float


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself (its ONNX ``metadata_props``); see docs/model-format.md."""

    labels: tuple[str, ...]
    input_size: int
    mean: float
    std: float
    thresholds: Mapping[str, float]
    model_version: str
    demo: bool
    trained_on: Mapping[str, Any]
    metrics: Mapping[str, float]
    layout: str = "NHWC"
    format_version: int = 1
    ood: OodStats | None = None
    #: ``"fp32"``, or ``"int8"`` for a static-quantized copy (``cxr.precision``; absent = fp32).
    precision: str = "fp32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))
        object.__setattr__(self, "trained_on", MappingProxyType(dict(self.trained_on)))
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def threshold(self, label: str) -> float:
        return float(self.thresholds[label])


@dataclass(frozen=True, eq=False)
class Prediction:
    """The model's answer for one film.

    ``probabilities`` is (C,) in the order of ``labels``; ``class_maps`` is (C, h, w): the
    non-negative Grad-CAM map of each class at the model's feature resolution (upsample with
    :mod:`cxrviewer.heatmap`). ``features`` is the pooled feature vector when the model gives
    one; ``ood_score`` / ``ood_flag`` are set when the model carries OOD statistics.
    """

    labels: tuple[str, ...]
    probabilities: np.ndarray
    class_maps: np.ndarray
    thresholds: tuple[float, ...]
    model_version: str
    features: np.ndarray | None = None
    ood_score: float | None = None
    ood_flag: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "probabilities", _frozen_array(self.probabilities))
        object.__setattr__(self, "class_maps", _frozen_array(self.class_maps))
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if self.features is not None:
            object.__setattr__(self, "features", _frozen_array(self.features))
        n = len(self.labels)
        if self.probabilities.shape != (n,) or self.class_maps.ndim != 3 or self.class_maps.shape[0] != n:
            raise ValueError(
                f"Prediction shapes disagree with {n} labels: probabilities {self.probabilities.shape}, "
                f"class_maps {self.class_maps.shape}"
            )

    def probability(self, label: str) -> float:
        return float(self.probabilities[self.labels.index(label)])

    def class_map(self, label: str) -> np.ndarray:
        return self.class_maps[self.labels.index(label)]

    @property
    def positives(self) -> tuple[str, ...]:
        """Labels at or above their threshold, most probable first."""
        idx = [i for i, (p, t) in enumerate(zip(self.probabilities, self.thresholds)) if p >= t]
        idx.sort(key=lambda i: -float(self.probabilities[i]))
        return tuple(self.labels[i] for i in idx)

    def ranked(self) -> list[tuple[str, float, float]]:
        """(label, probability, threshold) sorted by probability, highest first."""
        order = np.argsort(-self.probabilities, kind="stable")
        return [(self.labels[i], float(self.probabilities[i]), self.thresholds[i]) for i in order]
