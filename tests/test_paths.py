"""cxrviewer.paths finds resources/ from a source checkout, an installed wheel and a frozen bundle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cxrviewer import paths
from helpers import REPO


def test_from_the_source_checkout():
    assert paths.resources_dir() == REPO / "resources"
    assert paths.default_model_path().is_file()
    assert paths.samples_dir().is_dir()


def test_from_the_frozen_bundle(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "_MEIPASS", str(tmp_path), raising=False)
    monkeypatch.delenv(paths.MODEL_ENV, raising=False)
    assert paths.resources_dir() == tmp_path / "resources"
    assert paths.resource_path("icons", "x.png") == tmp_path / "resources" / "icons" / "x.png"
    with pytest.raises(paths.ModelError, match="choose an exported .onnx model file"):
        paths.default_model_path()  # nothing bundled in tmp_path: a clear error, not a crash later
    model = tmp_path / "resources" / "models" / paths.DEMO_MODEL_NAME
    model.parent.mkdir(parents=True)
    model.write_bytes(b"")
    assert paths.default_model_path() == model


def test_from_an_installed_wheel_beside_someone_elses_resources(tmp_path):
    """A wheel puts resources/ at cxrviewer/resources; a stray site-packages/resources is not ours."""
    site = tmp_path / "site-packages"
    shutil.copytree(REPO / "cxrviewer", site / "cxrviewer", ignore=shutil.ignore_patterns("__pycache__", "ui"))
    (site / "cxrviewer" / "resources" / "models").mkdir(parents=True)
    (site / "resources").mkdir()  # another distribution's top-level folder
    code = "import cxrviewer.paths as p; print(p.resources_dir())"
    proc = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()) == site / "cxrviewer" / "resources"


def test_the_model_environment_variable(tmp_path, monkeypatch):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    monkeypatch.setenv(paths.MODEL_ENV, str(model))
    assert paths.default_model_path() == model
    monkeypatch.setenv(paths.MODEL_ENV, str(tmp_path / "gone.onnx"))
    with pytest.raises(paths.ModelError, match=f"{paths.MODEL_ENV} names .*gone.onnx"):
        paths.default_model_path()
