"""The DICOM image a result points at: its header, read once, and what highdicom copies from it.

A Structured Report and a Presentation State are results *about* an image: they reference the
source instance by its SOP Class and SOP Instance UID and join its study (PS3.3 A.35.13,
A.33.1). So they need a DICOM source; a PNG or JPEG film has nothing to point at and is refused
(:class:`~cxrviewer.errors.NoDicomSourceError`).

highdicom copies the Patient and Study modules from the dataset it is given, so it is given a
dataset made here from allow-lists: technical attributes (pixel description, modality and VOI
LUTs, body part, view) and, unless ``anonymize``, the patient and study attributes that the
Secondary Capture export copies (the result lands in the patient's study, as a PACS expects).
Nothing else of the source can reach the result. The UIDs of
the study, series and image are kept, because the result has to point at the image (PS3.15
E.3.1, "Retain UIDs Option"); see docs/dicom-results.md.

Privacy: values are never logged; only paths and UIDs are.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom import config as dicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from .. import heatmap
from ..dicom_export import (
    ANONYMIZED_ATTRIBUTES,
    COPIED_TYPE3,
    PATIENT_TYPE2,
    STUDY_TYPE2,
    film_location,
    put_value,
    read_source_header,
    source_kind,
    source_text,
)
from ..errors import DicomResultError, NoDicomSourceError
from ..types import Film, Prediction

logger = logging.getLogger(__name__)

#: What ``anonymize=True`` changes in an SR or a Presentation State: each attribute and what it
#: becomes. Built on the Secondary Capture's list; the differences are the UIDs, which stay.
ANONYMIZED_RESULT_ATTRIBUTES: dict[str, str] = {
    **{
        k: v
        for k, v in ANONYMIZED_ATTRIBUTES.items()
        if k not in ("StudyInstanceUID", "ReferencedImageSequence, SourceImageSequence", "file name in the findings panel")
    },
    "every other Patient and Study attribute of the source": "not written",
    "StudyInstanceUID, SeriesInstanceUID and SOPInstanceUID of the source": (
        "kept: the result must point at the image (PS3.15 Retain UIDs Option)"
    ),
}
DEIDENTIFICATION_METHOD = "cxrviewer anonymize: patient identity removed, UIDs retained"  # LO: 64

# The patient and study attributes a result copies from its source: the ones the Secondary
# Capture export copies (Patient and General Study modules, PS3.3 C.7.1.1 and C.7.2.1). The Type
# 2 ones are written empty when the source lacks them or when anonymizing.
_IDENTITY_TYPE2 = (*PATIENT_TYPE2, *STUDY_TYPE2)
_IDENTITY_TYPE3 = COPIED_TYPE3
# What an anonymized reference keeps of the source: how to show the pixels and what they show.
# None of these identifies the patient or the visit (PS3.15 table E.1-1 lists none of them).
_TECHNICAL = (
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality",
    "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation", "BitsAllocated",
    "BitsStored", "HighBit", "PixelRepresentation", "NumberOfFrames", "PixelSpacing",
    "ImagerPixelSpacing", "RescaleIntercept", "RescaleSlope", "RescaleType",
    "ModalityLUTSequence", "WindowCenter", "WindowWidth", "WindowCenterWidthExplanation",
    "VOILUTFunction", "VOILUTSequence", "PresentationLUTShape", "BodyPartExamined",
    "ViewPosition", "Laterality", "ImageLaterality", "PatientOrientation", "SpecificCharacterSet",
)


@dataclass(frozen=True, eq=False)
class SourceImage:
    """The source instance of a DICOM film: its header (no pixels) and the UIDs a result needs."""

    header: Dataset
    sop_class_uid: str
    sop_instance_uid: str
    study_instance_uid: str
    series_instance_uid: str
    rows: int
    columns: int

    def reference(self, *, anonymize: bool = False) -> Dataset:
        """The dataset handed to highdicom as the referenced image (see the module's docstring).

        Made from allow-lists, so highdicom copies nothing else of the source: the technical
        attributes, and (unless ``anonymize``) the patient and study attributes the Secondary
        Capture export copies too. Elements are copied as they are, in the source's character
        set, without decoding the values (so without pydicom warnings that would quote them).
        """
        ds = Dataset()
        keep = _TECHNICAL if anonymize else (*_TECHNICAL, *_IDENTITY_TYPE2, *_IDENTITY_TYPE3)
        for keyword in keep:
            if keyword in self.header:
                ds[keyword] = copy.deepcopy(self.header[keyword])
        for keyword in _IDENTITY_TYPE2:
            if anonymize or keyword not in ds:  # Type 2 in the result: present, maybe empty
                put_value(ds, keyword, "")
        # The UIDs as validated here (the header may hold them only in its file meta).
        for keyword, value in (
            ("SOPClassUID", self.sop_class_uid), ("SOPInstanceUID", self.sop_instance_uid),
            ("StudyInstanceUID", self.study_instance_uid), ("SeriesInstanceUID", self.series_instance_uid),
        ):
            put_value(ds, keyword, value)
        if "SamplesPerPixel" not in ds:
            ds.SamplesPerPixel = 1  # a film is grayscale (the reader refuses colour)
        for item in ds.get("VOILUTSequence") or []:
            _lut_data_as_bytes(item)
        return ds


def _lut_data_as_bytes(item: Dataset) -> None:
    """A VOI LUT's LUT Data as bytes, however the source encoded it.

    LUT Data is US or OW (PS3.3 C.11.2.1.1); pydicom gives a US one as a list of numbers, and
    highdicom's Presentation State reads it with ``np.frombuffer`` (a ``TypeError`` on a list:
    pydicom-data's ``vlut_04.dcm``). highdicom takes 8-bit entries as bytes and wider ones as
    16-bit words (LUT Descriptor's third value), so that is how it is packed here.
    """
    if "LUTData" not in item or isinstance(item.LUTData, (bytes, bytearray)):
        return
    values = np.atleast_1d(np.asarray(item.LUTData, dtype=np.int64))  # one entry (VM 1) or many
    try:
        bits = int(item.LUTDescriptor[2])
    except (AttributeError, IndexError, TypeError, ValueError):
        return  # a LUT without a usable descriptor: highdicom refuses it, and says so
    dtype = np.uint8 if bits == 8 else np.dtype("<u2")
    item["LUTData"] = DataElement(0x00283006, "OW", values.astype(dtype).tobytes())


def read_source(film: Film, result: str) -> SourceImage:
    """The source of ``film`` for a DICOM ``result`` ("Structured Report", "Presentation State").

    Raises :class:`NoDicomSourceError` when the film is not a DICOM image, and
    :class:`DicomResultError` when the source lacks what a reference needs.
    """
    if source_kind(film) != "dicom":
        raise NoDicomSourceError(
            f"{film.name} is not a DICOM image, so a DICOM {result} would have no image to point at. "
            "Use a DICOM film of the study, or export this film as a DICOM Secondary Capture, "
            "which carries the annotated picture itself."
        )
    header = read_source_header(film)  # from the path, or the URL, the film was read from
    uids = {
        "SOP Class UID": source_text(header, "SOPClassUID") or source_text(header, "MediaStorageSOPClassUID"),
        "SOP Instance UID": source_text(header, "SOPInstanceUID") or source_text(header, "MediaStorageSOPInstanceUID"),
        "Study Instance UID": source_text(header, "StudyInstanceUID"),
        "Series Instance UID": source_text(header, "SeriesInstanceUID"),
    }
    for name, uid in uids.items():
        if not uid or not UID(uid, dicom_config.IGNORE).is_valid:
            # A result that points at an unknown or malformed UID points at nothing (PS3.5 9.1).
            raise DicomResultError(
                f"The DICOM header of {film.name} has {'a malformed' if uid else 'no'} {name}, so a "
                f"{result} could not point at it. Export a DICOM Secondary Capture instead."
            )
    try:
        # Numbers, not text: read them through pydicom (no patient data in them to leak).
        frames = int(header.get("NumberOfFrames") or 1)
        rows, columns = int(header.get("Rows") or 0), int(header.get("Columns") or 0)
    except (TypeError, ValueError):
        frames, rows, columns = 1, 0, 0
    if frames != 1:
        raise DicomResultError(
            f"{film.name} is a multi-frame image; cxrviewer scores its first frame only and writes "
            f"a {result} for single-frame images. Export a DICOM Secondary Capture instead."
        )
    if (rows, columns) != (film.height, film.width):
        raise DicomResultError(
            f"The film read from {film.name} is {film.width}x{film.height} pixels but its DICOM header "
            f"says {columns}x{rows}; outlines would land in the wrong place. Export a DICOM Secondary "
            "Capture instead."
        )
    logger.debug("DICOM source %s: instance %s", film_location(film), uids["SOP Instance UID"])
    return SourceImage(
        header=header,
        sop_class_uid=uids["SOP Class UID"],
        sop_instance_uid=uids["SOP Instance UID"],
        study_instance_uid=uids["Study Instance UID"],
        series_instance_uid=uids["Series Instance UID"],
        rows=rows,
        columns=columns,
    )


class FilmSource:
    """What every result of one film reads of its source, made once for all of them: the
    header (:func:`read_source`, a read of the file or URL), the reference highdicom is given
    (:meth:`SourceImage.reference`, a deep copy of the allow-listed elements) and the regions of
    each finding (:func:`cxrviewer.heatmap.regions`). The node writes a film's SR and
    Presentation State from one; each result built on its own makes its own.

    A failed read is not kept: the next result reads again and its error names that result.
    Not for several threads at once (a film's results are written by one).
    """

    def __init__(self, film: Film, prediction: Prediction) -> None:
        self.film = film
        self.prediction = prediction
        self._image: SourceImage | None = None
        self._references: dict[bool, Dataset] = {}
        self._regions: dict[str, list[heatmap.Region]] = {}

    def check(self, film: Film, prediction: Prediction) -> FilmSource:
        """This source, after checking it is the one of ``film`` and ``prediction``."""
        if film is not self.film or prediction is not self.prediction:
            raise ValueError("a FilmSource serves the results of the film and prediction it was made for")
        return self

    def image(self, result: str) -> SourceImage:
        """The source image (:func:`read_source`, read on first use); ``result`` names the
        result in the errors."""
        if self._image is None:
            self._image = read_source(self.film, result)
        return self._image

    def reference(self, result: str, *, anonymize: bool = False) -> Dataset:
        """The reference of :meth:`SourceImage.reference`, made once: each call gets a dataset
        of its own whose elements are shared, so a result may add, replace or delete elements
        (never change one in place: ``del ds[tag]`` before setting a keyword that is there)."""
        if anonymize not in self._references:
            self._references[anonymize] = self.image(result).reference(anonymize=anonymize)
        ref = self._references[anonymize]
        return Dataset({element.tag: element for element in ref.elements()})

    def regions(self, label: str) -> Sequence[heatmap.Region]:
        """The regions of ``label`` on the film (computed once; not to be changed)."""
        if label not in self._regions:
            film = self.film
            self._regions[label] = heatmap.regions(self.prediction, label, (film.height, film.width))
        return self._regions[label]
