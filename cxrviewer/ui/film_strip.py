"""The film strip: the opened films with a thumbnail, a status badge and the top finding.

Badges: grey = queued, blue = being read/scored, green = scored (nothing above threshold),
amber = scored with findings above threshold, red "!" = could not be read (the tooltip and the
second line say why). Selecting a row selects the film in the model.
"""

from __future__ import annotations

import logging

import numpy as np
from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListWidget, QListWidgetItem, QWidget

from .viewer_model import ERROR, QUEUED, READING, SCORED, FilmEntry, ViewerModel

logger = logging.getLogger(__name__)

ICON = 72
BADGE_COLORS = {
    QUEUED: QColor(130, 130, 130),
    READING: QColor(70, 140, 230),
    SCORED: QColor(60, 170, 90),
    "positive": QColor(255, 180, 40),
    ERROR: QColor(220, 50, 50),
}


def entry_badge(entry: FilmEntry) -> str:
    if entry.status == SCORED and entry.prediction is not None and entry.prediction.positives:
        return "positive"
    return entry.status


def entry_text(entry: FilmEntry) -> str:
    if entry.status == ERROR:
        return f"{entry.name}\nerror: {(entry.error or '').split('. ')[0][:60]}"
    if entry.status == SCORED and entry.top_finding is not None:
        label, p = entry.top_finding
        return f"{entry.name}\nscored · {label.replace('_', ' ')} {p:.2f}"
    if entry.status == READING:
        return f"{entry.name}\nscoring…"
    return f"{entry.name}\n{entry.status}"


_PLACEHOLDERS: dict[tuple[str, int], QIcon] = {}


def thumbnail_icon(thumb: np.ndarray | None, badge: str, size: int = ICON) -> QIcon:
    """The thumbnail centred on a dark square with a status badge in the corner."""
    if thumb is None or not thumb.size:
        # films without a thumbnail yet share one icon per badge: a folder of 10,000 opens at once
        key = (badge, size)
        if key not in _PLACEHOLDERS:
            _PLACEHOLDERS[key] = _draw_icon(None, badge, size)
        return _PLACEHOLDERS[key]
    return _draw_icon(thumb, badge, size)


def _draw_icon(thumb: np.ndarray | None, badge: str, size: int) -> QIcon:
    pix = QPixmap(size, size)
    pix.fill(QColor(20, 20, 22))
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
    if thumb is not None and thumb.size:
        t = np.ascontiguousarray(thumb, dtype=np.uint8)
        h, w = t.shape
        img = QImage(t.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
        scaled = img.scaled(size, size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
        p.drawImage((size - scaled.width()) // 2, (size - scaled.height()) // 2, scaled)
    else:
        p.setPen(QPen(QColor(80, 80, 84), 1, Qt.PenStyle.DashLine))
        p.drawRect(QRectF(4.5, 4.5, size - 9, size - 9))
    r = max(7, size // 8)
    rect = QRectF(size - 2 * r - 2, size - 2 * r - 2, 2 * r, 2 * r)
    p.setPen(QPen(QColor(0, 0, 0), 1.5))
    p.setBrush(QBrush(BADGE_COLORS.get(badge, BADGE_COLORS[QUEUED])))
    p.drawEllipse(rect)
    if badge == ERROR:
        f = QFont()
        f.setBold(True)
        f.setPixelSize(int(r * 1.5))
        p.setFont(f)
        p.setPen(QColor(255, 255, 255))
        p.drawText(rect, Qt.AlignmentFlag.AlignCenter, "!")
    p.end()
    icon = QIcon(pix)
    icon.addPixmap(pix, QIcon.Mode.Selected)  # no selection tint: the badge colour must stay true
    return icon


class FilmStrip(QListWidget):
    def __init__(self, model: ViewerModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filmStrip")
        self.model = model
        self._syncing = False
        self.setIconSize(QSize(ICON, ICON))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformItemSizes(True)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setSpacing(2)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAcceptDrops(False)
        self.currentRowChanged.connect(self._row_changed)
        model.events.entries.connect(self.rebuild)
        model.events.entry.connect(self.update_entry)
        model.events.current.connect(self._current_changed)
        self.rebuild()

    def rebuild(self) -> None:
        self._syncing = True
        try:
            self.clear()
            for entry in self.model.entries:
                item = QListWidgetItem(thumbnail_icon(entry.thumbnail, entry_badge(entry)), entry_text(entry))
                item.setToolTip(str(entry.path))
                item.setData(Qt.ItemDataRole.UserRole, entry.status)
                self.addItem(item)
            if 0 <= self.model.current < self.count():
                self.setCurrentRow(self.model.current)
        finally:
            self._syncing = False

    def update_entry(self, index: int) -> None:
        item = self.item(index)
        if item is None:
            return
        entry = self.model.entries[index]
        item.setIcon(thumbnail_icon(entry.thumbnail, entry_badge(entry)))
        item.setText(entry_text(entry))
        item.setData(Qt.ItemDataRole.UserRole, entry.status)
        tip = str(entry.path)
        if entry.status == ERROR and entry.error:
            tip += f"\n\n{entry.error}"
            item.setForeground(QBrush(QColor(255, 110, 110)))
        else:
            item.setData(Qt.ItemDataRole.ForegroundRole, None)
        item.setToolTip(tip)

    def status_of(self, index: int) -> str:
        return str(self.item(index).data(Qt.ItemDataRole.UserRole))

    def _current_changed(self, index: int) -> None:
        if self.currentRow() != index:
            self._syncing = True
            try:
                self.setCurrentRow(index)
            finally:
                self._syncing = False

    def _row_changed(self, row: int) -> None:
        if not self._syncing and row >= 0:
            self.model.set_current(row)
