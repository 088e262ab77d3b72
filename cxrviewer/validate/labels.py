"""A site's labels file: the NIH ``Data_Entry_2017`` layout or one-hot columns, read into one table.

Two layouts are read, told apart by their header:

- **NIH** (``Data_Entry_2017.csv``): ``Image Index``, ``Finding Labels`` (names separated by
  ``|``; ``No Finding`` when there are none), and where present ``Patient ID``, ``Patient Age``,
  ``Patient Gender``, ``View Position``. A finding of the model that a film's ``Finding Labels``
  does not name is negative for that film.
- **One-hot**: a file column (``Image Index``, ``Image``, ``file``, ``filename``, ``path``...;
  else the first column) and one column per finding holding 1 (positive), 0 (negative), -1
  (uncertain, as CheXpert writes it) or nothing (not stated). Uncertain and unstated values leave
  the film out of that finding's figures; where a ``No Finding`` column says 1, an unstated
  finding is negative. Patient, age, sex and view columns are recognised by name.

Findings are matched to the model's labels by name as :mod:`cxrviewer.classes` matches them
(``Pleural_Thickening`` = ``pleural thickening``). A name the model does not have is counted
(``unknown_labels``), never an error; so is a film listed twice (the same path; the first row
counts). Films are matched to rows by file name, rows of the same name by their folders
(:meth:`LabelTable.row_for`). Columns may be separated by ``,``, ``;`` or tabs. No patient name or ID is
ever logged: a patient ID is only used to group films for the bootstrap.
"""

from __future__ import annotations

import csv
import gzip
import logging
import math
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy as np

from ..classes import name_key
from ..errors import LabelsFileError
from ..metrics import UNCERTAIN

logger = logging.getLogger(__name__)

NIH = "nih"
ONE_HOT = "one-hot"
NO_FINDING = "No Finding"

_FILE_COLUMNS = ("image index", "image", "file", "filename", "file name", "path", "image path", "name", "image id")
_PATIENT_COLUMNS = ("patient id", "patientid", "patient")
_AGE_COLUMNS = ("patient age", "age", "patientage")
_SEX_COLUMNS = ("patient gender", "patient sex", "sex", "gender", "patientsex")
_VIEW_COLUMNS = ("view position", "view", "viewposition", "ap/pa")
#: CheXpert's "Frontal/Lateral" (Frontal or Lateral): the view where the view column is empty
_PLANE_COLUMNS = ("frontal/lateral",)
_META = _PATIENT_COLUMNS + _AGE_COLUMNS + _SEX_COLUMNS + _VIEW_COLUMNS + _PLANE_COLUMNS
#: Ages (in years) outside this range are typing errors (the NIH file has a few over 400): unknown.
MAX_AGE = 130
_AGE = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*([YyMmWwDd])?\s*$")
_SEXES = {"m": "M", "male": "M", "f": "F", "female": "F"}


@dataclass(frozen=True, eq=False)
class LabelTable:
    """What a labels file says, one row per film (the first row of a file name listed twice).

    ``values`` is (rows × model labels) float: 1 positive, 0 negative, NaN not stated or
    uncertain (left out of that label's figures). ``patients``, ``ages`` (years, NaN unknown),
    ``sexes`` and ``views`` ("" unknown) are per row.
    """

    path: Path
    layout: str
    labels: tuple[str, ...]
    names: tuple[str, ...]
    values: np.ndarray
    patients: tuple[str, ...]
    ages: np.ndarray
    sexes: tuple[str, ...]
    views: tuple[str, ...]
    #: the file's findings the model does not have → films positive for them
    unknown_labels: Mapping[str, int] = field(default_factory=dict)
    #: model labels the file says nothing about (a one-hot file without their column)
    absent_labels: tuple[str, ...] = ()
    duplicate_rows: int = 0
    rows_without_name: int = 0
    #: whether the file has a patient column (the bootstrap then resamples patients)
    has_patients: bool = False
    #: each row's file cell as a path (``/``-separated, as the file gives it): tells apart rows
    #: that name files of the same name in different folders (CheXpert's ``view1_frontal.jpg``)
    cells: tuple[str, ...] = ()
    #: lookups made once (__post_init__): file name → rows, name without its extension → rows,
    #: (name, last folders...) → rows for names that several rows share, the deepest folder count
    _by_name: dict[str, list[int]] = field(init=False, repr=False, compare=False, default_factory=dict)
    _by_stem: dict[str, list[int]] = field(init=False, repr=False, compare=False, default_factory=dict)
    _name_tails: dict[tuple[str, ...], list[int]] = field(init=False, repr=False, compare=False, default_factory=dict)
    _stem_tails: dict[tuple[str, ...], list[int]] = field(init=False, repr=False, compare=False, default_factory=dict)
    _depth: int = field(init=False, repr=False, compare=False, default=0)

    def __post_init__(self) -> None:
        by_name: dict[str, list[int]] = {}
        by_stem: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            by_name.setdefault(name, []).append(i)
            by_stem.setdefault(_stem(name), []).append(i)
        object.__setattr__(self, "_by_name", by_name)
        object.__setattr__(self, "_by_stem", by_stem)
        # rows that share a name, by (name, last folders...): each lookup is a few dict look-ups,
        # not a walk over the rows (CheXpert's train.csv has ~190,000 view1_frontal.jpg)
        folders = [_parts(c)[:-1] for c in self.cells] if self.cells else [[] for _ in self.names]
        for attr, index in (("_name_tails", by_name), ("_stem_tails", by_stem)):
            tails: dict[tuple[str, ...], list[int]] = {}
            for key, rows in index.items():
                for r in rows if len(rows) > 1 else ():
                    for k in range(1, len(folders[r]) + 1):
                        tails.setdefault((key, *folders[r][-k:]), []).append(r)
            object.__setattr__(self, attr, tails)
        object.__setattr__(self, "_depth", max((len(f) for f in folders), default=0))

    def __len__(self) -> int:
        return len(self.names)

    def row_for(self, film: Path | str, *, stem: bool = True) -> int | None:
        """The row of ``film``: the row whose file name is the film's, else (``stem``) the one
        whose name without its extension is the film's (``00000022_000.png`` for
        ``00000022_000.dcm``); where several rows have that name, the one whose path shares the
        most trailing folders with the film's (none when that is a tie); None when the file does
        not list it."""
        key = file_name(film)
        rows, tails = self._by_name.get(key), self._name_tails
        if not rows and stem:
            key = _stem(key)
            rows, tails = self._by_stem.get(key), self._stem_tails
        if not rows:
            return None
        if len(rows) == 1:
            return rows[0]
        text = os.fspath(film)
        parts = _parts(text if "://" in text else os.path.abspath(text))[:-1]  # a relative path: from here
        for k in range(min(len(parts), self._depth), 0, -1):
            found = tails.get((key, *parts[-k:]))
            if found:  # the most folders shared: one row, or a tie (not guessed)
                return found[0] if len(found) == 1 else None
        return None


def file_name(path: Path | str) -> str:
    """The last part of a path, a URL or a labels cell (either kind of separator)."""
    text = os.fspath(path).rstrip("/\\")
    return PureWindowsPath(PurePosixPath(text).name).name


def _parts(text: str) -> list[str]:
    """A path, URL or labels cell as its parts (either kind of separator; no empty or ``.`` parts)."""
    return [p for p in text.replace("\\", "/").split("/") if p not in ("", ".")]


def _delimiter(header: str) -> str:
    """The field separator of a CSV whose first line is ``header``: ``,``, or ``;`` / tab where
    they split it into more columns (a spreadsheet saved as CSV in a locale whose decimal
    separator is the comma writes ``;``)."""
    counts = {d: len(next(csv.reader([header], delimiter=d), [])) for d in (",", ";", "\t")}
    best = max(counts.values())
    return next(d for d, n in counts.items() if n == best)


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else name


def read_labels(path: Path | str, labels: Sequence[str]) -> LabelTable:
    """Read ``path`` (a CSV, or a gzip'ed one: ``.csv.gz``) for a model whose findings are ``labels``; raises :class:`LabelsFileError`
    when the file cannot be read or has no file column."""
    path = Path(path)
    opener = gzip.open if path.suffix.lower() == ".gz" else open  # Data_Entry_2017.csv.gz as the NIH ships it
    try:
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            delimiter = _delimiter(fh.readline())
            fh.seek(0)
            reader = csv.reader(fh, delimiter=delimiter)
            header = next(reader, None)
            records = [r for r in reader if any(cell.strip() for cell in r)]
    except FileNotFoundError:
        raise LabelsFileError(f"{path}: no such labels file.") from None
    except IsADirectoryError:
        raise LabelsFileError(f"{path} is a folder; give the labels CSV file.") from None
    except UnicodeDecodeError:
        raise LabelsFileError(f"{path} is not a UTF-8 text CSV; save it as CSV UTF-8 and try again.") from None
    except (OSError, EOFError, csv.Error) as exc:
        raise LabelsFileError(f"Cannot read the labels file {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    if not header or not records:
        raise LabelsFileError(f"{path} holds no labelled films (a header line and one row per film are needed).")
    keys = [name_key(h) for h in header]
    if "image index" in keys and "finding labels" in keys:
        return _read_nih(path, header, keys, records, tuple(labels))
    return _read_one_hot(path, header, keys, records, tuple(labels))


#: The same finding under CheXpert's name (CheXpert, MIMIC-CXR) and the NIH's: torchxrayvision
#: relabels one as the other. Used only where the model lacks the file's name.
_ALIASES = {"pleural effusion": "effusion"}


def _label_index(labels: Sequence[str]) -> dict[str, int]:
    """The model's labels by :func:`name_key`, with the :data:`_ALIASES` of those it has."""
    index = {name_key(label): i for i, label in enumerate(labels)}
    for alias, key in _ALIASES.items():
        if key in index and alias not in index:
            index[alias] = index[key]
    return index


def _column(keys: Sequence[str], names: Sequence[str]) -> int | None:
    for n in names:
        if n in keys:
            return keys.index(n)
    return None


def _cell(record: Sequence[str], col: int | None) -> str:
    return record[col].strip() if col is not None and col < len(record) else ""


def parse_age(text: str) -> float:
    """Years from ``58``, ``058Y`` (a DICOM Age String, PS3.5 6.2), ``7M``, ``3W`` or ``10D``;
    NaN when empty, unreadable or over :data:`MAX_AGE`."""
    m = _AGE.match(text)
    if not m:
        return math.nan
    value = float(m.group(1))
    unit = (m.group(2) or "Y").upper()
    years = value / {"Y": 1.0, "M": 12.0, "W": 52.0, "D": 365.0}[unit]
    return years if years <= MAX_AGE else math.nan


def parse_sex(text: str) -> str:
    """``M`` or ``F`` (also from male/female), else "" (unknown or other)."""
    return _SEXES.get(text.strip().casefold(), "")


class _Rows:
    """The per-film columns as they are gathered, deduplicated by file name."""

    def __init__(self, header_keys: Sequence[str]) -> None:
        self.file_col: int | None = None
        self.patient_col = _column(header_keys, _PATIENT_COLUMNS)
        self.age_col = _column(header_keys, _AGE_COLUMNS)
        self.sex_col = _column(header_keys, _SEX_COLUMNS)
        self.view_col = _column(header_keys, _VIEW_COLUMNS)
        self.plane_col = _column(header_keys, _PLANE_COLUMNS)
        self.names: list[str] = []
        self.cells: list[str] = []
        self.values: list[np.ndarray] = []
        self.patients: list[str] = []
        self.ages: list[float] = []
        self.sexes: list[str] = []
        self.views: list[str] = []
        self.seen: set[str] = set()
        self.duplicates = 0
        self.nameless = 0

    def take(self, record: Sequence[str]) -> str | None:
        """The film's name when the row is new (its metadata recorded), else None."""
        cell = "/".join(_parts(_cell(record, self.file_col)))
        name = file_name(cell)
        if not name:
            self.nameless += 1
            return None
        if cell in self.seen:
            self.duplicates += 1
            return None
        self.seen.add(cell)
        self.names.append(name)
        self.cells.append(cell)
        self.patients.append(_cell(record, self.patient_col))
        self.ages.append(parse_age(_cell(record, self.age_col)))
        self.sexes.append(parse_sex(_cell(record, self.sex_col)))
        view = _cell(record, self.view_col).upper()
        if not view and _cell(record, self.plane_col).upper() == "LATERAL":
            view = "LATERAL"
        self.views.append(view)
        return name

    def table(self, path: Path, layout: str, labels: tuple[str, ...], unknown: Counter, absent: tuple[str, ...]) -> LabelTable:
        if not self.names:
            raise LabelsFileError(f"{path} names no film in its file column; see docs/validation.md for the layouts read.")
        if self.duplicates:
            logger.warning("%s lists %d film(s) more than once: the first row of each counts", path, self.duplicates)
        values = np.array(self.values, dtype=np.float64).reshape(len(self.names), len(labels))
        return LabelTable(
            path=path, layout=layout, labels=labels, names=tuple(self.names), values=values,
            cells=tuple(self.cells), patients=tuple(self.patients), ages=np.array(self.ages, dtype=np.float64),
            sexes=tuple(self.sexes), views=tuple(self.views), unknown_labels=dict(sorted(unknown.items())),
            absent_labels=absent, duplicate_rows=self.duplicates, rows_without_name=self.nameless,
            has_patients=self.patient_col is not None and any(self.patients),
        )


def _read_nih(path: Path, header: list[str], keys: list[str], records: list[list[str]], labels: tuple[str, ...]) -> LabelTable:
    rows = _Rows(keys)
    rows.file_col = keys.index("image index")
    findings_col = keys.index("finding labels")
    index = _label_index(labels)
    no_finding = name_key(NO_FINDING)
    unknown: Counter = Counter()
    for record in records:
        if rows.take(record) is None:
            continue
        y = np.zeros(len(labels), dtype=np.float64)  # every finding the row does not name is negative
        # "|" as the NIH writes it; "," and ";" as a site's own export may (no finding name has them)
        for name in (n.strip() for n in re.split(r"[|;,]", _cell(record, findings_col))):
            key = name_key(name)
            if not key or key == no_finding:
                continue
            if key in index:
                y[index[key]] = 1.0
            else:
                unknown[name] += 1
        rows.values.append(y)
    return rows.table(path, NIH, labels, unknown, ())


def _binary(cell: str) -> float | None:
    """1.0 / 0.0 / UNCERTAIN / NaN (empty) for a one-hot cell; None when it is not one."""
    if not cell:
        return math.nan
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if value in (0.0, 1.0, UNCERTAIN) else None


def _read_one_hot(path: Path, header: list[str], keys: list[str], records: list[list[str]], labels: tuple[str, ...]) -> LabelTable:
    rows = _Rows(keys)
    rows.file_col = _column(keys, _FILE_COLUMNS)
    if rows.file_col is None:
        rows.file_col = 0
    meta = {rows.file_col, rows.patient_col, rows.age_col, rows.sex_col, rows.view_col, rows.plane_col}
    no_finding = name_key(NO_FINDING)
    # a finding column holds only 1, 0, -1 or nothing
    columns: dict[int, np.ndarray] = {}
    for c in range(len(header)):
        if c in meta:
            continue
        cells = [_binary(_cell(r, c)) for r in records]
        if any(v is None for v in cells) or all(math.isnan(v) for v in cells):
            continue
        columns[c] = np.array(cells, dtype=np.float64)
    if not columns:
        raise LabelsFileError(
            f"{path} has neither the NIH columns (Image Index, Finding Labels) nor one-hot finding columns "
            "(0/1 values); see docs/validation.md for the layouts read."
        )
    index = _label_index(labels)
    label_cols: dict[int, int] = {}
    unknown: Counter = Counter()
    no_finding_col = None
    for c, values in columns.items():
        key = keys[c]
        if key == no_finding:
            no_finding_col = c
        elif key in index and index[key] not in label_cols.values():
            label_cols[c] = index[key]
        else:
            unknown[header[c].strip()] += int(np.sum(values == 1.0))
    absent = tuple(label for i, label in enumerate(labels) if i not in label_cols.values())
    for k, record in enumerate(records):
        if rows.take(record) is None:
            continue
        y = np.full(len(labels), np.nan, dtype=np.float64)
        for c, i in label_cols.items():
            v = columns[c][k]
            y[i] = math.nan if v == UNCERTAIN else v
        if no_finding_col is not None and columns[no_finding_col][k] == 1.0:
            y[np.isnan(y)] = 0.0  # "No Finding" means every finding not stated is negative
            for c, i in label_cols.items():  # an uncertain one stays out
                if columns[c][k] == UNCERTAIN:
                    y[i] = math.nan
        rows.values.append(y)
    return rows.table(path, ONE_HOT, labels, unknown, absent)
