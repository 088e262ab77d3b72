"""The Ray engine: films streamed through Ray Data actors, rows written by the driver.

Each actor (:class:`FilmScorer`) loads the model once (one intra-op thread on a CPU, as each
worker thread of the local engine does, or a share of a GPU) and scores its batches with
:func:`cxrviewer.batch.score_films`, the local engine's own per-film function, then makes the rows
with :func:`cxrviewer.results.result_row`: the cells are those the local engine writes. The
driver keeps what Ray cannot: resuming (only films the results do not hold yet are sent), one
row per film (a batch that Ray runs again after a worker dies is written once), and the results
file or folder. Ray Data retries the batches of a worker that dies; its own checkpointing is not
used (a commercial add-on).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..batch import (
    Cancel,
    ExportPlan,
    ExportTally,
    export_film,
    exports_missing,
    film_path,
    handed_on,
    is_cancelled,
    picture_names,
    score_films,
)
from ..errors import ClusterError
from ..io import is_url
from ..model import Classifier, Engine
from ..results import (
    FIXED_HEAD,
    OUTSIDE_USE,
    Summary,
    csv_columns,
    is_results_dir,
    open_results,
    refuse_inputs_as_output,
    result_row,
)

logger = logging.getLogger(__name__)

#: The column that carries a film's place in the run through Ray (rows come back in any order).
_INDEX = "_index"
_ERROR_TYPE = "_error_type"
#: The picture name the driver gave a film (names are made over the whole input list, so no two
#: actors pick the same one), and what the film's exports wrote (:class:`ExportTally` counts).
_NAME = "_name"
_TALLY = "_tally"
#: A film's path as given when it is relative (the row keeps it), beside the absolute one the
#: actor reads: a worker's folder is where its node was started, not the driver's.
_GIVEN = "_given"
#: Films a block of the input holds: small blocks spread the films over the actors evenly and
#: bound what a dead worker's retry repeats.
BLOCK_FILMS = 16


@dataclass(frozen=True)
class RayOptions:
    """How the films are spread over a Ray cluster."""

    #: ``ray://host:10001``, ``host:6379`` or ``"auto"``; None: a Ray runtime already started in
    #: this process, else a local one on this machine.
    address: str | None = None
    #: Actors, each with one model session (default: one per CPU of the cluster, or per GPU share).
    workers: int | None = None
    #: A fraction of a GPU per actor (0: CPU actors, one CPU each).
    gpus_per_worker: float = 0.0
    #: Films per forward pass in an actor.
    batch_size: int = 1


def _ray():
    try:
        import ray
        import ray.data
    except ImportError:
        raise ClusterError("The Ray engine needs Ray, which is not installed: install cxrviewer's 'ray' extra "
                           "(pip install 'cxrviewer[ray]').") from None
    return ray


def _encode(p: Path | str) -> bytes:
    """A film's name as bytes through Arrow: a POSIX file name need not be UTF-8."""
    return p.encode("utf-8") if is_url(p) else os.fsencode(p)


def _decode(raw: bytes, url: bool) -> Path | str:
    return raw.decode("utf-8") if url else Path(os.fsdecode(raw))


class FilmScorer:
    """A Ray Data actor: one model session, the local engine's per-film function."""

    def __init__(self, model: str, device: str, threads: int, labels: Sequence[str], model_version: str,
                 exports: ExportPlan | None = None, score_all: bool = False, engine: Engine | None = None) -> None:
        import cv2

        # on a CPU one core per actor: its own film on one thread and OpenCV serial, as a worker
        # thread of the local engine (the same one-thread session gives the same numbers)
        if threads == 1:
            cv2.setNumThreads(1)
        # CPU actors run on the driver's engine (backend and precision: the choice is made once,
        # by the driver, and every film is scored the same way); GPU actors on the device asked for
        self.classifier = Classifier.load(model, device=device, threads=threads, check_outputs=False, engine=engine)
        if tuple(self.classifier.info.labels) != tuple(labels) or self.classifier.info.model_version != model_version:
            raise ClusterError(f"The model at {model} on this worker is not the driver's model "
                               f"(version {self.classifier.info.model_version}); give every node the same file.")
        self.labels = tuple(labels)
        self.columns = csv_columns(self.labels)
        self.exports = exports
        self.score_all = score_all
        # one actor's memory of the DICOM source UIDs it has written results for
        self.seen = ExportTally().seen

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths = [_decode(bytes(raw), bool(url)) for raw, url in zip(batch["film"], batch["url"])]
        results = score_films(paths, self.classifier, keep_films=self.exports is not None, score_all=self.score_all)
        counts = []
        if self.exports is not None:
            # the local engine's export step, here in the actor: the files are written before the
            # driver gets the row, so a row in the results means its exports are there
            for i, name in enumerate(batch[_NAME]):
                tally = ExportTally(seen=self.seen)
                results[i] = handed_on(results[i], functools.partial(
                    export_film, plan=self.exports, info=self.classifier.info, name=str(name) or None, tally=tally))
                counts.append(list(tally.counts()))
        for i, given in enumerate(batch[_GIVEN]):
            if given:
                results[i] = dataclasses.replace(results[i], path=_decode(bytes(given), False))
        rows = [result_row(r, self.labels, self.classifier.info.model_version) for r in results]
        out = {c: np.array([row[c] for row in rows], dtype=object) for c in self.columns}
        out[_INDEX] = np.asarray(batch[_INDEX], dtype=np.int64)
        out[_ERROR_TYPE] = np.array([r.error_type or "" for r in results], dtype=object)
        out[_TALLY] = np.array(counts or [[0, 0, 0, 0]] * len(results), dtype=np.int64)
        return out


def score_on_ray(
    paths: Sequence[Path | str],
    model: Path | str,
    out: Path | str,
    *,
    device: str = "cpu",
    engine: Engine | None = None,
    options: RayOptions = RayOptions(),
    overwrite: bool = False,
    cancel: Cancel = None,
    progress: Callable[[dict[str, str], int, int], None] | None = None,
    exports: ExportPlan | None = None,
    tally: ExportTally | None = None,
    score_all: bool = False,
) -> Summary:
    """Score ``paths`` on Ray into the results ``out`` (a CSV or a folder; resumed like the local
    engine's). ``model`` must be readable at the same path on every node (a shared file system).
    ``progress(row, done, total)`` is called for each film's row as it is written. ``engine``: what
    CPU actors run the model on (the driver's :attr:`Classifier.engine`; default fp32 ONNX
    Runtime); every node needs the runtime it names (the ``openvino`` extra for OpenVINO).
    ``exports``: the pictures and DICOM results each actor writes for its films (the local
    engine's :func:`~cxrviewer.batch.export_film`; destinations every node can reach: a shared
    folder or an object store), counted in ``tally``. ``score_all``: films the model does not
    read are scored too (:func:`~cxrviewer.batch.score_films`, as the local engine)."""
    ray = _ray()
    t0 = time.perf_counter()
    summary = Summary(total=len(paths))
    if exports is not None:
        # an actor's working folder is not the driver's: a relative destination would land elsewhere
        exports = dataclasses.replace(exports, pictures=_absolute(exports.pictures), dicom=_absolute(exports.dicom))
        exports.check()
    probe = Classifier.load(model, device="cpu", threads=1)  # checks the file, and gives its labels
    labels, version = probe.info.labels, probe.info.model_version
    del probe
    if not is_results_dir(out):
        refuse_inputs_as_output(Path(out), [p for p in paths if not is_url(p)])
    started = _connect(ray, options.address)
    try:
        with open_results(out, labels, version, overwrite=overwrite) as sink:
            rescore = exports is not None and exports.dicom is not None and not exports.overwrite
            todo = [film_path(p) for p in paths
                    if not sink.already_done(p, retry_not_applicable=score_all)
                    or (rescore and sink.already_done(p, retry_not_applicable=True) and exports_missing(p, exports))]
            summary.skipped = len(paths) - len(todo)
            if todo:
                names = picture_names(film_path(p) for p in paths) if exports is not None else {}
                _run(ray, todo, str(Path(model).resolve()), device, labels, version, options, sink,
                     summary, cancel, progress, exports, names, tally if tally is not None else ExportTally(),
                     score_all, engine)
    finally:
        if started:
            ray.shutdown()
    summary.cancelled = (is_cancelled(cancel)
                         and summary.skipped + summary.scored + summary.failed + summary.not_applicable < summary.total)
    summary.seconds = time.perf_counter() - t0
    return summary


def _absolute(folder: Path | str | None) -> Path | str | None:
    return folder if folder is None or is_url(folder) else Path(folder).absolute()


def _connect(ray, address: str | None) -> bool:
    """Join the cluster at ``address`` (or the runtime already up, or a new local one); returns
    whether this call started it (and so must stop it)."""
    if ray.is_initialized():
        return False
    env = {"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}} if os.environ.get("PYTHONPATH") else None
    try:
        if address:
            ray.init(address=address, runtime_env=env, log_to_driver=False)
        else:
            ray.init(include_dashboard=False, log_to_driver=False)
    except ConnectionError as exc:
        raise ClusterError(f"Cannot reach the Ray cluster at {address}: {exc}. Start the cluster "
                           "or check its address.") from None
    return True


def _run(ray, todo, model, device, labels, version, options, sink, summary, cancel, progress, exports, names,
         tally, score_all=False, engine=None) -> None:
    gpus = float(options.gpus_per_worker or 0.0)
    if options.workers:
        workers = int(options.workers)
    else:
        res = ray.cluster_resources()
        workers = max(1, int(res.get("GPU", 0) / gpus) if gpus else int(res.get("CPU", 1)))
    items = [{"film": _encode(_absolute(p)), "url": is_url(p), _GIVEN: b"" if is_url(p) or Path(p).is_absolute() else _encode(p),
              _INDEX: i, _NAME: names.get(p, "")} for i, p in enumerate(todo)]
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    blocks = max(1, min(len(items), -(-len(items) // BLOCK_FILMS)))
    ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
        FilmScorer,
        fn_constructor_kwargs={"model": model, "device": device if gpus else "cpu", "threads": 0 if gpus else 1,
                               "labels": list(labels), "model_version": version, "exports": exports,
                               "score_all": score_all,
                               "engine": None if gpus or engine is None or engine.device != "cpu" else engine},
        batch_size=max(1, int(options.batch_size)),
        # workers asked for are all started at once; without a number the pool grows to one per
        # CPU (or GPU share). When a node is lost its batches are retried on the actors left.
        compute=ray.data.ActorPoolStrategy(min_size=workers if options.workers else 1, max_size=workers),
        num_cpus=0 if gpus else 1,
        num_gpus=gpus or None,
        batch_format="numpy",
    )
    seen = np.zeros(len(todo), dtype=bool)
    columns = csv_columns(labels)
    status = columns.index(FIXED_HEAD[1])
    done = summary.skipped
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            rows, kinds = [], []
            for j, i in enumerate(batch[_INDEX]):
                if seen[i]:
                    continue  # a batch Ray ran again after a worker died: its film is written once
                seen[i] = True
                rows.append({c: str(batch[c][j]) for c in columns})
                kinds.append(str(batch[_ERROR_TYPE][j]))
                tally.add(batch[_TALLY][j])
            sink.write_rows(rows)
            for row, kind in zip(rows, kinds):
                done += 1
                summary.add(row[columns[status]], kind, outside_use=row["error"].startswith(OUTSIDE_USE))
                if progress is not None:
                    progress(row, done, summary.total)
            if is_cancelled(cancel):
                break
    except ray.exceptions.RayError as exc:
        raise ClusterError(f"The Ray run failed ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}); "
                           "rows written so far are kept: run again to resume.") from None
    missing = int((~seen).sum())
    if missing and not is_cancelled(cancel):
        raise ClusterError(f"Ray returned no row for {missing} film(s); run again to score them.")

