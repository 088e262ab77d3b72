"""Quitting while a folder run is in inference ends the process at once (it lingered ~1-2 s,
waiting for the batch in flight), with the settings saved."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

REPO = Path(__file__).resolve().parents[2]

HARNESS = r"""
import sys, time
from PySide6.QtCore import QTimer
from cxrviewer.ui import app, main_window

init = main_window.MainWindow.__init__
def patched(self, *a, **k):
    init(self, *a, **k)
    def quit_soon(ok):
        def quit_now():
            print(f"QUIT {time.time():.4f} {int(self.session.scoring)}", flush=True)
            self.close()  # what File > Quit (Ctrl+Q) does
        QTimer.singleShot(400, quit_now)  # the folder run is in inference by then
    self.predictionShown.connect(quit_soon)
main_window.MainWindow.__init__ = patched
sys.exit(app.run_app(sys.argv[1:]))
"""


@pytest.mark.slow
def test_quitting_during_a_folder_run_exits_promptly(tmp_path):
    ini = tmp_path / "settings.ini"
    films = tmp_path / "films"  # enough films that a batch is surely in inference at the quit
    films.mkdir()
    for i in range(5):
        for src in sorted((REPO / "resources" / "samples").glob("*.png")):
            (films / f"{i}_{src.name}").write_bytes(src.read_bytes())
    env = {**os.environ, "PYTHONPATH": str(REPO), "QT_QPA_PLATFORM": "offscreen", "CXRVIEWER_SETTINGS": str(ini)}
    proc = subprocess.Popen([sys.executable, "-c", HARNESS, str(films),
                             "--results-dir", str(tmp_path / "results")],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    quit_at = None
    for line in proc.stdout:
        if line.startswith("QUIT "):
            _, stamp, scoring = line.split()
            quit_at = float(stamp)
            break
    proc.wait(timeout=60)
    ended = time.time()
    assert quit_at is not None, proc.stderr.read()[-2000:]
    assert scoring == "1"  # the other films of the folder were being scored
    assert proc.returncode == 0
    # it waited for the batch in flight: 0.47-0.59 s here, 0.9-1.4 s with the 6 samples at 300 ms,
    # ~2 s on the machine of issue #13; now 0.07-0.11 s
    print(f"quit to exit: {ended - quit_at:.2f} s")
    assert ended - quit_at < 0.35, ended - quit_at
    assert ini.is_file() and "geometry" in ini.read_text(errors="replace").lower()
