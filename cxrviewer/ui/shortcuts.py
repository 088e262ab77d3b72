"""Help ▸ Keyboard shortcuts: the keys of every menu action, made from the one actions table.

The same rows are the table in docs/gui.md ("Keyboard shortcuts"), which a test keeps equal to
:func:`shortcuts_markdown`; ``python -m cxrviewer.ui.shortcuts`` prints it.
"""

from __future__ import annotations

import html

from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from .actions import MENUS, ActionSpec


def _plain(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").rstrip("…").strip()


def shortcut_rows(menus=MENUS) -> list[tuple[str, str, str]]:
    """(menu, action, keys) for every action that has keys, in menu order."""
    rows = []
    for title, items in menus:
        for item in items:
            if isinstance(item, ActionSpec) and item.keys:
                names = [QKeySequence(k).toString(QKeySequence.SequenceFormat.PortableText) for k in item.keys]
                keys = " or ".join(n for n in names if n)
                if keys:
                    rows.append((_plain(title), _plain(item.text), keys))
    return rows


def shortcuts_markdown(menus=MENUS) -> str:
    lines = ["| menu | action | keys |", "|---|---|---|"]
    lines += [f"| {m} | {a} | {' or '.join(f'`{k}`' for k in keys.split(' or '))} |" for m, a, keys in shortcut_rows(menus)]
    return "\n".join(lines) + "\n"


class ShortcutsDialog(QDialog):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("shortcutsDialog")
        self.setWindowTitle("Keyboard shortcuts")
        rows = shortcut_rows()
        self.table = QTableWidget(len(rows), 3, self)
        self.table.setHorizontalHeaderLabels(["Menu", "Action", "Keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip(html.escape("Mouse: wheel zooms, left-drag pans, right-drag (or Ctrl+drag) sets window/level"))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(560, 640)


def show_shortcuts(window: QWidget) -> ShortcutsDialog:
    dialog = ShortcutsDialog(window)
    dialog.show()
    return dialog


if __name__ == "__main__":  # the docs' table: python -m cxrviewer.ui.shortcuts
    import os
    import sys

    from PySide6.QtWidgets import QApplication

    # standard keys (Open, Quit, Zoom in…) are named by the platform theme: it needs an application
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    app = QApplication(sys.argv[:1])
    sys.stdout.write(shortcuts_markdown())
