#!/usr/bin/env bash
# Build the desktop bundle and check it works: nothing of TensorFlow/Keras/tf2onnx/training inside;
# CLI `info`, `score` on the bundled samples, `export` to PNG and to DICOM SC from compressed DICOMs
# (JPEG baseline and JPEG 2000: the pylibjpeg codecs were bundled); the GUI offscreen on a sample
# film (it must load the bundled model and show a result), through both launchers.
# Usage: scripts/check_frozen.sh   (from the repo root, in an environment with the dev extra)
# Real DICOMs come from $CXR_DICOM_DIR (default ../shared/data/dicom); without them, compressed
# DICOMs are made from a sample film.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "check_frozen: $*"; }
fail() { echo "check_frozen: FAIL: $*" >&2; exit 1; }

rm -rf build/pyi dist/cxrviewer
start=$SECONDS
pyinstaller --noconfirm --log-level WARN --workpath build/pyi --distpath dist pyinstaller.spec
app=dist/cxrviewer
say "built in $((SECONDS - start)) s; bundle: $(du -sh "$app" | cut -f1)"

# --- what is inside: files on disk, and the Python modules in the executables' archive
if find "$app" -ipath '*tensorflow*' -o -ipath '*keras*' -o -ipath '*tf2onnx*' -o -path "$app/_internal/training*" | grep .; then
  fail "the bundle contains TensorFlow/Keras/tf2onnx/training files (above)"
fi
modules=$(pyi-archive_viewer -r -b "$app/cxrviewer")
grep -qx ' cxrviewer.ui.app' <<<"$modules" || fail "cannot list the bundled modules (no cxrviewer.ui.app)"
if grep -E '^ (tensorflow|keras|tf2onnx|training)(\.|$)' <<<"$modules"; then
  fail "the bundle contains TensorFlow/Keras/tf2onnx/training modules (above)"
fi
say "no TensorFlow, Keras, tf2onnx or training inside"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export CXRVIEWER_CACHE_DIR="$out/cache"  # the engine choice (auto) of this check, not the user's

# --- info: the bundled model, found through cxrviewer/paths.py from inside the bundle
"$app/cxrviewer" info --json > "$out/info.json"
python - "$out/info.json" "$app" <<'EOF'
import json, sys
from pathlib import Path
card = json.loads(Path(sys.argv[1]).read_text())
bundle = Path(sys.argv[2]).resolve()
assert Path(card["model"]).resolve().is_relative_to(bundle), f"model not from the bundle: {card['model']}"
assert card["demo"] and len(card["labels"]) == 14, card
print(f"check_frozen: info OK: {Path(card['model']).name}, {card['provider']}, {len(card['labels'])} labels")
EOF

# --- OpenVINO, when the build bundled it (pyinstaller.spec): it must really run the model there
if ls "$app"/_internal/openvino/libs/*intel_cpu_plugin* >/dev/null 2>&1; then
  "$app/cxrviewer" info --backend openvino --precision fp32 --json > "$out/info-ov.json" \
    || fail "the bundled OpenVINO cannot run the model"
  python - "$out/info-ov.json" <<'EOF'
import json, sys
engine = json.loads(open(sys.argv[1]).read())["engine"]
assert engine["backend"] == "openvino", engine
print(f"check_frozen: OpenVINO OK: {engine['name']}")
EOF
  "$app/cxrviewer" info > "$out/info-auto.txt" || fail "auto could not choose an engine in the bundle"
  say "auto: $(grep '^engine:' "$out/info-auto.txt")"
else
  say "OpenVINO not bundled (the app runs on ONNX Runtime)"
fi

# --- score the bundled samples
n=$(ls resources/samples/*.png | wc -l)
"$app/cxrviewer" score resources/samples --out "$out/r.csv" --no-progress
rows=$(($(wc -l < "$out/r.csv") - 1))
[ "$rows" -eq "$n" ] || fail "expected $n rows, got $rows"
[ "$(grep -c ',ok,' "$out/r.csv")" -eq "$n" ] || fail "not every sample scored"
say "score OK: $rows rows"

# --- export from compressed DICOMs: JPEG baseline (libjpeg) and JPEG 2000 (openjpeg)
dicoms=${CXR_DICOM_DIR:-../shared/data/dicom}
jpeg=$dicoms/torchxrayvision_siim_cr_chest.dcm
j2k=$dicoms/pydicom-data_RG3_J2KR.dcm
if [ ! -f "$jpeg" ] || [ ! -f "$j2k" ]; then
  say "no real DICOMs in $dicoms; making compressed ones from a sample film"
  jpeg=$out/jpeg.dcm j2k=$out/j2k.dcm
  python - "$(ls resources/samples/*.png | head -1)" "$jpeg" "$j2k" <<'EOF'
import sys
import cv2
from pydicom import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (ExplicitVRLittleEndian, JPEG2000Lossless, JPEGBaseline8Bit,
                         SecondaryCaptureImageStorage, generate_uid)
gray = cv2.imread(sys.argv[1], cv2.IMREAD_GRAYSCALE)
def film(syntax):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality, ds.Rows, ds.Columns = "OT", *gray.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    return ds
ds = film(JPEGBaseline8Bit)
ds.PixelData = encapsulate([cv2.imencode(".jpg", gray)[1].tobytes()])
ds.save_as(sys.argv[2], enforce_file_format=True)
ds = film(ExplicitVRLittleEndian)
ds.PixelData = gray.tobytes()
ds.compress(JPEG2000Lossless)  # pylibjpeg-openjpeg encodes
ds.save_as(sys.argv[3], enforce_file_format=True)
EOF
fi
"$app/cxrviewer" export "$jpeg" --out "$out/jpeg.png"
"$app/cxrviewer" export "$j2k" --format dicom-sc --out "$out/j2k-sc.dcm"
python - "$out/jpeg.png" "$out/j2k-sc.dcm" <<'EOF'
import sys
import cv2
import pydicom
png = cv2.imread(sys.argv[1], cv2.IMREAD_UNCHANGED)
assert png is not None and png.ndim == 3 and min(png.shape[:2]) >= 256, getattr(png, "shape", None)
sc = pydicom.dcmread(sys.argv[2])
assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7", sc.SOPClassUID  # Secondary Capture Image Storage
assert sc.PhotometricInterpretation == "RGB" and sc.pixel_array.shape == (sc.Rows, sc.Columns, 3)
print(f"check_frozen: export OK: PNG {png.shape[1]}x{png.shape[0]} from JPEG DICOM, "
      f"DICOM SC {sc.Columns}x{sc.Rows} RGB from JPEG 2000 DICOM")
EOF

# --- the GUI, offscreen: the console launcher on a sample film, the windowed one on the J2K DICOM
export QT_QPA_PLATFORM=offscreen
timeout 120 "$app/cxrviewer" --exit-after-result "$(ls resources/samples/*.png | head -1)" \
  || fail "the frozen GUI did not show a result for a sample film"
timeout 120 "$app/cxrviewer-gui" --exit-after-result "$j2k" \
  || fail "the frozen windowed launcher did not show a result for $j2k"
say "GUI OK: model loaded and findings shown (cxrviewer, cxrviewer-gui)"
say "frozen app OK ($((SECONDS - start)) s in all)"
