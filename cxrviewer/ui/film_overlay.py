"""View ▸ Technique and demographics overlay: the four-corner text of a reading room viewer.

IHE Basic Image Review (Radiology TF-1 §34) expects a 2D viewer to show who the film is of and
how it was taken over the image. Here that text is painted by a transparent widget over the
view's viewport, in the view's corners and always upright, whatever the film's rotation or flip:
it is never part of the rendered picture, so it never reaches an export, a DICOM object or the
results CSV, and nothing here logs a value (patient fields are for the screen only).

- top left: patient name, ID, sex, age and birth date;
- top right: institution, study date and time, accession number;
- bottom left: modality, view position, laterality, kVp, mAs, source-detector distance,
  detector and Estimated Radiographic Magnification Factor;
- bottom right: window/level in the film's modality units, zoom, film size.

The header's values come from :func:`cxrviewer.io.dicom_header.overlay_attributes`, read off
the UI thread once per film while the overlay is on; absent values are left out. A raster film
(PNG, JPEG…) has no header: it gets its file name, size, window/level and zoom.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QThreadPool
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QGraphicsView, QWidget

from ..io.dicom_header import overlay_attributes
from ..types import Film, Voi
from .state.status_text import describe_window
from .workers import Worker, WorkerError, WorkerHandle

logger = logging.getLogger(__name__)

HEADER_CACHE = 16  # films whose header text is kept (one is read each time another film is shown)


@dataclass(frozen=True)
class Corners:
    """The overlay's lines, one tuple per corner of the view, top line first."""

    top_left: tuple[str, ...] = ()
    top_right: tuple[str, ...] = ()
    bottom_left: tuple[str, ...] = ()
    bottom_right: tuple[str, ...] = ()

    def lines(self) -> tuple[str, ...]:
        return (*self.top_left, *self.top_right, *self.bottom_left, *self.bottom_right)


# ------------------------------------------------------------------- formatting
def person_name(value: str) -> str:
    """A PN value "Family^Given^Middle^Prefix^Suffix" (PS3.5 6.2) as "Family, Given Middle"."""
    parts = [p.strip() for p in value.split("=")[0].split("^")]
    family, given = parts[0], " ".join(p for p in parts[1:3] if p)
    return f"{family}, {given}" if family and given else family or given


def dicom_date(value: str) -> str:
    """A DA value YYYYMMDD as YYYY-MM-DD (anything else as it is)."""
    v = value.strip()
    return f"{v[:4]}-{v[4:6]}-{v[6:8]}" if len(v) == 8 and v.isdigit() else v


def dicom_time(value: str) -> str:
    """A TM value HHMMSS.FFFFFF (PS3.5 6.2: minutes and seconds optional) as HH:MM[:SS]."""
    v = value.strip().split(".")[0]
    if not v.isdigit() or len(v) not in (2, 4, 6):
        return value.strip()
    return ":".join(v[i : i + 2] for i in range(0, len(v), 2)) if len(v) > 2 else f"{v}:00"


def age(value: str) -> str:
    """An AS value "045Y" (PS3.5 6.2: nnnD/W/M/Y) as "45 y"."""
    v = value.strip().upper()
    units = {"D": "d", "W": "w", "M": "mo", "Y": "y"}
    if len(v) == 4 and v[:3].isdigit() and v[3] in units:
        return f"{int(v[:3])} {units[v[3]]}"
    return v


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _trim(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def exposure_mas(f: Mapping[str, str]) -> float | None:
    """The exposure in mAs (PS3.3 C.8.7.2.1 / C.8.11.7): Exposure in µAs when the file gives it
    (more precise), else Exposure (mAs), else X-Ray Tube Current (mA) × Exposure Time (ms)."""
    uas = _number(f.get("ExposureInuAs"))
    if uas is not None:
        return uas / 1000.0
    mas = _number(f.get("Exposure"))
    if mas is not None:
        return mas
    ma, ms = _number(f.get("XRayTubeCurrent")), _number(f.get("ExposureTime"))
    return ma * ms / 1000.0 if ma is not None and ms is not None else None


def _joined(*parts: str | None, sep: str = " · ") -> str:
    return sep.join(p for p in parts if p)


def corner_lines(
    film: Film, fields: Mapping[str, str] | None, window: Voi | None, zoom: float | None,
) -> Corners:
    """The overlay's text for ``film`` from its header ``fields`` (``None`` for a raster film:
    its file name only), the window it is drawn with (``None``: the file's own) and the view's zoom."""
    f = fields or {}
    bottom_right = tuple(line for line in (
        describe_window(film, window),
        f"Zoom {100 * zoom:.0f}%" if zoom else "",
        f"{film.width} × {film.height} px",
    ) if line)
    if fields is None:
        return Corners(top_left=(film.name,), bottom_right=bottom_right)

    born = dicom_date(f["PatientBirthDate"]) if "PatientBirthDate" in f else ""
    top_left = tuple(line for line in (
        person_name(f["PatientName"]) if "PatientName" in f else "",
        f"ID {f['PatientID']}" if "PatientID" in f else "",
        _joined(f.get("PatientSex"), age(f["PatientAge"]) if "PatientAge" in f else "",
                f"born {born}" if born else ""),
    ) if line)
    when = _joined(dicom_date(f["StudyDate"]) if "StudyDate" in f else "",
                   dicom_time(f["StudyTime"]) if "StudyTime" in f else "", sep=" ")
    top_right = tuple(line for line in (
        f.get("InstitutionName", ""),
        when,
        f"Acc {f['AccessionNumber']}" if "AccessionNumber" in f else "",
    ) if line)

    kvp, mas = _number(f.get("KVP")), exposure_mas(f)
    sid = _number(f.get("DistanceSourceToDetector"))
    ermf = _number(f.get("EstimatedRadiographicMagnificationFactor"))
    detector = _joined(f.get("DetectorType"), f.get("DetectorID"), sep=" ")
    bottom_left = tuple(line for line in (
        _joined(f.get("Modality"), f.get("BodyPartExamined"), f.get("ViewPosition"),
                f.get("ImageLaterality") or f.get("Laterality")),
        _joined(f"{_trim(kvp)} kVp" if kvp is not None else "", f"{_trim(mas)} mAs" if mas is not None else ""),
        f"SID {_trim(sid)} mm" if sid is not None else "",
        _joined(f"Detector {detector}" if detector else "", f"ERMF {ermf:.3f}" if ermf is not None else ""),
    ) if line)
    return Corners(top_left, top_right, bottom_left, bottom_right)


# ---------------------------------------------------------------------- painting
class OverlayLayer(QWidget):
    """Paints :class:`Corners` in the corners of ``view`` 's viewport, over the picture.

    A child of the view (not of its viewport: a view scrolls its viewport's children with the
    picture when panning) laid over the viewport, letting every mouse event through; it follows
    the viewport's geometry. Light text on a translucent dark backdrop reads on any part of a film."""

    MARGIN = 8

    def __init__(self, view: QGraphicsView) -> None:
        super().__init__(view)
        self.setObjectName("filmOverlay")
        self.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.setAttribute(Qt.WidgetAttribute.WA_NoSystemBackground)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.corners = Corners()
        self._viewport = view.viewport()
        self._viewport.installEventFilter(self)
        self.setGeometry(self._viewport.geometry())
        self.setVisible(False)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt API
        if watched is self._viewport and event.type() in (QEvent.Type.Resize, QEvent.Type.Move):
            self.setGeometry(self._viewport.geometry())
        return False

    def setVisible(self, visible: bool) -> None:  # noqa: N802 - Qt API
        super().setVisible(visible)
        if visible:
            self.setGeometry(self._viewport.geometry())
            self.raise_()

    def set_corners(self, corners: Corners) -> None:
        if corners != self.corners:
            self.corners = corners
            self.update()

    def paintEvent(self, _event) -> None:
        if not any(self.corners.lines()):
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        font = QFont(self.font())
        font.setPixelSize(13)
        metrics = QFontMetricsF(font)
        step = metrics.lineSpacing()
        m, w, h = self.MARGIN, self.width(), self.height()
        c = self.corners
        for lines, right, bottom in ((c.top_left, False, False), (c.top_right, True, False),
                                     (c.bottom_left, False, True), (c.bottom_right, True, True)):
            if not lines:
                continue
            top = h - m - step * len(lines) if bottom else m
            width = max(metrics.horizontalAdvance(line) for line in lines)
            left = w - m - width if right else m
            # a dark backdrop: the text reads over a bright film and over the film's own markers
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(0, 0, 0, 150))
            p.drawRoundedRect(QRectF(left - 4, top - 2, width + 8, step * len(lines) + 4), 3, 3)
            path = QPainterPath()
            for i, line in enumerate(lines):
                x = w - m - metrics.horizontalAdvance(line) if right else m
                path.addText(QPointF(x, top + i * step + metrics.ascent()), font, line)
            p.strokePath(path, QPen(QColor(0, 0, 0, 200), 2.0, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                                    Qt.PenJoinStyle.RoundJoin))
            p.fillPath(path, QColor(235, 235, 235))
        p.end()


class FilmOverlay(QObject):
    """One view's overlay: the header text of the film it shows (read off the UI thread, kept
    for the last :data:`HEADER_CACHE` films), redrawn when the film, its window or the zoom changes.

    ``shown()`` answers (film, window) for the view, ``window`` ``None`` for the file's own."""

    def __init__(self, view: QGraphicsView, shown: Callable[[], tuple[Film | None, Voi | None]],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.shown = shown
        self.layer = OverlayLayer(view)
        self.on = False
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._headers: OrderedDict[Path, dict[str, str]] = OrderedDict()
        self._reading: set[Path] = set()
        view.zoomChanged.connect(lambda _z: self.refresh())

    def set_on(self, on: bool) -> None:
        self.on = on
        self.layer.setVisible(on)
        self.refresh()

    def refresh(self) -> None:
        if not self.on:
            return
        film, window = self.shown()
        if film is None or not self.view.has_image():
            self.layer.set_corners(Corners())
            return
        self.layer.set_corners(corner_lines(film, self._fields(film), window, self.view.zoom))

    def _fields(self, film: Film) -> dict[str, str] | None:
        if film.metadata.get("format") != "dicom" or film.source is None:
            return None
        path = film.source
        fields = self._headers.get(path)
        if fields is not None:
            self._headers.move_to_end(path)
            return fields
        if path not in self._reading:
            self._reading.add(path)
            worker = Worker(overlay_attributes, path)
            WorkerHandle(self, worker, result=lambda f, p=path: self._read(p, f),
                         error=lambda err, p=path: self._failed(p, err))
            self.pool.start(worker)
        return {}  # until the header is read: the window, zoom and size

    def _read(self, path: Path, fields: dict[str, str]) -> None:
        self._reading.discard(path)
        self._headers[path] = fields
        while len(self._headers) > HEADER_CACHE:
            self._headers.popitem(last=False)
        self.refresh()

    def _failed(self, path: Path, _err: WorkerError) -> None:
        self._reading.discard(path)
        self._headers[path] = {}  # the pixels were read: the overlay shows what it has without a header

    def shutdown(self) -> None:
        self.pool.waitForDone(5000)


class Overlays(QObject):
    """View ▸ Technique and demographics overlay: on the main view and on the compare pane, off
    by default, the choice kept in the settings (``display/overlay``)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        compare = window.compare
        self.main = FilmOverlay(window.view, lambda: (window.model.film, window.model.display.window), self)
        self.compare = FilmOverlay(
            compare.view,
            lambda: (compare.film, window.model.display.window if compare.linked else None),
            self,
        )
        for event in (window.model.events.film, window.model.events.display):
            event.connect(self.main.refresh)
        window.rendered.connect(self.main.refresh)
        compare.shown.connect(self.compare.refresh)
        action = window.act_overlay  # its toggled signal calls window.overlay, not there yet
        action.blockSignals(True)
        action.setChecked(window.prefs.overlay)
        action.blockSignals(False)
        self.set_on(window.prefs.overlay)

    @property
    def on(self) -> bool:
        return self.main.on

    def set_on(self, on: bool) -> None:
        for overlay in (self.main, self.compare):
            overlay.set_on(on)
        if self.window.prefs.overlay != on:
            self.window.prefs.overlay = on
            self.window.prefs.save(self.window.store)

    def shutdown(self) -> None:
        for overlay in (self.main, self.compare):
            overlay.shutdown()
