"""A scored film's result objects, written into the spool with the exports everyone else uses.

SR and Presentation State come from :mod:`cxrviewer.dicom`, the Secondary Capture from
:mod:`cxrviewer.dicom.sc`; each references the source instance and joins its study.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path


from ..dicom import write_result
from ..dicom.source import FilmSource
from ..errors import CxrError, OutputError
from ..storage import fsync_dir
from ..render import RenderOptions
from ..types import Film, ModelInfo, Prediction

logger = logging.getLogger(__name__)

def write_results(
    folder: Path, film: Film, prediction: Prediction, info: ModelInfo, outputs: tuple[str, ...], *,
    anonymize: bool = False, cpu: dict[str, float] | None = None, retry: set[str] | None = None,
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write each asked-for result to ``folder/<kind>.dcm``; returns the files written and, for
    each result that could not be made, why (the others are still written). ``cpu``, when
    given, gets the CPU seconds each result took (build, encode, durable write), on this
    thread's clock: the node's other threads run meanwhile when it builds in a scoring thread.
    ``retry``, when given, gets the kinds that could not be written for the disk's sake (no
    room, an I/O error): those are worth writing again later, unlike one that cannot be built."""
    written: dict[str, Path] = {}
    errors: dict[str, str] = {}
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = f"Cannot write {folder}: {exc.strerror or exc}."
        if retry is not None:
            retry.update(outputs)
        return written, {kind: why for kind in outputs}
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
        except (CxrError, OSError) as exc:
            errors[kind] = str(exc) if isinstance(exc, CxrError) else f"Cannot write {path}: {exc.strerror or exc}."
            if retry is not None and isinstance(exc, (OutputError, OSError)):
                retry.add(kind)
            continue
        finally:
            if cpu is not None:
                cpu[f"build {kind}"] = time.thread_time() - start
        written[kind] = path
    try:
        fsync_dir(folder)  # the renames of the results are durable before the job says "scored"
    except OSError as exc:
        why = f"Cannot write {folder}: {exc.strerror or exc}."
        errors.update({kind: why for kind in written})
        if retry is not None:
            retry.update(written)
        written = {}
    return written, errors
