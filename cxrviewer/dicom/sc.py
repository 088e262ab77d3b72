"""The annotated picture as a DICOM Secondary Capture image that a PACS can store and show.

:func:`export_dicom_sc` writes the picture of :func:`cxrviewer.render.annotate` (heatmaps or
outlines burned in, the findings panel and legend, the demo mark) as an RGB Secondary Capture
Image (SOP Class 1.2.840.10008.5.1.4.1.1.7, PS3.3 A.8.1) in Explicit VR Little Endian.

For a DICOM source the export joins the source's patient and study: the Patient and General
Study attributes are copied from the source header (same Study Instance UID) and the export
gets a new Series and SOP Instance UID, with Referenced/Source Image Sequences pointing at the
source instance. For a PNG/JPEG source (or a film without a file) the patient is empty and the
study is new. ``anonymize=True`` removes everything that identifies the patient or the visit
(the exact list is in ``docs/dicom-sc.md`` and in :data:`ANONYMIZED_ATTRIBUTES`).

Privacy: patient names, IDs and dates never reach the log (only paths and UIDs do), and the
patient's name is drawn on the picture only when asked (``burn_in_patient_name=True``).
Values are copied from the source without pydicom's value validation, because pydicom's
"invalid value" warnings quote the value, and that value may be a patient's name.
"""

from __future__ import annotations

import dataclasses
import io
import logging
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pydicom
from pydicom import config as dicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

from .. import __version__
from ..errors import DicomExportError
from ..render import DEMO_MARK, OOD_MARK, RenderOptions, annotate, drawable_text
from ..storage import atomic_write_bytes, check_writable_dir
from ..types import Film, ModelInfo, Prediction
from . import charset
from .output import LO_MAX, MANUFACTURER, SERIES_NUMBER
from .source import (
    ANONYMIZED_IDENTITY,
    COPIED_TYPE3,
    PATIENT_TYPE2,
    STUDY_TYPE2,
    UNPAIRED_BODY_PARTS,
    put_value,
    read_source_header,
    source_kind,
    source_text,
)

logger = logging.getLogger(__name__)

#: Secondary Capture Image Storage (PS3.4 B.5).
SC_SOP_CLASS_UID = "1.2.840.10008.5.1.4.1.1.7"
#: PS3.16 CID 7202 "Source Image Purposes of Reference".
PURPOSE_SOURCE_FOR_PROCESSING = ("121322", "DCM", "Source image for image processing operation")
#: Text drawn in the findings panel instead of the file name when anonymizing.
ANONYMIZED_FILM_NAME = "anonymized"

#: What ``anonymize=True`` changes: each attribute and what it becomes. Everything not listed is
#: either never copied from the source or made by cxrviewer (UIDs, dates of the export, text
#: about the model and its findings).
ANONYMIZED_ATTRIBUTES: dict[str, str] = {
    **ANONYMIZED_IDENTITY,
    "StudyInstanceUID": "new UID",
    "ReferencedImageSequence, SourceImageSequence": "not written (they hold the source's UIDs)",
    "file name in the findings panel": f"'{ANONYMIZED_FILM_NAME}'",
}
SC_DEIDENTIFICATION_METHOD = "cxrviewer anonymize: identifiers, dates, UIDs replaced"

# Lossy transfer syntaxes and their Lossy Image Compression Method (PS3.3 C.7.6.1.1.5.1).
_LOSSY_METHODS = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",  # JPEG Extended
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",  # JPEG 2000
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",  # HTJ2K
}
_ST_MAX = 1024


# --------------------------------------------------------------------------- public API
def export_dicom_sc(
    path: str | Path,
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    options: RenderOptions = RenderOptions(),
    *,
    anonymize: bool = False,
    burn_in_patient_name: bool = False,
) -> Path:
    """Write the annotated picture of ``film`` as a DICOM Secondary Capture image to ``path``.

    ``anonymize``: empty patient and study identifiers and dates, new Study UID, no references
    to the source (see :data:`ANONYMIZED_ATTRIBUTES`). ``burn_in_patient_name``: opt-in, draws
    the patient's name in a strip under the picture; off by default so that a default export
    never shows it. The file is written atomically; an unwritable folder fails before rendering.
    """
    path = Path(path)
    check_writable_dir(path.parent if str(path.parent) else Path("."))
    ds = build_sc_dataset(
        film, prediction, info, options, anonymize=anonymize, burn_in_patient_name=burn_in_patient_name
    )
    out = atomic_write_bytes(path, encode_dataset(ds))
    logger.info(
        "wrote DICOM SC %s (study %s, series %s, instance %s)",
        out, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
    )
    return out


def build_sc_dataset(
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    options: RenderOptions = RenderOptions(),
    *,
    anonymize: bool = False,
    burn_in_patient_name: bool = False,
) -> Dataset:
    """The Secondary Capture dataset (with its file meta) that :func:`export_dicom_sc` writes."""
    if anonymize and burn_in_patient_name:
        raise DicomExportError(
            "An anonymized export cannot show the patient's name: drop either anonymize or "
            "burn-in of the patient name."
        )
    kind = source_kind(film)
    src = read_source_header(film) if kind == "dicom" else None
    now = datetime.now()
    date, time = now.strftime("%Y%m%d"), now.strftime("%H%M%S")

    ds = Dataset()
    # --- Patient (C.7.1.1) and General Study (C.7.2.1)
    copied = {} if (src is None or anonymize) else _copied_values(src)
    for keyword in (*PATIENT_TYPE2, *STUDY_TYPE2):
        put_value(ds, keyword, copied.get(keyword, ""))
    for keyword in COPIED_TYPE3:
        if copied.get(keyword):
            put_value(ds, keyword, copied[keyword])
    study_uid = copied.get("StudyInstanceUID", "")
    if not study_uid:
        if src is not None and not anonymize:
            logger.warning("source %s has no StudyInstanceUID; the export starts a new study", film.source)
        study_uid = generate_uid()
    put_value(ds, "StudyInstanceUID", study_uid)
    if anonymize:
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = SC_DEIDENTIFICATION_METHOD
        ds.LongitudinalTemporalInformationModified = "REMOVED"

    # --- General Series (C.7.3.1)
    ds.Modality = "OT"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = SERIES_NUMBER
    ds.SeriesDescription = series_description(info)
    ds.SeriesDate, ds.SeriesTime = date, time
    body_part = source_text(src, "BodyPartExamined") if src is not None else ""
    laterality = source_text(src, "Laterality") if src is not None else ""
    if body_part:
        put_value(ds, "BodyPartExamined", body_part)
    if laterality:
        put_value(ds, "Laterality", laterality)
    elif body_part.upper() not in UNPAIRED_BODY_PARTS:
        # Type 2C: required for a paired body part, empty when actually unknown (C.7.3.1).
        ds.Laterality = ""

    # --- General Equipment (C.7.5.1) and SC Equipment (C.8.6.1)
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MANUFACTURER
    ds.SoftwareVersions = [f"cxrviewer {__version__}"[:LO_MAX], f"model {info.model_version}"[:LO_MAX]]
    ds.ConversionType = "WSD"  # workstation
    ds.SecondaryCaptureDeviceManufacturer = MANUFACTURER
    ds.SecondaryCaptureDeviceManufacturerModelName = MANUFACTURER
    ds.SecondaryCaptureDeviceSoftwareVersions = f"cxrviewer {__version__}"[:LO_MAX]

    # --- General Image (C.7.6.1) and SC Image (C.8.6.2)
    ds.InstanceNumber = 1
    put_value(ds, "PatientOrientation", source_text(src, "PatientOrientation") if src is not None else "")
    ds.ContentDate, ds.ContentTime = date, time
    ds.DateOfSecondaryCapture, ds.TimeOfSecondaryCapture = date, time
    ds.ImageType = ["DERIVED", "SECONDARY"]
    ds.DerivationDescription = derivation_description(prediction, info)
    ds.BurnedInAnnotation = "YES"  # the findings panel and the marks are text in the pixels
    lossy = _lossy_method(src, kind)
    if lossy is not None:
        # Once an ancestor was lossy-compressed the flag stays set (PS3.3 C.7.6.1.1.5).
        ds.LossyImageCompression = "01"
        if lossy:
            ds.LossyImageCompressionMethod = lossy
    if src is not None and not anonymize:
        ref = _source_reference(src)
        if ref is not None:
            ds.ReferencedImageSequence = Sequence([_reference_item(*ref)])
            ds.SourceImageSequence = Sequence([_reference_item(*ref, purpose=PURPOSE_SOURCE_FOR_PROCESSING)])

    # --- Image Pixel (C.7.6.3)
    shown = dataclasses.replace(film, source=Path(ANONYMIZED_FILM_NAME)) if anonymize else film
    picture = annotate(shown, prediction, info, options)
    if burn_in_patient_name:
        picture = _burn_in_name(picture, copied.get("PatientName", ""))
    picture = np.ascontiguousarray(picture, dtype=np.uint8)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "RGB"
    ds.PlanarConfiguration = 0  # R1G1B1 R2G2B2 ...
    ds.Rows, ds.Columns = int(picture.shape[0]), int(picture.shape[1])
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds["PixelData"] = DataElement(0x7FE00010, "OB", picture.tobytes())

    # --- SOP Common (C.12.1)
    ds.SOPClassUID = SC_SOP_CLASS_UID
    ds.SOPInstanceUID = generate_uid()
    ds.InstanceCreationDate, ds.InstanceCreationTime = date, time
    if not _all_ascii(ds):
        ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: names in any script

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def encode_dataset(ds: Dataset) -> bytes:
    """The Part 10 file (preamble, ``DICM``, file meta, dataset) as bytes."""
    buf = io.BytesIO()
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except (ValueError, TypeError, OverflowError) as exc:
        # Every value is ours or copied unchanged from the source; the message names only the
        # error type because pydicom's messages may quote a value (a patient's name).
        raise DicomExportError(
            f"Could not encode the DICOM Secondary Capture ({type(exc).__name__}); this is a bug in "
            "cxrviewer, please report it. A PNG export still works."
        ) from None
    return buf.getvalue()


def series_description(info: ModelInfo) -> str:
    """``cxrviewer AI overlay: <model_version>`` plus `` (DEMO)`` for a demo model; 64 chars max (LO)."""
    head, tail = "cxrviewer AI overlay: ", " (DEMO)" if info.demo else ""
    return head + str(info.model_version)[: LO_MAX - len(head) - len(tail)] + tail


def derivation_description(prediction: Prediction, info: ModelInfo) -> str:
    """One paragraph: the model, its positive findings with probabilities, the warnings (ST)."""
    parts = [f"cxrviewer {__version__} AI overlay, model {info.model_version}."]
    if info.demo:
        parts.append(f"{DEMO_MARK}.")
    positives = prediction.positives
    if positives:
        found = ", ".join(f"{label}: {prediction.probability(label):.2f}" for label in positives)
        parts.append(f"Findings above threshold: {found}.")
    else:
        parts.append("No finding above its threshold.")
    if prediction.ood_flag:
        parts.append(f"{OOD_MARK}.")
    text = " ".join(parts)
    return text if len(text) <= _ST_MAX else text[: _ST_MAX - 3] + "..."


def _copied_values(src: Dataset) -> dict[str, str]:
    keys = (*PATIENT_TYPE2, *STUDY_TYPE2, *COPIED_TYPE3, "StudyInstanceUID")
    copied = charset.checked_elements(src, keys)  # decoded; a value that breaks its VR left out
    return {k: charset.as_text(copied.get(k)) for k in keys}


def _source_reference(src: Dataset) -> tuple[str, str] | None:
    sop_class = source_text(src, "SOPClassUID") or source_text(src, "MediaStorageSOPClassUID")
    sop_instance = source_text(src, "SOPInstanceUID") or source_text(src, "MediaStorageSOPInstanceUID")
    if not sop_class or not sop_instance:
        return None
    if not all(UID(u, dicom_config.IGNORE).is_valid for u in (sop_class, sop_instance)):
        # A PACS may refuse the whole object for one malformed UID (PS3.5 9.1).
        logger.warning("source SOP Instance UID %r is malformed; the export does not reference it", sop_instance)
        return None
    return sop_class, sop_instance


def _reference_item(sop_class: str, sop_instance: str, purpose: tuple[str, str, str] | None = None) -> Dataset:
    item = Dataset()
    put_value(item, "ReferencedSOPClassUID", sop_class)
    put_value(item, "ReferencedSOPInstanceUID", sop_instance)
    if purpose is not None:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = purpose
        item.PurposeOfReferenceCodeSequence = Sequence([code])
    return item


def _lossy_method(src: Dataset | None, kind: str) -> str | None:
    """The lossy compression method of an ancestor ("" when unknown), or None if none was lossy."""
    if kind == "jpeg":
        return "ISO_10918_1"
    if src is None:
        return None
    syntax = source_text(src, "TransferSyntaxUID")
    if syntax in _LOSSY_METHODS:
        return _LOSSY_METHODS[syntax]
    if source_text(src, "LossyImageCompression") == "01":
        method = source_text(src, "LossyImageCompressionMethod").split("\\")[0]
        return method[:16]
    return None


# --------------------------------------------------------------------------- helpers
def _all_ascii(ds: Dataset) -> bool:
    for elem in ds.iterall():
        if elem.VR in ("PN", "LO", "SH", "ST", "LT", "UT", "UC"):
            values = elem.value if isinstance(elem.value, (list, tuple, MultiValue)) else [elem.value]
            if any(not str(v).isascii() for v in values if v is not None):
                return False
    return True


def display_name(person_name: str) -> str:
    """A DICOM PN value as ``FAMILY, Given Middle`` in ASCII (OpenCV's fonts have no other glyphs).

    Accents are dropped (``Müller`` → ``Muller``); characters without an ASCII form become ``?``.
    The alphabetic group is used; the ideographic one only when it is the only one given.
    """
    groups = person_name.split("=")
    group = next((g for g in groups if g.replace("^", "").strip()), "")
    parts = group.split("^") + [""] * 5
    family, given, middle, prefix, suffix = (p.strip() for p in parts[:5])
    text = ", ".join(p for p in (family, " ".join(p for p in (prefix, given, middle, suffix) if p)) if p)
    return drawable_text(text)


def _burn_in_name(picture: np.ndarray, person_name: str) -> np.ndarray:
    """The picture with a strip under it that reads ``Patient: <name>`` (opt-in only)."""
    name = display_name(person_name)
    if not name:
        logger.info("no patient name to burn in; the picture is left as it is")
        return picture
    if not any(c.isalnum() for c in name):
        # every letter became "?": "Patient: ?, ??" would identify nobody (nor tell two apart)
        raise DicomExportError(
            "The patient's name is in a script the picture's font cannot draw (it draws ASCII letters only): burned "
            "in, it would read as question marks. Export it without the burned-in name; the DICOM header carries "
            "the name."
        )
    h, w = picture.shape[:2]
    u = h / 1000.0  # the layout unit of render.annotate
    strip = np.full((max(int(56 * u), 24), w, 3), 24, np.uint8)
    cv2.putText(
        strip, drawable_text(f"Patient: {name}"), (int(12 * u) + 4, int(strip.shape[0] * 0.7)), cv2.FONT_HERSHEY_SIMPLEX,
        0.8 * max(u, 0.5), (255, 255, 255), max(1, int(round(1.8 * u))), cv2.LINE_AA,
    )
    return np.vstack([picture, strip])
