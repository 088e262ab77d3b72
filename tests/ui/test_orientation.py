"""Rotate and flip (display only: heatmaps follow), orientation and laterality markers (#14)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtTest import QTest  # noqa: E402
from uihelpers import open_and_wait, shown  # noqa: E402

from cxrviewer.cli import main  # noqa: E402
from cxrviewer.io import read_film  # noqa: E402
from cxrviewer.render import RenderOptions, annotate, marker_texts, picture, select_classes  # noqa: E402
from cxrviewer import heatmap  # noqa: E402
from cxrviewer.types import Orientation  # noqa: E402

pytestmark = pytest.mark.gui

RG3 = "j2k_mono1"  # RG3 and its generated twin: Patient Orientation R\F, Image Laterality R, View Position AP


def test_rotate_and_flip_turn_the_film_and_its_heatmaps(qtbot, window, nih_film):
    open_and_wait(qtbot, window, [nih_film])
    # one finding: several are drawn with a legend that stays upright in the bottom-left corner
    # (like the markers), which a turned picture does not carry along
    first = heatmap.active(window.model.prediction, window.model.prediction.labels)[0]
    window.model.set_display(policy="custom", custom=(first,), markers=False)
    before = shown(qtbot, window)
    assert window.model.prediction is not None
    QTest.keyClick(window, ".")
    assert window.model.display.orientation == Orientation(1)
    np.testing.assert_array_equal(shown(qtbot, window), np.rot90(before, -1))  # the heatmaps turned too
    QTest.keyClick(window, "h")
    np.testing.assert_array_equal(shown(qtbot, window), np.rot90(before, -1)[:, ::-1])
    QTest.keyClick(window, ",")  # a left turn of the mirrored picture: a half turn, mirrored
    np.testing.assert_array_equal(shown(qtbot, window), before[::-1])
    QTest.keyClick(window, "v")
    assert window.model.display.orientation == Orientation()
    np.testing.assert_array_equal(shown(qtbot, window), before)
    QTest.keyClick(window, "v")
    np.testing.assert_array_equal(shown(qtbot, window), before[::-1])
    # the model never saw any of it
    assert window.model.film.pixels.shape == before.shape[:2]


def test_the_cursor_reads_the_film_pixel_under_it_when_turned(qtbot, window, nih_film):
    open_and_wait(qtbot, window, [nih_film])
    window.model.turn(1)
    film = window.model.film
    stored = film.gray.stored
    # after a clockwise quarter turn the picture's pixel (x, y) is the film's (y, H - 1 - x)
    x, y = 3, 10
    window.view.hovered.emit(x, y)
    assert window.cursor_label.text().split(" · ")[0] == f"x {y}  y {film.height - 1 - x}  value {stored[film.height - 1 - x, y]}"


def test_markers_come_from_the_header_and_turn_with_the_film(qtbot, window, dicom_corpus, nih_film):
    film = read_film(dicom_corpus[RG3])
    assert film.metadata["patient_orientation"] == ("R", "F")
    assert marker_texts(film, Orientation()) == (("L", "R", "H", "F"), "AP R")
    assert marker_texts(film, Orientation(1)) == (("F", "H", "L", "R"), "AP R")
    assert marker_texts(film, Orientation(0, True)) == (("R", "L", "H", "F"), "AP R")
    png = read_film(nih_film)
    assert marker_texts(png, Orientation()) == (None, "")  # nothing guessed

    open_and_wait(qtbot, window, [dicom_corpus[RG3]])
    with_markers = shown(qtbot, window)
    window.act_markers.trigger()
    assert window.model.display.markers is False
    without = shown(qtbot, window)
    changed = np.any(with_markers != without, axis=2)
    h, w = changed.shape
    # a letter at the middle of each edge and the corner text, nothing elsewhere
    assert changed[: h // 8, : w // 4].any() and changed[h // 3 : 2 * h // 3, : w // 10].any()
    assert changed[h // 3 : 2 * h // 3, -w // 10 :].any() and changed[-h // 10 :, w // 3 : 2 * w // 3].any()
    assert not changed[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4].any()


def test_export_rotate_and_flip_draw_what_the_app_draws(tmp_path, tiny_model, classifier, nih_images):
    src = nih_images[0]
    out = tmp_path / "turned.png"
    assert main(["export", str(src), "--out", str(out), "--rotate", "90", "--flip", "h", "--classes", "all",
                 "--model", str(tiny_model)]) == 0
    film = read_film(src)
    pred = classifier.predict_one(film)
    opts = RenderOptions(select_classes(pred, "all"), orientation=Orientation(1).flipped())
    want = annotate(film, pred, classifier.info, opts)
    np.testing.assert_array_equal(cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB), want)
    one = dataclasses.replace(opts, classes=heatmap.active(pred, pred.labels)[:1])  # no upright legend
    plain = picture(film, pred, dataclasses.replace(one, orientation=Orientation()))
    np.testing.assert_array_equal(picture(film, pred, one), np.rot90(plain, -1)[:, ::-1])
    assert Path(out).is_file()
