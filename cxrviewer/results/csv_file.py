"""The results CSV (:class:`ResultsCsv`): appended in fsync'ed groups, resumed, one run at a time."""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from ..errors import OutputError, UnknownResultsFileError
from .cells import FIXED_HEAD, ScoredFile, csv_columns, file_key, result_row
from .index import KeyIndex, index_csv
from .lock import RunLock
from .output_paths import check_output_file, open_output, output_error
from .records import parse_records

logger = logging.getLogger(__name__)

#: What Excel puts before the header when it saves a CSV as "CSV UTF-8".
UTF8_BOM = b"\xef\xbb\xbf"
#: The longest header line looked at when deciding whether a file is one of ours.
_HEADER_LIMIT = 1 << 20

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
        from ..storage import check_writable_dir

        check_writable_dir(folder)
        self._lock = RunLock(self.path)
        try:
            self._fd = open_output(self.path, os.O_RDWR | os.O_CREAT)
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
            header = parse_records(head[start : nl + 1].decode("utf-8"))
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
        keep, bad = index_csv(fd, nl + 1, self.columns, index)
        if bad:
            logger.warning("%s: skipped %d damaged line(s) while resuming", self.path, bad)
        if keep < size:
            logger.warning("cutting a partial last record from %s (an interrupted run)", self.path)
            self._truncate(keep)
        self._done = index.freeze()
        logger.info("resuming %s: %d files already scored", self.path, len(self._done))

    def already_done(self, path: Path, *, retry_not_applicable: bool = False) -> bool:
        """Whether the file's last row in the CSV, when it was opened, was ``ok`` or
        ``not_applicable`` for the same path, size and modification time (failed films are tried
        again; not-applicable ones too with ``retry_not_applicable``, a run that scores them)."""
        key = file_key(path)
        if key is None:
            return False
        return self._done.scored(key) if retry_not_applicable else key in self._done

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
            raise output_error(self.path, exc) from None

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
            raise output_error(self.path, exc) from None

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
