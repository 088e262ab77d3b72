"""Status bar parts that must stay readable: where the last results went, and the zoom.

Transient status messages are cut off beside the permanent fields ("8 scored, 0 failed of",
"Exported …/out/gui_export.p"), so the last folder run's CSV, or the last export, also stays in a
field of its own that is never cut off: the file's name as a link that opens its folder in the
desktop's file manager, the run's summary and the full path in the tooltip. The zoom level has a field too.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QObject, QUrl
from PySide6.QtWidgets import QLabel


class StatusExtras(QObject):
    def __init__(self, window) -> None:
        super().__init__(window)
        bar = window.statusBar()
        self.results = QLabel("", window)
        self.results.setObjectName("resultsLink")
        self.results.setOpenExternalLinks(True)
        self.results.setVisible(False)
        self.zoom = QLabel("", window)
        self.zoom.setObjectName("zoomInfo")
        bar.insertPermanentWidget(0, self.results)
        bar.addPermanentWidget(self.zoom)
        window.view.zoomChanged.connect(self.show_zoom)
        session = window.session
        session.scoringFinished.connect(self._scored)
        session.exported.connect(lambda out: self.show_file("Exported", Path(out)))
        self._session = session

    def show_zoom(self, zoom: float) -> None:
        self.zoom.setText(f"zoom {100 * zoom:.0f}%")

    def show_file(self, what: str, path: Path, detail: str = "") -> None:
        """``what: name`` with the name a link that opens its folder; ``detail`` and the full path
        in the tooltip. The field keeps its whole width: it is never cut off."""
        folder = QUrl.fromLocalFile(str(path.parent)).toString()
        self.results.setText(f"{html.escape(what)}: <a href=\"{html.escape(folder)}\">{html.escape(path.name)}</a>")
        self.results.setToolTip(f"{detail}\n{path}\n(click to open its folder)".strip())
        self.results.setVisible(True)
        self.results.setMinimumWidth(self.results.sizeHint().width())

    def _scored(self, summary) -> None:
        out = self._session.last_results
        if summary is not None and out is not None:
            self.show_file("Results", Path(out), summary.line())
