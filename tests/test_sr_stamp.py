"""The SR stamped from the model's frozen parts (cxrviewer.dicom.stamp) says exactly what
highdicom's templates, built for every film, say: the oracle below builds the whole report with
highdicom as cxrviewer did before, and the two files must decode to the same tree, UIDs and
times aside. Generated films (tests/dicomfactory.py) and the bundled demo model (14 labels,
OOD guard, demo flag)."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from helpers import decoded_result, run_in_threads
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom.uid import generate_uid

from cxrviewer import __version__, heatmap
from cxrviewer.dicom import build_sr, codes
from cxrviewer.dicom import sr as sr_module
from cxrviewer.dicom.coords import box_points, outline_points
from cxrviewer.dicom.output import (
    MANUFACTURER,
    SERIES_NUMBER,
    description,
    patient_name_aside,
    patient_name_back,
)
from cxrviewer.dicom.source import DEIDENTIFICATION_METHOD, read_source
from cxrviewer.dicom.stamp import Stamp, concept, freeze, is_frozen, stamped
from cxrviewer.io import read_film
from cxrviewer.types import Calibration, Measurement

MEASUREMENTS = (
    Measurement("distance", ((10.5, 20.5), (110.5, 20.5))),
    Measurement("angle", ((60.0, 10.0), (10.0, 10.0), (10.0, 60.0))),
    Measurement("ctr", ((30.0, 40.0), (70.0, 40.0), (10.0, 70.0), (110.0, 70.0))),
)


@pytest.fixture(scope="module")
def demo():
    from cxrviewer.model import Classifier
    from cxrviewer.paths import default_model_path

    return Classifier.load(default_model_path(), device="cpu")


def _number(name, value):
    return hd.sr.Measurement(name=name, value=float(f"{float(value):.6f}"), unit=codes.NO_UNITS)


def highdicom_sr(film, prediction, info, region_labels, anonymize=False, reader=(), calibration=None):
    """The oracle: every content item built by highdicom's templates, for this film."""
    src = read_source(film, "Structured Report")
    ref = src.reference(anonymize=anonymize)
    name = patient_name_aside(ref)
    algorithm = hd.sr.AlgorithmIdentification(
        name="cxrviewer", version=__version__, manufacturer=MANUFACTURER,
        parameters=[
            f"model version: {info.model_version}",
            "demo model: yes, not for diagnosis" if info.demo else "demo model: no",
            (f"regions: map at or above {heatmap.REGION_LEVEL:g} of its peak, "
             f"at least {heatmap.REGION_MIN_AREA:g} of the film's area"),
        ],
    )
    source = [hd.sr.SourceImageForMeasurementGroup(src.sop_class_uid, src.sop_instance_uid)]
    groups = []
    for label, p, t in zip(prediction.labels, prediction.probabilities, prediction.thresholds):
        code = hd.sr.CodedConcept.from_code(codes.finding_code(label))
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=label),
            finding_type=code, algorithm_id=algorithm, source_images=source,
            measurements=[_number(codes.PROBABILITY, p), _number(codes.THRESHOLD, t)],
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(
                code, codes.PRESENT if float(p) >= float(t) else codes.ABSENT)],
        ))
    for label in region_labels:
        code = hd.sr.CodedConcept.from_code(codes.finding_code(label))
        for i, region in enumerate(heatmap.regions(prediction, label, (film.height, film.width)), start=1):
            for kind, points in (("outline", outline_points(region)), ("box", box_points(region))):
                if points is None:
                    continue
                groups.append(hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
                    tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier=f"{label} region {i} {kind}"),
                    referenced_region=hd.sr.ImageRegion(
                        graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=points,
                        source_image=hd.sr.SourceImageForRegion(src.sop_class_uid, src.sop_instance_uid)),
                    finding_type=code, algorithm_id=algorithm, geometric_purpose=codes.OUTLINE,
                ))
    if prediction.ood_score is not None:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="out-of-distribution check"),
            finding_type=codes.OOD_FINDING, algorithm_id=algorithm, source_images=source,
            measurements=[_number(codes.OOD_SCORE, prediction.ood_score)]
            + ([] if info.ood is None else [_number(codes.THRESHOLD, info.ood.threshold)]),
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(
                codes.OOD_FINDING, codes.YES if prediction.ood_flag else codes.NO)],
        ))
    groups.extend(sr_module._reader_groups(src, reader, calibration or film.calibration))
    observer = hd.sr.ObserverContext(
        observer_type=hd.sr.CodedConcept("121007", "DCM", "Device"),
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["cxrviewer", __version__, info.model_version]),
            name="cxrviewer", manufacturer_name=MANUFACTURER, model_name=str(info.model_version)[:64]),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.IMAGING_PROCEDURE, imaging_measurements=groups,
        referenced_images=[sr_module._library_entry(ref)],
    )
    sr_module._insert_comment(report, sr_module._comment(prediction, info))
    sr = hd.sr.Comprehensive3DSR(
        evidence=[ref], content=report[0], series_instance_uid=generate_uid(), series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        series_description=description("SR", info),
        coding_schemes=[CodingSchemeIdentificationItem(
            designator=codes.LOCAL_SCHEME, name=codes.LOCAL_SCHEME_NAME,
            responsible_organization=codes.LOCAL_SCHEME_RESPONSIBLE)],
        is_complete=True, is_final=False, is_verified=False,
    )
    patient_name_back(sr, name)
    if anonymize:
        sr.PatientIdentityRemoved = "YES"
        sr.DeidentificationMethod = DEIDENTIFICATION_METHOD
    return sr


decoded = decoded_result


@pytest.mark.parametrize("role", ["nih_dx", "jpeg_baseline_chest", "no_preamble_chest", "j2k_mono1"])
def test_stamped_sr_is_highdicoms(generated_dicoms, demo, role):
    film = read_film(generated_dicoms[role])
    pred = demo.predict_one(film)
    assert pred.ood_score is not None  # the OOD group is in the comparison
    for kwargs in ({}, {"region_labels": list(pred.labels)}, {"anonymize": True}):
        labels = kwargs.get("region_labels", pred.positives)
        oracle = highdicom_sr(film, pred, demo.info, labels, anonymize=kwargs.get("anonymize", False))
        assert decoded(build_sr(film, pred, demo.info, **kwargs)) == decoded(oracle), (role, kwargs)


def test_stamped_sr_with_the_readers_measurements_is_highdicoms(generated_dicoms, demo):
    film = read_film(generated_dicoms["nih_dx"])
    pred = demo.predict_one(film)
    manual = Calibration.manual((10.0, 10.0), (110.0, 10.0), 25.0)
    stamped_sr = build_sr(film, pred, demo.info, measurements=MEASUREMENTS, calibration=manual)
    oracle = highdicom_sr(film, pred, demo.info, pred.positives, reader=MEASUREMENTS, calibration=manual)
    assert decoded(stamped_sr) == decoded(oracle)


def test_srs_built_at_once_in_threads_each_say_their_own_film(generated_dicoms, demo):
    """The frozen parts are shared by every report of the model, across threads: nothing a
    report changes reaches another one."""
    roles = ["nih_dx", "jpeg_baseline_chest", "no_preamble_chest", "j2k_mono1"] * 3
    films = {role: read_film(generated_dicoms[role]) for role in set(roles)}
    preds = {role: demo.predict_one(film) for role, film in films.items()}
    expected = {role: decoded(highdicom_sr(films[role], preds[role], demo.info, preds[role].positives)) for role in films}
    got = run_in_threads(lambda role: decoded(build_sr(films[role], preds[role], demo.info)), [(role,) for role in roles])
    for role, result in zip(roles, got):
        assert result == expected[role], role


def test_frozen_item_is_written_as_its_bytes_and_non_ascii_text_is_not_frozen():
    item = hd.sr.TextContentItem(name=codes.COMMENT, value="cxrviewer",
                                 relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    frozen = freeze(item)
    assert all(element.is_raw for element in frozen.elements())
    assert frozen.original_encoding == (False, True)
    changed = stamped(frozen, TextValue="other")
    assert changed.TextValue == "other" and frozen.TextValue == "cxrviewer"  # the frozen one kept
    # text outside ASCII is encoded by each report's own Specific Character Set: not frozen
    umlaut = hd.sr.TextContentItem(name=codes.COMMENT, value="Pleuraerguss rechts, Größe 3 cm",
                                   relationship_type=hd.sr.RelationshipTypeValues.CONTAINS)
    assert freeze(umlaut) is umlaut


def test_stamp_slots_must_pick_one_item_each():
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="x"),
        measurements=[_number(codes.PROBABILITY, 0.5), _number(codes.THRESHOLD, 0.5)],
    )
    with pytest.raises(ValueError, match="matches 2 items"):
        Stamp.of(group[0], {"number": lambda item: item.ValueType == "NUM"})
    with pytest.raises(ValueError, match="matches 0 items"):
        Stamp.of(group[0], {"scoord": lambda item: item.ValueType == "SCOORD"})
    stamp = Stamp.of(group[0], {"p": lambda item: concept(item) == codes.PROBABILITY.value})
    with pytest.raises(TypeError):
        stamp()  # every slot must be filled
    from cxrviewer.dicom.stamp import Encoded, _as_dataset, _as_item, _encoded

    got = stamp(p=stamped(stamp.item("p")))
    # the container's bytes: as pydicom encodes highdicom's container, its items in their places
    assert isinstance(got, Encoded) and bytes(got) == _as_item(_encoded(group[0]))
    filled = _as_dataset(got)
    assert len(filled.ContentSequence) == len(group[0].ContentSequence)
    assert np.isclose(float(filled.ContentSequence[stamp.slots["p"]].MeasuredValueSequence[0].NumericValue), 0.5)


def test_a_model_with_text_outside_ascii_gets_the_same_report(generated_dicoms, demo):
    """Its parts are not frozen (each report's character set encodes them): the report is
    still highdicom's, item by item."""
    import dataclasses

    info = dataclasses.replace(demo.info, model_version="Modèle-Ärzte 2")
    film = read_film(generated_dicoms["nih_dx"])
    pred = demo.predict_one(film)
    parts = sr_module._model_parts(info, pred)
    assert not all(is_frozen(item) for item in parts.findings[pred.labels[0]].group.items)
    oracle = highdicom_sr(film, pred, info, list(pred.labels))
    assert decoded(build_sr(film, pred, info, region_labels=list(pred.labels))) == decoded(oracle)


def test_spliced_items_are_the_stamped_items_bytes():
    """spliced() cuts a frozen item's bytes around the elements it replaces: the same bytes
    as the stamped dataset encoded by pydicom, for a top-level value, a sequence and two at once."""
    from pydicom.sequence import Sequence as DicomSequence

    from cxrviewer.dicom.stamp import Encoded, _as_item, _encoded, spliced

    source = freeze(hd.sr.SourceImageForRegion("1.2.840.10008.5.1.4.1.1.1", "1.2.3.4"))
    region = freeze(hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]),
        source_image=hd.sr.SourceImageForRegion("1.2.840.10008.5.1.4.1.1.1.1", "2.25.1"),
    ))
    points = [5.5, 6.5, 105.25, 6.5, 105.25, 66.0, 5.5, 6.5]
    got = spliced(region, ContentSequence=[source], GraphicData=points)
    want = stamped(region, ContentSequence=DicomSequence([source]), GraphicData=points)
    assert isinstance(got, Encoded) and bytes(got) == _as_item(_encoded(want))
    uid = freeze(hd.sr.UIDRefContentItem(name=hd.sr.CodedConcept("112040", "DCM", "Tracking Unique Identifier"),
                                         value="2.25.5", relationship_type=hd.sr.RelationshipTypeValues.HAS_OBS_CONTEXT))
    for value in ("2.25.77", "1.2.826.0.1.3680043.8.498.1234567890123456789012345678901234567"):  # odd, even lengths
        assert bytes(spliced(uid, UID=value)) == _as_item(_encoded(stamped(uid, UID=value)))
    # the template itself is untouched, and still raw
    assert all(element.is_raw for element in region.elements())
    # not frozen (text outside ASCII), or a new text outside ASCII: a dataset for pydicom to encode
    text = freeze(hd.sr.TextContentItem(name=codes.COMMENT, value="x",
                                        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    assert isinstance(spliced(text, TextValue="Größe"), pydicom.Dataset)
    assert isinstance(spliced(text, TextValue="size"), Encoded)


def test_spliced_values_are_encoded_as_pydicom_encodes_them():
    """spliced() encodes plain values itself (text, UIDs, decimal and integer strings, doubles,
    unsigned shorts, already encoded floats): the bytes pydicom's element writer gives."""
    from pydicom.dataelem import DataElement
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_data_element
    from pydicom.tag import Tag
    from pydicom.valuerep import DS

    from cxrviewer.dicom.stamp import _element_bytes, floats

    def pydicoms(keyword, value):
        buf = DicomBytesIO()
        buf.is_implicit_VR, buf.is_little_endian = False, True
        tag = Tag(keyword)
        write_data_element(buf, DataElement(tag, pydicom.datadict.dictionary_VR(tag), value))
        return buf.getvalue()

    cases = [
        ("UID", "2.25.77"), ("UID", "2.25.7"), ("TextValue", "Pneumothorax region 1 box"),
        ("TextValue", "odd"), ("TextValue", ""), ("GraphicLayerDescription", "Mass: probability 0.52 (threshold 0.50)"),
        ("NumericValue", DS(0.123457, auto_format=True)), ("NumericValue", DS(1e-07, auto_format=True)),
        ("NumericValue", "0.5"), ("GraphicLayerOrder", "7"), ("GraphicLayerOrder", "12"),
        ("FloatingPointValue", 0.123457), ("NumberOfGraphicPoints", 5), ("NumberOfGraphicPoints", 65535),
        ("GraphicLayer", "PNEUMOTHORAX"), ("GraphicLayer", "A\\B"), ("UnformattedTextValue", "Größe 0.50"),
    ]
    for keyword, value in cases:
        tag = Tag(keyword)
        got = _element_bytes(tag, pydicom.datadict.dictionary_VR(tag), value)
        assert got == pydicoms(keyword, value), (keyword, value)
    points = np.array([0.5, 1.25, 1023.0, 7.1])
    assert _element_bytes(Tag("GraphicData"), "FL", floats("GraphicData", points)) == pydicoms("GraphicData", points.tolist())


def test_a_nested_value_is_spliced_as_highdicom_builds_it():
    """The Image Library of a film is highdicom's, built once for the values it reads with a
    stand-in instance, the film's SOP Instance UID spliced three items down; and an image
    highdicom describes with more (CT) is built by highdicom each time."""
    from cxrviewer.dicom.stamp import Encoded, _as_item, _encoded

    def entry(instance, modality="DX", **values):
        ds = pydicom.Dataset()
        ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2" if modality == "CT" else "1.2.840.10008.5.1.4.1.1.1.1"
        ds.SOPInstanceUID, ds.Modality, ds.Rows, ds.Columns = instance, modality, 2048, 1664
        for keyword, value in values.items():
            setattr(ds, keyword, value)
        return ds

    kinds = [
        {"modality": "OT"},
        {"PatientOrientation": ["L", "F"], "ImagerPixelSpacing": ["0.139", "0.139"]},
        {"PatientOrientation": ["L", "F"], "ImagerPixelSpacing": ["0.1390", "0.139"]},  # as read: another DS string
    ]
    for values in kinds:
        for instance in ("1.2.3.4.5", "1.2.826.0.1.3680043.8.498.12345678901234567890123456789012345678"):
            want = _as_item(_encoded(hd.sr.ImageLibrary([entry(instance, **values)])[0]))
            got = sr_module._library(entry(instance, **values))
            assert isinstance(got, Encoded) and bytes(got) == want, (values, instance)
    ct = entry("1.2.3.4.6", modality="CT", PixelSpacing=["0.5", "0.5"], ImageOrientationPatient=[1, 0, 0, 0, 1, 0],
               ImagePositionPatient=[0, 0, 0], SliceThickness="1", FrameOfReferenceUID="1.2.3.9")
    got = sr_module._library(ct)
    assert not isinstance(got, Encoded) and _encoded(got) == _encoded(hd.sr.ImageLibrary([ct])[0])


def test_a_sequence_put_as_bytes_is_written_as_pydicom_writes_it(generated_dicoms, demo):
    """put_sequence(): the SR's content tree as one raw element, which encode() copies as it is:
    the same file as the tree given to pydicom as a sequence; read back, it is that tree."""
    import io

    from pydicom.sequence import Sequence as DicomSequence

    from cxrviewer.dicom.output import encode
    from cxrviewer.dicom.stamp import is_encoded

    film = read_film(generated_dicoms["nih_dx"])
    pred = demo.predict_one(film)
    sr = build_sr(film, pred, demo.info, region_labels=list(pred.labels))
    assert is_encoded(sr, pydicom.tag.Tag("ContentSequence"))
    raw = encode(sr, "test")
    assert is_encoded(sr, pydicom.tag.Tag("ContentSequence"))  # encoding left it raw
    tree = pydicom.dcmread(io.BytesIO(raw)).ContentSequence
    del sr.ContentSequence
    sr.ContentSequence = DicomSequence(tree)
    assert encode(sr, "test") == raw
