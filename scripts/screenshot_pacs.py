"""Picture File ▸ Open from PACS (a search's results) and the study it opens with its prior
side by side (docs/gui.md).

    xvfb-run -a -s "-screen 0 1700x1000x24" env QT_QPA_PLATFORM=xcb PYTHONPATH=tests \\
        .venv/bin/python scripts/screenshot_pacs.py docs/gui-open-pacs.png docs/gui-open-pacs-prior.png

Starts a real Orthanc (Debian's, on loopback ports: tests/orthancserver.py) loaded with the test
suite's generated patients (tests/dicomfactory.py, NIH sample pixels), searches it for
``DOE^J*`` through the dialog, grabs the dialog, opens the newest study with its prior (Open with
prior) and grabs the window once the films are scored. PNGs over 300 KB are reduced to 256 colours.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import sys
import tempfile
import time
from pathlib import Path

MAX_BYTES = 300_000


def _save(widget, out: Path) -> None:
    from PIL import Image
    from PySide6.QtCore import QBuffer, QIODevice

    buf = QBuffer()
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    widget.grab().save(buf, "PNG")
    data = bytes(buf.data())
    if len(data) > MAX_BYTES:
        img = Image.open(io.BytesIO(data)).convert("RGB").quantize(256)
        out_buf = io.BytesIO()
        img.save(out_buf, "PNG", optimize=True)
        data = out_buf.getvalue()
    out.write_bytes(data)


def main(dialog_png: Path, window_png: Path) -> int:
    tmp = Path(tempfile.mkdtemp())
    os.environ["CXRVIEWER_SETTINGS"] = str(tmp / "settings.ini")  # never the user's settings
    from dicomfactory import make_pacs_studies
    from orthancserver import LOOPBACK, running_orthanc
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    app = QApplication([])
    from cxrviewer.dimse.retrieve import RetrieveCache
    from cxrviewer.ui.main_window import MainWindow
    from cxrviewer.ui.pacs import PacsTarget, save_target
    from cxrviewer.ui.pacs_query_dialog import PacsQueryDialog

    def wait(cond, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not cond() and time.monotonic() < end:
            app.processEvents()
            time.sleep(0.02)

    films = make_pacs_studies(tmp / "films", dt.date.today().strftime("%Y%m%d"), size=512)
    with running_orthanc(tmp / "orthanc", {}, query_retrieve=True) as server:
        for f in films:
            server.upload(f.path)
        store = QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(store, device="cpu", results_dir=tmp / "results")
        window.resize(1600, 900)
        window.show()
        save_target(store, PacsTarget(server.aet, LOOPBACK, server.dicom_port, "CXRVIEWER"))
        dialog = PacsQueryDialog(window, cache=RetrieveCache(tmp / "cache"))
        dialog.show()
        dialog.patient_name.setText("DOE^J*")
        dialog.search()
        wait(lambda: not dialog.busy and dialog.table.rowCount() > 0, 30)
        wait(lambda: False, 0.5)
        _save(dialog, dialog_png)
        dialog.table.sortItems(0)  # newest last: its prior is the row above
        dialog.open_row(dialog.table.rowCount() - 1, with_prior=True)
        wait(lambda: len(window.model.entries) == 4 and window.model.prediction is not None, 60)
        wait(lambda: False, 5)  # the compared pane reads and scores its film
        _save(window, window_png)
        window.session.shutdown(10_000)
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
