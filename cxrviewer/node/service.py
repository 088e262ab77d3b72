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
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
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
from .spool import RECEIVED, Spool
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
        self._processes: ProcessPoolExecutor | None = None
        self._processes_lock = threading.Lock()
        #: CPU seconds per stage, over the node's life (bench/bench_node.py prints them per film)
        self.cpu = CpuTally()
        self.scp = StorageScp(config, self.spool, self._todo.put, cpu=self.cpu)
        # while films wait to be scored, a sending round lingers for more results (sender.LINGER)
        self.sender = Sender(self.spool, config, self._wake_sender, cpu=self.cpu,
                             busy=lambda: self._todo.unfinished_tasks > 0)
        self.address: tuple[str, int] | None = None
        self.scored = self.failed = 0

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
        waiting = self.spool.jobs(RECEIVED)
        for job in waiting:
            self._todo.put(job.uid)
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
        if self._processes is not None:
            self._processes.shutdown(wait=True)
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
            try:
                self._score(uid)
            except Exception:  # noqa: BLE001 - a bug: the job stays "received" for the next start
                logger.exception("unexpected error scoring instance %s; it stays in the spool", uid)
            finally:
                self._todo.task_done()

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
        self._processes = pool

    def _score_in_process(self, uid: str) -> worker_processes.Scored:
        args = (self.spool.film_path(uid), self.spool.result_dir(uid), self.config.outputs, self.config.anonymize)
        pool = self._processes
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
                                           "while decoding it); send it again to retry")

    def _restart_processes(self, broken: ProcessPoolExecutor) -> ProcessPoolExecutor:
        """New scoring processes in place of the ``broken`` pool (once, whichever worker thread asks first)."""
        with self._processes_lock:
            if self._processes is broken:
                logger.error("a scoring process died; starting new ones")
                # The pool ends the other workers of a broken pool with SIGTERM, which they ignore
                # (the node's to handle: workers.init), and then waits for them: they are killed
                # here, or that wait (and the interpreter's exit, which joins it) never ends.
                for process in list((getattr(broken, "_processes", None) or {}).values()):
                    with contextlib.suppress(OSError, ValueError, AttributeError):
                        process.kill()
                broken.shutdown(wait=False, cancel_futures=True)
                self._start_processes()
            return self._processes

    def _score(self, uid: str) -> None:
        t0 = time.perf_counter()
        scored = self._score_here(uid) if self._processes is None else self._score_in_process(uid)
        self.cpu.add_all(scored.stages)
        failure, written, errors = scored.failure, scored.written, scored.errors
        if failure is not None:
            self.failed += 1
            logger.error("instance %s could not be scored, so no results are sent for it: %s", uid, failure)
            self.spool.mark_failed(uid, failure)
            return
        for kind, why in errors.items():
            logger.error("instance %s: no %s result: %s", uid, kind.upper(), why)
        if not written:
            self.failed += 1
            self.spool.mark_failed(uid, "; ".join(errors.values()))
            return
        with self.cpu.thread_cpu("job table"):
            self.spool.mark_scored(uid, written, [str(d) for d in self.config.destinations],
                                   error="; ".join(errors.values()) or None)
        self.scored += 1
        self._wake_sender.set()
        logger.info("scored instance %s in %.2f s: %s", uid, time.perf_counter() - t0,
                    ", ".join(scored.positives) or "no finding above threshold")

    def _score_here(self, uid: str) -> worker_processes.Scored:
        """:func:`cxrviewer.node.workers.score` in this thread, on the node's model."""
        return worker_processes.score(self.classifier, self.spool.film_path(uid), self.spool.result_dir(uid),
                                      self.config.outputs, self.config.anonymize, clock=time.thread_time, prefix="")
