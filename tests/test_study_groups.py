"""The film strip's studies without Qt (cxrviewer.ui.state.studies), and the header facts the
DICOM reader records for them (a hash for the patient, never the Patient ID)."""

from __future__ import annotations

import hashlib

import numpy as np
from dicomfactory import CR_IMAGE, PHI_VALUES, build_dicom

from cxrviewer.io import read_film
from cxrviewer.io.dicom_header import patient_key, read_study_facts
from cxrviewer.ui.state.studies import OTHER, StudyGroup, StudyKey, format_date, group_films, study_of, view_rank
from cxrviewer.ui.state.viewer_model import ViewerModel

A, B = patient_key("PAT-A"), patient_key("PAT-B")
OLD = StudyKey(A, "1.2.3.1", "20240110", "CHEST PA AND LAT")
NEW = StudyKey(A, "1.2.3.2", "20250314", "CHEST PA AND LAT")
OTHER_PATIENT = StudyKey(B, "1.2.3.3", "20250601", "CHEST AP")


def test_patients_then_newest_study_first_then_frontal_before_lateral():
    #            0      1     2     3              4     5     6
    studies = [OLD, None, NEW, OTHER_PATIENT, NEW, OLD, None]
    views = ["LL", "", "LL", "AP", "PA", "PA", ""]
    groups = group_films(studies, views)
    assert [g.key for g in groups] == [NEW, OLD, OTHER_PATIENT, None]
    assert [g.films for g in groups] == [(4, 2), (5, 0), (3,), (1, 6)]
    assert [g.heading for g in groups] == [
        "2025-03-14 · CHEST PA AND LAT · 2 films", "2024-01-10 · CHEST PA AND LAT · 2 films",
        "2025-06-01 · CHEST AP · 1 film", f"{OTHER} · 2 films",
    ]


def test_ap_before_lateral_and_undated_studies_after_dated_ones():
    undated = StudyKey(A, "9.9", "", "")
    groups = group_films([undated, NEW, NEW, NEW], ["PA", "LATERAL", "AP", "OBL"])
    assert [g.key for g in groups] == [NEW, undated]
    assert groups[0].films == (2, 1, 3)
    assert groups[1].heading == "no date · 1 film"
    assert (view_rank("PA"), view_rank("ap"), view_rank("LL"), view_rank("RL"), view_rank("")) == (0, 1, 2, 2, 3)


def test_films_without_a_study_only():
    assert group_films([None, None]) == (StudyGroup(None, (0, 1)),)
    assert group_films([]) == ()
    assert format_date("20250314") == "2025-03-14" and format_date("2025") == "2025"


def test_study_of_metadata():
    assert study_of({"format": "png"}) is None
    md = {"patient_key": A, "study_uid": "1.2", "study_date": "20250314", "study_description": "CHEST"}
    assert study_of(md) == StudyKey(A, "1.2", "20250314", "CHEST")


def test_the_model_tells_when_films_learn_their_study():
    model = ViewerModel()
    model.set_paths(["a.dcm", "b.dcm"])
    told = []
    model.events.studies.connect(lambda: told.append(1))
    model.set_studies({model.entries[1].path: (NEW, "PA")})
    assert (model.entries[1].study, model.entries[1].view_position) == (NEW, "PA")
    model.set_studies({model.entries[1].path: (NEW, "PA")})  # nothing new: no event
    assert told == [1]


def test_the_reader_records_the_study_and_a_hash_of_the_patient(tmp_path):
    path = build_dicom(tmp_path / "f.dcm", (np.arange(64 * 64) % 4096).reshape(64, 64).astype(np.uint16),
                       sop_class=CR_IMAGE, modality="CR", bits_stored=12, StudyInstanceUID="1.2.826.0.1.42",
                       StudyDate="20250314", StudyDescription="CHEST PA AND LAT", ViewPosition="PA")
    film = read_film(path)
    want = {"patient_key": patient_key(PHI_VALUES[1]), "study_uid": "1.2.826.0.1.42",
            "study_date": "20250314", "study_description": "CHEST PA AND LAT"}
    assert {k: film.metadata[k] for k in want} == want
    assert read_study_facts(path) == {**want, "view_position": "PA"}
    # the hash groups, it does not identify: no patient value anywhere in what is recorded
    text = repr(dict(film.metadata))
    assert not any(value in text for value in PHI_VALUES)
    assert len(want["patient_key"]) == 16 and patient_key("") == ""
    # keyed by a secret of the process: not found by hashing candidate IDs
    pid = PHI_VALUES[1].encode()
    assert want["patient_key"] not in (hashlib.sha256(pid).hexdigest()[:16], hashlib.blake2b(pid, digest_size=8).hexdigest())
