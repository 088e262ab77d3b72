"""The Presentation State says exactly what highdicom's classes say: the oracle below builds the
whole state with highdicom's public API object by object, independently of cxrviewer's builder,
and the two files must decode to the same tree, UIDs and times aside. Generated films (tests/dicomfactory.py) and the bundled demo
model (14 labels, OOD guard, demo flag); a model that is not a demo, a flagged film, a model
version outside ASCII."""

from __future__ import annotations

import dataclasses

import highdicom as hd
import numpy as np
import pytest
from helpers import decoded_result, run_in_threads
from pydicom.uid import generate_uid

from cxrviewer import __version__, heatmap
from cxrviewer.dicom import build_gsps
from cxrviewer.dicom import gsps as gsps_module
from cxrviewer.dicom.coords import box_points, outline_points
from cxrviewer.dicom.gsps import CONTENT_LABEL, NOTICE_LAYER, label_box, layer_names
from cxrviewer.dicom.output import (
    MANUFACTURER,
    NOT_FOR_DIAGNOSIS,
    SERIES_NUMBER,
    description,
    patient_name_aside,
    patient_name_back,
)
from cxrviewer.dicom.source import DEIDENTIFICATION_METHOD, read_source
from cxrviewer.io import read_film
from cxrviewer.render import class_color
from cxrviewer.types import Prediction

ROLES = ("nih_dx", "jpeg_baseline_chest", "no_preamble_chest", "j2k_mono1")
_GRAY = (160, 160, 160)


@pytest.fixture(scope="module")
def demo():
    from cxrviewer.model import Classifier
    from cxrviewer.paths import default_model_path

    return Classifier.load(default_model_path(), device="cpu")


def highdicom_gsps(film, prediction, info, region_labels, anonymize=False):
    """The oracle: every layer, annotation, graphic and text object built by highdicom for this
    film, and the state around them by its constructor."""
    src = read_source(film, "Presentation State")
    ref = src.reference(anonymize=anonymize)
    patient_name = patient_name_aside(ref)
    w, h = float(src.columns), float(src.rows)
    names = layer_names(prediction.labels)
    ranked = prediction.ranked()
    line = max(12.0, h / 40.0)
    layers, annotations = [], []
    listed = 0
    for rank, (label, probability, threshold) in enumerate(ranked):
        positive = probability >= threshold
        color = class_color(prediction, label) if positive else _GRAY
        layer = hd.pr.GraphicLayer(
            layer_name=names[label],
            order=len(ranked) - rank + 1,
            description=f"{label}: probability {probability:.2f} (threshold {threshold:.2f})"[:64],
            display_color=hd.color.CIELabColor.from_rgb(*color),
        )
        layers.append(layer)
        graphics = []
        anchor = None
        if label in region_labels:
            for region in heatmap.regions(prediction, label, (film.height, film.width)):
                for points in (outline_points(region), box_points(region)):
                    if points is not None:
                        graphics.append(hd.pr.GraphicObject(
                            graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
                            graphic_data=np.clip(points, 0.0, (w, h)),
                            units=hd.pr.AnnotationUnitsValues.PIXEL,
                        ))
                if anchor is None:
                    anchor = (float(region.box[0]), float(region.box[1]))
        text = f"{label} {probability:.2f}"
        box = label_box(text, anchor, listed, line, w, h)  # the placement is not what is compared
        listed += anchor is None
        annotations.append(hd.pr.GraphicAnnotation(
            referenced_images=[ref], graphic_layer=layer, graphic_objects=graphics or None,
            text_objects=[hd.pr.TextObject(
                text_value=text, units=hd.pr.AnnotationUnitsValues.PIXEL, bounding_box=box,
                text_justification=hd.pr.TextJustificationValues.LEFT,
            )],
        ))
    notices = []
    if info.demo:
        notices.append(f"{NOT_FOR_DIAGNOSIS}: demo model {info.model_version}")
    if prediction.ood_flag:
        notices.append("Film unlike the training films: findings unreliable")
    if notices:
        notice_layer = hd.pr.GraphicLayer(
            layer_name=NOTICE_LAYER, order=len(ranked) + 2,
            description="cxrviewer notices (demo model, unusual film)",
            display_color=hd.color.CIELabColor.from_rgb(255, 200, 0),
        )
        layers.append(notice_layer)
        texts = []
        for i, notice in enumerate(reversed(notices)):
            bottom = h - i * line
            texts.append(hd.pr.TextObject(
                text_value=notice[:1024], units=hd.pr.AnnotationUnitsValues.PIXEL,
                bounding_box=(0.0, max(0.0, bottom - line), min(w, 0.6 * line * len(notice)), bottom),
                text_justification=hd.pr.TextJustificationValues.LEFT,
            ))
        annotations.append(hd.pr.GraphicAnnotation(referenced_images=[ref], graphic_layer=notice_layer,
                                                   text_objects=texts))
    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[ref], series_instance_uid=generate_uid(), series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER, software_versions=f"cxrviewer {__version__}",
        device_serial_number=None, content_label=CONTENT_LABEL, content_description=description("GSPS", info),
        graphic_annotations=annotations, graphic_layers=layers, series_description=description("GSPS", info),
        presentation_lut_transformation=hd.PresentationLUTTransformation(
            presentation_lut_shape="INVERSE" if film.metadata.get("inverted") else "IDENTITY"),
    )
    gsps_module._series_laterality(gsps, src)
    patient_name_back(gsps, patient_name)
    if anonymize:
        gsps.PatientIdentityRemoved = "YES"
        gsps.DeidentificationMethod = DEIDENTIFICATION_METHOD
    return gsps


decoded = decoded_result


def _cases(pred):
    yield {}, pred.positives
    yield {"region_labels": list(pred.labels)}, pred.labels
    yield {"anonymize": True}, pred.positives


@pytest.mark.parametrize("role", ROLES)
def test_gsps_is_highdicoms(generated_dicoms, demo, role):
    film = read_film(generated_dicoms[role])
    pred = demo.predict_one(film)
    assert demo.info.demo  # the notice layer is in the comparison
    for kwargs, labels in _cases(pred):
        oracle = highdicom_gsps(film, pred, demo.info, set(labels), anonymize=kwargs.get("anonymize", False))
        assert decoded(build_gsps(film, pred, demo.info, **kwargs)) == decoded(oracle), (role, kwargs)


def test_gsps_of_a_flagged_film_and_of_a_model_that_is_no_demo(generated_dicoms, demo):
    """The notice layer with both notices, with the flag's only, and none at all."""
    film = read_film(generated_dicoms["nih_dx"])
    pred = demo.predict_one(film)
    flagged = dataclasses.replace(pred, ood_flag=True)
    plain = dataclasses.replace(demo.info, demo=False)
    for info, prediction in ((demo.info, flagged), (plain, flagged), (plain, dataclasses.replace(pred, ood_flag=False))):
        oracle = highdicom_gsps(film, prediction, info, set(prediction.labels))
        got = build_gsps(film, prediction, info, region_labels=list(prediction.labels))
        assert decoded(got) == decoded(oracle), (info.demo, prediction.ood_flag)
        assert (NOTICE_LAYER in {item.GraphicLayer for item in got.GraphicLayerSequence}) == (
            info.demo or prediction.ood_flag)


def test_a_model_with_text_outside_ascii_gets_the_same_presentation_state(generated_dicoms, demo):
    """Labels and a notice outside ASCII are encoded with the state's Specific Character Set: the
    state is still highdicom's, object by object."""
    info = dataclasses.replace(demo.info, model_version="Modèle-Ärzte 2",
                               labels=tuple(f"{label[:3]}é{label[3:]}" if i % 2 else label
                                            for i, label in enumerate(demo.info.labels)))
    film = read_film(generated_dicoms["nih_dx"])
    base = demo.predict_one(film)
    pred = Prediction(info.labels, base.probabilities, base.class_maps, base.thresholds, info.model_version,
                      ood_score=base.ood_score, ood_flag=True)
    oracle = highdicom_gsps(film, pred, info, set(pred.labels))
    assert decoded(build_gsps(film, pred, info, region_labels=list(pred.labels))) == decoded(oracle)


def test_presentation_states_built_at_once_in_threads_each_say_their_own_film(generated_dicoms, demo):
    """States built at once in threads each say their own film."""
    roles = list(ROLES) * 3
    films = {role: read_film(generated_dicoms[role]) for role in ROLES}
    preds = {role: demo.predict_one(film) for role, film in films.items()}
    expected = {role: decoded(highdicom_gsps(films[role], preds[role], demo.info, set(preds[role].positives)))
                for role in ROLES}
    got = run_in_threads(lambda role: decoded(build_gsps(films[role], preds[role], demo.info)), [(role,) for role in roles])
    for role, result in zip(roles, got):
        assert result == expected[role], role
