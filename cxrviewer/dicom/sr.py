"""The findings as a DICOM Structured Report: Comprehensive 3D SR with a TID 1500 Measurement Report.

One SR per film, in the source's study (a new series), referencing the source image
(PS3.3 A.35.13; PS3.16 TID 1500 "Measurement Report"). Its content tree:

- TID 1500 root: language, the device observer (cxrviewer and the model), the procedure
  reported, and (row 12) a "Qualitative Evaluations" container with a Comment that says, for a
  demo model, that the report is not for diagnosis, and the findings above threshold in words.
  It comes right after the procedure, so a viewer shows it before the measurements.
- Image Library: the source image.
- Imaging Measurements, for each label of the model, a TID 1501 group: the finding's code
  (:mod:`cxrviewer.dicom.codes`), the probability (DCM 122157, no units) exactly as the CSV
  writes it, the model's threshold (DCM 122411), and present / absent (CID 240) against that
  threshold; all with TID 4019 Algorithm Identification (cxrviewer, its version, the model
  version, demo or not) and the source image as the group's source.
- For each finding whose regions are asked for (the positives by default): one TID 1410 group
  per region outline and one per region box, each a closed SCOORD POLYLINE on the source image.
- The out-of-distribution guard, when the model has one: a TID 1501 group with the score,
  its threshold and the flag (Yes / No).
- The reader's measurements (Measure menu), a TID 1501 group each: a distance's Length (mm;
  left out when the film has no calibration: there is no unit for pixels), an angle (degrees)
  or the cardiothoracic ratio (UCUM ``{ratio}``), each inferred from its SCOORD POLYLINE(s) on
  the source image, with the calibration used as the Measurement Method (TID 300 row 5).
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid
from pydicom.valuerep import DS

from .. import __version__, heatmap
from ..classes import resolve
from ..types import Calibration, Film, Measurement, ModelInfo, Prediction
from . import codes
from .coords import box_points, outline_points
from .output import (
    MANUFACTURER,
    SERIES_NUMBER,
    check_folder,
    demo_notice,
    description,
    highdicom_errors,
    patient_name_aside,
    patient_name_back,
    quiet_values,
    write,
)
from .source import DEIDENTIFICATION_METHOD, FilmSource, SourceImage
from .stamp import Encoded, Nested, Stamp, concept, floats, freeze, put_sequence, spliced, stamped

logger = logging.getLogger(__name__)

WHAT = "Structured Report"


def export_dicom_sr(
    path: str | Path,
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    *,
    region_labels: Sequence[str] | None = None,
    anonymize: bool = False,
    measurements: Sequence[Measurement] = (),
    calibration: Calibration | None = None,
    source: FilmSource | None = None,
) -> Path:
    """Write the SR of ``prediction`` for the DICOM film ``film`` to ``path`` (atomically).

    ``region_labels``: the findings whose regions (outline and box) go in (default: the
    positives). ``anonymize``: no patient identity, UIDs kept (docs/dicom-results.md).
    ``measurements``: the reader's distances, angles and ratios, measured with ``calibration``
    (default: the film's own). ``source``: the film's source, shared with its other results
    (default: read for this one).
    """
    check_folder(path)
    ds = build_sr(film, prediction, info, region_labels=region_labels, anonymize=anonymize,
                  measurements=measurements, calibration=calibration, source=source)
    return write(path, ds, WHAT)


def build_sr(
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    *,
    region_labels: Sequence[str] | None = None,
    anonymize: bool = False,
    measurements: Sequence[Measurement] = (),
    calibration: Calibration | None = None,
    source: FilmSource | None = None,
) -> hd.sr.Comprehensive3DSR:
    """The SR dataset that :func:`export_dicom_sr` writes.

    Its content tree is the dataset's Content Sequence; ``.content`` (highdicom's view of it)
    is the bare root, as the tree is handed over without highdicom's re-parse: read the written
    file with ``highdicom.sr.srread`` to walk the report.
    """
    shared = FilmSource(film, prediction) if source is None else source.check(film, prediction)
    shared.image(WHAT)
    # the one class-list rule (cxrviewer.classes): labels or display names, unknown ones refused
    labels = prediction.positives if region_labels is None else resolve(region_labels, prediction.labels)
    with quiet_values(), highdicom_errors(film, WHAT):
        return _build(shared, film, prediction, info, labels, anonymize,
                      tuple(measurements), calibration or film.calibration)


def _build(
    shared: FilmSource,
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    region_labels: Sequence[str],
    anonymize: bool,
    reader: tuple[Measurement, ...] = (),
    calibration: Calibration | None = None,
) -> hd.sr.Comprehensive3DSR:
    """The SR, stamped from the model's parts (:func:`_parts_of`: highdicom's own groups, built
    once per model and encoded once, :mod:`cxrviewer.dicom.stamp`) with what this film changes."""
    src = shared.image(WHAT)
    ref = shared.reference(WHAT, anonymize=anonymize)
    patient_name = patient_name_aside(ref)
    parts = _model_parts(info, prediction)
    # the film's references, one item each, shared by every group that points at the film
    source = _source_items(src.sop_class_uid)[0](ReferencedSOPInstanceUID=src.sop_instance_uid)
    region_source = _source_items(src.sop_class_uid)[1](ReferencedSOPInstanceUID=src.sop_instance_uid)
    groups: list[Dataset] = []
    for label, probability, threshold in zip(prediction.labels, prediction.probabilities, prediction.thresholds):
        part = parts.findings[label]
        group = part.group
        groups.append(group(
            uid=_uid(group), probability=parts.probability(probability),
            evaluation=part.present if float(probability) >= float(threshold) else part.absent,
            source=source,
        ))
    for label in region_labels:
        groups.extend(_region_groups(parts.findings[label].region, shared.regions(label), label, region_source))
    if prediction.ood_score is not None:
        ood = parts.ood
        groups.append(ood(
            uid=_uid(ood), score=parts.ood_score(prediction.ood_score),
            evaluation=parts.ood_yes if prediction.ood_flag else parts.ood_no, source=source,
        ))
    for group in _reader_groups(src, reader, calibration):
        groups.extend(group)  # a highdicom template: the group's container

    root = parts.root
    content = root.content(
        comment=_comment_item(_comment(prediction, info)),
        library=_library(_library_entry(ref)),
        measurements=spliced(root.item("measurements"), ContentSequence=groups),
    )
    sr = hd.sr.Comprehensive3DSR(
        evidence=[ref],
        content=stamped(root.head, ContentSequence=DicomSequence()),  # the root, its content aside
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description=description("SR", info),
        coding_schemes=[
            CodingSchemeIdentificationItem(
                designator=codes.LOCAL_SCHEME,
                name=codes.LOCAL_SCHEME_NAME,
                responsible_organization=codes.LOCAL_SCHEME_RESPONSIBLE,
            )
        ],
        is_complete=True,  # every label of the model is reported
        is_final=False,  # PRELIMINARY: nobody has read it yet (PS3.3 C.17.2.1)
        is_verified=False,
    )
    # The tree goes in as it is: highdicom's constructor would deep-copy it, parse the copy back
    # into its item classes and search it twice for image references (highdicom 0.28,
    # ``sr/sop.py`` ``_SR.__init__``), for a tree whose every reference is the source image,
    # which ``evidence`` names. ``sr.content`` is therefore the bare root: read the written
    # file with ``highdicom.sr.srread`` to walk the report.
    put_sequence(sr, "ContentSequence", content)  # a new element: the constructor's may share its value
    patient_name_back(sr, patient_name)
    if anonymize:
        sr.PatientIdentityRemoved = "YES"
        sr.DeidentificationMethod = DEIDENTIFICATION_METHOD
    logger.debug("SR for %s: %d groups", film.source, len(groups))
    return sr


def _uid(stamp: Stamp) -> Encoded | Dataset:
    """A new Tracking Unique Identifier for a group stamped from ``stamp``."""
    return spliced(stamp.item("uid"), UID=generate_uid())


@dataclass(frozen=True)
class _Number:
    """A NUM item highdicom built (frozen), to measure other values with the same concept and
    units: calling it gives the item for ``value``, written as highdicom writes it
    (``NumContentItem``: a DS with pydicom's auto format and the same float as FD), six decimals
    as the results CSV writes them, so the SR and the CSV say the same number."""

    item: Dataset
    measured: Dataset  # its Measured Value Sequence item: the units, and the values to replace

    @classmethod
    def of(cls, item: Dataset) -> _Number:
        # read from a copy: reading the sequence would decode it in the frozen item itself
        (measured,) = copy.deepcopy(item).MeasuredValueSequence
        return cls(item, freeze(measured))

    def __call__(self, value: float) -> Encoded | Dataset:
        value = float(f"{float(value):.6f}")
        measured = spliced(self.measured, NumericValue=DS(value, auto_format=True), FloatingPointValue=value)
        return spliced(self.item, MeasuredValueSequence=[measured])


@dataclass(frozen=True)
class _FindingParts:
    code: hd.sr.CodedConcept
    group: Stamp  # TID 1501: slots uid, probability, evaluation, source
    present: Dataset
    absent: Dataset
    region: Stamp  # TID 1410: slots identifier, uid, region


@dataclass(frozen=True)
class _ModelParts:
    """What every SR of one model shares, built by highdicom once per process and frozen
    (:mod:`cxrviewer.dicom.stamp`): the report's root, each label's TID 1501 and TID 1410
    groups with the algorithm identification (TID 4019), the finding's code and threshold, and
    both evaluations; the out-of-distribution group. A report stamps them with what its film
    changes, so the node and ``score --dicom-out`` spend their time on the film."""

    root: Stamp  # TID 1500 root: slots comment, library, measurements
    probability: _Number
    ood_score: _Number
    findings: Mapping[str, _FindingParts]
    ood: Stamp  # slots uid, score, evaluation, source (a threshold when the model has one)
    ood_yes: Dataset
    ood_no: Dataset


#: a stand-in for the film in the model's groups: every use replaces the items that hold it
_STAND_IN = ("1.2.840.10008.5.1.4.1.1.1.1", "2.25.1")  # DX for presentation, a valid UID


def _model_parts(info: ModelInfo, prediction: Prediction) -> _ModelParts:
    thresholds = tuple((label, float(t)) for label, t in zip(prediction.labels, prediction.thresholds))
    ood = None if info.ood is None else float(info.ood.threshold)
    return _parts_of(str(info.model_version), bool(info.demo), thresholds, ood)


def _is(value_type: str, code_value: str):
    return lambda item: item.ValueType == value_type and concept(item) == code_value


@functools.lru_cache(maxsize=16)
def _parts_of(model_version: str, demo: bool, thresholds: tuple[tuple[str, float], ...], ood: float | None) -> _ModelParts:
    with quiet_values():
        algorithm = hd.sr.AlgorithmIdentification(
            name="cxrviewer",
            version=__version__,
            parameters=[
                f"model version: {model_version}",
                "demo model: yes, not for diagnosis" if demo else "demo model: no",
                (f"regions: map at or above {heatmap.REGION_LEVEL:g} of its peak, "
                 f"at least {heatmap.REGION_MIN_AREA:g} of the film's area"),
            ],
            manufacturer=MANUFACTURER,
        )
        source = hd.sr.SourceImageForMeasurementGroup(*_STAND_IN)
        uid_slot, source_slot = _is("UIDREF", "112040"), _is("IMAGE", "121112")
        findings = {}
        first = None
        for label, threshold in thresholds:
            code = hd.sr.CodedConcept.from_code(codes.finding_code(label))
            present = hd.sr.QualitativeEvaluation(code, codes.PRESENT)
            group = hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label),
                finding_type=code,
                algorithm_id=algorithm,
                source_images=[source],
                measurements=[_number(codes.PROBABILITY, 0.0), _number(codes.THRESHOLD, threshold)],
                qualitative_evaluations=[present],
            )
            region = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{label} region"),
                referenced_region=hd.sr.ImageRegion(
                    graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                    graphic_data=np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]),
                    source_image=hd.sr.SourceImageForRegion(*_STAND_IN),
                ),
                finding_type=code,
                algorithm_id=algorithm,
                geometric_purpose=codes.OUTLINE,
            )
            first = first or group
            findings[label] = _FindingParts(
                code=code,
                group=Stamp.of(group[0], {
                    "uid": uid_slot, "probability": _is("NUM", codes.PROBABILITY.value),
                    "evaluation": _is("CODE", code.value), "source": source_slot,
                }),
                present=freeze(present[0]),
                absent=freeze(hd.sr.QualitativeEvaluation(code, codes.ABSENT)[0]),
                region=Stamp.of(region[0], {
                    "identifier": _is("TEXT", "112039"), "uid": uid_slot, "region": _is("SCOORD", "111030"),
                }),
            )
        yes = hd.sr.QualitativeEvaluation(codes.OOD_FINDING, codes.YES)
        ood_group = hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="out-of-distribution check"),
            finding_type=codes.OOD_FINDING,
            algorithm_id=algorithm,
            source_images=[source],
            measurements=[_number(codes.OOD_SCORE, 0.0)] + ([] if ood is None else [_number(codes.THRESHOLD, ood)]),
            qualitative_evaluations=[yes],
        )
        report = _report_of(model_version, first)
        ood_stamp = Stamp.of(ood_group[0], {
            "uid": uid_slot, "score": _is("NUM", codes.OOD_SCORE.value),
            "evaluation": _is("CODE", codes.OOD_FINDING.value), "source": source_slot,
        })
        return _ModelParts(
            root=Stamp.of(report[0], {
                "comment": _is("CONTAINER", codes.QUALITATIVE_EVALUATIONS.value),
                "library": _is("CONTAINER", "111028"),
                "measurements": _is("CONTAINER", "126010"),
            }),
            findings=MappingProxyType(findings),
            probability=_Number.of(findings[thresholds[0][0]].group.item("probability")),
            ood_score=_Number.of(ood_stamp.item("score")),
            ood=ood_stamp,
            ood_yes=freeze(yes[0]),
            ood_no=freeze(hd.sr.QualitativeEvaluation(codes.OOD_FINDING, codes.NO)[0]),
        )


def _report_of(model_version: str, group) -> hd.sr.MeasurementReport:
    """The model's TID 1500 report around one group, with the comment container (row 12) where
    :func:`_insert_comment` puts it and an Image Library of the stand-in image: the template
    of the root's own items (language, the device observer, the procedure)."""
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            # The same device UID for the same cxrviewer and model, so reports can be grouped by it.
            uid=generate_uid(entropy_srcs=["cxrviewer", __version__, model_version]),
            name="cxrviewer",
            manufacturer_name=MANUFACTURER,
            model_name=model_version[:64],
        ),
    )
    stand_in = Dataset()
    stand_in.SOPClassUID, stand_in.SOPInstanceUID = _STAND_IN
    stand_in.Modality = "OT"
    stand_in.Rows = stand_in.Columns = 1
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.IMAGING_PROCEDURE,
        imaging_measurements=[group],
        referenced_images=[stand_in],
    )
    _insert_comment(report, "")
    return report


@functools.lru_cache(maxsize=64)
def _source_items(sop_class_uid: str) -> tuple[Nested, Nested]:
    """highdicom's Source of Measurement and Source (of a region) items for an image of
    ``sop_class_uid``, built once per SOP class: a film's get its SOP Instance UID spliced in."""
    with quiet_values():
        return tuple(
            Nested.of(item(sop_class_uid, _STAND_IN[1]), (("ReferencedSOPSequence", 0),))
            for item in (hd.sr.SourceImageForMeasurementGroup, hd.sr.SourceImageForRegion)
        )


#: what highdicom's Image Library reads of an image besides its SOP Instance UID (highdicom
#: 0.28, ``sr/templates.py`` ``ImageLibrary``, ``ImageLibraryEntryDescriptors``) for an image
#: that is neither cross-sectional nor in a frame of reference (those are built each time)
_LIBRARY_READS = ("SOPClassUID", "Modality", "Rows", "Columns", "PatientOrientation", "ImagerPixelSpacing")


def _library(entry: Dataset) -> Dataset | Encoded:
    """The Image Library (TID 1600) of the one image ``entry``, as highdicom builds it.

    Built once for the values highdicom reads (:data:`_LIBRARY_READS`) with a stand-in SOP
    Instance UID, which each film's replaces; a film whose values no library has had yet, or
    that highdicom describes with more (a CT, MR or PET image, a frame of reference), gets
    highdicom's own build.
    """
    if "FrameOfReferenceUID" in entry or entry.get("Modality") in ("CT", "MR", "PT"):
        return hd.sr.ImageLibrary([entry])[0]
    key = tuple(_as_key(entry.get(keyword)) for keyword in _LIBRARY_READS)
    return _library_of(key, entry)(ReferencedSOPInstanceUID=str(entry.SOPInstanceUID))


def _as_key(value) -> tuple:
    """A value read from a dataset, hashable, down to its type and its text (a DS keeps the
    string it was read as, which highdicom may write)."""
    if isinstance(value, (list, tuple, MultiValue)):
        return tuple(_as_key(v) for v in value)
    return (type(value).__name__, repr(value))


_libraries: dict[tuple, Nested] = {}
_LIBRARIES_KEPT = 256


def _library_of(key: tuple, entry: Dataset) -> Nested:
    """The library of ``entry``'s values (``key``), built by highdicom the first time."""
    nested = _libraries.get(key)
    if nested is None:
        stand_in = Dataset({e.tag: e for e in entry.elements() if e.tag != 0x00080018})  # SOP Instance UID
        stand_in.SOPInstanceUID = _STAND_IN[1]
        library = hd.sr.ImageLibrary([stand_in])[0]
        group = library.ContentSequence[0]
        image = next(i for i, item in enumerate(group.ContentSequence) if item.ValueType == "IMAGE")
        nested = Nested.of(library, (("ContentSequence", 0), ("ContentSequence", image), ("ReferencedSOPSequence", 0)))
        if len(_libraries) >= _LIBRARIES_KEPT:
            _libraries.clear()  # sources of that many kinds: start again rather than grow
        _libraries[key] = nested
    return nested


def _library_entry(ref):
    """The reference as highdicom's Image Library reads it.

    For a projection radiograph highdicom writes TID 1603 descriptors from Patient Orientation
    and Imager Pixel Spacing and fails when the source lacks them (many CR/DX files do). Then
    the entry is described without them: the coded modality still comes from the SOP Class.
    """
    orientation = ref.get("PatientOrientation")
    has_orientation = orientation is not None and not isinstance(orientation, str) and len(orientation) == 2
    if has_orientation and ref.get("ImagerPixelSpacing"):
        return ref
    # a dataset of its own (copy.copy would share the elements' mapping with ``ref``, and
    # setting Modality would change the reference's own element)
    entry = Dataset({e.tag: e for e in ref.elements() if e.tag != 0x00080060})  # Modality
    entry.Modality = "OT"  # not a projection modality to highdicom: no TID 1603 rows
    return entry


def _number(name: Code, value: float) -> hd.sr.Measurement:
    # Six decimals, as the results CSV writes them: the SR and the CSV say the same number.
    return hd.sr.Measurement(name=name, value=float(f"{float(value):.6f}"), unit=codes.NO_UNITS)


def _region_groups(
    stamp: Stamp, regions: Sequence[heatmap.Region], label: str, source: Dataset
) -> list[Dataset]:
    """A TID 1410 group for each region's outline and each region's box: a closed SCOORD
    POLYLINE on the source image (``source``), in film pixels (PS3.3 C.18.6.1.1)."""
    out = []
    for i, region in enumerate(regions, start=1):
        for kind, points in (("outline", outline_points(region)), ("box", box_points(region))):
            if points is None:
                continue
            points = np.asarray(points, dtype=float)
            # what highdicom's ImageRegion checks of a polyline, kept here: pairs, more than one
            if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 2:
                raise ValueError("a region's polyline must be two or more (column, row) pairs")
            out.append(stamp(
                identifier=spliced(stamp.item("identifier"), TextValue=f"{label} region {i} {kind}"),
                uid=_uid(stamp),
                # the points encoded at once, as pydicom writes each (stamp.floats)
                region=spliced(stamp.item("region"), ContentSequence=[source], GraphicData=floats("GraphicData", points.ravel())),
            ))
    return out


def _reader_groups(
    src: SourceImage, measurements: Sequence[Measurement], calibration: Calibration | None
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """A TID 1501 group for each of the reader's measurements (see the module's docstring)."""
    out = []
    method = codes.CALIBRATION_METHODS[calibration.kind] if calibration is not None else None
    for i, m in enumerate(measurements, start=1):
        # film coordinates are SCOORD's: (0, 0) the top left corner of the top left pixel
        # (PS3.3 C.18.6.1.1), x right, y down
        segments = [m.points[:2], m.points[2:]] if m.kind == "ctr" else [m.points]
        coordinates = [
            hd.sr.CoordinatesForMeasurement(
                graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                graphic_data=np.array(points, dtype=float),
                source_image=hd.sr.SourceImageForRegion(src.sop_class_uid, src.sop_instance_uid),
            )
            for points in segments
        ]
        if m.kind == "distance":
            if calibration is None:
                logger.debug("distance %d left out of the SR: the film has no calibration", i)
                continue
            name, unit, value, used = codes.LENGTH, codes.MILLIMETER, m.value(calibration), method
        elif m.kind == "angle":
            name, unit, value, used = codes.ANGLE, codes.DEGREE, m.value(calibration), method
        else:  # the ratio has no unit: the calibration cancels out
            name, unit, value, used = codes.CARDIOTHORACIC_RATIO, codes.RATIO, m.value(None), None
        out.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{m.kind} {i}"),
                source_images=[hd.sr.SourceImageForMeasurementGroup(src.sop_class_uid, src.sop_instance_uid)],
                measurements=[
                    hd.sr.Measurement(
                        name=name, value=round(float(value), 3), unit=unit, method=used,
                        referenced_coordinates=coordinates,
                    )
                ],
            )
        )
    return out


def _comment(prediction: Prediction, info: ModelInfo) -> str:
    parts = [demo_notice(info)] if info.demo else []
    positives = prediction.positives
    if positives:
        found = ", ".join(f"{label} {prediction.probability(label):.2f}" for label in positives)
        parts.append(f"Findings at or above the model's threshold: {found}.")
    else:
        parts.append("No finding at or above the model's threshold.")
    if prediction.ood_flag:
        parts.append("This film looks unlike the films the model was trained on: its findings are unreliable.")
    return " ".join(parts)


def _comment_item(text: str) -> hd.sr.ContainerContentItem:
    """TID 1500 row 12, "Qualitative Evaluations": a container with one Comment, ``text``.

    highdicom builds rows 1-5 only; this container is what a viewer shows first after the
    header, so a demo model's warning is not buried under fourteen measurement groups.
    """
    container = hd.sr.ContainerContentItem(
        name=codes.QUALITATIVE_EVALUATIONS,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.TextContentItem(
                name=codes.COMMENT,
                value=text,
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        ]
    )
    return container


def _insert_comment(report: hd.sr.MeasurementReport, text: str) -> None:
    """Add the comment container (:func:`_comment_item`) before the Image Library."""
    items = report[0].ContentSequence
    names = [item.ConceptNameCodeSequence[0].CodeValue for item in items]
    # before the Image Library (DCM 111028), or the Imaging Measurements (DCM 126010) without one
    at = next((i for i, v in enumerate(names) if v in ("111028", "126010")), len(items))
    items.insert(at, _comment_item(text))
