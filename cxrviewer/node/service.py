"""The node put together: the SCP fills the spool, a worker pool scores, a sender delivers.

Films are scored on the same path as everywhere else (:func:`cxrviewer.io.read_film` →
:class:`cxrviewer.model.Classifier` → the DICOM exports) by ``workers`` workers, so a burst of
films never holds up the SCP: a C-STORE only waits for its film to reach the disk. The workers
are threads of the node (:attr:`NodeConfig.scoring` "threads", on the one loaded model) or
spawned processes (:mod:`cxrviewer.node.workers`, each with its own model), to which a film goes
as its path in the spool: in threads, decoding and building the results take turns on the
interpreter lock with each other and with the SCP's threads; docs/dicom-node.md has the figures.

Stopping (:meth:`Node.stop`, SIGTERM in the CLI): the port closes, associations under way get
``drain_seconds`` to finish, each worker finishes the film in hand, the results scored by then
are sent once more, and the spool is closed. Films not yet scored stay in the spool for the
next start.

Nothing is given up silently: a result that could not be written for want of room (or an I/O
error) is written again later, with backoff (:meth:`Spool.write_failed`), also after a restart,
and a job that failed or ended incomplete is scored again when its film comes again or
``cxrviewer listen --retry-failed`` asks. A retry writes only the results the job lacks, so the
ones delivered keep their SOP Instance UIDs.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import sqlite3
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from pydicom import config as dicom_config

from ..batch import opencv_serial
from ..model import CPU, Classifier
from .config import NodeConfig
from . import workers as worker_processes
from .scp import StorageScp
from .sender import Sender
from .spool import Spool
from .timing import CpuTally

logger = logging.getLogger(__name__)


def _sop_class_of(path: Path) -> str | None:
    from pydicom.filereader import read_file_meta_info

    try:
        return str(read_file_meta_info(path).MediaStorageSOPClassUID)
    except Exception:  # noqa: BLE001 - a damaged film: the reader will say why when it is scored
        return None


class Node:
    """A running DICOM node. ``start()``, then ``stop()``; or ``serve(stop_event)``."""

    def __init__(self, config: NodeConfig, classifier: Classifier, workers: int = 1, drain_seconds: float = 10.0) -> None:
        self.config = config
        self.classifier = classifier
        self.workers = max(1, int(workers))
        self.drain_seconds = drain_seconds
        self.spool = Spool(config.spool)
        self._todo: queue.Queue[str] = queue.Queue()
        self._stop_scoring = threading.Event()
        self._stop_sending = threading.Event()
        self._wake_sender = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pool: ProcessPoolExecutor | None = None
        self._worker_pids: frozenset[int] = frozenset()
        self._pool_lock = threading.Lock()
        #: CPU seconds per stage, over the node's life (bench/bench_node.py prints them per film)
        self.cpu = CpuTally()
        self.scp = StorageScp(config, self.spool, self._todo.put, cpu=self.cpu)
        # while films wait to be scored, a sending round lingers for more results (sender.LINGER)
        self.sender = Sender(self.spool, config, self._wake_sender, cpu=self.cpu,
                             busy=lambda: self._todo.unfinished_tasks > 0)
        self.address: tuple[str, int] | None = None
        self.scored = self.failed = self.not_applicable = 0
        #: jobs whose scoring raised something unexpected (a job table on a full disk): uid →
        #: (when to try again, tries so far), kept here as the table may be what failed
        self._later: dict[str, tuple[float, int]] = {}
        self._later_lock = threading.Lock()
        #: jobs a scoring worker has in hand
        self._in_hand: set[str] = set()

    def start(self) -> tuple[str, int]:
        # pydicom's value-validation warnings quote the value (a patient's name), and the node
        # reads headers in many threads (SCP, workers, sender), not only while results are built
        # (cxrviewer.dicom's shared switch covers those): off for the node's life, restored by
        # stop(). The scoring processes do the same (workers.init).
        self._validation = (dicom_config.settings.reading_validation_mode, dicom_config.settings.writing_validation_mode)
        dicom_config.settings.reading_validation_mode = dicom_config.IGNORE
        dicom_config.settings.writing_validation_mode = dicom_config.IGNORE
        self.spool.acquire()
        recovered = self.spool.recover(_sop_class_of)
        if recovered:
            logger.info("found %d film(s) stored but not yet entered; entered them", recovered)
        waiting = self.spool.take_waiting()
        for uid in waiting:
            self._todo.put(uid)
        if waiting:
            logger.info("resuming %d film(s) received before the last stop", len(waiting))
        if self.config.scoring == "processes":
            self._start_processes()
        # OpenCV serial, as `cxrviewer score` has it: its own thread pool (a film's resize split
        # across the cores) only takes the other workers' cores, and its threads' wake-ups cost
        # the node ~4 ms of CPU a film (bench/bench_node.py)
        self._opencv = contextlib.ExitStack()
        self._opencv.enter_context(opencv_serial(self.workers >= (os.cpu_count() or 1)))
        for n in range(self.workers):
            t = threading.Thread(target=self._work, name=f"cxr-node-score-{n}", daemon=True)
            t.start()
            self._threads.append(t)
        sender = threading.Thread(target=self.sender.run, args=(self._stop_sending,), name="cxr-node-send", daemon=True)
        sender.start()
        self._sender_thread = sender
        keeper = threading.Thread(target=self._housekeeping, name="cxr-node-purge", daemon=True)
        keeper.start()
        retrier = threading.Thread(target=self._retrying, name="cxr-node-retry", daemon=True)
        retrier.start()
        self._threads.append(retrier)
        self.address = self.scp.start()
        return self.address

    def serve(self, stop: threading.Event) -> None:
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def stop(self) -> None:
        logger.info("stopping: no new associations; finishing the films in hand")
        self.scp.stop_listening()
        deadline = time.monotonic() + self.drain_seconds
        while self.scp.active() and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.scp.active():
            logger.warning("aborting %d association(s) still open after %.0f s", self.scp.active(), self.drain_seconds)
        self.scp.abort_all()
        self._stop_scoring.set()
        for t in self._threads:
            t.join()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._stop_sending.set()
        self._wake_sender.set()
        self._sender_thread.join()
        try:
            self.sender.send_due()  # the results scored in the meantime
        except Exception:  # noqa: BLE001 - they stay in the spool for the next start
            logger.exception("last sending round failed")
        self._opencv.close()
        counts = self.spool.counts()
        self.spool.close()
        dicom_config.settings.reading_validation_mode, dicom_config.settings.writing_validation_mode = self._validation
        logger.info("stopped; jobs: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))

    def wait_idle(self, timeout: float) -> bool:
        """True once nothing is waiting to be scored or sent (for tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            c = self.spool.counts()
            if self._todo.unfinished_tasks == 0 and c["received"] == 0 and c["scored"] == 0:
                return True
            time.sleep(0.05)
        return False

    def purge(self) -> int:
        """Remove films and results delivered (or failed) more than ``keep_days`` ago."""
        n = self.spool.purge(time.time() - self.config.keep_days * 86400)
        if n:
            logger.info("removed the files of %d film(s) done more than %g days ago", n, self.config.keep_days)
        return n

    def _housekeeping(self) -> None:
        while not self._stop_sending.is_set():
            try:
                self.purge()
            except OSError as exc:
                logger.warning("could not clean the spool: %s", exc)
            self._stop_sending.wait(600)

    # ------------------------------------------------------------------- scoring
    def _work(self) -> None:
        while not self._stop_scoring.is_set():
            try:
                uid = self._todo.get(timeout=0.2)
            except queue.Empty:
                continue
            with self._later_lock:
                if uid in self._in_hand:  # asked twice (a retry and a resend): once is enough
                    self._todo.task_done()
                    continue
                self._in_hand.add(uid)
            try:
                self._score(uid)
            except Exception as exc:  # noqa: BLE001 - the job stays "received"; tried again later
                with self._later_lock:
                    tries = self._later.get(uid, (0.0, 0))[1] + 1
                    wait = min(self.config.max_retry_delay, self.config.retry_delay * 2 ** (tries - 1))
                    self._later[uid] = (time.monotonic() + wait, tries)
                if isinstance(exc, (OSError, sqlite3.Error)):  # the spool's disk (full, failing)
                    logger.error("instance %s: the spool could not be updated (%s); trying again in %.3g s", uid, exc, wait)
                else:
                    logger.exception("unexpected error scoring instance %s; it stays in the spool, tried again in %.3g s",
                                     uid, wait)
            else:
                with self._later_lock:
                    self._later.pop(uid, None)
            finally:
                with self._later_lock:
                    self._in_hand.discard(uid)
                self._todo.task_done()

    def _retrying(self) -> None:
        """Hand the scoring workers the jobs whose next try has come: those waiting to write
        their results again, those ``--retry-failed`` (another process) made due, and those
        whose scoring raised something unexpected."""
        while not self._stop_scoring.wait(0.25):
            try:
                due = self.spool.take_due()
            except sqlite3.Error as exc:
                logger.debug("could not look for jobs to retry: %s", exc)
                due = []
            now = time.monotonic()
            with self._later_lock:
                due += [uid for uid, (at, _) in self._later.items() if at <= now and uid not in due]
                for uid in due:
                    if uid in self._later:
                        self._later[uid] = (float("inf"), self._later[uid][1])  # in hand: not twice
            for uid in due:
                self._todo.put(uid)

    def _start_processes(self) -> None:
        """A pool of ``workers`` scoring processes, each set up (model loaded) before this returns."""
        clf = self.classifier
        # spawn, not fork: the parent has threads and ONNX Runtime sessions a fork would copy mid-use
        pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=worker_processes.init,
                                   initargs=(os.getpid(), str(clf.path), "cpu" if clf.provider == CPU else "auto", clf.threads,
                                             clf.engine))
        # One task a worker, each waiting a little, so that every process is started (the pool
        # starts one for each task it cannot hand to an idle one) and has loaded its model.
        started = {f.result() for f in [pool.submit(worker_processes.ready, 0.2) for _ in range(self.workers)]}
        logger.info("%d scoring process(es) ready", len(started))
        self._worker_pids = frozenset(started)  # what ready() returned: each worker's pid
        self._pool = pool

    def _score_in_process(self, uid: str, outputs: tuple[str, ...]) -> worker_processes.Scored:
        args = (self.spool.film_path(uid), self.spool.result_dir(uid), outputs, self.config.anonymize,
                self.config.score_all)
        pool = self._pool
        try:
            future = pool.submit(worker_processes.score_film, *args)
        except BrokenProcessPool:
            # a worker died before this film came (killed while idle): new workers take it
            pool = self._restart_processes(pool)
            future = pool.submit(worker_processes.score_film, *args)
        try:
            return future.result()
        except BrokenProcessPool:
            # A worker died under this film (killed, out of memory, a crash in a decoder), or
            # under another film scored at the same time: the film is failed rather than tried
            # again, as it may be what kills them; new workers take the next films.
            self._restart_processes(pool)
            return worker_processes.Scored(failure="the process scoring it died (killed, out of memory, or a crash "
                                           "while decoding it); send it again, or retry the failed films, to score "
                                           "it again")

    def _restart_processes(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """New scoring processes in place of the ``broken`` pool (once, whichever worker thread asks first)."""
        with self._pool_lock:
            if self._pool is broken:
                logger.error("a scoring process died; starting new ones")
                # The pool ends the other workers of a broken pool with SIGTERM, which they ignore
                # (the node's to handle: workers.init), and then waits for them: they are killed
                # here, or that wait (and the interpreter's exit, which joins it) never ends.
                for process in multiprocessing.active_children():  # this process's children only
                    if process.pid in self._worker_pids:
                        with contextlib.suppress(OSError, ValueError):
                            process.kill()
                broken.shutdown(wait=False, cancel_futures=True)
                self._start_processes()
            return self._pool

    def _score(self, uid: str) -> None:
        t0 = time.perf_counter()
        cfg = self.config
        destinations = [str(d) for d in cfg.destinations]
        # only what the job lacks: a result written before (and perhaps delivered) keeps its UIDs
        done = self.spool.written(uid)
        outputs = tuple(kind for kind in cfg.outputs if kind not in done)
        if not outputs:
            self.spool.mark_scored(uid, {}, destinations)
            self._wake_sender.set()
            return
        scored = self._score_here(uid, outputs) if self._pool is None else self._score_in_process(uid, outputs)
        self.cpu.add_all(scored.stages)
        failure, written, errors = scored.failure, scored.written, scored.errors
        if scored.not_applicable is not None:
            # the one place a film the model does not read ends: a final state, nothing sent;
            # the reason names header values (a view, a body part), never the patient
            self.not_applicable += 1
            logger.info("instance %s is not applicable, so no results are sent for it: %s", uid, scored.not_applicable)
            self.spool.mark_not_applicable(uid, scored.not_applicable)
            return
        if failure is not None:
            self.failed += 1
            logger.error("instance %s could not be scored, so no results are sent for it: %s", uid, failure)
            self.spool.mark_failed(uid, failure)
            return
        again = {kind: why for kind, why in errors.items() if kind in scored.retry}
        for kind, why in errors.items():
            if kind not in again:
                logger.error("instance %s: no %s result: %s", uid, kind.upper(), why)
        if again:
            with self.cpu.thread_cpu("job table"):
                wait = self.spool.write_failed(uid, written, destinations, errors, cfg.max_attempts, cfg.retry_delay,
                                               cfg.max_retry_delay)
            kinds = ", ".join(k.upper() for k in again)
            if wait is not None:
                logger.warning("instance %s: %s not written (%s); trying again in %.3g s", uid, kinds, next(iter(again.values())), wait)
            else:
                self.failed += 1
                logger.error("instance %s: %s not written after %d tries (%s); given up: send the film again, or retry the "
                             "failed films, once there is room", uid, kinds, cfg.max_attempts, next(iter(again.values())))
            if written:
                self._wake_sender.set()
            return
        if not written and not done:
            self.failed += 1
            self.spool.mark_failed(uid, "; ".join(errors.values()))
            return
        with self.cpu.thread_cpu("job table"):
            self.spool.mark_scored(uid, written, destinations, error="; ".join(errors.values()) or None, missing=errors)
        self.scored += 1
        self._wake_sender.set()
        logger.info("scored instance %s in %.2f s: %s", uid, time.perf_counter() - t0,
                    ", ".join(scored.positives) or "no finding above threshold")

    def _score_here(self, uid: str, outputs: tuple[str, ...]) -> worker_processes.Scored:
        """:func:`cxrviewer.node.workers.score` in this thread, on the node's model."""
        return worker_processes.score(self.classifier, self.spool.film_path(uid), self.spool.result_dir(uid),
                                      outputs, self.config.anonymize, clock=time.thread_time, prefix="",
                                      score_all=self.config.score_all)
