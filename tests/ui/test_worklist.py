"""The worklist: a folder's films sorted by suspicion, unreadable ones last (#14)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from uihelpers import WAIT_MS  # noqa: E402

pytestmark = pytest.mark.gui


def suspicion(entry):
    pred = entry.prediction
    if pred is None:
        return None
    return (pred.probability(pred.positives[0]), len(pred.positives)) if pred.positives else (0.0, 0)


def test_sort_by_suspicion_puts_findings_first_and_unreadable_last(qtbot, window, film_folder):
    folder = film_folder(6, bad=1)
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS):
        assert window.open_paths([folder])
    window.model.set_current(3)
    current = window.model.entry.path
    assert window.model.entries[-1].status == "error" or window.model.entries[0].status != "error"
    window.act_sort_worklist.trigger()
    entries = window.model.entries
    assert entries[-1].status == "error"
    scored = [suspicion(e) for e in entries[:-1]]
    with_findings = [s for s in scored if s[1] > 0]
    assert scored[: len(with_findings)] == with_findings  # films with findings above threshold come first
    assert [s[0] for s in with_findings] == sorted((s[0] for s in with_findings), reverse=True)
    # the strip follows, and the film shown stays the film shown
    assert window.model.entry.path == current
    assert window.strip.currentRow() == window.model.current
    assert [window.strip.text_of(i).split("\n")[0] for i in range(len(entries))] == [e.name for e in entries]
    assert window.strip.status_of(len(entries) - 1) == "error"


def test_the_sort_key_on_the_plain_model():
    from pathlib import Path

    import numpy as np

    from cxrviewer.types import Prediction
    from cxrviewer.ui.state.viewer_model import ViewerModel

    def pred(*p):
        return Prediction(("A", "B"), np.array(p, np.float32), np.zeros((2, 1, 1), np.float32), (0.5, 0.5), "v")

    m = ViewerModel()
    names = ["bad", "none", "queued", "one", "two", "high"]
    m.set_paths([Path(f"{n}.png") for n in names])
    m.update_entry(0, status="error", error="unreadable")
    m.update_entry(1, status="scored", prediction=pred(0.4, 0.1))
    m.update_entry(3, status="scored", prediction=pred(0.7, 0.1))
    m.update_entry(4, status="scored", prediction=pred(0.7, 0.6))
    m.update_entry(5, status="scored", prediction=pred(0.2, 0.9))
    m.set_current(1)
    m.sort_by_suspicion()
    assert [e.path.stem for e in m.entries] == ["high", "two", "one", "none", "queued", "bad"]
    assert m.entry.path.stem == "none" and m.index_of(Path("bad.png")) == 5
