"""Help ▸ Keyboard shortcuts and docs/gui.md show the same table, made from the actions table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui

from cxrviewer.ui.actions import MENUS, ActionSpec  # noqa: E402
from cxrviewer.ui.shortcuts import ShortcutsDialog, shortcut_rows, shortcuts_markdown  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "gui.md"


def test_docs_table_is_the_actions_table(qapp):
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- shortcuts:begin -->\n(.*?)<!-- shortcuts:end -->", text, re.S)
    assert found, "docs/gui.md lost its shortcuts table markers"
    assert found.group(1) == shortcuts_markdown(), (
        "docs/gui.md's shortcuts table differs from the app's: paste `python -m cxrviewer.ui.shortcuts` between the markers")


def test_every_keyed_action_is_listed(qapp):
    keyed = [i for _, items in MENUS for i in items if isinstance(i, ActionSpec) and i.keys]
    rows = shortcut_rows()
    assert len(rows) == len(keyed)
    assert ("File", "Quit", "Ctrl+Q") in rows
    assert all(keys for _, _, keys in rows)


def test_help_menu_opens_the_table(window, qtbot):
    window.act_shortcuts.trigger()
    dialog = window.shortcuts_dialog
    qtbot.addWidget(dialog)
    assert isinstance(dialog, ShortcutsDialog) and dialog.isVisible()
    cells = {(dialog.table.item(r, 1).text(), dialog.table.item(r, 2).text()) for r in range(dialog.table.rowCount())}
    assert ("Distance", "D") in cells and ("Keyboard shortcuts", "Ctrl+/") in cells
