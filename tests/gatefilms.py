"""Films for the applicability gate's tests (cxrviewer.applicability): real films whose headers
say what they are.

- :func:`lateral_chest`: a real chest film (the SIIM CR chest of ``../shared/data`` where present,
  else an NIH sample of ``resources/samples/``) whose header says lateral: View Position LL and
  Patient Orientation P\\F (rows towards the patient's back, columns towards the feet: PS3.3
  C.7.6.1.1.1).
- :func:`tibia_cr`: a real CR of the distal tibia (pydicom-data's RG3, JPEG 2000, where present)
  with Body Part Examined TIBIA; else a CR of an NIH sample's pixels whose header says TIBIA.
- :func:`frontal_chest`: a real frontal chest CR (PA), scored exactly as before the gate.
"""

from __future__ import annotations

from pathlib import Path

import pydicom

from dicomfactory import CHEST_SAMPLE, CR_IMAGE, build_dicom, sample_gray, write_dicom
from helpers import SHARED_DATA

SIIM_CHEST = SHARED_DATA / "dicom" / "torchxrayvision_siim_cr_chest.dcm"
RG3_TIBIA = SHARED_DATA / "dicom" / "pydicom-data_RG3_J2KR.dcm"

LATERAL_REASON = "lateral view (View Position LL): the model reads frontal chest films"
TIBIA_REASON = "body part TIBIA: the model reads chest films"


def _edited(src: Path, dst: Path, **elements) -> Path:
    ds = pydicom.dcmread(src, force=True)
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    if getattr(ds, "file_meta", None) is not None and "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return write_dicom(dst, ds)


def frontal_chest(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if SIIM_CHEST.is_file():
        return _edited(SIIM_CHEST, folder / "frontal.dcm")
    return build_dicom(folder / "frontal.dcm", sample_gray(CHEST_SAMPLE, 256), sop_class=CR_IMAGE, modality="CR",
                       BodyPartExamined="CHEST", ViewPosition="PA")


def lateral_chest(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if SIIM_CHEST.is_file():
        return _edited(SIIM_CHEST, folder / "lateral.dcm", ViewPosition="LL", PatientOrientation=["P", "F"])
    return build_dicom(folder / "lateral.dcm", sample_gray(CHEST_SAMPLE, 256), sop_class=CR_IMAGE, modality="CR",
                       BodyPartExamined="CHEST", ViewPosition="LL", PatientOrientation=["P", "F"])


def tibia_cr(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if RG3_TIBIA.is_file():
        return _edited(RG3_TIBIA, folder / "tibia.dcm", BodyPartExamined="TIBIA")
    return build_dicom(folder / "tibia.dcm", sample_gray(CHEST_SAMPLE, 256), sop_class=CR_IMAGE, modality="CR",
                       BodyPartExamined="TIBIA", ViewPosition="AP", PatientOrientation=["R", "F"])
