"""``run_app`` as the packaging check runs it: a real process, offscreen."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

pytestmark = pytest.mark.gui

REPO = Path(__file__).resolve().parents[2]


def run_gui(args, tmp_path, timeout=90):
    env = dict(os.environ)
    env.update(QT_QPA_PLATFORM="offscreen", CXRVIEWER_SETTINGS=str(tmp_path / "app-settings.ini"))
    code = "import sys; from cxrviewer.ui.app import run_app; sys.exit(run_app(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout,
    )


def test_exit_after_result_returns_0(tmp_path, tiny_model, nih_images):
    proc = run_gui([nih_images[0], "--exit-after-result", "--model", tiny_model], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_exit_after_result_returns_1_for_an_unreadable_film(tmp_path, tiny_model):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image" * 10)
    proc = run_gui([bad, "--exit-after-result", "--model", tiny_model], tmp_path)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "bad.png" in proc.stderr  # logged, never a blocking dialog


@pytest.mark.slow
def test_screenshot_option_writes_a_png(tmp_path, tiny_model, nih_images):
    out = tmp_path / "shot.png"
    proc = run_gui([nih_images[0], "--model", tiny_model, "--screenshot", out, "--window-size", "1000x700"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from PySide6.QtGui import QImage

    img = QImage(str(out))
    assert not img.isNull() and img.width() >= 900 and img.height() >= 600
