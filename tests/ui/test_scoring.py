"""Folder runs: the core batch code writes the CSV, the strip shows each film's status, the
event loop keeps turning, and Cancel stops the run."""

from __future__ import annotations

import csv
import time

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt, QTimer  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QPushButton  # noqa: E402
from uihelpers import WAIT_MS  # noqa: E402

pytestmark = pytest.mark.gui


def rows(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_folder_run_writes_csv_and_badges_errors(qtbot, window, film_folder, dialogs, classifier):
    folder = film_folder(6, bad=1)
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS) as blocker:
        assert window.open_paths([folder])
    summary = blocker.args[0]
    assert (summary.total, summary.scored, summary.failed) == (7, 6, 1)
    out = window.session.last_results
    assert out is not None and out.is_file() and out.parent == window.session.results_dir
    table = rows(out)
    assert len(table) == 7
    assert {r["status"] for r in table} == {"ok", "error"}
    assert set(classifier.info.labels) <= set(table[0])
    bad = [r for r in table if r["status"] == "error"]
    assert len(bad) == 1 and bad[0]["path"].endswith("_broken.png") and "broken.png" in bad[0]["error"]

    # every film has its status in the strip; the broken one a badge and its message, no dialog
    assert window.strip.isVisible() and window.strip.count() == 7
    statuses = [window.strip.status_of(i) for i in range(7)]
    assert statuses == ["scored"] * 6 + ["error"]
    assert "error:" in window.strip.text_of(6)
    assert bad[0]["error"] in window.strip.tooltip_of(6)
    assert window.strip.text_of(0).split("\n")[1].startswith("scored · ")
    assert dialogs == []
    assert "6 scored, 1 failed" in window.statusBar().currentMessage()
    # the message names the CSV before its folder: a cut message never reads as "→ /home/…"
    assert f"results in {out.name} (folder " in window.statusBar().currentMessage()
    # the results stay readable after the message goes: the CSV's name, a link to its folder
    link = window.status_extras.results
    assert link.isVisible() and str(out) in link.toolTip() and "6 scored, 1 failed" in link.toolTip()
    # the name, elided in the middle when long (the tooltip has the whole path)
    assert link.text().startswith(f'Results: <a href="{out.parent.as_uri()}">{out.name[:6]}')
    assert link.text().endswith(f'{out.name[-7:]}</a>')
    assert link.width() >= link.sizeHint().width()
    assert window.status_extras.current_file() == out

    # the strip and the keys move between films; predictions come from the cache
    assert window.model.current == 0
    with qtbot.waitSignal(window.filmShown, timeout=WAIT_MS):
        QTest.keyClick(window, Qt.Key.Key_PageDown)
    assert window.model.current == 1
    assert window.windowTitle().endswith(window.model.entries[1].name)
    assert window.time_label.text().startswith("read + inference")
    window.strip.setCurrentRow(6)
    assert window.model.current == 6
    qtbot.waitUntil(lambda: window.model.film is None and "Could not score" in window.panel.status_label.text())
    assert dialogs == []
    QTest.keyClick(window, Qt.Key.Key_PageUp)
    assert window.model.current == 5


def test_event_loop_keeps_turning_while_a_folder_is_scored(qtbot, window, film_folder):
    folder = film_folder(16)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    try:
        t0 = time.perf_counter()
        with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS) as blocker:
            window.open_paths([folder])
            returned = time.perf_counter() - t0
        elapsed = time.perf_counter() - t0
    finally:
        timer.stop()
    assert blocker.args[0].scored == 16
    during = [t for t in ticks if t >= t0]
    assert returned < 0.5 * elapsed  # open_paths came back at once: the scoring is not on this thread
    # the timer fired all along the run, not only at its end
    assert len(during) >= max(5, 0.25 * elapsed / 0.010), (len(during), elapsed)
    gaps = [b - a for a, b in zip(during, during[1:])]
    assert max(gaps) < 0.5, max(gaps)
    print(f"{len(during)} ticks in {elapsed:.2f} s, longest gap {1000 * max(gaps):.0f} ms")


def test_cancel_stops_the_run(qtbot, window, film_folder):
    folder = film_folder(80)
    cancelled = []

    def cancel_once(done, _total, _name):
        if not cancelled and window.progress is not None:
            cancelled.append(done)
            button = window.progress.findChild(QPushButton)
            button.click()  # the progress dialog's Cancel

    window.session.scoringProgress.connect(cancel_once)
    window.open_paths([folder])
    assert window.session.scoring and window.progress is not None and window.progress.isVisible()
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS) as blocker:
        pass
    summary = blocker.args[0]
    assert cancelled and summary.cancelled
    assert summary.scored < summary.total == 80
    assert len(rows(window.session.last_results)) == summary.scored + summary.failed < 80
    qtbot.waitUntil(lambda: not window.session.scoring)
    assert window.progress is None
    # films the run did not reach stay queued and are scored one by one when shown
    last = len(window.model.entries) - 1
    assert window.model.entries[last].status == "queued"
    with qtbot.waitSignal(window.predictionShown, timeout=WAIT_MS):
        window.model.set_current(last)
    assert window.model.entries[last].status == "scored"


def test_score_films_to_a_chosen_csv(qtbot, window, film_folder, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    folder = film_folder(3)
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS):
        window.open_paths([folder])
    out = tmp_path / "chosen.csv"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "CSV (*.csv)")))
    with qtbot.waitSignal(window.session.scoringFinished, timeout=WAIT_MS) as blocker:
        window.act_score.trigger()
    assert blocker.args[0].scored == 3
    assert len(rows(out)) == 3
