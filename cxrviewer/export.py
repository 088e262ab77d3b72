"""Writing results to disk: annotated PNGs (and, in :mod:`cxrviewer.dicom_export`, DICOM SC).

Files are written atomically: to a temporary file in the target folder, then renamed over the
target, so an interrupted export never leaves a half-written picture behind.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import cv2
import numpy as np

from .errors import OutputError
from .render import RenderOptions, annotate
from .types import Film, ModelInfo, Prediction

logger = logging.getLogger(__name__)


def check_writable_dir(folder: Path) -> Path:
    """Create ``folder`` if needed and make sure we can write there, before any work starts."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".cxrviewer-probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"Cannot write to {folder}: {exc.strerror or exc}. Choose another output folder.") from None
    return folder


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    check_writable_dir(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise OutputError(f"Cannot write {path}: {exc.strerror or exc}.") from None
    return path


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 picture (deterministic: same pixels, same bytes)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV only fails on empty pictures
        raise OutputError("Could not encode the picture as PNG.")
    return buf.tobytes()


def write_png(path: Path, rgb: np.ndarray) -> Path:
    return atomic_write_bytes(Path(path), encode_png(rgb))


def export_png(
    path: Path,
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    options: RenderOptions = RenderOptions(),
) -> Path:
    """The annotated picture (:func:`cxrviewer.render.annotate`) written as PNG to ``path``."""
    out = write_png(Path(path), annotate(film, prediction, info, options))
    logger.info("wrote %s", out)
    return out
