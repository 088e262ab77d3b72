"""``FilmSession``: the app's one way through a film, without a single widget.

``read_film → Classifier → render / export / results`` as the CLI runs it, off the UI thread:
the session owns the thread pool, the generation counter (late answers for films or a model
that are gone are dropped), the jobs in flight, a small cache of films' pixels, model loading,
reading and scoring one film, folder runs into a CSV, and exports. It writes what it learns
into the :class:`~cxrviewer.ui.state.viewer_model.ViewerModel` (plain Python that the widgets listen
to) and *emits* what happened; it never calls a widget. Each job is a frozen request handed to
a :class:`~cxrviewer.ui.workers.Worker` and a frozen response back, as napari's layer slicer
does; a response from an older generation is stale and ignored.

Signals (all delivered on the UI thread):

- ``filmReady(path)``: the current film's pixels are in the model;
- ``predictionReady(path)``: a film read on its own got its prediction;
- ``filmFailed(path, message)``: a film could not be read or scored;
- ``notApplicable(path, reason)``: the model does not read a film (its DICOM header,
  :mod:`cxrviewer.applicability`): it is not scored unless asked (:meth:`FilmSession.score_anyway`);
- ``scoringStarted(total, csv)``, ``scoringProgress(done, total, name)``,
  ``scoringFinished(summary)`` (a :class:`cxrviewer.batch.Summary`, ``None`` when the run stopped
  on an error), ``scoringEnded()`` once the run is over or dropped (other films, another model);
- ``modelChanged(classifier)``, ``modelFailed(path, message)``;
- ``exported(path)``;
- ``sentToPacs(sent)`` (a :class:`cxrviewer.ui.pacs.Sent`), ``pacsEchoed(ok, message)``;
- ``failed(title, message)``: something the user must be told (a dialog in the window).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QStandardPaths, QThreadPool, Signal

from ..classes import CUSTOM, ClassChoice
from ..errors import CxrError, UnknownClassError
from ..io import SUPPORTED_SUFFIXES, list_films
from ..types import Film
from .state.studies import study_of
from .state.viewer_model import ERROR, NOT_APPLICABLE, QUEUED, READING, SCORED, ViewerModel
from .workers import (
    FilmJob,
    ScoredFilm,
    Worker,
    WorkerError,
    WorkerHandle,
    export_annotated,
    load_model,
    read_and_score,
    read_studies,
    score_folder,
)

logger = logging.getLogger(__name__)

FILM_CACHE = 4  # films' pixels kept for quick back-and-forth; the rest are read again
JOB_THREADS = 4


class FilmSession(QObject):
    filmReady = Signal(str)
    predictionReady = Signal(str)
    filmFailed = Signal(str, str)
    notApplicable = Signal(str, str)
    scoringStarted = Signal(int, str)
    scoringProgress = Signal(int, int, str)
    scoringFinished = Signal(object)
    scoringEnded = Signal()
    modelChanged = Signal(object)
    modelFailed = Signal(str, str)
    exported = Signal(str)
    sentToPacs = Signal(object)
    pacsEchoed = Signal(bool, str)
    failed = Signal(str, str)

    def __init__(
        self,
        model: ViewerModel | None = None,
        *,
        device: str = "auto",
        results_dir: str | Path | None = None,
        parent: QObject | None = None,
        backend: str = "auto",
        precision: str = "auto",
    ) -> None:
        super().__init__(parent)
        self.model = model if model is not None else ViewerModel()
        self.device = device
        #: what runs the model (cxrviewer.inference): auto measures once per model file and machine
        self.backend, self.precision = backend, precision
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(JOB_THREADS)
        self._workers: set[Worker] = set()
        self._generation = 0  # bumped when the films or the model change: late results are dropped
        self._inflight: dict[Path, Worker] = {}
        self._films: OrderedDict[Path, Film] = OrderedDict()
        self._batch: Worker | None = None
        self._batch_pending: tuple[list[Path], Path | None] | None = None
        self._explicit_single = False  # one film opened by name: its failure deserves a dialog
        # what was shown before a single film was opened, put back if that film cannot be read
        self._before_open: tuple[list, int, Path | None, Film | None] | None = None
        self.last_results: Path | None = None
        self._study_scans: list[tuple[int, Worker]] = []  # the headers read for the strip's studies
        self.model.events.current.connect(self._current_changed)

    # ------------------------------------------------------------------ jobs
    def _run(self, fn: Callable[..., Any], *args: Any, reports: bool = False, **callbacks: Any) -> Worker:
        """Start ``fn(*args)`` on the pool; ``callbacks`` (result/error/progress/finished) run on this thread."""
        worker = Worker(fn, *args, reports=reports)
        done = callbacks.pop("finished", None)

        def finished() -> None:
            self._workers.discard(worker)
            if done is not None:
                done()

        worker.handle = WorkerHandle(self, worker, finished=finished, **callbacks)
        self._workers.add(worker)
        self.pool.start(worker)
        return worker

    def shutdown(self, wait_ms: int = 5000) -> None:
        """Cancel every job and wait for the pool (the window is closing)."""
        self._stop_batch()
        for worker in list(self._workers):
            worker.cancel()
        self.pool.waitForDone(wait_ms)

    # --------------------------------------------------------------- opening
    def open(self, paths: Sequence[Path], recursive: bool = False) -> list[Path]:
        """Open files and folders: the films found (none: ``failed`` says why). Several films
        are scored in the background into a CSV."""
        try:
            films = list_films([Path(p) for p in paths], recursive=recursive)
        except CxrError as exc:
            self.failed.emit("Cannot open", str(exc))
            return []
        if not films:
            where = ", ".join(Path(p).name or str(p) for p in paths)
            self.failed.emit("No films", f"No films found in {where} (looked for {' '.join(SUPPORTED_SUFFIXES)} and DICOM files).")
            return []
        entry = self.model.entry
        self._explicit_single = len(films) == 1
        if self.model.entries:
            # Open adds to the worklist (a second folder, one more film); File ▸ Close all clears it
            self._before_open = None
            if len(films) == 1 and entry is not None and entry.status != ERROR and self.model.index_of(films[0]) < 0:
                self._before_open = (films[0], entry.path)  # a film that cannot be read leaves again
            added = self.model.add_paths(films)
            self._read_studies(added)
            self.model.set_current(self.model.index_of(films[0]))
            if len(added) > 1:
                self.score(added)
            return films
        self._stop_batch()
        self._before_open = None
        self._generation += 1
        self._inflight.clear()
        self._films.clear()
        self.model.set_paths(films)
        self._read_studies(films)
        self.model.set_current(0)
        if len(films) > 1:
            self.score(films)
        return films

    def _read_studies(self, paths: Sequence[Path]) -> None:
        """Read the DICOM films' headers in the background for their studies (the strip groups
        films by study, :mod:`cxrviewer.ui.state.studies`)."""
        if not paths:
            return
        generation = self._generation

        def found(chunk: tuple[int, dict]) -> None:
            if chunk[0] == self._generation:
                self.model.set_studies(chunk[1])

        for gen, worker in self._study_scans:
            if gen != generation:
                worker.cancel()  # the films it reads are gone
        self._study_scans = [(g, w) for g, w in self._study_scans if g == generation and w in self._workers]
        self._study_scans.append((generation, self._run(read_studies, list(paths), generation, reports=True,
                                                        progress=found, result=found)))

    def close_all(self) -> None:
        """Empty the worklist (File ▸ Close all): stops a folder run, forgets the films."""
        self._stop_batch()
        self._before_open = None
        self._generation += 1
        for _gen, worker in self._study_scans:
            worker.cancel()
        self._study_scans.clear()
        for worker in list(self._inflight.values()):
            worker.cancel()
        self._inflight.clear()
        self._films.clear()
        self.last_results = None
        self.model.set_paths([])

    def _current_changed(self, _index: int) -> None:
        self._drop_stale_reads()
        self.ensure_current()

    def _drop_stale_reads(self) -> None:
        """Take back the reads of films no longer shown that have not started (PgDown held
        down queues one per film): the film now shown must not wait behind them."""
        entry = self.model.entry
        for path, worker in list(self._inflight.items()):
            if (entry is None or path != entry.path) and self.pool.tryTake(worker):
                del self._inflight[path]
                self._workers.discard(worker)
                worker.handle.deleteLater()
                index = self.model.index_of(path)
                if index >= 0 and self.model.entries[index].status == READING:
                    self.model.update_entry(index, status=QUEUED)

    def ensure_current(self) -> None:
        """Start whatever the current film still needs: its pixels, its prediction."""
        entry = self.model.entry
        if entry is None or entry.status == ERROR:
            return  # an unreadable film is not tried again until it is opened again
        film = self._films.get(entry.path)
        if film is not None:
            self._films.move_to_end(entry.path)
            if self.model.film is not film:
                self.model.set_film(film)
                self.filmReady.emit(str(entry.path))
        clf = self.model.classifier
        # a film the model does not read is not scored again until asked (score_anyway)
        needs_prediction = entry.prediction is None and clf is not None and entry.status != NOT_APPLICABLE
        if not (film is None or needs_prediction) or entry.path in self._inflight:
            return
        path, generation = entry.path, self._generation
        self._inflight[path] = self._run(
            read_and_score, path, clf if needs_prediction else None, generation,
            result=self._film_read,
            error=lambda err: self._film_failed(path, generation, err),
            finished=lambda: self._film_job_finished(path),
        )
        if needs_prediction and entry.status == QUEUED:
            self.model.update_entry(self.model.current, status=READING)

    def _film_read(self, job: FilmJob) -> None:
        if job.generation != self._generation:
            return  # stale: the films or the model changed meanwhile
        self._films[job.path] = job.film
        self._films.move_to_end(job.path)
        while len(self._films) > FILM_CACHE:
            self._films.popitem(last=False)
        index = self.model.index_of(job.path)
        if index < 0:
            return
        entry = self.model.entries[index]
        study = study_of(job.film.metadata)
        if study is not None:
            self.model.set_studies({job.path: (study, str(job.film.metadata.get("view_position", "")))})
        changes: dict = {"thumbnail": job.thumbnail, "shape": (job.film.height, job.film.width)}
        scored = job.prediction is not None and entry.prediction is None
        not_applicable = job.prediction is None and job.outside_use is not None
        if scored:
            changes.update(prediction=job.prediction, status=SCORED, seconds=job.infer_seconds, batch=False, error=None,
                           outside_use=job.outside_use)
        elif not_applicable:
            changes.update(status=NOT_APPLICABLE, outside_use=job.outside_use, error=None)
        elif entry.status == READING:
            changes["status"] = QUEUED
        self.model.update_entry(index, **changes)
        if index == self.model.current:
            self.model.set_film(job.film)
            self.filmReady.emit(str(job.path))
        if scored:
            self.predictionReady.emit(str(job.path))
        elif not_applicable:
            self.notApplicable.emit(str(job.path), job.outside_use)

    def score_anyway(self) -> bool:
        """Score the current film although the model does not read such films ("Score anyway":
        ``score_all``); its findings come marked as outside the model's use. False when the
        current film is not one the model refused."""
        entry, clf = self.model.entry, self.model.classifier
        if entry is None or clf is None or entry.status != NOT_APPLICABLE or entry.path in self._inflight:
            return False
        path, generation = entry.path, self._generation
        self._inflight[path] = self._run(
            read_and_score, path, clf, generation, True,
            result=self._film_read,
            error=lambda err: self._film_failed(path, generation, err),
            finished=lambda: self._film_job_finished(path),
        )
        self.model.update_entry(self.model.current, status=READING)
        return True

    def _film_failed(self, path: Path, generation: int, err: WorkerError) -> None:
        if generation != self._generation:
            return
        index = self.model.index_of(path)
        if index < 0:
            return
        before, self._before_open = self._before_open, None
        if self._explicit_single and before is not None and before[0] == path:
            # one film opened by name could not be read: keep what was on screen, say why once
            self.model.remove_path(path)
            self.model.set_current(self.model.index_of(before[1]))
            self.failed.emit(f"Cannot open {path.name}", err.message)
            return
        self.model.update_entry(index, status=ERROR, error=err.message)
        if index == self.model.current:
            self.model.set_film(None)
        self.filmFailed.emit(str(path), err.message)
        if index == self.model.current and (self._explicit_single or err.bug):
            self.failed.emit(f"Cannot open {path.name}", err.message)

    def _film_job_finished(self, path: Path) -> None:
        self._inflight.pop(path, None)
        entry = self.model.entry
        if entry is not None and entry.path == path:
            self.ensure_current()  # the current film may still need something (a model arrived)

    # ----------------------------------------------------------------- model
    def load_model(self, path: str | Path) -> None:
        """Load a model in the background; on success every film is scored again with it."""
        path = Path(path)
        self._run(
            load_model, path, self.device, self.backend, self.precision,
            result=self._model_loaded,
            error=lambda err: self.modelFailed.emit(str(path), err.message),
        )

    def _model_loaded(self, clf) -> None:
        self._stop_batch()
        self._generation += 1
        self._inflight.clear()
        self.model.set_classifier(clf)
        self._check_class_names(clf.info.labels)
        self.modelChanged.emit(clf)
        pending, self._batch_pending = self._batch_pending, None
        if pending is not None:
            self.score(*pending)
        elif len(self.model.entries) > 1:
            self.score([e.path for e in self.model.entries])
        self.ensure_current()

    def _check_class_names(self, labels: Sequence[str]) -> None:
        """A pick of findings by name (``--classes``, or saved from another model) that this
        model lacks is said once, and the heatmaps fall back to the positive findings."""
        display = self.model.display
        if display.policy != CUSTOM:
            return
        try:
            names = ClassChoice(CUSTOM, display.custom).check(labels).names
        except UnknownClassError as exc:
            self.model.set_display(policy="positives", custom=())
            self.failed.emit("Unknown finding", str(exc))
            return
        self.model.set_display(custom=names)

    # ----------------------------------------------------------- folder runs
    def default_results_path(self, films: Sequence[Path]) -> Path:
        base = self.results_dir
        if base is None:
            base = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)) / "results"
        parent = Path(films[0]).parent.name or "films"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = base / f"{parent}-{stamp}.csv"
        n = 1
        while path.exists():
            n += 1
            path = base / f"{parent}-{stamp}-{n}.csv"
        return path

    @property
    def scoring(self) -> bool:
        return self._batch is not None

    def score(self, paths: Sequence[Path], out: Path | None = None) -> None:
        """Score ``paths`` into ``out`` (default: a new CSV under the results folder), in the
        background (:func:`cxrviewer.batch.score_to_csv`, the code behind ``cxrviewer score``)."""
        clf = self.model.classifier
        if clf is None:
            self._batch_pending = (list(paths), out)  # starts when a model arrives
            return
        self._batch_pending = None
        self._stop_batch()
        out = Path(out) if out is not None else self.default_results_path(list(paths))
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.failed.emit("Cannot write the results", f"Cannot create {out.parent}: {exc.strerror or exc}.")
            return
        generation = self._generation
        worker = self._batch = Worker(score_folder, list(paths), clf, out, generation=generation, reports=True)
        WorkerHandle(
            self, worker,
            progress=self._scored,
            result=lambda summary: self._batch_done(worker, summary, out),
            error=lambda err: self._batch_failed(worker, err),
            finished=lambda: self._batch_finished(worker),
        )
        self._workers.add(worker)
        self.last_results = out
        logger.info("scoring %d films into %s", len(paths), out)
        self.scoringStarted.emit(len(paths), str(out))
        self.pool.start(worker)

    def cancel_scoring(self) -> None:
        """Stop the folder run after the films in hand (its CSV keeps every row written)."""
        if self._batch is not None:
            self._batch.cancel()

    def _stop_batch(self) -> None:
        """Drop the folder run: its results no longer belong to what is open."""
        if self._batch is not None:
            self._batch.cancel()
            self._batch = None
            self.scoringEnded.emit()

    def _scored(self, sf: ScoredFilm) -> None:
        if sf.generation != self._generation or self._batch is None:
            return
        self.scoringProgress.emit(sf.done, sf.total, sf.path.name)
        index = self.model.index_of(sf.path)
        if index < 0:
            return
        entry = self.model.entries[index]
        changes: dict = {}
        if sf.thumbnail is not None:
            changes["thumbnail"] = sf.thumbnail
        if sf.prediction is not None:
            if entry.prediction is None:
                changes.update(prediction=sf.prediction, seconds=sf.seconds, batch=True, shape=sf.shape,
                               outside_use=sf.outside_use)
            changes.update(status=SCORED, error=None)
        elif sf.not_applicable:
            if entry.prediction is None:  # not a film scored anyway meanwhile
                changes.update(status=NOT_APPLICABLE, outside_use=sf.outside_use, error=None, shape=sf.shape)
        else:
            changes.update(status=ERROR, error=sf.error)
        self.model.update_entry(index, **changes)
        if sf.not_applicable:
            self.notApplicable.emit(str(sf.path), sf.outside_use or "")
        elif sf.prediction is None:
            self.filmFailed.emit(str(sf.path), sf.error or "")

    def _batch_done(self, worker: Worker, summary, out: Path) -> None:
        if worker is self._batch:
            logger.info("%s → %s", summary.line(), out)
            self.scoringFinished.emit(summary)

    def _batch_failed(self, worker: Worker, err: WorkerError) -> None:
        if worker is self._batch:
            self.failed.emit("Scoring stopped", err.message)
            self.scoringFinished.emit(None)

    def _batch_finished(self, worker: Worker) -> None:
        self._workers.discard(worker)
        if worker is not self._batch:
            return
        self._batch = None
        # films the run did not reach (cancelled) are scored one by one when shown
        for i, e in enumerate(self.model.entries):
            if e.status == READING and e.path not in self._inflight:
                self.model.update_entry(i, status=QUEUED)
        self.scoringEnded.emit()

    # ---------------------------------------------------------------- export
    def export(self, path: Path, fmt: str = "png", anonymize: bool = False) -> bool:
        """The current film as shown: an annotated PNG, a DICOM Secondary Capture, or (for a
        DICOM film) a DICOM Structured Report or Presentation State of the findings shown,
        written off the UI thread (``exported`` or ``failed`` follows). False when there is
        nothing to export, or the film cannot have that format (``failed`` says why)."""
        from .state.export_choice import unavailable_reason

        film, pred, clf = self.model.film, self.model.prediction, self.model.classifier
        if film is None or pred is None or clf is None:
            self.failed.emit("Nothing to export", self._no_findings_why())
            return False
        why = unavailable_reason(fmt, film)
        if why is not None:
            self.failed.emit("Export not possible", why)
            return False
        self._run(
            export_annotated, Path(path), film, pred, clf.info, self.model.render_options(), fmt, anonymize,
            result=lambda out: self.exported.emit(str(out)),
            error=lambda err: self.failed.emit("Export failed", err.message),
        )
        return True

    def _no_findings_why(self) -> str:
        entry = self.model.entry
        if entry is not None and entry.status == NOT_APPLICABLE and entry.outside_use:
            return (f"This film was not scored: {entry.outside_use}. Use \"Score anyway\" in the findings panel "
                    "to score it outside the model's use.")
        return "Open a film and wait for its findings first."

    # ------------------------------------------------------------------ PACS
    def send_to_pacs(self, target) -> bool:
        """Build ``target.outputs`` (SR, GSPS, SC) of the current DICOM film and C-STORE them to
        ``target`` off the UI thread (``sentToPacs`` or ``failed`` follows). False when there is
        nothing to send or the film is not DICOM (``failed`` says why)."""
        from .pacs import send_reason, send_results

        film, pred, clf = self.model.film, self.model.prediction, self.model.classifier
        why = send_reason(film, pred)
        if why is not None or clf is None:
            self.failed.emit("Nothing to send", self._no_findings_why() if pred is None else why or
                             "Open a film and wait for its findings first.")
            return False
        self._run(
            send_results, target, film, pred, clf.info, self.model.render_options(),
            result=self.sentToPacs.emit,
            error=lambda err: self.failed.emit("Not sent to the PACS", err.message),
        )
        return True

    def echo_pacs(self, target) -> None:
        """C-ECHO ``target`` off the UI thread; ``pacsEchoed(ok, message)`` follows."""
        from .pacs import echo

        self._run(
            echo, target,
            result=lambda message: self.pacsEchoed.emit(True, message),
            error=lambda err: self.pacsEchoed.emit(False, err.message),
        )
