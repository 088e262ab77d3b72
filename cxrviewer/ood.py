"""Out-of-distribution score: how far a film's pooled features lie from the training films'.

The model stores a probabilistic-PCA summary of its training features (:class:`OodStats`).
The score is the squared Mahalanobis distance under that model divided by the feature size,
so a typical training film scores about 1; films above ``stats.threshold`` (set at a
percentile of the validation films' scores when the model was exported) are flagged.
"""

from __future__ import annotations

import numpy as np

from .types import OodStats


class OodModel:
    """Arrays of :class:`OodStats`, ready to score batches."""

    def __init__(self, stats: OodStats) -> None:
        self.stats = stats
        self.mean = np.asarray(stats.mean, dtype=np.float64)
        self.components = np.asarray(stats.components, dtype=np.float64).reshape(-1, self.mean.size)
        self.variances = np.asarray(stats.variances, dtype=np.float64)
        self.residual_variance = float(stats.residual_variance)
        self.threshold = float(stats.threshold)
        finite = [np.isfinite(a).all() for a in (self.mean, self.components, self.variances)]
        if not (all(finite) and np.isfinite(self.residual_variance)) or np.isnan(self.threshold):
            # NaN statistics give NaN scores, and NaN never exceeds the threshold: the guard
            # would be off without a word. (An infinite threshold is refused where model files
            # are read, cxrviewer.contract; fit_ood uses one while it has no threshold yet.)
            raise ValueError("OOD statistics hold NaN or infinite numbers")

    def scores(self, features: np.ndarray) -> np.ndarray:
        """(N,) scores for (N, K) features."""
        z = np.asarray(features, dtype=np.float64).reshape(-1, self.mean.size) - self.mean
        proj = z @ self.components.T
        in_space = np.sum(proj**2 / self.variances, axis=1)
        residual = np.maximum(np.sum(z**2, axis=1) - np.sum(proj**2, axis=1), 0.0)
        return (in_space + residual / self.residual_variance) / self.mean.size


def fit_ood(
    train_features: np.ndarray,
    valid_features: np.ndarray | None = None,
    rank: int = 32,
    percentile: float = 99.0,
) -> OodStats:
    """Fit :class:`OodStats` on training features; set the threshold on validation features.

    Falls back to the training features for the threshold when no validation films are given.
    """
    f = np.asarray(train_features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError("fit_ood needs at least two feature vectors")
    n, k = f.shape
    mean = f.mean(axis=0)
    z = f - mean
    _, s, vt = np.linalg.svd(z, full_matrices=False)
    eig = s**2 / max(n - 1, 1)
    r = int(min(rank, n - 1, k))
    total = float(np.sum(eig))
    floor = max(total / k, 1e-12) * 1e-3
    variances = np.maximum(eig[:r], floor)
    rest = (total - float(np.sum(eig[:r]))) / max(k - r, 1)
    residual_variance = max(rest, floor)
    provisional = OodStats(
        mean=tuple(mean.tolist()),
        components=tuple(tuple(row) for row in vt[:r].tolist()),
        variances=tuple(variances.tolist()),
        residual_variance=float(residual_variance),
        threshold=float("inf"),
        percentile=float(percentile),
    )
    ref = f if valid_features is None or len(valid_features) == 0 else np.asarray(valid_features)
    threshold = float(np.percentile(OodModel(provisional).scores(ref), percentile))
    return OodStats(
        mean=provisional.mean,
        components=provisional.components,
        variances=provisional.variances,
        residual_variance=provisional.residual_variance,
        threshold=threshold,
        percentile=float(percentile),
    )
