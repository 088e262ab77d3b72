"""The film session on its own: no window, no widget; only its signals (issue #12)."""

from __future__ import annotations

import csv
import threading
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from uihelpers import WAIT_MS  # noqa: E402

from cxrviewer.ui.session import FilmSession  # noqa: E402
from cxrviewer.ui.state.viewer_model import ViewerModel  # noqa: E402

pytestmark = pytest.mark.gui


def no_widgets() -> bool:
    from PySide6.QtWidgets import QApplication

    return QApplication.allWidgets() == []


@pytest.fixture
def session(qtbot, tiny_model, tmp_path):
    s = FilmSession(ViewerModel(), device="cpu", results_dir=tmp_path / "results")
    with qtbot.waitSignal(s.modelChanged, timeout=WAIT_MS) as blocker:
        s.load_model(tiny_model)
    assert blocker.args[0].info.model_version == "tiny-test-1"
    yield s
    s.shutdown(10_000)
    assert no_widgets()


def recorder(signal) -> list[tuple]:
    seen: list[tuple] = []
    signal.connect(lambda *args: seen.append(args))
    return seen


def test_open_a_folder_and_score_it(qtbot, session, film_folder, classifier):
    folder = film_folder(5, bad=1)
    progress = recorder(session.scoringProgress)
    failures = recorder(session.filmFailed)
    told = recorder(session.failed)
    with qtbot.waitSignal(session.scoringFinished, timeout=WAIT_MS) as blocker:
        films = session.open([folder])
    assert len(films) == 6 and session.model.current == 0
    summary = blocker.args[0]
    assert (summary.total, summary.scored, summary.failed) == (6, 5, 1)
    assert [done for done, _total, _name in progress] == list(range(1, 7))
    statuses = [e.status for e in session.model.entries]
    assert statuses == ["scored"] * 5 + ["error"]
    assert all(e.thumbnail is not None for e in session.model.entries[:5])
    assert failures == [(str(films[5]), session.model.entries[5].error)] and "broken.png" in failures[0][1]
    assert told == []  # a bad film in a folder is a badge, not a dialog
    with open(session.last_results, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 6 and set(classifier.info.labels) <= set(rows[0])
    # the current film was read on its own as well: its pixels are in the model
    qtbot.waitUntil(lambda: session.model.film is not None, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: not session.scoring, timeout=WAIT_MS)
    assert no_widgets()


def test_cancel_a_folder_run(qtbot, session, film_folder):
    folder = film_folder(80)

    def cancel_once(done, _total, _name):
        if done == 1:
            session.cancel_scoring()

    session.scoringProgress.connect(cancel_once)
    finished = recorder(session.scoringFinished)
    with qtbot.waitSignals([session.scoringFinished, session.scoringEnded], order="strict", timeout=WAIT_MS):
        session.open([folder])
    ((summary,),) = finished
    assert summary.cancelled and summary.scored < summary.total == 80
    assert not session.scoring
    # the films the run did not reach stay queued; showing one reads and scores it on its own
    last = len(session.model.entries) - 1
    assert session.model.entries[last].status == "queued"
    with qtbot.waitSignal(session.predictionReady, timeout=WAIT_MS) as ready:
        session.model.set_current(last)
    assert ready.args == [str(session.model.entries[last].path)]
    assert session.model.entries[last].status == "scored"


def test_load_another_model_scores_again(qtbot, session, nih_film, tmp_path):
    from tinymodel import build_tiny_model, tiny_info

    with qtbot.waitSignal(session.predictionReady, timeout=WAIT_MS):
        session.open([nih_film])
    assert session.model.prediction.model_version == "tiny-test-1"
    other = build_tiny_model(
        tmp_path / "three.onnx", tiny_info(64, labels=("Mass", "Nodule", "Effusion"), model_version="three-1"), seed=3,
    )
    with qtbot.waitSignals([session.modelChanged, session.predictionReady], order="strict", timeout=WAIT_MS):
        session.load_model(other)
    assert session.model.prediction.model_version == "three-1"
    assert session.model.prediction.labels == ("Mass", "Nodule", "Effusion")

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with qtbot.waitSignal(session.modelFailed, timeout=WAIT_MS) as failed:
        session.load_model(bad)
    assert failed.args[0] == str(bad) and failed.args[1]
    assert session.model.classifier.info.model_version == "three-1"  # the previous model stays


def test_a_film_that_fails(qtbot, session, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a PNG at all" * 10)
    film_failures, told_user = recorder(session.filmFailed), recorder(session.failed)
    with qtbot.waitSignals([session.filmFailed, session.failed], order="strict", timeout=WAIT_MS):
        assert session.open([bad]) == [bad]
    ((path, message),), ((title, told),) = film_failures, told_user
    assert path == str(bad) and "broken.png" in message
    assert title == "Cannot open broken.png" and told == message  # opened by name: the user is told
    assert session.model.entry.status == "error" and session.model.film is None

    empty = tmp_path / "empty"
    empty.mkdir()
    with qtbot.waitSignal(session.failed, timeout=WAIT_MS) as nothing:
        assert session.open([empty]) == []
    assert nothing.args[0] == "No films" and "empty" in nothing.args[1]


def test_export_runs_off_the_ui_thread(qtbot, session, nih_film, tmp_path):
    import threading

    from cxrviewer.ui import workers

    threads = []
    original = workers.export_annotated

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return original(*args, **kwargs)

    with qtbot.waitSignal(session.predictionReady, timeout=WAIT_MS):
        session.open([nih_film])
    qtbot.waitUntil(lambda: session.model.film is not None)
    import cxrviewer.ui.session as session_module

    session_module.export_annotated = spy
    try:
        with qtbot.waitSignal(session.exported, timeout=WAIT_MS) as blocker:
            assert session.export(tmp_path / "out.png")
    finally:
        session_module.export_annotated = original
    assert blocker.args == [str(tmp_path / "out.png")] and Path(blocker.args[0]).stat().st_size > 0
    assert threads and threads[0] is not threading.main_thread()


def test_reads_of_films_no_longer_shown_are_dropped(qtbot, tmp_path, film_folder):
    """Paging through films faster than they are read: only the one shown must be read."""
    nih_images = sorted(film_folder(12).iterdir())  # the six samples twice, under 12 names
    s = FilmSession(ViewerModel(), device="cpu", results_dir=tmp_path / "results")
    s.pool.setMaxThreadCount(1)  # one read at a time: the others queue
    gate = threading.Event()
    s.pool.start(lambda: gate.wait(WAIT_MS / 1000))  # the one thread is busy: every read queues
    try:
        s.model.set_paths(nih_images[:12])  # no model yet: reads only, no folder run
        for i in range(12):
            s.model.set_current(i)
        gate.set()
        with qtbot.waitSignal(s.filmReady, timeout=WAIT_MS) as ready:
            pass
        qtbot.waitUntil(lambda: not s._inflight, timeout=WAIT_MS)
        assert ready.args == [str(nih_images[11])]  # the film shown, not one paged past
        read = [e for e in s.model.entries if e.thumbnail is not None]
        assert len(read) == 1  # none of the 11 paged past was read (all 12 were, before)
        assert s.model.entries[11].thumbnail is not None and s.model.film is not None
    finally:
        s.shutdown(10_000)


def test_a_pick_of_findings_the_model_lacks_is_said_not_silently_empty(qtbot, tiny_model):
    """`cxrviewer --classes Mas` (or a pick saved with another model): one message, then the
    positive findings; a display name (`Pleural Thickening`) is a name the model has."""
    from cxrviewer.ui.session import FilmSession
    from cxrviewer.ui.state.viewer_model import ViewerModel

    model = ViewerModel()
    session = FilmSession(model, device="cpu")
    model.set_display(policy="custom", custom=("pleural thickening", "Mas"))
    with qtbot.waitSignal(session.failed, timeout=30_000) as failed:
        session.load_model(tiny_model)
    assert failed.args[0] == "Unknown finding" and "'Mas'" in failed.args[1]
    assert model.display.policy == "positives"

    model.set_display(policy="custom", custom=("pleural thickening",))
    with qtbot.waitSignal(session.modelChanged, timeout=30_000):
        session.load_model(tiny_model)
    assert model.display.custom == ("Pleural_Thickening",)
