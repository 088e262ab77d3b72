"""The finished-film index: which films a results file already holds, in 16 bytes a row."""

from __future__ import annotations

import csv
import logging
import os
from array import array
from collections.abc import Iterable, Iterator, Sequence

import numpy as np

from ..io import is_url
from .cells import FileKey, path_from_cell
from .records import scan_records, set_field_limit

logger = logging.getLogger(__name__)

_MASK64 = (1 << 64) - 1
#: a row's status as the index keeps it: 1 scored, 2 not applicable, 0 anything else (retried)
_STATE = {"ok": 1, "not_applicable": 2}


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
    last row is an error is scored again. A film whose last row is ``not_applicable`` is done too,
    unless the run scores such films (:meth:`DoneKeys.scored`).
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
            oks(_STATE.get(status, 0))

    def extend(self, other: "KeyIndex") -> None:
        self._paths.extend(other._paths)
        self._keys.extend(other._keys)
        self._ok.extend(other._ok)

    def freeze(self) -> "DoneKeys":
        paths = np.frombuffer(self._paths, dtype=np.uint64) if self._paths else np.zeros(0, np.uint64)
        keys = np.frombuffer(self._keys, dtype=np.uint64) if self._keys else np.zeros(0, np.uint64)
        ok = np.frombuffer(self._ok, dtype=np.int8) if self._ok else np.zeros(0, np.int8)
        order = np.argsort(paths, kind="stable")
        sp = paths[order]
        last = np.ones(len(sp), dtype=bool)  # the last row of each path (rows keep their order)
        last[:-1] = sp[1:] != sp[:-1]
        pick = order[last]
        state = ok[pick]
        done = np.sort(keys[pick][state == 1])
        not_applicable = np.sort(keys[pick][state == 2])
        self._paths, self._keys, self._ok = array("Q"), array("Q"), array("b")
        return DoneKeys(done, not_applicable)


class DoneKeys:
    """The finished films of a results set: ``key in done`` by binary search (scored films and
    films the model does not read); :meth:`scored` asks for the scored ones alone."""

    def __init__(self, hashes: np.ndarray, not_applicable: np.ndarray | None = None) -> None:
        self._hashes = hashes
        self._not_applicable = not_applicable if not_applicable is not None else np.zeros(0, np.uint64)

    def __len__(self) -> int:
        return int(self._hashes.size + self._not_applicable.size)

    def __contains__(self, key: FileKey) -> bool:
        h = np.uint64(key_hash(key))
        return _holds(self._hashes, h) or _holds(self._not_applicable, h)

    def scored(self, key: FileKey) -> bool:
        """Whether the film's last row is ``ok`` (a not-applicable row is not)."""
        return _holds(self._hashes, np.uint64(key_hash(key)))


def _holds(hashes: np.ndarray, h: np.uint64) -> bool:
    i = int(np.searchsorted(hashes, h))
    return i < hashes.size and hashes[i] == h


def index_csv(fd: int, start: int, columns: Sequence[str], index: KeyIndex) -> tuple[int, int]:
    """Stream the records of a results CSV from ``start`` into ``index``; returns (bytes of
    sound data, damaged lines skipped). Whole records are parsed as they come; from the first
    damaged one on, the rest is read whole and scanned by :func:`scan_records`."""
    set_field_limit()
    ncols = len(columns)
    fast = index_csv_arrow(fd, start, columns, index)
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


def index_csv_arrow(fd: int, start: int, columns: Sequence[str], index: KeyIndex) -> int | None:
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
