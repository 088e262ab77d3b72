"""The film strip groups films by patient and study (#29): a heading per study, newest first,
PA above lateral, PNGs under "Other films"; headings are never selected, the keyboard and
next/previous skip them, and the filter hides a heading whose films it all hides."""

from __future__ import annotations

import shutil

import pytest

pytest.importorskip("PySide6")

from dicomfactory import PACS_PATIENTS, make_pacs_studies  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from test_worklist_filter import choose, listed  # noqa: E402
from uihelpers import WAIT_MS  # noqa: E402

from cxrviewer.ui.state.studies import OTHER  # noqa: E402
from cxrviewer.ui.state.viewer_model import NOT_APPLICABLE  # noqa: E402

pytestmark = pytest.mark.gui

PID = PACS_PATIENTS[0][0]
OLD = "2025-01-15 · CHEST PA LAT 0 · 2 films"
NEW = "2025-03-20 · CHEST PA LAT 1 · 2 films"


@pytest.fixture
def two_studies(tmp_path, nih_samples):
    """One patient's two chest studies (PA + lateral each) and a PNG, in one folder."""
    made = make_pacs_studies(tmp_path / "pacs", today="20251208", size=96)
    folder = tmp_path / "films"
    folder.mkdir()
    for film in made:
        if film.patient_id == PID and film.study_date in ("20250115", "20250320") and film.modality == "CR":
            shutil.copy(film.path, folder / film.path.name)
    shutil.copy(nih_samples[0], folder / nih_samples[0].name)
    return folder


def test_two_studies_of_one_patient_and_a_png(qtbot, window, two_studies):
    strip = window.strip
    png = next(two_studies.glob("*.png")).name
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS):
        assert window.open_paths([two_studies])
    strip.films.flush()
    qtbot.waitUntil(lambda: len(strip.headings()) == 3, timeout=WAIT_MS)
    # newest study first, the PA film above the lateral under each, the PNG last
    assert strip.listed() == [
        NEW, f"{PID}-1-PA.dcm", f"{PID}-1-LL.dcm",
        OLD, f"{PID}-0-PA.dcm", f"{PID}-0-LL.dcm",
        f"{OTHER} · 1 film", png,
    ]
    assert strip.count() == 5 and strip.films.rowCount() == 8
    # a heading is neither selectable nor the current row
    heading = strip.films.index(0)
    assert not strip.films.flags(heading) & Qt.ItemFlag.ItemIsSelectable
    names = [e.name for e in window.model.entries]

    def current() -> str:
        return names[window.model.current]

    # next/previous film (PgDown/PgUp) in the strip's order, over the headings
    window.model.set_current(names.index(f"{PID}-1-LL.dcm"))
    strip.step(+1)
    assert current() == f"{PID}-0-PA.dcm"
    strip.step(-1)
    assert current() == f"{PID}-1-LL.dcm"
    # the arrow keys skip the headings too, and stop at the first film
    strip.setFocus()
    QTest.keyClick(strip, Qt.Key.Key_Down)
    assert current() == f"{PID}-0-PA.dcm"
    QTest.keyClick(strip, Qt.Key.Key_Down)
    QTest.keyClick(strip, Qt.Key.Key_Down)
    assert current() == png
    QTest.keyClick(strip, Qt.Key.Key_Home)
    assert current() == f"{PID}-1-PA.dcm"
    QTest.keyClick(strip, Qt.Key.Key_Up)
    assert current() == f"{PID}-1-PA.dcm"
    assert strip.films.entry_at(strip.currentIndex().row()) >= 0


def test_the_filter_hides_the_headings_of_studies_it_empties(qtbot, window, two_studies):
    strip = window.strip
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS):
        assert window.open_paths([two_studies])
    strip.films.flush()
    qtbot.waitUntil(lambda: len(strip.headings()) == 3, timeout=WAIT_MS)
    laterals = {e.name for e in window.model.entries if e.status == NOT_APPLICABLE}
    assert laterals == {f"{PID}-0-LL.dcm", f"{PID}-1-LL.dcm"}  # the model reads frontal films only
    choose(qtbot, strip.filter_combo, "Not applicable")
    assert strip.headings() == [NEW, OLD]  # "Other films" (the PNG, scored) is hidden
    assert listed(strip) == [f"{PID}-1-LL.dcm", f"{PID}-0-LL.dcm"]
    assert strip.count_label.text() == "2 of 5 films"
    choose(qtbot, strip.filter_combo, "Unreadable")
    assert strip.headings() == [] and listed(strip) == []
    choose(qtbot, strip.filter_combo, "All films")
    assert len(strip.headings()) == 3 and len(listed(strip)) == 5
