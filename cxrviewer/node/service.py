"""The node put together: the SCP fills the spool, a worker pool scores, a sender delivers.

Films are scored on the same path as everywhere else (:func:`cxrviewer.io.read_film` →
:class:`cxrviewer.model.Classifier` → the DICOM exports), by ``workers`` threads, so a burst of
films never holds up the SCP: a C-STORE only waits for its film to reach the disk. The result
objects are built where :attr:`NodeConfig.builders` says: in the scoring thread itself
("threads"), or in as many spawned worker processes ("processes"), which keep highdicom's pure
Python off the node's interpreter lock at the price of shipping each film there. When an SR took
~0.3 s of pure Python, building it in a thread held the lock so long that the SCP's own threads
answered C-STOREs after the senders' 30 s timeout; docs/dicom-node.md has today's figures for
both. Decoding and inference release the lock and stay in threads, on the one loaded model.

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
import signal
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pydicom import config as dicom_config

from ..batch import opencv_serial
from ..errors import CxrError
from ..io import read_film
from ..model import Classifier
from .config import NodeConfig
from .outputs import film_parcel, to_parcel, use_model, write_parcels, write_results
from .scp import StorageScp
from .sender import Sender
from .spool import RECEIVED, Spool
from .timing import CpuTally

logger = logging.getLogger(__name__)


def _builder_init(parent: int, info) -> None:
    """A result-building process: the node's signals are the parent's to handle (systemd sends
    SIGTERM to the whole group; the parent then lets the films in hand finish), and the values
    highdicom and pydicom would quote in warnings (a patient's name) are not checked here.
    ``info``: the model's, as a parcel, shipped once per process rather than with each film."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"highdicom(\.|$)")
    use_model(info)
    dicom_config.settings.reading_validation_mode = dicom_config.IGNORE
    dicom_config.settings.writing_validation_mode = dicom_config.IGNORE
    # A node killed with SIGKILL cannot stop its pool, and a spawned child holds both ends of
    # the pool's call queue, so it would wait for work forever: it leaves when its parent does.
    # (``parent`` comes from the parent: it may have died before this process got here)
    threading.Thread(target=_leave_with, args=(parent,), name="cxr-node-orphan-watch", daemon=True).start()


def _leave_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


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
        self._builders: ProcessPoolExecutor | None = None
        if config.builders == "processes":
            # spawn, not fork: the parent has threads and ONNX Runtime sessions a fork would copy mid-use
            self._builders = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                 initializer=_builder_init, initargs=(os.getpid(), to_parcel(classifier.info)))
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
        # stop(). The result builders do the same (_builder_init).
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
        if self._builders is not None:
            self._builders.shutdown(wait=True)
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

    def _build(self, uid: str, film, prediction) -> tuple[dict[str, Path], dict[str, str]]:
        """Write ``uid``'s result objects into the spool, in this thread or in a builder process."""
        folder, outputs, anonymize = self.spool.result_dir(uid), self.config.outputs, self.config.anonymize
        if self._builders is None:
            cpu: dict[str, float] = {}
            written, errors = write_results(folder, film, prediction, self.classifier.info, outputs,
                                            anonymize=anonymize, cpu=cpu)
            self.cpu.add_all(cpu)
            return written, errors
        with self.cpu.thread_cpu("parcel"):
            parcels = film_parcel(film, outputs), to_parcel(prediction)
        written, errors, cpu = self._builders.submit(write_parcels, folder, *parcels, outputs, anonymize=anonymize).result()
        self.cpu.add_all(cpu)
        return written, errors

    def _score(self, uid: str) -> None:
        t0 = time.perf_counter()
        path = self.spool.film_path(uid)
        clf = self.classifier
        try:
            with self.cpu.thread_cpu("read"):
                film = read_film(path)
            with self.cpu.thread_cpu("infer"):
                prediction = clf.predict_one(film)
        except CxrError as exc:
            self.failed += 1
            logger.error("instance %s could not be scored, so no results are sent for it: %s", uid, exc)
            self.spool.mark_failed(uid, str(exc))
            return
        written, errors = self._build(uid, film, prediction)
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
                    ", ".join(prediction.positives) or "no finding above threshold")
