"""The results CSV: its columns and rows, resuming it, and one run at a time per file.

A results file is written by one run at a time (:class:`RunLock`, an OS lock that dies with the
process, so a ``kill -9`` leaves no stale lock). Rows are appended with plain ``os.write`` calls
in groups, each group fsync'ed; a group that cannot be written completely is cut back, so the
file always ends with a whole row and stays resumable. Opening an existing file reads its header
first, without changing anything: a file that is not a results file of ours is refused, never
cut or appended to. Resuming finds the last complete record by parsing (a quoted path may hold a
newline), and treats a film as done only when its last row is ``ok`` for the same path, size and
modification time: failed films are tried again.

The ``path`` cell is the path as UTF-8 text. On POSIX a file name is bytes and need not be UTF-8
(a Latin-1 ``Müller.png`` from an old archive is ``b"M\\xfcller.png"``). Such a path, and any
path holding a backslash, is written escaped: each byte that is not UTF-8 as ``\\xHH`` and each
backslash as ``\\\\`` (see :func:`path_cell` / :func:`path_from_cell`). A cell without a backslash
is the path as it is.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import errno
import io
import json
import logging
import os
import re
import socket
import stat
import sys
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .errors import OutputError, OutputInUseError, SameFileError, UnknownResultsFileError
from .export import fsync_dir
from .io import is_url, url_key
from .types import Film, ModelInfo, Prediction

logger = logging.getLogger(__name__)

FIXED_HEAD = ("path", "status", "error", "model_version")
FIXED_TAIL = ("positives", "regions", "ood_score", "ood", "seconds", "file_size", "file_mtime_ns")
#: What Excel puts before the header when it saves a CSV as "CSV UTF-8".
UTF8_BOM = b"\xef\xbb\xbf"
#: Rows written (and fsync'ed) together: a killed run loses at most this many rows, or a batch
#: if batches are bigger.
CSV_ROWS_PER_WRITE = 8
#: The longest header line looked at when deciding whether a file is one of ours.
_HEADER_LIMIT = 1 << 20
#: A quoted cell (a path with a newline) spans at most this many lines when a damaged file is read.
_MAX_RECORD_LINES = 64

FileKey = tuple[str, int, int]


def csv_columns(labels: Sequence[str]) -> list[str]:
    return [*FIXED_HEAD, *labels, *FIXED_TAIL]


def file_key(path: Path | str) -> FileKey | None:
    """(absolute path, size, mtime in ns), or None when the file cannot be stat'ed; for a URL
    (an object store: :func:`cxrviewer.io.is_url`) the URL as it is, its size and mtime."""
    if is_url(path):
        return url_key(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns))


# ------------------------------------------------------------------------------ cells
_UNESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def path_cell(path: Path | str) -> str:
    """The ``path`` cell of a file: its path, escaped when it is not plain UTF-8 text.

    On POSIX, when the path's bytes are not UTF-8 or hold a backslash: bytes that are not UTF-8
    become ``\\xHH`` and ``\\`` becomes ``\\\\`` (a cell that holds a backslash is escaped). On
    Windows paths are text already; a lone UTF-16 surrogate (rare) is written as ``\\uXXXX``.
    """
    text = os.fspath(path)
    if os.name == "nt":
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    raw = os.fsencode(text)
    try:
        plain = raw.decode("utf-8")
    except UnicodeDecodeError:
        plain = None
    if plain is not None and "\\" not in plain:
        return plain
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def path_from_cell(cell: str) -> str:
    """The path (as Python gives it: ``str`` with surrogateescape) that :func:`path_cell` wrote."""
    if os.name == "nt" or "\\" not in cell:
        return cell

    def unescape(m: re.Match) -> str:
        if m.group(1) == "\\":
            return "\\"
        byte = int(m.group(1)[1:], 16)
        return chr(0xDC00 + byte) if byte >= 0x80 else chr(byte)  # the surrogate standing for the byte

    raw = _UNESCAPE.sub(unescape, cell)
    return os.fsdecode(raw.encode("utf-8", "surrogateescape"))


def text_cell(text: str) -> str:
    """Any text (an error message naming a file) as one line of valid UTF-8."""
    text = text.replace("\r", " ").replace("\n", " ")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape") if os.name != "nt" else text.encode("utf-8", "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")


def safe_file_stem(stem: str, limit: int = 200) -> str:
    """A file name stem that any file system takes: undecodable bytes as ``%HH``, control
    characters dropped, at most ``limit`` bytes of UTF-8 (names are limited to 255 bytes)."""
    raw = os.fsencode(stem) if os.name != "nt" else stem.encode("utf-8", "surrogatepass")
    text = raw.decode("utf-8", "backslashreplace")
    text = re.sub(r"\\x([0-9a-f]{2})", lambda m: "%" + m.group(1).upper(), text)
    text = "".join(c if c.isprintable() and c not in '<>:"/\\|?*' else "_" for c in text) or "film"
    while len(text.encode("utf-8")) > limit:
        text = text[:-1]
    return text


def region_dicts(
    prediction: Prediction,
    classes: Iterable[str],
    shape: tuple[int, int],
    level: float | None = None,
    min_area: float | None = None,
    outlines: bool = True,
) -> list[dict]:
    """The regions of ``classes`` as plain dicts; the one format of the CSV cell and the JSON file.

    Each is :meth:`cxrviewer.heatmap.Region.as_dict`: ``label``, ``probability``, ``box``
    (``x, y, width, height`` in film pixels), ``area``, ``peak`` and, with ``outlines``, the
    ``contour`` points (left out of the CSV, where an outline of hundreds of points would swamp
    the row).
    """
    from . import heatmap

    level = heatmap.REGION_LEVEL if level is None else level
    min_area = heatmap.REGION_MIN_AREA if min_area is None else min_area
    out = []
    for label in classes:
        for r in heatmap.regions(prediction, label, shape, level, min_area):
            d = r.as_dict()
            if not outlines:
                d.pop("contour")
            out.append(d)
    return out


def regions_cell(pred: Prediction, shape: tuple[int, int] | None) -> str:
    """Compact JSON of the positive findings' regions (:func:`region_dicts` without outlines)."""
    if shape is None or not pred.positives:
        return ""
    return json.dumps(region_dicts(pred, pred.positives, shape, outlines=False), separators=(",", ":"))


def write_regions_json(
    path: Path, film: Film, pred: Prediction, info: ModelInfo, classes: Iterable[str],
    level: float | None = None, min_area: float | None = None,
) -> Path:
    """Regions of ``classes`` (boxes and outlines in film pixels, :func:`region_dicts`) as JSON."""
    from . import heatmap
    from .export import atomic_write_bytes

    level = heatmap.REGION_LEVEL if level is None else level
    min_area = heatmap.REGION_MIN_AREA if min_area is None else min_area
    doc = {
        "film": film.name,
        "width": film.width,
        "height": film.height,
        "model_version": info.model_version,
        "demo": info.demo,
        "level": level,
        "min_area": min_area,
    }
    found = region_dicts(pred, classes, (film.height, film.width), level, min_area)
    # One region a line (an outline has hundreds of points: one number a line would bury it).
    regions = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in found)
    head = json.dumps(doc, indent=1, ensure_ascii=True)[:-2]  # without the closing "\n}"
    text = f'{head},\n "regions": [\n  {regions}\n ]\n}}\n' if regions else f'{head},\n "regions": []\n}}\n'
    return atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


class ScoredFile(Protocol):
    """What a row is made of (:class:`cxrviewer.batch.ScoreResult`)."""

    @property
    def path(self) -> Path: ...
    @property
    def prediction(self) -> Prediction | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def seconds(self) -> float: ...
    @property
    def film_shape(self) -> tuple[int, int] | None: ...
    @property
    def key(self) -> FileKey | None: ...


def result_row(result: ScoredFile, labels: Sequence[str], model_version: str) -> dict[str, str]:
    """One CSV row. The file's size and mtime are those taken when the film was read
    (``result.key``), so a film replaced after it was read is scored again on resume."""
    key = result.key
    row = {c: "" for c in csv_columns(labels)}
    ok = result.prediction is not None
    row.update(
        path=path_cell(result.path),
        status="ok" if ok else "error",
        error=text_cell(result.error or ""),
        model_version=model_version,
        seconds=f"{result.seconds:.4f}",
        file_size=str(key[1]) if key else "",
        file_mtime_ns=str(key[2]) if key else "",
    )
    pred = result.prediction
    if pred is not None:
        for label in labels:
            row[label] = f"{pred.probability(label):.6f}"
        row["positives"] = "|".join(pred.positives)
        row["regions"] = regions_cell(pred, result.film_shape)
        if pred.ood_score is not None:
            row["ood_score"] = f"{pred.ood_score:.4f}"
            row["ood"] = "1" if pred.ood_flag else "0"
    return row


# ------------------------------------------------------------------------- the lock
def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class RunLock:
    """One run per results file: an OS lock on ``<file>.lock`` that names its holder.

    ``fcntl.flock`` on POSIX, ``msvcrt.locking`` on Windows: the kernel drops the lock when the
    process ends, however it ends. The lock file holds the holder's PID, host and start time for
    the message another run shows; it is removed on release.
    """

    def __init__(self, target: Path) -> None:
        self.target = Path(target)
        self.path = lock_path(self.target)
        self._fd: int | None = None
        for _ in range(20):
            fd = _open_output(self.path, os.O_RDWR | os.O_CREAT)
            try:
                _lock(fd)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK, errno.EDEADLK):
                    os.close(fd)
                    raise _output_error(self.path, exc) from None
                holder = _read_holder(fd)
                os.close(fd)
                raise OutputInUseError(
                    f"{self.target} is being written by another run ({holder or 'holder unknown'}); "
                    "wait for it to finish or stop it, or choose another results file."
                ) from None
            # the file we locked may have been removed by a holder releasing it just before
            if os.name == "nt" or _same_inode(fd, self.path):
                break
            os.close(fd)
        else:  # pragma: no cover - only under a storm of runs starting and stopping
            raise OutputInUseError(f"{self.target}: could not take its lock; try again.")
        self._fd = fd
        started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        note = f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode("utf-8", "replace")
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, note)
        except OSError:
            logger.debug("could not write the lock note %s", self.path)  # the lock itself holds

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if os.name != "nt":
            try:
                os.unlink(self.path)  # while still locked: a run waiting on it checks the inode
            except OSError:
                pass
        try:
            os.close(fd)  # drops the lock
        except OSError:
            pass


def _lock(fd: int) -> None:
    if os.name == "nt":
        import msvcrt

        # a byte far past the note, so that another run can still read the note
        os.lseek(fd, 1 << 20, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 512).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _same_inode(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


# --------------------------------------------------------------------- output paths
def _output_error(path: Path, exc: OSError) -> OutputError:
    name = str(path)
    if exc.errno == errno.ENAMETOOLONG:
        return OutputError(f"{name}: the file name is too long for the file system (at most 255 bytes a name); choose a shorter one.")
    if exc.errno == errno.ELOOP:
        return OutputError(f"{name} is a symbolic link that loops back on itself; choose another results file.")
    if exc.errno == errno.ENOSPC:
        return OutputError(f"Cannot write {name}: the disk is full. Free some space, then run again to resume.")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(f"Cannot write {name}: {exc.strerror}. Choose a folder you may write to.")
    return OutputError(f"Cannot write {name}: {exc.strerror or exc}.")


def check_output_file(path: Path) -> None:
    """Refuse, before anything is opened, an output that is not a regular file or a new name."""
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise _output_error(path, exc) from None
    if stat.S_ISLNK(lst.st_mode):
        try:
            os.stat(path)
        except FileNotFoundError:
            raise OutputError(f"{path} is a broken symbolic link (it points to {os.readlink(path)}); choose another results file.") from None
        except OSError as exc:
            raise _output_error(path, exc) from None
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{path} is a folder; give a file name such as results.csv.")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{path} is not a regular file (a pipe, device or socket); choose a results file on disk.")


def _open_output(path: Path, flags: int) -> int:
    """Open without blocking on a pipe; refuse anything but a regular file."""
    flags |= getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a pipe nobody reads
            raise OutputError(f"{path} is not a regular file (a pipe, device or socket); choose a results file on disk.") from None
        if exc.errno == errno.EISDIR:
            raise OutputError(f"{path} is a folder; give a file name such as results.csv.") from None
        raise _output_error(path, exc) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OutputError(f"{path} is not a regular file (a pipe, device or socket); choose a results file on disk.")
    if getattr(os, "O_NONBLOCK", 0):
        os.set_blocking(fd, True)  # only a pipe could have blocked; writes to a file wait as usual
    return fd


def refuse_inputs_as_output(out: Path, inputs: Iterable[Path]) -> None:
    """An output file must not be one of the inputs (same file, also through links)."""
    try:
        o = os.stat(out)
    except OSError:
        return
    for p in inputs:
        try:
            s = os.stat(p)
        except (OSError, ValueError):
            continue
        if (s.st_dev, s.st_ino) == (o.st_dev, o.st_ino):
            raise SameFileError(f"{out} is one of the films being read; writing there would destroy it. Choose another output file.")


# ------------------------------------------------------------------ reading records
def _set_field_limit() -> None:
    # a cell may be large (a long error, a hand-edited cell): never refuse to read our own file
    limit = min(sys.maxsize, 2**31 - 1)
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def _parse(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline=""), strict=False))


def _ends_outside_quotes(text: str) -> bool:
    """Whether a record's text ends outside a quoted cell (the rules of Python's csv reader:
    a quote opens a cell only at its start; ``""`` inside it is a quote)."""
    inq = False
    start = True
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if inq:
            if c == '"':
                if i + 1 < n and text[i + 1] == '"':
                    i += 1
                else:
                    inq = False
        elif c == '"' and start:
            inq = True
        start = c in ",\n" if not inq else False
        i += 1
    return not inq


@dataclass
class _Scan:
    records: list[list[str]]
    keep: int  # bytes of sound data: everything after it is a partial record to cut
    bad: int  # lines skipped as damaged


def scan_records(data: bytes, start: int, ncols: int) -> _Scan:
    """The records of ``data[start:]`` with ``ncols`` cells each, and where the sound part ends.

    Records are parsed in one pass while they are whole; from the first damaged one on (a record
    cut by a kill, possibly inside a quoted path with a newline, or a hand-edited stray quote),
    line by line: a record that never closes before the end of the file is the cut one, unless
    whole records follow it (then it was a stray quote and only its line is skipped).
    """
    _set_field_limit()
    offsets = [start]  # where each line starts, and the end
    pos = start
    while True:
        nl = data.find(b"\n", pos)
        if nl < 0:
            break
        pos = nl + 1
        offsets.append(pos)
    if offsets[-1] != len(data):
        offsets.append(len(data))  # a last line without a newline
    nlines = len(offsets) - 1
    lines = (data[offsets[k] : offsets[k + 1]].decode("utf-8", "replace") for k in range(nlines))
    reader = csv.reader(lines, strict=False)
    records: list[list[str]] = []
    i = 0  # the first line not yet taken as whole records
    for row in reader:
        end = reader.line_num
        if not row or (len(row) == ncols and data[offsets[end] - 1 : offsets[end]] == b"\n"):
            if row:
                records.append(row)
            i = end
            continue
        break
    else:
        return _Scan(records, len(data), 0)
    bad = 0
    pending_cut: int | None = None
    while i < nlines:
        j = i
        while True:
            chunk = data[offsets[i] : offsets[j + 1]]
            closed = _ends_outside_quotes(chunk.decode("utf-8", "replace"))
            if closed or j + 1 >= nlines or j - i + 1 >= _MAX_RECORD_LINES:
                break
            j += 1
        if closed and chunk.endswith(b"\n"):
            rows = _parse(chunk.decode("utf-8", "replace"))
            if len(rows) == 1 and len(rows[0]) == ncols:
                records.append(rows[0])
                if pending_cut is not None:
                    bad += 1
                    pending_cut = None
                i = j + 1
                continue
            if chunk.strip():
                bad += 1
            i += 1
            continue
        if j + 1 >= nlines:  # ran to the end of the file without closing: cut here, unless
            if pending_cut is None:  # whole records follow (then it was a stray quote)
                pending_cut = offsets[i]
            i += 1
            continue
        bad += 1  # a stray quote that swallows too many lines
        i += 1
    keep = pending_cut if pending_cut is not None else len(data)
    return _Scan(records, keep, bad)


# ------------------------------------------------------------- the finished-film index
_MASK64 = (1 << 64) - 1


def key_path(cell: str) -> str:
    """The path of a ``path`` cell as resume compares it: absolute, or the URL as it is."""
    p = path_from_cell(cell)
    if is_url(p):
        return p
    if os.name != "nt" and p.startswith("/") and "/." not in p and "//" not in p and not p.endswith("/"):
        return p  # already what abspath gives (the common case, a million times over)
    return os.path.abspath(p)


def key_hash(key: FileKey) -> int:
    """A 64-bit hash of (path, size, mtime), for this process only (Python's ``hash`` of
    strings is salted per process; the index is never stored): two different files collide
    with a chance of about n²/2⁶⁵ (3·10⁻⁸ for a million films)."""
    return hash(key) & _MASK64


class KeyIndex:
    """The films a results set already holds, 17 bytes a row while it is read and 8 bytes a
    finished film after :meth:`freeze` (a sorted array of :func:`key_hash`; a Python set of
    the keys took ~4 kB a row, so a million rows needed several GB).

    Rows are added in the order they were written; the last row of a path wins, so a film whose
    last row is an error is scored again.
    """

    def __init__(self) -> None:
        self._paths = array("Q")
        self._keys = array("Q")
        self._ok = array("b")

    def add(self, cell: str, status: str, size: str, mtime: str) -> None:
        """One row's ``path``, ``status``, ``file_size`` and ``file_mtime_ns`` cells."""
        self.add_rows([cell], [status], [size], [mtime])

    def add_rows(self, cells: Iterable[str], statuses: Iterable[str], sizes: Iterable[str], mtimes: Iterable[str]) -> None:
        """Many rows' cells, column by column (as a Parquet shard or an Arrow batch gives them)."""
        paths, keys, oks = self._paths.append, self._keys.append, self._ok.append
        for cell, status, size, mtime in zip(cells, statuses, sizes, mtimes):
            try:
                key = (key_path(cell), int(size), int(mtime))
            except (TypeError, ValueError):
                continue  # no size or time (a file that could not be stat'ed): nothing to skip next time
            paths(hash(key[0]) & _MASK64)
            keys(hash(key) & _MASK64)
            oks(status == "ok")

    def extend(self, other: "KeyIndex") -> None:
        self._paths.extend(other._paths)
        self._keys.extend(other._keys)
        self._ok.extend(other._ok)

    def freeze(self) -> "DoneKeys":
        paths = np.frombuffer(self._paths, dtype=np.uint64) if self._paths else np.zeros(0, np.uint64)
        keys = np.frombuffer(self._keys, dtype=np.uint64) if self._keys else np.zeros(0, np.uint64)
        ok = np.frombuffer(self._ok, dtype=np.int8).astype(bool) if self._ok else np.zeros(0, bool)
        order = np.argsort(paths, kind="stable")
        sp = paths[order]
        last = np.ones(len(sp), dtype=bool)  # the last row of each path (rows keep their order)
        last[:-1] = sp[1:] != sp[:-1]
        pick = order[last]
        done = np.sort(keys[pick][ok[pick]])
        self._paths, self._keys, self._ok = array("Q"), array("Q"), array("b")
        return DoneKeys(done)


class DoneKeys:
    """The finished films of a results set: ``key in done`` by binary search."""

    def __init__(self, hashes: np.ndarray) -> None:
        self._hashes = hashes

    def __len__(self) -> int:
        return int(self._hashes.size)

    def __contains__(self, key: FileKey) -> bool:
        h = np.uint64(key_hash(key))
        i = int(np.searchsorted(self._hashes, h))
        return i < self._hashes.size and self._hashes[i] == h


def _index_csv(fd: int, start: int, columns: Sequence[str], index: KeyIndex) -> tuple[int, int]:
    """Stream the records of a results CSV from ``start`` into ``index``; returns (bytes of
    sound data, damaged lines skipped). Whole records are parsed as they come; from the first
    damaged one on, the rest is read whole and scanned by :func:`scan_records`."""
    _set_field_limit()
    ncols = len(columns)
    fast = _index_csv_arrow(fd, start, columns, index)
    if fast is not None:
        return fast, 0
    ip, ist, isz, imt = (columns.index(c) for c in ("path", "status", "file_size", "file_mtime_ns"))
    pos = start
    ended = True
    good = start
    with os.fdopen(os.dup(fd), "rb", buffering=1 << 20) as fh:
        fh.seek(start)

        def lines() -> Iterator[str]:
            nonlocal pos, ended
            for raw in fh:
                pos += len(raw)
                ended = raw.endswith(b"\n")
                yield raw.decode("utf-8", "replace")

        reader = csv.reader(lines(), strict=False)
        try:
            for row in reader:
                if row and not (len(row) == ncols and ended):
                    break
                if row:
                    index.add(row[ip], row[ist], row[isz], row[imt])
                good = pos
            else:
                return good, 0
        except csv.Error:
            pass  # a quote left open at the end of the file: a record cut by a kill
        fh.seek(good)
        rest = fh.read()
    scan = scan_records(rest, 0, ncols)
    for rec in scan.records:
        index.add(rec[ip], rec[ist], rec[isz], rec[imt])
    return good + scan.keep, scan.bad


#: Bytes of a results CSV parsed at once by pyarrow when resuming.
_ARROW_PIECE = 4 << 20


def _index_csv_arrow(fd: int, start: int, columns: Sequence[str], index: KeyIndex) -> int | None:
    """The key columns of a sound CSV read by pyarrow's parser (C++, ~5× Python's csv module
    here), when pyarrow is installed; None (nothing added) when it is not, or when the file has
    anything a killed run or a hand edit leaves (no final newline, a record with other cells):
    then the careful parser reads it."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    size = os.fstat(fd).st_size
    if size <= start or os.pread(fd, 1, size - 1) != b"\n":
        return None
    wanted = ["path", "status", "file_size", "file_mtime_ns"]
    read = pacsv.ReadOptions(column_names=list(columns), use_threads=False)
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(include_columns=wanted, column_types={c: pa.string() for c in columns},
                                   strings_can_be_null=False, quoted_strings_can_be_null=False)
    staged = KeyIndex()
    # Pieces of whole lines parsed one at a time: pyarrow's streaming reader reads ahead and held
    # most of a 1.4 GB file in memory. A piece cut inside a quoted newline (a path holding one)
    # fails to parse, and the careful reader takes over.
    pos = start
    try:
        while pos < size:
            piece = os.pread(fd, _ARROW_PIECE, pos)
            cut = piece.rfind(b"\n") + 1 if pos + len(piece) < size else len(piece)
            if cut <= 0:
                return None  # one record longer than a piece: leave it to the careful reader
            table = pacsv.read_csv(pa.py_buffer(memoryview(piece)[:cut]), read_options=read, parse_options=parse,
                                   convert_options=convert)
            staged.add_rows(*(table.column(c).to_pylist() for c in wanted))
            pos += cut
    except (pa.ArrowInvalid, OSError, ValueError) as exc:
        logger.debug("the fast CSV read stopped (%s); reading record by record", exc)
        return None
    index.extend(staged)
    return size


# --------------------------------------------------------------------- the CSV file
class ResultsCsv:
    """An append-only results CSV that survives being killed and can be resumed.

    Opening takes the file's :class:`RunLock`, checks the header of an existing file on its
    bytes (an Excel BOM is fine), and only then, for a file of ours, cuts a partial last record
    left by a killed run and remembers which films it already holds (:meth:`already_done`).
    """

    def __init__(self, path: Path, labels: Sequence[str], model_version: str, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.labels = tuple(labels)
        self.model_version = model_version
        self.columns = csv_columns(self.labels)
        self._done = KeyIndex().freeze()
        self._fd: int | None = None
        folder = self.path.parent if str(self.path.parent) else Path(".")
        check_output_file(self.path)
        from .export import check_writable_dir

        check_writable_dir(folder)
        self._lock = RunLock(self.path)
        try:
            self._fd = _open_output(self.path, os.O_RDWR | os.O_CREAT)
            header = self._header_bytes()
            size = os.fstat(self._fd).st_size
            if size and not overwrite:
                self._resume(size)
            else:
                self._truncate(0)
                self._write_bytes(header)
            os.lseek(self._fd, 0, os.SEEK_END)
        except BaseException:
            self.close()
            raise

    def _header_bytes(self) -> bytes:
        return self._format([dict(zip(self.columns, self.columns))])

    def _refuse(self, why: str) -> UnknownResultsFileError:
        return UnknownResultsFileError(
            f"{self.path} {why}; it is left as it is. Choose another results file, or start this one afresh."
        )

    def _resume(self, size: int) -> None:
        fd = self._fd
        os.lseek(fd, 0, os.SEEK_SET)
        head = os.read(fd, min(size, _HEADER_LIMIT))
        start = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
        nl = head.find(b"\n", start)
        ours = self._header_bytes()
        if nl < 0:
            if size < _HEADER_LIMIT and ours.startswith(head[start:]) and head[start:]:
                # only part of our own header was written: start over
                logger.warning("%s holds only part of a header (an interrupted run): starting it afresh", self.path)
                self._truncate(0)
                self._write_bytes(ours)
                return
            raise self._refuse("is not a results file of cxrviewer (no header line)")
        try:
            header = _parse(head[start : nl + 1].decode("utf-8"))
        except (UnicodeDecodeError, csv.Error):
            raise self._refuse("is not a results file of cxrviewer (its first line is not a CSV header)") from None
        if not header or header[0] != self.columns:
            if header and header[0][: len(FIXED_HEAD)] == list(FIXED_HEAD):
                raise self._refuse("holds results with other columns (another model)")
            raise self._refuse("is not a results file of cxrviewer (its header has other columns)")
        # a results file of ours: now it may be read, cut and appended to. Whole records are
        # streamed into a compact index (16 bytes a row, never the rows themselves); only from a
        # damaged record on is the rest read whole and scanned with care.
        index = KeyIndex()
        keep, bad = _index_csv(fd, nl + 1, self.columns, index)
        if bad:
            logger.warning("%s: skipped %d damaged line(s) while resuming", self.path, bad)
        if keep < size:
            logger.warning("cutting a partial last record from %s (an interrupted run)", self.path)
            self._truncate(keep)
        self._done = index.freeze()
        logger.info("resuming %s: %d files already scored", self.path, len(self._done))

    def already_done(self, path: Path) -> bool:
        """Whether the file's last row in the CSV, when it was opened, was ``ok`` for the same
        path, size and modification time (failed films are tried again)."""
        key = file_key(path)
        return key is not None and key in self._done

    def _format(self, rows: list[dict[str, str]]) -> bytes:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        w.writerows(rows)
        return buf.getvalue().encode("utf-8")

    def _truncate(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
            os.fsync(self._fd)
        except OSError as exc:
            raise _output_error(self.path, exc) from None

    def _write_bytes(self, data: bytes) -> None:
        """Append ``data`` whole, or not at all: a failed write is cut back, so the file still
        ends with a whole record."""
        if self._fd is None:
            raise OutputError(f"{self.path} is closed.")
        end = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            view = memoryview(data)
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
            os.fsync(self._fd)
        except OSError as exc:
            try:
                os.ftruncate(self._fd, end)
            except OSError:
                logger.warning("could not cut back a partial write to %s; the next run will", self.path)
            raise _output_error(self.path, exc) from None

    def write(self, results: Sequence[ScoredFile]) -> None:
        """Append the rows of ``results`` in one write, flushed to disk."""
        if not results:
            return
        self._write_bytes(self._format([result_row(r, self.labels, self.model_version) for r in results]))
        # Rows written now are not added to the set of files already done: that set is only
        # asked before a run starts, and it would grow by a few hundred bytes a film.

    def write_rows(self, rows: Sequence[dict[str, str]]) -> None:
        """Append rows already made by :func:`result_row` (on a cluster's workers), flushed."""
        if rows:
            self._write_bytes(self._format(list(rows)))

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                os.close(fd)
            except OSError as exc:  # every write was fsync'ed already; nothing is lost
                logger.warning("closing %s: %s", self.path, exc.strerror or exc)
        lock = getattr(self, "_lock", None)
        if lock is not None:
            lock.release()

    def __enter__(self) -> "ResultsCsv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------- the Parquet folder
#: Rows a Parquet shard holds: a killed run loses at most the shard being filled (or the rows of
#: :data:`SHARD_SECONDS`, whichever comes first).
SHARD_ROWS = 1000
#: A shard is also written when its first row is this old, so a slow run loses little on a kill.
SHARD_SECONDS = 60.0
MANIFEST = "manifest.json"
_MANIFEST_FORMAT = "cxrviewer-results"
_SHARD = re.compile(r"^part-(\d{6})\.parquet$")
_KEY_COLUMNS = ["path", "status", "file_size", "file_mtime_ns"]


def is_results_dir(out: str | os.PathLike[str]) -> bool:
    """Whether ``out`` names a results folder (sharded Parquet): an existing folder, or a name
    ending in a path separator. Anything else is a results CSV."""
    text = os.fspath(out)
    return text.endswith(("/", os.sep)) or os.path.isdir(text)


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise OutputError(
            "A results folder is written as Parquet shards, which needs pyarrow; install cxrviewer's "
            "'ray' extra, or give a results file name ending in .csv."
        ) from None
    return pa, pq


class ResultsDir:
    """A results folder: Parquet shards ``part-NNNNNN.parquet`` plus ``manifest.json``.

    Each shard holds the CSV's columns with the CSV's values (:func:`result_row`, all text, so a
    shard and a CSV of the same films are equal cell for cell). A shard is written to a temporary
    name, fsync'ed and renamed, so a shard on disk is always whole; the manifest (columns, model,
    shards and their rows) is rewritten the same way after each shard, for readers. Resuming reads
    only the key columns of each shard into a :class:`KeyIndex`; the shards on disk, not the
    manifest, are the truth (a run killed between a shard and its manifest loses nothing).

    ``path`` may be a URL (``s3://bucket/results/``: :mod:`cxrviewer.export`): each shard and the
    manifest are then one object each, put whole (an object store publishes an object when its
    upload completes, so no temporary name is needed). An object store has no lock: one run at a
    time per results there is up to whoever starts them.
    """

    def __init__(self, path: str | os.PathLike[str], labels: Sequence[str], model_version: str,
                 overwrite: bool = False, rows_per_shard: int = SHARD_ROWS) -> None:
        self.url = str(path).rstrip("/") if is_url(path) else None
        self.path: Path | str = self.url or Path(path)
        self.labels = tuple(labels)
        self.model_version = model_version
        self.columns = csv_columns(self.labels)
        self.rows_per_shard = max(1, int(rows_per_shard))
        self._rows: list[dict[str, str]] = []
        self._first_row_at = 0.0
        self._shards: list[dict] = []
        self._lock: RunLock | None = None
        self._done = KeyIndex().freeze()
        self._pa, self._pq = _pyarrow()
        from .export import check_writable_dir

        if self.url is None:
            if os.path.exists(self.path) and not os.path.isdir(self.path):
                raise OutputError(f"{self.path} is a file, not a folder; give a folder for sharded results, or a .csv name.")
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise _output_error(self.path, exc) from None
        check_writable_dir(self.path)
        if self.url is None:
            self._lock = RunLock(self.path / MANIFEST)
        try:
            self._open(overwrite)
        except BaseException:
            self.close(flush=False)
            raise

    def _refuse(self, why: str) -> UnknownResultsFileError:
        return UnknownResultsFileError(
            f"{self.path} {why}; it is left as it is. Choose another results folder, or start this one afresh."
        )

    def _at(self, name: str) -> Path | str:
        return f"{self.url}/{name}" if self.url is not None else self.path / name

    def _names(self) -> list[str]:
        from .export import url_names

        return url_names(self.url) if self.url is not None else sorted(os.listdir(self.path))

    def _read(self, name: str) -> bytes:
        from .export import read_url_bytes

        return read_url_bytes(self._at(name)) if self.url is not None else (self.path / name).read_bytes()

    def _remove(self, name: str) -> None:
        from .export import delete_url

        if self.url is not None:
            delete_url(self._at(name))
        else:
            os.unlink(self.path / name)

    def _open(self, overwrite: bool) -> None:
        names = self._names()
        shards = [n for n in names if _SHARD.match(n)]
        for n in names:  # shards a killed run did not finish renaming
            if n.startswith(".part-") and n.endswith(".tmp"):
                self._remove(n)
        if MANIFEST in names:
            try:
                doc = json.loads(self._read(MANIFEST).decode("utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                raise self._refuse(f"holds a {MANIFEST} that is not one of cxrviewer") from None
            if not isinstance(doc, dict) or doc.get("format") != _MANIFEST_FORMAT:
                raise self._refuse(f"holds a {MANIFEST} that is not one of cxrviewer")
            if doc.get("columns") != self.columns and not overwrite:
                raise self._refuse("holds results with other columns (another model)")
        elif not shards and any(not n.endswith(".lock") for n in names) and not overwrite:
            raise self._refuse("is not a results folder of cxrviewer (it holds other files and no manifest)")
        if overwrite:
            for n in shards:
                self._remove(n)
            shards = []
        index = KeyIndex()
        for n in shards:
            # an object is read whole (a shard is small: a thousand rows); a file in place
            f = self.path / n if self.url is None else self._pa.BufferReader(self._read(n))
            try:
                if self._pq.read_schema(f).names != self.columns:
                    raise self._refuse(f"holds a shard {n} with other columns (another model)")
                table = self._pq.read_table(f, columns=_KEY_COLUMNS)
            except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
                raise self._refuse(f"holds a shard {n} that cannot be read ({exc})") from None
            index.add_rows(*(table.column(c).to_pylist() for c in _KEY_COLUMNS))
            self._shards.append({"file": n, "rows": table.num_rows})
        self._done = index.freeze()
        self._next = 1 + max((int(_SHARD.match(n).group(1)) for n in shards), default=-1)
        self._write_manifest()
        if shards:
            logger.info("resuming %s: %d shards, %d files already scored", self.path, len(shards), len(self._done))

    def already_done(self, path: Path | str) -> bool:
        """As :meth:`ResultsCsv.already_done`: the film's last row, when the folder was opened,
        was ``ok`` for the same path, size and modification time."""
        key = file_key(path)
        return key is not None and key in self._done

    def write(self, results: Sequence[ScoredFile]) -> None:
        """Add the rows of ``results``; a shard is written when it is full or old enough."""
        self.write_rows([result_row(r, self.labels, self.model_version) for r in results])

    def write_rows(self, rows: Sequence[dict[str, str]]) -> None:
        if not rows:
            return
        if not self._rows:
            self._first_row_at = time.monotonic()
        self._rows.extend(rows)
        while len(self._rows) >= self.rows_per_shard:
            full, self._rows = self._rows[: self.rows_per_shard], self._rows[self.rows_per_shard :]
            self._write_shard(full)
        if self._rows and time.monotonic() - self._first_row_at >= SHARD_SECONDS:
            self.flush()

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            self._write_shard(rows)

    def _write_shard(self, rows: list[dict[str, str]]) -> None:
        pa = self._pa
        name = f"part-{self._next:06d}.parquet"
        table = pa.table({c: pa.array([r[c] for r in rows], type=pa.string()) for c in self.columns})
        if self.url is not None:
            from .export import write_url

            buf = pa.BufferOutputStream()
            self._pq.write_table(table, buf)
            try:
                write_url(self._at(name), buf.getvalue().to_pybytes())
            except OutputError:
                self._rows = rows + self._rows  # still to write: the next flush tries again
                raise
            self._next += 1
            self._shards.append({"file": name, "rows": len(rows)})
            self._write_manifest()
            return
        tmp = self.path / f".{name}.tmp"
        try:
            self._pq.write_table(table, tmp)
            _fsync_file(tmp)
            os.replace(tmp, self.path / name)
            fsync_dir(self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            self._rows = rows + self._rows  # still to write: the next flush tries again
            raise _output_error(self.path / name, exc) from None
        self._next += 1
        self._shards.append({"file": name, "rows": len(rows)})
        self._write_manifest()

    def _write_manifest(self) -> None:
        doc = {
            "format": _MANIFEST_FORMAT,
            "version": 1,
            "model_version": self.model_version,
            "labels": list(self.labels),
            "columns": self.columns,
            "rows": sum(s["rows"] for s in self._shards),
            "shards": self._shards,
        }
        if self.url is not None:
            from .export import write_url

            write_url(self._at(MANIFEST), (json.dumps(doc, indent=1) + "\n").encode("utf-8"))
            return
        tmp = self.path / f".{MANIFEST}.tmp"
        try:
            tmp.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
            _fsync_file(tmp)
            os.replace(tmp, self.path / MANIFEST)
        except OSError as exc:
            raise _output_error(self.path / MANIFEST, exc) from None

    def close(self, flush: bool = True) -> None:
        try:
            if flush:
                self.flush()
        finally:
            lock, self._lock = self._lock, None
            if lock is not None:
                lock.release()

    def __enter__(self) -> "ResultsDir":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_results(out: str | os.PathLike[str], labels: Sequence[str], model_version: str,
                 overwrite: bool = False) -> "ResultsCsv | ResultsDir":
    """The results sink ``out`` names: a :class:`ResultsDir` for a folder (an existing one, or a
    name ending in a separator), else a :class:`ResultsCsv`. Both resume the same way."""
    if is_results_dir(out):
        return ResultsDir(out, labels, model_version, overwrite=overwrite)
    if is_url(out):
        raise OutputError(f"{out}: results on an object store are a folder of Parquet shards, not a CSV (an "
                          "object cannot be appended to); end the URL with / for a folder.")
    return ResultsCsv(Path(out), labels, model_version, overwrite=overwrite)


def read_results(out: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Every row of a results CSV or folder, in the order written (for checks and small sets)."""
    if is_results_dir(out):
        pa, pq = _pyarrow()
        rows: list[dict[str, str]] = []
        if is_url(out):
            from .export import read_url_bytes, url_names

            base = str(out).rstrip("/")
            for n in (n for n in url_names(base) if _SHARD.match(n)):
                rows.extend(pq.read_table(pa.BufferReader(read_url_bytes(f"{base}/{n}"))).to_pylist())
            return rows
        for n in sorted(n for n in os.listdir(out) if _SHARD.match(n)):
            rows.extend(pq.read_table(Path(out) / n).to_pylist())
        return rows
    with open(out, newline="", encoding="utf-8-sig") as fh:
        return list(csv.DictReader(fh))


@dataclass
class Summary:
    total: int = 0
    scored: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def line(self) -> str:
        rate = self.scored / self.seconds if self.seconds > 0 else 0.0
        parts = [f"{self.scored} scored", f"{self.failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        if self.cancelled:
            parts.append("stopped early")
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        return (
            f"{', '.join(parts)} of {self.total} files in {self.seconds:.1f} s ({rate:.1f} films/s)"
            + (f"; errors: {errs}" if errs else "")
        )
