"""Scoring in worker processes: each film read, scored and its results written in a process of its own.

With ``NodeConfig.scoring == "processes"`` the node runs its ``workers`` as spawned processes,
each with its own model session and its own interpreter lock. A film then goes there as its
path in the spool, and only the names of the files written, the errors and the CPU figures come
back: nothing is pickled but a few strings. The work is :func:`score_film`, the same path as
everywhere else (``read_film → Classifier.predict_one → write_results``).

Why: in threads, decoding (pylibjpeg's JPEG 2000 decoder holds the lock ~120 ms a film) and
building the SR and the Presentation State (pure Python) take turns on one lock, so the two cores
stood ~10 % idle while films waited; the SCP's and the sender's threads wait for it too. In
processes nothing is shared but the spool's files (docs/dicom-node.md has the figures).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

# Imported with this module, so a worker process has them (highdicom, the decoders) before its
# first film: their cost is its start-up.
from .. import applicability
from ..errors import CxrError
from ..io import read_film
from .outputs import write_results

logger = logging.getLogger(__name__)

#: The model a worker process scores with, loaded once by :func:`init`.
_classifier = None
#: the CPU seconds the process took to get ready (interpreter, imports, model), reported with its first film
_startup_cpu: float | None = None


@dataclass(frozen=True)
class Scored:
    """What scoring one film gave: sent back by a worker process, or made in a scoring thread."""

    #: result kind → file written (in the spool's result folder)
    written: dict[str, Path] = field(default_factory=dict)
    #: result kind → why it could not be made
    errors: dict[str, str] = field(default_factory=dict)
    #: why the film could not be scored at all (unreadable, no valid output), else None
    failure: str | None = None
    #: the findings above threshold, for the node's log line
    positives: tuple[str, ...] = ()
    #: the kinds of ``errors`` that could not be written for the disk's sake (no room, an I/O
    #: error): written again later, unlike a result that cannot be built
    retry: tuple[str, ...] = ()
    #: CPU seconds by stage in a worker process (``"worker: read"``, ...; :mod:`cxrviewer.node.timing`;
    #: a scoring thread tallies its own as it goes)
    stages: dict[str, float] = field(default_factory=dict)
    #: why the model does not read the film (its header: cxrviewer.applicability), when it was
    #: not scored for that; else None
    not_applicable: str | None = None


def init(parent: int, model: str, device: str, threads: int, engine=None) -> None:
    """A worker process: the node's signals are the parent's to handle (systemd sends SIGTERM to
    the whole group; the parent then lets the films in hand finish), OpenCV serial as in the
    batch path (one film a core already), and the model loaded once. The values pydicom and
    highdicom would quote in warnings (a patient's name) are not checked here."""
    global _classifier, _startup_cpu
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # A node killed with SIGKILL cannot stop its pool, and a spawned child holds both ends of the
    # pool's call queue, so it would wait for work forever: it leaves when its parent does.
    # (``parent`` comes from the parent: it may have died before this process got here)
    threading.Thread(target=_leave_with, args=(parent,), name="cxr-node-orphan-watch", daemon=True).start()
    warnings.filterwarnings("ignore", category=UserWarning, module=r"highdicom(\.|$)")
    import cv2
    from pydicom import config as dicom_config

    from ..model import Classifier

    cv2.setNumThreads(1)
    dicom_config.settings.reading_validation_mode = dicom_config.IGNORE
    dicom_config.settings.writing_validation_mode = dicom_config.IGNORE
    # the parent checked the model's outputs when it loaded the same file, and chose the engine
    # (backend and precision) its scoring threads would use: the same one here
    _classifier = Classifier.load(model, device=device, threads=threads, check_outputs=False, engine=engine)
    _startup_cpu = time.process_time()
    logger.info("scoring process %d ready on %s", os.getpid(), _classifier.engine)


def loaded_engine():
    """The engine this worker process scores on (:attr:`cxrviewer.model.Classifier.engine`)."""
    if _classifier is None:
        raise RuntimeError("not a scoring process: call init() first")
    return _classifier.engine


def _leave_with(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def ready(pause: float = 0.0) -> int:
    """A task that returns, ``pause`` seconds after this worker process is set up, its pid: the
    node starts its workers before it takes films, so that the first films do not wait for a
    model to load (the pause keeps one process from taking every such task)."""
    time.sleep(pause)
    return os.getpid()


def score(classifier, path: Path, folder: Path, outputs: tuple[str, ...], anonymize: bool, *,
          clock=time.process_time, prefix: str = "worker: ", score_all: bool = False) -> Scored:
    """The node's work on one film, in a scoring thread or a worker process alike: read the film
    at ``path``, score it with ``classifier`` and write its results into ``folder``. A film the
    model does not read (:func:`cxrviewer.applicability.check`) is not scored and gets no results
    (``Scored.not_applicable``), unless ``score_all``. Each stage's CPU seconds on ``clock`` (a
    thread's own clock in a thread), named with ``prefix``."""
    stages: dict[str, float] = {}
    try:
        start = clock()
        film = read_film(path)
        stages[f"{prefix}read"] = (mid := clock()) - start
        verdict = applicability.check(film, classifier.info)
        if not verdict.applicable and not score_all:
            return Scored(not_applicable=verdict.reason, stages=stages)
        prediction = classifier.predict_one(film)
        stages[f"{prefix}infer"] = clock() - mid
    except CxrError as exc:
        return Scored(failure=str(exc), stages=stages)
    cpu: dict[str, float] = {}  # on the thread's clock: this thread writes them
    retry: set[str] = set()
    written, errors = write_results(folder, film, prediction, classifier.info, outputs, anonymize=anonymize, cpu=cpu,
                                    retry=retry)
    stages.update({f"{prefix}{k}": v for k, v in cpu.items()})
    return Scored(written, errors, None, tuple(prediction.positives), tuple(sorted(retry)), stages)


def score_film(path: Path, folder: Path, outputs: tuple[str, ...], anonymize: bool, score_all: bool = False) -> Scored:
    """:func:`score` in a worker process set up by :func:`init`, on its model; its start-up
    reported with its first film."""
    global _startup_cpu
    if _classifier is None:
        raise RuntimeError("score_film runs in a worker process set up by init()")
    scored = score(_classifier, path, folder, outputs, anonymize, score_all=score_all)
    if _startup_cpu is not None:
        scored.stages["worker: start-up (once a process)"], _startup_cpu = _startup_cpu, None
    return scored
