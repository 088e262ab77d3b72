"""Fixtures for the desktop app tests: an isolated settings store, a window on the tiny model,
and a recorder standing in for modal message boxes (so nothing blocks offscreen)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QSettings  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402
from uihelpers import WAIT_MS  # noqa: E402


@pytest.fixture(autouse=True)
def isolated_settings(tmp_path, monkeypatch):
    """Every QSettings the tests create lives in tmp_path, never in the user's store."""
    ini = tmp_path / "settings" / "cxrviewer.ini"
    ini.parent.mkdir()
    monkeypatch.setenv("CXRVIEWER_SETTINGS", str(ini))
    QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    return ini


@pytest.fixture
def dialogs(monkeypatch):
    """Replace QMessageBox's blocking helpers by a recorder: a list of (kind, title, text)."""
    seen: list[tuple[str, str, str]] = []

    def recorder(kind):
        def show(parent, title, text, *args, **kwargs):
            seen.append((kind, title, text))
            return QMessageBox.StandardButton.Ok

        return show

    for kind in ("warning", "critical", "information", "question"):
        monkeypatch.setattr(QMessageBox, kind, staticmethod(recorder(kind)))
    monkeypatch.setattr(QMessageBox, "exec", lambda self: seen.append(("exec", self.windowTitle(), self.text())) or 0)
    return seen


@pytest.fixture
def make_window(qtbot, tiny_model, tmp_path, isolated_settings, dialogs):
    """Build a MainWindow on the tiny model and wait until the model is loaded."""
    from cxrviewer.ui.main_window import MainWindow

    made = []

    def make(model_path=tiny_model, wait_model=True, **kwargs):
        store = QSettings(str(isolated_settings), QSettings.Format.IniFormat)
        kwargs.setdefault("results_dir", tmp_path / "results")
        w = MainWindow(store, model_path=model_path, device="cpu", **kwargs)
        qtbot.addWidget(w)
        if wait_model:
            with qtbot.waitSignal(w.modelLoaded, timeout=WAIT_MS) as blocker:
                pass
            assert blocker.args == [True]
        w.resize(1200, 800)
        w.show()
        w.activateWindow()  # window shortcuts (F, 1, PgDown...) need the active window
        qtbot.waitUntil(w.isActiveWindow, timeout=5000)
        made.append(w)
        return w

    yield make
    for w in made:
        w.session.shutdown(10_000)


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture
def nih_film(nih_images) -> Path:
    return nih_images[0]  # an NIH sample of resources/samples/


@pytest.fixture
def dicom_film(dicom_corpus) -> Path:
    """An NIH film as a DX: generated from a sample, and the real one where ../shared/data is."""
    return dicom_corpus["nih_dx"]


@pytest.fixture
def film_folder(tmp_path, nih_images):
    """A folder of ``n`` real NIH films (links, or copies where links are not allowed); the six
    samples repeat when ``n`` is larger."""

    def make(n: int, bad: int = 0) -> Path:
        folder = tmp_path / f"films{n}-{bad}"
        folder.mkdir()
        for i in range(n):
            src = nih_images[i % len(nih_images)]
            dst = folder / f"{i:03d}_{src.name}"
            try:
                os.symlink(src, dst)
            except OSError:
                shutil.copy(src, dst)
        for j in range(bad):
            (folder / f"{n + j:03d}_broken.png").write_bytes(b"this is not a PNG at all" * 10)
        return folder

    return make


@pytest.fixture
def session(qtbot, tiny_model, tmp_path):
    """A FilmSession (no window) on the tiny model, shut down after the test."""
    from cxrviewer.ui.session import FilmSession
    from cxrviewer.ui.state.viewer_model import ViewerModel

    s = FilmSession(ViewerModel(), device="cpu", results_dir=tmp_path / "results")
    with qtbot.waitSignal(s.modelChanged, timeout=WAIT_MS):
        s.load_model(tiny_model)
    yield s
    s.shutdown(10_000)
