"""View ▸ Technique and demographics overlay (#14, IHE Basic Image Review): four-corner text on
screen only, from the guarded header readers; never exported, never logged; remembered."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from dicomfactory import DX_IMAGE, PHI_VALUES, build_dicom
from PySide6.QtTest import QTest
from uihelpers import WAIT_MS, open_and_wait, shown

from cxrviewer.io import read_film
from cxrviewer.io.dicom_header import overlay_attributes
from cxrviewer.paths import samples_dir
from cxrviewer.ui.film_overlay import Corners, age, corner_lines, dicom_time, person_name
from cxrviewer.ui.film_view import qimage_to_rgb

pytestmark = pytest.mark.gui

NAME, PID, _BORN = PHI_VALUES
TECHNIQUE = {
    "PatientSex": "F", "PatientAge": "080Y", "StudyDate": "20240102", "StudyTime": "101530.25",
    "AccessionNumber": "ACC-77", "InstitutionName": "General Hospital", "ViewPosition": "PA",
    "KVP": "125", "ExposureInuAs": 3200, "DistanceSourceToDetector": "1800", "DetectorType": "SCINTILLATOR",
    "EstimatedRadiographicMagnificationFactor": "1.1", "BodyPartExamined": "CHEST",
}


def chest_dicom(path: Path, **tags) -> Path:
    """A 12-bit DX film (a gradient and a bright disc) with patient and technique tags."""
    h, w = 320, 256
    yy, xx = np.mgrid[0:h, 0:w]
    pixels = (600 + 8 * yy + 1500 * ((yy - 150) ** 2 + (xx - 120) ** 2 < 50**2)).astype(np.uint16)
    return build_dicom(path, pixels, sop_class=DX_IMAGE, modality="DX", bits_stored=12,
                       window=(2000, 3000), **{**TECHNIQUE, **tags})


def overlay_painted(qtbot, window, view=None):
    """What the view's viewport shows (the picture and anything over it), once drawn."""
    shown(qtbot, window)
    view = view or window.view
    return qimage_to_rgb(view.grab(view.viewport().geometry()).toImage())


def test_corner_text_from_the_header_absent_values_left_out(tmp_path):
    path = chest_dicom(tmp_path / "a.dcm")
    film = read_film(path)
    fields = overlay_attributes(path)
    c = corner_lines(film, fields, None, 0.5)
    assert c.top_left == ("Doe, Jane", f"ID {PID}", "F · 80 y · born 1945-01-01")
    assert c.top_right == ("General Hospital", "2024-01-02 10:15:30", "Acc ACC-77")
    assert c.bottom_left == ("DX · CHEST · PA", "125 kVp · 3.2 mAs", "SID 1800 mm",
                             "Detector SCINTILLATOR · ERMF 1.100")
    assert c.bottom_right == ("W 3000  L 2000 · window 1 (file)", "Zoom 50%", "256 × 320 px")

    bare = chest_dicom(tmp_path / "b.dcm", **{k: None for k in TECHNIQUE}, PatientName=None, PatientID=None,
                       PatientBirthDate=None, Exposure=5)
    c = corner_lines(read_film(bare), overlay_attributes(bare), None, None)
    assert c.top_left == () and c.top_right == ()
    assert c.bottom_left == ("DX", "5 mAs")  # nothing guessed, nothing empty
    png = read_film(samples_dir() / "00000103_000.png")
    c = corner_lines(png, None, None, 1.0)
    assert c == Corners(top_left=("00000103_000.png",), bottom_right=(c.bottom_right[0], "Zoom 100%", "1024 × 1024 px"))
    assert person_name("Doe^Jane^Q^^") == "Doe, Jane Q" and person_name("Doe") == "Doe"
    assert age("045Y") == "45 y" and age("003M") == "3 mo" and dicom_time("0915") == "09:15"


def test_overlay_key_paints_the_corners_of_the_view_and_follows_zoom_window_rotation(qtbot, window, tmp_path):
    path = chest_dicom(tmp_path / "chest.dcm")
    open_and_wait(qtbot, window, [path])
    assert window.overlay.on is False and not window.act_overlay.isChecked()  # off by default
    plain = overlay_painted(qtbot, window)

    QTest.keyClick(window, "o")
    assert window.act_overlay.isChecked() and window.overlay.on
    layer = window.overlay.main.layer
    qtbot.waitUntil(lambda: "Doe, Jane" in layer.corners.top_left, timeout=WAIT_MS)
    assert "125 kVp · 3.2 mAs" in layer.corners.bottom_left
    assert "Acc ACC-77" in layer.corners.top_right
    painted = overlay_painted(qtbot, window)
    changed = np.any(painted != plain, axis=2)
    h, w = changed.shape
    for rows in (slice(0, h // 5), slice(-h // 5, None)):
        for cols in (slice(0, w // 3), slice(-w // 3, None)):
            assert changed[rows, cols].any()  # text in each corner of the view
    assert not changed[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].any()  # the film itself untouched
    assert np.array_equal(shown(qtbot, window), window.rendered_rgb())  # the rendered picture has no text

    zoom_line = layer.corners.bottom_right[1]
    window.view.zoom_by(4.0)
    assert layer.corners.bottom_right[1] != zoom_line and layer.corners.bottom_right[1].startswith("Zoom ")
    # panning moves the film, not the text
    for bar in (window.view.horizontalScrollBar(), window.view.verticalScrollBar()):
        assert bar.maximum() > 0
        bar.setValue(bar.maximum() // 2)
    assert layer.geometry() == window.view.viewport().geometry()
    panned = overlay_painted(qtbot, window)
    layer.hide()
    panned_off = overlay_painted(qtbot, window)
    layer.show()
    changed = np.any(panned != panned_off, axis=2)
    assert changed[: h // 5, : w // 3].any() and changed[-h // 5 :, -w // 3 :].any()
    assert not changed[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].any()
    QTest.keyClick(window, "0")  # full range: the window line follows, in modality units
    qtbot.waitUntil(lambda: layer.corners.bottom_right[0].endswith("· full range"), timeout=WAIT_MS)

    # rotated: the film turns, the text stays in the view's corners, upright and the same
    window.view.fit()
    before = layer.corners
    QTest.keyClick(window, ".")
    turned_on = overlay_painted(qtbot, window)
    QTest.keyClick(window, "o")
    assert not layer.isVisible()
    turned_off = overlay_painted(qtbot, window)
    assert layer.corners.top_left == before.top_left and layer.corners.bottom_left == before.bottom_left
    changed = np.any(turned_on != turned_off, axis=2)
    assert changed[: h // 5, : w // 3].any() and changed[-h // 5 :, -w // 3 :].any()
    assert not changed[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3].any()


def test_a_png_gets_its_name_size_window_and_zoom_only(qtbot, window):
    png = samples_dir() / "00000103_000.png"
    open_and_wait(qtbot, window, [png])
    window.act_overlay.trigger()
    layer = window.overlay.main.layer
    qtbot.waitUntil(lambda: bool(layer.corners.bottom_right), timeout=WAIT_MS)
    assert layer.corners.top_left == ("00000103_000.png",)
    assert layer.corners.top_right == () and layer.corners.bottom_left == ()
    assert layer.corners.bottom_right[1:] == (f"Zoom {100 * window.view.zoom:.0f}%", "1024 × 1024 px")


def test_overlay_is_never_exported_nor_logged(qtbot, window, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    path = chest_dicom(tmp_path / "chest.dcm")
    open_and_wait(qtbot, window, [path])

    def export(out: Path) -> bytes:
        with qtbot.waitSignal(window.session.exported, timeout=WAIT_MS):
            assert window.session.export(out)
        return out.read_bytes()

    off = export(tmp_path / "off.png")
    window.act_overlay.trigger()
    qtbot.waitUntil(lambda: "Doe, Jane" in window.overlay.main.layer.corners.top_left, timeout=WAIT_MS)
    on = export(tmp_path / "on.png")
    assert on == off  # byte-identical: the overlay is on screen only
    sc = tmp_path / "on-sc.dcm"
    with qtbot.waitSignal(window.session.exported, timeout=WAIT_MS):
        assert window.session.export(sc, fmt="dicom-sc", anonymize=True)
    assert b"Doe" not in sc.read_bytes() and PID.encode() not in sc.read_bytes()
    for secret in ("Doe", "Jane", PID, "ACC-77", "General Hospital"):
        assert secret not in caplog.text


def test_the_choice_is_remembered(qtbot, make_window, tmp_path):
    w = make_window()
    assert not w.overlay.on
    w.act_overlay.trigger()
    w.close()
    w2 = make_window()
    assert w2.overlay.on and w2.act_overlay.isChecked() and w2.prefs.overlay
    open_and_wait(qtbot, w2, [chest_dicom(tmp_path / "c.dcm")])
    qtbot.waitUntil(lambda: "Doe, Jane" in w2.overlay.main.layer.corners.top_left, timeout=WAIT_MS)
    w2.act_overlay.trigger()
    w2.close()
    assert not make_window().overlay.on


def test_the_compared_film_gets_its_own_overlay(qtbot, window, tmp_path):
    png = samples_dir() / "00000103_000.png"
    dcm = chest_dicom(tmp_path / "prior.dcm", PatientName="Roe^Richard", AccessionNumber="ACC-1")
    open_and_wait(qtbot, window, [png, dcm])
    window.model.set_current(0)
    qtbot.waitUntil(lambda: window.model.film is not None and window.model.film.source == png, timeout=WAIT_MS)
    window.act_overlay.trigger()
    window.act_compare.trigger()
    second = window.overlay.compare.layer
    qtbot.waitUntil(lambda: "Roe, Richard" in second.corners.top_left, timeout=WAIT_MS)
    assert second.isVisible() and "Acc ACC-1" in second.corners.top_right
    assert window.overlay.main.layer.corners.top_left == (png.name,)  # each pane its own film's text


def test_a_folder_run_with_the_overlay_on_keeps_patients_out_of_the_csv(qtbot, window, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    window.act_overlay.trigger()
    folder = tmp_path / "films"
    folder.mkdir()
    for i in range(2):
        chest_dicom(folder / f"{i}.dcm")
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS):
        assert window.open_paths([folder])
    qtbot.waitUntil(lambda: "Doe, Jane" in window.overlay.main.layer.corners.top_left, timeout=WAIT_MS)
    csv = Path(window.session.last_results).read_text()
    assert "0.dcm" in csv and "1.dcm" in csv
    for secret in ("Doe", PID, "ACC-77", "General Hospital"):
        assert secret not in csv and secret not in caplog.text
