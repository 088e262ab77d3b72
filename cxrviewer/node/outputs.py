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

from ..dicom import write_result
from ..errors import CxrError
from ..export import fsync_dir
from ..render import RenderOptions
from ..types import Film, ModelInfo, Prediction

logger = logging.getLogger(__name__)


def write_results(
    folder: Path, film: Film, prediction: Prediction, info: ModelInfo, outputs: tuple[str, ...], *,
    anonymize: bool = False, cpu: dict[str, float] | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write each asked-for result to ``folder/<kind>.dcm``; returns the files written and, for
    each result that could not be made, why (the others are still written). ``cpu``, when
    given, gets the CPU seconds each result took (build, encode, durable write)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    errors: dict[str, str] = {}
    options = RenderOptions(classes=prediction.positives)
    for kind in outputs:
        path = folder / f"{kind}.dcm"
        start = time.process_time()
        try:
            # the positive findings, as `cxrviewer score --dicom-out` draws them by default
            write_result(kind, path, film, prediction, info, options, anonymize=anonymize)
        except CxrError as exc:
            errors[kind] = str(exc)
            continue
        finally:
            if cpu is not None:
                cpu[f"build {kind}"] = time.process_time() - start
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


def from_parcel(obj: Any) -> Any:
    if isinstance(obj, _Parcel):
        return obj.kind(**{k: from_parcel(v) for k, v in obj.values.items()})
    if isinstance(obj, dict):
        return {k: from_parcel(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(from_parcel(v) for v in obj)
    return obj


def write_parcels(folder: Path, film, prediction, info, outputs: tuple[str, ...], anonymize: bool = False):
    """:func:`write_results` on parcels (in a worker process); returns the files written, the
    errors, and the CPU seconds of each stage in this process (:mod:`cxrviewer.node.timing`)."""
    start = time.process_time()
    film, prediction, info = from_parcel(film), from_parcel(prediction), from_parcel(info)
    unparcel = time.process_time() - start
    cpu: dict[str, float] = {}
    written, errors = write_results(folder, film, prediction, info, outputs, anonymize=anonymize, cpu=cpu)
    return written, errors, {"builder: unparcel": unparcel, **{f"builder: {k}": v for k, v in cpu.items()}}
