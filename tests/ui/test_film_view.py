"""The film view on its own: exact pixels in, exact pixels out; zoom around the cursor."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402
from PySide6.QtGui import QWheelEvent  # noqa: E402

from cxrviewer.ui.film_view import FilmView, qimage_to_rgb, rgb_to_qimage  # noqa: E402

pytestmark = pytest.mark.gui


def test_rgb_qimage_round_trip_is_exact():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(37, 51, 3), dtype=np.uint8)  # odd width: padded scan lines
    assert np.array_equal(qimage_to_rgb(rgb_to_qimage(rgb)), rgb)


def test_view_shows_the_array_it_was_given(qtbot):
    view = FilmView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    rgb = np.zeros((200, 100, 3), np.uint8)
    rgb[..., 0] = np.arange(100, dtype=np.uint8)[None, :]
    rgb[50:60, 20:30] = (1, 2, 3)
    view.set_image(rgb)
    assert np.array_equal(view.displayed_rgb(), rgb)
    assert view.zoom == pytest.approx(300 / 200, rel=0.02)  # fitted
    view.set_image(None)
    assert view.displayed_rgb() is None and not view.has_image()


def test_wheel_zooms_around_the_cursor(qtbot):
    view = FilmView()
    qtbot.addWidget(view)
    view.resize(400, 400)
    view.show()
    view.set_image(np.full((1000, 1000, 3), 128, np.uint8))
    qtbot.waitExposed(view)
    anchor = QPoint(100, 120)
    before = view.mapToScene(anchor)
    zoom = view.zoom
    event = QWheelEvent(
        QPointF(anchor), QPointF(view.viewport().mapToGlobal(anchor)), QPoint(0, 0), QPoint(0, 240),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )
    view.wheelEvent(event)
    assert view.zoom == pytest.approx(zoom * 1.25**2)
    after = view.mapToScene(anchor)
    assert abs(after.x() - before.x()) < 1.5 and abs(after.y() - before.y()) < 1.5  # the point under the cursor stays
    view.actual_size()
    assert view.zoom == pytest.approx(1.0)
    view.fit()
    assert view.zoom == pytest.approx(0.4, rel=0.02)
