"""The app and the applicability gate (issue 26 point 2): a lateral chest film and a tibia CR show
a "Not applicable" panel in place of the findings, with no heatmaps; "Score anyway" scores the
film and marks its findings as outside the model's use; the worklist filter lists them."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402
from uihelpers import WAIT_MS, open_and_wait, shown  # noqa: E402

from cxrviewer.io import read_film  # noqa: E402
from cxrviewer.ui.state.viewer_model import NOT_APPLICABLE, SCORED  # noqa: E402
from gatefilms import LATERAL_REASON, TIBIA_REASON, frontal_chest, lateral_chest, tibia_cr  # noqa: E402
from test_worklist_filter import choose, listed  # noqa: E402

pytestmark = pytest.mark.gui


def gray(rgb: np.ndarray) -> bool:
    """No colour anywhere: the film alone, no heatmap blended over it."""
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


@pytest.mark.parametrize("make, reason", [(lateral_chest, LATERAL_REASON), (tibia_cr, TIBIA_REASON)])
def test_a_film_the_model_does_not_read_shows_a_panel_and_can_be_scored_anyway(qtbot, window, dialogs, tmp_path, make,
                                                                               reason):
    film = make(tmp_path / "films")
    assert open_and_wait(qtbot, window, [film]) is True
    panel, entry = window.panel, window.model.entry
    assert (entry.status, entry.outside_use, entry.prediction) == (NOT_APPLICABLE, reason, None)
    qtbot.waitUntil(lambda: panel.not_applicable.isVisible(), timeout=WAIT_MS)
    assert panel.not_applicable_reason.text() == reason[0].upper() + reason[1:] + "."
    assert not panel.findings_list.isVisible()  # the panel is in place of the findings
    assert panel.score_anyway_button.isVisible() and panel.score_anyway_button.text() == "Score anyway"
    assert panel.status_label.text() == "Not scored: the model does not read this film."
    window.model.set_display(policy="all")  # every heatmap asked for: there is none to draw
    assert gray(shown(qtbot, window))
    # nothing to export: the dialog says why and what to do
    assert not window.session.export(tmp_path / "out.png")
    assert dialogs[-1][1] == "Nothing to export" and reason in dialogs[-1][2] and "Score anyway" in dialogs[-1][2]

    with qtbot.waitSignal(window.session.predictionReady, timeout=WAIT_MS):
        qtbot.mouseClick(panel.score_anyway_button, Qt.MouseButton.LeftButton)
    entry = window.model.entry
    assert entry.status == SCORED and entry.outside_use == reason and entry.prediction is not None
    qtbot.waitUntil(lambda: panel.findings_list.isVisible(), timeout=WAIT_MS)
    assert not panel.not_applicable.isVisible()
    assert panel.outside_label.isVisible()
    assert panel.outside_label.text().startswith(f"⚠ Scored outside the model's use: {reason}.")
    # the model's own answer on the film, heatmaps and all
    want = window.model.classifier.predict_one(read_film(film)).probabilities
    assert np.abs(entry.prediction.probabilities - want).max() <= 1e-6
    assert not gray(shown(qtbot, window))


def test_a_folder_run_lists_them_under_not_applicable(qtbot, window, tmp_path, nih_samples):
    folder = tmp_path / "films"
    lateral_chest(folder), tibia_cr(folder), frontal_chest(folder)
    (folder / nih_samples[0].name).write_bytes(nih_samples[0].read_bytes())
    strip = window.strip
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS) as finished:
        assert window.open_paths([folder])
    summary = finished.args[0]
    assert (summary.scored, summary.not_applicable, summary.failed) == (2, 2, 0)
    strip.films.flush()
    choose(qtbot, strip.filter_combo, "Not applicable")
    assert sorted(listed(strip)) == ["lateral.dcm", "tibia.dcm"]
    texts = {strip.text_of(r) for r in strip.visible_rows()}
    assert texts == {"lateral.dcm\nnot applicable: lateral view (View Position LL)",
                     "tibia.dcm\nnot applicable: body part TIBIA"}
    lateral = window.model.entries[window.model.index_of(folder / "lateral.dcm")]
    assert lateral.thumbnail is not None and lateral.prediction is None  # in the strip, never scored
    # compare: the second film's own panel says it too (scoring it anyway is the main view's)
    window.model.set_current(window.model.index_of(folder / "lateral.dcm"))
    window.act_compare.trigger()
    pane = window.compare
    assert pane.pane_model.entry.name == "tibia.dcm"
    qtbot.waitUntil(lambda: pane.panel.not_applicable.isVisible(), timeout=WAIT_MS)
    assert pane.panel.not_applicable_reason.text() == TIBIA_REASON[0].upper() + TIBIA_REASON[1:] + "."
    assert not pane.panel.score_anyway_button.isVisible()
    window.act_compare.trigger()
    # the frontal film and the PNG are scored as ever
    frontal = window.model.entries[window.model.index_of(folder / "frontal.dcm")]
    assert frontal.status == SCORED and frontal.outside_use is None
    want = window.model.classifier.predict_one(read_film(folder / "frontal.dcm")).probabilities
    assert np.abs(frontal.prediction.probabilities - want).max() <= 1e-6
