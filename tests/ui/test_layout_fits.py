"""Nothing cut or overlapping from 1280×800 up (issue 28): every status field and panel label
either shows its whole text or elides it with the whole text in its tooltip; no two status
widgets overlap; the Measurements panel opens only on request and never changes the zoom; the
app opens maximized on first start."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtWidgets import QLabel  # noqa: E402
from uihelpers import open_and_wait, shown  # noqa: E402

from cxrviewer.paths import DEMO_MODEL_NAME, resource_path, samples_dir  # noqa: E402
from cxrviewer.ui.elided_label import ElidedLabel  # noqa: E402

pytestmark = pytest.mark.gui


def _cut(label: QLabel) -> str | None:
    """Why ``label`` is not readable as drawn, or ``None``."""
    if not label.isVisible() or not label.text() or label.wordWrap():
        return None
    if isinstance(label, ElidedLabel):
        if label.elided() and label.text() not in label.toolTip():
            return f"{label.objectName()} elides {label.text()!r} to {label.displayed()!r} without a tooltip"
        return None
    # a plain label is drawn clipped when it is narrower than its text asks for
    if label.width() < label.sizeHint().width():
        return f"{label.objectName()} {label.text()!r} is cut: {label.width()} < {label.sizeHint().width()} px"
    return None


def _check(window) -> None:
    bar = window.statusBar()
    fields = [w for w in bar.findChildren(QLabel) if w.isVisible() and w.width() > 0]
    assert len(fields) >= 5
    problems = [p for w in fields if (p := _cut(w))]
    for panel in (window.panel,):
        problems += [p for w in panel.findChildren(QLabel) if (p := _cut(w))]
    # every row's number and note lie inside the list's viewport (a clipped note is not elided: it is cut)
    for label in window.model.prediction.labels if window.model.prediction is not None else ():
        for part in (window.panel.value_label(label), window.panel.note_label(label)):
            viewport = part.parentWidget().parentWidget().parentWidget()  # rows host > host > viewport
            right = part.mapTo(viewport, QPoint(part.width(), 0)).x()
            if part.text():
                fits = part.width() >= part.fontMetrics().horizontalAdvance(part.text())
                if not (right <= viewport.width() and fits):
                    problems.append(f"{label}: {part.text()!r} cut ({right} > {viewport.width()})")
    assert not problems, problems
    boxes = [(w.objectName(), w.geometry().translated(w.parent().mapTo(bar, QPoint(0, 0)))) for w in fields]
    for i, (a, ga) in enumerate(boxes):
        assert bar.rect().contains(ga), (a, ga, bar.rect())
        for b, gb in boxes[i + 1 :]:
            assert not ga.intersects(gb), f"{a} {ga} overlaps {b} {gb}"


@pytest.mark.parametrize("size", [(1280, 800), (1920, 1080)])
def test_status_bar_and_panel_fit(qtbot, make_window, tmp_path, size):
    w = make_window(model_path=resource_path("models", DEMO_MODEL_NAME))
    w.resize(*size)
    samples = sorted(samples_dir().glob("*.png"))
    with qtbot.waitSignal(w.scoringFinished, timeout=60_000):
        assert w.open_paths([samples_dir()])
    qtbot.waitUntil(lambda: w.model.prediction is not None, timeout=20_000)
    shown(qtbot, w)
    # long texts everywhere: the readout with a finding, a long window name, a long results name
    w.model.set_display(policy="all")
    film = w.model.film
    w.view.hovered.emit(film.width // 2, film.height // 2)
    w.status_extras.show_file("Results", tmp_path / ("a-very-long-folder-run-name-" * 3 + ".csv"), "detail")
    sizes = w.splitter.sizes()  # the findings panel as narrow as it goes (a reader dragged it)
    w.splitter.setSizes([sizes[0], sum(sizes[1:]) - 1, *[0] * (len(sizes) - 3), 1])
    qtbot.wait(50)
    assert w.panel.width() > 0
    assert len(samples) > 1
    assert w.cursor_label.text().startswith("x ")
    _check(w)


def test_measurements_panel_opens_only_on_request_and_keeps_the_zoom(qtbot, make_window):
    w = make_window(model_path=resource_path("models", DEMO_MODEL_NAME))
    w.resize(1280, 800)
    assert open_and_wait(qtbot, w, [samples_dir() / "00000103_000.png"]) is True
    shown(qtbot, w)
    zoom = w.view.zoom
    w.act_measure_distance.trigger()  # D
    w.view.pointPicked.emit(100.5, 100.5)
    w.view.pointPicked.emit(300.5, 400.5)
    qtbot.wait(50)
    assert len(w.model.current_measurements()) == 1
    assert not w.measure.dock.isVisible() and w.view.zoom == zoom
    w.act_measure_panel.trigger()  # Measure ▸ Measurements list
    qtbot.waitUntil(w.measure.dock.isVisible)
    qtbot.wait(50)
    assert w.measure.dock.isFloating() and w.view.zoom == zoom
    assert w.measure.labels() and w.act_measure_panel.isChecked()
    w.measure.dock.close()
    qtbot.waitUntil(lambda: not w.act_measure_panel.isChecked())


def test_first_start_is_maximized_then_the_saved_geometry(qtbot, make_window):
    from cxrviewer.ui.app import show_window
    from cxrviewer.ui.main_window import MainWindow

    w = make_window(wait_model=False, load_default_model=False, model_path=None)
    assert w.prefs.geometry is None
    w.hide()
    w.setWindowState(Qt.WindowState.WindowNoState)
    show_window(w)
    qtbot.waitUntil(w.isMaximized)
    w.close()  # saves the geometry
    again = MainWindow(w.store, load_default_model=False)
    qtbot.addWidget(again)
    assert again.prefs.geometry is not None
    show_window(again)
    assert again.isMaximized()  # as it was left
