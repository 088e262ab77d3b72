"""View ▸ Compare: each pane with its own findings list and heatmap switches (#14)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from uihelpers import WAIT_MS, open_and_wait, shown  # noqa: E402

from cxrviewer.io import read_film  # noqa: E402
from cxrviewer.paths import samples_dir  # noqa: E402
from cxrviewer.render import picture  # noqa: E402

pytestmark = pytest.mark.gui

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


def compare_shown(qtbot, window):
    qtbot.waitUntil(lambda: window.compare.film is not None and window.compare.renderer.idle(), timeout=WAIT_MS)
    return window.compare.view.displayed_rgb()


def activate(qtbot, window) -> None:
    """Window shortcuts need the active window (a folder run's progress dialog may have taken it)."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)


def listed(panel) -> list[tuple[str, str]]:
    """What a findings panel lists, top to bottom: (label, the number shown)."""
    return [(label, panel._rows[label].value.text()) for label in panel.labels()]


def test_each_pane_lists_its_own_findings_and_switches_its_own_heatmaps(qtbot, window, classifier):
    a, b = sorted(samples_dir().glob("*.png"))[2:4]  # two films the tiny model reads differently
    open_and_wait(qtbot, window, [a, b])
    window.model.set_current(0)
    qtbot.waitUntil(lambda: window.model.film is not None and window.model.film.source == a, timeout=WAIT_MS)
    film_b = read_film(b)
    pred_a, pred_b = window.model.prediction, classifier.predict_one(film_b)
    assert pred_a.ranked() != pred_b.ranked()

    activate(qtbot, window)
    QTest.keyClick(window, Qt.Key.Key_C, CTRL_SHIFT)
    assert window.compare.active
    compare_shown(qtbot, window)
    main, second = window.panel, window.compare.panel
    assert second.isVisible() and second is not main
    # each panel lists its own film's findings, sorted by its own probabilities
    assert listed(second) == [(label, f"{p:.2f}") for label, p, _t in pred_b.ranked()]
    assert listed(main) == [(label, f"{p:.2f}") for label, p, _t in pred_a.ranked()]
    assert second.title.text() == f"Findings — {b.name}" and main.title.text() == f"Findings — {a.name}"
    assert [second.is_highlighted(label) for label in pred_b.labels] == [
        p >= t for p, t in zip(pred_b.probabilities, pred_b.thresholds, strict=True)]
    # both start with the main view's heatmaps (positives)
    m = window.model
    opts = dataclasses.replace(m.render_options(), classes=pred_b.positives)
    np.testing.assert_array_equal(compare_shown(qtbot, window), picture(film_b, pred_b, opts))
    main_before = shown(qtbot, window)
    main_classes = m.shown_classes()

    # "None" in the second pane's panel: its film loses its heatmaps, the main view keeps its own
    qtbot.mouseClick(second.policy_buttons["none"], Qt.MouseButton.LeftButton)
    none = compare_shown(qtbot, window)
    np.testing.assert_array_equal(none, picture(film_b, pred_b, dataclasses.replace(opts, classes=())))
    assert m.shown_classes() == main_classes
    np.testing.assert_array_equal(shown(qtbot, window), main_before)
    assert not any(second.checkbox(label).isChecked() for label in pred_b.labels)
    assert [main.checkbox(x).isChecked() for x in pred_a.labels] == [x in main_classes for x in pred_a.labels]

    # tick one finding in the second pane: that map alone there
    label = pred_b.ranked()[0][0]
    box = second.checkbox(label)
    qtbot.mouseClick(box, Qt.MouseButton.LeftButton, pos=QPoint(8, box.height() // 2))  # on its tick box
    assert second.checkbox(label).isChecked()
    np.testing.assert_array_equal(compare_shown(qtbot, window),
                                  picture(film_b, pred_b, dataclasses.replace(opts, classes=(label,))))
    np.testing.assert_array_equal(shown(qtbot, window), main_before)

    # and the main panel's switches leave the second pane alone
    qtbot.mouseClick(main.policy_buttons["all"], Qt.MouseButton.LeftButton)
    assert m.shown_classes() == pred_a.labels
    np.testing.assert_array_equal(compare_shown(qtbot, window),
                                  picture(film_b, pred_b, dataclasses.replace(opts, classes=(label,))))

    # opacity follows the main view (one look for both panes)
    main.opacity_slider.setValue(70)
    np.testing.assert_array_equal(compare_shown(qtbot, window),
                                  picture(film_b, pred_b, dataclasses.replace(opts, classes=(label,), alpha=0.7)))
    assert not second.look.isVisible() and main.look.isVisible()

    # linking zoom/pan/window stays a toggle
    window.view.zoom_by(2.0)
    assert window.compare.view.zoom == pytest.approx(window.view.zoom)
    QTest.keyClick(window, Qt.Key.Key_L, CTRL_SHIFT)
    assert not window.compare.linked
    window.view.zoom_by(2.0)
    assert window.compare.view.zoom != pytest.approx(window.view.zoom)

    # compare off: one film, one panel again
    QTest.keyClick(window, Qt.Key.Key_C, CTRL_SHIFT)
    assert not window.compare.active and main.title.text() == "Findings"


def test_compare_stepping_lists_the_new_films_findings(qtbot, window, classifier):
    films = sorted(samples_dir().glob("*.png"))[:3]
    open_and_wait(qtbot, window, films)
    window.model.set_current(0)
    activate(qtbot, window)
    QTest.keyClick(window, Qt.Key.Key_C, CTRL_SHIFT)
    compare_shown(qtbot, window)
    assert window.compare.panel.title.text() == f"Findings — {films[1].name}"
    QTest.keyClick(window, Qt.Key.Key_N, CTRL_SHIFT)
    qtbot.waitUntil(lambda: window.compare.film is not None and window.compare.film.source == films[2], timeout=WAIT_MS)
    pred = classifier.predict_one(read_film(films[2]))
    assert window.compare.panel.title.text() == f"Findings — {films[2].name}"
    assert listed(window.compare.panel) == [(label, f"{p:.2f}") for label, p, _t in pred.ranked()]
