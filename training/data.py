"""Training data sources → one table of records (film path, raw label values, patient).

Four sources, one result (:class:`Table`):

(a) the official NIH ChestX-ray14 ``Data_Entry_2017`` CSV (``Finding Labels`` ``|``-separated,
    ``No Finding`` when empty; its header really splits ``OriginalImage[Width`` and ``Height]``
    into two columns) plus an image folder (flat, or the release's ``images_0NN/images/`` tree);
(b) one-hot CSVs like the deeplearning.ai course's ``train-small.csv`` (``Image``, one column per
    label, ``PatientId``) — and CheXpert/MIMIC-CXR label files, whose ``-1`` means *uncertain*
    and whose blanks mean *not mentioned*;
(c) class folders (``train/NORMAL``, ``train/PNEUMONIA``, ...): one label per folder, a folder
    named ``NORMAL`` (or ``No Finding``) meaning every label is negative;
(d) uncertain labels are kept raw here (``-1``) and mapped by :func:`targets` with a value *u*
    and a loss weight *w* (``--uncertain-value``, ``--uncertain-weight``).

Label files list films that may not be on disk (the course CSVs list 1,620 films, 74 exist):
missing files are skipped and counted, never a crash. Films are read with the app's own reader
(:func:`cxrviewer.io.read_film`) so training sees exactly what the app sees.
"""

from __future__ import annotations

import csv
import gzip
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cxrviewer.io import SUPPORTED_SUFFIXES, read_film

from .errors import DataError
from .labels import NIH_LABELS, NO_FINDING, UNCERTAIN

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset(s.lower() for s in SUPPORTED_SUFFIXES)
SPLITS = ("train", "valid", "test")
_SPLIT_DIRS = {"train": "train", "training": "train", "val": "valid", "valid": "valid",
               "validation": "valid", "test": "test", "testing": "test"}
_NEGATIVE_DIRS = {"normal", "no finding", "no_finding", "nofinding", "negative"}

_IMAGE_COLUMNS = ("Image Index", "Image", "Path", "path", "image", "filename", "file", "dicom_path")
_PATIENT_COLUMNS = ("Patient ID", "PatientId", "PatientID", "patient_id", "subject_id", "patient")
_META_COLUMNS = {
    "sex", "age", "frontal/lateral", "ap/pa", "patient age", "patient gender", "view position",
    "viewposition", "follow-up #", "study_id", "dicom_id", "split", "originalimage[width", "height]",
    "originalimagepixelspacing[x", "y]", "finding labels",
}
#: Patient ids recoverable from file names: CheXpert, Kermany pediatric pneumonia, NIH.
_PATIENT_PATTERNS = (
    re.compile(r"(patient\d+)", re.IGNORECASE),  # CheXpert: .../patient00001/study1/view1_frontal.jpg
    re.compile(r"(person\d+)", re.IGNORECASE),  # Kermany: person1_bacteria_1.jpeg
    re.compile(r"(?:^|/)(\d{8})_\d{3}\.\w+$"),  # NIH: 00000013_005.png
    re.compile(r"((?:NORMAL2-)?IM-\d+)", re.IGNORECASE),  # Kermany: IM-0115-0001.jpeg
)


@dataclass(frozen=True)
class Record:
    """One film: its path, the raw label values (1, 0 or -1 = uncertain), its patient, a preset split."""

    path: Path
    values: tuple[float, ...]
    patient: str
    split: str | None = None


@dataclass(frozen=True)
class Table:
    """Records of one or more sources that share a label list."""

    labels: tuple[str, ...]
    records: tuple[Record, ...]
    source: str
    kind: str
    rows: int = 0
    skipped_missing: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return len(self.records)

    def values(self) -> np.ndarray:
        """(N, C) float32 raw label values."""
        return np.array([r.values for r in self.records], dtype=np.float32).reshape(-1, len(self.labels))


def targets(values: np.ndarray, uncertain_value: float = 0.0, uncertain_weight: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Training targets and per-element loss weights from raw values.

    Certain labels keep their value with weight 1; uncertain ones (-1) become ``uncertain_value``
    with weight ``uncertain_weight`` (CheXpert's U-Zeros is u=0, U-Ones u=1, U-Ignore w=0).
    """
    v = np.asarray(values, dtype=np.float32)
    unsure = v == UNCERTAIN
    y = np.where(unsure, np.float32(uncertain_value), v).astype(np.float32)
    w = np.where(unsure, np.float32(uncertain_weight), np.float32(1.0)).astype(np.float32)
    return y, w


# ----------------------------------------------------------------------------- reading films
def read_pixels(path: str | os.PathLike[str]) -> np.ndarray:
    """A film's pixels, float32 H×W in [0, 1], white = dense: the app's own :func:`read_film`."""
    return read_film(path).pixels


# ----------------------------------------------------------------------------- finding files
class ImageFinder:
    """Finds the file a label row names under an image folder.

    Tries the name as a path relative to the folder (and with leading components dropped, for
    CheXpert's ``CheXpert-v1.0-small/train/...``), then — for bare file names — any file of that
    name below the folder (the NIH release spreads films over ``images_001/images`` ...).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"Image folder not found: {self.root}. Pass the folder that holds the films with --images DIR.")
        self._index: dict[str, Path] | None = None

    def find(self, name: str) -> Path | None:
        rel = Path(name.strip().replace("\\", "/"))
        if rel.is_absolute():
            return rel if rel.is_file() else None
        parts = rel.parts
        for i in range(len(parts)):
            candidate = self.root.joinpath(*parts[i:])
            if candidate.is_file():
                return candidate
        if len(parts) == 1:
            return self._names().get(parts[0])
        return None

    def _names(self) -> dict[str, Path]:
        if self._index is None:
            index: dict[str, Path] = {}
            for dirpath, _, files in os.walk(self.root):
                for f in files:
                    if Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                        index.setdefault(f, Path(dirpath) / f)
            self._index = index
            logger.debug("indexed %d image files below %s", len(index), self.root)
        return self._index


def patient_from_name(name: str) -> str | None:
    """The patient id encoded in a file path (CheXpert ``patientNNNNN``, ``personN``, NIH ``NNNNNNNN_NNN``)."""
    text = name.replace("\\", "/")
    for pattern in _PATIENT_PATTERNS:
        m = pattern.search(text)
        if m:
            return m.group(1)
    return None


# ----------------------------------------------------------------------------- CSV sources
def load_labels_csv(
    csv_path: str | os.PathLike[str],
    images: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    split: str | None = None,
) -> Table:
    """Read an NIH ``Data_Entry_2017`` CSV or a one-hot CSV (sniffed from the header)."""
    path = Path(csv_path)
    header, rows = _read_csv(path)
    if "Finding Labels" in header:
        return load_nih_csv(path, images, labels, split=split, _parsed=(header, rows))
    return load_onehot_csv(path, images, labels, split=split, _parsed=(header, rows))


def load_nih_csv(
    csv_path: str | os.PathLike[str],
    images: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    split: str | None = None,
    _parsed: tuple[list[str], list[dict[str, str]]] | None = None,
) -> Table:
    """The official NIH ``Data_Entry_2017`` format: ``Image Index``, ``Finding Labels``, ``Patient ID``."""
    path = Path(csv_path)
    header, rows = _parsed or _read_csv(path)
    for col in ("Image Index", "Finding Labels"):
        if col not in header:
            raise DataError(
                f"{path.name} has no {col!r} column, so it is not a Data_Entry_2017 file. "
                "Pass the official NIH CSV, or a one-hot CSV (Image, one column per label, PatientId)."
            )
    chosen = tuple(labels) if labels else NIH_LABELS
    known = set(NIH_LABELS) | set(chosen)
    finder = ImageFinder(Path(images))
    patient_col = _first(header, _PATIENT_COLUMNS)
    records, missing, unknown = [], 0, set()
    for row in rows:
        name = row["Image Index"].strip()
        findings = {f.strip() for f in (row["Finding Labels"] or "").split("|") if f.strip()}
        findings.discard(NO_FINDING)
        unknown |= findings - known
        file = finder.find(name)
        if file is None:
            missing += 1
            continue
        patient = (row.get(patient_col) or "").strip() if patient_col else ""
        records.append(Record(file, tuple(1.0 if c in findings else 0.0 for c in chosen),
                              patient or patient_from_name(name) or Path(name).stem, split))
    if unknown and not labels:
        raise DataError(
            f"{path.name} has findings that are not ChestX-ray14 labels: {', '.join(sorted(unknown))}. "
            "Pass --labels A,B,... to choose the labels to train."
        )
    return _finish(path, chosen, records, len(rows), missing, "nih-csv",
                   f"NIH ChestX-ray14 labels ({path.name}, Data_Entry_2017 format)")


def load_onehot_csv(
    csv_path: str | os.PathLike[str],
    images: str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    split: str | None = None,
    _parsed: tuple[list[str], list[dict[str, str]]] | None = None,
) -> Table:
    """One column per label with 1/0 (course CSVs) and -1/blank (CheXpert, MIMIC-CXR)."""
    path = Path(csv_path)
    header, rows = _parsed or _read_csv(path)
    image_col = _first(header, _IMAGE_COLUMNS)
    if image_col is None:
        raise DataError(
            f"{path.name} has no image column (one of {', '.join(_IMAGE_COLUMNS)}). "
            "Name the column of file names 'Image' (or pass an NIH Data_Entry_2017 file)."
        )
    patient_col = _first(header, _PATIENT_COLUMNS)
    candidates = [c for c in header if c not in (image_col, patient_col) and c.strip().lower() not in _META_COLUMNS]
    label_cols = [c for c in candidates if all(_parse_value(r.get(c)) is not None for r in rows)]
    dropped = [c for c in candidates if c not in label_cols]
    if dropped:
        logger.info("%s: ignoring columns that are not 1/0/-1 labels: %s", path.name, ", ".join(dropped))
    if labels:
        absent = [c for c in labels if c not in header]
        bad = [c for c in labels if c in header and c not in label_cols]
        if absent or bad:
            raise DataError(
                f"{path.name}: --labels names columns that are "
                + (f"missing ({', '.join(absent)})" if absent else "")
                + ("; " if absent and bad else "")
                + (f"not 1/0/-1 labels ({', '.join(bad)})" if bad else "")
                + f". Its label columns are: {', '.join(label_cols)}."
            )
        label_cols = list(labels)
    if not label_cols:
        raise DataError(f"{path.name} has no label columns with 1/0/-1 values. See docs/training.md for the formats.")
    finder = ImageFinder(Path(images))
    records, missing, no_patient = [], 0, 0
    for row in rows:
        name = (row.get(image_col) or "").strip()
        file = finder.find(name) if name else None
        if file is None:
            missing += 1
            continue
        patient = (row.get(patient_col) or "").strip() if patient_col else ""
        patient = patient or patient_from_name(name) or ""
        if not patient:
            no_patient += 1
            patient = name
        records.append(Record(file, tuple(_parse_value(row.get(c)) for c in label_cols), patient, split))
    notes = []
    if no_patient:
        notes.append(f"{no_patient} films have no patient id: each counts as its own patient")
        logger.warning("%s: %d films have no patient id; each is treated as its own patient, so the split "
                       "cannot keep one patient's films together. Add a PatientId column.", path.name, no_patient)
    table = _finish(path, tuple(label_cols), records, len(rows), missing, "onehot-csv",
                    f"one-hot labels ({path.name})")
    n_unsure = int(np.sum(table.values() == UNCERTAIN))
    if n_unsure:
        notes.append(f"{n_unsure} uncertain labels (-1)")
    return Table(**{**table.__dict__, "notes": tuple(notes)})


def _parse_value(text: str | None) -> float | None:
    s = (text or "").strip()
    if not s:
        return 0.0  # CheXpert/MIMIC blank: the finding is not mentioned → negative
    try:
        v = float(s)
    except ValueError:
        return None
    return v if v in (0.0, 1.0, UNCERTAIN) else None


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    if not path.is_file():
        raise DataError(f"Labels file not found: {path}. Pass it with --labels-csv CSV.")
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = [h.strip() for h in (reader.fieldnames or [])]
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"Cannot read {path.name} as CSV ({exc}).") from None
    if not header or not rows:
        raise DataError(f"{path.name} is empty: it needs a header row and one row per film.")
    if any(h != h0 for h, h0 in zip(header, reader.fieldnames or [])):
        rows = [{(k.strip() if isinstance(k, str) else k): v for k, v in r.items()} for r in rows]
    return header, rows


def _first(header: Iterable[str], names: Sequence[str]) -> str | None:
    hs = list(header)
    for n in names:
        if n in hs:
            return n
    return None


def _finish(path: Path, labels: tuple[str, ...], records: list[Record], rows: int, missing: int, kind: str, source: str) -> Table:
    if missing:
        logger.warning("%s: %d of %d listed films are not in the image folder; skipped.", path.name, missing, rows)
    if not records:
        raise DataError(
            f"None of the {rows} films listed in {path.name} were found in the image folder. "
            "Check --images: it must be the folder that holds the files the CSV names."
        )
    logger.info("%s: %d films, %d labels (%d listed, %d missing)", path.name, len(records), len(labels), rows, missing)
    return Table(labels=labels, records=tuple(records), source=source, kind=kind, rows=rows, skipped_missing=missing)


# ----------------------------------------------------------------------------- class folders
def load_folders(root: str | os.PathLike[str], labels: Sequence[str] | None = None) -> Table:
    """Class folders: ``ROOT/{train,val,test}/CLASS/*`` or ``ROOT/CLASS/*``.

    Every class folder is a label (``PNEUMONIA`` → ``Pneumonia``) except ``NORMAL`` / ``No Finding``,
    whose films are negative for every label. ``train``/``val``/``test`` folders set the split.
    """
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"Class-folder root not found: {base}. Pass a folder holding NORMAL/, PNEUMONIA/ ... (or train/, val/, test/).")
    subdirs = sorted(p for p in base.iterdir() if p.is_dir())
    split_dirs = [(p, _SPLIT_DIRS[p.name.lower()]) for p in subdirs if p.name.lower() in _SPLIT_DIRS]
    trees = split_dirs if split_dirs else [(base, None)]
    found: list[tuple[Path, str | None, str]] = []  # (file, split, class folder name)
    for tree, split in trees:
        for cls in sorted(p for p in tree.iterdir() if p.is_dir()):
            for dirpath, _, files in os.walk(cls):
                for f in sorted(files):
                    if Path(f).suffix.lower() in IMAGE_EXTENSIONS:
                        found.append((Path(dirpath) / f, split, cls.name))
    classes = sorted({_label_name(c) for _, _, c in found if c.lower() not in _NEGATIVE_DIRS})
    if not found or not classes:
        raise DataError(
            f"{base} holds no class folders with films (expected e.g. train/NORMAL/*.png and train/PNEUMONIA/*.png)."
        )
    chosen = tuple(labels) if labels else tuple(classes)
    unknown = [c for c in chosen if c not in classes]
    if unknown:
        raise DataError(f"--labels names classes with no folder: {', '.join(unknown)}. The folders give: {', '.join(classes)}.")
    records, no_patient = [], 0
    for file, split, cls in found:
        name = _label_name(cls)
        patient = patient_from_name(file.name)
        if patient is None:
            no_patient += 1
            patient = f"{cls}/{file.stem}"
        records.append(Record(file, tuple(1.0 if c == name else 0.0 for c in chosen), patient, split))
    notes = []
    if no_patient:
        notes.append(f"{no_patient} films have no patient id in their name: each counts as its own patient")
        logger.warning("%d films have no patient id in their file name; each is treated as its own patient.", no_patient)
    logger.info("%s: %d films in %d class folders (%s)", base.name, len(records), len({c for _, _, c in found}),
                "preset splits" if split_dirs else "no split folders")
    return Table(labels=chosen, records=tuple(records), source=f"class folders ({base.name}/)", kind="folders",
                 rows=len(records), skipped_missing=0, notes=tuple(notes))


def _label_name(folder: str) -> str:
    return folder.capitalize() if folder.isupper() else folder


# ----------------------------------------------------------------------------- combining
def merge(tables: Sequence[Table]) -> Table:
    """Tables from several files (``--labels-csv`` + ``--valid-csv`` ...) with one label list."""
    first = tables[0]
    for t in tables[1:]:
        if t.labels != first.labels:
            raise DataError(
                f"The label files disagree on labels ({', '.join(first.labels)} vs {', '.join(t.labels)}). "
                "Pass --labels A,B,... to pick the same columns from each."
            )
    if len(tables) == 1:
        return first
    return Table(
        labels=first.labels,
        records=tuple(r for t in tables for r in t.records),
        source=" + ".join(t.source for t in tables),
        kind=first.kind,
        rows=sum(t.rows for t in tables),
        skipped_missing=sum(t.skipped_missing for t in tables),
        notes=tuple(n for t in tables for n in t.notes),
    )
