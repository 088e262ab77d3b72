"""Plain helpers the tests import (conftest.py holds only fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"
#: The six real NIH films the repository carries, with their labels (labels.csv, bbox.csv).
SAMPLES = REPO / "resources" / "samples"


def synthetic_pixels(h: int = 256, w: int = 200, disc=(0.3, 0.7, 0.12)) -> np.ndarray:
    """A gradient plus a bright disc at (row, col, radius) as fractions of the film."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    px = 0.15 + 0.3 * xx / max(w - 1, 1)
    r0, c0, rad = disc[0] * h, disc[1] * w, disc[2] * min(h, w)
    px[(yy - r0) ** 2 + (xx - c0) ** 2 <= rad**2] = 1.0
    return px.astype(np.float32)


def write_png(path: Path, pixels: np.ndarray, bits: int = 8) -> Path:
    import cv2

    scale = 255 if bits == 8 else 65535
    arr = np.clip(np.rint(pixels * scale), 0, scale).astype(np.uint8 if bits == 8 else np.uint16)
    cv2.imwrite(str(path), arr)
    return path
