"""A one-line label that never draws cut-off text: it elides to the width it is given and then
shows its whole text in its tooltip.

A plain ``QLabel`` asks for its whole text's width as its *minimum*: in a full status bar the
layout cannot honour every minimum and the fields are clipped mid-word ("pixel size unkno") or
drawn over one another. This label asks for its whole text as its preferred width but can shrink
to a few characters; ``text()`` stays the whole text, :meth:`ElidedLabel.displayed` is what is
drawn.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import QLabel, QWidget


class ElidedLabel(QLabel):
    def __init__(self, text: str = "", parent: QWidget | None = None, mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight) -> None:
        super().__init__(text, parent)
        self._mode = mode
        self._detail = ""
        self.setTextFormat(Qt.TextFormat.PlainText)
        self._sync_tip()

    # ------------------------------------------------------------------ text
    def setText(self, text: str) -> None:  # noqa: N802 - Qt API
        super().setText(text)
        self._sync_tip()
        self.update()

    def setToolTip(self, tip: str) -> None:  # noqa: N802 - Qt API
        """The label's own tooltip (details); the whole text is put before it when elided."""
        self._detail = tip
        self._sync_tip()

    def displayed(self) -> str:
        """The text as drawn at the label's present width."""
        width = max(0, self.contentsRect().width())
        return self.fontMetrics().elidedText(self.text(), self._mode, width)

    def elided(self) -> bool:
        return bool(self.text()) and self.displayed() != self.text()

    def _sync_tip(self) -> None:
        parts = [self.text()] if self.elided() else []
        if self._detail:
            parts.append(self._detail)
        super().setToolTip("\n".join(parts))

    # ---------------------------------------------------------------- layout
    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt API
        hint = super().minimumSizeHint()
        m = self.contentsMargins()
        few = self.fontMetrics().horizontalAdvance(self.text()[:4] + "…") if self.text() else 0
        return QSize(min(hint.width(), few + m.left() + m.right()), hint.height())

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._sync_tip()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt API
        painter = QPainter(self)
        self.style().drawItemText(
            painter, self.contentsRect(), int(self.alignment()), self.palette(), self.isEnabled(),
            self.displayed(), self.foregroundRole(),
        )
