"""Statistics computed on the training split only: class frequencies and the pixel mean/std.

The mean/std are taken on the films as the app sees them after :func:`cxrviewer.preprocess.resize`
(one number each, on the [0, 1] film scale) and travel in the model's metadata, so the app
standardizes exactly as training did.
"""

from __future__ import annotations

import numpy as np


def class_frequencies(labels: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-class positive and negative frequencies of (N, C) targets.

    With per-element ``weights`` (uncertain labels), each element counts with its weight; a class
    whose weights are all zero has frequencies 0 and 0.
    """
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2 or y.shape[0] == 0:
        raise ValueError(f"labels must be a non-empty (N, C) array, got shape {y.shape}")
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    total = w.sum(axis=0)
    safe = np.where(total > 0, total, 1.0)
    pos = np.where(total > 0, (w * y).sum(axis=0) / safe, 0.0)
    neg = np.where(total > 0, (w * (1.0 - y)).sum(axis=0) / safe, 0.0)
    return pos, neg


def loss_weights(labels: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Class weights that balance the loss: ``w_pos = freq_neg``, ``w_neg = freq_pos`` per class."""
    pos, neg = class_frequencies(labels, weights)
    return neg, pos


class PixelStats:
    """Streaming mean and (population) standard deviation of pixel values, in float64."""

    def __init__(self) -> None:
        self.count = 0
        self._sum = 0.0
        self._sumsq = 0.0

    def add(self, pixels: np.ndarray) -> None:
        x = np.asarray(pixels, dtype=np.float64)
        self.count += x.size
        self._sum += float(x.sum())
        self._sumsq += float(np.square(x).sum())

    @property
    def mean(self) -> float:
        if self.count == 0:
            raise ValueError("no pixels were added")
        return self._sum / self.count

    @property
    def std(self) -> float:
        var = max(self._sumsq / self.count - self.mean**2, 0.0)
        return float(np.sqrt(var))
