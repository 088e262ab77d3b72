"""The dependency rules: the core never imports Qt or TensorFlow; only training imports TF."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_linter_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([exe, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_core_imports_load_neither_qt_nor_tensorflow():
    code = (
        "import sys, cxrviewer.cli, cxrviewer.batch, cxrviewer.render, cxrviewer.export, cxrviewer.io, cxrviewer.model;"
        "bad=[m for m in ('PySide6','tensorflow','keras','tf2onnx','training') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
