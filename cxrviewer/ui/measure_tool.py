"""Distances, angles and cardiothoracic ratios on the film: the tools, editing, manual
calibration, and the panel that lists them.

A tool (Measure ▸ Distance, D; Angle, G; Cardiothoracic ratio) turns left clicks on the film
view into points: two make a distance, three an angle (the vertex second), four a ratio (the
heart's widest width, then the thorax's widest inner width, each kept horizontal on the film).
Points are kept in the film's own coordinates (:class:`~cxrviewer.types.Measurement`), so
measurements stay put when the film is turned, mirrored or zoomed; each film keeps its own while
the app runs (:attr:`~cxrviewer.ui.state.viewer_model.ViewerModel.measurements`). A left drag on a
measurement's point moves it (the label follows); Delete removes the selected one. The panel
opens only on request (Measure ▸ Measurements list), floating, so the film keeps its zoom. They are drawn
by the one renderer (:func:`cxrviewer.render.picture`) and so appear in exports too.

Lengths follow the film's :class:`~cxrviewer.types.Calibration` (PS3.3 10.7.1.3, C.8.11.4) and say
which one; Measure ▸ Calibrate… replaces it by hand: draw a line over something of known length
and give its length in mm (kept per film while the app runs, labelled "manual calibration").
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import (
    QDockWidget,
    QInputDialog,
    QLabel,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ..types import MEASUREMENT_POINTS, Calibration, Measurement

POINTS = {**MEASUREMENT_POINTS, "calibrate": 2}
NAMES = {"distance": "Distance", "angle": "Angle", "ctr": "Cardiothoracic ratio"}
HINTS = {
    "distance": "Distance: click its two ends",
    "angle": "Angle: click 3 points, the vertex second",
    "ctr": "Cardiothoracic ratio: click the two sides of the heart at its widest, then the two "
           "inner sides of the thorax at its widest (each width stays horizontal)",
    "calibrate": "Calibrate: click the two ends of something of known length",
}


def calibration_note(calibration: Calibration | None, file_calibration: Calibration | None = None) -> str:
    """What the lengths are measured in, for the panel (``file_calibration``: the file's own,
    when ``calibration`` is a manual one overriding it)."""
    if calibration is None:
        return "No pixel spacing in the file: lengths in pixels (Measure ▸ Calibrate… to measure in mm)."
    if calibration.kind == "manual":
        note = f"Manual calibration: {calibration.col_mm:.4g} × {calibration.row_mm:.4g} mm per pixel, from a line of known length"
        if file_calibration is not None:
            note += f" (overrides the file's {file_calibration.source})"
        return note + "."
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
        self._points_film = None  # the film the points being clicked are on
        #: (measurement, point) being dragged
        self.grabbed: tuple[int, int] | None = None
        self.dialog: QInputDialog | None = None
        view = window.view
        view.pointPicked.connect(self.pick)
        view.grab_point = self.grab  # not `grab`: that is QWidget.grab(), the screenshot
        view.handleDragged.connect(self.drag)
        view.handleReleased.connect(self.release)
        self.model.events.measurements.connect(self._changed)
        self.model.events.film.connect(self._changed)
        self.model.events.film.connect(self._show_pending)
        self.model.events.display.connect(self._show_pending)  # a turn or mirror moves them

        self.dock = QDockWidget("Measurements", window)
        self.dock.setObjectName("measurementsDock")
        body = QWidget(self.dock)
        layout = QVBoxLayout(body)
        self.note = QLabel("", body)
        self.note.setObjectName("calibrationNote")
        self.note.setWordWrap(True)
        self.list = QListWidget(body)
        self.list.setObjectName("measurementsList")
        self.list.setWordWrap(True)  # long labels ("… mm, manual calibration)") wrap, not cut
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.delete_button = QPushButton("Delete", body)
        self.delete_button.clicked.connect(self.delete_selected)
        self.reset_button = QPushButton("Reset calibration", body)
        self.reset_button.setObjectName("resetCalibration")
        self.reset_button.setToolTip("Measure with the file's own calibration again (or in pixels)")
        self.reset_button.clicked.connect(self.reset_calibration)
        self.reset_button.setVisible(False)
        for w in (self.note, self.list, self.delete_button, self.reset_button):
            layout.addWidget(w)
        self.dock.setWidget(body)
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.setVisible(False)
        self.dock.visibilityChanged.connect(self._dock_shown)

    # ------------------------------------------------------------------ panel
    def show_panel(self, on: bool = True) -> None:
        """Show (Measure ▸ Measurements list) or hide the panel. It opens only when asked, never
        with a tool, and floats over the window's right-hand side: docking it would narrow the
        film view and change the film's zoom under the reader's eyes (issue 28). Dragged onto the
        window's edge it docks like any panel."""
        if on and not self.dock.isVisible():
            self.dock.setFloating(True)
            view = self.window.view
            size = self.dock.sizeHint().expandedTo(self.dock.minimumSizeHint())
            width, height = max(260, size.width()), max(240, min(size.height(), view.height() - 20))
            corner = view.mapToGlobal(view.rect().topRight())
            self.dock.setGeometry(corner.x() - width - 12, corner.y() + 12, width, height)
        self.dock.setVisible(on)

    def _dock_shown(self, visible: bool) -> None:
        act = getattr(self.window, "act_measure_panel", None)
        if act is not None and act.isChecked() != visible:
            act.blockSignals(True)
            act.setChecked(visible)
            act.blockSignals(False)

    # ------------------------------------------------------------------- tool
    def start(self, kind: str | None) -> None:
        """Measure a ``kind`` ("distance", "angle", "ctr") or draw the line of a manual
        calibration ("calibrate") with the next clicks; ``None`` stops."""
        self.kind = kind if kind in POINTS else None
        self.points = []
        self._show_pending()
        self.window.view.set_measuring(self.kind is not None)
        if self.kind is not None:
            self.window.statusBar().showMessage(f"{HINTS[self.kind]}; Esc stops.", 8000)

    def pick(self, x: float, y: float) -> None:
        """A click at picture pixel (x, y): a point in film coordinates."""
        if self.kind is None or self.model.film is None:
            return
        if not self.points:
            self._points_film = self.model.film
        self.points.append(self._to_film(x, y))
        if len(self.points) < POINTS[self.kind]:
            self._show_pending()
            return
        points, self.points = tuple(self.points), []
        self._show_pending()
        if self.kind == "calibrate":
            self.start(None)
            self.ask_length(points[0], points[1])
        else:
            self.model.add_measurement(Measurement(self.kind, points))

    def _to_film(self, x: float, y: float) -> tuple[float, float]:
        film = self.model.film
        fx, fy = self.model.display.orientation.to_film(x, y, film.height, film.width)
        return min(max(fx, 0.0), film.width), min(max(fy, 0.0), film.height)

    def _show_pending(self, *_args) -> None:
        """The view marks the points clicked so far (the renderer draws only complete ones)."""
        film = self.model.film
        if film is not self._points_film:
            self.points = []  # another film: the half-clicked measurement was on the last one
        if film is None or not self.points:
            self.window.view.set_pending(())
            return
        orientation = self.model.display.orientation
        self.window.view.set_pending(orientation.to_screen(fx, fy, film.height, film.width) for fx, fy in self.points)

    # ---------------------------------------------------------------- editing
    def grab(self, x: float, y: float, radius: float) -> bool:
        """A left press at picture pixel (x, y): grab the nearest measurement point within
        ``radius`` picture pixels (and select its measurement). Not while a new one is being
        clicked, so its points can land on an old one's."""
        film = self.model.film
        if film is None or self.points:
            return False
        orientation = self.model.display.orientation
        best, best_d = None, radius
        for i, m in enumerate(self.model.current_measurements()):
            for j, (fx, fy) in enumerate(m.points):
                sx, sy = orientation.to_screen(fx, fy, film.height, film.width)
                d = ((sx - x) ** 2 + (sy - y) ** 2) ** 0.5
                if d <= best_d:
                    best, best_d = (i, j), d
        self.grabbed = best
        if best is not None:
            self.list.setCurrentRow(best[0])
        return best is not None

    def drag(self, x: float, y: float) -> None:
        """The grabbed point follows the mouse (picture pixel (x, y))."""
        if self.grabbed is None or self.model.film is None:
            return
        i, j = self.grabbed
        current = self.model.current_measurements()
        if i < len(current):
            self.model.replace_measurement(i, current[i].moved(j, self._to_film(x, y)))

    def release(self) -> None:
        self.grabbed = None

    # ------------------------------------------------------------ calibration
    def ask_length(self, a: tuple[float, float], b: tuple[float, float]) -> QInputDialog:
        """Ask how long the line from ``a`` to ``b`` (film coordinates) is; the answer calibrates
        the film. The dialog is window-modal but does not block (``self.dialog``)."""
        dialog = QInputDialog(self.window)
        dialog.setObjectName("calibrationDialog")
        dialog.setWindowTitle("Calibrate")
        dialog.setInputMode(QInputDialog.InputMode.DoubleInput)
        dialog.setLabelText("Length of the line you drew, in mm:")
        dialog.setDoubleRange(0.01, 100_000.0)
        dialog.setDoubleDecimals(2)
        dialog.setDoubleValue(10.0)
        dialog.doubleValueSelected.connect(lambda mm: self.calibrate(a, b, mm))
        dialog.finished.connect(dialog.deleteLater)
        self.dialog = dialog
        dialog.open()
        return dialog

    def calibrate(self, a: tuple[float, float], b: tuple[float, float], length_mm: float) -> None:
        """Make the line from ``a`` to ``b`` ``length_mm`` long on the current film."""
        film = self.model.film
        if film is None:
            return
        try:
            calibration = Calibration.manual(a, b, length_mm, film.calibration)
        except ValueError as exc:
            self.window.statusBar().showMessage(f"Not calibrated: {exc}.", 10000)
            return
        self.model.set_calibration(calibration)
        self.window.statusBar().showMessage(f"Calibrated by hand: {calibration.col_mm:.4g} mm per pixel.", 8000)

    def reset_calibration(self) -> None:
        """Back to the file's own calibration (or pixels)."""
        self.model.set_calibration(None)

    # ------------------------------------------------------------------ panel
    def delete_selected(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.model.remove_measurement(row)

    def labels(self) -> list[str]:
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _changed(self) -> None:
        film = self.model.film
        cal = self.model.calibration()
        items = [f"{NAMES[m.kind]} {i + 1}: {m.label(cal)}" for i, m in enumerate(self.model.current_measurements())]
        row, grew = self.list.currentRow(), len(items) > self.list.count()
        self.list.clear()
        self.list.addItems(items)
        if items:
            # a new one is selected; an edited or deleted one keeps the selection where it was
            self.list.setCurrentRow(len(items) - 1 if grew or row < 0 else min(row, len(items) - 1))
        self.note.setText(calibration_note(cal, film.calibration) if film is not None else "")
        self.delete_button.setEnabled(bool(items))
        self.reset_button.setVisible(self.model.manual_calibration() is not None)
        self.window.render()
