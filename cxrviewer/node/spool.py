"""The node's spool: films and results on disk, and a small SQLite job table.

Nothing a sender was told is stored may be lost, so every film is on disk, fsync'ed (file and
folder), and its job committed before the C-STORE success goes back (PS3.4 B.2.2: success means
the SCP has taken responsibility for the instance). A job goes::

    received ──▶ scored ──▶ sent          (every destination took every result)
        │           └─────▶ parked        (a destination refused them too many times)
        ├─────────────────▶ failed        (the film could not be scored; nothing to send)
        └─────────────────▶ not_applicable (the model does not read such films: nothing to send)

Results are written (fsync'ed) before the job is marked scored, and the same result files are
sent on every attempt, so a result resent after a crash carries the same SOP Instance UID and a
PACS keeps it once. Deliveries (one per job and destination) carry the attempts, the next try
and the last error. A restart, also after kill -9, finds every unfinished job in the table
(and a film written but not yet entered, whose success never went back, is entered then).

Layout::

    SPOOL/lock                       held (flock) by the running node
    SPOOL/jobs.sqlite                the job table (WAL, synchronous=FULL)
    SPOOL/films/<SOP Instance UID>.dcm
    SPOOL/results/<SOP Instance UID>/<sr|gsps|sc>.dcm
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SpoolError
from ..storage import fsync_dir

logger = logging.getLogger(__name__)

RECEIVED, SCORED, SENT, FAILED, PARKED = "received", "scored", "sent", "failed", "parked"
#: the model does not read the film (cxrviewer.applicability): a final state, no results
NOT_APPLICABLE = "not_applicable"
STATES = (RECEIVED, SCORED, SENT, FAILED, PARKED, NOT_APPLICABLE)
PENDING, DELIVERED = "pending", "delivered"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    uid TEXT PRIMARY KEY,          -- the film's SOP Instance UID
    sop_class TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    results TEXT,                  -- JSON: {kind: file name}
    received REAL NOT NULL,
    scored REAL,
    finished REAL,
    times_received INTEGER NOT NULL DEFAULT 1,
    purged REAL                    -- when the film and its results were removed from the spool
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS deliveries (
    uid TEXT NOT NULL REFERENCES jobs(uid),
    destination TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL,
    error TEXT,
    delivered REAL,
    PRIMARY KEY (uid, destination)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries(state, next_try);
"""


@dataclass(frozen=True)
class Job:
    uid: str
    sop_class: str
    calling_ae: str
    state: str
    error: str | None
    received: float


@dataclass(frozen=True)
class Delivery:
    """The results of one job, to one destination."""

    uid: str
    destination: str
    attempts: int
    files: tuple[Path, ...]


@dataclass(frozen=True)
class Parked:
    uid: str
    destination: str
    attempts: int
    error: str


def durable_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``: a temporary file, fsync, rename, fsync of the folder."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class Spool:
    """Films, results and the job table under one folder. Thread-safe (one connection, a lock)."""

    def __init__(self, root: str | os.PathLike[str], *, readonly: bool = False) -> None:
        self.root = Path(root)
        self.films = self.root / "films"
        self.results = self.root / "results"
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        db = self.root / "jobs.sqlite"
        try:
            if readonly:
                if not db.is_file():
                    raise SpoolError(f"{self.root} is not a node's spool folder (it has no jobs.sqlite). Name the folder the node uses.")
                self._db = sqlite3.connect(f"file:{db}?mode=ro", uri=True, check_same_thread=False, timeout=30)
            else:
                for folder in (self.root, self.films, self.results):
                    folder.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(db, check_same_thread=False, timeout=30, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: each commit is fsync'ed before it returns, so a job the sender was told
                # about survives a power cut, not only a crash.
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise SpoolError(f"The job table in {self.root} cannot be used ({exc}). Move the folder aside and start with a new one.") from None
        except OSError as exc:
            raise SpoolError(f"Cannot use {self.root} as the spool folder: {exc.strerror or exc}. Choose a writable folder.") from None

    # ----------------------------------------------------------------- ownership
    def acquire(self) -> None:
        """Hold the spool for this process: two nodes on one spool would score films twice."""
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolError(f"Another node is using {self.root}; stop it first or choose another spool folder.") from None
        self._lock_fd = fd

    def close(self) -> None:
        with self._lock:
            self._db.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ----------------------------------------------------------------- receiving
    def film_path(self, uid: str) -> Path:
        return self.films / f"{uid}.dcm"

    def result_dir(self, uid: str) -> Path:
        return self.results / uid

    def known(self, uid: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM jobs WHERE uid = ?", (uid,)).fetchone() is not None

    def receive(self, uid: str, sop_class: str, data: bytes, calling_ae: str) -> bool:
        """Store a film and enter its job; False when the instance was received before (it is
        then neither stored nor scored again). On return the film and its job are durable."""
        if self.known(uid):
            self._count_again(uid)
            return False
        durable_write(self.film_path(uid), data)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM jobs WHERE uid = ?", (uid,)).fetchone() is not None:
                # the same instance on two associations at once: the other one entered it first
                db.execute("UPDATE jobs SET times_received = times_received + 1 WHERE uid = ?", (uid,))
                return False
            db.execute(
                "INSERT INTO jobs (uid, sop_class, calling_ae, state, received) VALUES (?, ?, ?, ?, ?)",
                (uid, sop_class, calling_ae, RECEIVED, time.time()),
            )
        return True

    def _count_again(self, uid: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET times_received = times_received + 1 WHERE uid = ?", (uid,))

    def recover(self, sop_class_of) -> int:
        """Enter films that reached the disk without their job (the node stopped between the
        two; their sender got no success and may send them again). Returns how many."""
        n = 0
        for path in sorted(self.films.glob("*.dcm")):
            uid = path.stem
            if self.known(uid):
                continue
            sop_class = sop_class_of(path)
            with self._tx() as db:
                db.execute(
                    "INSERT OR IGNORE INTO jobs (uid, sop_class, calling_ae, state, received) VALUES (?, ?, ?, ?, ?)",
                    (uid, sop_class or "", "", RECEIVED, path.stat().st_mtime),
                )
            n += 1
        for part in self.films.glob(".*.part"):  # a film cut off mid-write: never acknowledged
            part.unlink(missing_ok=True)
        return n

    def jobs(self, state: str) -> list[Job]:
        with self._lock:
            rows = self._db.execute(
                "SELECT uid, sop_class, calling_ae, state, error, received FROM jobs WHERE state = ? ORDER BY received",
                (state,),
            ).fetchall()
        return [Job(*row) for row in rows]

    # ------------------------------------------------------------------- scoring
    def mark_failed(self, uid: str, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = ?, error = ?, finished = ? WHERE uid = ?", (FAILED, error, time.time(), uid))

    def mark_not_applicable(self, uid: str, reason: str) -> None:
        """The model does not read this film (``reason``, from its header): done, nothing to send."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = ?, error = ?, finished = ? WHERE uid = ?",
                       (NOT_APPLICABLE, reason, time.time(), uid))

    def mark_scored(self, uid: str, results: Mapping[str, Path], destinations: Sequence[str], error: str | None = None) -> None:
        """The results are on disk (fsync'ed): enter them and one delivery per destination."""
        now = time.time()
        names = {kind: Path(p).name for kind, p in results.items()}
        with self._tx() as db:
            state = SCORED if destinations else SENT
            db.execute(
                "UPDATE jobs SET state = ?, results = ?, scored = ?, error = ?, finished = ? WHERE uid = ?",
                (state, json.dumps(names), now, error, None if destinations else now, uid),
            )
            db.executemany(
                "INSERT OR IGNORE INTO deliveries (uid, destination, state, next_try) VALUES (?, ?, ?, ?)",
                [(uid, d, PENDING, now) for d in destinations],
            )

    # ------------------------------------------------------------------- sending
    def due(self, now: float | None = None) -> list[Delivery]:
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT d.uid, d.destination, d.attempts, j.results FROM deliveries d JOIN jobs j ON j.uid = d.uid "
                "WHERE d.state = ? AND d.next_try <= ? ORDER BY d.next_try, j.received",
                (PENDING, now),
            ).fetchall()
        out = []
        for uid, dest, attempts, results in rows:
            names = json.loads(results or "{}")
            out.append(Delivery(uid, dest, attempts, tuple(self.result_dir(uid) / n for n in names.values())))
        return out

    def due_count(self, now: float | None = None) -> int:
        """How many deliveries :meth:`due` would return (one count, nothing read)."""
        now = time.time() if now is None else now
        with self._lock:
            (n,) = self._db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE state = ? AND next_try <= ?", (PENDING, now)
            ).fetchone()
        return int(n)

    def next_try(self) -> float | None:
        with self._lock:
            row = self._db.execute("SELECT MIN(next_try) FROM deliveries WHERE state = ?", (PENDING,)).fetchone()
        return row[0]

    def delivered(self, uid: str, destination: str) -> None:
        self.delivered_many([uid], destination)

    def delivered_many(self, uids: Sequence[str], destination: str) -> None:
        """Mark the deliveries of ``uids`` to ``destination`` done, in one transaction (one
        commit, one fsync, for a sending round rather than one per film)."""
        if not uids:
            return
        now = time.time()
        with self._tx() as db:
            db.executemany(
                "UPDATE deliveries SET state = ?, delivered = ?, error = NULL, attempts = attempts + 1 WHERE uid = ? AND destination = ?",
                [(DELIVERED, now, uid, destination) for uid in uids],
            )
            for uid in uids:
                self._settle(db, uid)

    def delivery_failed(self, uid: str, destination: str, error: str, max_attempts: int, delay: float, max_delay: float) -> bool:
        """Count a failed attempt; park the delivery after ``max_attempts``. True when parked."""
        with self._tx() as db:
            row = db.execute("SELECT attempts FROM deliveries WHERE uid = ? AND destination = ?", (uid, destination)).fetchone()
            attempts = (row[0] if row else 0) + 1
            parked = attempts >= max_attempts
            wait = min(max_delay, delay * 2 ** (attempts - 1))
            db.execute(
                "UPDATE deliveries SET state = ?, attempts = ?, error = ?, next_try = ? WHERE uid = ? AND destination = ?",
                (PARKED if parked else PENDING, attempts, error, time.time() + wait, uid, destination),
            )
            self._settle(db, uid)
        return parked

    def _settle(self, db: sqlite3.Connection, uid: str) -> None:
        states = {s for (s,) in db.execute("SELECT state FROM deliveries WHERE uid = ?", (uid,))}
        if PENDING in states:
            return
        state = PARKED if PARKED in states else SENT
        db.execute("UPDATE jobs SET state = ?, finished = ? WHERE uid = ?", (state, time.time(), uid))

    def retry_parked(self) -> int:
        """Give every parked delivery a new round of attempts (after the destination is fixed)."""
        with self._tx() as db:
            n = db.execute(
                "UPDATE deliveries SET state = ?, attempts = 0, next_try = ? WHERE state = ?", (PENDING, time.time(), PARKED)
            ).rowcount
            db.execute("UPDATE jobs SET state = ?, finished = NULL WHERE state = ?", (SCORED, PARKED))
        return n

    # -------------------------------------------------------------------- status
    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = dict(self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        return {state: int(rows.get(state, 0)) for state in STATES}

    def parked(self) -> list[Parked]:
        with self._lock:
            rows = self._db.execute(
                "SELECT uid, destination, attempts, error FROM deliveries WHERE state = ? ORDER BY uid", (PARKED,)
            ).fetchall()
        return [Parked(*row) for row in rows]

    def purge(self, before: float) -> int:
        """Remove the film and result files of jobs sent or failed before ``before`` (a time).
        Their rows stay, so a film sent again later is still known and not scored again.
        Parked jobs keep their files: they are still to be delivered."""
        with self._lock:
            uids = [u for (u,) in self._db.execute(
                "SELECT uid FROM jobs WHERE state IN (?, ?, ?) AND finished < ? AND purged IS NULL",
                (SENT, FAILED, NOT_APPLICABLE, before)
            )]
        for uid in uids:
            self.film_path(uid).unlink(missing_ok=True)
            folder = self.result_dir(uid)
            if folder.is_dir():
                for f in folder.iterdir():
                    f.unlink(missing_ok=True)
                folder.rmdir()
            with self._tx() as db:
                db.execute("UPDATE jobs SET purged = ? WHERE uid = ?", (time.time(), uid))
        return len(uids)

    def failed(self) -> list[Job]:
        return self.jobs(FAILED)
