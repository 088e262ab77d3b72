#!/usr/bin/env bash
# Run the real cxrviewer window under Xvfb (X11, Qt platform "xcb") on the sample films with the
# heatmaps on, and save what the screen shows to docs/screenshot.png.
#
#   scripts/screenshot.sh [OUT.png] [FILE_OR_FOLDER...]
#
# Default inputs: one sample film, then the whole samples folder (so the film strip shows; the
# picture is taken once the folder run has finished). Env: PYTHON (default .venv/bin/python),
# CLASSES (default "positives"; e.g. "Mass,Effusion"), SIZE (default 1480x920), CXRVIEWER_MODEL
# (another model), MODE (default "heatmap"; "contour" for labelled outlines). Without the bundled demo model (resources/models/cxr-demo-densenet121-320.onnx)
# the tiny test model is used, and the status bar says so. The app grabs its own window
# (--screenshot uses QScreen.grabWindow on X11), so no X screenshot tool is needed.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
OUT=${1:-docs/screenshot.png}
shift || true
if [ "$#" -eq 0 ]; then
    set -- resources/samples/00000103_000.png resources/samples
fi
CLASSES=${CLASSES:-positives}
MODE=${MODE:-heatmap}
SIZE=${SIZE:-1480x920}

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
export CXRVIEWER_SETTINGS="$TMP/settings.ini"   # never the user's settings

MODEL_ARGS=()
if [ -z "${CXRVIEWER_MODEL:-}" ] && [ ! -f resources/models/cxr-demo-densenet121-320.onnx ]; then
    echo "screenshot.sh: no demo model yet; using the tiny test model" >&2
    "$PY" - "$TMP/tiny.onnx" <<'PYEOF'
import sys
sys.path.insert(0, "tests")
from pathlib import Path
from tinymodel import build_tiny_model, tiny_info
build_tiny_model(Path(sys.argv[1]), tiny_info(64))
PYEOF
    MODEL_ARGS=(--model "$TMP/tiny.onnx")
fi

command -v xvfb-run >/dev/null || { echo "screenshot.sh: xvfb-run is not installed (apt-get install xvfb)" >&2; exit 2; }
W=${SIZE%x*}; H=${SIZE#*x}
# the first argument must be a path: `cxrviewer --option ...` would be read as the CLI
xvfb-run -a -s "-screen 0 $((W + 40))x$((H + 40))x24" \
    env QT_QPA_PLATFORM=xcb "$PY" -m cxrviewer "$@" "${MODEL_ARGS[@]}" \
    --classes "$CLASSES" --alpha 0.45 --mode "$MODE" --results-dir "$TMP/results" \
    --screenshot "$OUT" --window-size "$SIZE"
echo "wrote $OUT" >&2
