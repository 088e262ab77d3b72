"""A scored film's result objects, written into the spool with the exports everyone else uses.

SR and Presentation State come from :mod:`cxrviewer.dicom`, the Secondary Capture from
:mod:`cxrviewer.dicom_export`; each references the source instance and joins its study.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..dicom import write_result
from ..dicom.source import FilmSource
from ..errors import CxrError
from ..export import fsync_dir
from ..render import RenderOptions
from ..types import Film, ModelInfo, Prediction

logger = logging.getLogger(__name__)

#: The results made from the source's header and the findings: they read a film's size, source,
#: metadata and calibration, never its pixels (the Secondary Capture draws the picture). A film
#: goes to the result builders without its pixels when only these are asked for
#: (:func:`film_parcel`); tests/test_node_results.py checks they come out the same both ways.
HEADER_RESULTS = frozenset({"sr", "gsps"})


def write_results(
    folder: Path, film: Film, prediction: Prediction, info: ModelInfo, outputs: tuple[str, ...], *,
    anonymize: bool = False, cpu: dict[str, float] | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write each asked-for result to ``folder/<kind>.dcm``; returns the files written and, for
    each result that could not be made, why (the others are still written). ``cpu``, when
    given, gets the CPU seconds each result took (build, encode, durable write), on this
    thread's clock: the node's other threads run meanwhile when it builds in a scoring thread."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    errors: dict[str, str] = {}
    options = RenderOptions(classes=prediction.positives)
    # the SR and the Presentation State read the source's header, make its reference and the
    # regions once for both (on the first one's clock)
    source = FilmSource(film, prediction)
    for kind in outputs:
        path = folder / f"{kind}.dcm"
        start = time.thread_time()
        try:
            # the positive findings, as `cxrviewer score --dicom-out` draws them by default
            write_result(kind, path, film, prediction, info, options, anonymize=anonymize, source=source)
        except CxrError as exc:
            errors[kind] = str(exc)
            continue
        finally:
            if cpu is not None:
                cpu[f"build {kind}"] = time.thread_time() - start
        written[kind] = path
    fsync_dir(folder)  # the renames of the results are durable before the job says "scored"
    return written, errors


# --------------------------------------------------------------- to another process
@dataclasses.dataclass(frozen=True)
class _Parcel:
    kind: type
    values: dict[str, Any]


def to_parcel(obj: Any) -> Any:
    """``obj`` (a Film, Prediction, ModelInfo, ...) as plain picklable values: their read-only
    mappings (``MappingProxyType``) do not pickle. :func:`from_parcel` builds it again through
    its constructor, so its checks run again on the other side."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _Parcel(type(obj), {f.name: to_parcel(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.init})
    if isinstance(obj, Mapping):
        return {k: to_parcel(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(to_parcel(v) for v in obj)
    return obj


@dataclasses.dataclass(frozen=True)
class _FilmFacts:
    """A film as the header-made results need it: its shape and every other field but the
    pixels and the modality image (a 5-megapixel film's are 30 MB to pickle, pipe and copy)."""

    shape: tuple[int, int]
    values: dict[str, Any]


_PIXEL_FIELDS = ("pixels", "gray")


def film_parcel(film: Film, outputs: tuple[str, ...]) -> Any:
    """``film`` for the result builders: without its pixels when ``outputs`` are all
    :data:`HEADER_RESULTS`, whole (:func:`to_parcel`) otherwise."""
    if not set(outputs) <= HEADER_RESULTS:
        return to_parcel(film)
    values = {f.name: to_parcel(getattr(film, f.name)) for f in dataclasses.fields(film)
              if f.init and f.name not in _PIXEL_FIELDS}
    return _FilmFacts((film.height, film.width), values)


def from_parcel(obj: Any) -> Any:
    if isinstance(obj, _FilmFacts):
        # Blank pixels of the film's size: the header-made results read only the size. np.zeros
        # takes pages from the system as they are touched, and these never are.
        return Film(np.zeros(obj.shape, np.float32), **from_parcel(obj.values))
    if isinstance(obj, _Parcel):
        return obj.kind(**{k: from_parcel(v) for k, v in obj.values.items()})
    if isinstance(obj, dict):
        return {k: from_parcel(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(from_parcel(v) for v in obj)
    return obj


#: The model whose results a result-building process writes: set once by :func:`use_model`
#: (its pool's initializer), not shipped with every film. Rebuilding a ModelInfo from its parcel
#: walks its distribution check's 32 x 1024 components: ~11 ms a film when it came with each.
_model: ModelInfo | None = None
#: the CPU seconds the process took to get ready (interpreter, imports, model), reported once
_startup_cpu: float | None = None


def use_model(info) -> None:
    """In a result-building process: the results it writes are of the model ``info`` (a parcel)."""
    global _model, _startup_cpu
    _model = from_parcel(info)
    _startup_cpu = time.process_time()


def write_parcels(folder: Path, film, prediction, outputs: tuple[str, ...], anonymize: bool = False):
    """:func:`write_results` on parcels, in a result-building process set up by :func:`use_model`;
    returns the files written, the errors, and the CPU seconds of each stage in this process
    (:mod:`cxrviewer.node.timing`); the process's start-up with its first film."""
    global _startup_cpu
    if _model is None:
        raise RuntimeError("write_parcels runs in a process set up by use_model()")
    startup, _startup_cpu = _startup_cpu, None
    start = time.process_time()
    film, prediction = from_parcel(film), from_parcel(prediction)
    unparcel = time.process_time() - start
    cpu: dict[str, float] = {}
    written, errors = write_results(folder, film, prediction, _model, outputs, anonymize=anonymize, cpu=cpu)
    stages = {"builder: unparcel": unparcel, **{f"builder: {k}": v for k, v in cpu.items()}}
    if startup is not None:
        stages["builder: start-up (once a process)"] = startup
    return written, errors, stages
