"""With no display the app says what to do instead of Qt's abort (exit 134)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxrviewer.ui.app import EXIT_NO_DISPLAY, display_problem

REPO = Path(__file__).resolve().parents[2]


def run_app(env_changes: dict, *args: str, timeout: float = 60, prefix=()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    env.update(PYTHONPATH=str(REPO), CXRVIEWER_SETTINGS=str(Path(env.get("TMPDIR", "/tmp")) / "cxr-nodisplay.ini"))
    env.update(env_changes)
    return subprocess.run([*prefix, sys.executable, "-m", "cxrviewer", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("env", [{}, {"DISPLAY": ":77"}, {"QT_QPA_PLATFORM": "xcb"}], ids=["unset", "no-server", "xcb"])
def test_no_display_is_a_clear_message_and_exit_code(env):
    proc = run_app(env)
    assert proc.returncode == EXIT_NO_DISPLAY == 2, proc.stderr
    assert "QT_QPA_PLATFORM=offscreen" in proc.stderr
    assert "cxrviewer score" in proc.stderr and "cxrviewer export" in proc.stderr
    assert "Reinstalling" not in proc.stderr and "Traceback" not in proc.stderr


def test_which_platforms_need_a_display():
    assert display_problem((), {}, "linux") is not None
    assert display_problem((), {"QT_QPA_PLATFORM": "offscreen"}, "linux") is None
    assert display_problem(("-platform", "offscreen"), {}, "linux") is None
    assert display_problem((), {"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem((), {"WAYLAND_DISPLAY": "wayland-0", "QT_QPA_PLATFORM": "xcb"}, "linux") is not None
    assert display_problem((), {}, "darwin") is None and display_problem((), {}, "win32") is None


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="needs xvfb-run (Debian's xvfb)")
def test_a_real_x_display_starts_the_app(tiny_model):
    film = REPO / "resources" / "samples" / "00000103_000.png"
    proc = run_app({"QT_QPA_PLATFORM": "xcb"}, str(film), "--exit-after-result", "--model", str(tiny_model),
                   prefix=("xvfb-run", "-a", "-s", "-screen 0 1280x800x24"), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
