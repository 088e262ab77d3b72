"""Distances and angles on the film: the tool, and the panel that lists them.

A tool (Measure ▸ Distance, D; Measure ▸ Angle, G) turns left clicks on the film view into
points: two make a distance, three an angle (the vertex second). Points are kept in the film's
own coordinates (:class:`~cxrviewer.types.Measurement`), so measurements stay put when the film
is turned, mirrored or zoomed; each film keeps its own while the app runs
(:attr:`~cxrviewer.ui.viewer_model.ViewerModel.measurements`). They are drawn by the one
renderer (:func:`cxrviewer.render.picture`) and so appear in exports too. Lengths follow the
film's :class:`~cxrviewer.types.Calibration` (PS3.3 10.7.1.3, C.8.11.4), and say which one.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget, QLabel, QListWidget, QPushButton, QVBoxLayout, QWidget

from ..types import Calibration, Measurement

POINTS = {"distance": 2, "angle": 3}


def calibration_note(calibration: Calibration | None) -> str:
    """What the lengths are measured in, for the panel."""
    if calibration is None:
        return "No pixel spacing in the file: lengths in pixels."
    if calibration.kind == "detector":
        return ("Imager Pixel Spacing without a magnification factor: lengths at the detector, "
                "larger than in the patient.")
    if calibration.kind == "magnification corrected":
        return "Imager Pixel Spacing ÷ Estimated Radiographic Magnification Factor."
    return "Pixel Spacing (in the patient)."


class MeasureTool(QObject):
    """Collects clicked points into measurements on the model; owns the Measurements panel."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.model = window.model
        self.kind: str | None = None
        self.points: list[tuple[float, float]] = []
        window.view.pointPicked.connect(self.pick)
        self.model.events.measurements.connect(self._changed)
        self.model.events.film.connect(self._changed)

        self.dock = QDockWidget("Measurements", window)
        self.dock.setObjectName("measurementsDock")
        body = QWidget(self.dock)
        layout = QVBoxLayout(body)
        self.note = QLabel("", body)
        self.note.setObjectName("calibrationNote")
        self.note.setWordWrap(True)
        self.list = QListWidget(body)
        self.list.setObjectName("measurementsList")
        self.delete_button = QPushButton("Delete", body)
        self.delete_button.clicked.connect(self.delete_selected)
        for w in (self.note, self.list, self.delete_button):
            layout.addWidget(w)
        self.dock.setWidget(body)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.setVisible(False)

    # ------------------------------------------------------------------- tool
    def start(self, kind: str | None) -> None:
        """Measure a ``kind`` ("distance" or "angle") with the next clicks; ``None`` stops."""
        self.kind = kind if kind in POINTS else None
        self.points = []
        self.window.view.set_measuring(self.kind is not None)
        if self.kind is not None:
            self.dock.setVisible(True)
            n = POINTS[self.kind]
            self.window.statusBar().showMessage(
                f"{self.kind.capitalize()}: click {n} points on the film"
                + (" (the vertex second)" if self.kind == "angle" else "") + "; Esc stops.", 8000)

    def pick(self, x: float, y: float) -> None:
        """A click at picture pixel (x, y): a point in film coordinates."""
        film = self.model.film
        if self.kind is None or film is None:
            return
        fx, fy = self.model.display.orientation.to_film(x, y, film.height, film.width)
        self.points.append((min(max(fx, 0.0), film.width), min(max(fy, 0.0), film.height)))
        if len(self.points) == POINTS[self.kind]:
            measurement = Measurement(self.kind, tuple(self.points))
            self.points = []
            self.model.add_measurement(measurement)

    # ------------------------------------------------------------------ panel
    def delete_selected(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.model.remove_measurement(row)

    def labels(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _changed(self) -> None:
        film = self.model.film
        cal = film.calibration if film is not None else None
        items = [f"{m.kind.capitalize()} {i + 1}: {m.label(cal)}" for i, m in enumerate(self.model.current_measurements())]
        self.list.clear()
        self.list.addItems(items)
        if items:
            self.list.setCurrentRow(len(items) - 1)
            self.dock.setVisible(True)
        self.note.setText(calibration_note(cal) if film is not None else "")
        self.delete_button.setEnabled(bool(items))
        self.window.render()
