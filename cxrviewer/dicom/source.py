"""The DICOM image a result points at: its header, read once, and what highdicom copies from it.

Also the one way a film's DICOM source is opened and read (paths and URLs alike:
:func:`open_source`, :func:`read_source_header`), and its values decoded without validation
(:func:`source_text`), for the Secondary Capture too.

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

import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pydicom
from pydicom import config as dicom_config
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import UID

from .. import heatmap
from ..errors import DicomResultError, NoDicomSourceError, UnreadableImageError
from ..io.files import SOURCE_URL
from ..io.sniff import HEAD_BYTES, sniff_format
from ..storage import is_url, split_url
from ..types import Film, Prediction
from . import charset

logger = logging.getLogger(__name__)

# Copied from a DICOM source unless anonymizing (Patient and General Study modules, PS3.3
# C.7.1.1 and C.7.2.1). Type 2 attributes are written even when the source lacks them.
PATIENT_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")
STUDY_TYPE2 = ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber")
COPIED_TYPE3 = ("IssuerOfPatientID", "StudyDescription")

#: What ``anonymize=True`` changes of the patient and study attributes copied from the source:
#: the part the Secondary Capture (:data:`cxrviewer.dicom.sc.ANONYMIZED_ATTRIBUTES`) and the
#: results (:data:`ANONYMIZED_RESULT_ATTRIBUTES`) share.
ANONYMIZED_IDENTITY: dict[str, str] = {
    **{keyword: "empty" for keyword in (*PATIENT_TYPE2, *STUDY_TYPE2)},
    ", ".join(COPIED_TYPE3): "not written",
}

#: Body Part Examined values (PS3.16 CID 4031) with no laterality: Laterality is then left out.
UNPAIRED_BODY_PARTS = {
    "CHEST", "THORAX", "ABDOMEN", "CHESTABDOMEN", "PELVIS", "ABDOMENPELVIS", "HEAD", "SKULL",
    "NECK", "SPINE", "CSPINE", "TSPINE", "LSPINE", "SSPINE", "WHOLEBODY", "HEART", "MEDIASTINUM",
}
_DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
_JPEG_SUFFIXES = {".jpg", ".jpeg"}

#: What ``anonymize=True`` changes in an SR or a Presentation State: each attribute and what it
#: becomes. The Secondary Capture's list but for the UIDs, which stay.
ANONYMIZED_RESULT_ATTRIBUTES: dict[str, str] = {
    **ANONYMIZED_IDENTITY,
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


# --------------------------------------------------------------------------- the source file
def source_kind(film: Film) -> str:
    """``dicom``, ``jpeg``, ``raster`` (PNG and other lossless pictures) or ``none``.

    The file's content decides, as it does for :func:`cxrviewer.io.read_film` (one sniffer for
    both); the film's format and the suffix only when the file cannot be read or says nothing.
    """
    src = film.source
    if src is None:
        return "none"
    head = b""
    try:
        with open(src, "rb") as f:
            head = f.read(HEAD_BYTES)
    except OSError:
        pass
    sniffed = sniff_format(head)
    if sniffed is not None:
        return {"dicom": "dicom", "jpeg": "jpeg"}.get(sniffed, "raster")
    fmt = str(film.metadata.get("format", "")).lower()
    suffix = src.suffix.lower()
    if fmt == "dicom" or suffix in _DICOM_SUFFIXES:
        return "dicom"
    if fmt in ("jpeg", "jpg") or suffix in _JPEG_SUFFIXES:
        return "jpeg"
    return "raster"


#: Bytes fetched at a time when a header is read from a URL (:func:`open_source`): a DICOM header
#: is a few KB, so it takes one request, and at most this much of the pixel data behind it is
#: fetched (the rest of the object never is).
HEADER_CHUNK = 64 * 1024


def film_location(film: Film) -> Path | str | None:
    """Where ``film``'s file is: the URL it was read from (``metadata[SOURCE_URL]``, recorded by
    :func:`cxrviewer.io.read_film`), else its path."""
    return film.metadata.get(SOURCE_URL) or film.source


class _NamedReader(io.BufferedReader):
    """A buffered reader of a URL's object that answers ``name`` with the URL (pydicom names the
    dataset it reads from an ``io.BufferedReader`` after it; the object's own file has no name)."""

    def __init__(self, raw: Any, name: str) -> None:
        super().__init__(raw, HEADER_CHUNK)
        self._url = name

    @property
    def name(self) -> str:
        return self._url


def open_source(location: Path | str) -> BinaryIO:
    """A film's file opened for reading, the one way a source's header is read, for paths and
    URLs alike: a path with ``open``; a URL through the file system that read the film
    (:func:`cxrviewer.io.files.split_url`), fetching :data:`HEADER_CHUNK` bytes at a time, so
    that pydicom's small reads of a header cost one request and the pixel data is not fetched:
    an fsspec file system's own file (its read-ahead cache of that block size), or pyarrow's
    native file (S3, GCS, ``file://``) behind a buffer. Raises ``OSError``, or
    :class:`UnreadableImageError` for a URL whose scheme no file system serves."""
    if not is_url(location):
        return open(location, "rb")
    import pyarrow.fs as pafs  # the URL was read through it (cxrviewer.io.files)

    fs, path = split_url(str(location))
    handler = getattr(fs, "handler", None)
    if isinstance(handler, pafs.FSSpecHandler):
        # pyarrow's bridge to Python files reads each range twice; the fsspec file reads it once
        return handler.fs.open(path, "rb", block_size=HEADER_CHUNK)
    return _NamedReader(fs.open_input_file(path), str(location))


def read_source_header(film: Film) -> Dataset:
    """The header of ``film``'s DICOM file, read again without its pixel data (from the path or
    the URL it was read from: :func:`film_location`)."""
    try:
        with open_source(film_location(film)) as f:
            return pydicom.dcmread(f, stop_before_pixels=True, force=True)
    except Exception as exc:  # pydicom raises many types on a file that changed under us
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise UnreadableImageError(
            f"Cannot re-read the DICOM header of {film.name} ({why}) to copy its patient and "
            "study into the export. Export while the source file is in place, or export as PNG."
        ) from None


def source_text(src: Dataset, keyword: str) -> str:
    """The decoded value of ``keyword`` in the source, without pydicom's value validation; ``""``
    when it is absent or breaks its VR (logged: :func:`cxrviewer.dicom.charset.checked`)."""
    return charset.as_text(charset.checked(src, keyword))


def put_value(ds: Dataset, keyword: str, value: Any) -> None:
    """Set ``keyword`` without value validation: pydicom's warnings quote the value (PHI)."""
    tag = tag_for_keyword(keyword)
    ds[tag] = DataElement(tag, dictionary_VR(tag), value, validation_mode=dicom_config.IGNORE)



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
    name: str = "the source"  # the film's file name, for log lines

    def reference(self, *, anonymize: bool = False) -> Dataset:
        """The dataset handed to highdicom as the referenced image (see the module's docstring).

        Made from allow-lists, so highdicom copies nothing else of the source: the technical
        attributes, and (unless ``anonymize``) the patient and study attributes the Secondary
        Capture export copies too. Text is decoded from the source's character set and the
        result is in UTF-8 (:mod:`cxrviewer.dicom.charset`: highdicom refuses code extensions
        and an empty value); a value that breaks its VR is left out, with a log line.
        """
        ds = Dataset()
        keep = _TECHNICAL if anonymize else (*_TECHNICAL, *_IDENTITY_TYPE2, *_IDENTITY_TYPE3)
        keep = tuple(k for k in keep if k != "SpecificCharacterSet")
        for keyword, element in charset.checked_elements(self.header, keep, self.name).items():
            ds[keyword] = element
        charset.use_result_character_set(ds)  # highdicom gives the result the reference's
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
        name=film.name,
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
