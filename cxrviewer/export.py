"""Writing results: annotated PNGs (and, in :mod:`cxrviewer.dicom.sc`, DICOM SC).

The bytes are written by :mod:`cxrviewer.storage`: atomically (a temporary file in the target
folder, then a rename), with the permissions a new file gets, or as one object when the
destination is a URL (``s3://bucket/prefix/``, ``gs://...``, ``file:///...``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from .errors import MissingFolderError, OutputError, OutputFormatError
from .render import RenderOptions, annotate
from .storage import atomic_write_bytes, check_writable_dir, is_url
from .types import Film, ModelInfo, Prediction

logger = logging.getLogger(__name__)


#: Output formats of ``cxrviewer export`` and the file name extensions each is written with.
FORMAT_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "png": (".png",),
    "dicom-sc": (".dcm", ".dicom"),
    "dicom-sr": (".dcm", ".dicom"),
    "dicom-gsps": (".dcm", ".dicom"),
}


def output_format(path: Path, fmt: str | None = None) -> str:
    """The format to write ``path`` in: ``fmt`` when its extensions include ``path``'s, else the
    one its extension names (``.png`` → png, ``.dcm`` → dicom-sc). A mismatch is an error, so
    that no file carries an extension that lies about its bytes (PNG bytes in ``e.jpg``, DICOM
    in ``x.png``)."""
    suffix = Path(path).suffix.lower()
    if fmt is None:
        fmt = next((f for f, exts in FORMAT_EXTENSIONS.items() if suffix in exts), None)
        if fmt is None:
            raise OutputFormatError(
                f"{Path(path).name}: cannot tell the format from the extension {suffix or '(none)'!r}; "
                "name the output .png for a picture or .dcm for a DICOM object."
            )
        return fmt
    if fmt not in FORMAT_EXTENSIONS:
        raise OutputFormatError(f"Unknown output format {fmt!r}; choose one of {', '.join(FORMAT_EXTENSIONS)}.")
    if suffix not in FORMAT_EXTENSIONS[fmt]:
        raise OutputFormatError(
            f"{Path(path).name}: a {fmt} output is named {' or '.join(FORMAT_EXTENSIONS[fmt])}, not "
            f"{suffix or 'without an extension'}; rename the output or choose the format its name says."
        )
    return fmt


def check_output_folder(path: Path, create: bool = False) -> Path:
    """The folder ``path`` will be written in: it must exist (a missing one is most often a typo)
    unless ``create``, and be writable. Returns the folder."""
    folder = Path(path).parent if str(Path(path).parent) else Path(".")
    if not create and not folder.is_dir():
        raise MissingFolderError(
            f"The folder {folder} does not exist. Check the output's path, create the folder, "
            "or ask for missing folders to be created."
        )
    return check_writable_dir(folder, create=create)


def encode_png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an RGB uint8 picture (deterministic: same pixels, same bytes)."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV only fails on empty pictures
        raise OutputError("Could not encode the picture as PNG.")
    return buf.tobytes()


def write_png(path: Path | str, rgb: np.ndarray) -> Path | str:
    return atomic_write_bytes(path if is_url(path) else Path(path), encode_png(rgb))


def export_png(
    path: Path | str,
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    options: RenderOptions = RenderOptions(),
) -> Path:
    """The annotated picture (:func:`cxrviewer.render.annotate`) written as PNG to ``path``."""
    out = write_png(path, annotate(film, prediction, info, options))
    logger.info("wrote %s", out)
    return out
