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
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

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
from .source import DEIDENTIFICATION_METHOD, SourceImage, read_source

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
) -> Path:
    """Write the SR of ``prediction`` for the DICOM film ``film`` to ``path`` (atomically).

    ``region_labels``: the findings whose regions (outline and box) go in (default: the
    positives). ``anonymize``: no patient identity, UIDs kept (docs/dicom-results.md).
    ``measurements``: the reader's distances, angles and ratios, measured with ``calibration``
    (default: the film's own).
    """
    check_folder(path)
    ds = build_sr(film, prediction, info, region_labels=region_labels, anonymize=anonymize,
                  measurements=measurements, calibration=calibration)
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
) -> hd.sr.Comprehensive3DSR:
    """The SR dataset that :func:`export_dicom_sr` writes."""
    src = read_source(film, WHAT)
    # the one class-list rule (cxrviewer.classes): labels or display names, unknown ones refused
    labels = prediction.positives if region_labels is None else resolve(region_labels, prediction.labels)
    with quiet_values(), highdicom_errors(film, WHAT):
        return _build(src, film, prediction, info, labels, anonymize,
                      tuple(measurements), calibration or film.calibration)


def _build(
    src: SourceImage,
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    region_labels: Sequence[str],
    anonymize: bool,
    reader: tuple[Measurement, ...] = (),
    calibration: Calibration | None = None,
) -> hd.sr.Comprehensive3DSR:
    ref = src.reference(anonymize=anonymize)
    patient_name = patient_name_aside(ref)
    parts = _model_parts(info, prediction)
    algorithm = parts.algorithm
    group_source = [hd.sr.SourceImageForMeasurementGroup(src.sop_class_uid, src.sop_instance_uid)]
    groups: list = []
    for label, probability, threshold in zip(prediction.labels, prediction.probabilities, prediction.thresholds):
        part = parts.findings[label]
        present = float(probability) >= float(threshold)
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label),
                finding_type=part.code,
                algorithm_id=algorithm,
                source_images=group_source,
                measurements=[_number(codes.PROBABILITY, probability), part.threshold],
                qualitative_evaluations=[part.present if present else part.absent],
            )
        )
    for label in region_labels:
        groups.extend(_region_groups(src, film, prediction, label, algorithm))
    if prediction.ood_score is not None:
        measurements = [_number(codes.OOD_SCORE, prediction.ood_score)]
        if parts.ood_threshold is not None:
            measurements.append(parts.ood_threshold)
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="out-of-distribution check"),
                finding_type=codes.OOD_FINDING,
                algorithm_id=algorithm,
                source_images=group_source,
                measurements=measurements,
                qualitative_evaluations=[parts.ood_yes if prediction.ood_flag else parts.ood_no],
            )
        )
    groups.extend(_reader_groups(src, reader, calibration))

    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            # The same device UID for the same cxrviewer and model, so reports can be grouped by it.
            uid=generate_uid(entropy_srcs=["cxrviewer", __version__, info.model_version]),
            name="cxrviewer",
            manufacturer_name=MANUFACTURER,
            model_name=str(info.model_version)[:64],
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.IMAGING_PROCEDURE,
        imaging_measurements=groups,
        referenced_images=[_library_entry(ref)],
    )
    _insert_comment(report, _comment(prediction, info))

    sr = hd.sr.Comprehensive3DSR(
        evidence=[ref],
        content=_root_without_children(report[0]),
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
    _attach_content(sr, report)
    patient_name_back(sr, patient_name)
    if anonymize:
        sr.PatientIdentityRemoved = "YES"
        sr.DeidentificationMethod = DEIDENTIFICATION_METHOD
    logger.debug("SR for %s: %d groups", film.source, len(groups))
    return sr


@dataclass(frozen=True)
class _FindingParts:
    code: hd.sr.CodedConcept
    threshold: hd.sr.Measurement
    present: hd.sr.QualitativeEvaluation
    absent: hd.sr.QualitativeEvaluation


@dataclass(frozen=True)
class _ModelParts:
    """The content items every SR of one model shares, built once per process: the algorithm
    identification (TID 4019), and for each label its code, its threshold (a model constant)
    and both of its present / absent evaluations. highdicom puts the same objects in every
    group that uses them (the algorithm identification was already one object per SR), and
    nothing changes them after they are built, so SRs share them too: the node's builders and
    ``score --dicom-out`` spend their time on what the film changes."""

    algorithm: hd.sr.AlgorithmIdentification
    findings: Mapping[str, _FindingParts]
    ood_threshold: hd.sr.Measurement | None
    ood_yes: hd.sr.QualitativeEvaluation
    ood_no: hd.sr.QualitativeEvaluation


def _model_parts(info: ModelInfo, prediction: Prediction) -> _ModelParts:
    thresholds = tuple((label, float(t)) for label, t in zip(prediction.labels, prediction.thresholds))
    ood = None if info.ood is None else float(info.ood.threshold)
    return _parts_of(str(info.model_version), bool(info.demo), thresholds, ood)


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
        findings = {}
        for label, threshold in thresholds:
            code = hd.sr.CodedConcept.from_code(codes.finding_code(label))
            findings[label] = _FindingParts(
                code=code,
                threshold=_number(codes.THRESHOLD, threshold),
                present=hd.sr.QualitativeEvaluation(code, codes.PRESENT),
                absent=hd.sr.QualitativeEvaluation(code, codes.ABSENT),
            )
        return _ModelParts(
            algorithm=algorithm,
            findings=MappingProxyType(findings),
            ood_threshold=None if ood is None else _number(codes.THRESHOLD, ood),
            ood_yes=hd.sr.QualitativeEvaluation(codes.OOD_FINDING, codes.YES),
            ood_no=hd.sr.QualitativeEvaluation(codes.OOD_FINDING, codes.NO),
        )


def _root_without_children(root: hd.sr.ContainerContentItem) -> Dataset:
    """The report's root container with an empty Content Sequence, for highdicom's SR constructor.

    The constructor deep-copies the content it is given, parses the copy back into its item
    classes and searches it twice for image references (highdicom 0.28, ``sr/sop.py``
    ``_SR.__init__``; no parameter skips any of it): 70% of an SR's build time, for a tree that
    :func:`_attach_content` then hands over as it is. What the constructor takes from the tree
    does not depend on the children: the root's elements are copied, and the evidence sequences
    are made from ``evidence`` alone (the search only checks that every referenced image is in
    it, which holds by construction: every reference here is the source image).
    """
    light = Dataset()
    for element in root:
        if element.keyword != "ContentSequence":
            light.add(element)
    light.ContentSequence = []
    return light


def _attach_content(sr: hd.sr.Comprehensive3DSR, report: hd.sr.MeasurementReport) -> None:
    """Give ``sr`` the report's content tree, as :func:`_root_without_children` left it out.

    ``sr.content`` becomes the report itself, as highdicom's ``Comprehensive3DSR.from_dataset``
    makes it for a TID 1500 document.
    """
    sr.ContentSequence = report[0].ContentSequence
    sr._content = report


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
    entry = copy.copy(ref)
    entry.Modality = "OT"  # not a projection modality to highdicom: no TID 1603 rows
    return entry


def _number(name: Code, value: float) -> hd.sr.Measurement:
    # Six decimals, as the results CSV writes them: the SR and the CSV say the same number.
    return hd.sr.Measurement(name=name, value=float(f"{float(value):.6f}"), unit=codes.NO_UNITS)


def _region_groups(
    src: SourceImage, film: Film, prediction: Prediction, label: str, algorithm: hd.sr.AlgorithmIdentification
) -> list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]:
    code = codes.finding_code(label)
    out = []
    for i, region in enumerate(heatmap.regions(prediction, label, (film.height, film.width)), start=1):
        for kind, points in (("outline", outline_points(region)), ("box", box_points(region))):
            if points is None:
                continue
            out.append(
                hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(
                        uid=generate_uid(), identifier=f"{label} region {i} {kind}"
                    ),
                    referenced_region=hd.sr.ImageRegion(
                        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                        graphic_data=points,
                        source_image=hd.sr.SourceImageForRegion(src.sop_class_uid, src.sop_instance_uid),
                    ),
                    finding_type=code,
                    algorithm_id=algorithm,
                    geometric_purpose=codes.OUTLINE,
                )
            )
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


def _insert_comment(report: hd.sr.MeasurementReport, text: str) -> None:
    """Add TID 1500 row 12 ("Qualitative Evaluations", a Comment) before the Image Library.

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
    items = report[0].ContentSequence
    names = [item.ConceptNameCodeSequence[0].CodeValue for item in items]
    # before the Image Library (DCM 111028), or the Imaging Measurements (DCM 126010) without one
    at = next((i for i, v in enumerate(names) if v in ("111028", "126010")), len(items))
    items.insert(at, container)
