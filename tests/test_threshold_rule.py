"""The threshold rule reaches the model card: the bundled demo model's thresholds are the
default (15 validation films, 0-2 positives a label), and every front end says so."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

from cxrviewer.cli import main
from cxrviewer.model import Classifier
from cxrviewer.model_card import defaulted_thresholds, describe_training, model_card
from cxrviewer.paths import DEMO_MODEL_NAME, resource_path
from training.metrics import DEFAULT_THRESHOLD, MIN_POSITIVES

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("apply_threshold_rule", ROOT / "scripts" / "apply_threshold_rule.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_demo_model_keeps_the_default_for_every_label():
    clf = Classifier.load(resource_path("models", DEMO_MODEL_NAME))
    info = clf.info
    assert set(info.thresholds.values()) == {DEFAULT_THRESHOLD}
    assert defaulted_thresholds(info.trained_on) == set(info.labels)
    rule = info.trained_on["thresholds"]
    assert rule["method"] == "youden" and rule["min_positives"] == MIN_POSITIVES
    card = model_card(clf)
    assert card["default_thresholds"] == sorted(info.labels)
    text = describe_training(card["trained_on"])
    assert "at least 5 positives and 5 negatives" in text and "the default for 14 labels" in text


def test_info_prints_training_as_lines_and_marks_default_thresholds(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert '{"' not in out  # not raw JSON (issue #13)
    assert "               split: method by patient" in out
    rows = [line for line in out.splitlines() if line.startswith("  Edema ")]
    assert rows and "0.500 (default)" in rows[0]
    assert "too few validation films" in out


def test_the_script_applies_the_rule_to_metadata_only():
    mod = _script()
    labels = ["A", "B"]
    props = {
        "cxr.labels": json.dumps(labels),
        "cxr.thresholds": json.dumps({"A": 0.004, "B": 0.31}),
        "cxr.trained_on": json.dumps({"films": 20, "split": {"valid": 12}}),
        "cxr.ood": "untouched",
    }
    y = np.zeros((12, 2))
    y[0, 0] = 1  # A: one positive → default
    y[:6, 1] = 1  # B: 6 positives, 6 negatives → keeps its chosen threshold
    new = mod.ruled(props, y)
    assert json.loads(new["cxr.thresholds"]) == {"A": DEFAULT_THRESHOLD, "B": 0.31}
    assert json.loads(new["cxr.trained_on"])["thresholds"]["defaulted"] == ["A"]
    assert new["cxr.ood"] == "untouched" and new["cxr.labels"] == props["cxr.labels"]
