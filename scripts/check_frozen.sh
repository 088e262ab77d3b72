#!/usr/bin/env bash
# Build the desktop bundle and check it works: CLI score on the bundled samples, and the GUI
# offscreen on a sample film (it must load the bundled model and show a result).
# Usage: scripts/check_frozen.sh   (from the repo root, in an environment with the dev extra)
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf build/pyi dist/cxrviewer
pyinstaller --noconfirm --log-level WARN --workpath build/pyi --distpath dist pyinstaller.spec
app=dist/cxrviewer
echo "bundle: $(du -sh "$app" | cut -f1)"
if find "$app" -ipath '*tensorflow*' -o -ipath '*keras*' -o -ipath '*tf2onnx*' | grep -q .; then
  echo "the bundle contains TensorFlow/Keras/tf2onnx" >&2; exit 1
fi
out=$(mktemp -d)
"$app/cxrviewer" score resources/samples --out "$out/r.csv" --no-progress
rows=$(($(wc -l < "$out/r.csv") - 1))
n=$(ls resources/samples/*.png | wc -l)
[ "$rows" -eq "$n" ] || { echo "expected $n rows, got $rows" >&2; exit 1; }
grep -c ',ok,' "$out/r.csv" | grep -qx "$n" || { echo "not every sample scored" >&2; exit 1; }
"$app/cxrviewer" info | head -3
QT_QPA_PLATFORM=offscreen timeout 120 "$app/cxrviewer" --exit-after-result "$(ls resources/samples/*.png | head -1)"
echo "frozen app OK: CLI scored $rows samples, GUI showed a result"
