"""scripts/eval_localization.py: IoU and pointing game against radiologist-style boxes.

A synthetic 1024 px film with one bright square and the tiny model (whose class maps follow
brightness) give a known answer: a box on the square is hit with a high IoU, a box elsewhere is
missed, the NIH label spelling "Infiltrate" is mapped to the model's "Infiltration", and films
that are not in the folder are left out.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
import json

import numpy as np

from helpers import REPO, write_png
from tinymodel import build_tiny_model, tiny_info


def _script():
    spec = importlib.util.spec_from_file_location("eval_localization", REPO / "scripts" / "eval_localization.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_iou():
    iou = _script().iou
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert abs(iou((0, 0, 10, 10), (5, 0, 10, 10)) - 50 / 150) < 1e-12


def test_boxes_on_and_off_the_bright_square(tmp_path, capsys):
    images = tmp_path / "images"
    images.mkdir()
    px = np.full((1024, 1024), 0.2, np.float32)
    px[128:384, 640:896] = 1.0  # the "finding": rows 128-383, columns 640-895
    write_png(images / "film.png", px)
    boxes = tmp_path / "BBox_List_2017.csv.gz"
    with gzip.open(boxes, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Image Index", "Finding Label", "Bbox [x", "y", "w", "h]"])
        w.writerow(["film.png", "Infiltrate", 640, 128, 256, 256])  # on the square, NIH spelling
        w.writerow(["film.png", "Mass", 64, 700, 200, 200])  # far from it
        w.writerow(["not-here.png", "Mass", 0, 0, 10, 10])  # a film that is not in the folder
    model = build_tiny_model(tmp_path / "tiny.onnx", tiny_info(256))
    out = tmp_path / "results.json"

    assert _script().main(["--images", str(images), "--boxes", str(boxes), "--model", str(model), "--json", str(out)]) == 0

    results = {r["label"]: r for r in json.loads(out.read_text())}
    assert set(results) == {"Infiltration", "Mass"}
    on, off = results["Infiltration"], results["Mass"]
    assert on["pointing_hit"] and on["best_iou"] > 0.4, on
    assert not off["pointing_hit"] and off["best_iou"] == 0.0, off
    assert "2 boxes on images present" in capsys.readouterr().out


def test_runs_as_the_readme_shows_without_shared_data(tmp_path, capsys):
    """#13: `python scripts/eval_localization.py` with no arguments on a fresh clone (no
    ../shared/data) measures the one radiologist box of the repository's NIH samples."""
    script = _script()
    script.SHARED = tmp_path / "no-shared-data"
    images, boxes = script.default_data()
    assert images == REPO / "resources" / "samples" and boxes.is_file()
    out = tmp_path / "results.json"
    assert script.main(["--json", str(out)]) == 0
    (result,) = json.loads(out.read_text())
    assert (result["image"], result["label"]) == ("00001153_004.png", "Atelectasis")
    assert 0.0 <= result["best_iou"] <= 1.0 and result["regions"] >= 0
    assert "1 boxes on images present" in capsys.readouterr().out
