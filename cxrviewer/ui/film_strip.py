"""The film strip: the opened films with a thumbnail, a status badge and the top finding.

Badges: grey = queued, blue = being read/scored, green = scored (nothing above threshold),
amber = scored with findings above threshold, red "!" = could not be read (the tooltip and the
second line say why). Selecting a row selects the film in the model.

The strip is a view over the :class:`~cxrviewer.ui.state.viewer_model.ViewerModel`
(:class:`FilmList`): Qt asks only for the rows on screen, and their icons are drawn then and
kept for the last :data:`ICON_CACHE` rows shown, so a folder of 10,000 films costs no more
pixmaps than one of 500.

Above the rows, a filter (:mod:`cxrviewer.ui.state.worklist_filter`: all films, any positive,
positive for a finding, out of distribution, unreadable) and how many films it lists
("12 of 200 films"). It hides rows (Qt's ``setRowHidden``), so film indices stay the model's
and the filter combines with the worklist sort; films scored later obey it as they arrive.

Films are grouped by patient and study (:mod:`cxrviewer.ui.state.studies`) once their DICOM
headers say which: a heading row per study ("2025-03-14 · CHEST PA AND LAT · 2 films"), its
films under it, frontal before lateral, and the films without a study under "Other films".
Headings cannot be selected; the arrow keys, PgUp/PgDown and the next/previous film skip them,
and the filter hides a heading whose films it all hides. Without any study (a folder of PNGs)
the strip lists the films as they are, without headings. The strip's methods that take or give
a ``row`` (:meth:`FilmStrip.text_of`, :meth:`FilmStrip.visible_rows`, …) speak of the model's
film indices, not of the view's rows.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

import numpy as np
from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, QRectF, QSize, Qt, QTimer
from PySide6.QtGui import QBrush, QColor, QFont, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QComboBox, QLabel, QListView, QVBoxLayout, QWidget

from .state.studies import StudyGroup, group_films
from .state.viewer_model import ERROR, NOT_APPLICABLE, QUEUED, READING, SCORED, FilmEntry, ViewerModel
from .state.worklist_filter import ALL, FilmFilter, count_text, filter_choices

logger = logging.getLogger(__name__)

ICON = 72
ICON_CACHE = 512  # rows whose icon is kept drawn (a screenful is ~10)
FLUSH_MS = 100  # the strip catches up with the films' status at most this late
ERROR_TEXT = QColor(255, 110, 110)
HEADING_BACKGROUND = QColor(45, 48, 56)
BADGE_COLORS = {
    QUEUED: QColor(130, 130, 130),
    READING: QColor(70, 140, 230),
    SCORED: QColor(60, 170, 90),
    "positive": QColor(255, 180, 40),
    ERROR: QColor(220, 50, 50),
    NOT_APPLICABLE: QColor(150, 120, 200),
}


def entry_badge(entry: FilmEntry) -> str:
    if entry.status == SCORED and entry.prediction is not None and entry.prediction.positives:
        return "positive"
    return entry.status


def entry_text(entry: FilmEntry) -> str:
    if entry.status == ERROR:
        return f"{entry.name}\nerror: {(entry.error or '').split('. ')[0][:60]}"
    if entry.status == NOT_APPLICABLE:
        return f"{entry.name}\nnot applicable: {(entry.outside_use or '').split(':')[0][:60]}"
    if entry.status == SCORED and entry.prediction is not None:
        pred = entry.prediction
        # the top finding *above threshold*: a highest probability below it is not a finding
        top = (f"{pred.positives[0].replace('_', ' ')} {pred.probability(pred.positives[0]):.2f}"
               if pred.positives else "no finding above threshold")
        unusual = " · unusual film" if pred.ood_flag else ""
        outside = " · outside the model's use" if entry.outside_use else ""
        return f"{entry.name}\nscored · {top}{unusual}{outside}"
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


def entry_tooltip(entry: FilmEntry) -> str:
    tip = str(entry.path)
    if entry.status == ERROR and entry.error:
        tip += f"\n\n{entry.error}"
    elif entry.outside_use:
        done = "Not scored" if entry.prediction is None else "Scored outside the model's use"
        tip += f"\n\n{done}: {entry.outside_use}."
    elif entry.prediction is not None and entry.prediction.ood_flag:
        tip += "\n\nUnusual film: it does not look like the films the model was trained on (out of distribution)."
    return tip


HEADING_ROLE = Qt.ItemDataRole.UserRole + 1  # True for a study's heading row


class FilmList(QAbstractListModel):
    """The model's films as a Qt list model: text, icon, tooltip and status, made when asked.

    Row ``r`` of the list is film :meth:`entry_at` (``r``) or, when films have studies, a
    study's heading (:meth:`entry_at` is -1, :meth:`group_at` its :class:`StudyGroup`)."""

    def __init__(self, model: ViewerModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.model = model
        self._icons: OrderedDict[int, QIcon] = OrderedDict()
        # Each dataChanged costs the view a walk over every row (Qt lays the list out again on
        # the next paint): changes are told in one range at most every FLUSH_MS.
        self._dirty: set[int] = set()
        self._flush = QTimer(self)
        self._flush.setSingleShot(True)
        self._flush.setInterval(FLUSH_MS)
        self._flush.timeout.connect(self.flush)
        # the layout: None lists the films as they are; else one item per row, a film's index
        # (>= 0) or -1 - g for the heading of group g
        self._rows: list[int] | None = None
        self._row_of: dict[int, int] = {}
        self.groups: tuple[StudyGroup, ...] = ()
        self._layout()
        model.events.entries.connect(self._reset)
        model.events.studies.connect(self._reset)
        model.events.entry.connect(self._changed)

    def _layout(self) -> None:
        entries = self.model.entries
        if not any(e.study is not None for e in entries):
            self._rows, self._row_of, self.groups = None, {}, ()
            return
        self.groups = group_films([e.study for e in entries], [e.view_position for e in entries])
        rows: list[int] = []
        for g, group in enumerate(self.groups):
            rows.append(-1 - g)
            rows.extend(group.films)
        self._rows = rows
        self._row_of = {film: r for r, film in enumerate(rows) if film >= 0}

    def entry_at(self, row: int) -> int:
        """The film at view row ``row`` (-1 for a heading or no row)."""
        if self._rows is None:
            return row if 0 <= row < len(self.model.entries) else -1
        return self._rows[row] if 0 <= row < len(self._rows) else -1

    def group_at(self, row: int) -> StudyGroup | None:
        """The study group whose heading is view row ``row`` (``None`` for a film's row)."""
        if self._rows is None or not 0 <= row < len(self._rows) or self._rows[row] >= 0:
            return None
        return self.groups[-1 - self._rows[row]]

    def row_of(self, index: int) -> int:
        """The view row of film ``index`` (-1 if there is none)."""
        if self._rows is None:
            return index if 0 <= index < len(self.model.entries) else -1
        return self._row_of.get(index, -1)

    def heading_rows(self) -> list[int]:
        return [] if self._rows is None else [r for r, item in enumerate(self._rows) if item < 0]

    def film_rows(self) -> list[int]:
        """The films in the order the strip lists them (model indices)."""
        return list(range(len(self.model.entries))) if self._rows is None else [i for i in self._rows if i >= 0]

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:  # noqa: N802, B008 - Qt API
        if parent.isValid():
            return 0
        return len(self.model.entries) if self._rows is None else len(self._rows)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        if index.isValid() and self.group_at(index.row()) is not None:
            return Qt.ItemFlag.NoItemFlags  # a heading: neither selectable nor current
        return super().flags(index)

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        group = self.group_at(index.row())
        if group is not None:
            return self._heading_data(group, role)
        row = self.entry_at(index.row())
        if row < 0:
            return None
        entry = self.model.entries[row]
        if role == Qt.ItemDataRole.DisplayRole:
            return entry_text(entry)
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(row, entry)
        if role == Qt.ItemDataRole.ToolTipRole:
            return entry_tooltip(entry)
        if role == Qt.ItemDataRole.ForegroundRole and entry.status == ERROR:
            return QBrush(ERROR_TEXT)
        if role == Qt.ItemDataRole.UserRole:
            return entry.status
        if role == HEADING_ROLE:
            return False
        return None

    def _heading_data(self, group: StudyGroup, role: int) -> Any:
        if role == Qt.ItemDataRole.DisplayRole:
            return group.heading
        if role == HEADING_ROLE:
            return True
        if role == Qt.ItemDataRole.FontRole:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.BackgroundRole:
            return QBrush(HEADING_BACKGROUND)
        if role == Qt.ItemDataRole.ToolTipRole:
            return "A study: its films are listed under it"
        return None

    def _icon(self, row: int, entry: FilmEntry) -> QIcon:
        icon = self._icons.get(row)
        if icon is None:
            icon = self._icons[row] = thumbnail_icon(entry.thumbnail, entry_badge(entry))
            while len(self._icons) > ICON_CACHE:
                self._icons.popitem(last=False)
        else:
            self._icons.move_to_end(row)
        return icon

    def _reset(self) -> None:
        self.beginResetModel()
        self._icons.clear()
        self._dirty.clear()
        self._layout()
        self.endResetModel()

    def _changed(self, row: int) -> None:
        self._icons.pop(row, None)
        self._dirty.add(row)
        if not self._flush.isActive():
            self._flush.start()

    def flush(self) -> None:
        """Tell the view about the rows changed since the last flush."""
        self._flush.stop()
        rows = [self.row_of(r) for r in self._dirty if 0 <= r < len(self.model.entries)]
        rows = [r for r in rows if r >= 0]
        self._dirty.clear()
        if rows:
            self.dataChanged.emit(self.index(min(rows)), self.index(max(rows)))


class FilmStrip(QListView):
    def __init__(self, model: ViewerModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("filmStrip")
        self.model = model
        self.films = FilmList(model, self)
        self.setModel(self.films)
        self._syncing = False
        self.setIconSize(QSize(ICON, ICON))
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setUniformItemSizes(True)  # Qt sizes one row, not 10,000
        # per-item scrolling makes Qt walk every row on each layout: per pixel is smooth and cheap
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)
        self.setSpacing(2)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAcceptDrops(False)
        self.selectionModel().currentRowChanged.connect(self._row_changed)
        model.events.entries.connect(self._entries_changed)
        model.events.current.connect(self._current_changed)

        # the filter bar sits in a margin above the rows (as a table's header does)
        self.film_filter = FilmFilter()
        self._hidden: set[int] = set()  # the rows hidden, as told to Qt (a reset shows every row again)
        self.bar = QWidget(self)
        self.bar.setObjectName("worklistBar")
        bar = QVBoxLayout(self.bar)  # the combo over its count: both readable in a narrow strip
        bar.setContentsMargins(4, 2, 4, 2)
        bar.setSpacing(1)
        self.filter_combo = QComboBox(self.bar)
        self.filter_combo.setObjectName("worklistFilter")
        self.filter_combo.setToolTip("Which films the strip lists")
        self.count_label = QLabel("", self.bar)
        self.count_label.setObjectName("worklistCount")
        self.count_label.setProperty("muted", True)
        bar.addWidget(self.filter_combo)
        bar.addWidget(self.count_label)
        self.setViewportMargins(0, self.bar.sizeHint().height(), 0, 0)
        self._fill_choices()
        self.filter_combo.activated.connect(self._filter_chosen)
        self.films.modelReset.connect(self._reset)
        self.films.dataChanged.connect(lambda top, bottom, _roles=(): self._filter_view_rows(top.row(), bottom.row()))
        model.events.classifier.connect(self._fill_choices)

    # the few questions callers and tests ask, by film (the model's index, whatever its view row)
    def count(self) -> int:
        """How many films the strip holds (headings not counted)."""
        return len(self.model.entries)

    def _index_of(self, row: int) -> QModelIndex:
        return self.films.index(self.films.row_of(row))

    def text_of(self, row: int) -> str:
        return str(self.films.data(self._index_of(row), Qt.ItemDataRole.DisplayRole))

    def tooltip_of(self, row: int) -> str:
        return str(self.films.data(self._index_of(row), Qt.ItemDataRole.ToolTipRole))

    def status_of(self, row: int) -> str:
        return str(self.films.data(self._index_of(row), Qt.ItemDataRole.UserRole))

    def currentRow(self) -> int:  # noqa: N802 - as QListWidget
        return self.films.entry_at(self.currentIndex().row())

    def setCurrentRow(self, row: int) -> None:  # noqa: N802 - as QListWidget
        self.setCurrentIndex(self._index_of(row))

    def headings(self) -> list[str]:
        """The study headings the strip shows (not hidden by the filter), top to bottom."""
        return [self.films.group_at(r).heading for r in self.films.heading_rows()  # type: ignore[union-attr]
                if not self.isRowHidden(r)]

    def listed(self) -> list[str]:
        """Every row the strip shows, top to bottom: a heading's text, or a film's name."""
        out = []
        for r in range(self.films.rowCount()):
            if self.isRowHidden(r):
                continue
            group, film = self.films.group_at(r), self.films.entry_at(r)
            out.append(group.heading if group is not None else self.model.entries[film].name)
        return out

    def visible_count(self) -> int:
        """How many films the filter lists."""
        return self.count() - len(self._hidden)

    def visible_rows(self) -> list[int]:
        """The films the filter lists, in the strip's order."""
        return [row for row in self.films.film_rows() if row not in self._hidden]

    def step(self, delta: int) -> None:
        """Show the next (``+1``) or previous (``-1``) film the filter lists, in the strip's
        order (headings skipped), stopping at the ends."""
        if not self._hidden and not self.films.groups:
            self.model.step(delta)
            return
        rows = self.visible_rows()
        cur = self.model.current
        if not rows:
            return
        if cur not in rows:
            self.model.set_current(rows[0])
            return
        at = rows.index(cur) + (1 if delta > 0 else -1)
        if 0 <= at < len(rows):
            self.model.set_current(rows[at])

    def moveCursor(self, action: QAbstractItemView.CursorAction, modifiers: Qt.KeyboardModifier) -> QModelIndex:  # noqa: N802 - Qt API
        """Qt's keyboard move, but never onto a study's heading: past it, in the direction moved."""
        index = super().moveCursor(action, modifiers)
        if not self.films.groups:
            return index
        up = action in (QAbstractItemView.CursorAction.MoveUp, QAbstractItemView.CursorAction.MovePageUp,
                        QAbstractItemView.CursorAction.MoveHome, QAbstractItemView.CursorAction.MovePrevious,
                        QAbstractItemView.CursorAction.MoveLeft)
        row = index.row() if index.isValid() else self.currentIndex().row()
        n = self.films.rowCount()
        for direction in ((-1, 1) if up else (1, -1)):
            r = row
            while 0 <= r < n:
                if self.films.entry_at(r) >= 0 and not self.isRowHidden(r):
                    return self.films.index(r)
                r += direction
        return self.currentIndex()

    # ---------------------------------------------------------------- filter
    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        r = self.contentsRect()
        self.bar.setGeometry(r.left(), r.top(), r.width(), self.bar.sizeHint().height())

    def _fill_choices(self) -> None:
        clf = self.model.classifier
        choices = filter_choices(clf.info.labels if clf is not None else ())
        self.filter_combo.blockSignals(True)
        self.filter_combo.clear()
        for choice in choices:
            self.filter_combo.addItem(choice.text, choice)
        self.filter_combo.blockSignals(False)
        self.set_filter(self.film_filter if self.film_filter in choices else FilmFilter())

    def _filter_chosen(self, index: int) -> None:
        choice = self.filter_combo.itemData(index)
        if isinstance(choice, FilmFilter):
            self.set_filter(choice)

    def set_filter(self, choice: FilmFilter) -> None:
        """List only the films ``choice`` matches; if the film shown is not among them, show the
        first that is."""
        self.film_filter = choice
        i = self.filter_combo.findText(choice.text)
        if i >= 0 and self.filter_combo.currentIndex() != i:
            self.filter_combo.setCurrentIndex(i)
        self.apply_filter()
        current = self.model.current
        if 0 <= current < self.count() and current in self._hidden:
            rows = self.visible_rows()
            if rows:
                self.model.set_current(rows[0])

    def apply_filter(self) -> None:
        self._filter_rows(0, self.count() - 1)

    def _reset(self) -> None:
        self._hidden.clear()  # Qt has shown every row again
        self.apply_filter()
        self._current_changed(self.model.current)  # a new layout: the current film's row again

    def _filter_view_rows(self, top: int, bottom: int) -> None:
        """:meth:`_filter_rows` for the films of view rows ``top``..``bottom`` (dataChanged)."""
        if not self.films.groups:
            self._filter_rows(top, bottom)
            return
        films = [f for f in map(self.films.entry_at, range(top, bottom + 1)) if f >= 0]
        if films:
            self._filter_rows(min(films), max(films))

    def _filter_rows(self, first: int, last: int) -> None:
        """Hide or show films ``first``..``last`` (model indices) by the filter, and the
        headings whose films are all hidden (nothing to do for "All films" with no row hidden:
        a folder run's updates cost nothing then)."""
        choice = self.film_filter
        if choice.kind != ALL or self._hidden:
            entries = self.model.entries
            changed = False
            for row in range(max(0, first), min(last, len(entries) - 1) + 1):
                hide = choice.kind != ALL and not choice.matches(entries[row])
                if hide != (row in self._hidden):
                    changed = True
                    self.setRowHidden(self.films.row_of(row), hide)
                    if hide:
                        self._hidden.add(row)
                    else:
                        self._hidden.discard(row)
            if changed:
                self._hide_headings()
        self.count_label.setText(count_text(self.visible_count(), self.count()))

    def _hide_headings(self) -> None:
        """A study whose films the filter all hides loses its heading too."""
        for row in self.films.heading_rows():
            group = self.films.group_at(row)
            hide = group is not None and all(f in self._hidden for f in group.films)
            if hide != self.isRowHidden(row):
                self.setRowHidden(row, hide)

    def _entries_changed(self) -> None:
        self._current_changed(self.model.current)

    def _current_changed(self, index: int) -> None:
        if 0 <= index < self.count() and self.currentRow() != index:
            self._syncing = True
            try:
                self.setCurrentRow(index)
            finally:
                self._syncing = False

    def _row_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not self._syncing and current.isValid():
            film = self.films.entry_at(current.row())
            if film >= 0:
                self.model.set_current(film)
