"""Writing results to disk: annotated PNGs (and, in :mod:`cxrviewer.dicom_export`, DICOM SC).

Files are written atomically: to a temporary file in the target folder, then renamed over the
target, so an interrupted export never leaves a half-written picture behind. They get the
permissions any new file gets (``0666`` less the umask: ``0644`` under the usual ``022``), or
keep those of the file they replace; the temporary file's private ``0600`` never reaches the
result.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np

from .errors import MissingFolderError, OutputError, OutputFormatError
from .render import RenderOptions, annotate
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


def check_writable_dir(folder: Path, create: bool = True) -> Path:
    """Make sure we can write in ``folder`` (creating it when ``create``), before any work starts."""
    folder = Path(folder)
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".cxrviewer-probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"Cannot write to {folder}: {exc.strerror or exc}. Choose another output folder.") from None
    return folder


_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process's umask. Read from /proc where it is shown (Linux ≥ 4.7), so no other thread
    ever sees a changed one; elsewhere set and restored at once, under a lock."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def new_file_mode(path: Path) -> int:
    """The permissions ``path`` gets when written: those of the file it replaces, else what
    ``open()`` would give a new file (``0666`` less the umask)."""
    try:
        st = os.stat(path)
        if stat.S_ISREG(st.st_mode):
            return stat.S_IMODE(st.st_mode)
    except OSError:
        pass
    return 0o666 & ~current_umask()


def fsync_dir(folder: Path) -> None:
    """Make the renames into ``folder`` durable (POSIX: fsync the directory; Windows has no
    such call and commits a rename with the file)."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file and a rename, with the permissions
    a plain write would give (:func:`new_file_mode`). The folder must exist."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    check_writable_dir(folder, create=False)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            # mkstemp makes the file 0600; set the mode before the rename publishes it
            os.fchmod(f.fileno(), new_file_mode(path))
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
