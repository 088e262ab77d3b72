"""Storage: atomic writes, fsync, and objects named by URL. The bottom floor of cxrviewer: it
knows nothing of films, pictures or DICOM, and every module that writes files goes through it.

Files are written atomically: to a temporary file in the target folder, then renamed over the
target, so an interrupted write never leaves a half-written file behind. They get the
permissions any new file gets (``0666`` less the umask: ``0644`` under the usual ``022``), or
keep those of the file they replace; the temporary file's private ``0600`` never reaches the
result.

A destination may also be a URL (``s3://bucket/prefix/``, ``gs://...``, ``file:///...``, or any
scheme pyarrow or fsspec has a file system for; :func:`is_url`). An object store
gets one ``open_output_stream`` per object: S3 and GCS publish an object whole when its upload
completes (a multipart upload is invisible until it is completed), so a reader never sees half a
file there either, and no rename (a copy on those stores) is needed. A local file system named
by URL (``file://``) gets a temporary name and a move, as a path does.
"""

from __future__ import annotations

import contextlib
import functools
import os
import posixpath
import re
import stat
import tempfile
import threading
import urllib.parse
import uuid
from pathlib import Path

from .errors import CxrError, OutputError, UnreadableImageError

# ------------------------------------------------------------------ object stores (URLs)
# Inputs and outputs named by URL (``s3://bucket/films/``, ``gs://...``, ``file:///...``, or any scheme
# fsspec knows) are listed and read through pyarrow's file systems, which the ``ray`` extra
# brings; a plain path never touches them.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+://")


def is_url(item: object) -> bool:
    """Whether ``item`` is a URL string (``scheme://...``) rather than a local path."""
    return isinstance(item, str) and _URL.match(item) is not None


@functools.lru_cache(maxsize=32)
def _filesystem(scheme: str, netloc: str):
    try:
        import pyarrow.fs as pafs
    except ImportError:
        raise UnreadableImageError(
            f"Reading {scheme}:// inputs needs pyarrow, which is not installed; install cxrviewer's 'ray' extra."
        ) from None
    root = f"{scheme}://{netloc}/"
    try:
        return pafs.FileSystem.from_uri(root)[0]
    except Exception as native:  # noqa: BLE001 - pyarrow raises ArrowInvalid/ArrowNotImplementedError
        try:
            import fsspec

            return pafs.PyFileSystem(pafs.FSSpecHandler(fsspec.filesystem(scheme)))
        except Exception:  # noqa: BLE001 - fsspec raises ValueError/ImportError for unknown schemes
            raise UnreadableImageError(
                f"{root}: no file system for '{scheme}://' URLs ({native}); install the package that provides it "
                "(e.g. s3fs or gcsfs) or copy the films to a local folder."
            ) from None


def split_url(url: str):
    """(pyarrow file system, path inside it) of ``url``; raises :class:`UnreadableImageError`
    when no file system serves its scheme."""
    parts = urllib.parse.urlsplit(url)
    fs = _filesystem(parts.scheme.lower(), parts.netloc)
    path = urllib.parse.unquote(parts.path)
    if parts.scheme.lower() != "file" and parts.netloc:
        path = parts.netloc + path
    return fs, path


# ------------------------------------------------------------------ local files (or URLs)
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



# ------------------------------------------------------------- destinations named by URL
def join(folder: Path | str, *names: str) -> Path | str:
    """``folder/name/...`` for a path or a URL (a ``Path`` would fold a URL's ``//``)."""
    if is_url(folder):
        return posixpath.join(str(folder).rstrip("/"), *names) if names else str(folder)
    return Path(folder).joinpath(*names)


def _url_filesystem(url: str):
    """(pyarrow file system, path) of an output URL, or an :class:`OutputError` saying what to
    install when no file system serves its scheme."""
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
