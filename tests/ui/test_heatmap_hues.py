"""Heatmap mode with several findings on (issue 28): each finding in its own colour, the swatches
and the legend on the film name them, and the cursor readout names the finding under it."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from uihelpers import open_and_wait, shown  # noqa: E402

from cxrviewer import heatmap, render  # noqa: E402
from cxrviewer.paths import DEMO_MODEL_NAME, resource_path, samples_dir  # noqa: E402
from cxrviewer.ui.findings_panel import HUED_CAPTION, RAMP_CAPTION  # noqa: E402

pytestmark = pytest.mark.gui


def test_several_heatmaps_are_hued_named_and_read_under_the_cursor(qtbot, make_window):
    w = make_window(model_path=resource_path("models", DEMO_MODEL_NAME))
    assert open_and_wait(qtbot, w, [samples_dir() / "00000103_000.png"]) is True
    pred, film = w.model.prediction, w.model.film
    w.model.set_display(policy="all", mode="heatmap")
    drawn = heatmap.active(pred, w.model.shown_classes())
    assert len(drawn) >= 2
    picture = shown(qtbot, w)
    # what the app shows is the one renderer's picture, legend included (exports draw the same)
    assert np.array_equal(picture, render.picture(film, pred, w.model.render_options()))
    for label in drawn:  # every drawn finding's colour is on the film (its legend swatch at least)
        assert np.all(picture == render.class_color(pred, label), axis=-1).sum() >= 16, label
        assert not w.panel.checkbox(label).icon().isNull(), label  # and its row has the swatch
    assert w.panel.ramp_caption.text() == HUED_CAPTION and w.panel.ramp.isHidden()
    # the readout over the strongest spot of a finding names it
    ref = heatmap.reference(pred)
    top = max(drawn, key=lambda c: float(pred.class_map(c).max()))
    cy, cx = np.unravel_index(int(np.argmax(pred.class_map(top))), pred.class_map(top).shape)
    h, wd = pred.class_map(top).shape
    x, y = int((cx + 0.5) * film.width / wd), int((cy + 0.5) * film.height / h)
    assert heatmap.strongest_at(pred, drawn, (film.height, film.width), x, y)[0] == top and ref > 0
    w.view.hovered.emit(x, y)
    assert top.replace("_", " ") in w.cursor_label.text() and w.cursor_label.text().startswith(f"x {x}  y {y}")
    # one finding: the colormap again, no legend, no finding swatch
    w.model.set_display(policy="custom", custom=(top,))
    one = shown(qtbot, w)
    o = w.model.render_options()
    assert np.array_equal(one, render.overlay(film, pred, (top,), o.alpha, o.colormap, o.mode))
    assert w.panel.checkbox(top).icon().isNull() and w.panel.ramp_caption.text() == RAMP_CAPTION
