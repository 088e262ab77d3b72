"""A DICOM CD's DICOMDIR (made here with pydicom's FileSet) read by cxrviewer.io.dicomdir."""

from __future__ import annotations

import pydicom
import pytest
from dicomfactory import PACS_PATIENTS, make_pacs_studies
from pydicom.fileset import FileSet

from cxrviewer.errors import UnreadableImageError
from cxrviewer.io.dicomdir import read_cd, read_dicomdir, read_study_folder


def test_dicomdir_lists_each_study_with_its_files(tmp_path):
    films = make_pacs_studies(tmp_path / "films", "20250606", size=32)
    fs = FileSet()
    for f in films:
        if f.modality != "SR":  # the SR has no default DICOMDIR record creator in pydicom
            fs.add(pydicom.dcmread(f.path))
    fs.write(tmp_path / "cd")
    studies = read_dicomdir(tmp_path / "cd")  # the folder, or the file itself
    assert studies == read_dicomdir(tmp_path / "cd" / "DICOMDIR")
    expected = {f.study_uid for f in films if f.modality != "SR"}
    assert {s.StudyInstanceUID for s in studies} == expected and len(studies) == len(expected) == 10
    for s in studies:
        mine = [f for f in films if f.study_uid == s.StudyInstanceUID and f.modality != "SR"]
        assert {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in s.files} == {f.sop_uid for f in mine}
        assert (s.PatientID, s.PatientName, s.StudyDate) == (mine[0].patient_id, mine[0].patient_name, mine[0].study_date)
        assert s.modalities == (mine[0].modality,)
    assert {s.PatientID for s in studies} == {pid for pid, _ in PACS_PATIENTS}
    ct = next(s for s in studies if s.modalities == ("CT",))
    assert ct.StudyDescription == "CT THORAX"
    next(iter(studies[0].files)).unlink()  # a file the DICOMDIR names but the CD lost
    assert len(read_dicomdir(tmp_path / "cd")[0].files) == len(studies[0].files) - 1


def test_not_a_dicomdir_says_so(tmp_path):
    (tmp_path / "DICOMDIR").write_bytes(b"no")
    with pytest.raises(UnreadableImageError, match="not a readable DICOMDIR"):
        read_dicomdir(tmp_path)
    with pytest.raises(UnreadableImageError, match="not a readable DICOMDIR"):
        read_dicomdir(tmp_path / "missing")


def test_a_folder_without_dicomdir_is_read_by_its_headers(tmp_path):
    films = make_pacs_studies(tmp_path / "films", "20250606", size=32)
    # names that say nothing (UIDs without a suffix, as PACS exports write them), sub-folders,
    # and a PNG that is not DICOM
    disc = tmp_path / "disc"
    for i, f in enumerate(films):
        target = disc / f"D{i % 3}" / f.sop_uid
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f.path.read_bytes())
    (disc / "readme.png").write_bytes(b"not a film")
    studies = read_cd(disc)
    assert studies == read_study_folder(disc)
    assert {s.StudyInstanceUID for s in studies} == {f.study_uid for f in films}
    for s in studies:
        assert {p.name for p in s.files} == {f.sop_uid for f in films if f.study_uid == s.StudyInstanceUID}
    sr_study = next(f.study_uid for f in films if f.modality == "SR")
    assert next(s for s in studies if s.StudyInstanceUID == sr_study).modalities in (("CR", "SR"), ("SR", "CR"))
