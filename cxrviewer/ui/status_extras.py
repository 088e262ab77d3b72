"""Status bar parts that must stay readable: where the last results went, and the zoom.

Transient status messages are cut off beside the permanent fields ("8 scored, 0 failed of",
"Exported …/out/gui_export.p"), so the last folder run's CSV, or the last export, also stays in a
field of its own that is never cut off: the file's name as a link that opens its folder in the
desktop's file manager, the run's summary and the full path in the tooltip. The zoom level has a field too.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QUrl
from PySide6.QtWidgets import QLabel


#: The most of the status bar's width the results link may take (its file name elides beyond).
RESULTS_SHARE = 0.15


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
        session.scoringStarted.connect(self._scoring)
        session.scoringFinished.connect(self._scored)
        session.exported.connect(lambda out: self.show_file("Exported", Path(out)))
        self._session = session
        self._window = window
        self._file: tuple[str, Path] | None = None

    def show_zoom(self, zoom: float) -> None:
        self.zoom.setText(f"zoom {100 * zoom:.0f}%")

    def show_file(self, what: str, path: Path, detail: str = "") -> None:
        """``what: name`` with the name a link that opens its folder; ``detail`` and the full path
        in the tooltip. The field is as wide as its text, the name elided in the middle when it
        would take more than :data:`RESULTS_SHARE` of the bar: never cut off, never overlapped."""
        self._file = (what, path)
        self.results.setToolTip(f"{detail}\n{path}\n(click to open its folder)".strip())
        self.results.setVisible(True)
        self.fit(self._window.statusBar().width())

    def fit(self, bar_width: int) -> None:
        """Lay the link out for a status bar ``bar_width`` pixels wide."""
        if self._file is None:
            return
        what, path = self._file
        fm = self.results.fontMetrics()
        room = max(fm.horizontalAdvance("abcdefgh.csv"), int(RESULTS_SHARE * bar_width) - fm.horizontalAdvance(f"{what}: "))
        name = fm.elidedText(path.name, Qt.TextElideMode.ElideMiddle, room)
        folder = QUrl.fromLocalFile(str(path.parent)).toString()
        self.results.setText(f"{html.escape(what)}: <a href=\"{html.escape(folder)}\">{html.escape(name)}</a>")
        self.results.setFixedWidth(self.results.sizeHint().width())

    def current_file(self) -> Path | None:
        """The file the link names (the last folder run's CSV, or the last export)."""
        return None if self._file is None else self._file[1]

    def clear_file(self) -> None:
        self._file = None
        self.results.setText("")
        self.results.setToolTip("")
        self.results.setVisible(False)

    def _scoring(self, _total: int, out: str) -> None:
        """A new folder run: the link names its CSV from the start (not the last run's)."""
        self.show_file("Results", Path(out), "being written")

    def _scored(self, summary) -> None:
        out = self._session.last_results
        if summary is not None and out is not None:
            self.show_file("Results", Path(out), summary.line())
