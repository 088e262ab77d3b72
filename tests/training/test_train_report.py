"""The run's report.md and plots (training.report), without TensorFlow: hand-made metrics in, text out."""

from __future__ import annotations

import logging

import numpy as np

from training.metrics import split_metrics
from training.report import INT8_HEADING, plot_curves, render_report, saved_int8_section, with_int8_section
from training.run import INT8_JSON, Run

LABELS = ("Effusion", "Hernia")
Y = np.array([[0, 0], [0, 0], [1, 0], [1, 0]])
P = np.array([[0.1, 0.2], [0.4, 0.3], [0.35, 0.1], [0.8, 0.6]])


def _run(tmp_path) -> Run:
    info = {"model_version": "demo-1", "labels": list(LABELS), "input_size": 64, "mean": 0.5, "std": 0.25,
            "demo": True, "trained_on": {"data": "NIH", "films": 4, "patients": 4, "split": {"method": "patient"}}}
    return Run(tmp_path, info)


def _metrics() -> dict:
    thresholds = {"Effusion": 0.8, "Hernia": 0.5}
    return {"labels": list(LABELS), "threshold_method": "youden", "threshold_value": None,
            "thresholds": thresholds, "splits": {"valid": split_metrics(LABELS, Y, P, thresholds)},
            "notes": ["valid: no AUROC for Hernia."]}


def test_report_golden_rows(tmp_path):
    text = render_report(_run(tmp_path), _metrics())
    assert text.startswith("# Training report: demo-1\n\n> **Demo model.**")
    assert "| label | threshold | valid AUROC | valid sens/spec |" in text
    assert "| Effusion | 0.800 | 0.750 | 0.50 / 1.00 |" in text  # TP 1 of 2, TN 2 of 2
    assert "| Hernia | 0.500 | — | — / 0.75 |" in text  # no positives: no AUROC, no sensitivity
    assert "| **mean** |  | **0.750** |  |" in text
    assert "| Effusion | 1 | 0 | 1 | 2 |" in text and "| Hernia | 0 | 1 | 0 | 3 |" in text
    assert "- valid: no AUROC for Hernia." in text
    assert INT8_HEADING not in text  # no int8.json in the run


def test_unreadable_int8_json_leaves_the_section_out(tmp_path, caplog):
    run = _run(tmp_path)
    (tmp_path / INT8_JSON).write_text('{"accepted": true}', encoding="utf-8")  # keys missing
    with caplog.at_level(logging.WARNING, logger="training.report"):
        assert saved_int8_section(run) is None
        assert INT8_HEADING not in render_report(run, _metrics())
    assert "no int8 section" in caplog.text


def test_int8_section_replaces_only_itself():
    text = "# Report\n\nintro\n\n## int8\n\nold\n\n## Later\n\nkept\n"
    new = with_int8_section(text, "## int8\n\nnew\n")
    assert "old" not in new and "new" in new and new.index("## int8") < new.index("## Later") and "kept" in new
    assert with_int8_section("# R\n", "## int8\n\nx\n") == "# R\n\n## int8\n\nx\n"


def test_plots_are_pngs(tmp_path):
    roc, pr = tmp_path / "roc.png", tmp_path / "pr.png"
    plot_curves(roc, pr, LABELS, Y, P, "valid (4 films)")
    assert roc.read_bytes()[:8] == pr.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
