"""The applicability gate on headers real sites write (review): Body Part Examined THORAX is a
chest; a DX "FOR PROCESSING" image (raw detector values) is not a film the model reads."""

from __future__ import annotations

import pydicom
import pytest

from cxrviewer.applicability import check, check_header
from cxrviewer.io import read_film
from gatefilms import _edited

DICOM = {"format": "dicom", "modality": "DX"}
DX_FOR_PROCESSING = "1.2.840.10008.5.1.4.1.1.1.1.1"
FOR_PROCESSING_REASON = ("a For Processing image (Presentation Intent Type FOR PROCESSING: raw detector values, "
                         "not processed for display): the model reads For Presentation films")


@pytest.mark.parametrize("body", ["THORAX", "thorax", "Chest"])
def test_thorax_is_a_chest(body):
    assert check_header({**DICOM, "body_part": body}).applicable


@pytest.mark.parametrize("meta", [
    {"sop_class_uid": DX_FOR_PROCESSING},
    {"sop_class_uid": "1.2.840.10008.5.1.4.1.1.1.1", "presentation_intent": "FOR PROCESSING"},
    {"modality": None, "sop_class_uid": DX_FOR_PROCESSING},
])
def test_a_for_processing_image_is_not_read(meta):
    verdict = check_header({**DICOM, **meta})
    assert (verdict.applicable, verdict.reason) == (False, FOR_PROCESSING_REASON)


def test_real_films_headers(tmp_path, dicom_corpus):
    chest = dicom_corpus["nih_dx"]  # generated from a sample; the real DX where ../shared/data is
    thorax = read_film(_edited(chest, tmp_path / "thorax.dcm", BodyPartExamined="THORAX"))
    assert check(thorax).applicable
    raw = _edited(chest, tmp_path / "raw.dcm", Modality="DX", PresentationIntentType="FOR PROCESSING")
    film = read_film(raw)
    assert film.metadata["presentation_intent"] == "FOR PROCESSING"
    assert check(film).reason == FOR_PROCESSING_REASON
    presentation = _edited(chest, tmp_path / "p.dcm", Modality="DX", PresentationIntentType="FOR PRESENTATION")
    assert check(read_film(presentation)).applicable
    assert pydicom.dcmread(raw).PresentationIntentType == "FOR PROCESSING"
