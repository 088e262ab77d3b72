"""Shared fixtures. Sets the Qt platform to offscreen before anything imports Qt."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(TESTS))

from tinymodel import build_tiny_model, tiny_info  # noqa: E402


@pytest.fixture(scope="session")
def shared_data() -> Path:
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


def synthetic_pixels(h: int = 256, w: int = 200, disc=(0.3, 0.7, 0.12)) -> np.ndarray:
    """A gradient plus a bright disc at (row, col, radius) as fractions of the film."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    px = 0.15 + 0.3 * xx / max(w - 1, 1)
    r0, c0, rad = disc[0] * h, disc[1] * w, disc[2] * min(h, w)
    px[(yy - r0) ** 2 + (xx - c0) ** 2 <= rad**2] = 1.0
    return px.astype(np.float32)


@pytest.fixture
def synthetic_film():
    from cxrviewer.types import Film

    return Film(synthetic_pixels(), source=Path("synthetic.png"), metadata={"format": "synthetic"})


def write_png(path: Path, pixels: np.ndarray, bits: int = 8) -> Path:
    import cv2

    scale = 255 if bits == 8 else 65535
    arr = np.clip(np.rint(pixels * scale), 0, scale).astype(np.uint8 if bits == 8 else np.uint16)
    cv2.imwrite(str(path), arr)
    return path
