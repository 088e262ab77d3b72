"""Work off the UI thread: a ``QRunnable`` with a separate signals ``QObject``.

As in napari / superqt: :class:`Worker` runs a plain function in a ``QThreadPool`` thread and
reports through :class:`WorkerSignals` (``started``, ``progress(object)``, ``result(object)``,
``error(WorkerError)``, ``finished``). The signals object is created on the UI thread, so slots
of objects living there run on the UI thread (queued connections).

A :class:`~cxrviewer.errors.CxrError` becomes a :class:`WorkerError` carrying ``str(exc)`` for
the user; anything else is a bug: logged with its traceback and reported as such.

The jobs below are plain functions over the headless core: loading a model, reading and scoring
one film, and scoring many films through :func:`cxrviewer.batch.score_to_csv` (the code behind
``cxrviewer score``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PySide6.QtCore import QObject, QRunnable, Signal, Slot

from ..errors import CxrError
from ..io.dicom_header import read_study_facts
from ..types import Film, Prediction
from .state.studies import StudyKey, study_of

logger = logging.getLogger(__name__)

THUMB_SIZE = 96


@dataclass(frozen=True)
class WorkerError:
    """Why a job failed: ``message`` is for the user; ``bug`` is True for non-CxrError exceptions."""

    message: str
    error_type: str
    bug: bool = False

    def __str__(self) -> str:
        return self.message


class WorkerSignals(QObject):
    started = Signal()
    progress = Signal(object)
    result = Signal(object)
    error = Signal(object)  # WorkerError
    finished = Signal()


class Worker(QRunnable):
    """Run ``fn(*args, **kwargs)`` on a pool thread and report through :attr:`signals`.

    With ``reports=True`` the function also gets ``progress=`` (a callable that emits
    ``signals.progress``) and ``cancel=`` (a :class:`threading.Event` set by :meth:`cancel`).
    """

    def __init__(self, fn: Callable[..., Any], *args: Any, reports: bool = False, **kwargs: Any) -> None:
        super().__init__()
        # The pool must not delete the C++ object under Python's feet: its owner keeps a
        # reference until ``finished`` has been delivered, then lets it go.
        self.setAutoDelete(False)
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.signals = WorkerSignals()
        self.cancel_event = threading.Event()
        if reports:
            self.kwargs["progress"] = lambda value: self._emit("progress", value)
            self.kwargs["cancel"] = self.cancel_event

    def cancel(self) -> None:
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def _emit(self, signal: str, *args: Any) -> None:
        try:
            getattr(self.signals, signal).emit(*args)
        except RuntimeError:  # the receiver side is gone (the app is closing): nobody to tell
            logger.debug("%s: %s not delivered, the signals object is gone", self.name, signal)

    @property
    def name(self) -> str:
        return getattr(self.fn, "__name__", repr(self.fn))

    def run(self) -> None:  # noqa: D102 - QRunnable API
        self._emit("started")
        try:
            result = self.fn(*self.args, **self.kwargs)
        except CxrError as exc:
            logger.info("%s failed: %s", self.name, exc)
            self._emit("error", WorkerError(str(exc), type(exc).__name__))
        except BaseException as exc:  # noqa: BLE001 - a bug: keep the app alive, keep the traceback
            logger.exception("unexpected error in %s", self.name)
            self._emit(
                "error",
                WorkerError(
                    f"Unexpected error ({type(exc).__name__}: {exc}). This is a bug; the log has the details.",
                    type(exc).__name__,
                    bug=True,
                ),
            )
        else:
            self._emit("result", result)
        finally:
            self._emit("finished")


class WorkerHandle(QObject):
    """Delivers one worker's signals to plain callbacks, on the UI thread, while its parent lives.

    Connecting a worker's signals straight to lambdas leaves them connected after the window is
    gone (a late result would reach deleted widgets), and which thread runs a lambda has
    changed between PySide6 releases. A handle is a ``QObject`` child of the window: its slots
    run on the UI thread (queued), and Qt disconnects them when the window is destroyed.
    """

    def __init__(
        self,
        parent: QObject,
        worker: Worker,
        *,
        result: Callable[[Any], None] | None = None,
        error: Callable[[WorkerError], None] | None = None,
        progress: Callable[[Any], None] | None = None,
        finished: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.worker = worker
        self._result, self._error, self._progress, self._finished = result, error, progress, finished
        # Qt, not Python's reference count, decides when the signals object goes: with the
        # handle, on the UI thread (a last Python reference dropped on the pool thread would
        # otherwise delete a UI-thread QObject there).
        worker.signals.setParent(self)
        worker.signals.result.connect(self.on_result)
        worker.signals.error.connect(self.on_error)
        worker.signals.progress.connect(self.on_progress)
        worker.signals.finished.connect(self.on_finished)

    @Slot(object)
    def on_result(self, value: Any) -> None:
        if self._result is not None:
            self._result(value)

    @Slot(object)
    def on_error(self, err: WorkerError) -> None:
        if self._error is not None:
            self._error(err)

    @Slot(object)
    def on_progress(self, value: Any) -> None:
        if self._progress is not None:
            self._progress(value)

    @Slot()
    def on_finished(self) -> None:
        try:
            if self._finished is not None:
                self._finished()
        finally:
            self._result = self._error = self._progress = self._finished = None
            self.deleteLater()


# ------------------------------------------------------------------------------ jobs
def make_thumbnail(film: Film, size: int = THUMB_SIZE) -> np.ndarray:
    """A small uint8 grey picture of the film, its longer side ``size`` pixels."""
    h, w = film.height, film.width
    scale = size / max(h, w)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(np.asarray(film.pixels), (tw, th), interpolation=cv2.INTER_AREA)
    return np.clip(np.rint(small * 255.0), 0, 255).astype(np.uint8)


def load_model(path: str | Path, device: str = "auto", backend: str = "onnxruntime", precision: str | None = None):
    """Open a model file (:meth:`cxrviewer.model.Classifier.load`); ``auto`` may measure the engine
    once per model file and machine (seconds, in this worker thread)."""
    from ..model import Classifier

    return Classifier.load(path, device=device, backend=backend, precision=precision)


@dataclass(frozen=True, eq=False)
class FilmJob:
    """A film read (and scored, when a classifier was given) by :func:`read_and_score`."""

    path: Path
    film: Film
    thumbnail: np.ndarray
    prediction: Prediction | None
    read_seconds: float
    infer_seconds: float | None
    generation: int = 0
    #: why the film lies outside the model's use (:mod:`cxrviewer.applicability`): with no
    #: prediction it was not scored; with one it was scored anyway (``score_all``)
    outside_use: str | None = None


def read_and_score(path: Path, classifier=None, generation: int = 0, score_all: bool = False) -> FilmJob:
    """Read ``path`` (:func:`cxrviewer.io.read_film`) and, with a classifier, predict it: a
    film the model does not read (:func:`cxrviewer.applicability.check`) is not scored, unless
    ``score_all`` ("Score anyway")."""
    from ..applicability import check
    from ..io import read_film

    t0 = time.perf_counter()
    film = read_film(path)
    read_seconds = time.perf_counter() - t0
    thumb = make_thumbnail(film)
    prediction, infer_seconds, outside_use = None, None, None
    if classifier is not None:
        verdict = check(film, classifier.info)
        outside_use = verdict.reason or None
        if outside_use is not None and not score_all:
            logger.info("%s is not applicable: %s", Path(path).name, outside_use)
            return FilmJob(Path(path), film, thumb, None, read_seconds, None, generation, outside_use)
        t1 = time.perf_counter()
        prediction = classifier.predict_one(film)
        infer_seconds = time.perf_counter() - t1
        logger.info("%s scored in %.0f ms", Path(path).name, 1000 * infer_seconds)
    return FilmJob(Path(path), film, thumb, prediction, read_seconds, infer_seconds, generation, outside_use)


#: files read as pictures, never as DICOM (cxrviewer.io.files): no study to look for
_NOT_DICOM = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
STUDY_CHUNK_S = 0.25  # the studies found are reported at most this often


def read_studies(paths: Sequence[Path], generation: int = 0, *, progress: Callable[[Any], None],
                 cancel: threading.Event) -> tuple[int, dict[Path, tuple[StudyKey | None, str]]]:
    """Each DICOM film's study and View Position, from its header alone (the film strip groups
    by them): ``(generation, {path: (study, view)})``, reported in chunks through ``progress`` as
    they are found, the last chunk as the result. Files that are not DICOM or whose header cannot
    be read are left out (reading the film says why)."""
    found: dict[Path, tuple[StudyKey | None, str]] = {}
    last = time.monotonic()
    for path in paths:
        if cancel.is_set():
            break
        if path.suffix.lower() in _NOT_DICOM:
            continue
        try:
            facts = read_study_facts(path)
        except CxrError:
            continue
        found[path] = (study_of(facts), facts.get("view_position", ""))
        if time.monotonic() - last > STUDY_CHUNK_S:
            progress((generation, found))
            found, last = {}, time.monotonic()
    return generation, found


@dataclass(frozen=True, eq=False)
class ScoredFilm:
    """One film's outcome in a folder run, without the film's pixels (only a thumbnail)."""

    path: Path
    prediction: Prediction | None
    error: str | None
    error_type: str | None
    seconds: float
    thumbnail: np.ndarray | None
    shape: tuple[int, int] | None
    done: int
    total: int
    generation: int = 0
    #: why the film lies outside the model's use (its header); not scored when ``not_applicable``
    outside_use: str | None = None
    not_applicable: bool = False


def score_folder(
    paths: Sequence[Path],
    classifier,
    out: Path,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    generation: int = 0,
    progress: Callable[[ScoredFilm], None] | None = None,
    cancel: threading.Event | None = None,
):
    """Score ``paths`` into the CSV ``out`` with :func:`cxrviewer.batch.score_to_csv`.

    Reports one :class:`ScoredFilm` per film through ``progress``; the films' pixels are kept
    only long enough to make a thumbnail. Returns the batch :class:`~cxrviewer.batch.Summary`.
    """
    from ..batch import score_to_csv

    def report(result, done: int, total: int) -> None:
        thumb = make_thumbnail(result.film) if result.film is not None else None
        if progress is not None:
            progress(
                ScoredFilm(
                    path=result.path, prediction=result.prediction, error=result.error,
                    error_type=result.error_type, seconds=result.seconds, thumbnail=thumb,
                    shape=result.film_shape, done=done, total=total, generation=generation,
                    outside_use=result.outside_use, not_applicable=result.not_applicable,
                )
            )

    return score_to_csv(
        list(paths), classifier, Path(out), batch_size=batch_size, workers=workers,
        cancel=cancel, progress=report, keep_films=True,
    )


@dataclass(frozen=True, eq=False)
class RenderRequest:
    """One picture to draw: a film, its prediction (or None) and the display options."""

    film: Film
    prediction: Prediction | None
    options: Any  # cxrviewer.render.RenderOptions

    def same(self, other: RenderRequest | None) -> bool:
        return (
            other is not None
            and other.film is self.film
            and other.prediction is self.prediction
            and other.options == self.options
        )


@dataclass(frozen=True, eq=False)
class Rendered:
    request: RenderRequest
    rgb: np.ndarray
    seconds: float


def render_picture(request: RenderRequest) -> Rendered:
    """:func:`cxrviewer.render.picture` for ``request`` (the renderer of ``cxrviewer export``)."""
    from ..render import picture

    t0 = time.perf_counter()
    rgb = picture(request.film, request.prediction, request.options)
    return Rendered(request, rgb, time.perf_counter() - t0)


def export_annotated(path: Path, film: Film, prediction: Prediction, info, options, fmt: str = "png",
                     anonymize: bool = False) -> Path:
    """The exporters of ``cxrviewer export``: :func:`cxrviewer.export.export_png`, or with
    ``fmt="dicom-sc"`` :func:`cxrviewer.dicom.sc.export_dicom_sc`, ``"dicom-sr"`` /
    ``"dicom-gsps"`` :mod:`cxrviewer.dicom` (the regions of the findings shown, as the CLI)."""
    if fmt in ("dicom-sr", "dicom-gsps"):
        from ..dicom import export_dicom_gsps, export_dicom_sr

        export = export_dicom_sr if fmt == "dicom-sr" else export_dicom_gsps
        if fmt == "dicom-sr":  # the reader's measurements too, in the calibration on screen
            return export_dicom_sr(Path(path), film, prediction, info, region_labels=options.classes,
                                   anonymize=anonymize, measurements=options.measurements,
                                   calibration=options.calibration)
        return export(Path(path), film, prediction, info, region_labels=options.classes, anonymize=anonymize)
    if fmt == "dicom-sc":
        from ..dicom.sc import export_dicom_sc

        return export_dicom_sc(Path(path), film, prediction, info, options, anonymize=anonymize)
    from ..export import export_png

    return export_png(Path(path), film, prediction, info, options)
