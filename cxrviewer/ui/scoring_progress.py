"""The folder run's progress dialog: non-modal, it never takes the keyboard from the window."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QProgressDialog, QWidget


class ScoringProgress(QProgressDialog):
    def __init__(self, total: int, parent: QWidget) -> None:
        super().__init__(f"Scoring {total} films…", "Cancel", 0, total, parent)
        self.setObjectName("scoringProgress")
        self.setWindowTitle("Scoring films")
        self.setWindowModality(Qt.WindowModality.NonModal)  # browse the scored films meanwhile
        self.setAutoClose(False)
        self.setAutoReset(False)
        self.setMinimumDuration(0)
        self.setValue(0)
        # PgDown/PgUp keep browsing the films while it is shown
        self.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)

    def report(self, done: int, total: int, name: str) -> None:
        self.setMaximum(total)
        self.setValue(done)
        self.setLabelText(f"Scored {done} of {total} films · {name}")

    def dismiss(self) -> None:
        """Close, and give the keyboard back to the window if this dialog had it."""
        active = QApplication.activeWindow()
        was_active = active is None or active is self
        window = self.parentWidget()
        self.close()
        self.deleteLater()
        if was_active and window is not None and window.isVisible():
            window.activateWindow()
