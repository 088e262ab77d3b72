"""Measurements in the core (#14): a manual calibration from a line of known length, the
cardiothoracic ratio, moving a point, and how the renderer draws a ratio and a manual label."""

from __future__ import annotations

import numpy as np
import pytest

from cxrviewer.render import MEASURE_COLOR, RenderOptions, picture
from cxrviewer.types import Calibration, Film, Measurement


def test_manual_calibration_makes_the_line_its_known_length():
    cal = Calibration.manual((10.0, 10.0), (40.0, 50.0), 25.0)  # 50 px long
    assert cal.row_mm == pytest.approx(0.5) and cal.col_mm == pytest.approx(0.5) and cal.kind == "manual"
    assert Measurement("distance", ((10, 10), (40, 50))).value(cal) == pytest.approx(25.0)
    assert Measurement("distance", ((0, 0), (100, 0))).label(cal) == "50.0 mm, manual calibration"
    assert cal.unit == "mm, manual calibration" and cal.source == "manual calibration"


def test_manual_calibration_keeps_the_files_pixel_aspect():
    base = Calibration(0.3, 0.1, "pixel spacing")  # rows 0.3 mm apart, columns 0.1 mm
    cal = Calibration.manual((0.0, 0.0), (0.0, 100.0), 60.0, base)  # a vertical line: 100 rows
    assert cal.row_mm == pytest.approx(0.6) and cal.col_mm == pytest.approx(0.2)
    assert Measurement("distance", ((0, 0), (0, 100))).value(cal) == pytest.approx(60.0)


@pytest.mark.parametrize("a, b, mm", [((5, 5), (5, 5), 10.0), ((0, 0), (10, 0), 0.0), ((0, 0), (10, 0), float("nan"))])
def test_manual_calibration_refuses_what_cannot_calibrate(a, b, mm):
    with pytest.raises(ValueError):
        Calibration.manual(a, b, mm)


def test_a_calibration_needs_a_known_source_and_a_positive_size():
    with pytest.raises(ValueError, match="unknown calibration"):
        Calibration(0.1, 0.1, "guessed")
    with pytest.raises(ValueError, match="positive"):
        Calibration(0.0, 0.1)


def test_cardiothoracic_ratio_keeps_its_widths_horizontal():
    m = Measurement("ctr", ((100, 300), (220, 310), (50, 400), (350, 390)))
    assert m.points[1] == (220.0, 300.0) and m.points[3] == (350.0, 400.0)
    assert m.widths(None) == (120.0, 300.0)
    assert m.value(None) == pytest.approx(0.4)
    assert m.value(Calibration(0.2, 0.1)) == pytest.approx(0.4)  # no unit: calibration cancels
    assert m.label(None) == "CTR 0.40 (heart 120 / thorax 300 px)"
    assert m.label(Calibration(0.2, 0.2, "detector")) == "CTR 0.40 (heart 24.0 / thorax 60.0 mm at detector)"
    moved = m.moved(0, (90.0, 280.0))  # the heart's left end up: its right end follows
    assert moved.points[:2] == ((90.0, 280.0), (220.0, 280.0))
    assert moved.points[2:] == m.points[2:]
    assert moved.value(None) == pytest.approx(130 / 300)
    assert Measurement("ctr", ((0, 0), (10, 0), (5, 5), (5, 9))).value(None) == 0.0  # no thorax width


def test_moving_a_distance_or_angle_point_moves_only_that_point():
    d = Measurement("distance", ((0, 0), (30, 40)))
    assert d.moved(1, (60, 80)).points == ((0.0, 0.0), (60.0, 80.0))
    a = Measurement("angle", ((10, 0), (0, 0), (0, 10)))
    assert a.moved(1, (10, 10)).points == ((10.0, 0.0), (10.0, 10.0), (0.0, 10.0))


def yellow(rgb: np.ndarray) -> np.ndarray:
    return (np.abs(rgb.astype(int) - np.array(MEASURE_COLOR)).sum(axis=2) < 60)


def test_the_renderer_draws_a_ratio_as_two_widths_and_labels_in_the_given_calibration():
    film = Film(np.full((400, 400), 0.2, np.float32))
    ctr = Measurement("ctr", ((150, 100), (250, 100), (50, 300), (350, 300)))
    rgb = picture(film, None, RenderOptions(markers=False, measurements=(ctr,)))
    hit = yellow(rgb)
    assert hit[100, 200] and hit[300, 200]  # both widths
    assert not hit[200, 150]  # nothing joins the heart's right end to the thorax's left end
    d = Measurement("distance", ((50, 200), (150, 200)))
    plain = picture(film, None, RenderOptions(markers=False, measurements=(d,)))
    manual = picture(film, None, RenderOptions(markers=False, measurements=(d,), calibration=Calibration(0.2, 0.2, "manual")))
    # "100 px" against "20.0 mm, manual calibration": a longer label, right of the line's end
    assert yellow(manual)[:, 200:].sum() > yellow(plain)[:, 200:].sum()
