"""PNG, JPEG, TIFF and BMP films, decoded with OpenCV.

Scaling is by the sample type's full range (8-bit / 255, 16-bit / 65535), never by the image's own
minimum and maximum: a 16-bit PNG that only uses 12 bits therefore looks dark, exactly as it would
in any other viewer, and the same file always gives the same film. Colour is reduced to luma
(ITU-R BT.601 weights, as OpenCV's ``cvtColor``); an alpha channel is dropped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from ..errors import UnreadableImageError, UnsupportedImageError
from ..types import Film, Grayscale, Voi
from .limits import check_pixels
from .sniff import RASTER_INFO, jpeg_has_end, png_frames, tiff_pages

logger = logging.getLogger(__name__)

FORMAT_NAMES = {"png": "PNG", "jpeg": "JPEG", "tiff": "TIFF", "bmp": "BMP"}

# ANYDEPTH keeps 16-bit samples; ANYCOLOR keeps gray as gray and drops alpha. Unlike
# IMREAD_UNCHANGED these flags honour the EXIF orientation of JPEG photographs of films.
_IMREAD_FLAGS = cv2.IMREAD_ANYCOLOR | cv2.IMREAD_ANYDEPTH

# BT.601 luma weights in OpenCV's B, G, R channel order.
_LUMA_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)

# 8-bit samples through a table of v / 255: the same float32 values as dividing, in one pass and
# one film-sized array instead of three (this runs once per film in the batch scorer).
_U8_TO_UNIT = np.arange(256, dtype=np.float32) / np.float32(255.0)


def read_raster(path: Path, data: bytes, fmt: str) -> Film:
    """Decode ``data`` (the whole file at ``path``) as ``fmt`` (``"png"``, ``"jpeg"``, ...)."""
    kind = FORMAT_NAMES[fmt]
    info = RASTER_INFO[fmt](data)
    if info is None or info.width <= 0 or info.height <= 0:
        raise UnreadableImageError(
            f"{path.name} is damaged or not really a {kind} image: its header could not be read."
        )
    check_pixels(info.width, info.height, path, f"{kind} image")
    # OpenCV decodes the first page of a multi-page TIFF and the first frame of an animated PNG
    # (APNG) without a word: which page is the film is not ours to guess
    pages = tiff_pages(data) if fmt == "tiff" else png_frames(data) if fmt == "png" else 1
    if pages > 1:
        what = "pages" if fmt == "tiff" else "frames (an animated PNG)"
        raise UnsupportedImageError(
            f"{path.name} has {pages} {what}; cxrviewer reads single-image files. Save the "
            f"{'page' if fmt == 'tiff' else 'frame'} to score as a {kind} of its own."
        )
    if fmt == "jpeg" and info.scan_offset is not None and not jpeg_has_end(data, info.scan_offset):
        raise UnreadableImageError(f"{path.name} is a truncated JPEG: the image data stops before its end marker.")

    try:
        arr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), _IMREAD_FLAGS)
    except cv2.error as exc:
        logger.debug("OpenCV could not decode %s: %s", path.name, exc)
        arr = None
    if arr is None or arr.size == 0:
        raise UnreadableImageError(
            f"{path.name} is damaged or truncated: its {kind} data could not be decoded."
        )

    pixels = to_unit_gray(arr, path)
    bits = info.bits if fmt == "png" and info.bits else arr.dtype.itemsize * 8
    metadata = {
        "format": fmt,
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "bits": int(bits),
        "channels": 1 if arr.ndim == 2 else int(arr.shape[2]),
    }
    return Film(pixels, source=path, pixel_spacing=None, metadata=metadata, gray=_grayscale(arr, pixels))


def _grayscale(arr: np.ndarray, pixels: np.ndarray) -> Grayscale | None:
    """A gray raster's samples are its own modality values, and its default window their full
    type range (what :func:`to_unit_gray` scales by). Colour and float rasters keep only the
    model's view (``None``: the film's own [0, 1] values)."""
    gray = _to_gray(arr)
    if gray.dtype not in (np.uint8, np.uint16) or gray.shape != pixels.shape:
        return None
    top = 255.0 if gray.dtype == np.uint8 else 65535.0
    default = Voi("full type range", top / 2.0, top, "LINEAR_EXACT")
    return Grayscale(gray, default=default, voi_function="LINEAR_EXACT")


def to_unit_gray(arr: np.ndarray, path: Path) -> np.ndarray:
    """An OpenCV image (H×W or H×W×C, B-G-R order) as float32 gray in [0, 1]."""
    gray = _to_gray(arr)
    if gray.dtype == np.uint8:
        return cv2.LUT(np.ascontiguousarray(gray), _U8_TO_UNIT)
    if gray.dtype == np.uint16:
        out = gray.astype(np.float32)
        return np.divide(out, np.float32(65535.0), out=out)  # in place: already within [0, 1]
    if arr.dtype in (np.uint8, np.uint16):  # colour reduced to float luma
        out = np.asarray(gray, dtype=np.float32)
        out /= np.float32(255.0 if arr.dtype == np.uint8 else 65535.0)
    else:
        out = _rescale_other(gray, path)
    return np.clip(out, 0.0, 1.0, out=out)


def _to_gray(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        return arr
    channels = arr.shape[2]
    if channels == 1 or channels == 2:  # gray, or gray + alpha
        return arr[:, :, 0]
    b, g, r = arr[:, :, 0], arr[:, :, 1], arr[:, :, 2]
    if np.array_equal(b, g) and np.array_equal(g, r):  # gray saved as colour: keep it exact
        return b
    return arr[:, :, :3].astype(np.float32) @ _LUMA_BGR


def _rescale_other(gray: np.ndarray, path: Path) -> np.ndarray:
    """Float or signed samples (some TIFFs): keep [0, 1] floats as they are, else min/max."""
    g = np.nan_to_num(gray.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo, hi = float(g.min()), float(g.max())
    if np.issubdtype(gray.dtype, np.floating) and lo >= 0.0 and hi <= 1.0:
        return g
    logger.info("%s has %s samples; scaling its min..max to 0..1", path.name, gray.dtype)
    if hi <= lo:
        return np.zeros_like(g)
    return (g - np.float32(lo)) / np.float32(hi - lo)
