"""View ▸ DICOM header: every element of the current film's file, read only, with a filter.

Patient fields are shown (the user opened the file and may read them); they are never logged.
The rows come from :func:`cxrviewer.io.dicom_header.header_rows` (pixel data left out).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QDialog, QLineEdit, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget

from ..io.dicom_header import header_rows


class HeaderDialog(QDialog):
    def __init__(self, path: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("headerDialog")
        self.setWindowTitle(f"DICOM header — {path.name}")
        self.resize(900, 700)
        layout = QVBoxLayout(self)
        self.filter = QLineEdit(self)
        self.filter.setPlaceholderText("Filter by tag, keyword or value")
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["Tag", "Keyword", "VR", "Value"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        for depth, tag, name, vr, value in header_rows(path):
            item = QTreeWidgetItem([tag, "  " * depth + name, vr, value])
            item.setToolTip(3, value)
            self.tree.addTopLevelItem(item)
        for col, width in enumerate((110, 260, 40)):
            self.tree.setColumnWidth(col, width)
        layout.addWidget(self.filter)
        layout.addWidget(self.tree)
        self.filter.textChanged.connect(self.apply_filter)

    def apply_filter(self, text: str) -> None:
        needle = text.strip().lower()
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            shown = not needle or any(needle in item.text(c).lower() for c in range(4))
            item.setHidden(not shown)

    def rows(self, visible_only: bool = True) -> list[tuple[str, str, str, str]]:
        out = []
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if not (visible_only and item.isHidden()):
                out.append(tuple(item.text(c) for c in range(4)))
        return out


def show_header(window) -> HeaderDialog | None:
    """Open the header of the current film when it is a DICOM file (errors in the window's dialog)."""
    film = window.model.film
    if film is None or film.source is None or film.metadata.get("format") != "dicom":
        window.statusBar().showMessage("The DICOM header viewer needs a DICOM film.", 5000)
        return None
    from ..errors import CxrError

    try:
        dialog = HeaderDialog(film.source, window)
    except CxrError as exc:
        window.error_dialog("Cannot read the header", str(exc))
        return None
    window.header_dialog = dialog
    dialog.show()
    return dialog
