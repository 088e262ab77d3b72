"""Scoring many films: a bounded decode → preprocess → infer pipeline and a resumable CSV.

Worker threads (one per core by default) each read, preprocess and score a batch of films on a
one-thread model session; OpenCV, the DICOM codecs and ONNX Runtime release the GIL, so one
worker's decoding overlaps another's inference and the cores stay busy. Results come back in
input order. :class:`ResultsCsv` writes rows in groups (:data:`CSV_ROWS_PER_WRITE`, or a batch),
flushed and fsync'ed, so a killed run loses at most the group in flight, and a rerun with the
same output skips the files already in it (matched by path, size and modification time).
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .errors import CxrError, OutputError
from .io import read_film
from .model import CPU, Classifier
from .preprocess import preprocess
from .types import Film, Prediction

logger = logging.getLogger(__name__)

Cancel = Callable[[], bool] | threading.Event | None
Progress = Callable[["ScoreResult", int, int], None] | None


@dataclass(frozen=True, eq=False)
class ScoreResult:
    """One film's outcome: a prediction, or the reason it could not be scored."""

    path: Path
    prediction: Prediction | None = None
    film: Film | None = None
    error: str | None = None
    error_type: str | None = None
    seconds: float = 0.0
    film_shape: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return self.prediction is not None


def _cancelled(cancel: Cancel) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


@dataclass(frozen=True, eq=False)
class _Loaded:
    """A film read and preprocessed by a worker thread, or why it could not be."""

    path: Path
    film: Film | None
    x: np.ndarray | None
    shape: tuple[int, int] | None
    error: str | None
    error_type: str | None
    seconds: float


def _load(path: Path, classifier: Classifier, keep_film: bool) -> _Loaded:
    t0 = time.perf_counter()
    try:
        film = read_film(path)
        x = preprocess(film, classifier.info)
    except CxrError as exc:
        return _Loaded(path, None, None, None, str(exc), type(exc).__name__, time.perf_counter() - t0)
    except Exception as exc:  # noqa: BLE001 - a bug: keep the batch going, keep the traceback
        logger.exception("unexpected error reading %s", path)
        msg = f"Unexpected error ({type(exc).__name__}: {exc}); this is a bug, please report it."
        return _Loaded(path, None, None, None, msg, "InternalError", time.perf_counter() - t0)
    shape = (film.height, film.width)
    return _Loaded(path, film if keep_film else None, x, shape, None, None, time.perf_counter() - t0)


def default_workers(provider: str = CPU) -> int:
    """Films scored side by side by default: one per CPU core (at most 4 feeding a GPU).

    Each worker reads, preprocesses and runs its own batch on a one-thread model session
    (:meth:`Classifier.for_throughput`), so while one core decodes a film the other is still
    inferring and no core waits for another. On the 2-core bench machine 2 workers reach ~0.9
    of the model-only limit and 3 gain nothing (``python bench/bench_batch.py --sweep``,
    bench/RESULTS.md). With a GPU the workers only decode and queue batches for the device;
    4 is not measured here (the bench machine has no GPU) but bounds the films held in memory.
    """
    cores = max(1, os.cpu_count() or 1)
    return cores if provider == CPU else min(cores, 4)


#: Films per forward pass on CPU: DenseNet121 at 320 px runs fastest one film at a time (the
#: activations of one film stay in cache; side by side on 2 cores, batch 1 / 2 / 8 give
#: 15.8 / 14.7 / 12.3 films/s on ready tensors, bench/RESULTS.md).
DEFAULT_BATCH_SIZE = 1
#: On a GPU: the batch the pipeline had before the CPU measurements; not measured here (the
#: bench machine has no GPU).
DEFAULT_GPU_BATCH_SIZE = 8


def default_batch_size(provider: str = CPU) -> int:
    return DEFAULT_BATCH_SIZE if provider == CPU else DEFAULT_GPU_BATCH_SIZE

#: Rows written (and fsync'ed) together: a killed run loses at most this many rows, or a batch
#: if batches are bigger.
CSV_ROWS_PER_WRITE = 8


def iter_scores(
    paths: Iterable[str | os.PathLike[str]],
    classifier: Classifier,
    batch_size: int | None = None,
    workers: int | None = None,
    cancel: Cancel = None,
    keep_films: bool = False,
) -> Iterator[ScoreResult]:
    """Score ``paths`` in order, yielding one :class:`ScoreResult` per path.

    ``workers`` threads (default :func:`default_workers`) each take ``batch_size`` paths
    (default :func:`default_batch_size`), read
    and preprocess them, and run them through the model, so one worker's decoding overlaps
    another's inference. At most ``2 × workers`` batches are in flight, so memory stays bounded
    whatever the number of files. Stops early (without error) when ``cancel`` is set.
    """
    batch_size = default_batch_size(classifier.provider) if batch_size is None else max(1, int(batch_size))
    workers = default_workers(classifier.provider) if workers is None else max(1, int(workers))
    runner = classifier.for_throughput() if workers > 1 else classifier
    lookahead = 2 * workers
    source = iter(Path(p) for p in paths)
    with _opencv_serial(workers >= (os.cpu_count() or 1)):
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cxr-score")
        queue: deque[Future] = deque()

        def fill() -> None:
            while len(queue) < lookahead:
                chunk = list(itertools.islice(source, batch_size))
                if not chunk:
                    return
                queue.append(pool.submit(_score_chunk, chunk, runner, keep_films))

        try:
            fill()
            while queue:
                if _cancelled(cancel):
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
def _opencv_serial(active: bool) -> Iterator[None]:
    """OpenCV single-threaded while a batch keeps every core busy with its own workers.

    Each worker already has a core; OpenCV's own thread pool (a resize or a colour conversion
    split across all cores) then only takes time from the other workers' inference. Measured
    side by side: b/c 0.918 vs 0.896 (bench/RESULTS.md). The setting is process-wide, so it is
    counted: the last batch to finish restores what was there before.
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


def _score_chunk(paths: list[Path], classifier: Classifier, keep_films: bool) -> list[ScoreResult]:
    """Read, preprocess and score one batch (in a worker thread); results in input order."""
    items = [_load(p, classifier, keep_films) for p in paths]
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
            out.append(ScoreResult(item.path, pred, item.film, seconds=item.seconds + share, film_shape=item.shape))
        elif pred is not None:
            out.append(ScoreResult(item.path, None, None, str(pred), type(pred).__name__, item.seconds + share))
        else:
            out.append(ScoreResult(item.path, None, None, item.error, item.error_type, item.seconds))
    return out


# ------------------------------------------------------------------------------- CSV
FIXED_HEAD = ("path", "status", "error", "model_version")
FIXED_TAIL = ("positives", "regions", "ood_score", "ood", "seconds", "file_size", "file_mtime_ns")


def csv_columns(labels: Sequence[str]) -> list[str]:
    return [*FIXED_HEAD, *labels, *FIXED_TAIL]


def file_key(path: Path) -> tuple[str, int, int] | None:
    """(absolute path, size, mtime in ns), or None when the file cannot be stat'ed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns))


def regions_cell(pred: Prediction, shape: tuple[int, int] | None) -> str:
    """Compact JSON of the positive findings' boxes, in film pixels: [{label, box: [x,y,w,h], peak}]."""
    if shape is None or not pred.positives:
        return ""
    from .heatmap import regions

    items = [
        {"label": r.label, "box": list(r.box), "peak": round(r.peak, 3)}
        for label in pred.positives
        for r in regions(pred, label, shape)
    ]
    return json.dumps(items, separators=(",", ":"))


def result_row(result: ScoreResult, labels: Sequence[str], model_version: str) -> dict[str, str]:
    key = file_key(result.path)
    row = {c: "" for c in csv_columns(labels)}
    row.update(
        path=str(result.path),
        status="ok" if result.ok else "error",
        error=(result.error or "").replace("\n", " "),
        model_version=model_version,
        seconds=f"{result.seconds:.4f}",
        file_size=str(key[1]) if key else "",
        file_mtime_ns=str(key[2]) if key else "",
    )
    pred = result.prediction
    if pred is not None:
        for label in labels:
            row[label] = f"{pred.probability(label):.6f}"
        row["positives"] = "|".join(pred.positives)
        row["regions"] = regions_cell(pred, result.film_shape)
        if pred.ood_score is not None:
            row["ood_score"] = f"{pred.ood_score:.4f}"
            row["ood"] = "1" if pred.ood_flag else "0"
    return row


class ResultsCsv:
    """An append-only results CSV that survives being killed and can be resumed.

    Opening an existing file checks its header, cuts a partial last line left by a killed run,
    and remembers which files it already holds (:meth:`already_done`).
    """

    def __init__(self, path: Path, labels: Sequence[str], model_version: str, overwrite: bool = False) -> None:
        self.path = Path(path)
        self.labels = tuple(labels)
        self.model_version = model_version
        self.columns = csv_columns(self.labels)
        self._done: set[tuple[str, int, int]] = set()
        folder = self.path.parent if str(self.path.parent) else Path(".")
        if self.path.is_dir():
            raise OutputError(f"{self.path} is a folder; give --out a file name such as results.csv.")
        from .export import check_writable_dir

        check_writable_dir(folder)
        if self.path.exists() and not overwrite and self.path.stat().st_size > 0:
            self._resume()
            self._file = open(self.path, "a", newline="", encoding="utf-8")
        else:
            self._file = open(self.path, "w", newline="", encoding="utf-8")
            self._write_text(self._format([dict(zip(self.columns, self.columns))]))

    def _resume(self) -> None:
        data = self.path.read_bytes()
        if not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            logger.warning("cutting a partial last line from %s (an interrupted run)", self.path)
            with open(self.path, "r+b") as f:
                f.truncate(cut)
                f.flush()
                os.fsync(f.fileno())
            data = data[:cut]
        text = data.decode("utf-8", errors="replace")
        reader = csv.DictReader(io.StringIO(text))
        if reader.fieldnames is None:
            # only a partial header was there: start over
            self.path.write_text("", encoding="utf-8")
            with open(self.path, "w", newline="", encoding="utf-8") as f:
                f.write(self._format([dict(zip(self.columns, self.columns))]))
            return
        if list(reader.fieldnames) != self.columns:
            raise OutputError(
                f"{self.path} already holds results with other columns (another model?). "
                "Use a new --out file, or --overwrite to replace it."
            )
        for row in reader:
            try:
                self._done.add((os.path.abspath(row["path"]), int(row["file_size"]), int(row["file_mtime_ns"])))
            except (KeyError, TypeError, ValueError):
                continue
        logger.info("resuming %s: %d files already scored", self.path, len(self._done))

    def already_done(self, path: Path) -> bool:
        """Whether the file was already in the CSV when it was opened (same path, size, mtime)."""
        key = file_key(path)
        return key is not None and key in self._done

    def _format(self, rows: list[dict[str, str]]) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.columns, lineterminator="\n")
        w.writerows(rows)
        return buf.getvalue()

    def _write_text(self, text: str) -> None:
        try:
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise OutputError(f"Cannot write {self.path}: {exc.strerror or exc}.") from None

    def write(self, results: Sequence[ScoreResult]) -> None:
        """Append the rows of ``results`` in one write, flushed to disk."""
        if not results:
            return
        rows = [result_row(r, self.labels, self.model_version) for r in results]
        self._write_text(self._format(rows))
        # Rows written now are not added to the set of files already done: that set is only
        # asked before a run starts, and it would grow by a few hundred bytes a film.

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "ResultsCsv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class Summary:
    total: int = 0
    scored: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: bool = False
    seconds: float = 0.0
    errors: Counter = field(default_factory=Counter)

    @property
    def exit_code(self) -> int:
        return 1 if self.failed else 0

    def line(self) -> str:
        rate = self.scored / self.seconds if self.seconds > 0 else 0.0
        parts = [f"{self.scored} scored", f"{self.failed} failed"]
        if self.skipped:
            parts.append(f"{self.skipped} already done")
        if self.cancelled:
            parts.append("stopped early")
        errs = ", ".join(f"{k} {v}" for k, v in sorted(self.errors.items()))
        return (
            f"{', '.join(parts)} of {self.total} files in {self.seconds:.1f} s ({rate:.1f} films/s)"
            + (f"; errors: {errs}" if errs else "")
        )


def score_to_csv(
    paths: Sequence[Path],
    classifier: Classifier,
    out: Path,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    cancel: Cancel = None,
    progress: Progress = None,
    on_result: Callable[[ScoreResult], None] | None = None,
    overwrite: bool = False,
    keep_films: bool = False,
) -> Summary:
    """Score ``paths`` into the CSV ``out`` (resuming it), batch by batch; the CLI and GUI path.

    ``progress(result, done, total)`` is called after each film; ``on_result`` gets each result
    (used for exports). Returns a :class:`Summary`.
    """
    t0 = time.perf_counter()
    summary = Summary(total=len(paths))
    with ResultsCsv(out, classifier.info.labels, classifier.info.model_version, overwrite=overwrite) as sink:
        todo = [p for p in paths if not sink.already_done(p)]
        summary.skipped = len(paths) - len(todo)
        done = summary.skipped
        chunk: list[ScoreResult] = []
        rows_per_write = max(batch_size or 1, CSV_ROWS_PER_WRITE)
        try:
            for result in iter_scores(todo, classifier, batch_size, workers, cancel, keep_films):
                chunk.append(result)
                done += 1
                if result.ok:
                    summary.scored += 1
                else:
                    summary.failed += 1
                    summary.errors[result.error_type or "Error"] += 1
                if on_result is not None:
                    on_result(result)
                if progress is not None:
                    progress(result, done, summary.total)
                if len(chunk) >= rows_per_write:
                    # hand the rows over before writing: an interrupt during the write must not
                    # make the `finally` below write them a second time
                    full, chunk = chunk, []
                    sink.write(full)
        finally:
            # also on an interrupt: what was scored reaches the file
            sink.write(chunk)
    summary.cancelled = _cancelled(cancel) and done < summary.total
    summary.seconds = time.perf_counter() - t0
    return summary
