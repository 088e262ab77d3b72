"""Reading films: ``read_film(path) -> Film`` for PNG, JPEG, TIFF, BMP and DICOM.

The file's *content* decides how it is decoded (PNG/JPEG/TIFF/BMP signatures, ``DICM`` at byte
128, or a DICOM data set without preamble); the suffix only matters for folder scanning
(:func:`list_films`) and for trying a preamble-less DICOM read on ``.dcm`` / ``.dicom`` /
suffix-less files whose first bytes say nothing.

Contract: :func:`read_film` returns a :class:`~cxrviewer.types.Film` (float32 H×W in [0, 1],
white = dense) or raises a :class:`~cxrviewer.errors.CxrError` subclass whose message names the
file and the problem; whatever bytes the file holds, no other exception escapes. Image size is
checked against :func:`max_pixels` before any decoding. See docs/dicom.md.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path

from ..errors import CxrError, UnreadableImageError
from ..types import Film
from .dicom import read_dicom
from .files import (
    SOURCE_URL,
    SUPPORTED_SUFFIXES,
    check_file,
    is_url,
    list_films,
    read_bytes,
    read_head,
    read_url,
    url_key,
)
from .limits import MAX_PIXELS, max_pixels
from .raster import FORMAT_NAMES, read_raster
from .sniff import HEAD_BYTES, is_dicom, sniff_format

__all__ = [
    "MAX_PIXELS", "SOURCE_URL", "SUPPORTED_SUFFIXES", "is_dicom", "is_url", "list_films", "max_pixels", "read_film", "read_url", "url_key",
]

logger = logging.getLogger(__name__)

# Suffixes on which a file whose first bytes match nothing is still tried as preamble-less DICOM.
_DICOM_TRY_SUFFIXES = frozenset({".dcm", ".dicom", ""})
_SUFFIX_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".tif": "tiff", ".tiff": "tiff", ".bmp": "bmp"}


def read_film(path: str | os.PathLike[str], data: bytes | None = None) -> Film:
    """Read the image file at ``path`` as a :class:`~cxrviewer.types.Film`.

    With ``data`` (the file's bytes, e.g. fetched from an object store by :func:`read_url`),
    those bytes are decoded and ``path`` only names the film (its suffix and messages); nothing
    is read from disk. The same decoders run either way. When ``path`` is a URL, the film's
    metadata keeps it under :data:`SOURCE_URL` (its ``source`` is a ``Path``, which cannot).

    Raises :class:`~cxrviewer.errors.UnreadableImageError` (missing, empty, damaged, not an
    image, too large), :class:`~cxrviewer.errors.UnsupportedDicomError` (DICOM without an image,
    unknown transfer syntax) or :class:`~cxrviewer.errors.MissingCodecError` (a decoder plugin
    is not installed). ``path`` must be a ``str`` or ``os.PathLike``; anything else is a
    ``TypeError``, a programming error.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"read_film() needs a str or os.PathLike path, not {type(path).__name__}")
    if data is not None and not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"read_film() needs bytes as data, not {type(data).__name__}")
    p = Path(path)
    try:
        film = _read(p) if data is None else _read_bytes(p, bytes(data))
    except CxrError:
        raise
    except Exception as exc:  # noqa: BLE001 - the contract: only CxrError leaves read_film
        # Every third-party call is already guarded, so reaching this is a bug in cxrviewer: log
        # it with its traceback and still give the caller an error it can show.
        logger.exception("internal error while reading %s", p.name)
        raise UnreadableImageError(
            f"{p.name} could not be read because of an internal error ({type(exc).__name__}); "
            f"this is a bug in cxrviewer, please report it."
        ) from exc
    if is_url(path):
        film = dataclasses.replace(film, metadata={**film.metadata, SOURCE_URL: path})
    return film


def _read(path: Path) -> Film:
    check_file(path)
    fmt = _format(path, read_head(path, HEAD_BYTES))
    if fmt == "dicom":
        return read_dicom(path)
    return read_raster(path, read_bytes(path), fmt)


def _read_bytes(path: Path, data: bytes) -> Film:
    if not data:
        raise UnreadableImageError(f"{path.name} is empty (0 bytes): the copy or download probably failed.")
    fmt = _format(path, data[:HEAD_BYTES])
    if fmt == "dicom":
        return read_dicom(path, data)
    return read_raster(path, data, fmt)


def _format(path: Path, head: bytes) -> str:
    """The file's format by its first bytes (the suffix only breaks a tie), or why it has none."""
    fmt = sniff_format(head)
    suffix = path.suffix.lower()
    if fmt is None and suffix in _DICOM_TRY_SUFFIXES:
        fmt = "dicom"  # no signature: try a DICOM data set without preamble (pydicom force=True)
    if fmt is None:
        expected = _SUFFIX_FORMATS.get(suffix)
        if expected is not None:
            raise UnreadableImageError(
                f"{path.name} is not a {FORMAT_NAMES[expected]} image: its content is damaged or of another kind."
            )
        raise UnreadableImageError(
            f"{path.name} is not an image cxrviewer can read (PNG, JPEG, TIFF, BMP or DICOM)."
        )
    expected = _SUFFIX_FORMATS.get(suffix, "dicom" if suffix in (".dcm", ".dicom") else None)
    if expected is not None and expected != fmt:
        logger.info("%s holds %s data despite its suffix; reading it as %s", path.name, fmt, fmt)
    return fmt
