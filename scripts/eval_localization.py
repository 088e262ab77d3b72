"""Localization against the NIH radiologist boxes (BBox_List_2017): IoU and pointing game.

For every image in the images folder that has a box, the model's class map of the box's label
gives regions (cxrviewer.heatmap.regions, default level/min-area); we report the IoU of the
best-overlapping region box with the radiologist's box, and whether the map's peak falls inside
the box (the pointing game). With the demo model the numbers mean little; the pipeline is the
one a real model is measured with.

    python scripts/eval_localization.py [--images DIR] [--boxes BBox_List_2017.csv.gz] [--model M.onnx]

Without --images/--boxes it uses ../shared/data/nih where that folder is present, and otherwise
the NIH samples the repository carries (resources/samples/: one box, on 00001153_004.png).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data" / "nih"
SAMPLES = REPO / "resources" / "samples"


def default_data() -> tuple[Path, Path]:
    """(images, boxes): the full NIH box list where ../shared/data is, else the repo's samples."""
    if (SHARED / "BBox_List_2017.csv.gz").is_file() and (SHARED / "images").is_dir():
        return SHARED / "images", SHARED / "BBox_List_2017.csv.gz"
    return SAMPLES, SAMPLES / "bbox.csv"
#: BBox_List_2017 spells one label differently from Data_Entry_2017 and the model.
LABEL_FIX = {"Infiltrate": "Infiltration"}


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    images, boxes = default_data()
    ap.add_argument("--images", type=Path, default=images)
    ap.add_argument("--boxes", type=Path, default=boxes)
    ap.add_argument("--model", type=Path)
    ap.add_argument("--json", type=Path, help="also write the per-box results here")
    args = ap.parse_args(argv)

    from cxrviewer import heatmap
    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier
    from cxrviewer.paths import default_model_path

    clf = Classifier.load(args.model or default_model_path())
    opener = gzip.open if args.boxes.suffix == ".gz" else open
    with opener(args.boxes, "rt", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        boxes = [(r[0], LABEL_FIX.get(r[1], r[1]), *map(float, r[2:6])) for r in reader if len(r) >= 6]
    results = []
    for name, label, x, y, w, h in boxes:
        path = args.images / name
        if not path.is_file() or label not in clf.info.labels:
            continue
        film = read_film(path)
        pred = clf.predict_one(film)
        # boxes are in 1024 px coordinates (the NIH PNG size)
        sx, sy = film.width / 1024.0, film.height / 1024.0
        truth = (x * sx, y * sy, w * sx, h * sy)
        regs = heatmap.regions(pred, label, (film.height, film.width))
        best = max((iou(r.box, truth) for r in regs), default=0.0)
        heat = heatmap.display_map(pred, label, (film.height, film.width))
        py, px = np.unravel_index(int(np.argmax(heat)), heat.shape)
        hit = truth[0] <= px <= truth[0] + truth[2] and truth[1] <= py <= truth[1] + truth[3]
        results.append({"image": name, "label": label, "probability": round(pred.probability(label), 4),
                         "regions": len(regs), "best_iou": round(best, 4), "pointing_hit": bool(hit)})
    print(f"model {clf.info.model_version}{' (DEMO)' if clf.info.demo else ''}; {len(results)} boxes on images present")
    for r in results:
        print(f"  {r['image']}  {r['label']:<14} p={r['probability']:.3f}  regions={r['regions']}  IoU={r['best_iou']:.3f}  pointing={'hit' if r['pointing_hit'] else 'miss'}")
    if results:
        print(f"mean IoU {np.mean([r['best_iou'] for r in results]):.3f}; pointing game {np.mean([r['pointing_hit'] for r in results]):.2%}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
