"""The figures of a site validation: AUROC with a bootstrap interval, calibration, subgroups.

Plain NumPy. The definitions (docs/validation.md says the same in words):

- **AUROC**: the Mann–Whitney statistic, ties counted half (:func:`cxrviewer.metrics.auroc`, the
  one training uses; equal to scikit-learn's ``roc_auc_score``).
- **95% interval**: a percentile bootstrap, :data:`DEFAULT_RESAMPLES` resamples, seeded
  (:data:`DEFAULT_SEED`). What is resampled with replacement is the *patient* when the labels
  file gives patient IDs (all of a patient's films come along together: films of one patient are
  not independent, and resampling them one by one makes the interval too narrow), else the film.
  A resample is the same data set with each film weighted by how many times its patient was
  drawn, so its AUROC is the weighted Mann–Whitney statistic (:func:`weighted_auroc`): one sort
  per finding, and every resample of a block at once. Every finding of a set of films sees the
  same draws of patients (paired intervals). Resamples left with one class only are dropped
  (their number is reported).
- **Sensitivity, specificity** at the model's threshold: a film is positive when its probability
  is at or above it (as :attr:`cxrviewer.types.Prediction.positives`).
- **Brier score**: the mean of (probability − label)².
- **Expected calibration error**: :data:`ECE_BINS` equal-width bins of the probability over
  [0, 1] (1.0 falls in the last); the films-weighted mean of |fraction positive − mean
  probability| over the bins. The bins are those of the reliability diagram.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metrics import auroc, confusion

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0
CI_LEVEL = 0.95
ECE_BINS = 10
#: Weights held at once while bootstrapping (resamples × films): bounds memory for large sites.
_BLOCK_CELLS = 2_000_000
#: Age bands of the ``age`` subgroups: (name, lowest age, below this age).
AGE_BANDS: tuple[tuple[str, float, float], ...] = (
    ("<18", 0.0, 18.0), ("18-39", 18.0, 40.0), ("40-59", 40.0, 60.0), ("60-79", 60.0, 80.0), (">=80", 80.0, math.inf),
)


@dataclass(frozen=True)
class Bootstrap:
    """How intervals are drawn: ``resamples`` (0: no intervals) from ``seed``."""

    resamples: int = DEFAULT_RESAMPLES
    seed: int = DEFAULT_SEED
    level: float = CI_LEVEL

    def rng(self, name: str) -> np.random.Generator:
        """One generator per figure set, from the seed and its name: a subgroup's interval does
        not depend on which others were computed before it."""
        return np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(zlib.crc32(name.encode()),)))


def weighted_auroc(y: np.ndarray, s: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """AUROC of each row of ``weights`` (resamples × films): the Mann–Whitney statistic of the
    data set in which film i appears ``weights[r, i]`` times, ties counted half. NaN for a row
    without positive or without negative weight. ``y`` is 0/1.

    Each positive film counts the negative weight below its score, plus half of that at its
    score: with the negatives sorted once, two look-ups into their cumulative weights."""
    y = np.asarray(y, dtype=bool)
    s = np.asarray(s, dtype=np.float64)
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    neg = np.flatnonzero(~y)
    neg = neg[np.argsort(s[neg], kind="mergesort")]
    pos = np.flatnonzero(y)
    neg_scores = s[neg]
    lo = np.searchsorted(neg_scores, s[pos], side="left")  # negatives strictly below
    hi = np.searchsorted(neg_scores, s[pos], side="right")  # ... and tied with it
    cum = np.zeros((w.shape[0], neg.size + 1))
    np.cumsum(w[:, neg], axis=1, out=cum[:, 1:])
    wp = w[:, pos]
    num = np.sum(wp * (cum[:, lo] + cum[:, hi]), axis=1) * 0.5
    den = wp.sum(axis=1) * cum[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def clusters_of(patients: Sequence[str] | None, n: int) -> tuple[np.ndarray, int]:
    """(cluster index of each film, number of clusters): one per patient ID, a film of no known
    patient its own; one per film without IDs."""
    if patients is None:
        return np.arange(n), n
    ids: dict[str, int] = {}
    out = np.empty(n, dtype=np.int64)
    for i, p in enumerate(patients):
        out[i] = ids.setdefault(p, len(ids)) if p else ids.setdefault(f"\0film{i}", len(ids))
    return out, len(ids)


def bootstrap_aurocs_many(columns: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], clusters: np.ndarray,
                          boot: Bootstrap, rng: np.random.Generator) -> list[np.ndarray]:
    """For each ``(known, y, s)`` of ``columns`` (which films have a label for the finding, their
    0/1 labels and probabilities), the AUROC of each of ``boot.resamples`` resamples of the
    clusters of the films (NaN where a resample holds one class only). Every finding sees the
    same resamples (paired: the intervals of two findings come from the same draws of patients),
    drawn in blocks that bound memory."""
    if boot.resamples <= 0 or not columns or clusters.size == 0:
        return [np.empty(0) for _ in columns]
    _, local = np.unique(clusters, return_inverse=True)  # the clusters of these films, 0..k-1
    k = int(local.max()) + 1
    block = max(1, min(boot.resamples, _BLOCK_CELLS // max(local.size, k)))
    out: list[list[np.ndarray]] = [[] for _ in columns]
    done = 0
    while done < boot.resamples:
        b = min(block, boot.resamples - done)
        # k clusters drawn with replacement, b times: how often each one is drawn
        draws = rng.integers(0, k, size=(b, k)) + (np.arange(b) * k)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * k).reshape(b, k).astype(np.float64)
        weights = counts[:, local]  # each film weighted by its cluster's draws
        for j, (known, y, s) in enumerate(columns):
            out[j].append(weighted_auroc(y, s, weights if known.all() else weights[:, known]))
        done += b
    return [np.concatenate(o) for o in out]


def bootstrap_aurocs(y: np.ndarray, s: np.ndarray, clusters: np.ndarray, boot: Bootstrap,
                     rng: np.random.Generator) -> np.ndarray:
    """One finding's :func:`bootstrap_aurocs_many`."""
    return bootstrap_aurocs_many([(np.ones(np.asarray(y).size, dtype=bool), y, s)], clusters, boot, rng)[0]


def calibration_bins(y: np.ndarray, s: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, Any]]:
    """The reliability diagram's bins: range, films, mean probability, fraction positive."""
    idx = np.minimum((np.clip(s, 0.0, 1.0) * bins).astype(np.int64), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        n = int(sel.sum())
        out.append({
            "low": b / bins, "high": (b + 1) / bins, "films": n,
            "mean_probability": float(s[sel].mean()) if n else None,
            "fraction_positive": float(y[sel].mean()) if n else None,
        })
    return out


def expected_calibration_error(y: np.ndarray, s: np.ndarray, bins: int = ECE_BINS) -> float:
    """Σ over the bins of (films in bin / films) · |fraction positive − mean probability|."""
    n = y.size
    return float(sum(b["films"] / n * abs(b["fraction_positive"] - b["mean_probability"])
                     for b in calibration_bins(y, s, bins) if b["films"])) if n else math.nan


def finding_metrics(y: np.ndarray, s: np.ndarray, threshold: float, clusters: np.ndarray,
                    boots: np.ndarray, level: float = CI_LEVEL) -> dict[str, Any]:
    """One finding's figures on its films of known label (``y`` 0/1 with both classes, ``s`` the
    probabilities, ``clusters`` their patients), with the interval from the bootstrap AUROCs
    ``boots``."""
    point = auroc(y, s)
    used = boots[~np.isnan(boots)]
    ci = None
    if used.size:
        tail = (1.0 - level) / 2.0 * 100.0
        lo, hi = np.percentile(used, [tail, 100.0 - tail])
        ci = [float(lo), float(hi)]
    at = confusion(y, s, threshold)
    return {
        "n": int(y.size),
        "positives": int(y.sum()),
        "auroc": float(point),
        "auroc_ci": ci,
        "bootstrap_resamples_used": int(used.size),
        "patients": int(np.unique(clusters).size),
        "sensitivity": at["sensitivity"],
        "specificity": at["specificity"],
        "threshold": float(threshold),
        "tp": at["tp"], "fp": at["fp"], "fn": at["fn"], "tn": at["tn"],
        "brier": float(np.mean((s - y) ** 2)),
        "ece": expected_calibration_error(y, s),
        "calibration_bins": calibration_bins(y, s),
    }


def findings_metrics(labels: Sequence[str], y: np.ndarray, s: np.ndarray, thresholds: Mapping[str, float],
                     clusters: np.ndarray, boot: Bootstrap, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """(figures per finding with both positive and negative films, why each other finding has
    none) for films × labels ``y`` (0/1/NaN) and ``s``. The resamples come from one generator
    named ``name``, the same draws for every finding."""
    skipped: dict[str, str] = {}
    columns: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]] = []
    for i, label in enumerate(labels):
        known = ~np.isnan(y[:, i])
        yy = y[known, i].astype(np.int64)
        pos = int(yy.sum())
        if not known.any():
            skipped[label] = "no film has a known label for it"
        elif pos == 0 or pos == yy.size:
            skipped[label] = f"{'no' if pos == 0 else 'only'} positive films ({pos} of {yy.size})"
        else:
            columns.append((label, known, yy, s[known, i]))
    boots = bootstrap_aurocs_many([(k, yy, ss) for _, k, yy, ss in columns], clusters, boot, boot.rng(name))
    found = {label: finding_metrics(yy, ss, thresholds[label], clusters[known], b, boot.level)
             for (label, known, yy, ss), b in zip(columns, boots)}
    return found, skipped


def subgroup_values(views: Sequence[str], sexes: Sequence[str], ages: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """grouping → subgroup → which films (bool mask), for the groupings the data say something
    about: ``view_position`` (each value given), ``sex`` (M, F) and ``age`` (:data:`AGE_BANDS`)."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    v = np.array(views, dtype=object)
    for value in sorted({x for x in views if x}):
        groups.setdefault("view_position", {})[value] = v == value
    sx = np.array(sexes, dtype=object)
    for value in ("F", "M"):
        if (sx == value).any():
            groups.setdefault("sex", {})[value] = sx == value
    for name, low, high in AGE_BANDS:
        sel = (ages >= low) & (ages < high)
        if sel.any():
            groups.setdefault("age", {})[name] = sel
    return groups
