"""What the screenshot scripts share: the app started as a reader would see it, and waits.

``start(tmp)`` points the settings at a temporary file, themes a QApplication and returns it with
the model to load: the bundled demo model, else the tiny test model (tests/tinymodel.py).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start(tmp: Path):
    from PySide6.QtWidgets import QApplication

    from cxrviewer.ui.app import apply_theme

    os.environ["CXRVIEWER_SETTINGS"] = str(tmp / "settings.ini")
    model = ROOT / "resources" / "models" / "cxr-demo-densenet121-320.onnx"
    if not model.is_file():
        from tinymodel import build_tiny_model, tiny_info

        model = build_tiny_model(tmp / "tiny.onnx", tiny_info(64))
    app = QApplication.instance() or QApplication([])
    apply_theme(app)
    return app, model


def wait(app, cond, ms: int = 120_000) -> None:
    """Turn the event loop until ``cond()`` holds."""
    from PySide6.QtCore import QElapsedTimer

    timer = QElapsedTimer()
    timer.start()
    while not cond():
        app.processEvents()
        if timer.elapsed() > ms:
            raise TimeoutError("the window did not get there in time")


def settle(app, window, ms: int = 500) -> None:
    """Wait until ``window`` (and its compare pane) have drawn, then ``ms`` more of events."""
    from PySide6.QtCore import QElapsedTimer

    wait(app, window.render_idle)
    wait(app, lambda: window.compare.renderer.idle())
    timer = QElapsedTimer()
    timer.start()
    while timer.elapsed() < ms:
        app.processEvents()
