"""Fixtures for the film readers: synthetic DICOMs and PNGs (the generated corpus and the real
files of ../shared/data are the session fixtures of tests/conftest.py).

Synthetic DICOMs come from the suite's one DICOM factory (``tests/dicomfactory.py``); they carry
a fake patient name and ID (``PHI_VALUES``) so tests can check that no identifying value ever
reaches a film's metadata, a log line or an error message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from dicomfactory import build_dicom


@pytest.fixture
def make_dicom(tmp_path: Path) -> Callable[..., Path]:
    """``make_dicom(pixels, name="x.dcm", **kwargs)`` → a file in ``tmp_path`` (see :func:`build_dicom`)."""

    def make(pixels: np.ndarray, name: str = "synthetic.dcm", **kwargs: Any) -> Path:
        return build_dicom(tmp_path / name, pixels, **kwargs)

    return make


@pytest.fixture
def write_image(tmp_path: Path) -> Callable[..., Path]:
    """``write_image(array, name)`` → an image written by OpenCV in ``tmp_path`` (B-G-R order)."""
    import cv2

    def write(arr: np.ndarray, name: str, params: list[int] | None = None) -> Path:
        path = tmp_path / name
        ok, buf = cv2.imencode(Path(name).suffix, arr, params or [])
        assert ok
        path.write_bytes(buf.tobytes())
        return path

    return write
