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


def _raised_texts(path: Path):
    """The string pieces of every ``raise X(...)`` in a module (f-string parts included)."""
    import ast

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            for sub in ast.walk(node.exc):
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                    yield node.lineno, sub.value


def test_no_core_error_names_a_command_line_flag():
    """The core's errors say what to do in words every front end fits; the CLI adds its flags
    (cli.FLAG_HINTS). An install command (``pip install --...``) is not one of our flags."""
    import re

    flag = re.compile(r"(?<![\w-])--[a-z][\w-]*")
    core = [p for p in (REPO / "cxrviewer").rglob("*.py") if "cli" not in p.parts and "ui" not in p.parts]
    found = [
        f"{p.relative_to(REPO)}:{line}: {text!r}"
        for p in core
        for line, text in _raised_texts(p)
        if flag.search(text) and "pip " not in text
    ]
    assert not found, "\n".join(found)


def test_every_package_ships_in_the_wheel():
    """pyproject lists the packages a plain `pip install .` installs: a new subpackage left out
    installs a cxrviewer that cannot import it (the README's first command)."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("cxrviewer", "training")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert found - listed == set(), f"add to [tool.setuptools] packages: {sorted(found - listed)}"


def _loaded_after(imports: str, modules: tuple[str, ...], env: dict[str, str] | None = None) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after ``import <imports>``."""
    import os

    code = f"import sys, {imports}; print(','.join(m for m in {modules!r} if m in sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [m for m in proc.stdout.strip().split(",") if m]


def test_storage_is_the_bottom_floor():
    """Atomic writes, fsync and URL writes (cxrviewer.storage) know nothing of pictures: the
    results files and the node's spool write through them without loading the renderer, the
    PNG export or OpenCV (docs/architecture.md)."""
    assert _loaded_after("cxrviewer.storage", ("cxrviewer.io", "cxrviewer.render", "cxrviewer.export", "cv2")) == []
    assert _loaded_after("cxrviewer.results, cxrviewer.node.spool", ("cxrviewer.render", "cxrviewer.export")) == []


def test_the_app_sends_to_a_pacs_without_the_node():
    """The app's Send to PACS and its C-ECHO go through cxrviewer.dimse, which the node shares:
    the app never loads the server package (docs/architecture.md)."""
    pytest.importorskip("PySide6")
    loaded = _loaded_after("cxrviewer.ui.pacs, cxrviewer.ui.pacs_dialog, cxrviewer.ui.session",
                           ("cxrviewer.dimse.store", "cxrviewer.node"), env={"QT_QPA_PLATFORM": "offscreen"})
    assert loaded == ["cxrviewer.dimse.store"]
