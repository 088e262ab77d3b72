"""Scoring many films: a bounded decode → preprocess → infer pipeline, and :func:`score_to_csv`.

Worker threads (one per core by default) each read, preprocess and score a batch of films on a
one-thread model session; OpenCV, the DICOM codecs and ONNX Runtime release the GIL, so one
worker's decoding overlaps another's inference and the cores stay busy. Results come back in
input order. :func:`score_to_csv` writes them to a results file (:mod:`cxrviewer.results`) in
groups (:data:`CSV_ROWS_PER_WRITE`, or a batch), flushed and fsync'ed, so a killed run loses at
most the group in flight, and a rerun with the same output skips the files already scored in it
(matched by path, size and modification time, taken when each film was read).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import logging
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from . import applicability
from .classes import ClassChoice
from .errors import CxrError, DicomResultsIncomplete, FileChangedError
from .export import export_png
from .storage import check_writable_dir, join, upload_file, url_exists
from .heatmap import DEFAULT_COLORMAP
from .io import is_url, read_film, read_url
from .model import CPU, CUDA, Classifier, choose_providers
from .preprocess import preprocess
from .render import DEFAULT_ALPHA, RenderOptions, select_classes
from .results import (  # noqa: F401 - the CSV names, importable from here as before
    CSV_ROWS_PER_WRITE,
    FIXED_HEAD,
    FIXED_TAIL,
    FileKey,
    ResultsCsv,
    ResultsDir,
    Summary,
    csv_columns,
    file_key,
    is_results_dir,
    open_results,
    refuse_inputs_as_output,
    regions_cell,
    result_row,
    safe_file_stem,
)
from .types import Film, ModelInfo, Prediction

if TYPE_CHECKING:  # the DICOM writers (pydicom, highdicom) load only when a run writes DICOM results
    from .dicom.folder import DicomResultsFolder, DicomUids

logger = logging.getLogger(__name__)

Cancel = Callable[[], bool] | threading.Event | None
Progress = Callable[["ScoreResult", int, int], None] | None


#: The ``error_type`` of a film the model does not read (:mod:`cxrviewer.applicability`)
NOT_APPLICABLE_TYPE = "NotApplicable"


@dataclass(frozen=True, eq=False)
class ScoreResult:
    """One film's outcome: a prediction, or the reason it could not be scored.

    A film outside the model's use (:func:`cxrviewer.applicability.check`) has ``outside_use``,
    the reason: not scored (``status`` ``not_applicable``, the reason in ``error`` too), or, when
    the run scores every film (``score_all``), scored with the reason kept beside its prediction.
    """

    path: Path | str  # a URL (an object in a store) stays a str
    prediction: Prediction | None = None
    film: Film | None = None
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0
    film_shape: tuple[int, int] | None = None
    #: (absolute path, size, mtime in ns) of the file as it was when it was read
    key: FileKey | None = None
    #: why the film lies outside the model's use (its header), else None
    outside_use: str | None = None

    @property
    def ok(self) -> bool:
        return self.prediction is not None

    @property
    def not_applicable(self) -> bool:
        """Not scored because the model does not read such films: not a failure."""
        return self.prediction is None and self.error_type == NOT_APPLICABLE_TYPE

    @property
    def status(self) -> str:
        """The row's status: ``ok``, ``not_applicable`` or ``error``."""
        return "ok" if self.ok else applicability.NOT_APPLICABLE if self.not_applicable else "error"


def is_cancelled(cancel: Cancel) -> bool:
    """Whether ``cancel`` (an event, a callable or None) says to stop."""
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


@dataclass(frozen=True, eq=False)
class _Loaded:
    """A film read and preprocessed by a worker thread, or why it could not be."""

    path: Path | str
    film: Film | None
    x: np.ndarray | None
    shape: tuple[int, int] | None
    error: str | None
    error_type: str | None
    seconds: float
    key: FileKey | None = None
    outside_use: str | None = None


def film_path(item: str | os.PathLike[str]) -> Path | str:
    """An input as the batch carries it: a URL stays a str, anything else becomes a Path."""
    return item if is_url(item) else Path(item)


def _load(path: Path | str, classifier: Classifier, keep_film: bool, score_all: bool = False) -> _Loaded:
    """Read, check (:func:`cxrviewer.applicability.check`) and preprocess one film: the one
    per-film step of every engine (threads and Ray). A film the model does not read is not
    preprocessed, unless ``score_all``."""
    t0 = time.perf_counter()
    # The resume key is the file as it was read: stat'ed before and after reading, so a film
    # replaced while it was read is not recorded under the new file's size and time.
    key = file_key(path)
    try:
        film = read_film(path, read_url(path)) if is_url(path) else read_film(path)
        verdict = applicability.check(film, classifier.info)
        if not verdict.applicable and not score_all:
            # the film kept as asked (the app's thumbnail), never preprocessed nor scored
            return _Loaded(path, film if keep_film else None, None, (film.height, film.width), verdict.reason,
                           NOT_APPLICABLE_TYPE, time.perf_counter() - t0, key, verdict.reason)
        x = preprocess(film, classifier.info)
        if key is not None and file_key(path) != key:
            name = film.name if is_url(path) else Path(path).name
            raise FileChangedError(f"{name} changed while it was being read; run again to score the new file.")
    except CxrError as exc:
        return _Loaded(path, None, None, None, str(exc), type(exc).__name__, time.perf_counter() - t0, key)
    except Exception as exc:  # noqa: BLE001 - a bug: keep the batch going, keep the traceback
        logger.exception("unexpected error reading %s", path)
        msg = f"Unexpected error ({type(exc).__name__}: {exc}); this is a bug, please report it."
        return _Loaded(path, None, None, None, msg, "InternalError", time.perf_counter() - t0, key)
    shape = (film.height, film.width)
    return _Loaded(path, film if keep_film else None, x, shape, None, None, time.perf_counter() - t0, key,
                   verdict.reason or None)


def default_workers(provider: str = CPU) -> int:
    """Films scored side by side by default: one per CPU core (at most 4 feeding a GPU).

    Each worker reads, preprocesses and runs its own batch on a one-thread model session
    (:meth:`Classifier.for_throughput`), so while one core decodes a film the other is still
    inferring and no core waits for another (``bench/bench_batch.py --sweep``; bench/RESULTS.md).
    With a GPU the workers only decode and queue batches for the device; 4 bounds the films
    held in memory (not yet measured on a GPU).
    """
    cores = max(1, os.cpu_count() or 1)
    return min(cores, 4) if provider == CUDA else cores


def session_threads(workers: int | None = None, device: str = "auto") -> int:
    """ONNX Runtime threads for a model that will score a batch: 1 when the batch runs one film
    per core on the CPU (each worker then runs its own film on one thread; an all-core session
    would sit unused beside the one-thread one of :meth:`Classifier.for_throughput`), else 0
    (ONNX Runtime's default: one per core). The one place that decides it."""
    side_by_side = (workers or default_workers()) > 1
    return 1 if side_by_side and choose_providers(device)[0] == CPU else 0


#: Films per forward pass on CPU: DenseNet121 at 320 px runs fastest one film at a time (the
#: activations of one film stay in cache; bench/RESULTS.md).
DEFAULT_BATCH_SIZE = 1
#: On a GPU: the batch the pipeline had before the CPU measurements (not yet measured on a GPU).
DEFAULT_GPU_BATCH_SIZE = 8


def default_batch_size(provider: str = CPU) -> int:
    return DEFAULT_GPU_BATCH_SIZE if provider == CUDA else DEFAULT_BATCH_SIZE


def iter_scores(
    paths: Iterable[str | os.PathLike[str]],
    classifier: Classifier,
    batch_size: int | None = None,
    workers: int | None = None,
    cancel: Cancel = None,
    keep_films: bool = False,
    score_all: bool = False,
) -> Iterator[ScoreResult]:
    """Score ``paths`` in order, yielding one :class:`ScoreResult` per path.

    ``workers`` threads (default :func:`default_workers`) each take ``batch_size`` paths
    (default :func:`default_batch_size`), read
    and preprocess them, and run them through the model, so one worker's decoding overlaps
    another's inference. At most ``2 × workers`` batches are in flight, so memory stays bounded
    whatever the number of files. Stops early (without error) when ``cancel`` is set.
    ``score_all`` scores the films the model does not read too (:func:`score_films`).
    """
    batch_size = default_batch_size(classifier.provider) if batch_size is None else max(1, int(batch_size))
    workers = default_workers(classifier.provider) if workers is None else max(1, int(workers))
    runner = classifier.for_throughput() if workers > 1 else classifier
    lookahead = 2 * workers
    source = iter(film_path(p) for p in paths)
    with opencv_serial(workers >= (os.cpu_count() or 1)):
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cxr-score")
        queue: deque[Future] = deque()

        def fill() -> None:
            while len(queue) < lookahead:
                chunk = list(itertools.islice(source, batch_size))
                if not chunk:
                    return
                queue.append(pool.submit(score_films, chunk, runner, keep_films, score_all))

        try:
            fill()
            while queue:
                if is_cancelled(cancel):
                    return
                results = queue.popleft().result()
                fill()
                yield from results
        finally:
            # also when the caller stops early or Ctrl+C: drop the batches not started yet
            for f in queue:
                f.cancel()
            pool.shutdown(wait=True)


_serial_lock = threading.Lock()
_serial_users = 0
_serial_saved = 0


@contextlib.contextmanager
def opencv_serial(active: bool) -> Iterator[None]:
    """OpenCV single-threaded while a batch (or the DICOM node) keeps every core busy with its
    own workers.

    Each worker already has a core; OpenCV's own thread pool (a resize or a colour conversion
    split across all cores) then only takes time from the other workers' inference
    (bench/RESULTS.md). The setting is process-wide, so it is counted: the last batch to
    finish restores what was there before.
    """
    global _serial_users, _serial_saved
    if not active:
        yield
        return
    with _serial_lock:
        if _serial_users == 0:
            _serial_saved = cv2.getNumThreads()
            cv2.setNumThreads(1)
        _serial_users += 1
    try:
        yield
    finally:
        with _serial_lock:
            _serial_users -= 1
            if _serial_users == 0:
                cv2.setNumThreads(_serial_saved)


def score_films(paths: list[Path | str], classifier: Classifier, keep_films: bool = False,
                score_all: bool = False) -> list[ScoreResult]:
    """Read, preprocess and score one batch (in a worker thread, or a Ray actor: the same
    function); results in input order. A film the model does not read
    (:func:`cxrviewer.applicability.check`) is not scored (``status`` ``not_applicable``) unless
    ``score_all``: then it is, and its result keeps the reason (``outside_use``)."""
    items = [_load(p, classifier, keep_films, score_all) for p in paths]
    good = [item for item in items if item.x is not None]
    preds: dict[int, Prediction | CxrError] = {}
    share = 0.0
    if good:
        t0 = time.perf_counter()
        x = good[0].x[np.newaxis] if len(good) == 1 else np.stack([item.x for item in good])
        raw = classifier.run(x)
        # a film whose outputs are not valid numbers gets a ModelOutputError: an error row for
        # that film alone, the others of the batch keep their predictions
        for item, pred in zip(good, classifier.outcomes(raw)):
            preds[id(item)] = pred
        share = (time.perf_counter() - t0) / len(good)
    out = []
    for item in items:
        pred = preds.get(id(item))
        if isinstance(pred, Prediction):
            out.append(ScoreResult(item.path, pred, item.film, seconds=item.seconds + share, film_shape=item.shape,
                                   key=item.key, outside_use=item.outside_use))
        elif pred is not None:
            out.append(ScoreResult(item.path, None, None, str(pred), type(pred).__name__, item.seconds + share, key=item.key))
        else:
            out.append(ScoreResult(item.path, None, item.film, item.error, item.error_type, item.seconds,
                                   film_shape=item.shape, key=item.key, outside_use=item.outside_use))
    return out


def score_to_csv(
    paths: Sequence[Path | str],
    classifier: Classifier,
    out: Path | str,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    cancel: Cancel = None,
    progress: Progress = None,
    on_result: Callable[[ScoreResult], None] | None = None,
    overwrite: bool = False,
    keep_films: bool = False,
    rescore: Callable[[Path], bool] | None = None,
    exports: ExportPlan | None = None,
    tally: ExportTally | None = None,
    score_all: bool = False,
) -> Summary:
    """Score ``paths`` into the CSV ``out`` (resuming it), batch by batch; the CLI and GUI path.
    ``out`` may also name a results folder (:func:`~cxrviewer.results.is_results_dir`): Parquet
    shards, resumed the same way.

    ``progress(result, done, total)`` is called after each film; ``on_result`` gets each result
    before its row is written (used for exports): when it raises a :class:`CxrError` the film's
    row becomes an error ("export failed: ...") so a rerun does it again, and the batch goes on.
    ``rescore(path)``, asked of each film the CSV already holds, says that its exports are
    missing (a run killed between writing them and writing its row, a file removed since): such a
    film is scored again, and its row appended, as if it had never been done.
    ``exports``: the pictures and DICOM results to write for each film (:func:`export_film`, the
    step the Ray engine's actors run too), counted in ``tally``; a film whose results are missing
    is scored again (:func:`exports_missing`) unless the plan overwrites.
    A film the model does not read (:mod:`cxrviewer.applicability`) gets a ``not_applicable`` row,
    counted apart from failures and not retried on resume; ``score_all`` scores such films (and
    those a resumed file holds as not applicable), each row saying it was outside the model's use.
    Returns a :class:`Summary`. Raises :class:`~cxrviewer.errors.SameFileError` when ``out`` is
    one of ``paths``, and :class:`~cxrviewer.errors.OutputError` when the CSV cannot be
    written (the rows written before stay, and the file stays resumable).
    """
    t0 = time.perf_counter()
    summary = Summary(total=len(paths))
    if not is_results_dir(out):
        refuse_inputs_as_output(Path(out), [p for p in paths if not is_url(p)])
    if exports is not None:
        exports.check()
    if exports is not None and exports.dicom is not None and not exports.overwrite and rescore is None:
        rescore = functools.partial(exports_missing, plan=exports)
    names = picture_names(paths) if exports is not None and exports.pictures is not None else {}
    tally = ExportTally() if tally is None and exports is not None else tally
    with open_results(out, classifier.info.labels, classifier.info.model_version, overwrite=overwrite) as sink:
        # a film whose exports are missing is scored again; not one the model does not read (it has none)
        todo = [p for p in paths if not sink.already_done(p, retry_not_applicable=score_all)
                or (rescore is not None and sink.already_done(p, retry_not_applicable=True) and rescore(p))]
        summary.skipped = len(paths) - len(todo)
        done = summary.skipped
        chunk: list[ScoreResult] = []
        rows_per_write = max(batch_size or 1, CSV_ROWS_PER_WRITE)
        keep_films = keep_films or exports is not None
        try:
            for result in iter_scores(todo, classifier, batch_size, workers, cancel, keep_films, score_all):
                if exports is not None:
                    result = handed_on(result, functools.partial(
                        export_film, plan=exports, info=classifier.info, name=names.get(result.path), tally=tally))
                if on_result is not None:
                    result = handed_on(result, on_result)
                chunk.append(result)
                done += 1
                summary.add(result.status, result.error_type, outside_use=result.outside_use is not None)
                if progress is not None:
                    progress(result, done, summary.total)
                if len(chunk) >= rows_per_write:
                    # hand the rows over before writing: an interrupt during the write must not
                    # make the `finally` below write them a second time
                    full, chunk = chunk, []
                    sink.write(full)
        except CxrError:
            raise  # the CSV cannot be written: that is the error to report
        except BaseException:
            sink.write(chunk)  # an interrupt: what was scored reaches the file
            raise
        sink.write(chunk)
    summary.cancelled = is_cancelled(cancel) and done < summary.total
    summary.seconds = time.perf_counter() - t0
    return summary


def handed_on(result: ScoreResult, on_result: Callable[[ScoreResult], None]) -> ScoreResult:
    """Call ``on_result``; an export that fails turns the film's row into an error row, except
    DICOM results that could not all be written (:class:`DicomResultsIncomplete`): the film's
    probabilities stand, its row stays ``ok`` and its ``error`` says which result failed."""
    try:
        on_result(result)
    except DicomResultsIncomplete as exc:
        if not result.ok:
            raise
        logger.warning("%s: %s", result.path, exc)
        note = f"{result.error}; {exc}" if result.error else str(exc)
        return dataclasses.replace(result, error=note, error_type=result.error_type or type(exc).__name__)
    except CxrError as exc:
        if not result.ok:
            raise
        logger.warning("export of %s failed: %s", result.path, exc)
        return dataclasses.replace(result, prediction=None, film=None, error=f"Export failed: {exc}",
                                   error_type="ExportFailed")
    return result


# ------------------------------------------------------------------- exports per film
@dataclass(frozen=True)
class ExportPlan:
    """What each scored film gets besides its row: an annotated PNG in ``pictures`` and its DICOM
    results in ``dicom`` (a folder path, or a URL: :mod:`cxrviewer.storage`). Plain values, so it
    travels to the Ray engine's actors as it is."""

    pictures: Path | str | None = None
    dicom: Path | str | None = None
    #: which DICOM results (:data:`cxrviewer.dicom.folder.FORMATS`; None: all of them)
    dicom_formats: tuple[str, ...] | None = None
    classes: ClassChoice = field(default_factory=ClassChoice)
    alpha: float = DEFAULT_ALPHA
    colormap: str = DEFAULT_COLORMAP
    mode: str = "heatmap"
    #: write every DICOM result again (else only those missing)
    overwrite: bool = False

    def check(self) -> None:
        """Make the destinations (a missing folder is created) and check that they take a file,
        before any film is scored: an :class:`~cxrviewer.errors.OutputError` says why not."""
        for folder in (self.pictures, self.dicom):
            if folder is not None:
                check_writable_dir(folder)

    def render_options(self, prediction: Prediction) -> RenderOptions:
        return RenderOptions(select_classes(prediction, self.classes), self.alpha, self.colormap, self.mode)


@dataclass
class ExportTally:
    """What the exports of a run (or of one Ray actor) wrote, and the DICOM films they met."""

    pictures: int = 0
    dicom: int = 0
    not_dicom: int = 0
    same_uids: int = 0
    #: DICOM results that could not be made (the film's row stays ok and says which)
    dicom_failed: int = 0
    #: DICOM results made again because their film changed since
    stale: int = 0
    #: source UIDs → the film whose results they name (one image by PS3.5 9.1, one set of results)
    seen: dict[DicomUids, Path | str] = field(default_factory=dict, repr=False)

    def counts(self) -> tuple[int, int, int, int, int, int]:
        return (self.pictures, self.dicom, self.not_dicom, self.same_uids, self.dicom_failed, self.stale)

    def add(self, counts: Sequence[int]) -> None:
        self.pictures += int(counts[0])
        self.dicom += int(counts[1])
        self.not_dicom += int(counts[2])
        self.same_uids += int(counts[3])
        if len(counts) > 4:
            self.dicom_failed += int(counts[4])
            self.stale += int(counts[5])


def picture_names(paths: Iterable[Path | str]) -> dict[Path | str, str]:
    """Each film's picture name, ``<stem>.png``, then ``<stem>-2.png``... for films of the same
    stem, in input order. Named over the whole input list (not only the films still to score),
    so that a resumed run and each Ray actor give a film the name a fresh local run gives it."""
    used: set[str] = set()
    names: dict[Path | str, str] = {}
    for p in paths:
        stem = safe_file_stem(Path(p).stem)
        name, n = f"{stem}.png", 1
        while name in used:
            n += 1
            name = f"{stem}-{n}.png"
        used.add(name)
        names[p] = name
    return names


def _dicom_folder(plan: ExportPlan, root: Path | None = None) -> DicomResultsFolder:
    """The folder's own naming; relative to the destination when that is a URL (or in ``root``)."""
    from .dicom.folder import FORMATS, DicomResultsFolder

    if root is None:
        root = Path(".") if is_url(plan.dicom) else Path(plan.dicom)
    return DicomResultsFolder(root, plan.dicom_formats or FORMATS)


def _missing_dicom(plan: ExportPlan, uids: DicomUids, key: FileKey | None = None) -> tuple[str, ...]:
    """The results of the film ``uids`` that are missing, or stale: made from another version
    of the film than the one whose resume key is ``key`` (:func:`cxrviewer.dicom.folder.source_digest`)."""
    from .dicom.folder import stored_digest

    folder = _dicom_folder(plan)
    digest = _digest(key)
    if not is_url(plan.dicom):
        return folder.missing_of(uids, digest)
    missing = []
    for f, rel in folder.paths(uids).items():
        url = str(join(plan.dicom, *rel.parts))
        if not url_exists(url) or (digest is not None and stored_digest(url) != digest):
            missing.append(f)
    return tuple(missing)


def _digest(key: FileKey | None) -> str | None:
    from .dicom.folder import source_digest

    return None if key is None else source_digest(key[1], key[2])


def exports_missing(path: Path | str, plan: ExportPlan) -> bool:
    """Whether the film at ``path`` (a path or a URL, already in the results) lacks DICOM results
    it should have (a run killed between writing them and its row, a file removed since, a
    result that could not be made last time) or has results of an earlier version of the file:
    it is scored again."""
    if plan.dicom is None:
        return False
    from .dicom.folder import dicom_uids

    try:
        uids = dicom_uids(path)
    except CxrError:
        return True
    return uids is not None and bool(_missing_dicom(plan, uids, file_key(path)))


def export_film(result: ScoreResult, plan: ExportPlan, info: ModelInfo, name: str | None,
                tally: ExportTally) -> None:
    """Write what ``plan`` asks for one scored film: its DICOM results (a DICOM film only; those
    missing, unless the plan overwrites), then its picture ``name``. The one export step of the
    local engine and of the Ray engine's actors; a :class:`CxrError` means the film's export
    failed (its row becomes an error row: :func:`handed_on`), except
    :class:`DicomResultsIncomplete`, raised after everything else was written: some DICOM
    results could not be made, the others and the picture were written."""
    if not result.ok:
        if result.not_applicable:
            _drop_stale_dicom(result, plan)
        return
    options = plan.render_options(result.prediction)
    failed: dict[str, CxrError] = {}
    if plan.dicom is not None:
        failed = _export_dicom(result, plan, info, options, tally)
    if plan.pictures is not None and name is not None:
        export_png(join(plan.pictures, name), result.film, result.prediction, info, options)
        tally.pictures += 1
    if failed:
        from .dicom.folder import SUFFIXES

        tally.dicom_failed += len(failed)
        raise DicomResultsIncomplete("; ".join(
            f"DICOM result {SUFFIXES[f]} not written: {exc}" for f, exc in failed.items()
        ) + " (a rerun into the same results retries it)")


def _drop_stale_dicom(result: ScoreResult, plan: ExportPlan) -> None:
    """Remove the DICOM results made from an earlier version of a film the model now does not
    read (replaced in place by a lateral view, say): their findings describe a film that is no
    longer there, and no new result replaces them. Results that record no version, or this
    one (a film once scored with ``--score-all``), stay; so do those in an object store."""
    if plan.dicom is None or is_url(plan.dicom) or result.key is None:
        return
    from .dicom.folder import dicom_uids, stored_digest

    try:
        uids = dicom_uids(result.path)
    except CxrError:
        return
    if uids is None:
        return
    digest = _digest(result.key)
    removed = []
    for f, p in _dicom_folder(plan).paths(uids).items():
        stored = stored_digest(p) if p.is_file() else None
        if stored is not None and stored != digest:
            p.unlink()
            removed.append(f)
    if removed:
        logger.warning("%s changed since its DICOM results were made and is not a film the model reads: removed "
                       "its DICOM results (%s)", result.path, ", ".join(removed))


def _export_dicom(result: ScoreResult, plan: ExportPlan, info: ModelInfo, options: RenderOptions,
                  tally: ExportTally) -> dict[str, CxrError]:
    """Write the DICOM results of ``result`` that are missing or stale; returns those that could
    not be made, and why. Raises :class:`CxrError` when none can be (no header to name them)."""
    from .dicom.folder import header_uids
    from .dicom.source import read_source_header, source_kind

    # A film read from a URL knows it (read_film records it), so each result re-reads the
    # header from there (its Film.source is a Path, which cannot hold a URL).
    film = result.film
    if source_kind(film) != "dicom":
        tally.not_dicom += 1
        return {}
    # The header that names the results (and that each builder copies from): a film whose file
    # is gone since it was scored gets an error row, not silence.
    uids = header_uids(read_source_header(film), film.name)
    first = tally.seen.setdefault(uids, result.path)
    if first != result.path:
        tally.same_uids += 1
        logger.warning("%s has the SOP Instance UID of %s: its DICOM results are that film's", result.path, first)
        return {}
    only = None if plan.overwrite else _missing_dicom(plan, uids, result.key)
    if only == ():
        return {}
    if only and not plan.overwrite:
        # a result whose file is there but whose key is not this film's: made again, replacing it
        stale = [f for f, p in _dicom_folder(plan).paths(uids).items()
                 if f in only and not is_url(plan.dicom) and p.is_file()]
        if stale:
            tally.stale += len(stale)
            logger.info("%s changed since its DICOM results (%s) were made: made again, with new "
                        "SOP Instance UIDs", result.path, ", ".join(stale))
    folder = _dicom_folder(plan)
    digest = _digest(result.key)
    if not is_url(plan.dicom):
        written, failed = folder.write_each(uids, film, result.prediction, info, options, only=only, digest=digest)
        tally.dicom += len(written)
        return failed
    # an object store: the same writer into a private local folder, then one upload per object
    with tempfile.TemporaryDirectory(prefix="cxrviewer-dicom-") as stage:
        staged = _dicom_folder(plan, Path(stage))
        written, failed = staged.write_each(uids, film, result.prediction, info, options, only=only, digest=digest)
        for path in written:
            rel = Path(path).relative_to(stage)
            upload_file(path, str(join(plan.dicom, *rel.parts)))
            tally.dicom += 1
    return failed
