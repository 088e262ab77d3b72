"""Window/level in modality units in the app: presets on number keys and in the menu, full range,
automatic, reset, the drag, and the value under the cursor (#14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

pytest.importorskip("PySide6")

from PySide6.QtTest import QTest  # noqa: E402
from uihelpers import open_and_wait, shown  # noqa: E402

from cxrviewer.io.grayscale import full_range, value_range  # noqa: E402
from cxrviewer.render import picture  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def preset_cr(dicom_corpus, tmp_path) -> Path:
    """The chest CR (10-bit, MONOCHROME1; generated from an NIH film, and the real one where
    present) with three stored windows, the first narrow."""
    ds = pydicom.dcmread(dicom_corpus["no_preamble_chest"], force=True)
    ds.WindowCenter, ds.WindowWidth = [560, 400, 500], [80, 300, 900]
    ds.WindowCenterWidthExplanation = ["NARROW", "LUNG", "WIDE"]
    out = tmp_path / "presets.dcm"
    ds.save_as(out)
    return out


def expected(window) -> np.ndarray:
    m = window.model
    return picture(m.film, m.prediction, m.render_options())


def saturated(rgb: np.ndarray) -> float:
    gray = rgb[..., 0]
    return float(((gray == 0) | (gray == 255)).mean())


def press(window, key: str) -> None:
    QTest.keyClick(window, key)


def test_presets_full_auto_and_reset_from_keys(qtbot, window, preset_cr):
    window.model.set_display(policy="none", markers=False)  # the film alone: what is painted is the window's work
    assert open_and_wait(qtbot, window, [preset_cr]) is True
    film = window.model.film
    before = shown(qtbot, window)
    assert saturated(before) > 0.5  # the file's first window clips most of the film
    assert "NARROW (file)" in window.wl_label.text()

    # the preset actions are named after the file's, the missing ones hidden
    assert window.act_preset_2.isVisible() and "LUNG" in window.act_preset_2.text()
    assert not window.act_preset_4.isVisible()
    press(window, "2")
    assert window.model.display.window == film.gray.presets[1]
    lung = shown(qtbot, window)
    assert np.array_equal(lung, expected(window)) and not np.array_equal(lung, before)
    assert window.wl_label.text() == "W 300  L 400 · LUNG"

    press(window, "0")
    assert window.model.display.window == full_range(film.gray)
    full = shown(qtbot, window)
    assert np.array_equal(full, expected(window))
    assert saturated(full) < 0.05  # widening shows what the stored window clipped
    assert len(np.unique(full)) > 2 * len(np.unique(before))

    press(window, "a")
    assert window.model.display.window.name == "automatic"
    assert np.array_equal(shown(qtbot, window), expected(window))

    press(window, "9")  # no ninth preset: nothing changes
    assert window.model.display.window.name == "automatic"
    press(window, "r")
    assert window.model.display.window is None
    assert np.array_equal(shown(qtbot, window), before)


def test_dragging_wider_reveals_the_clipped_range(qtbot, window, preset_cr):
    window.model.set_display(policy="none", markers=False)
    open_and_wait(qtbot, window, [preset_cr])
    before = shown(qtbot, window)
    levels = window.levels
    levels._started()
    levels._dragged(600, 0)  # three doublings of the stored width: 80 → 640
    levels._finished()
    w = window.model.display.window
    assert (w.center, w.width) == (560.0, pytest.approx(640.0))
    wide = shown(qtbot, window)
    assert saturated(wide) < saturated(before) / 2
    lo, hi = value_range(window.model.film.gray)
    levels._started()
    levels._dragged(0, -100)  # up: the level rises by a quarter of the value range
    assert window.model.display.window.center == pytest.approx(560.0 + 100 * (hi - lo) / 400)


def test_a_drag_on_a_big_film_draws_a_preview_then_the_full_picture(qtbot, window, tmp_path):
    from dicomfactory import build_dicom

    ramp = (np.add.outer(np.arange(2000), np.arange(1700)) % 4096).astype(np.uint16)
    path = build_dicom(tmp_path / "big.dcm", ramp, bits_stored=12, window=(2048, 512))
    window.model.set_display(policy="none", markers=False)
    open_and_wait(qtbot, window, [path])
    window.view.levelDragStarted.emit()
    window.view.levelDragged.emit(100, 0)
    preview = shown(qtbot, window)
    assert max(preview.shape[:2]) == 1280  # a smaller picture while dragging ...
    assert window.view.sceneRect().width() == 1700  # ... stretched over the film
    window.view.levelDragFinished.emit()
    full = shown(qtbot, window)
    assert full.shape[:2] == (2000, 1700)
    np.testing.assert_array_equal(full, expected(window))


def test_the_cursor_reads_modality_values(qtbot, window, preset_cr):
    open_and_wait(qtbot, window, [preset_cr])
    film = window.model.film
    y, x = np.unravel_index(int(np.argmax(film.gray.stored)), film.gray.stored.shape)
    window.view.hovered.emit(int(x), int(y))
    assert window.cursor_label.text().split(" · ")[0] == f"x {x}  y {y}  value {int(film.gray.stored.max())}"
    window.view.hovered.emit(-1, -1)
    assert window.cursor_label.text() == ""


def test_the_levels_menu_lists_the_presets(qtbot, window, preset_cr):
    open_and_wait(qtbot, window, [preset_cr])
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Levels")
    texts = [a.text() for a in menu.actions() if a.isVisible() and not a.isSeparator()]
    assert texts == ["&Film's own window", "F&ull range", "&Automatic (1st-99th percentile)",
                     "&1  NARROW (W 80 L 560)", "&2  LUNG (W 300 L 400)", "&3  WIDE (W 900 L 500)"]
    window.act_preset_3.trigger()
    assert window.model.display.window.name == "WIDE"
