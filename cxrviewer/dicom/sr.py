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

import logging
from collections.abc import Sequence
from pathlib import Path

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
from .source import DEIDENTIFICATION_METHOD, FilmSource, SourceImage

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
    """The SR dataset that :func:`export_dicom_sr` writes: highdicom's own, built by its
    templates and its ``Comprehensive3DSR`` constructor (``.content`` is the report's tree)."""
    shared = FilmSource(film, prediction) if source is None else source.check(film, prediction)
    shared.image(WHAT)
    # the one class-list rule (cxrviewer.classes): labels or display names, unknown ones refused
    labels = prediction.positives if region_labels is None else resolve(region_labels, prediction.labels)
    with quiet_values():
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
    """The SR, every content item built by highdicom's templates for this film.

    Only the calls that read the source's header are inside :func:`highdicom_errors` (a header
    highdicom cannot use becomes a :class:`~cxrviewer.errors.DicomResultError`); an error
    anywhere else is a bug and is raised as it is.
    """
    src = shared.image(WHAT)
    ref = shared.reference(WHAT, anonymize=anonymize)
    patient_name = patient_name_aside(ref)
    with highdicom_errors(film, WHAT):
        # the film's references, as highdicom checks them (an image's SOP class, its UIDs); one
        # item each, shared by every group that points at the film
        measured = hd.sr.SourceImageForMeasurementGroup(src.sop_class_uid, src.sop_instance_uid)
        outlined = hd.sr.SourceImageForRegion(src.sop_class_uid, src.sop_instance_uid)
    library_entry = _library_entry(ref)
    algorithm = _algorithm(info)
    groups: list = []
    for label, probability, threshold in zip(prediction.labels, prediction.probabilities, prediction.thresholds):
        code = hd.sr.CodedConcept.from_code(codes.finding_code(label))
        present = float(probability) >= float(threshold)
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label),
            finding_type=code,
            algorithm_id=algorithm,
            source_images=[measured],
            measurements=[_number(codes.PROBABILITY, probability), _number(codes.THRESHOLD, threshold)],
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(code, codes.PRESENT if present else codes.ABSENT)],
        ))
    for label in region_labels:
        groups.extend(_region_groups(outlined, algorithm, shared.regions(label), label))
    if prediction.ood_score is not None:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="out-of-distribution check"),
            finding_type=codes.OOD_FINDING,
            algorithm_id=algorithm,
            source_images=[measured],
            measurements=[_number(codes.OOD_SCORE, prediction.ood_score)]
            + ([] if info.ood is None else [_number(codes.THRESHOLD, info.ood.threshold)]),
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(
                codes.OOD_FINDING, codes.YES if prediction.ood_flag else codes.NO)],
        ))
    groups.extend(_reader_groups(src, reader, calibration))

    context = hd.sr.ObservationContext(observer_device_context=_observer(info))
    with highdicom_errors(film, WHAT):  # its Image Library (TID 1600) describes the source
        report = hd.sr.MeasurementReport(
            observation_context=context,
            procedure_reported=codes.IMAGING_PROCEDURE,
            imaging_measurements=groups,
            referenced_images=[library_entry],
        )
    _insert_comment(report, _comment(prediction, info))
    with highdicom_errors(film, WHAT):  # the patient, the study and the evidence: the source's
        sr = hd.sr.Comprehensive3DSR(
            evidence=[ref],
            content=report[0],
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
    patient_name_back(sr, patient_name)
    if anonymize:
        sr.PatientIdentityRemoved = "YES"
        sr.DeidentificationMethod = DEIDENTIFICATION_METHOD
    logger.debug("SR for %s: %d groups", film.source, len(groups))
    return sr


def _algorithm(info: ModelInfo) -> hd.sr.AlgorithmIdentification:
    """TID 4019 Algorithm Identification: cxrviewer, its version, the model's version, demo or
    not, and the region rule; one per report, shared by its groups."""
    return hd.sr.AlgorithmIdentification(
        name="cxrviewer",
        version=__version__,
        parameters=[
            f"model version: {info.model_version}",
            "demo model: yes, not for diagnosis" if info.demo else "demo model: no",
            (f"regions: map at or above {heatmap.REGION_LEVEL:g} of its peak, "
             f"at least {heatmap.REGION_MIN_AREA:g} of the film's area"),
        ],
        manufacturer=MANUFACTURER,
    )


def _observer(info: ModelInfo) -> hd.sr.ObserverContext:
    """The device observer (TID 1004): cxrviewer and the model."""
    model_version = str(info.model_version)
    return hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            # The same device UID for the same cxrviewer and model, so reports can be grouped by it.
            uid=generate_uid(entropy_srcs=["cxrviewer", __version__, model_version]),
            name="cxrviewer",
            manufacturer_name=MANUFACTURER,
            model_name=model_version[:64],
        ),
    )


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
    source: hd.sr.SourceImageForRegion, algorithm: hd.sr.AlgorithmIdentification, regions: Sequence[heatmap.Region], label: str
) -> list[hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]:
    """A TID 1410 group for each region's outline and each region's box: a closed SCOORD
    POLYLINE on the source image (``source``), in film pixels (PS3.3 C.18.6.1.1)."""
    code = hd.sr.CodedConcept.from_code(codes.finding_code(label))
    out = []
    for i, region in enumerate(regions, start=1):
        for kind, points in (("outline", outline_points(region)), ("box", box_points(region))):
            if points is None:
                continue
            out.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{label} region {i} {kind}"),
                referenced_region=hd.sr.ImageRegion(
                    graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
                    graphic_data=np.asarray(points, dtype=float),
                    source_image=source,
                ),
                finding_type=code,
                algorithm_id=algorithm,
                geometric_purpose=codes.OUTLINE,
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
