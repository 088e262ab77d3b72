#!/usr/bin/env bash
# Regenerate the bundled demo model, resources/models/cxr-demo-densenet121-320.onnx.
#
# It is trained with the normal pipeline on the 74 real NIH ChestX-ray14 films in ../shared/data/nih
# (a demo: its predictions mean nothing, and its metadata says so). Regenerate it only when the
# model contract (docs/model-format.md) changes: it is a ~29 MB binary in git. (For format version 2,
# maps of the class score, it was not retrained: `cxr-train upgrade-maps` rewrote its maps.) (Its thresholds were
# set by scripts/apply_threshold_rule.py, without retraining, when the rule came in.)
# About 10 minutes on a 2-core CPU. Usage: scripts/make_demo_model.sh [RUN_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
RUN="${1:-/tmp/cxr-demo-run}"
DATA="${CXR_NIH_DATA:-../shared/data/nih}"
PY="${PYTHON:-python}"
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python

rm -rf "$RUN"
"$PY" -m training fit \
  --labels-csv "$DATA/labels.csv" --images "$DATA/images" \
  --out "$RUN" --input-size 320 --epochs 5 --batch-size 8 \
  --val-frac 0.2 --test-frac 0 --seed 0 \
  --demo --model-version demo-nih74-densenet121-320-v1
# `fit` evaluates and exports with training.metrics' threshold rule: a label whose validation films
# hold fewer than 5 positives or 5 negatives keeps the default threshold 0.5 (with 15 validation
# films, every label of the demo), and the metadata says so (cxr.trained_on.thresholds). Check it:
"$PY" scripts/apply_threshold_rule.py --check "$RUN/model.onnx" \
  --labels-csv "$DATA/labels.csv" --images "$DATA/images" --val-frac 0.2 --test-frac 0 --seed 0
cp "$RUN/model.onnx" resources/models/cxr-demo-densenet121-320.onnx
ls -l resources/models/cxr-demo-densenet121-320.onnx
