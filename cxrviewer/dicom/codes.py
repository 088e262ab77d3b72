"""Coded concepts of the DICOM results: the 14 ChestX-ray14 findings and the report's terms.

Where a code comes from (the table is also in ``docs/dicom-results.md``):

- ``PS3.16``: the code and its meaning are listed in DICOM PS3.16 (checked in the tests against
  pydicom's concept dictionary, which is generated from PS3.16); for the findings most are in
  CID 6102 "Thoracic Radiographic Findings" of the chest CAD SR.
- ``SNOMED CT (tables)``: not in PS3.16; the code was found with the same meaning in several
  independent public SNOMED CT code tables and in none with another meaning.
- ``99CXRV``: cxrviewer's own coding scheme (PS3.3 8.2: a private scheme's designator starts
  with "99"), used where no standard code could be verified. Each such code's meaning is the
  ChestX-ray14 label as the NIH data set defines it (Wang et al., CVPR 2017).

A code is never guessed: a finding whose SNOMED CT code could not be verified stays local.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydicom.sr.coding import Code

#: Coding Scheme Designator of cxrviewer's local codes (PS3.3 8.2.2: "99" prefix = private).
LOCAL_SCHEME = "99CXRV"
LOCAL_SCHEME_NAME = "cxrviewer local codes"
#: Where the local scheme is described; written in the Coding Scheme Identification Sequence.
LOCAL_SCHEME_RESPONSIBLE = "cxrviewer project (docs/dicom-results.md)"


@dataclass(frozen=True)
class FindingCode:
    """The code of one ChestX-ray14 label and where that code comes from."""

    label: str
    code: Code
    source: str  # "PS3.16", "SNOMED CT (tables)" or "99CXRV"


def _sct(value: str, meaning: str) -> Code:
    return Code(value, "SCT", meaning)


def _local(value: str, meaning: str) -> Code:
    return Code(value, LOCAL_SCHEME, meaning)


#: The 14 ChestX-ray14 labels, spelled as the model spells them.
FINDINGS: dict[str, FindingCode] = {
    f.label: f
    for f in (
        FindingCode("Atelectasis", _sct("46621007", "Atelectasis"), "SNOMED CT (tables)"),
        # PS3.16 lists 287272002 as "Cardiomegaly" in CID 12248 but the same code with another
        # meaning elsewhere, and public tables use 8186001: unresolved, so local.
        FindingCode("Cardiomegaly", _local("CARDIOMEGALY", "Cardiomegaly"), "99CXRV"),
        FindingCode("Consolidation", _local("CONSOLIDATION", "Consolidation"), "99CXRV"),
        FindingCode("Edema", _sct("19242006", "Pulmonary edema"), "PS3.16"),
        FindingCode("Effusion", _sct("60046008", "Pleural effusion"), "PS3.16"),
        FindingCode("Emphysema", _local("EMPHYSEMA", "Emphysema"), "99CXRV"),
        FindingCode("Fibrosis", _sct("112674009", "Fibrosis"), "PS3.16"),
        FindingCode("Hernia", _local("HERNIA", "Hernia"), "99CXRV"),
        FindingCode("Infiltration", Code("112121", "DCM", "Infiltrate"), "PS3.16"),
        FindingCode("Mass", _sct("4147007", "Mass"), "PS3.16"),
        FindingCode("Nodule", _sct("27925004", "Nodule"), "PS3.16"),
        FindingCode("Pleural_Thickening", _local("PLEURAL_THICK", "Pleural thickening"), "99CXRV"),
        FindingCode("Pneumonia", _sct("233604007", "Pneumonia"), "SNOMED CT (tables)"),
        FindingCode("Pneumothorax", _sct("36118008", "Pneumothorax"), "PS3.16"),
    )
}


def finding_code(label: str) -> Code:
    """The code of a model label; a label outside ChestX-ray14 gets a local code of its own name."""
    known = FINDINGS.get(label)
    if known is not None:
        return known.code
    # A model trained on other labels: its labels are still reported, under the local scheme.
    # Code Value is SH (16 characters, PS3.5 6.2).
    value = "".join(ch if ch.isalnum() else "_" for ch in label.upper())[:16] or "FINDING"
    return _local(value, label.replace("_", " ")[:64])


# --- terms of the report (all in PS3.16 unless local)
PROBABILITY = Code("122157", "DCM", "Probability")
THRESHOLD = Code("122411", "DCM", "Threshold Value")
NO_UNITS = Code("1", "UCUM", "no units")  # CID 7181
PRESENT = _sct("52101004", "Present")  # CID 240 "Present-Absent"
ABSENT = _sct("272519000", "Absent")
YES = _sct("373066001", "Yes")  # CID 230 "Yes-No"
NO = _sct("373067005", "No")
COMMENT = Code("121106", "DCM", "Comment")
QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")  # TID 1500 row 12
IMAGING_PROCEDURE = _sct("363679005", "Imaging procedure")  # CID 100
OUTLINE = Code("111041", "DCM", "Outline")  # CID 219 "Geometry Graphical Representation"
#: The model's out-of-distribution guard: no standard concept says "input unlike the training
#: films" (PS3.16 has none), so local codes.
OOD_FINDING = _local("OOD", "Out-of-distribution input")
OOD_SCORE = _local("OOD_SCORE", "Out-of-distribution score")

# --- measurements drawn by the reader (Measure menu): TID 300 rows in a TID 1501 group each
LENGTH = _sct("410668003", "Length")  # CID 7470 "Linear Measurements"
ANGLE = Code("110859", "DCM", "Angle")  # CID 7182
MILLIMETER = Code("mm", "UCUM", "mm")  # CID 7181
DEGREE = Code("deg", "UCUM", "Degree")  # CID 7183
RATIO = Code("{ratio}", "UCUM", "ratio")  # CID 7181
#: PS3.16 has no concept for the cardiothoracic ratio of a chest film (LN 59076-0 and 59074-5 are
#: the fetal area and circumference ratios): local, as the transverse cardiac diameter over the
#: widest inner thoracic diameter.
CARDIOTHORACIC_RATIO = _local("CTR", "Cardiothoracic ratio")
#: TID 300 row 5 "Measurement Method": where the pixel size a length was measured with comes from
#: (PS3.3 10.7.1.3, C.8.11.4). No PS3.16 concept names these, so local.
CALIBRATION_METHODS = {
    "pixel spacing": _local("CAL_PS", "Pixel Spacing"),
    "magnification corrected": _local("CAL_IPS_ERMF", "Imager Pixel Spacing corrected by ERMF"),
    "detector": _local("CAL_IPS", "Imager Pixel Spacing at the detector"),
    "manual": _local("CAL_MANUAL", "Manual calibration on a known length"),
}
