"""View ▸ Compare: a second film beside the current one, its own findings, linked zoom/pan/window (#14)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("PySide6")

from uihelpers import WAIT_MS, open_and_wait, shown  # noqa: E402

from cxrviewer.io import read_film  # noqa: E402
from cxrviewer.io.grayscale import full_range  # noqa: E402
from cxrviewer.render import picture  # noqa: E402

pytestmark = pytest.mark.gui


def compare_shown(qtbot, window):
    qtbot.waitUntil(lambda: window.compare.film is not None and window.compare.renderer.idle(), timeout=WAIT_MS)
    return window.compare.view.displayed_rgb()


def test_compare_two_films_side_by_side(qtbot, window, nih_images, classifier):
    a, b = nih_images[0], nih_images[1]
    open_and_wait(qtbot, window, [a, b])
    window.model.set_current(0)
    qtbot.waitUntil(lambda: window.model.film is not None and window.model.film.source == a, timeout=WAIT_MS)
    window.act_compare.trigger()
    assert window.compare.active and window.compare.view.isVisible()
    assert abs(window.compare.view.width() - window.view.width()) <= 2  # side by side, the same size
    second = compare_shown(qtbot, window)
    film_b = read_film(b)
    pred_b = classifier.predict_one(film_b)
    m = window.model
    opts = dataclasses.replace(m.render_options(), classes=m.shown_classes(pred_b))
    np.testing.assert_array_equal(second, picture(film_b, pred_b, opts))  # its own film and findings
    assert not np.array_equal(second, shown(qtbot, window))

    # linked: zoom follows the main view, and so does the window (in modality units)
    window.view.zoom_by(2.0)
    assert window.compare.view.zoom == pytest.approx(window.view.zoom)
    window.model.set_window(full_range(window.model.film.gray))
    wide = compare_shown(qtbot, window)
    want = picture(film_b, pred_b, dataclasses.replace(opts, window=window.model.display.window))
    np.testing.assert_array_equal(wide, want)

    # unlinked: each pane its own
    window.act_compare_link.trigger()
    assert window.compare.linked is False
    window.view.zoom_by(2.0)
    assert window.compare.view.zoom != pytest.approx(window.view.zoom)
    np.testing.assert_array_equal(compare_shown(qtbot, window), picture(film_b, pred_b, opts))

    window.act_compare.trigger()
    assert not window.compare.view.isVisible()


def test_compare_needs_two_films(qtbot, window, nih_film):
    open_and_wait(qtbot, window, [nih_film])
    window.act_compare.trigger()
    assert not window.compare.active and not window.act_compare.isChecked()
    assert "two films" in window.statusBar().currentMessage()


@pytest.mark.slow
def test_compare_at_1280x800_two_equal_panes_same_scale_tops_aligned(qtbot, make_window):
    """Issue 28: two equal panes, the films at the same scale with their tops aligned, and each
    film's findings readable ("0.83", not "0.8") at 1280×800."""
    from cxrviewer.paths import DEMO_MODEL_NAME, resource_path, samples_dir
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QScrollArea

    w = make_window(model_path=resource_path("models", DEMO_MODEL_NAME))
    w.resize(1280, 800)
    films = sorted(samples_dir().glob("*.png"))[:2]
    open_and_wait(qtbot, w, films)
    qtbot.waitUntil(lambda: all(e.prediction is not None for e in w.model.entries), timeout=60_000)
    shown(qtbot, w)
    w.act_compare.trigger()
    compare_shown(qtbot, w)
    qtbot.wait(100)
    main, second = w.view, w.compare.view
    assert abs(main.width() - second.width()) <= 2 and main.height() == second.height()
    assert second.zoom == pytest.approx(main.zoom)  # the same scale
    # each film's top edge at the top of its pane
    top_main = main.mapFromScene(main.sceneRect().topLeft()).y()
    top_second = second.mapFromScene(second.sceneRect().topLeft()).y()
    assert top_main == top_second
    assert main.mapTo(w, QPoint(0, 0)).y() == second.mapTo(w, QPoint(0, 0)).y()
    for panel in (w.panel, w.compare.panel):
        assert panel.isVisible()
        for label in w.model.prediction.labels:
            value = panel.value_label(label)
            assert value.text() and value.width() >= value.sizeHint().width(), (label, value.text())
            # not under the list's scroll bar
            bar = panel.findChild(QScrollArea).verticalScrollBar()
            if bar.isVisible():
                assert value.mapTo(panel, QPoint(value.width(), 0)).x() <= bar.mapTo(panel, QPoint(0, 0)).x(), label
