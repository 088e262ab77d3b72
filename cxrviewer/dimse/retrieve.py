"""Getting films from a PACS into a local cache: C-GET, C-MOVE (PS3.4 C.4.2, C.4.3) or WADO-RS
(PS3.18 10.4), one series at a time.

- **C-GET** (the default): the PACS sends the instances back on our own association as C-STORE
  sub-operations (we take the Storage SCP role, PS3.7 D.3.3.4); no inbound port is needed.
- **C-MOVE**: the PACS opens an association to *us* and C-STOREs the instances there. We start a
  temporary Storage SCP on the port given (``move_port``) for the length of the retrieve; the
  PACS must know our AE title (:attr:`~.query.Connection.calling_ae`) with this computer's
  address and that port.
- **WADO-RS** for a DICOMweb service: each series is streamed instance by instance, in the
  transfer syntax it is stored in.

:class:`RetrieveCache` is where films land: ``ROOT/<StudyInstanceUID>/<SeriesInstanceUID>/
<SOPInstanceUID>.dcm``. A series is written into a hidden temporary folder (each file fsync'ed, as
the node's spool does), and becomes complete only by one rename at the end, with its manifest
inside: a retrieve that stops half-way (the PACS went away, a cancel, a crash) never leaves a
series that looks complete. A series already complete is not fetched again. With a size limit the
least recently used series are removed first (never those of the retrieve in hand).

Log lines name the PACS, UIDs and counts, never a patient's name or ID.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import OutputError, PacsQueryError, PacsRetrieveError, RetrieveCancelledError
from ..storage import fsync_dir
from .query import (
    Connection,
    Series,
    Study,
    StudyQuery,
    associate,
    find_series_of,
    find_studies,
    is_uid,
    need,
    quiet_identifying_loggers,
    web_client,
    web_error,
)

logger = logging.getLogger(__name__)

MANIFEST = ".cxrviewer-series.json"
_PARTIAL = ".partial-"
_TRASH = ".trash-"
#: a ``.partial-*`` folder older than this (seconds) is a leftover of a process that stopped
#: mid-retrieve (killed, a power cut): the next cache opened there removes it
STALE_PARTIAL = 24 * 3600
#: seconds a PACS gets to answer a C-CANCEL before the association is aborted
CANCEL_GRACE = 5.0
METHODS = ("get", "move")
#: the cache's size limit unless told otherwise
DEFAULT_CACHE_BYTES = 10 * 2**30


def default_cache_dir() -> Path:
    """Where retrieved films are kept unless told otherwise: ``$XDG_CACHE_HOME/cxrviewer/pacs``
    (``~/.cache/cxrviewer/pacs``; ``%LOCALAPPDATA%\\cxrviewer\\pacs`` on Windows)."""
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "cxrviewer" / "pacs"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cxrviewer" / "pacs"

# Storage SOP classes we take back (PS3.4 B.5): the films cxrviewer reads.
STORAGE_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word Secondary Capture
)
# Transfer syntaxes (PS3.5 10, A.4): each offered in a context of its own, so the PACS sends a
# film as it is stored instead of transcoding it (a decoded-and-re-encoded film is another film).
TRANSFER_SYNTAXES = (
    "1.2.840.10008.1.2.1",  # Explicit VR Little Endian
    "1.2.840.10008.1.2",  # Implicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline (Process 1)
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless, SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
)


# --------------------------------------------------------------------------- cache
@dataclass(frozen=True)
class CachedSeries:
    """A complete series in the cache."""

    StudyInstanceUID: str
    SeriesInstanceUID: str
    folder: Path
    files: tuple[Path, ...]
    bytes: int


@dataclass(frozen=True)
class RetrieveProgress:
    """Where a retrieve stands: instances of the series in hand, and series done of all."""

    study_uid: str
    series_uid: str
    received: int
    #: instances the PACS said the series has (None: not said)
    expected: int | None
    series_done: int
    series_total: int


def _check_uid(uid: str, what: str) -> str:
    if not is_uid(uid):
        raise PacsRetrieveError(f"The PACS named a {what} {uid[:70]!r} that is not a DICOM UID; it is not retrieved.")
    return uid


def _fsynced_write(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


class PartialSeries:
    """A series being received: files go into a hidden folder of the cache; :meth:`commit` makes
    it complete in one rename, :meth:`discard` removes it. :meth:`add` may be called from the
    threads pynetdicom runs its handlers in."""

    def __init__(self, cache: RetrieveCache, study_uid: str, series_uid: str) -> None:
        self.cache = cache
        self.study_uid, self.series_uid = study_uid, series_uid
        self.folder = cache.root / f"{_PARTIAL}{series_uid}-{uuid.uuid4().hex[:8]}"
        self.folder.mkdir()
        self._lock = threading.Lock()
        self.names: dict[str, int] = {}

    @property
    def count(self) -> int:
        return len(self.names)

    def add(self, sop_uid: str, data: bytes) -> None:
        name = f"{_check_uid(sop_uid, 'SOP Instance UID')}.dcm"
        with self._lock:
            if name in self.names:
                return  # sent twice: the first copy stays
            try:
                _fsynced_write(self.folder / name, data)
            except OSError as exc:
                raise OutputError(f"Cannot write into the retrieve cache {self.cache.root}: {exc.strerror or exc}. "
                                  "Free some space or choose another cache folder.") from None
            self.names[name] = len(data)

    def commit(self) -> CachedSeries:
        manifest = {"StudyInstanceUID": self.study_uid, "SeriesInstanceUID": self.series_uid,
                    "files": sorted(self.names), "bytes": sum(self.names.values()), "completed": time.time()}
        with self._lock:
            _fsynced_write(self.folder / MANIFEST, json.dumps(manifest, indent=1).encode())
            fsync_dir(self.folder)
            study_dir = self.cache.root / self.study_uid
            with self.cache.locked():
                target = study_dir / self.series_uid
                done = self.cache.get(self.study_uid, self.series_uid, touch=False)
                if done is not None:  # another retrieve finished it first: keep that one
                    self.discard()
                    return done
                if target.exists():  # a folder of ours without a manifest: never complete
                    self.cache.remove_folder(target)
                study_dir.mkdir(exist_ok=True)
                fsync_dir(self.cache.root)
                os.rename(self.folder, target)  # the series appears whole, or not at all
                fsync_dir(study_dir)
        series = self.cache.get(self.study_uid, self.series_uid, touch=False)
        assert series is not None
        return series

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


class RetrieveCache:
    """Retrieved series under ``root`` (see the module's text), at most ``max_bytes`` in all
    (None: no limit)."""

    def __init__(self, root: Path | str, max_bytes: int | None = None) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".probe-{uuid.uuid4().hex}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise OutputError(f"Cannot use {self.root} as the retrieve cache: {exc.strerror or exc}. "
                              "Choose another folder.") from None
        self._thread_lock = threading.RLock()
        self._remove_stale()

    def _remove_stale(self) -> None:
        """Remove what stopped retrieves left: ``.partial-*`` folders older than
        :data:`STALE_PARTIAL` (a younger one may be another process's retrieve in hand) and
        ``.trash-*`` folders."""
        now = time.time()
        for leftover in self.root.iterdir():
            try:
                old = leftover.name.startswith(_PARTIAL) and now - leftover.stat().st_mtime > STALE_PARTIAL
            except OSError:
                continue
            if old or leftover.name.startswith(_TRASH):
                shutil.rmtree(leftover, ignore_errors=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """This cache, for this process's threads and other processes (an advisory lock file)."""
        with self._thread_lock:
            try:
                import fcntl
            except ImportError:  # Windows: threads only
                yield
                return
            with open(self.root / ".lock", "a+b") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def folder(self, study_uid: str, series_uid: str) -> Path:
        return self.root / _check_uid(study_uid, "Study Instance UID") / _check_uid(series_uid, "Series Instance UID")

    def get(self, study_uid: str, series_uid: str, touch: bool = True) -> CachedSeries | None:
        """The complete series, or None; ``touch`` marks it used now (LRU)."""
        folder = self.folder(study_uid, series_uid)
        manifest = folder / MANIFEST
        try:
            meta = json.loads(manifest.read_text())
            files = tuple(folder / name for name in meta["files"])
            size = int(meta["bytes"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not all(f.is_file() for f in files):
            return None  # someone removed films by hand: fetch it again
        if touch:
            with contextlib.suppress(OSError):
                os.utime(manifest)
        return CachedSeries(study_uid, series_uid, folder, files, size)

    def begin(self, study_uid: str, series_uid: str) -> PartialSeries:
        return PartialSeries(self, _check_uid(study_uid, "Study Instance UID"), _check_uid(series_uid, "Series Instance UID"))

    def entries(self) -> list[tuple[float, int, Path]]:
        """(last use, bytes, folder) of every complete series."""
        out = []
        for study in self.root.iterdir():
            if study.name.startswith(".") or not study.is_dir():
                continue
            for series in study.iterdir():
                manifest = series / MANIFEST
                try:
                    meta = json.loads(manifest.read_text())
                    out.append((manifest.stat().st_mtime, int(meta["bytes"]), series))
                except (OSError, ValueError, KeyError, TypeError):
                    continue
        return out

    def size(self) -> int:
        return sum(b for _, b, _ in self.entries())

    def remove_folder(self, folder: Path) -> None:
        """Take ``folder`` out of the cache in one rename, then delete it."""
        trash = self.root / f"{_TRASH}{uuid.uuid4().hex}"
        os.rename(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # the study's folder, once empty

    def evict(self, keep: Sequence[Path] = ()) -> int:
        """Remove the least recently used series until the cache is within its limit, never one
        in ``keep``; returns the bytes removed. Leftovers of stopped retrieves go too."""
        if self.max_bytes is None:
            return 0
        kept = {Path(k).resolve() for k in keep}
        removed = 0
        with self.locked():
            for leftover in self.root.glob(f"{_TRASH}*"):
                shutil.rmtree(leftover, ignore_errors=True)
            entries = sorted(self.entries())
            total = sum(b for _, b, _ in entries)
            for _, size, folder in entries:
                if total <= self.max_bytes:
                    break
                if folder.resolve() in kept:
                    continue
                self.remove_folder(folder)
                total -= size
                removed += size
            if total > self.max_bytes:
                logger.warning("the retrieve cache holds %d MB in use, more than its limit of %d MB",
                               total // 2**20, self.max_bytes // 2**20)
        if removed:
            logger.info("retrieve cache: removed %d MB of the least recently used series", removed // 2**20)
        return removed


# --------------------------------------------------------------------------- retrieving
def _failure(conn: Connection, what: str) -> PacsRetrieveError:
    return PacsRetrieveError(f"{conn.source} {what}; nothing of this series is kept: run the retrieve again.")


def _final_status(conn: Connection, status, partial: PartialSeries, op: str) -> None:
    """Check a C-GET/C-MOVE's final response (PS3.4 C.4.2.1.4, C.4.3.1.4)."""
    code = int(status.Status)
    failed = int(status.get("NumberOfFailedSuboperations", 0) or 0)
    completed = status.get("NumberOfCompletedSuboperations", None)
    if code == 0xFE00:
        raise RetrieveCancelledError(f"The retrieve from {conn.source} was cancelled; nothing of the series in hand is kept.")
    if code == 0xA801:
        raise PacsRetrieveError(f"{conn.source} does not know the move destination {conn.calling_ae}: add our AE "
                                "title with this computer's address and our listening port to its modalities.")
    if code not in (0x0000, 0xB000):
        raise _failure(conn, f"answered the {op} with status 0x{code:04X}" + (
            f" (check that it allows {op} from {conn.calling_ae})" if (code >> 8) in (0x01, 0xA7, 0xA9, 0xC0) else ""))
    if code == 0xB000 or failed:
        raise _failure(conn, f"could not send {failed or 'some'} instance(s) of the series (status 0x{code:04X})")
    if completed is not None and int(completed) > partial.count:
        raise _failure(conn, f"said it sent {int(completed)} instance(s) but {partial.count} arrived")
    if partial.count == 0:
        raise _failure(conn, "sent no instance of the series")


def _store_handler(route: Callable[[object], PartialSeries | None]):
    def on_store(event) -> int:
        partial = route(event)
        if partial is None:
            return 0xA900  # not a series we asked for (PS3.4 B.2.3: dataset does not match SOP class)
        try:
            partial.add(str(event.request.AffectedSOPInstanceUID), event.encoded_dataset(include_meta=True))
        except (PacsRetrieveError, OutputError) as exc:
            logger.warning("a retrieved instance was not stored: %s", exc)
            return 0xA700  # Out of resources (PS3.4 B.2.3)
        return 0x0000
    return on_store


def _storage_contexts() -> list[tuple[str, list[str]]]:
    return [(sop, [ts]) for sop in STORAGE_CLASSES for ts in TRANSFER_SYNTAXES]


def _run_retrieve(conn: Connection, assoc, responses, partial: PartialSeries, op: str, model: str,
                  cancel: threading.Event | None, progress: Callable[[int], None]) -> None:
    """Follow a C-GET/C-MOVE's responses to the end; cancel (C-CANCEL, PS3.7 9.3.2.3 / 9.3.3.3)
    when ``cancel`` is set; raises unless the series arrived whole."""
    cancel_sent: float | None = None
    final = None
    try:
        for status, _identifier in responses:
            if not status or "Status" not in status:
                if cancel_sent is not None:
                    break
                hint = ""
                if op == "C-MOVE" and partial.count == 0:
                    hint = (f"; a PACS ends a C-MOVE at once when it does not know the AE title asking "
                            f"({conn.calling_ae}): add it, with this computer's address and our listening "
                            "port, to its modalities")
                raise _failure(conn, f"went away or did not answer within {conn.timeout:.0f} s during the {op} "
                                     f"({partial.count} instance(s) had arrived{hint})")
            code = int(status.Status)
            if code in (0xFF00, 0xFF01):  # Pending: a sub-operation done (PS3.4 C.4.2.1.4)
                progress(partial.count)
                if cancel is not None and cancel.is_set():
                    if cancel_sent is None:
                        assoc.send_c_cancel(1, query_model=model)
                        cancel_sent = time.monotonic()
                        logger.info("%s: %s cancelled (C-CANCEL sent)", conn.source, op)
                    elif time.monotonic() - cancel_sent > CANCEL_GRACE:
                        logger.info("%s: no answer to the C-CANCEL within %.0f s; aborting", conn.source, CANCEL_GRACE)
                        assoc.abort()  # it ignores the C-CANCEL
                        break
                continue
            final = status
            logger.debug("%s: %s final status 0x%04X after %d instance(s)", conn.source, op, code, partial.count)
            break
    finally:
        if assoc.is_established:
            if final is None:  # cancelled, failed or interrupted mid-way: a release would wait for the PACS
                assoc.abort()
            else:
                assoc.release()
    if cancel_sent is not None or (cancel is not None and cancel.is_set()):
        raise RetrieveCancelledError(f"The retrieve from {conn.source} was cancelled; nothing of the series in hand is kept.")
    if final is None:
        raise _failure(conn, f"ended the {op} without a final answer")
    _final_status(conn, final, partial, op)
    progress(partial.count)


def _identifier(series: Series):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.QueryRetrieveLevel = "SERIES"  # PS3.4 C.6.2.2: Study Root, series level unique keys
    ds.StudyInstanceUID = series.StudyInstanceUID
    ds.SeriesInstanceUID = series.SeriesInstanceUID
    return ds


def _get_series(conn: Connection, series: Series, partial: PartialSeries, cancel, progress) -> None:
    from pynetdicom import build_role, evt
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet as GET

    roles = [build_role(sop, scp_role=True) for sop in STORAGE_CLASSES]  # PS3.7 D.3.3.4
    handlers = [(evt.EVT_C_STORE, _store_handler(lambda event: partial))]
    try:
        assoc = associate(conn, [(GET, None), *_storage_contexts()], roles=roles, evt_handlers=handlers)
    except PacsQueryError as exc:
        raise PacsRetrieveError(str(exc)) from None
    _run_retrieve(conn, assoc, assoc.send_c_get(_identifier(series), GET, msg_id=1), partial, "C-GET", GET,
                  cancel, progress)


class MoveDestination:
    """Our Storage SCP for C-MOVE, listening on ``port`` while it is open (a context manager);
    it files what comes into the :class:`PartialSeries` of the series being moved."""

    def __init__(self, conn: Connection, port: int, host: str = "") -> None:
        self.conn, self.port, self.host = conn, port, host
        self.current: PartialSeries | None = None
        self._server = None

    def _route(self, event) -> PartialSeries | None:
        partial = self.current
        if partial is None:
            return None
        try:
            series_uid = str(event.dataset.SeriesInstanceUID)
        except (AttributeError, ValueError, KeyError):
            return None
        return partial if series_uid == partial.series_uid else None

    def __enter__(self) -> MoveDestination:
        from pynetdicom import AE, evt

        ae = AE(ae_title=self.conn.calling_ae)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.conn.timeout
        for sop in STORAGE_CLASSES:
            ae.add_supported_context(sop, list(TRANSFER_SYNTAXES))
        handlers = [(evt.EVT_C_STORE, _store_handler(self._route))]
        try:
            self._server = ae.start_server((self.host, self.port), block=False, evt_handlers=handlers)
        except OSError as exc:
            raise PacsRetrieveError(f"Cannot listen on port {self.port} for the C-MOVE: {exc.strerror or exc}. "
                                    "Choose another port, or retrieve by C-GET.") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def _move_series(conn: Connection, series: Series, partial: PartialSeries, mover: MoveDestination, cancel,
                 progress) -> None:
    from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelMove as MOVE

    try:
        assoc = associate(conn, [(MOVE, None)])
    except PacsQueryError as exc:
        raise PacsRetrieveError(str(exc)) from None
    mover.current = partial
    try:
        _run_retrieve(conn, assoc, assoc.send_c_move(_identifier(series), conn.calling_ae, MOVE, msg_id=1),
                      partial, "C-MOVE", MOVE, cancel, progress)
    finally:
        mover.current = None


def _wado_series(conn: Connection, series: Series, partial: PartialSeries, cancel, progress) -> None:
    import io

    import requests

    client = web_client(conn)
    # transfer-syntax=*: each instance as it is stored, not transcoded (PS3.18 8.7.3.5.2)
    stream = client.iter_series(series.StudyInstanceUID, series.SeriesInstanceUID,
                                media_types=(("application/dicom", "*"),))
    try:
        for ds in stream:
            if cancel is not None and cancel.is_set():
                raise RetrieveCancelledError(f"The retrieve from {conn.source} was cancelled; nothing of the "
                                             "series in hand is kept.")
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            partial.add(str(ds.SOPInstanceUID), buf.getvalue())
            progress(partial.count)
    except (requests.RequestException, OSError, ValueError) as exc:
        if isinstance(exc, OutputError):
            raise
        raise _failure(conn, web_error(conn, exc, "the WADO-RS retrieve").removeprefix(f"{conn.source} ")
                       + f" ({partial.count} instance(s) had arrived)") from None
    finally:
        with contextlib.suppress(Exception):
            stream.close()
    if partial.count == 0:
        raise _failure(conn, "sent no instance of the series")
    if series.NumberOfSeriesRelatedInstances is not None and partial.count < series.NumberOfSeriesRelatedInstances:
        raise _failure(conn, f"said the series has {series.NumberOfSeriesRelatedInstances} instance(s) but "
                             f"{partial.count} arrived")


@dataclass(frozen=True)
class Retrieved:
    """What a retrieve brought: the studies, their series in the cache, how many were fetched now."""

    studies: tuple[Study, ...]
    series: tuple[CachedSeries, ...]
    fetched: int
    from_cache: int

    @property
    def files(self) -> list[Path]:
        return [f for s in self.series for f in s.files]


def retrieve_series(conn: Connection, wanted: Sequence[Series], cache: RetrieveCache, *, method: str = "get",
                    move_port: int | None = None, move_host: str = "", cancel: threading.Event | None = None,
                    progress: Callable[[RetrieveProgress], None] | None = None) -> tuple[list[CachedSeries], int]:
    """Each series of ``wanted`` from the cache, or from the PACS into it; returns them and how
    many were fetched now. A series that fails raises (those before it stay complete)."""
    if method not in METHODS:
        raise PacsRetrieveError(f"Unknown retrieve method {method!r}; choose get or move.")
    quiet_identifying_loggers()
    need("dicomweb_client" if conn.is_web else "pynetdicom")
    if method == "move" and not conn.is_web and move_port is None:
        raise PacsRetrieveError("A C-MOVE needs a port of ours for the PACS to send to: give one, or retrieve by C-GET.")
    out: list[CachedSeries] = []
    fetched = 0
    total = len(wanted)
    mover = MoveDestination(conn, move_port, move_host) if method == "move" and not conn.is_web else None
    with mover or contextlib.nullcontext():
        for i, series in enumerate(wanted):
            done = cache.get(series.StudyInstanceUID, series.SeriesInstanceUID)
            if done is not None:
                out.append(done)
                if progress:
                    progress(RetrieveProgress(series.StudyInstanceUID, series.SeriesInstanceUID, len(done.files),
                                              len(done.files), i + 1, total))
                continue
            if cancel is not None and cancel.is_set():
                raise RetrieveCancelledError(f"The retrieve from {conn.source} was cancelled.")

            def tell(n: int, i=i, series=series) -> None:
                if progress:
                    progress(RetrieveProgress(series.StudyInstanceUID, series.SeriesInstanceUID, n,
                                              series.NumberOfSeriesRelatedInstances, i, total))

            partial = cache.begin(series.StudyInstanceUID, series.SeriesInstanceUID)
            try:
                if conn.is_web:
                    _wado_series(conn, series, partial, cancel, tell)
                elif mover is not None:
                    _move_series(conn, series, partial, mover, cancel, tell)
                else:
                    _get_series(conn, series, partial, cancel, tell)
                done = partial.commit()
            except BaseException:
                partial.discard()
                raise
            fetched += 1
            logger.info("%s: series %s retrieved (%d instance(s))", conn.source, series.SeriesInstanceUID, len(done.files))
            out.append(done)
            if progress:
                progress(RetrieveProgress(series.StudyInstanceUID, series.SeriesInstanceUID, len(done.files),
                                          len(done.files), i + 1, total))
            cache.evict(keep=[s.folder for s in out])
    cache.evict(keep=[s.folder for s in out])
    return out, fetched


def retrieve_studies(conn: Connection, query: StudyQuery, cache: RetrieveCache, *, studies: Sequence[Study] | None = None,
                     **kwargs) -> Retrieved:
    """The series of the modalities of ``query`` of every study it selects (or of ``studies``,
    found before), through :func:`retrieve_series` (``kwargs``: method, move_port, cancel,
    progress)."""
    if studies is None:
        studies = find_studies(conn, query)
    wanted = find_series_of(conn, [s.StudyInstanceUID for s in studies], query.modalities)
    series, fetched = retrieve_series(conn, wanted, cache, **kwargs)
    return Retrieved(tuple(studies), tuple(series), fetched, len(series) - fetched)
