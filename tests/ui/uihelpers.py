"""Helpers shared by the app tests (a module, not fixtures)."""

from __future__ import annotations

from pathlib import Path

WAIT_MS = 20_000


def open_and_wait(qtbot, window, paths, timeout: int = WAIT_MS):
    """Open ``paths`` and wait for the worker's result: the first film's findings on screen.

    Returns the ``predictionShown`` argument: True when shown, False when the film failed.
    """
    with qtbot.waitSignal(window.predictionShown, timeout=timeout) as blocker:
        assert window.open_paths([Path(p) for p in paths])
    return blocker.args[0]


def shown(qtbot, window, timeout: int = WAIT_MS):
    """Wait until the view shows the latest picture asked for (pictures are drawn off the UI
    thread), then return it as an RGB array."""
    qtbot.waitUntil(window.render_idle, timeout=timeout)
    return window.rendered_rgb()


def open_in_session(qtbot, session, path, timeout: int = WAIT_MS) -> None:
    """Open one film in a FilmSession and wait for its film and findings."""
    with qtbot.waitSignal(session.predictionReady, timeout=timeout):
        session.open([Path(path)])
    qtbot.waitUntil(lambda: session.model.film is not None and session.model.prediction is not None, timeout=timeout)
