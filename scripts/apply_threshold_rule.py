"""Apply the threshold rule of training.metrics to an exported model's metadata, without retraining.

A threshold is chosen from the validation films only where they hold at least MIN_POSITIVES
positive and MIN_NEGATIVES negative films of the label; other labels keep DEFAULT_THRESHOLD
(training/metrics.py, docs/training.md). Models exported before the rule carry Youden
thresholds picked from one or two positives. This script recounts the model's validation films
(the same data, the same split as its training run: training.data + training.split, checked
against the counts the model's metadata records), sets the default for every label the rule
does not allow, and records the rule in ``cxr.trained_on.thresholds``, which ``cxrviewer info``,
the About box and the app show. Only ``cxr.thresholds`` and ``cxr.trained_on`` change: the
weights, and so every probability, stay as they are.

    python scripts/apply_threshold_rule.py MODEL.onnx [--labels-csv CSV --images DIR]
        [--val-frac 0.2 --test-frac 0 --seed 0]     # the demo model's split (make_demo_model.sh)
    python scripts/apply_threshold_rule.py --check MODEL.onnx ...   # exit 1 if it does not follow the rule
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
import onnx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.data import load_labels_csv  # noqa: E402
from training.metrics import DEFAULT_THRESHOLD, threshold_record  # noqa: E402
from training.split import split_by_patient  # noqa: E402

logger = logging.getLogger("apply_threshold_rule")
PREFIX = "cxr."


def validation_labels(labels_csv: Path, images: Path, labels, val_frac: float, test_frac: float, seed: int) -> np.ndarray:
    """The validation films' labels (films × labels, in ``labels``' order), as the run split them."""
    table = load_labels_csv(labels_csv, images, list(labels))
    valid = split_by_patient(table.records, val_frac, test_frac, seed)["valid"]
    return np.array([r.values for r in valid], dtype=np.float64).reshape(len(valid), len(labels))


def ruled(props: dict[str, str], y_valid: np.ndarray) -> dict[str, str]:
    """``props`` with the thresholds and ``trained_on`` the rule gives for these validation labels."""
    labels = json.loads(props[PREFIX + "labels"])
    thresholds = json.loads(props[PREFIX + "thresholds"])
    trained_on = json.loads(props[PREFIX + "trained_on"])
    recorded = trained_on.get("split", {}).get("valid")
    if recorded is not None and int(recorded) != len(y_valid):
        raise SystemExit(f"The model was validated on {recorded} films but this split gives {len(y_valid)}: "
                         "not the same data or split; pass the run's --labels-csv/--images/--val-frac/--seed.")
    rule = threshold_record(labels, y_valid, "youden")
    new = {c: (DEFAULT_THRESHOLD if c in rule["defaulted"] else float(thresholds[c])) for c in labels}
    trained_on["thresholds"] = rule
    out = dict(props)
    out[PREFIX + "thresholds"] = json.dumps(new, allow_nan=False)
    out[PREFIX + "trained_on"] = json.dumps(trained_on, allow_nan=False)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--labels-csv", type=Path, default=Path("../shared/data/nih/labels.csv"))
    p.add_argument("--images", type=Path, default=Path("../shared/data/nih/images"))
    p.add_argument("--val-frac", type=float, default=0.2)
    p.add_argument("--test-frac", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--check", action="store_true", help="only check; exit 1 when the metadata does not follow the rule")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    model = onnx.load(str(args.model))
    props = {e.key: e.value for e in model.metadata_props}
    labels = json.loads(props[PREFIX + "labels"])
    y = validation_labels(args.labels_csv, args.images, labels, args.val_frac, args.test_frac, args.seed)
    new = ruled(props, y)
    positives = {c: int((y[:, i] == 1).sum()) for i, c in enumerate(labels)}
    logger.info("%d validation films; positives per label: %s", len(y), positives)
    logger.info("default threshold for: %s", ", ".join(json.loads(new[PREFIX + "trained_on"])["thresholds"]["defaulted"]) or "none")
    if args.check:
        same = all(json.loads(props.get(k, "null")) == json.loads(v) for k, v in new.items())
        logger.info("%s %s the rule", args.model, "follows" if same else "does NOT follow")
        return 0 if same else 1
    onnx.helper.set_model_props(model, new)
    onnx.save(model, str(args.model))
    logger.info("wrote %s", args.model)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
