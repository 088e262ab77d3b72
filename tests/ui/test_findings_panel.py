"""The findings panel on the bundled demo model and sample: empty maps say "no activation" and
carry no swatch; a click on a row's bar shows that finding's map alone."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402
from uihelpers import open_and_wait, shown  # noqa: E402

from cxrviewer import heatmap  # noqa: E402
from cxrviewer.paths import DEMO_MODEL_NAME, resource_path, samples_dir  # noqa: E402
from cxrviewer.render import film_rgb, overlay  # noqa: E402
from cxrviewer.ui.findings_panel import NO_ACTIVATION  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def demo_window(make_window):
    return make_window(model_path=resource_path("models", DEMO_MODEL_NAME))


def test_empty_maps_say_no_activation_and_have_no_swatch(qtbot, demo_window):
    w = demo_window
    assert open_and_wait(qtbot, w, [samples_dir() / "00000103_000.png"]) is True
    pred = w.model.prediction
    empty = [label for label in pred.labels if heatmap.is_empty(pred, label)]
    assert "Hernia" in empty and "Atelectasis" in empty and "Pneumonia" not in empty
    for label in pred.labels:
        assert w.panel.note(label) == (NO_ACTIVATION if label in empty else ""), label
    # ticking an empty finding alone draws nothing over the film
    w.model.set_display(policy="custom", custom=("Hernia",))
    assert np.array_equal(shown(qtbot, w), film_rgb(w.model.film))
    # contour mode: the row's swatch is the legend, only for findings that draw an outline
    w.model.set_display(policy="all", mode="contour")
    assert w.panel.checkbox("Hernia").icon().isNull()
    assert not w.panel.checkbox("Pneumonia").icon().isNull()


def test_a_click_on_a_bar_shows_that_finding_alone(qtbot, demo_window):
    w = demo_window
    assert open_and_wait(qtbot, w, [samples_dir() / "00000103_000.png"]) is True
    w.model.set_display(policy="all")
    bar = w.panel.bar("Edema")
    qtbot.mouseClick(bar, Qt.MouseButton.LeftButton, pos=bar.rect().center())
    assert w.model.shown_classes() == ("Edema",)
    assert w.panel.checkbox("Edema").isChecked() and not w.panel.checkbox("Pneumonia").isChecked()
    o = w.model.render_options()
    assert np.array_equal(shown(qtbot, w), overlay(w.model.film, w.model.prediction, ("Edema",), o.alpha, o.colormap, o.mode, o.window, o.invert))


def test_default_thresholds_are_said_in_the_panel(qtbot, demo_window, window):
    w = demo_window
    assert open_and_wait(qtbot, w, [samples_dir() / "00000103_000.png"]) is True
    assert not w.panel.threshold_note.isHidden()
    assert "Every threshold is the default" in w.panel.threshold_note.text()
    assert "the default" in w.panel.bar("Edema").toolTip()
    # a model whose metadata records no defaulted threshold says nothing of the kind
    assert open_and_wait(qtbot, window, [samples_dir() / "00000103_000.png"]) is True
    assert window.panel.threshold_note.isHidden() and "the default" not in window.panel.bar("Edema").toolTip()
