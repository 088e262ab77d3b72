"""A scored film's result objects, written into the spool with the exports everyone else uses.

SR and Presentation State come from :mod:`cxrviewer.dicom`, the Secondary Capture from
:mod:`cxrviewer.dicom_export`; each references the source instance and joins its study.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..dicom import export_dicom_gsps, export_dicom_sr
from ..dicom_export import export_dicom_sc
from ..errors import CxrError
from ..render import RenderOptions
from ..types import Film, ModelInfo, Prediction
from .spool import fsync_dir

logger = logging.getLogger(__name__)


def write_results(
    folder: Path, film: Film, prediction: Prediction, info: ModelInfo, outputs: tuple[str, ...], *, anonymize: bool = False
) -> tuple[dict[str, Path], dict[str, str]]:
    """Write each asked-for result to ``folder/<kind>.dcm``; returns the files written and, for
    each result that could not be made, why (the others are still written)."""
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    errors: dict[str, str] = {}
    for kind in outputs:
        path = folder / f"{kind}.dcm"
        try:
            if kind == "sr":
                export_dicom_sr(path, film, prediction, info, anonymize=anonymize)
            elif kind == "gsps":
                export_dicom_gsps(path, film, prediction, info, anonymize=anonymize)
            elif kind == "sc":
                export_dicom_sc(path, film, prediction, info, RenderOptions(), anonymize=anonymize)
            else:  # pragma: no cover - the config refuses other names
                raise ValueError(kind)
        except CxrError as exc:
            errors[kind] = str(exc)
            continue
        written[kind] = path
    fsync_dir(folder)  # the renames of the results are durable before the job says "scored"
    return written, errors
