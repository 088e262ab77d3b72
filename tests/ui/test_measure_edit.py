"""Measurements a reader can edit and trust (#14): drag a point of a distance or an angle (under
rotation, mirror and zoom), Delete, a manual calibration (draw a known length), and the
cardiothoracic ratio. Driven by real mouse events on the film view, on generated films (a PNG
sample from resources/samples, DICOMs from tests/dicomfactory.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QEvent, QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402
from uihelpers import open_and_wait, shown  # noqa: E402

from cxrviewer.render import MEASURE_COLOR  # noqa: E402

pytestmark = pytest.mark.gui

SAMPLES = Path(__file__).resolve().parents[2] / "resources" / "samples"
LEFT = Qt.MouseButton.LeftButton


@pytest.fixture
def png(tmp_path) -> Path:
    """A real chest film as a PNG (1024 × 1024, no pixel size: lengths in pixels)."""
    out = tmp_path / "chest.png"
    shutil.copy(SAMPLES / "00000022_000.png", out)
    return out


@pytest.fixture
def png2(tmp_path) -> Path:
    out = tmp_path / "other.png"
    shutil.copy(SAMPLES / "00000103_000.png", out)
    return out


def make_dicom(path: Path, **elements) -> Path:
    from dicomfactory import build_dicom

    ramp = (np.add.outer(np.arange(300) * 3, np.arange(400) * 2) % 4096).astype(np.uint16)
    return build_dicom(path, ramp, bits_stored=12, window=(2048, 4096), modality="DX", **elements)


@pytest.fixture
def spaced(tmp_path) -> Path:
    """A 400 × 300 DICOM with Pixel Spacing 0.2 mm."""
    return make_dicom(tmp_path / "spaced.dcm", PixelSpacing=[0.2, 0.2])


# ------------------------------------------------------------------ helpers
def at(window, fx: float, fy: float) -> QPoint:
    """Where the view shows film point (fx, fy), in viewport pixels (display turns included)."""
    film = window.model.film
    sx, sy = window.model.display.orientation.to_screen(fx, fy, film.height, film.width)
    return window.view.mapFromScene(QPointF(sx, sy))


def mouse(window, kind: QEvent.Type, pos: QPoint, button=LEFT, buttons=LEFT) -> None:
    viewport = window.view.viewport()
    event = QMouseEvent(kind, QPointF(pos), QPointF(viewport.mapToGlobal(pos)), button, buttons,
                        Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(viewport, event)


def click(window, fx: float, fy: float) -> None:
    pos = at(window, fx, fy)
    mouse(window, QEvent.Type.MouseButtonPress, pos)
    mouse(window, QEvent.Type.MouseButtonRelease, pos, buttons=Qt.MouseButton.NoButton)


def drag(window, start: tuple[float, float], end: tuple[float, float], release: bool = True) -> None:
    """A left drag from film point ``start`` to ``end``, in a few moves."""
    a, b = at(window, *start), at(window, *end)
    mouse(window, QEvent.Type.MouseButtonPress, a)
    for t in (0.25, 0.5, 1.0):
        p = QPoint(round(a.x() + t * (b.x() - a.x())), round(a.y() + t * (b.y() - a.y())))
        mouse(window, QEvent.Type.MouseMove, p, button=Qt.MouseButton.NoButton)
    if release:
        mouse(window, QEvent.Type.MouseButtonRelease, b, buttons=Qt.MouseButton.NoButton)


def picture_xy(window, fx: float, fy: float) -> tuple[int, int]:
    film = window.model.film
    x, y = window.model.display.orientation.to_screen(fx, fy, film.height, film.width)
    return int(x), int(y)


def yellowish(rgb: np.ndarray, x: int, y: int, r: int = 2) -> bool:
    patch = rgb[max(0, y - r) : y + r + 1, max(0, x - r) : x + r + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(MEASURE_COLOR)).sum(axis=1) < 60).any())


def points(m) -> np.ndarray:
    return np.array(m.points)


def open_and_measure(qtbot, window, films, a, b) -> None:
    """Open ``films`` (markers off) and measure a distance from film point ``a`` to ``b``."""
    window.model.set_display(policy="none", markers=False)
    open_and_wait(qtbot, window, films)
    window.act_measure_distance.trigger()
    click(window, *a)
    click(window, *b)


# ------------------------------------------------------------------ editing
def test_drag_a_distance_end_under_rotation_mirror_and_zoom(qtbot, window, spaced):
    open_and_measure(qtbot, window, [spaced], (50.0, 50.0), (250.0, 50.0))
    (m,) = window.model.current_measurements()
    np.testing.assert_allclose(points(m), [(50, 50), (250, 50)], atol=1.0)
    window.act_measure_stop.trigger()  # editing works without a tool on (the drag does not pan)

    window.act_rotate_right.trigger()
    window.act_flip_h.trigger()
    shown(qtbot, window)
    window.view.zoom_by(1.5)
    zoom = window.view.zoom
    end = m.points[1]
    drag(window, end, (250.0, 150.0), release=False)
    (moved,) = window.model.current_measurements()
    np.testing.assert_allclose(points(moved)[0], points(m)[0])  # the other end stays
    np.testing.assert_allclose(points(moved)[1], (250, 150), atol=1.5)
    want = np.hypot(*(points(moved)[1] - points(moved)[0])) * 0.2
    # the value and the label follow while the button is still down
    assert window.measure.labels() == [f"Distance 1: {want:.1f} mm"]
    assert want == pytest.approx(np.hypot(200, 100) * 0.2, abs=0.5)
    mouse(window, QEvent.Type.MouseButtonRelease, at(window, 250.0, 150.0), buttons=Qt.MouseButton.NoButton)
    drawn = shown(qtbot, window)
    assert yellowish(drawn, *picture_xy(window, 150.0, 100.0))  # the new line's middle
    assert not yellowish(drawn, *picture_xy(window, 200.0, 50.0), r=1)  # the old line is gone
    assert window.view.zoom == pytest.approx(zoom)  # the drag did not pan or refit

    # Delete removes the selected one
    QTest.keyClick(window.view, Qt.Key.Key_Delete)
    assert window.model.current_measurements() == ()
    assert window.measure.labels() == []
    assert not yellowish(shown(qtbot, window), *picture_xy(window, 150.0, 100.0))


def test_drag_an_angle_vertex_and_delete_the_one_selected(qtbot, window, spaced):
    open_and_measure(qtbot, window, [spaced], (300.0, 250.0), (380.0, 250.0))
    window.act_measure_angle.trigger()
    for p in ((150.0, 50.0), (50.0, 50.0), (50.0, 150.0)):
        click(window, *p)
    window.act_measure_stop.trigger()
    d, a = window.model.current_measurements()
    assert d.value(window.model.calibration()) == pytest.approx(16.0, abs=0.3)
    assert a.value(None) == pytest.approx(90.0, abs=1.5)
    assert window.measure.labels() == [f"Distance 1: {d.label(window.model.calibration())}", f"Angle 2: {a.label(None)}"]
    window.act_rotate_left.trigger()
    # grabbing the distance's end selects the distance
    drag(window, window.model.current_measurements()[0].points[0], (300.0, 200.0))
    assert window.measure.list.currentRow() == 0
    # the angle's vertex
    vertex = window.model.current_measurements()[1].points[1]
    drag(window, vertex, (100.0, 50.0))
    angle = window.model.current_measurements()[1]
    np.testing.assert_allclose(points(angle)[1], (100, 50), atol=1.5)
    a, v, b = points(angle)
    cos = np.dot(a - v, b - v) / (np.linalg.norm(a - v) * np.linalg.norm(b - v))
    want = np.degrees(np.arccos(cos))
    assert want == pytest.approx(116.6, abs=1.0)
    assert window.measure.labels()[1] == f"Angle 2: {want:.1f}°"
    assert window.measure.list.currentRow() == 1
    drawn = shown(qtbot, window)
    assert yellowish(drawn, *picture_xy(window, 125.0, 50.0))  # on the moved arm
    QTest.keyClick(window.view, Qt.Key.Key_Delete)
    (left,) = window.model.current_measurements()
    assert left.kind == "distance"
    assert window.measure.labels() == [f"Distance 1: {left.label(window.model.calibration())}"]


# -------------------------------------------------------------- calibration
def calibrate(qtbot, window, a, b, mm: float) -> None:
    window.act_measure_calibrate.trigger()
    click(window, *a)
    click(window, *b)
    dialog = window.measure.dialog
    qtbot.waitUntil(dialog.isVisible)
    dialog.setDoubleValue(mm)
    dialog.accept()


def test_manual_calibration_of_a_png(qtbot, window, png, png2):
    open_and_measure(qtbot, window, [png, png2], (100.0, 500.0), (500.0, 500.0))
    (m,) = window.model.current_measurements()
    px = m.value(None)
    assert px == pytest.approx(400, abs=2)
    assert window.measure.labels() == [f"Distance 1: {px:.0f} px"]
    before = shown(qtbot, window)

    calibrate(qtbot, window, (100.0, 800.0), (600.0, 800.0), 100.0)  # 500 px = 100 mm
    cal = window.model.calibration()
    assert cal.kind == "manual" and cal.source == "manual calibration"
    assert window.model.film.calibration is None  # the film itself is not changed
    line = window.model.manual_calibration()
    assert cal.col_mm == pytest.approx(0.2, rel=0.01) and cal.row_mm == cal.col_mm
    assert window.measure.labels() == [f"Distance 1: {px * cal.col_mm:.1f} mm, manual calibration"]
    assert window.measure.note.text().startswith("Manual calibration")
    assert window.measure.reset_button.isVisibleTo(window.measure.dock)
    after = shown(qtbot, window)
    changed = np.argwhere((after != before).any(axis=2))
    assert len(changed) > 0  # the label is redrawn in mm ...
    # ... in the label, right of and above the line's end (500, 500), and nowhere else
    assert changed[:, 1].min() >= 495 and 440 <= changed[:, 0].min() and changed[:, 0].max() <= 500
    assert window.model.render_options().calibration == line  # exports draw the same
    # the status bar names the pixel size measured with, and that it is the manual one
    qtbot.waitUntil(lambda: "manual calibration" in window.film_label.text())
    assert f"pixel {cal.col_mm:.3f} × {cal.row_mm:.3f} mm" in window.film_label.text()

    # kept per film while the app runs
    window.model.step(+1)
    qtbot.waitUntil(lambda: window.model.film is not None and window.model.film.source == png2)
    assert window.model.calibration() is None
    assert "pixels" in window.measure.note.text()
    window.model.step(-1)
    qtbot.waitUntil(lambda: window.model.film is not None and window.model.film.source == png)
    assert window.model.calibration() == line
    assert window.measure.labels() == [f"Distance 1: {px * cal.col_mm:.1f} mm, manual calibration"]

    window.measure.reset_button.click()
    assert window.model.calibration() is None
    assert window.measure.labels() == [f"Distance 1: {px:.0f} px"]
    qtbot.waitUntil(lambda: "pixel size unknown" in window.film_label.text())
    np.testing.assert_array_equal(shown(qtbot, window), before)


def test_manual_calibration_overrides_pixel_spacing_and_resets(qtbot, window, spaced):
    open_and_measure(qtbot, window, [spaced], (50.0, 100.0), (350.0, 100.0))
    (m,) = window.model.current_measurements()
    assert window.measure.labels() == [f"Distance 1: {m.value(window.model.film.calibration):.1f} mm"]
    calibrate(qtbot, window, (50.0, 200.0), (250.0, 200.0), 50.0)  # 200 px = 50 mm
    cal = window.model.calibration()
    assert cal.kind == "manual" and cal.col_mm == pytest.approx(0.25, rel=0.01)
    assert window.measure.labels() == [f"Distance 1: {m.value(cal):.1f} mm, manual calibration"]
    assert "overrides the file's Pixel Spacing" in window.measure.note.text()
    window.act_measure_reset_calibration.trigger()
    assert window.model.calibration() == window.model.film.calibration
    assert window.measure.labels() == [f"Distance 1: {m.value(window.model.film.calibration):.1f} mm"]
    assert window.measure.note.text() == "Pixel Spacing (in the patient)."


def test_a_cancelled_calibration_changes_nothing(qtbot, window, png):
    open_and_wait(qtbot, window, [png])
    window.act_measure_calibrate.trigger()
    click(window, 100.0, 100.0)
    click(window, 300.0, 100.0)
    window.measure.dialog.reject()
    assert window.model.calibration() is None
    assert window.model.current_measurements() == ()


# ------------------------------------------------------ cardiothoracic ratio
def test_cardiothoracic_ratio_measured_painted_and_edited(qtbot, window, png):
    window.model.set_display(policy="none", markers=False)
    open_and_wait(qtbot, window, [png])
    before = shown(qtbot, window)
    window.act_measure_ctr.trigger()
    for p in ((400.0, 600.0), (600.0, 610.0), (200.0, 700.0), (800.0, 730.0)):
        click(window, *p)
    (m,) = window.model.current_measurements()
    assert m.kind == "ctr"
    p = points(m)
    assert p[1][1] == p[0][1] and p[3][1] == p[2][1]  # both widths horizontal on the film
    cardiac, thoracic = abs(p[1][0] - p[0][0]), abs(p[3][0] - p[2][0])
    assert cardiac / thoracic == pytest.approx(200 / 600, abs=0.01)
    assert window.measure.labels() == [
        f"Cardiothoracic ratio 1: CTR {cardiac / thoracic:.2f} (heart {cardiac:.0f} / thorax {thoracic:.0f} px)"]
    drawn = shown(qtbot, window)
    heart_mid, thorax_mid = (500, int(p[0][1])), (500, int(p[2][1]))
    assert yellowish(drawn, *heart_mid) and not yellowish(before, *heart_mid)
    assert yellowish(drawn, *thorax_mid) and not yellowish(before, *thorax_mid)
    # two separate widths: nothing joins the heart's right end to the thorax's left end
    assert not yellowish(drawn, 400, int((p[0][1] + p[2][1]) / 2), r=1)

    # drag the heart's right end out and up: the width stays horizontal, the ratio follows
    window.act_measure_stop.trigger()
    drag(window, tuple(p[1]), (700.0, 560.0))
    q = points(window.model.current_measurements()[0])
    assert q[0][1] == q[1][1] == pytest.approx(560, abs=1.5)
    assert abs(q[1][0] - q[0][0]) / thoracic == pytest.approx(300 / 600, abs=0.01)
    assert window.measure.labels()[0].startswith("Cardiothoracic ratio 1: CTR 0.50 (heart ")

    # a manual calibration gives the widths in mm; the ratio has no unit and does not change
    calibrate(qtbot, window, (100.0, 900.0), (600.0, 900.0), 100.0)
    assert window.measure.labels()[0].startswith("Cardiothoracic ratio 1: CTR 0.50 (heart ")
    assert window.measure.labels()[0].endswith(" mm, manual calibration)")


# ---------------------------------------------------------------- exports
def test_exports_carry_the_manual_calibration(qtbot, window, spaced, tmp_path):
    """The SR written from the app holds the distance measured with the manual calibration, and
    says so; the PNG export draws what the view shows."""
    import highdicom as hd

    from cxrviewer.dicom import codes

    open_and_measure(qtbot, window, [spaced], (50.0, 100.0), (350.0, 100.0))
    calibrate(qtbot, window, (50.0, 200.0), (250.0, 200.0), 50.0)
    (m,) = window.model.current_measurements()
    want = m.value(window.model.calibration())
    with qtbot.waitSignal(window.session.exported, timeout=20_000) as blocker:
        assert window.session.export(tmp_path / "sr.dcm", "dicom-sr")
    groups = hd.sr.srread(blocker.args[0]).content.get_image_measurement_groups()
    (length,) = next(g for g in groups if str(g.tracking_identifier) == "distance 1").get_measurements()
    assert length.value == pytest.approx(want, abs=1e-3)
    assert length.method == codes.CALIBRATION_METHODS["manual"]

    import cv2

    with qtbot.waitSignal(window.session.exported, timeout=20_000) as blocker:
        assert window.session.export(tmp_path / "out.png", "png")
    exported = cv2.cvtColor(cv2.imread(blocker.args[0]), cv2.COLOR_BGR2RGB)
    import dataclasses

    from cxrviewer.render import annotate

    film, pred, info = window.model.film, window.model.prediction, window.model.classifier.info
    options = window.model.render_options()
    np.testing.assert_array_equal(exported, annotate(film, pred, info, options))
    # ... which is not what the file's own Pixel Spacing gives: the label is the manual one
    assert (exported != annotate(film, pred, info, dataclasses.replace(options, calibration=None))).any()


# ------------------------------------------------------ points being clicked
def test_the_points_of_a_measurement_being_clicked_are_shown(qtbot, window, png, png2):
    """Until a measurement is complete the renderer does not draw it; the view marks the points
    clicked so far (on screen), and forgets them when the film changes."""
    window.model.set_display(policy="none", markers=False)
    open_and_wait(qtbot, window, [png, png2])
    window.resize(900, 900)
    window.act_measure_angle.trigger()
    before = window.view.grab().toImage()
    click(window, 300.0, 400.0)
    (mark,) = window.view.pending
    assert np.allclose(mark, picture_xy(window, 300.0, 400.0), atol=6)  # a viewport pixel is ~1.1 film px
    click(window, 500.0, 400.0)
    assert len(window.view.pending) == 2
    after = window.view.grab().toImage()
    # the marks are painted on the viewport where the clicks were
    spot = at(window, 400.0, 400.0)  # on the line between the two points
    assert before.pixelColor(spot) != after.pixelColor(spot)
    click(window, 500.0, 200.0)  # the third point completes the angle
    assert window.view.pending == () and len(window.model.current_measurements()) == 1

    click(window, 100.0, 100.0)
    assert len(window.view.pending) == 1
    window.model.step(+1)
    qtbot.waitUntil(lambda: window.model.film is not None and window.model.film.source == png2)
    assert window.view.pending == ()
