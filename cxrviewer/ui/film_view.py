"""The film view: shows one RGB picture (from :func:`cxrviewer.render.overlay`) and nothing else.

It draws no heatmaps of its own: the window renders with the core renderer and hands the array
here, so what the user sees is exactly what ``cxrviewer export`` draws.

Mouse: wheel zooms around the cursor; left-drag pans; right-drag (or Ctrl + left-drag) changes
window/level (:attr:`FilmView.levelDragStarted` / :attr:`FilmView.levelDragged` report the drag
in screen pixels; the window turns them into a window); double-click fits. The view tells where
the cursor is in film pixels (:attr:`FilmView.hovered`). A left press on a measurement's point
(asked of :attr:`FilmView.grab_point`) drags that point instead of panning
(:attr:`FilmView.handleDragged`, :attr:`FilmView.handleReleased`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QImage,
    QMouseEvent,
    QPainter,
    QPen,
    QPixmap,
    QWheelEvent,
)
from PySide6.QtWidgets import (
    QFrame,
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsView,
    QWidget,
)

logger = logging.getLogger(__name__)

MIN_SCALE, MAX_SCALE = 0.02, 40.0
GRAB_PX = 8.0  # how near (screen pixels) a press must be to a measurement's point to drag it
WHEEL_STEP = 1.25  # zoom factor per wheel notch


def rgb_to_qimage(rgb: np.ndarray) -> QImage:
    """An RGB uint8 H×W×3 array as a QImage that owns its memory."""
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an H×W×3 RGB array, got shape {arr.shape}")
    h, w = arr.shape[:2]
    return QImage(arr.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()


def qimage_to_rgb(image: QImage) -> np.ndarray:
    """A QImage as an RGB uint8 H×W×3 array (a copy)."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h, bpl = img.width(), img.height(), img.bytesPerLine()
    buf = np.frombuffer(img.constBits(), dtype=np.uint8, count=bpl * h).reshape(h, bpl)
    return buf[:, : 3 * w].reshape(h, w, 3).copy()


class FilmView(QGraphicsView):
    hovered = Signal(int, int)  # film pixel under the cursor; (-1, -1) when outside
    levelDragStarted = Signal()
    levelDragged = Signal(int, int)  # screen pixels moved since the drag started (dx, dy)
    levelDragFinished = Signal()
    zoomChanged = Signal(float)
    pointPicked = Signal(float, float)  # a left click while a measuring tool is on (scene = picture pixels)
    handleDragged = Signal(float, float)  # the grabbed measurement point is now here (picture pixels)
    handleReleased = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filmView")
        self._scene = QGraphicsScene(self)
        self.setScene(self._scene)
        self._item = QGraphicsPixmapItem()
        self._item.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._scene.addItem(self._item)
        self._image = QImage()
        self._fit = True  # keep fitting on resize until the user zooms
        self._level_origin: QPoint | None = None
        self.placeholder = ""
        self.setBackgroundBrush(QBrush(QColor(0, 0, 0)))
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setRenderHints(QPainter.RenderHint.SmoothPixmapTransform)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        # drops go to the main window
        self.setAcceptDrops(False)
        self.viewport().setAcceptDrops(False)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.NoContextMenu)
        self.setToolTip("")
        self.measuring = False
        #: asked on a left press with the press's picture pixel and the grab radius in picture
        #: pixels: True when it took the press (a measurement's point is grabbed and dragged)
        self.grab_point: Callable[[float, float, float], bool] | None = None
        self._dragging_handle = False
        #: the points of a measurement still being clicked (picture pixels): drawn by the view
        #: itself until the measurement is complete and the renderer draws it
        self.pending: tuple[tuple[float, float], ...] = ()

    def set_measuring(self, on: bool) -> None:
        """Left clicks pick points (:attr:`pointPicked`) instead of panning."""
        self.measuring = on
        self.setDragMode(QGraphicsView.DragMode.NoDrag if on else QGraphicsView.DragMode.ScrollHandDrag)
        if on:
            self.viewport().setCursor(Qt.CursorShape.CrossCursor)
        else:
            self.viewport().unsetCursor()

    # --------------------------------------------------------------- picture
    def set_image(self, rgb: np.ndarray | None, size: tuple[int, int] | None = None) -> None:
        """Show ``rgb`` (H×W×3 uint8); a picture of a new size is fitted to the view.

        ``size`` = (width, height) of the full picture when ``rgb`` is a smaller preview of it
        (drawn while the window/level is dragged): it is stretched over the same place, so zoom,
        pan, the cursor's readout and measuring clicks keep the full picture's pixels.
        """
        if rgb is None:
            self._image = QImage()
            self._item.setPixmap(QPixmap())
            self._scene.setSceneRect(QRectF())
            return
        image = rgb_to_qimage(rgb)
        width, height = size if size is not None else (image.width(), image.height())
        new_size = QRectF(0, 0, width, height) != self._scene.sceneRect() or self._image.isNull()
        self._image = image
        self._item.setPixmap(QPixmap.fromImage(image))
        self._item.setScale(width / image.width())
        if new_size:
            self._scene.setSceneRect(QRectF(0, 0, width, height))
            self.fit()

    def image(self) -> QImage:
        """The picture on screen, at film resolution (a copy)."""
        return self._item.pixmap().toImage().copy()

    def displayed_rgb(self) -> np.ndarray | None:
        """The picture on screen as an RGB uint8 array (None when empty)."""
        pix = self._item.pixmap()
        if pix.isNull():
            return None
        return qimage_to_rgb(pix.toImage())

    def has_image(self) -> bool:
        return not self._item.pixmap().isNull()

    def set_pending(self, points) -> None:
        """Show the points clicked so far of a measurement not yet complete (picture pixels)."""
        points = tuple((float(x), float(y)) for x, y in points)
        if points != self.pending:
            self.pending = points
            self.viewport().update()

    def _draw_pending(self, painter: QPainter) -> None:
        # in scene coordinates (= picture pixels); sizes divided by the zoom stay constant on screen
        scale = max(self.zoom, 1e-6)
        pen = QPen(QColor(255, 220, 0), 1.5 / scale)
        painter.save()
        painter.setPen(pen)
        points = [QPointF(x, y) for x, y in self.pending]
        for a, b in zip(points, points[1:]):
            painter.drawLine(a, b)
        arm = 6.0 / scale
        for p in points:
            painter.drawLine(QPointF(p.x() - arm, p.y()), QPointF(p.x() + arm, p.y()))
            painter.drawLine(QPointF(p.x(), p.y() - arm), QPointF(p.x(), p.y() + arm))
        painter.restore()

    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:  # noqa: N802 - Qt API
        super().drawForeground(painter, rect)
        if self.pending and self.has_image():
            self._draw_pending(painter)
        if self.has_image() or not self.placeholder:
            return
        painter.save()
        painter.resetTransform()  # viewport coordinates
        painter.setPen(QColor(150, 150, 155))
        font = painter.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        painter.setFont(font)
        area = self.viewport().rect().adjusted(40, 40, -40, -40)
        painter.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
        painter.restore()

    def set_placeholder(self, text: str) -> None:
        """What the empty view says (e.g. how to open a film, or that a film is being read)."""
        if text != self.placeholder:
            self.placeholder = text
            self.viewport().update()

    # ------------------------------------------------------------------ zoom
    @property
    def zoom(self) -> float:
        return float(self.transform().m11())

    def fit(self) -> None:
        """Fit the whole film in the view (F)."""
        self._fit = True
        if self.has_image():
            self.fitInView(self._item, Qt.AspectRatioMode.KeepAspectRatio)
            self._zoom_changed()

    def actual_size(self) -> None:
        """One film pixel per screen pixel (1), centred on what is in the middle now."""
        self._fit = False
        center = self.mapToScene(self.viewport().rect().center())
        self.resetTransform()
        self.centerOn(center)
        self._zoom_changed()

    def zoom_by(self, factor: float, anchor: QPoint | None = None) -> None:
        """Zoom by ``factor``, keeping the scene point under ``anchor`` (viewport coords) still."""
        current = self.zoom
        target = min(MAX_SCALE, max(MIN_SCALE, current * factor))
        if current <= 0 or abs(target - current) < 1e-9:
            return
        factor = target / current
        self._fit = False
        if anchor is None:
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorViewCenter)
            self.scale(factor, factor)
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        else:
            before = self.mapToScene(anchor)
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
            self.scale(factor, factor)
            after = self.mapToScene(anchor)
            delta = after - before
            self.translate(delta.x(), delta.y())
            self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self._zoom_changed()

    def _zoom_changed(self) -> None:
        # smooth when shrinking; crisp pixels when magnifying (as film viewers do)
        mode = (
            Qt.TransformationMode.FastTransformation
            if self.zoom >= 2.0
            else Qt.TransformationMode.SmoothTransformation
        )
        self._item.setTransformationMode(mode)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, self.zoom < 2.0)
        self.zoomChanged.emit(self.zoom)

    def wheelEvent(self, event: QWheelEvent) -> None:  # noqa: N802 - Qt API
        steps = event.angleDelta().y() / 120.0
        if steps == 0 or not self.has_image():
            event.ignore()
            return
        self.zoom_by(WHEEL_STEP**steps, event.position().toPoint())
        event.accept()

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        if self._fit:
            self.fit()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if event.button() == Qt.MouseButton.LeftButton:
            self.fit()
            event.accept()
            return
        super().mouseDoubleClickEvent(event)

    # ---------------------------------------------------- window/level drag
    def _is_level_press(self, event: QMouseEvent) -> bool:
        return event.button() == Qt.MouseButton.RightButton or (
            event.button() == Qt.MouseButton.LeftButton
            and bool(event.modifiers() & Qt.KeyboardModifier.ControlModifier)
        )

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._grab_handle(event):
            event.accept()
            return
        if self.measuring and self.has_image() and event.button() == Qt.MouseButton.LeftButton \
                and not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            p = self.mapToScene(event.position().toPoint())
            self.pointPicked.emit(float(p.x()), float(p.y()))
            event.accept()
            return
        if self.has_image() and self._is_level_press(event):
            self._level_origin = event.position().toPoint()
            self.viewport().setCursor(Qt.CursorShape.SizeAllCursor)
            self.levelDragStarted.emit()
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        pos = event.position().toPoint()
        if self._dragging_handle:
            p = self.mapToScene(pos)
            self.handleDragged.emit(float(p.x()), float(p.y()))
            event.accept()
        elif self._level_origin is not None:
            d = pos - self._level_origin
            self.levelDragged.emit(d.x(), d.y())
            event.accept()
        else:
            super().mouseMoveEvent(event)
        self._report_hover(pos)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt API
        if self._dragging_handle and event.button() == Qt.MouseButton.LeftButton:
            self._dragging_handle = False
            if self.measuring:
                self.viewport().setCursor(Qt.CursorShape.CrossCursor)
            else:
                self.viewport().unsetCursor()
            self.handleReleased.emit()
            event.accept()
            return
        if self._level_origin is not None and event.button() in (
            Qt.MouseButton.RightButton, Qt.MouseButton.LeftButton,
        ):
            self._level_origin = None
            self.viewport().unsetCursor()
            self.levelDragFinished.emit()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def _grab_handle(self, event: QMouseEvent) -> bool:
        if (self.grab_point is None or not self.has_image() or event.button() != Qt.MouseButton.LeftButton
                or event.modifiers() & Qt.KeyboardModifier.ControlModifier):
            return False
        p = self.mapToScene(event.position().toPoint())
        radius = GRAB_PX / max(self.zoom, 1e-6)  # the same few screen pixels at any zoom
        if not self.grab_point(float(p.x()), float(p.y()), radius):
            return False
        self._dragging_handle = True
        self.viewport().setCursor(Qt.CursorShape.ClosedHandCursor)
        return True

    def leaveEvent(self, event) -> None:  # noqa: N802 - Qt API
        self.hovered.emit(-1, -1)
        super().leaveEvent(event)

    def _report_hover(self, pos: QPoint) -> None:
        if not self.has_image():
            return
        p: QPointF = self.mapToScene(pos)
        x, y = int(np.floor(p.x())), int(np.floor(p.y()))
        scene = self._scene.sceneRect()
        if 0 <= x < scene.width() and 0 <= y < scene.height():
            self.hovered.emit(x, y)
        else:
            self.hovered.emit(-1, -1)
