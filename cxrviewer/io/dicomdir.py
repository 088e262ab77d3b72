"""A DICOM CD (or USB stick): the DICOMDIR's patients and studies, read with pydicom's ``FileSet``.

A DICOMDIR (PS3.10 7.2, the Basic Directory IOD of PS3.3 F) lists what a DICOM File-set holds:
PATIENT records, their STUDY records, SERIES and IMAGE records that name the files. The CDs
patients bring from other hospitals carry one. :func:`read_dicomdir` turns it into one
:class:`CdStudy` a study, with the files of its images; the app lists them and opens one. A
folder without a DICOMDIR is read by its files' headers instead (:func:`read_study_folder`):
each DICOM file found by its content, grouped by Study Instance UID, whatever the files are
called. :func:`read_cd` picks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..errors import UnreadableImageError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CdStudy:
    """A study on the CD, as its DICOMDIR describes it."""

    PatientID: str
    PatientName: str
    StudyInstanceUID: str
    StudyDate: str
    StudyDescription: str
    modalities: tuple[str, ...]
    files: tuple[Path, ...]


def _value(instance, keyword: str) -> str:
    """``keyword`` from the instance's records (IMAGE, then SERIES, STUDY, PATIENT: pydicom's
    ``FileInstance`` looks in each in turn), or ``""``."""
    try:
        value = instance[keyword].value if keyword in instance else ""
    except (KeyError, AttributeError):
        return ""
    return str(value or "").strip()


def read_dicomdir(path: Path | str) -> list[CdStudy]:
    """The studies of the DICOMDIR at ``path`` (the file, or the folder holding it), by patient
    then date; files the DICOMDIR names but the CD does not hold are left out with a warning."""
    from pydicom.errors import InvalidDicomError
    from pydicom.fileset import FileSet

    path = Path(path)
    if path.is_dir():
        path = path / "DICOMDIR"
    try:
        fs = FileSet(path)
    except (OSError, InvalidDicomError, ValueError, AttributeError, KeyError) as exc:
        raise UnreadableImageError(f"{path} is not a readable DICOMDIR ({type(exc).__name__}: {exc}). Choose the "
                                   "DICOMDIR file at the top of the CD.") from None
    studies: dict[str, dict] = {}
    missing = 0
    for instance in fs:
        # the records above this instance: IMAGE < SERIES < STUDY < PATIENT (PS3.3 F.5)
        study_uid = _value(instance, "StudyInstanceUID")
        if not study_uid:
            continue
        file = Path(instance.path)
        if not file.is_file():
            missing += 1
            continue
        entry = studies.setdefault(study_uid, {
            "PatientID": _value(instance, "PatientID"),
            "PatientName": _value(instance, "PatientName"),
            "StudyDate": _value(instance, "StudyDate"),
            "StudyDescription": _value(instance, "StudyDescription"),
            "modalities": {}, "files": [],
        })
        modality = _value(instance, "Modality")
        if modality:
            entry["modalities"][modality] = None
        entry["files"].append(file)
    if missing:
        logger.warning("%s names %d file(s) the CD does not hold; left out", path, missing)
    out = [CdStudy(e["PatientID"], e["PatientName"], uid, e["StudyDate"], e["StudyDescription"],
                   tuple(e["modalities"]), tuple(sorted(e["files"]))) for uid, e in studies.items()]
    return sorted(out, key=lambda s: (s.PatientName, s.PatientID, s.StudyDate, s.StudyInstanceUID))


#: the header elements :func:`read_study_folder` reads (the pixels are never read)
_HEADER = ["PatientID", "PatientName", "StudyInstanceUID", "StudyDate", "StudyDescription", "Modality"]


def read_study_folder(folder: Path | str) -> list[CdStudy]:
    """The studies of the DICOM files under ``folder`` (sub-folders too), by their headers; files
    that are not DICOM, or have no Study Instance UID, are left out."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    from .files import list_films
    from .sniff import is_dicom

    studies: dict[str, dict] = {}
    skipped = 0
    for path in list_films([Path(folder)], recursive=True):
        if isinstance(path, str) or not is_dicom(path):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER, force=True)
        except (OSError, InvalidDicomError, ValueError, EOFError, AttributeError):
            skipped += 1
            continue
        uid = str(ds.get("StudyInstanceUID", "") or "").strip()
        if not uid:
            skipped += 1
            continue
        entry = studies.setdefault(uid, {
            "PatientID": str(ds.get("PatientID", "") or "").strip(),
            "PatientName": str(ds.get("PatientName", "") or "").strip(),
            "StudyDate": str(ds.get("StudyDate", "") or "").strip(),
            "StudyDescription": str(ds.get("StudyDescription", "") or "").strip(),
            "modalities": {}, "files": [],
        })
        modality = str(ds.get("Modality", "") or "").strip()
        if modality:
            entry["modalities"][modality] = None
        entry["files"].append(Path(path))
    if skipped:
        logger.info("%s: %d DICOM file(s) without a readable study left out", folder, skipped)
    out = [CdStudy(e["PatientID"], e["PatientName"], uid, e["StudyDate"], e["StudyDescription"],
                   tuple(e["modalities"]), tuple(sorted(e["files"]))) for uid, e in studies.items()]
    return sorted(out, key=lambda s: (s.PatientName, s.PatientID, s.StudyDate, s.StudyInstanceUID))


def read_cd(path: Path | str) -> list[CdStudy]:
    """A DICOMDIR (the file, or a folder holding one) by :func:`read_dicomdir`; any other folder
    by its files' headers (:func:`read_study_folder`)."""
    path = Path(path)
    if path.is_dir() and not (path / "DICOMDIR").is_file():
        return read_study_folder(path)
    return read_dicomdir(path)
