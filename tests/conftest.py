"""Shared fixtures. Sets the Qt platform to offscreen before anything imports Qt."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest

# tests/ is on sys.path through `pythonpath` in pyproject.toml's pytest settings.
from helpers import SHARED_DATA, synthetic_pixels  # noqa: E402
from tinymodel import build_tiny_model, tiny_info  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` from the repository root; the tests that need it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not here")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nih_images(shared_data) -> list[Path]:
    return sorted((shared_data / "nih" / "images").glob("*.png"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A 64 px, 14-label contract model made with onnx.helper (demo=true)."""
    return build_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx", tiny_info(64))


@pytest.fixture(scope="session")
def classifier(tiny_model):
    from cxrviewer.model import Classifier

    return Classifier.load(tiny_model, device="cpu")


@pytest.fixture
def synthetic_film():
    from cxrviewer.types import Film

    return Film(synthetic_pixels(), source=Path("synthetic.png"), metadata={"format": "synthetic"})
