"""Metrics of a multi-label classifier: the core's :mod:`cxrviewer.metrics`, under its old name.

The implementation (AUROC, ROC/PR curves, the threshold rule, confusion counts) is plain NumPy and
lives in the core, so that ``cxrviewer validate`` tunes a site's thresholds by the same rule as
training (``training → core``, never back).
"""

from __future__ import annotations

from cxrviewer.metrics import (  # noqa: F401 - re-exported: training's modules and scripts use these names
    DEFAULT_THRESHOLD,
    METHODS,
    MIN_NEGATIVES,
    MIN_POSITIVES,
    UNCERTAIN,
    auroc,
    can_choose_threshold,
    choose_threshold,
    confusion,
    defaulted_labels,
    label_counts,
    pr_curve,
    roc_curve,
    split_metrics,
    threshold_record,
    valid_auroc,
)
