"""Metrics of a multi-label classifier: per-class AUROC, ROC/PR curves, thresholds, confusion counts.

Plain NumPy (no scikit-learn, no TensorFlow), so training's evaluation, the int8 parity check,
the site validation (:mod:`cxrviewer.validate`) and the tests share one implementation that
imports in a blink; it lives in the core so that ``cxrviewer validate`` chooses a site's
thresholds by the very rule training uses (``training.metrics`` re-exports it). Uncertain labels
(:data:`UNCERTAIN`, -1) are left out of every metric. A class with only one value among
the films has no AUROC (NaN): :func:`split_metrics` reports it as omitted, and
:func:`choose_threshold` gives it the default threshold.

Thresholds: Youden's J = max(TPR − FPR) (``youden``); one value for every class (``fixed``); or
the highest threshold reaching a target sensitivity (``sensitivity``). A threshold is *chosen*
from the validation films only when they hold at least :data:`MIN_POSITIVES` positive and
:data:`MIN_NEGATIVES` negative films of that label (:func:`can_choose_threshold`); otherwise the
label keeps :data:`DEFAULT_THRESHOLD`. With one or two positives, Youden's J lands on whatever
score those films happened to get (0.004 for Atelectasis, 0.983 for Edema on the first demo
model): a threshold that marks nearly every film positive, or none.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: The raw value of an uncertain label (CheXpert, MIMIC-CXR): left out of every metric.
UNCERTAIN = -1.0
METHODS = ("youden", "fixed", "sensitivity")
DEFAULT_THRESHOLD = 0.5
#: The fewest positive and negative validation films of a label from which its threshold is
#: chosen. With k positives the sensitivity moves in steps of 1/k: at 5 a step is 20%, coarse
#: but no longer one film's accident; below it the default is kept and said.
MIN_POSITIVES = 5
MIN_NEGATIVES = 5


def _certain(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    s = np.asarray(s, dtype=np.float64).ravel()
    keep = y != UNCERTAIN
    return (y[keep] >= 0.5).astype(np.int64), s[keep]


def auroc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann–Whitney U with average ranks for ties); NaN for one class."""
    yy, s = _certain(y, scores)
    n_pos = int(yy.sum())
    n_neg = yy.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(s.size, dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < s.size:  # average ranks over ties
        j = i
        while j + 1 < s.size and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[yy == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds): predicting positive when score ≥ threshold; starts at (0, 0, +inf)."""
    yy, s = _certain(y, scores)
    order = np.argsort(-s, kind="mergesort")
    s, yy = s[order], yy[order]
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1] if s.size else np.array([], dtype=np.int64)
    tps = np.cumsum(yy)[last].astype(np.float64)
    fps = (last + 1) - tps
    p, n = max(int(yy.sum()), 1), max(int(yy.size - yy.sum()), 1)
    return np.r_[0.0, fps / n], np.r_[0.0, tps / p], np.r_[np.inf, s[last]]


def pr_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(recall, precision, average precision)."""
    yy, s = _certain(y, scores)
    order = np.argsort(-s, kind="mergesort")
    s, yy = s[order], yy[order]
    if s.size == 0 or yy.sum() == 0:
        return np.array([0.0]), np.array([1.0]), float("nan")
    last = np.r_[np.nonzero(np.diff(s))[0], s.size - 1]
    tps = np.cumsum(yy)[last].astype(np.float64)
    precision = tps / (last + 1)
    recall = tps / yy.sum()
    ap = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return np.r_[0.0, recall], np.r_[1.0, precision], ap


def label_counts(y: np.ndarray) -> tuple[int, int]:
    """(positives, negatives) among the films whose label is certain."""
    yy, _ = _certain(y, np.zeros(np.asarray(y).size))
    return int(yy.sum()), int(yy.size - yy.sum())


def can_choose_threshold(y: np.ndarray, min_positives: int = MIN_POSITIVES, min_negatives: int = MIN_NEGATIVES) -> bool:
    """True when ``y`` holds enough positives and negatives to choose a threshold from."""
    pos, neg = label_counts(y)
    return pos >= max(1, min_positives) and neg >= max(1, min_negatives)


def defaulted_labels(labels, y: np.ndarray, method: str) -> list[str]:
    """The labels whose threshold :func:`choose_threshold` leaves at the default (none for
    ``fixed``, which chooses nothing)."""
    if method == "fixed":
        return []
    return [c for i, c in enumerate(labels) if not can_choose_threshold(y[:, i])]


def threshold_record(labels, y: np.ndarray | None, method: str, value: float | None = None) -> dict[str, Any]:
    """How the thresholds were set, for the model's metadata (``cxr.trained_on.thresholds``):
    the rule, and which labels kept the default. ``y`` is the validation labels (None: none)."""
    if method == "fixed":
        defaulted: list[str] = []
    elif y is None:
        defaulted = list(labels)
    else:
        defaulted = defaulted_labels(labels, y, method)
    return {
        "method": method,
        "min_positives": MIN_POSITIVES,
        "min_negatives": MIN_NEGATIVES,
        "default": DEFAULT_THRESHOLD if method != "fixed" or value is None else float(value),
        "defaulted": defaulted,
    }


def choose_threshold(
    y: np.ndarray, scores: np.ndarray, method: str = "youden", value: float | None = None,
    min_positives: int = MIN_POSITIVES, min_negatives: int = MIN_NEGATIVES,
) -> float:
    """One class's threshold by ``method`` (see the module docstring); :data:`DEFAULT_THRESHOLD`
    when the films hold too few positives or negatives (:func:`can_choose_threshold`)."""
    if method not in METHODS:
        raise ValueError(f"unknown threshold method {method!r}; use one of {METHODS}")
    if method == "fixed":
        return float(DEFAULT_THRESHOLD if value is None else value)
    if not can_choose_threshold(y, min_positives, min_negatives) or math.isnan(auroc(y, scores)):
        return DEFAULT_THRESHOLD
    fpr, tpr, thr = roc_curve(y, scores)
    if method == "youden":
        i = int(np.argmax(tpr[1:] - fpr[1:])) + 1
    elif method == "sensitivity":
        target = 0.9 if value is None else float(value)
        i = int(np.argmax(tpr[1:] >= target - 1e-12)) + 1
    else:
        raise ValueError(f"unknown threshold method {method!r}; use one of {METHODS}")
    return float(np.clip(thr[i], 0.0, 1.0))


def confusion(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, Any]:
    """TP, FP, FN, TN at ``score ≥ threshold``, with sensitivity and specificity (None without films)."""
    yy, s = _certain(y, scores)
    pred = s >= threshold
    tp = int(np.sum(pred & (yy == 1)))
    fp = int(np.sum(pred & (yy == 0)))
    fn = int(np.sum(~pred & (yy == 1)))
    tn = int(np.sum(~pred & (yy == 0)))
    return {
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "sensitivity": tp / (tp + fn) if tp + fn else None,
        "specificity": tn / (tn + fp) if tn + fp else None,
    }


def split_metrics(labels: tuple[str, ...], y: np.ndarray, probs: np.ndarray, thresholds: dict[str, float]) -> dict[str, Any]:
    """One split's metrics (``metrics.json``'s ``splits[name]``): AUROC, AP and confusion per label."""
    aucs = {c: auroc(y[:, i], probs[:, i]) for i, c in enumerate(labels)}
    finite = {c: v for c, v in aucs.items() if not math.isnan(v)}
    return {
        "films": int(y.shape[0]),
        "auroc": {c: (None if math.isnan(v) else v) for c, v in aucs.items()},
        "mean_auroc": float(np.mean(list(finite.values()))) if finite else None,
        "omitted": [c for c in labels if c not in finite],
        "average_precision": {c: _none(pr_curve(y[:, i], probs[:, i])[2]) for i, c in enumerate(labels)},
        "at_threshold": {c: confusion(y[:, i], probs[:, i], thresholds[c]) for i, c in enumerate(labels)},
    }


def _none(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def valid_auroc(metrics: dict[str, Any]) -> dict[str, float]:
    """The validation AUROC of each label that has one (what ``cxr.metrics`` carries)."""
    valid = metrics.get("splits", {}).get("valid")
    if not valid:
        return {}
    return {c: float(v) for c, v in valid["auroc"].items() if v is not None}
