"""``cxr-train evaluate``: predict the validation and test films, pick thresholds, write the results.

The metrics are :mod:`training.metrics` (uncertain labels left out); the report and plots are
:mod:`training.report`. A class with only one value among the validation films has no AUROC
(NaN): it is omitted from the metrics (and from the model's ``cxr.metrics``), named in the report,
and keeps the default threshold (0.5, or the fixed value).

Thresholds are chosen on validation and applied to test: Youden's J = max(TPR − FPR) by default;
``fixed`` (one value for every class); or ``sensitivity`` (the highest threshold reaching a
target sensitivity). A label whose validation films hold fewer than
:data:`training.metrics.MIN_POSITIVES` positives or :data:`~training.metrics.MIN_NEGATIVES`
negatives keeps the default; ``metrics.json`` lists those (``threshold_rule.defaulted``), the
report says so, and the export writes it into the model's metadata.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .errors import RunError
from .labels import UNCERTAIN
from .metrics import DEFAULT_THRESHOLD, METHODS, MIN_NEGATIVES, MIN_POSITIVES, choose_threshold, split_metrics, threshold_record
from .report import plot_curves, render_report
from .run import METRICS_FILE, MODEL_FILE, REPORT_FILE, Run, write_json

logger = logging.getLogger(__name__)


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
        rule = threshold_record(labels, y, method, value)
        if rule["defaulted"]:
            notes.append(
                f"Thresholds left at the default {DEFAULT_THRESHOLD:g} for {', '.join(rule['defaulted'])}: "
                f"the validation films hold fewer than {MIN_POSITIVES} positives or {MIN_NEGATIVES} "
                "negatives of each, too few to choose a threshold from."
            )
    else:
        rule = threshold_record(labels, None, method, value)
        thresholds = {c: float(DEFAULT_THRESHOLD if value is None or method != "fixed" else value) for c in labels}
        notes.append("No validation films: thresholds are the default and the model carries no metrics.")
    metrics: dict[str, Any] = {
        "labels": list(labels),
        "threshold_method": method,
        "threshold_value": value,
        "thresholds": thresholds,
        "threshold_rule": rule,
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
