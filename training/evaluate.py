"""Evaluation: per-class AUROC, ROC/PR curves, thresholds picked on validation, the run report.

Metrics are plain NumPy (no scikit-learn). Uncertain labels (-1) are left out of every metric.
A class with only one value among the validation films has no AUROC (NaN): it is omitted from the
metrics (and from the model's ``cxr.metrics``), named in the report, and keeps the default
threshold (0.5, or the fixed value).

Thresholds (chosen on validation, applied to test): Youden's J = max(TPR − FPR) by default;
``fixed`` (one value for every class); or ``sensitivity`` (the highest threshold reaching a
target sensitivity).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from .data import UNCERTAIN
from .errors import RunError
from .run import METRICS_FILE, MODEL_FILE, REPORT_FILE, Run, write_json

logger = logging.getLogger(__name__)

METHODS = ("youden", "fixed", "sensitivity")
DEFAULT_THRESHOLD = 0.5


# ----------------------------------------------------------------------------- metrics
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


def choose_threshold(y: np.ndarray, scores: np.ndarray, method: str = "youden", value: float | None = None) -> float:
    """One class's threshold by ``method`` (see the module docstring)."""
    if method == "fixed":
        return float(DEFAULT_THRESHOLD if value is None else value)
    if math.isnan(auroc(y, scores)):
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


# ----------------------------------------------------------------------------- plots
def plot_curves(path_roc: Path, path_pr: Path, labels: tuple[str, ...], y: np.ndarray, probs: np.ndarray, title: str) -> None:
    """ROC and PR curves of every class with an AUROC, one PNG each (matplotlib, no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    for path, kind in ((path_roc, "roc"), (path_pr, "pr")):
        fig = Figure(figsize=(7, 6), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        for i, c in enumerate(labels):
            a = auroc(y[:, i], probs[:, i])
            if math.isnan(a):
                continue
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y[:, i], probs[:, i])
                ax.plot(fpr, tpr, lw=1.2, label=f"{c} ({a:.3f})")
            else:
                rec, prec, ap = pr_curve(y[:, i], probs[:, i])
                ax.step(rec, prec, where="post", lw=1.2, label=f"{c} (AP {ap:.3f})")
        if kind == "roc":
            ax.plot([0, 1], [0, 1], ls="--", c="0.6", lw=0.8)
            ax.set(xlabel="1 − specificity (FPR)", ylabel="sensitivity (TPR)", title=f"ROC, {title}")
        else:
            ax.set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title=f"Precision–recall, {title}")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="lower right" if kind == "roc" else "lower left")
        fig.tight_layout()
        fig.savefig(path)


# ----------------------------------------------------------------------------- the run
def evaluate_run(run_dir: str | Path, method: str | None = None, value: float | None = None, model=None) -> dict[str, Any]:
    """Predict valid and test films, pick thresholds on valid, write metrics.json, report.md, plots."""
    from .model import load_model
    from .pipeline import film_dataset, predict

    run = Run.open(run_dir)
    method = method or run.info.get("threshold_method", "youden")
    if value is None:
        value = run.info.get("threshold_value")
    if method not in METHODS:
        raise RunError(f"Unknown threshold method {method!r}: use one of {', '.join(METHODS)}.")
    if model is None:
        model = load_model(run.require(MODEL_FILE, "train first with `cxr-train fit`."))
    labels, size = run.labels, run.input_size
    splits = run.splits()
    results: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in ("valid", "test"):
        if not splits[name]:
            continue
        # raw values back: uncertain stays -1 (and is skipped by every metric)
        films = film_dataset(splits[name], size, uncertain_value=UNCERTAIN, uncertain_weight=0.0)
        probs, y, _ = predict(model, films, run.mean, run.std, size)
        results[name] = (y, probs)
    notes: list[str] = []
    if "valid" in results:
        y, probs = results["valid"]
        thresholds = {c: choose_threshold(y[:, i], probs[:, i], method, value) for i, c in enumerate(labels)}
    else:
        thresholds = {c: float(DEFAULT_THRESHOLD if value is None or method != "fixed" else value) for c in labels}
        notes.append("No validation films: thresholds are the default and the model carries no metrics.")
    metrics: dict[str, Any] = {
        "labels": list(labels),
        "threshold_method": method,
        "threshold_value": value,
        "thresholds": thresholds,
        "splits": {},
        "notes": notes,
    }
    for name, (y, probs) in results.items():
        m = split_metrics(labels, y, probs, thresholds)
        metrics["splits"][name] = m
        if m["omitted"]:
            notes.append(
                f"{name}: no AUROC for {', '.join(m['omitted'])} (only one label value among its films); "
                + ("omitted from the metrics; threshold left at the default." if name == "valid" else "omitted.")
            )
        plot_curves(run.file(f"roc_{name}.png"), run.file(f"pr_{name}.png"), labels, y, probs, f"{name} ({len(y)} films)")
    write_json(run.file(METRICS_FILE), metrics)
    run.file(REPORT_FILE).write_text(render_report(run, metrics), encoding="utf-8")
    for name, m in metrics["splits"].items():
        logger.info("%s: mean AUROC %s over %d of %d labels (%d films)", name,
                    "n/a" if m["mean_auroc"] is None else f"{m['mean_auroc']:.3f}",
                    len(labels) - len(m["omitted"]), len(labels), m["films"])
    return metrics


def valid_auroc(metrics: dict[str, Any]) -> dict[str, float]:
    """The validation AUROC of each label that has one (what ``cxr.metrics`` carries)."""
    valid = metrics.get("splits", {}).get("valid")
    if not valid:
        return {}
    return {c: float(v) for c, v in valid["auroc"].items() if v is not None}


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def render_report(run: Run, metrics: dict[str, Any]) -> str:
    info = run.info
    t = info.get("trained_on", {})
    lines = [f"# Training report: {info.get('model_version', run.path.name)}", ""]
    if info.get("demo"):
        lines += ["> **Demo model.** " + str(t.get("note", "Its predictions mean nothing.")), ""]
    lines += [
        f"- data: {t.get('data', '?')}; {t.get('films', '?')} films of {t.get('patients', '?')} patients",
        f"- split ({t.get('split', {}).get('method', '?')}): "
        + ", ".join(f"{k} {t.get('split', {}).get(k, 0)}" for k in ("train", "valid", "test")),
        f"- input {run.input_size}×{run.input_size}, mean {run.mean:.4f}, std {run.std:.4f} (on the [0, 1] film scale)",
        f"- epochs run: {info.get('epochs_run', '?')} of {info.get('config', {}).get('epochs', '?')}",
        f"- thresholds: {metrics['threshold_method']}"
        + (f" ({metrics['threshold_value']})" if metrics["threshold_value"] is not None else "")
        + ", chosen on the validation films",
        "",
    ]
    splits = metrics["splits"]
    header = ["label", "threshold"]
    for name in splits:
        header += [f"{name} AUROC", f"{name} sens/spec"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for c in metrics["labels"]:
        row = [c, _fmt(metrics["thresholds"][c])]
        for name, m in splits.items():
            at = m["at_threshold"][c]
            row += [_fmt(m["auroc"][c]), f"{_fmt(at['sensitivity'], 2)} / {_fmt(at['specificity'], 2)}"]
        lines.append("| " + " | ".join(row) + " |")
    mean_row = ["**mean**", ""]
    for m in splits.values():
        mean_row += [f"**{_fmt(m['mean_auroc'])}**", ""]
    lines.append("| " + " | ".join(mean_row) + " |")
    lines.append("")
    for name, m in splits.items():
        lines += [f"## Confusion at the thresholds: {name} ({m['films']} films)", "",
                  "| label | TP | FP | FN | TN |", "|---|---|---|---|---|"]
        for c in metrics["labels"]:
            a = m["at_threshold"][c]
            lines.append(f"| {c} | {a['tp']} | {a['fp']} | {a['fn']} | {a['tn']} |")
        lines += ["", f"![ROC {name}](roc_{name}.png) ![PR {name}](pr_{name}.png)", ""]
    if metrics["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in metrics["notes"]] + [""]
    from .int8 import section_from_run

    int8 = section_from_run(run)  # `export --int8`'s parity report outlives a re-evaluation
    if int8:
        lines += [int8]
    return "\n".join(lines)
