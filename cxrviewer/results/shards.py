"""The results folder (:class:`ResultsDir`): Parquet shards written atomically, plus a manifest.

Everything in the folder that is not a shard starts with ``_`` or ``.`` (``_manifest.json``, its
lock ``_manifest.json.lock``, ``.part-*.tmp``), the names Parquet dataset readers skip (pyarrow,
pandas, Ray Data; DuckDB reads ``DIR/*.parquet``), so the folder is a Parquet dataset as it is.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path

from ..errors import OutputError, UnknownResultsFileError
from ..storage import fsync_dir
from ..io import is_url
from .cells import ScoredFile, csv_columns, file_key, result_row
from .index import KeyIndex
from .lock import RunLock
from .output_paths import output_error

logger = logging.getLogger(__name__)

#: Rows a Parquet shard holds: a killed run loses at most the shard being filled (or the rows of
#: :data:`SHARD_SECONDS`, whichever comes first).
SHARD_ROWS = 1000
#: A shard is also written when its first row is this old, so a slow run loses little on a kill.
SHARD_SECONDS = 60.0
MANIFEST = "_manifest.json"
#: the manifest's name before 2026-12 (issue 27): a folder that has it still resumes, and gets
#: ``_manifest.json`` in its place
OLD_MANIFEST = "manifest.json"
_MANIFEST_FORMAT = "cxrviewer-results"
SHARD_NAME = re.compile(r"^part-(\d{6})\.parquet$")
_KEY_COLUMNS = ["path", "status", "file_size", "file_mtime_ns"]


def is_results_dir(out: str | os.PathLike[str]) -> bool:
    """Whether ``out`` names a results folder (sharded Parquet): an existing folder, or a name
    ending in a path separator. Anything else is a results CSV."""
    text = os.fspath(out)
    return text.endswith(("/", os.sep)) or os.path.isdir(text)


def import_pyarrow():
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
    """A results folder: Parquet shards ``part-NNNNNN.parquet`` plus ``_manifest.json``.

    Each shard holds the CSV's columns with the CSV's values (:func:`result_row`, all text, so a
    shard and a CSV of the same films are equal cell for cell). A shard is written to a temporary
    name, fsync'ed and renamed, so a shard on disk is always whole; the manifest (columns, model,
    shards and their rows) is rewritten the same way after each shard, for readers. Resuming reads
    only the key columns of each shard into a :class:`KeyIndex`; the shards on disk, not the
    manifest, are the truth (a run killed between a shard and its manifest loses nothing).

    ``path`` may be a URL (``s3://bucket/results/``: :mod:`cxrviewer.storage`): each shard and the
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
        self._pa, self._pq = import_pyarrow()
        from ..storage import check_writable_dir

        if self.url is None:
            if os.path.exists(self.path) and not os.path.isdir(self.path):
                raise OutputError(f"{self.path} is a file, not a folder; give a folder for sharded results, or a .csv name.")
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise output_error(self.path, exc) from None
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
        from ..storage import url_names

        return url_names(self.url) if self.url is not None else sorted(os.listdir(self.path))

    def _read(self, name: str) -> bytes:
        from ..storage import read_url_bytes

        return read_url_bytes(self._at(name)) if self.url is not None else (self.path / name).read_bytes()

    def _remove(self, name: str) -> None:
        from ..storage import delete_url

        if self.url is not None:
            delete_url(self._at(name))
        else:
            os.unlink(self.path / name)

    def _open(self, overwrite: bool) -> None:
        names = self._names()
        shards = [n for n in names if SHARD_NAME.match(n)]
        for n in names:  # shards a killed run did not finish renaming
            if n.startswith(".part-") and n.endswith(".tmp"):
                self._remove(n)
        old = None
        for manifest in (MANIFEST, OLD_MANIFEST):
            if manifest not in names:
                continue
            try:
                doc = json.loads(self._read(manifest).decode("utf-8"))
            except (OSError, UnicodeDecodeError, ValueError):
                raise self._refuse(f"holds a {manifest} that is not one of cxrviewer") from None
            if not isinstance(doc, dict) or doc.get("format") != _MANIFEST_FORMAT:
                raise self._refuse(f"holds a {manifest} that is not one of cxrviewer")
            if doc.get("columns") != self.columns and not overwrite:
                raise self._refuse("holds results with other columns (another model)")
            old = manifest if manifest == OLD_MANIFEST else old
        if MANIFEST not in names and OLD_MANIFEST not in names and not shards and any(
                not n.endswith(".lock") for n in names) and not overwrite:
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
        self._next = 1 + max((int(SHARD_NAME.match(n).group(1)) for n in shards), default=-1)
        self._write_manifest()
        if old is not None:  # an older cxrviewer's folder: its manifest is _manifest.json now
            self._remove(old)
            logger.info("%s: %s renamed %s, which Parquet readers skip", self.path, old, MANIFEST)
        if shards:
            logger.info("resuming %s: %d shards, %d files already scored", self.path, len(shards), len(self._done))

    def already_done(self, path: Path | str, *, retry_not_applicable: bool = False) -> bool:
        """As :meth:`ResultsCsv.already_done`: the film's last row, when the folder was opened,
        was ``ok`` (or ``not_applicable``, unless ``retry_not_applicable``) for the same path,
        size and modification time."""
        key = file_key(path)
        if key is None:
            return False
        return self._done.scored(key) if retry_not_applicable else key in self._done

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
            from ..storage import write_url

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
            raise output_error(self.path / name, exc) from None
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
            from ..storage import write_url

            write_url(self._at(MANIFEST), (json.dumps(doc, indent=1) + "\n").encode("utf-8"))
            return
        tmp = self.path / f".{MANIFEST}.tmp"
        try:
            tmp.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
            _fsync_file(tmp)
            os.replace(tmp, self.path / MANIFEST)
        except OSError as exc:
            raise output_error(self.path / MANIFEST, exc) from None

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
