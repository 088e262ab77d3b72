"""The app's state (cxrviewer.ui.state) is plain Python: importing all of it loads no Qt
(issue 27's layout; import-linter's state-without-qt contract checks the imports statically)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
import cxrviewer.ui.state
from cxrviewer.ui.state import export_choice, status_text, studies, viewer_model, worklist_filter
model = viewer_model.ViewerModel()
model.set_paths(["a.png", "b.png"])
assert len(model.entries) == 2
print("qt" if any(name == "PySide6" or name.startswith("PySide6.") for name in sys.modules) else "no qt")
"""


def test_the_state_imports_no_qt():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "no qt"
