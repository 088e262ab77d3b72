"""Finding films on disk and opening them with messages that say what is wrong.

The file system fails in many distinct ways (missing file, broken link, folder, device, empty file,
no permission); each gets its own :class:`~cxrviewer.errors.UnreadableImageError` message, so the
user knows what to fix.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import urllib.parse
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import UnreadableImageError
from ..storage import is_url, split_url
from .sniff import is_dicom

logger = logging.getLogger(__name__)

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom")
SUPPORTED_SUFFIXES: tuple[str, ...] = RASTER_SUFFIXES + DICOM_SUFFIXES
"""File suffixes (lower case) that folder scanning picks up; suffix-less DICOM files are found by
content. The suffix never decides how a file is decoded: its content does."""

# A DICOMDIR (PS3.10 media directory) is DICOM without an image; folder scans skip it.
_SKIPPED_NAMES = frozenset({"dicomdir"})


def check_file(path: Path) -> os.stat_result:
    """Stat ``path`` and refuse anything that is not a non-empty regular file, with a clear reason."""
    name = path.name or str(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            target = _link_target(path)
            raise UnreadableImageError(
                f"{name} is a broken symbolic link (it points to {target}, which does not exist)."
            ) from None
        raise UnreadableImageError(f"{name}: no such file (check the path: {path}).") from None
    except NotADirectoryError:
        raise UnreadableImageError(
            f"{name}: no such file (a part of the path {path} is a file, not a folder)."
        ) from None
    except PermissionError:
        raise UnreadableImageError(
            f"{name}: permission denied while looking for the file; check the permissions of its folder."
        ) from None
    except ValueError:  # e.g. an embedded NUL character
        raise UnreadableImageError(f"{name!r} is not a valid file path.") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnreadableImageError(f"{name} is a symbolic link that loops back on itself.") from None
        raise UnreadableImageError(f"{name}: cannot access the file ({exc.strerror or type(exc).__name__}).") from None
    if stat.S_ISDIR(st.st_mode):
        raise UnreadableImageError(f"{name} is a folder, not an image file (to read the films in it, scan the folder).")
    if not stat.S_ISREG(st.st_mode):
        raise UnreadableImageError(f"{name} is not a regular file (it is a device, pipe or socket).")
    if st.st_size == 0:
        raise UnreadableImageError(f"{name} is empty (0 bytes): the copy or download probably failed.")
    return st


def read_head(path: Path, size: int) -> bytes:
    """The first ``size`` bytes of ``path`` (fewer if the file is shorter)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError as exc:
        raise _open_error(path, exc) from None


def read_bytes(path: Path) -> bytes:
    """The whole content of ``path``."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except MemoryError:
        raise UnreadableImageError(f"{path.name} is too large to load into memory.") from None
    except OSError as exc:
        raise _open_error(path, exc) from None


def _open_error(path: Path, exc: OSError) -> UnreadableImageError:
    if isinstance(exc, PermissionError):
        return UnreadableImageError(
            f"{path.name}: permission denied; the file exists but this user may not read it (check its permissions)."
        )
    if isinstance(exc, IsADirectoryError):
        return UnreadableImageError(f"{path.name} is a folder, not an image file.")
    if isinstance(exc, FileNotFoundError):
        return UnreadableImageError(f"{path.name}: the file disappeared while it was being read.")
    return UnreadableImageError(f"{path.name}: the file could not be read ({exc.strerror or type(exc).__name__}).")


def _link_target(path: Path) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return "a missing file"


# ----------------------------------------------------------------------------- scanning
def list_films(
    inputs: Sequence[str | os.PathLike[str]] | str | os.PathLike[str], recursive: bool = False
) -> list[Path | str]:
    """Expand files and folders into the list of films to read, in a deterministic order.

    - A named file is always kept, whatever its suffix (and even if it does not exist), so that it
      gets an error row rather than silently vanishing.
    - A folder contributes its non-hidden files whose suffix is in :data:`SUPPORTED_SUFFIXES`
      (any case), plus files that are DICOM by content and have no suffix or a numeric one (PACS
      exports name files by UID, e.g. ``1.2.840.113619.2.55.3.1``); with ``recursive`` its
      non-hidden sub-folders too. Symbolic links to folders are not followed (no cycles);
      ``DICOMDIR`` files are skipped.
    - Each folder's films are sorted by path; inputs keep their order; duplicates are dropped.
    - A URL (``s3://bucket/films/``, ``file:///...``: :func:`is_url`) is listed through pyarrow's
      file systems the same way (by suffix only: objects are not opened to sniff them) and its
      films come back as URL strings, everything else as paths.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    out: list[Path] = []
    seen: set[str] = set()
    for item in inputs:
        if is_url(item):
            found: list = _list_url(item, recursive)
        else:
            p = Path(item)
            found = _scan_folder(p, recursive) if _is_dir(p) else [p]
        for f in found:
            key = f if isinstance(f, str) else os.path.normcase(os.path.abspath(f))
            if key not in seen:
                seen.add(key)
                out.append(f)
    return out


def _is_dir(path: Path) -> bool:
    """Like ``Path.is_dir`` but False (not an exception) for a name too long, a loop, ..."""
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _scan_folder(folder: Path, recursive: bool) -> list[Path]:
    """The films under ``folder``, walked with an explicit stack (no recursion: a tree thousands
    of folders deep is fine). Links to folders are not followed, so a link loop cannot loop;
    a folder met twice (bind mounts) is listed once."""
    films: list[Path] = []
    stack = [os.fspath(folder)]
    visited: set[tuple[int, int]] = set()
    while stack:
        root = stack.pop()
        try:
            st = os.stat(root)
            ident = (st.st_dev, st.st_ino)
            if ident in visited:
                continue
            visited.add(ident)
            with os.scandir(root) as it:
                entries = list(it)
        except OSError as exc:
            logger.warning("skipping a folder that cannot be listed: %s (%s)", root, exc.strerror or exc)
            continue
        names = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # a link to a folder is a folder, but is not entered
                is_link = entry.is_symlink()
            except OSError:
                is_dir = is_link = False
            if is_dir:
                if recursive and not is_link and not entry.name.startswith("."):
                    stack.append(entry.path)
            else:
                names.append(entry.name)
        films.extend(_pick_films(Path(root), names))
    return sorted(films, key=lambda f: f.as_posix())


def _pick_films(root: Path, names: Iterable[str]) -> list[Path]:
    picked = []
    for name in names:
        if name.startswith(".") or name.lower() in _SKIPPED_NAMES:
            continue
        path = root / name
        suffix = path.suffix.lower()
        if suffix in SUPPORTED_SUFFIXES:
            picked.append(path)
        elif (suffix == "" or suffix[1:].isdigit()) and path.is_file() and is_dicom(path):
            picked.append(path)
    return picked


# ------------------------------------------------------------------ object stores (URLs)
# Inputs named by URL (``s3://bucket/films/``, ``gs://...``, ``file:///...``, or any scheme
# fsspec knows) are listed and read through pyarrow's file systems
# (:func:`cxrviewer.storage.split_url`), which the ``ray`` extra brings; a plain path never
# touches them.

#: The :attr:`Film.metadata <cxrviewer.types.Film.metadata>` entry holding the URL a film was
#: read from (:func:`cxrviewer.io.read_film` records it): a film's ``source`` is a ``Path``,
#: which folds a URL's ``//`` (``s3://bucket/a.dcm`` becomes ``s3:/bucket/a.dcm``), so the URL
#: travels beside it, and the DICOM results read the source's header again from there.
SOURCE_URL = "source_url"


def url_key(url: str) -> tuple[str, int, int] | None:
    """(URL, size, mtime in ns) of the object at ``url``, or None when it cannot be found."""
    try:
        fs, path = split_url(url)
        info = fs.get_file_info(path)
    except (OSError, UnreadableImageError):
        return None
    if info.type.name != "File":
        return None
    return (url, int(info.size or 0), int(info.mtime_ns or 0))


def read_url(url: str) -> bytes:
    """The whole object at ``url``, with a message that names it when it cannot be read."""
    name = url.rsplit("/", 1)[-1] or url
    try:
        fs, path = split_url(url)
        with fs.open_input_file(path) as fh:
            return fh.read()
    except FileNotFoundError:
        raise UnreadableImageError(f"{name}: no such object ({url}).") from None
    except MemoryError:
        raise UnreadableImageError(f"{name} is too large to load into memory.") from None
    except OSError as exc:
        raise UnreadableImageError(f"{name}: the object could not be read ({exc}).") from None


def _list_url(url: str, recursive: bool) -> list[str]:
    """The films under the URL ``url`` (a folder or prefix), or ``[url]`` for one object."""
    import pyarrow.fs as pafs

    fs, path = split_url(url)
    try:
        info = fs.get_file_info(path)
        if info.type != pafs.FileType.Directory:
            return [url]
        found = fs.get_file_info(pafs.FileSelector(path, recursive=recursive))
    except OSError as exc:
        logger.warning("skipping a location that cannot be listed: %s (%s)", url, exc)
        return []
    base = url.rstrip("/")
    prefix = path.rstrip("/")
    films = []
    for entry in found:
        rel = entry.path[len(prefix):].lstrip("/")
        name = rel.rsplit("/", 1)[-1]
        if entry.type != pafs.FileType.File or name.startswith(".") or name.lower() in _SKIPPED_NAMES:
            continue
        if any(part.startswith(".") for part in rel.split("/")[:-1]):
            continue
        if Path(name).suffix.lower() in SUPPORTED_SUFFIXES:
            films.append(f"{base}/{urllib.parse.quote(rel)}" if url.lower().startswith("file:") else f"{base}/{rel}")
    return sorted(films)
