"""Distances and angles in the app: calibrated as the standard says, drawn, listed, deleted,
kept per film, turning with the film (#14)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pydicom
import pytest

pytest.importorskip("PySide6")

from uihelpers import open_and_wait, shown  # noqa: E402

from cxrviewer.render import MEASURE_COLOR  # noqa: E402

pytestmark = pytest.mark.gui

SIIM = "jpeg_baseline_chest"  # SIIM's chest CR and its generated twin: Pixel Spacing 0.168 mm


@pytest.fixture
def spaced(dicom_corpus) -> Path:
    return dicom_corpus[SIIM]


@pytest.fixture
def imager_only(dicom_corpus, tmp_path) -> Path:
    """The same film with only Imager Pixel Spacing (as many DX/CR files have)."""
    ds = pydicom.dcmread(dicom_corpus[SIIM])
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.2, 0.2]
    out = tmp_path / "imager-only.dcm"
    ds.save_as(out)
    return out


def click(window, film_x: float, film_y: float) -> None:
    window.view.pointPicked.emit(film_x, film_y)


def yellowish(rgb: np.ndarray, x: int, y: int, r: int = 2) -> bool:
    patch = rgb[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 3).astype(int)
    return bool((np.abs(patch - np.array(MEASURE_COLOR)).sum(axis=1) < 60).any())


def test_a_distance_on_a_film_with_pixel_spacing(qtbot, window, spaced):
    window.model.set_display(policy="none", markers=False)
    open_and_wait(qtbot, window, [spaced])
    before = shown(qtbot, window)
    window.act_measure_distance.trigger()
    click(window, 100.5, 200.5)
    assert window.model.current_measurements() == ()  # one point is not a distance yet
    click(window, 400.5, 600.5)
    (m,) = window.model.current_measurements()
    assert m.value(window.model.film.calibration) == pytest.approx(500 * 0.168)
    assert window.measure.labels() == ["Distance 1: 84.0 mm"]
    assert window.measure.note.text() == "Pixel Spacing (in the patient)."
    drawn = shown(qtbot, window)
    assert yellowish(drawn, 250, 400) and not yellowish(before, 250, 400)  # the line's middle

    window.act_measure_delete.trigger()
    assert window.model.current_measurements() == ()
    assert window.measure.labels() == []
    np.testing.assert_array_equal(shown(qtbot, window), before)


def test_a_distance_on_a_film_with_only_imager_pixel_spacing(qtbot, window, imager_only):
    open_and_wait(qtbot, window, [imager_only])
    assert window.model.film.calibration.kind == "detector"
    window.act_measure_distance.trigger()
    click(window, 10.0, 10.0)
    click(window, 10.0, 310.0)
    assert window.measure.labels() == ["Distance 1: 60.0 mm at detector"]
    assert "at the detector" in window.measure.note.text()


def test_an_angle_and_measurements_kept_per_film(qtbot, window, spaced, nih_film):
    open_and_wait(qtbot, window, [spaced, nih_film])
    window.act_measure_angle.trigger()
    for x, y in ((300.0, 100.0), (100.0, 100.0), (100.0, 400.0)):
        click(window, x, y)
    assert window.measure.labels() == ["Angle 1: 90.0°"]
    window.model.step(+1)
    qtbot.waitUntil(lambda: window.model.film is not None and window.model.film.source == nih_film)
    assert window.measure.labels() == []
    assert "pixels" in window.measure.note.text()
    window.act_measure_distance.trigger()
    click(window, 0.0, 0.0)
    click(window, 30.0, 40.0)
    assert window.measure.labels() == ["Distance 1: 50 px"]
    window.model.step(-1)
    qtbot.waitUntil(lambda: window.model.film is not None and window.model.film.source == spaced)
    assert window.measure.labels() == ["Angle 1: 90.0°"]


def test_measurements_turn_with_the_film(qtbot, window, spaced):
    window.model.set_display(policy="none", markers=False)
    open_and_wait(qtbot, window, [spaced])
    film = window.model.film
    window.act_measure_distance.trigger()
    click(window, 100.5, 200.5)
    click(window, 400.5, 200.5)
    window.act_rotate_right.trigger()  # the film's (x, y) is now on screen at (H - y, x)
    drawn = shown(qtbot, window)
    assert drawn.shape[:2] == (film.width, film.height)
    assert yellowish(drawn, film.height - 200, 250)
    # a click on the turned picture lands on the film pixel under it
    window.act_measure_distance.trigger()
    click(window, film.height - 200.5, 100.5)
    click(window, film.height - 200.5, 400.5)
    first, second = window.model.current_measurements()
    np.testing.assert_allclose(np.array(second.points), np.array(first.points))
    assert math.isclose(second.value(film.calibration), 300 * 0.168)
