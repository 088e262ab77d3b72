"""The app under load (issue #18): PySide6 6.12.0 on Python 3.11 spends a reference to
``None`` on every void Qt call, and is excluded in pyproject.toml; with the PySide6 that
installs, void calls keep their references and the app scores thousands of films to the end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[2]

CALLS = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QApplication, QLabel
    app = QApplication([])
    label = QLabel()

    class Emitter(QObject):
        changed = Signal(object)

    emitter = Emitter()
    for _ in range(30_000):  # more than None's and True's references at start-up
        label.setText("x")
        emitter.changed.emit(None)
    print("alive")
    """
)


PROBE = textwrap.dedent(
    """
    import sys
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QApplication
    app = QApplication([])

    class Probe(QObject):
        ping = Signal()

    probe = Probe()
    probe.ping.emit()
    none0, true0 = sys.getrefcount(None), sys.getrefcount(True)
    for _ in range(64):
        probe.setObjectName("probe")
    none1 = sys.getrefcount(None)
    for _ in range(64):
        probe.ping.emit()
    true1 = sys.getrefcount(True)
    print((none0 - none1) / 64, (true0 - true1) / 64)
    """
)


def run_python(code: str, *args: str, tmp_path: Path, timeout: int = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", CXRVIEWER_SETTINGS=str(tmp_path / "settings.ini"))
    return subprocess.run([sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_the_installed_pyside6_keeps_none_alive(tmp_path):
    """No version of PySide6 that pyproject.toml allows drops references on void calls: 30,000
    of them (more than None's references at start-up) leave the interpreter alive, and None's
    and True's counts do not fall."""
    import PySide6

    assert PySide6.__version__ != "6.12.0", "PySide6 6.12.0 is excluded (pyproject.toml): reinstall PySide6-Essentials"
    bare = run_python(CALLS, tmp_path=tmp_path)
    assert bare.returncode == 0 and "alive" in bare.stdout, bare.stderr[-2000:]
    probe = run_python(PROBE, tmp_path=tmp_path)
    assert probe.returncode == 0, probe.stderr[-2000:]
    lost_none, lost_true = (float(v) for v in probe.stdout.split())
    assert lost_none < 0.5 and lost_true < 0.5, (lost_none, lost_true)


@pytest.mark.slow
def test_the_app_scores_thousands_of_films_to_the_end(tmp_path, tiny_model, nih_images):
    """Issue #18.1: a folder of 1,998 films killed the app after ~140 films (none_dealloc)."""
    folder = tmp_path / "films"
    folder.mkdir()
    n = 2400
    for i in range(n):
        os.symlink(nih_images[i % len(nih_images)], folder / f"{i:05d}.png")
    results = tmp_path / "results"
    code = "import sys; from cxrviewer.ui.app import run_app; sys.exit(run_app(sys.argv[1:]))"
    # --screenshot with a folder waits for the whole folder run, then saves and quits
    done = run_python(code, "--model", str(tiny_model), "--device", "cpu", "--results-dir", str(results),
                      "--screenshot", str(tmp_path / "shot.png"), str(folder), tmp_path=tmp_path, timeout=170)
    assert done.returncode == 0, done.stderr[-3000:]
    (csv,) = results.glob("*.csv")
    rows = csv.read_text(encoding="utf-8").splitlines()
    assert len(rows) == n + 1  # the header and one row per film
    assert (tmp_path / "shot.png").stat().st_size > 0
