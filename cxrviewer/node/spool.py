"""The node's spool: films and results on disk, and a small SQLite job table.

Nothing a sender was told is stored may be lost, so every film is on disk, fsync'ed (file and
folder), and its job committed before the C-STORE success goes back (PS3.4 B.2.2: success means
the SCP has taken responsibility for the instance). A job goes::

    received ──▶ scored ──▶ sent          (every result written, every destination took them)
      ▲  │          ├─────▶ incomplete    (delivered what was written; a result could not be)
      │  │          └─────▶ parked        (a destination refused them too many times)
      │  ├────────────────▶ failed        (the film could not be scored; nothing written)
      │  └────────────────▶ not_applicable (the model does not read such films: nothing to send)
      └── a result that could not be written for want of room (or an I/O error) is tried
          again: the job goes back to received and waits ``retry_at``, doubled each time

The job's state is a summary of what its rows below say, worked out again (:meth:`Spool._settle`)
whenever one of them changes; a new outcome is one more state there. Each result object has a
row (``results``: written, or why not) and each destination a delivery (attempts, the next try,
the last error) and one ``stored`` row per result it took, so what was written late is sent
late, and only that. A job that ends ``failed`` or ``incomplete`` is scored again when its
film is received again or ``cxrviewer listen --retry-failed`` asks (:meth:`Spool.receive`,
:meth:`Spool.retry_failed`); only the results it lacks are written then.

Results are written (fsync'ed) before they are entered, and the same result files are sent on
every attempt, so a result resent after a crash carries the same SOP Instance UID and a PACS
keeps it once. A restart, also after kill -9, finds every unfinished job in the table (and a
film written but not yet entered, whose success never went back, is entered then).

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

RECEIVED, SCORED, SENT, FAILED, PARKED, INCOMPLETE = "received", "scored", "sent", "failed", "parked", "incomplete"
#: the model does not read the film (cxrviewer.applicability): a final state, no results
NOT_APPLICABLE = "not_applicable"
STATES = (RECEIVED, SCORED, SENT, INCOMPLETE, PARKED, FAILED, NOT_APPLICABLE)
#: the outcomes a film received again (or --retry-failed) scores again: something is missing
RESCORED = (FAILED, INCOMPLETE)
#: the states :meth:`Spool._settle` leaves alone: scoring still to come, or an outcome set
#: directly that has nothing to deliver (a new outcome without results belongs here)
UNSETTLED = (RECEIVED, FAILED, NOT_APPLICABLE)
#: the finished jobs whose files :meth:`Spool.purge` removes after ``keep_days`` (parked ones
#: still have results to deliver)
FINISHED = (SENT, INCOMPLETE, FAILED, NOT_APPLICABLE)
PENDING, DELIVERED = "pending", "delivered"

#: What :meth:`Spool.receive` did with a film: stored it as a new job, stored it again to score
#: a failed or incomplete job again, gave a parked job's deliveries a new round, or nothing (the
#: job is complete, or still under way).
NEW, RESCORE, RESEND, DUPLICATE = "new", "scored again", "delivered again", "duplicate"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    uid TEXT PRIMARY KEY,          -- the film's SOP Instance UID
    sop_class TEXT NOT NULL,
    calling_ae TEXT NOT NULL,
    state TEXT NOT NULL,
    error TEXT,
    results TEXT,                  -- JSON: {kind: file name} (the results table has the rest)
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
CREATE TABLE IF NOT EXISTS results (
    uid TEXT NOT NULL REFERENCES jobs(uid),
    kind TEXT NOT NULL,            -- sr | gsps | sc
    file TEXT,                     -- its name in SPOOL/results/<uid>/ once written, else NULL
    error TEXT,                    -- why it is not written (yet)
    PRIMARY KEY (uid, kind)
);
CREATE TABLE IF NOT EXISTS stored (
    uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    destination TEXT NOT NULL,
    at REAL NOT NULL,
    PRIMARY KEY (uid, destination, kind)
);
"""
#: user_version 1: the results and stored tables, and jobs.attempts / jobs.retry_at
_VERSION = 1
_JOB_COLUMNS = (
    ("attempts", "INTEGER NOT NULL DEFAULT 0"),  # scoring rounds that could not write every result
    ("retry_at", "REAL"),  # when a job waiting to write its results again is due (NULL: not waiting)
)


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
    """The results of one job not yet stored at one destination."""

    uid: str
    destination: str
    attempts: int
    files: tuple[Path, ...]
    #: the result kinds of ``files``, in the same order
    kinds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Parked:
    uid: str
    destination: str
    attempts: int
    error: str


@dataclass(frozen=True)
class Missing:
    """A result of a job that is not written: why, and whether the node tries again by itself."""

    uid: str
    kind: str
    error: str
    #: the job's state
    state: str
    #: when the node tries again (None: not waiting for a try)
    retry_at: float | None


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
                self.version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            else:
                for folder in (self.root, self.films, self.results):
                    folder.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(db, check_same_thread=False, timeout=30, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                # FULL: each commit is fsync'ed before it returns, so a job the sender was told
                # about survives a power cut, not only a crash.
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
                self._upgrade()
                self.version = _VERSION
        except sqlite3.DatabaseError as exc:
            raise SpoolError(f"The job table in {self.root} cannot be used ({exc}). Move the folder aside and start with a new one.") from None
        except OSError as exc:
            raise SpoolError(f"Cannot use {self.root} as the spool folder: {exc.strerror or exc}. Choose a writable folder.") from None

    def _upgrade(self) -> None:
        """A spool of an earlier version: add the job columns, and a results row for each file
        its jobs list and a stored row for each result of a delivery done (then, a delivery was
        every result of its job)."""
        (version,) = self._db.execute("PRAGMA user_version").fetchone()
        if version >= _VERSION:
            return
        with self._tx() as db:
            have = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
            for name, decl in _JOB_COLUMNS:
                if name not in have:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
            for uid, results in db.execute("SELECT uid, results FROM jobs WHERE results IS NOT NULL").fetchall():
                names = json.loads(results or "{}")
                db.executemany("INSERT OR IGNORE INTO results (uid, kind, file) VALUES (?, ?, ?)",
                               [(uid, kind, name) for kind, name in names.items()])
            db.execute(
                "INSERT OR IGNORE INTO stored (uid, kind, destination, at) SELECT d.uid, r.kind, d.destination, "
                "COALESCE(d.delivered, 0) FROM deliveries d JOIN results r ON r.uid = d.uid WHERE d.state = ?",
                (DELIVERED,),
            )
            db.execute(f"PRAGMA user_version = {_VERSION}")

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

    def _state(self, uid: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT state FROM jobs WHERE uid = ?", (uid,)).fetchone()
        return None if row is None else row[0]

    def wants_film(self, uid: str) -> bool:
        """Whether :meth:`receive` would store this instance: it is new, or its job failed or is
        incomplete (it is scored again). The SCP checks the room for such a film first."""
        state = self._state(uid)
        return state is None or state in RESCORED

    def receive(self, uid: str, sop_class: str, data: bytes, calling_ae: str) -> str:
        """Take a film: :data:`NEW` (stored, a new job), :data:`RESCORE` (its job failed or is
        incomplete: stored again and scored again, only its missing results written),
        :data:`RESEND` (its job is parked: its deliveries get a new round) or :data:`DUPLICATE`
        (its job is complete or under way: neither stored nor scored again; a job waiting to
        write its results again tries at once). The first two are for the scoring workers. On
        return the film and its job are durable."""
        state = self._state(uid)
        if state is not None and state not in RESCORED:
            return self._again(uid, state)
        durable_write(self.film_path(uid), data)
        now = time.time()
        with self._tx() as db:
            row = db.execute("SELECT state FROM jobs WHERE uid = ?", (uid,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO jobs (uid, sop_class, calling_ae, state, received) VALUES (?, ?, ?, ?, ?)",
                    (uid, sop_class, calling_ae, RECEIVED, now),
                )
                return NEW
            if row[0] not in RESCORED:
                # the same instance on two associations at once: the other one took it first
                db.execute("UPDATE jobs SET times_received = times_received + 1 WHERE uid = ?", (uid,))
                return DUPLICATE
            self._reopen(db, uid, now)
            db.execute("UPDATE jobs SET times_received = times_received + 1, retry_at = NULL, purged = NULL WHERE uid = ?", (uid,))
        return RESCORE

    def _again(self, uid: str, state: str) -> str:
        now = time.time()
        if state == PARKED:
            with self._tx() as db:
                db.execute("UPDATE jobs SET times_received = times_received + 1 WHERE uid = ?", (uid,))
                db.execute("UPDATE deliveries SET state = ?, attempts = 0, next_try = ? WHERE uid = ? AND state = ?",
                           (PENDING, now, uid, PARKED))
                db.execute("UPDATE jobs SET state = ?, finished = NULL WHERE uid = ? AND state = ?", (SCORED, uid, PARKED))
            return RESEND
        try:
            with self._tx() as db:
                db.execute("UPDATE jobs SET times_received = times_received + 1 WHERE uid = ?", (uid,))
                # waiting to write its results again (a full disk): now, rather than at its next try
                db.execute("UPDATE jobs SET retry_at = ? WHERE uid = ? AND state = ? AND retry_at > ?",
                           (now, uid, RECEIVED, now))
        except sqlite3.OperationalError as exc:  # a full disk: a count, and a try a little sooner, lost
            logger.debug("instance %s received again, not counted: %s", uid, exc)
        return DUPLICATE

    @staticmethod
    def _reopen(db: sqlite3.Connection, uid: str, now: float) -> None:
        """Back to received, a new round of attempts; its parked deliveries too."""
        db.execute("UPDATE jobs SET state = ?, error = NULL, finished = NULL, attempts = 0 WHERE uid = ?", (RECEIVED, uid))
        db.execute("UPDATE deliveries SET state = ?, attempts = 0, next_try = ? WHERE uid = ? AND state = ?",
                   (PENDING, now, uid, PARKED))

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
    def take_waiting(self) -> list[str]:
        """Every job to be scored, for a node starting: those waiting for their next try too
        (what filled the disk may be gone). They are the caller's to score from now on."""
        with self._tx() as db:
            uids = [u for (u,) in db.execute("SELECT uid FROM jobs WHERE state = ? ORDER BY received", (RECEIVED,))]
            db.execute("UPDATE jobs SET retry_at = NULL WHERE state = ? AND retry_at IS NOT NULL", (RECEIVED,))
        return uids

    def take_due(self, now: float | None = None) -> list[str]:
        """The jobs whose next try to write their results has come (or that ``--retry-failed``
        or a film received again made due); they are the caller's to score from now on."""
        now = time.time() if now is None else now
        with self._lock:
            if self._db.execute("SELECT 1 FROM jobs WHERE state = ? AND retry_at <= ? LIMIT 1", (RECEIVED, now)).fetchone() is None:
                return []  # the usual case, answered without a write transaction
        with self._tx() as db:
            uids = [u for (u,) in db.execute(
                "SELECT uid FROM jobs WHERE state = ? AND retry_at <= ? ORDER BY retry_at", (RECEIVED, now))]
            db.executemany("UPDATE jobs SET retry_at = NULL WHERE uid = ?", [(u,) for u in uids])
        return uids

    def written(self, uid: str) -> set[str]:
        """The kinds of result written for this job (earlier rounds included)."""
        with self._lock:
            return {k for (k,) in self._db.execute("SELECT kind FROM results WHERE uid = ? AND file IS NOT NULL", (uid,))}

    def mark_failed(self, uid: str, error: str) -> None:
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = ?, error = ?, finished = ?, retry_at = NULL WHERE uid = ?",
                       (FAILED, error, time.time(), uid))

    def mark_not_applicable(self, uid: str, reason: str) -> None:
        """The model does not read this film (``reason``, from its header): done, nothing to send."""
        with self._tx() as db:
            db.execute("UPDATE jobs SET state = ?, error = ?, finished = ?, retry_at = NULL WHERE uid = ?",
                       (NOT_APPLICABLE, reason, time.time(), uid))

    def mark_scored(self, uid: str, results: Mapping[str, Path], destinations: Sequence[str], error: str | None = None,
                    *, missing: Mapping[str, str] | None = None) -> None:
        """The results are on disk (fsync'ed): enter them and one delivery per destination.
        ``missing``: the results that could not be written, and why (the job then ends
        incomplete once the others are delivered)."""
        with self._tx() as db:
            self._enter(db, uid, results, missing or {}, destinations)
            db.execute("UPDATE jobs SET state = ?, scored = ?, error = ?, retry_at = NULL WHERE uid = ?",
                       (SCORED, time.time(), error, uid))
            self._settle(db, uid)

    def write_failed(self, uid: str, results: Mapping[str, Path], destinations: Sequence[str], missing: Mapping[str, str],
                     max_attempts: int, delay: float, max_delay: float) -> float | None:
        """A scoring round that could not write ``missing`` for want of room or an I/O error:
        enter what it wrote (delivered meanwhile), and try again in ``delay`` seconds, doubled
        each time, at most ``max_attempts`` rounds. Returns the wait, or None when the job is
        given up (incomplete, or failed when nothing of it is written)."""
        now = time.time()
        error = "; ".join(missing.values())
        with self._tx() as db:
            self._enter(db, uid, results, missing, destinations)
            (attempts,) = db.execute("SELECT attempts FROM jobs WHERE uid = ?", (uid,)).fetchone()
            attempts += 1
            if attempts < max_attempts:
                wait = min(max_delay, delay * 2 ** (attempts - 1))
                db.execute("UPDATE jobs SET state = ?, attempts = ?, retry_at = ?, error = ? WHERE uid = ?",
                           (RECEIVED, attempts, now + wait, error, uid))
                return wait
            if db.execute("SELECT 1 FROM results WHERE uid = ? AND file IS NOT NULL", (uid,)).fetchone() is None:
                db.execute("UPDATE jobs SET state = ?, attempts = ?, retry_at = NULL, error = ?, finished = ? WHERE uid = ?",
                           (FAILED, attempts, error, now, uid))
                return None
            db.execute("UPDATE jobs SET state = ?, attempts = ?, retry_at = NULL, error = ?, scored = ? WHERE uid = ?",
                       (SCORED, attempts, error, now, uid))
            self._settle(db, uid)
        return None

    def _enter(self, db: sqlite3.Connection, uid: str, results: Mapping[str, Path], missing: Mapping[str, str],
               destinations: Sequence[str]) -> None:
        now = time.time()
        db.executemany("INSERT OR REPLACE INTO results (uid, kind, file, error) VALUES (?, ?, ?, NULL)",
                       [(uid, kind, Path(p).name) for kind, p in results.items()])
        db.executemany(
            "INSERT INTO results (uid, kind, file, error) VALUES (?, ?, NULL, ?) "
            "ON CONFLICT (uid, kind) DO UPDATE SET error = excluded.error WHERE file IS NULL",
            [(uid, kind, why) for kind, why in missing.items()],
        )
        names = dict(db.execute("SELECT kind, file FROM results WHERE uid = ? AND file IS NOT NULL", (uid,)).fetchall())
        db.execute("UPDATE jobs SET results = ? WHERE uid = ?", (json.dumps(names), uid))
        db.executemany("INSERT OR IGNORE INTO deliveries (uid, destination, state, next_try) VALUES (?, ?, ?, ?)",
                       [(uid, d, PENDING, now) for d in destinations])
        if results:  # new results: every destination that took the others is due again
            db.execute("UPDATE deliveries SET state = ?, attempts = 0, next_try = ? WHERE uid = ? AND state != ?",
                       (PENDING, now, uid, PENDING))

    # ------------------------------------------------------------------- sending
    def due(self, now: float | None = None) -> list[Delivery]:
        """The deliveries due, each with the written results its destination has not stored."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT d.uid, d.destination, d.attempts, r.kind, r.file FROM deliveries d JOIN jobs j ON j.uid = d.uid "
                "LEFT JOIN results r ON r.uid = d.uid AND r.file IS NOT NULL AND NOT EXISTS "
                "(SELECT 1 FROM stored s WHERE s.uid = d.uid AND s.destination = d.destination AND s.kind = r.kind) "
                "WHERE d.state = ? AND d.next_try <= ? ORDER BY d.next_try, j.received, d.uid, d.destination, r.kind",
                (PENDING, now),
            ).fetchall()
        out: dict[tuple[str, str], tuple[int, list[str], list[Path]]] = {}
        for uid, dest, attempts, kind, name in rows:
            _, kinds, files = out.setdefault((uid, dest), (attempts, [], []))
            if kind is not None:
                kinds.append(kind)
                files.append(self.result_dir(uid) / name)
        return [Delivery(uid, dest, attempts, tuple(files), tuple(kinds)) for (uid, dest), (attempts, kinds, files) in out.items()]

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

    def delivered_many(self, uids: Sequence[str], destination: str, kinds: Mapping[str, Sequence[str]] | None = None) -> None:
        """Enter the results of ``uids`` as stored at ``destination`` (``kinds``: which ones
        each job's delivery sent, as :meth:`due` gave them; default: every result written), in
        one transaction (one commit, one fsync, for a sending round rather than one per film).
        A delivery is done once every written result is stored there."""
        if not uids:
            return
        now = time.time()
        with self._tx() as db:
            for uid in uids:
                sent = kinds[uid] if kinds is not None else [
                    k for (k,) in db.execute("SELECT kind FROM results WHERE uid = ? AND file IS NOT NULL", (uid,))]
                db.executemany("INSERT OR IGNORE INTO stored (uid, kind, destination, at) VALUES (?, ?, ?, ?)",
                               [(uid, k, destination, now) for k in sent])
                (left,) = db.execute(
                    "SELECT COUNT(*) FROM results r WHERE r.uid = ? AND r.file IS NOT NULL AND NOT EXISTS "
                    "(SELECT 1 FROM stored s WHERE s.uid = r.uid AND s.kind = r.kind AND s.destination = ?)",
                    (uid, destination),
                ).fetchone()
                # a result written while this one was on its way goes next (still pending)
                db.execute(
                    "UPDATE deliveries SET state = ?, delivered = ?, error = NULL, attempts = attempts + 1, next_try = ? "
                    "WHERE uid = ? AND destination = ?",
                    (PENDING if left else DELIVERED, now, now, uid, destination),
                )
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
        """The job's state from its rows: under way while it waits to be scored (again) or a
        delivery is pending; then parked, incomplete (a result missing) or sent."""
        row = db.execute("SELECT state FROM jobs WHERE uid = ?", (uid,)).fetchone()
        if row is None or row[0] in UNSETTLED:
            return
        states = {s for (s,) in db.execute("SELECT state FROM deliveries WHERE uid = ?", (uid,))}
        if PENDING in states:
            state = SCORED
        elif PARKED in states:
            state = PARKED
        elif db.execute("SELECT 1 FROM results WHERE uid = ? AND file IS NULL", (uid,)).fetchone() is not None:
            state = INCOMPLETE
        else:
            state = SENT
        db.execute("UPDATE jobs SET state = ?, finished = ? WHERE uid = ?", (state, None if state == SCORED else time.time(), uid))

    def retry_parked(self) -> int:
        """Give every parked delivery a new round of attempts (after the destination is fixed)."""
        with self._tx() as db:
            n = db.execute(
                "UPDATE deliveries SET state = ?, attempts = 0, next_try = ? WHERE state = ?", (PENDING, time.time(), PARKED)
            ).rowcount
            db.execute("UPDATE jobs SET state = ?, finished = NULL WHERE state = ?", (SCORED, PARKED))
        return n

    def retry_failed(self) -> tuple[int, list[str]]:
        """Score every failed or incomplete job again (the running node takes them within a
        second, or the next start does), writing only the results it lacks. Returns how many,
        and the jobs that cannot be: their film was removed from the spool (send it again)."""
        now = time.time()
        with self._tx() as db:
            rows = db.execute(f"SELECT uid, purged FROM jobs WHERE state IN ({','.join('?' * len(RESCORED))}) ORDER BY received",
                              RESCORED).fetchall()
            gone = [uid for uid, purged in rows if purged is not None or not self.film_path(uid).is_file()]
            again = [uid for uid, _ in rows if uid not in set(gone)]
            for uid in again:
                self._reopen(db, uid, now)
                db.execute("UPDATE jobs SET retry_at = ? WHERE uid = ?", (now, uid))
        return len(again), gone

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

    def missing(self) -> list[Missing]:
        """The results not written of jobs still waiting to write them again, incomplete or
        parked (a failed job's are in its error)."""
        if self.version < 1:
            return []  # a spool the node has not opened since it learnt to keep them
        with self._lock:
            rows = self._db.execute(
                "SELECT r.uid, r.kind, COALESCE(r.error, ''), j.state, j.retry_at FROM results r JOIN jobs j ON j.uid = r.uid "
                "WHERE r.file IS NULL AND j.state != ? ORDER BY j.received, r.kind",
                (FAILED,),
            ).fetchall()
        return [Missing(*row) for row in rows]

    def purge(self, before: float) -> int:
        """Remove the film and result files of jobs sent, incomplete or failed before ``before``
        (a time). Their rows stay, so a film sent again later is known: not scored again when
        its job is complete, scored again (only what is missing) when not. Parked jobs keep
        their files: they are still to be delivered."""
        with self._lock:
            uids = [u for (u,) in self._db.execute(
                f"SELECT uid FROM jobs WHERE state IN ({','.join('?' * len(FINISHED))}) AND finished < ? AND purged IS NULL",
                (*FINISHED, before),
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
