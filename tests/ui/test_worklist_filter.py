"""The worklist's filter by finding (#14): all / any positive / positive for FINDING / out of
distribution / unreadable, with the count, combined with the sort, obeyed by films scored later."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from uihelpers import WAIT_MS  # noqa: E402

from cxrviewer.paths import samples_dir  # noqa: E402
from cxrviewer.types import Prediction  # noqa: E402
from cxrviewer.ui.film_strip import FilmStrip  # noqa: E402
from cxrviewer.ui.state.viewer_model import ViewerModel  # noqa: E402
from cxrviewer.ui.state.worklist_filter import FINDING, FilmFilter, filter_choices  # noqa: E402

pytestmark = pytest.mark.gui


def choose(qtbot, combo, text: str) -> None:
    """Pick ``text`` in the combo with the keyboard, as a user does (arrows on the focused combo)."""
    combo.setFocus()
    qtbot.waitUntil(combo.hasFocus, timeout=5000)
    texts = [combo.itemText(i) for i in range(combo.count())]
    assert text in texts, texts
    key = Qt.Key.Key_Down if texts.index(text) > combo.currentIndex() else Qt.Key.Key_Up
    for _ in range(combo.count()):
        if combo.currentText() == text:
            return
        QTest.keyClick(combo, key)
    assert combo.currentText() == text


def listed(strip) -> list[str]:
    """The names of the films the strip lists, top to bottom (hidden rows are not on screen;
    the study headings of DICOM films are not films)."""
    view_rows = range(strip.films.rowCount())
    rows = [r for r in view_rows if not strip.isRowHidden(r)]
    for r in rows:
        assert strip.visualRect(strip.films.index(r)).isValid()
    for r in set(view_rows) - set(rows):
        assert not strip.visualRect(strip.films.index(r)).isValid()  # not drawn
    films = [strip.films.entry_at(r) for r in rows]
    return [strip.text_of(f).split("\n")[0] for f in films if f >= 0]


def stems(strip) -> list[str]:
    return [Path(name).stem for name in listed(strip)]


def test_filter_lists_the_matching_films_with_the_count(qtbot, classifier):
    labels = classifier.info.labels
    a, b = labels.index("Cardiomegaly"), labels.index("Effusion")

    def pred(*hot, ood=False):
        p = np.full(len(labels), 0.1, np.float32)
        p[list(hot)] = 0.9
        return Prediction(labels, p, np.zeros((len(labels), 2, 2), np.float32), (0.5,) * len(labels), "v",
                          ood_flag=ood, ood_score=3.0 if ood else None)

    m = ViewerModel()
    m.classifier = classifier
    m.set_paths([Path(f"{n}.png") for n in ("cardio", "both", "clear", "odd", "bad", "queued")])
    strip = FilmStrip(m)
    qtbot.addWidget(strip)
    strip.resize(260, 600)
    strip.show()
    m.update_entry(0, status="scored", prediction=pred(a))
    m.update_entry(1, status="scored", prediction=pred(a, b))
    m.update_entry(2, status="scored", prediction=pred())
    m.update_entry(3, status="scored", prediction=pred(ood=True))
    m.update_entry(4, status="error", error="The file is damaged.")
    strip.films.flush()
    m.set_current(2)
    assert strip.count_label.text() == "6 films"
    assert "unusual film" in strip.text_of(3)  # the OOD flag in the strip
    assert "out of distribution" in strip.tooltip_of(3) and "out of distribution" not in strip.tooltip_of(2)

    choose(qtbot, strip.filter_combo, "Positive for Cardiomegaly")
    assert stems(strip) == ["cardio", "both"]
    assert strip.count_label.text() == "2 of 6 films"
    assert m.current == 0  # the film shown was filtered out: the first listed is shown
    choose(qtbot, strip.filter_combo, "Any positive")
    assert stems(strip) == ["cardio", "both"]
    choose(qtbot, strip.filter_combo, "Out of distribution")
    assert stems(strip) == ["odd"] and strip.count_label.text() == "1 of 6 films"
    choose(qtbot, strip.filter_combo, "Unreadable")
    assert stems(strip) == ["bad"]
    # a film scored later obeys the filter as it arrives
    choose(qtbot, strip.filter_combo, "Positive for Effusion")
    assert stems(strip) == ["both"]
    m.update_entry(5, status="scored", prediction=pred(b))
    qtbot.waitUntil(lambda: stems(strip) == ["both", "queued"], timeout=5000)
    assert strip.count_label.text() == "2 of 6 films"
    # the sort reorders, the filter still applies
    m.sort_by_suspicion()
    assert [e.path.stem for e in m.entries][:2] == ["both", "cardio"]  # two findings first
    assert stems(strip) == [e.path.stem for e in m.entries if FilmFilter(FINDING, "Effusion").matches(e)]
    choose(qtbot, strip.filter_combo, "All films")
    assert len(stems(strip)) == 6 and strip.count_label.text() == "6 films"


def test_filter_choices_follow_the_model():
    choices = filter_choices(("A", "B_C"))
    assert [c.text for c in choices] == ["All films", "Any positive", "Out of distribution", "Not applicable",
                                         "Unreadable", "Positive for A", "Positive for B C"]
    with pytest.raises(ValueError):
        FilmFilter(FINDING)


def test_a_folder_run_fills_the_filtered_worklist(qtbot, window, tmp_path):
    folder = tmp_path / "films"
    folder.mkdir()
    for png in sorted(samples_dir().glob("*.png")):
        shutil.copy(png, folder / png.name)
    (folder / "zz_broken.png").write_bytes(b"this is not a PNG at all" * 10)
    strip = window.strip
    choose(qtbot, strip.filter_combo, "Positive for Cardiomegaly")  # chosen before the films arrive
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS):
        assert window.open_paths([folder])
    strip.films.flush()
    want = [e.name for e in window.model.entries if e.prediction is not None and "Cardiomegaly" in e.prediction.positives]
    assert 0 < len(want) < 7
    assert listed(strip) == want
    assert strip.count_label.text() == f"{len(want)} of 7 films"
    rows = strip.visible_rows()
    gaps = [(a, b) for a, b in itertools.pairwise(rows) if b > a + 1]
    assert gaps  # films hidden between two listed ones (the tiny model's findings on the samples)
    a, b = gaps[0]
    window.model.set_current(a)
    window.activateWindow()  # window shortcuts need the active window (the run's progress dialog had it)
    qtbot.waitUntil(window.isActiveWindow, timeout=5000)
    QTest.keyClick(window, "n")  # the next film listed, skipping the hidden ones
    assert window.model.current == b
    QTest.keyClick(window, "p")
    assert window.model.current == a
    # compare steps through the films the filter lists too
    window.model.set_current(rows[-1])
    window.act_compare.trigger()
    assert window.compare.index == rows[0]  # the next film listed, wrapping round
    for _ in range(2 * len(rows)):
        QTest.keyClick(window, "n", Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
        assert window.compare.index in rows and window.compare.index != window.model.current
    window.act_compare.trigger()
    QTest.keyClick(window, "s")  # the worklist sort keeps the filter
    assert listed(strip) == [e.name for e in window.model.entries if e.name in want]
    choose(qtbot, strip.filter_combo, "Unreadable")
    assert listed(strip) == ["zz_broken.png"] and window.model.entry.name == "zz_broken.png"
