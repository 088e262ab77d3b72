"""Picture the real window with a manual calibration and a cardiothoracic ratio (docs/gui.md).

    xvfb-run -a -s "-screen 0 1320x860x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python scripts/screenshot_measure.py docs/gui-calibrate-ctr.png

Opens a sample film (a PNG: no pixel size), calibrates it on a line of known length, draws a
distance and the cardiothoracic ratio through the measuring tools (the clicks the view would
send), and grabs the window with ``QWidget.grab()``. The PNG is reduced to 256 colours when it
would be over 300 KB.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILM = ROOT / "resources" / "samples" / "00000103_000.png"
MAX_BYTES = 300_000


def main(out: Path) -> int:
    tmp = Path(tempfile.mkdtemp())
    os.environ["CXRVIEWER_SETTINGS"] = str(tmp / "settings.ini")  # never the user's settings
    from PIL import Image
    from PySide6.QtCore import QBuffer, QEventLoop, QIODevice, QSettings, QTimer
    from PySide6.QtWidgets import QApplication

    from cxrviewer.ui.app import apply_theme
    from cxrviewer.ui.main_window import MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0]])
    apply_theme(app)
    window = MainWindow(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat),
                        results_dir=tmp / "results", interactive=False)
    window.resize(1280, 820)
    window.show()

    def wait(condition, ms: int = 60_000) -> None:
        loop, timer = QEventLoop(), QTimer()
        timer.timeout.connect(lambda: loop.quit() if condition() else None)
        timer.start(50)
        QTimer.singleShot(ms, loop.quit)
        loop.exec()
        timer.stop()
        if not condition():
            raise SystemExit("timed out")

    wait(lambda: window.model.classifier is not None)
    window.model.set_display(policy="none", markers=False)
    window.open_paths([FILM])
    wait(lambda: window.model.film is not None and window.model.prediction is not None)

    def clicks(kind: str, points) -> None:
        window.measure.start(kind)
        for x, y in points:
            window.view.pointPicked.emit(float(x), float(y))

    # a 500-pixel line said to be 200 mm long: 0.4 mm a pixel
    window.measure.calibrate((150.0, 900.0), (650.0, 900.0), 200.0)
    clicks("ctr", ((400, 600), (705, 600), (140, 660), (855, 660)))
    clicks("distance", ((520, 170), (520, 420)))
    window.measure.start(None)
    wait(window.render_idle)
    loop = QEventLoop()
    QTimer.singleShot(700, loop.quit)  # let the layout and the docks settle
    loop.exec()

    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    window.grab().save(buffer, "PNG")
    image = Image.open(io.BytesIO(bytes(buffer.data()))).convert("RGB")
    data = io.BytesIO()
    image.save(data, "PNG", optimize=True)
    if data.tell() > MAX_BYTES:
        data = io.BytesIO()
        image.quantize(256, method=Image.Quantize.MEDIANCUT).save(data, "PNG", optimize=True)
    out.write_bytes(data.getvalue())
    print(f"wrote {out} ({data.tell() // 1000} KB)")
    window.session.shutdown(10_000)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "gui-calibrate-ctr.png")))
