"""Writing results: annotated PNGs (and, in :mod:`cxrviewer.dicom_export`, DICOM SC).

Files are written atomically: to a temporary file in the target folder, then renamed over the
target, so an interrupted export never leaves a half-written picture behind. They get the
permissions any new file gets (``0666`` less the umask: ``0644`` under the usual ``022``), or
keep those of the file they replace; the temporary file's private ``0600`` never reaches the
result.

A destination may also be a URL (``s3://bucket/prefix/``, ``gs://...``, ``file:///...``, or any
scheme pyarrow or fsspec has a file system for; :func:`cxrviewer.io.is_url`). An object store
gets one ``open_output_stream`` per object: S3 and GCS publish an object whole when its upload
completes (a multipart upload is invisible until it is completed), so a reader never sees half a
picture there either, and no rename (a copy on those stores) is needed. A local file system named
by URL (``file://``) gets a temporary name and a move, as a path does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import posixpath
import stat
import tempfile
import threading
import uuid
from pathlib import Path

import cv2
import numpy as np

from .errors import CxrError, MissingFolderError, OutputError, OutputFormatError
from .io import is_url
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


def check_writable_dir(folder: Path | str, create: bool = True) -> Path | str:
    """Make sure we can write in ``folder`` (creating it when ``create``), before any work starts.
    A URL gets a probe object written and removed (credentials and permissions checked once)."""
    if is_url(folder):
        return _check_url_dir(str(folder), create)
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


def atomic_write_bytes(path: Path | str, data: bytes) -> Path | str:
    """Write ``data`` to ``path`` through a temporary file and a rename, with the permissions
    a plain write would give (:func:`new_file_mode`). The folder must exist.
    A URL is written as one object (:func:`write_url`)."""
    if is_url(path):
        return write_url(str(path), data)
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


# ------------------------------------------------------------- destinations named by URL
def join(folder: Path | str, *names: str) -> Path | str:
    """``folder/name/...`` for a path or a URL (a ``Path`` would fold a URL's ``//``)."""
    if is_url(folder):
        return posixpath.join(str(folder).rstrip("/"), *names) if names else str(folder)
    return Path(folder).joinpath(*names)


def _url_filesystem(url: str):
    """(pyarrow file system, path) of an output URL, or an :class:`OutputError` saying what to
    install when no file system serves its scheme."""
    from .io.files import split_url

    try:
        return split_url(url)
    except CxrError:
        scheme = url.split("://", 1)[0].lower()
        try:
            from fsspec.registry import known_implementations

            known = known_implementations.get(scheme)
        except ImportError:
            known = None
        if known is not None:  # fsspec knows the scheme; the package behind it is missing
            need = known.get("err") or f"install the package for {scheme}:// ({known.get('class', '?')})"
            raise OutputError(f"Cannot write to {url}: no file system for '{scheme}://' is installed ({need}). "
                              "Install it, or write to a local folder.") from None
        raise OutputError(f"Cannot write to {url}: '{scheme}://' is not a file system pyarrow or fsspec knows. "
                          "Check the URL (s3://bucket/prefix/, gs://..., file:///...), or write to a local "
                          "folder.") from None


def _is_local(fs) -> bool:
    return fs.type_name == "local"


def _check_url_dir(url: str, create: bool) -> str:
    fs, path = _url_filesystem(url)
    probe = posixpath.join(path.rstrip("/"), f".cxrviewer-probe-{uuid.uuid4().hex}")
    try:
        if _is_local(fs):
            info = fs.get_file_info(path)
            if info.type.name == "NotFound" and create:
                fs.create_dir(path, recursive=True)
            elif info.type.name != "Directory":
                raise OSError(f"{'not a folder' if info.type.name == 'File' else 'no such folder'}")
        # an object store has no folders to make: a prefix exists once an object is under it
        with fs.open_output_stream(probe) as f:
            f.write(b"")
        fs.delete_file(probe)
    except OSError as exc:
        raise OutputError(f"Cannot write to {url}: {exc}. Check the URL and the credentials, or choose "
                          "another destination.") from None
    return url


def url_exists(url: str) -> bool:
    """Whether an object (a file) is at ``url``."""
    fs, path = _url_filesystem(url)
    try:
        return fs.get_file_info(path).type.name == "File"
    except OSError:
        return False


def write_url(url: str, data: bytes) -> str:
    """Write ``data`` as the object at ``url``: one ``open_output_stream`` on an object store
    (published whole when it closes), a temporary name and a move on a local file system."""
    fs, path = _url_filesystem(url)
    try:
        if _is_local(fs):
            parent, name = posixpath.split(path)
            fs.create_dir(parent, recursive=True)
            tmp = posixpath.join(parent, f".{name}.{uuid.uuid4().hex}.part")
            try:
                with fs.open_output_stream(tmp) as f:
                    f.write(data)
                fs.move(tmp, path)  # rename(2): the file appears whole or not at all
            except BaseException:
                with contextlib.suppress(OSError):
                    fs.delete_file(tmp)
                raise
        else:
            with fs.open_output_stream(path) as f:
                f.write(data)
    except OSError as exc:
        raise OutputError(f"Cannot write {url}: {exc}. Check the destination and its credentials.") from None
    return url


def upload_file(local: Path, url: str) -> str:
    """The local file ``local`` written as the object at ``url`` (:func:`write_url`)."""
    return write_url(url, Path(local).read_bytes())


def url_names(url: str) -> list[str]:
    """The names of the objects directly under the folder or prefix ``url`` (none when it is
    missing)."""
    import pyarrow.fs as pafs

    fs, path = _url_filesystem(url)
    try:
        found = fs.get_file_info(pafs.FileSelector(path.rstrip("/"), allow_not_found=True))
    except OSError as exc:
        raise OutputError(f"Cannot list {url}: {exc}. Check the URL and the credentials.") from None
    return sorted(posixpath.basename(f.path) for f in found if f.type == pafs.FileType.File)


def read_url_bytes(url: str) -> bytes:
    """The whole object at ``url`` (an output read back: a results shard, a manifest)."""
    fs, path = _url_filesystem(url)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except OSError as exc:
        raise OutputError(f"Cannot read {url}: {exc}. Check the URL and the credentials.") from None


def delete_url(url: str) -> None:
    fs, path = _url_filesystem(url)
    try:
        fs.delete_file(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise OutputError(f"Cannot remove {url}: {exc}. Check the credentials.") from None
