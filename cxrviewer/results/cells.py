"""The results' columns, a film's key (path, size, mtime) and the cells of its row."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from ..applicability import OUTSIDE_USE
from ..io import is_url, url_key
from ..types import Film, ModelInfo, Prediction

logger = logging.getLogger(__name__)

FIXED_HEAD = ("path", "status", "error", "model_version")
#: A row's ``status``: scored; not scored because the model does not read such films
#: (:mod:`cxrviewer.applicability`: not a failure, not retried); or failed (tried again on resume).
OK, NOT_APPLICABLE, ERROR = "ok", "not_applicable", "error"
#: The ``error`` cell of an ``ok`` row scored although outside the model's use (``--score-all``)
#: starts with :data:`cxrviewer.applicability.OUTSIDE_USE`, then the reason.
FIXED_TAIL = ("positives", "regions", "ood_score", "ood", "seconds", "file_size", "file_mtime_ns")
#: Rows written (and fsync'ed) together: a killed run loses at most this many rows, or a batch
#: if batches are bigger.
CSV_ROWS_PER_WRITE = 8

FileKey = tuple[str, int, int]


def csv_columns(labels: Sequence[str]) -> list[str]:
    return [*FIXED_HEAD, *labels, *FIXED_TAIL]


def file_key(path: Path | str) -> FileKey | None:
    """(absolute path, size, mtime in ns), or None when the file cannot be stat'ed; for a URL
    (an object store: :func:`cxrviewer.io.is_url`) the URL as it is, its size and mtime."""
    if is_url(path):
        return url_key(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return (os.path.abspath(path), int(st.st_size), int(st.st_mtime_ns))


# ------------------------------------------------------------------------------ cells
_UNESCAPE = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def path_cell(path: Path | str) -> str:
    """The ``path`` cell of a file: its path, escaped when it is not plain UTF-8 text.

    On POSIX, when the path's bytes are not UTF-8 or hold a backslash: bytes that are not UTF-8
    become ``\\xHH`` and ``\\`` becomes ``\\\\`` (a cell that holds a backslash is escaped). On
    Windows paths are text already; a lone UTF-16 surrogate (rare) is written as ``\\uXXXX``.
    """
    text = os.fspath(path)
    if os.name == "nt":
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    raw = os.fsencode(text)
    try:
        plain = raw.decode("utf-8")
    except UnicodeDecodeError:
        plain = None
    if plain is not None and "\\" not in plain:
        return plain
    return raw.replace(b"\\", b"\\\\").decode("utf-8", "backslashreplace")


def path_from_cell(cell: str) -> str:
    """The path (as Python gives it: ``str`` with surrogateescape) that :func:`path_cell` wrote."""
    if os.name == "nt" or "\\" not in cell:
        return cell

    def unescape(m: re.Match) -> str:
        if m.group(1) == "\\":
            return "\\"
        byte = int(m.group(1)[1:], 16)
        return chr(0xDC00 + byte) if byte >= 0x80 else chr(byte)  # the surrogate standing for the byte

    raw = _UNESCAPE.sub(unescape, cell)
    return os.fsdecode(raw.encode("utf-8", "surrogateescape"))


def text_cell(text: str) -> str:
    """Any text (an error message naming a file) as one line of valid UTF-8."""
    text = text.replace("\r", " ").replace("\n", " ")
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "surrogateescape") if os.name != "nt" else text.encode("utf-8", "backslashreplace")
        return raw.decode("utf-8", "backslashreplace")


def safe_file_stem(stem: str, limit: int = 200) -> str:
    """A file name stem that any file system takes: undecodable bytes as ``%HH``, control
    characters dropped, at most ``limit`` bytes of UTF-8 (names are limited to 255 bytes)."""
    raw = os.fsencode(stem) if os.name != "nt" else stem.encode("utf-8", "surrogatepass")
    text = raw.decode("utf-8", "backslashreplace")
    text = re.sub(r"\\x([0-9a-f]{2})", lambda m: "%" + m.group(1).upper(), text)
    text = "".join(c if c.isprintable() and c not in '<>:"/\\|?*' else "_" for c in text) or "film"
    while len(text.encode("utf-8")) > limit:
        text = text[:-1]
    return text


def region_dicts(
    prediction: Prediction,
    classes: Iterable[str],
    shape: tuple[int, int],
    level: float | None = None,
    min_area: float | None = None,
    outlines: bool = True,
) -> list[dict]:
    """The regions of ``classes`` as plain dicts; the one format of the CSV cell and the JSON file.

    Each is :meth:`cxrviewer.heatmap.Region.as_dict`: ``label``, ``probability``, ``box``
    (``x, y, width, height`` in film pixels), ``area``, ``peak`` and, with ``outlines``, the
    ``contour`` points (left out of the CSV, where an outline of hundreds of points would swamp
    the row).
    """
    from .. import heatmap

    level = heatmap.REGION_LEVEL if level is None else level
    min_area = heatmap.REGION_MIN_AREA if min_area is None else min_area
    out = []
    for label in classes:
        for r in heatmap.regions(prediction, label, shape, level, min_area):
            d = r.as_dict()
            if not outlines:
                d.pop("contour")
            out.append(d)
    return out


def regions_cell(pred: Prediction, shape: tuple[int, int] | None) -> str:
    """Compact JSON of the positive findings' regions (:func:`region_dicts` without outlines)."""
    if shape is None or not pred.positives:
        return ""
    return json.dumps(region_dicts(pred, pred.positives, shape, outlines=False), separators=(",", ":"))


def write_regions_json(
    path: Path, film: Film, pred: Prediction, info: ModelInfo, classes: Iterable[str],
    level: float | None = None, min_area: float | None = None,
) -> Path:
    """Regions of ``classes`` (boxes and outlines in film pixels, :func:`region_dicts`) as JSON."""
    from .. import heatmap
    from ..storage import atomic_write_bytes

    level = heatmap.REGION_LEVEL if level is None else level
    min_area = heatmap.REGION_MIN_AREA if min_area is None else min_area
    doc = {
        "film": film.name,
        "width": film.width,
        "height": film.height,
        "model_version": info.model_version,
        "demo": info.demo,
        "level": level,
        "min_area": min_area,
    }
    found = region_dicts(pred, classes, (film.height, film.width), level, min_area)
    # One region a line (an outline has hundreds of points: one number a line would bury it).
    regions = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in found)
    head = json.dumps(doc, indent=1, ensure_ascii=True)[:-2]  # without the closing "\n}"
    text = f'{head},\n "regions": [\n  {regions}\n ]\n}}\n' if regions else f'{head},\n "regions": []\n}}\n'
    return atomic_write_bytes(path, text.encode("utf-8", "backslashreplace"))


class ScoredFile(Protocol):
    """What a row is made of (:class:`cxrviewer.batch.ScoreResult`)."""

    @property
    def path(self) -> Path: ...
    @property
    def prediction(self) -> Prediction | None: ...
    @property
    def error(self) -> str | None: ...
    @property
    def seconds(self) -> float: ...
    @property
    def film_shape(self) -> tuple[int, int] | None: ...
    @property
    def key(self) -> FileKey | None: ...
    @property
    def status(self) -> str: ...
    @property
    def outside_use(self) -> str | None: ...


def result_row(result: ScoredFile, labels: Sequence[str], model_version: str) -> dict[str, str]:
    """One CSV row. The file's size and mtime are those taken when the film was read
    (``result.key``), so a film replaced after it was read is scored again on resume."""
    key = result.key
    row = {c: "" for c in csv_columns(labels)}
    status = result.status
    error = result.error or ""
    if status == OK and result.outside_use:
        # the reason first (what the row's figures mean), then any DICOM result that failed
        error = OUTSIDE_USE + result.outside_use + (f"; {error}" if error else "")
    row.update(
        path=path_cell(result.path),
        status=status,
        error=text_cell(error),
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
