"""The findings as a Grayscale Softcopy Presentation State: toggleable outlines over the film.

A GSPS (PS3.3 A.33.1) tells a viewer how to show an image it already has: here, the source
film with its own window, plus one graphic layer per finding of the model that the viewer can
switch on and off (PS3.3 C.10.7 Graphic Layer). A layer holds the finding's region outlines and
boxes (closed POLYLINEs in PIXEL units, PS3.3 C.10.5) and a text label with its probability;
the findings are in the layer order of their probability (most probable drawn on top). A demo
model's presentation state adds a layer with a "not for diagnosis" text, and its Content
Description says so too; a film the out-of-distribution guard flags gets a warning there.

The window is the source's: highdicom copies the Modality LUT and the VOI LUT (Window
Center/Width or VOI LUT Sequence) of the referenced image, and a MONOCHROME1 film keeps its
look through an INVERSE Presentation LUT Shape. A source without any window gets none (the viewer's full-range default).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import highdicom as hd
import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from .. import __version__
from ..classes import resolve
from .source import UNPAIRED_BODY_PARTS, put_value, source_text
from ..errors import DicomResultError
from ..render import class_color
from ..types import Film, ModelInfo, Prediction
from .coords import box_points, outline_points
from .output import (
    MANUFACTURER,
    NOT_FOR_DIAGNOSIS,
    SERIES_NUMBER,
    check_folder,
    description,
    highdicom_errors,
    patient_name_aside,
    patient_name_back,
    quiet_values,
    write,
)
from .source import DEIDENTIFICATION_METHOD, FilmSource, SourceImage
from .stamp import Encoded, floats, freeze, put_sequence, spliced

logger = logging.getLogger(__name__)

WHAT = "Presentation State"
#: Content Label (CS, 16 characters, PS3.3 C.10.9): what a viewer lists the state by.
CONTENT_LABEL = "CXRVIEWER_AI"
NOTICE_LAYER = "CXRVIEWER_NOTICE"
_GRAY = (160, 160, 160)  # layers of findings below their threshold
_CS_MAX = 16


def export_dicom_gsps(
    path: str | Path,
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    *,
    region_labels: Sequence[str] | None = None,
    anonymize: bool = False,
    source: FilmSource | None = None,
) -> Path:
    """Write the Presentation State of ``prediction`` for the DICOM film ``film`` to ``path``.

    ``region_labels``: the findings whose regions are drawn (default: the positives); every
    finding gets its layer and label either way. ``anonymize``: no patient identity, UIDs kept.
    ``source``: the film's source, shared with its other results (default: read for this one).
    """
    check_folder(path)
    ds = build_gsps(film, prediction, info, region_labels=region_labels, anonymize=anonymize, source=source)
    return write(path, ds, WHAT)


def build_gsps(
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    *,
    region_labels: Sequence[str] | None = None,
    anonymize: bool = False,
    source: FilmSource | None = None,
) -> hd.pr.GrayscaleSoftcopyPresentationState:
    """The Presentation State dataset that :func:`export_dicom_gsps` writes."""
    shared = FilmSource(film, prediction) if source is None else source.check(film, prediction)
    src = shared.image(WHAT)
    # the one class-list rule (cxrviewer.classes): labels or display names, unknown ones refused
    labels = prediction.positives if region_labels is None else resolve(region_labels, prediction.labels)
    samples = src.header.get("SamplesPerPixel", 1)
    if samples != 1:
        raise DicomResultError(
            f"{film.name} is a colour image; a grayscale presentation state applies to grayscale "
            "images only. Export a DICOM Structured Report or Secondary Capture instead."
        )
    with quiet_values(), highdicom_errors(film, WHAT):
        return _build(shared, film, prediction, info, set(labels), anonymize)


def label_box(text: str, anchor: tuple[float, float] | None, listed: int, line: float, w: int, h: int
              ) -> tuple[float, float, float, float]:
    """Where a finding's label goes (left, top, right, bottom in image pixels): above its largest
    region's box (``anchor``, its top-left corner; inside the image when the region touches the
    top), or, for a finding without a region, the ``listed``-th line down the left edge."""
    if anchor is None:
        top = min(listed * line, h - line)
        return (0.0, top, min(w, 0.6 * line * len(text)), top + line)
    x, y = anchor
    top = y - line if y >= line else y
    return (x, top, min(w, x + 0.6 * line * len(text)), min(h, top + line))


def layer_names(labels: Sequence[str]) -> dict[str, str]:
    """A Graphic Layer name (CS: A-Z, 0-9, space, underscore; 16 characters) for each label, unique.

    As a code, it starts with a letter and does not end with an underscore (highdicom refuses
    the layer otherwise): a label that starts or ends with another character ("Effusion-é",
    "3D opacity") is named without it, or after "F_".
    """
    out: dict[str, str] = {}
    used = {NOTICE_LAYER}
    for label in labels:
        base = "".join(ch if ch.isascii() and ch.isalnum() else "_" for ch in label.upper()).strip("_")
        if base and not base[0].isalpha():
            base = f"F_{base}"
        base = base[:_CS_MAX].rstrip("_") or "FINDING"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base[: _CS_MAX - len(str(n)) - 1]}_{n}"
        used.add(name)
        out[label] = name
    return out


def _series_laterality(gsps: Dataset, src: SourceImage) -> None:
    """Body Part Examined and Laterality of the General Series module, as the SC export writes them.

    Laterality is Type 2C: required for a paired body part (PS3.3 C.7.3.1). It is copied from
    the source; without one it is written empty (unknown) unless the body part is unpaired.
    """
    body_part = source_text(src.header, "BodyPartExamined")
    laterality = source_text(src.header, "Laterality")
    if body_part:
        put_value(gsps, "BodyPartExamined", body_part[:16])
    if laterality:
        put_value(gsps, "Laterality", laterality[:16])
    elif body_part.upper() not in UNPAIRED_BODY_PARTS:
        gsps.Laterality = ""


def _build(
    shared: FilmSource,
    film: Film,
    prediction: Prediction,
    info: ModelInfo,
    region_labels: set[str],
    anonymize: bool,
) -> hd.pr.GrayscaleSoftcopyPresentationState:
    """The state around the model's layers and annotations (:func:`_parts_of`: highdicom's own
    objects, built once per model and frozen, :mod:`cxrviewer.dicom.stamp`), stamped with what
    this film changes: each layer's order, description and colour, the outlines, the labels'
    text and place, the referenced image."""
    src = shared.image(WHAT)
    ref = shared.reference(WHAT, anonymize=anonymize)
    patient_name = patient_name_aside(ref)
    parts = _model_parts(info, prediction)
    w, h = float(src.columns), float(src.rows)
    # the film, as highdicom's GraphicAnnotation references it: one item, shared by every annotation
    (seen,) = hd.ReferencedImageSequence(referenced_images=[ref])
    seen = freeze(seen)
    ranked = prediction.ranked()  # most probable first
    line = max(12.0, h / 40.0)  # text box height in image pixels: ~40 lines on the film
    layers, annotations = [], []
    listed = 0  # findings without a region are listed down the left edge
    for rank, (label, probability, threshold) in enumerate(ranked):
        part = parts.layers[label]
        layers.append(spliced(
            part.positive if probability >= threshold else part.negative,
            GraphicLayerOrder=str(len(ranked) - rank + 1),  # higher is drawn later, on top (PS3.3 C.10.7.1.1)
            GraphicLayerDescription=f"{label}: probability {probability:.2f} (threshold {threshold:.2f})"[:64],
        ))
        graphics: list[Encoded | Dataset] = []
        anchor = None
        if label in region_labels:
            for region in shared.regions(label):
                for points in (outline_points(region), box_points(region)):
                    if points is not None:
                        graphics.append(_graphic(parts.graphic, np.clip(points, 0.0, (w, h)), w, h))
                if anchor is None:  # the largest region carries the label
                    anchor = (float(region.box[0]), float(region.box[1]))
        text = f"{label} {probability:.2f}"
        box = label_box(text, anchor, listed, line, w, h)
        listed += anchor is None
        texts = [_text(part.text, box, w, h, UnformattedTextValue=text)]
        if graphics:
            annotations.append(_annotation(part.annotation_with_graphics, seen, texts, GraphicObjectSequence=graphics))
        else:
            annotations.append(_annotation(part.annotation, seen, texts))
    notices = [n for n, shown in enumerate((info.demo, prediction.ood_flag)) if shown]
    if notices:
        layers.append(parts.notice_layer)
        texts = []
        for i, n in enumerate(reversed(notices)):
            bottom = h - i * line
            width = 0.6 * line * parts.notice_lengths[n]
            texts.append(_text(parts.notices[n], (0.0, max(0.0, bottom - line), min(w, width), bottom), w, h))
        annotations.append(_annotation(parts.notice_annotation, seen, texts))

    gsps = hd.pr.GrayscaleSoftcopyPresentationState(
        referenced_images=[ref],
        series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=MANUFACTURER,
        software_versions=f"cxrviewer {__version__}",
        device_serial_number=None,
        content_label=CONTENT_LABEL,
        content_description=description("GSPS", info),
        series_description=description("GSPS", info),
        presentation_lut_transformation=hd.PresentationLUTTransformation(
            # A GSPS ignores the image's photometric interpretation: P-values go to the display
            # as they are, so a MONOCHROME1 film needs INVERSE to look as it does in the app
            # (PS3.3 C.11.6.1; PS3.4 N.2.4). ``inverted`` is what the reader did for display.
            presentation_lut_shape="INVERSE" if film.metadata.get("inverted") else "IDENTITY"
        ),
    )
    # The layers and annotations go in after the constructor, which takes highdicom's own
    # classes only: what it would check of them (unique layer names, every annotation's layer
    # among them, every reference the state's image) holds by construction, and highdicom
    # checked it once for the model's templates (_parts_of). The constructor adds nothing else
    # for them (highdicom 0.28, ``pr/content.py`` ``_add_graphic_group_annotation_layer_attributes``).
    put_sequence(gsps, "GraphicLayerSequence", layers)
    put_sequence(gsps, "GraphicAnnotationSequence", annotations)
    _series_laterality(gsps, src)
    patient_name_back(gsps, patient_name)
    if anonymize:
        gsps.PatientIdentityRemoved = "YES"
        gsps.DeidentificationMethod = DEIDENTIFICATION_METHOD
    logger.debug("GSPS for %s: %d layers", film.source, len(layers))
    return gsps


def _annotation(template: Dataset, seen: Dataset, texts: list, **values) -> Encoded | Dataset:
    """``template`` (highdicom's GraphicAnnotation) on the film ``seen`` (its reference item),
    with ``texts`` and ``values`` (its graphic objects, if any)."""
    return spliced(template, ReferencedImageSequence=[seen], TextObjectSequence=texts, **values)


def _graphic(template: Dataset, points: np.ndarray, w: float, h: float) -> Encoded | Dataset:
    """A closed POLYLINE in PIXEL units: ``template`` (highdicom's GraphicObject) with ``points``.

    What highdicom's GraphicObject and GraphicAnnotation check of such points, kept here:
    (column, row) pairs, two or more, none outside the image (PS3.3 C.10.5.1.2).
    """
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] < 2:
        raise ValueError("a polyline must be two or more (column, row) pairs")
    if points.min() < 0.0 or points[:, 0].max() > w or points[:, 1].max() > h:
        raise ValueError("a polyline must lie in the image")
    return spliced(template, NumberOfGraphicPoints=int(points.shape[0]), GraphicData=floats("GraphicData", points.ravel()))


def _text(template: Dataset, box: tuple[float, float, float, float], w: float, h: float, **values) -> Encoded | Dataset:
    """``template`` (highdicom's TextObject) in the bounding box ``box`` (left, top, right,
    bottom in PIXEL units), with ``values`` (its text) if given.

    What highdicom's TextObject and GraphicAnnotation check of the box, kept here: inside the
    image, its bottom right corner below and right of its top left one.
    """
    if min(box) < 0.0 or box[0] >= box[2] or box[1] >= box[3] or box[2] > w or box[3] > h:
        raise ValueError("a text's bounding box must lie in the image, its corners in order")
    return spliced(template, BoundingBoxTopLeftHandCorner=floats("BoundingBoxTopLeftHandCorner", box[:2]),
                   BoundingBoxBottomRightHandCorner=floats("BoundingBoxBottomRightHandCorner", box[2:]), **values)


@dataclass(frozen=True)
class _LayerParts:
    """One label's objects, as highdicom built them for the model (frozen)."""

    positive: Dataset  # its GraphicLayer, in the label's colour (order, description: each film's)
    negative: Dataset  # the same in grey, for a film where it is below threshold
    text: Dataset  # its TextObject (text and box: each film's)
    annotation: Dataset  # its GraphicAnnotation of a text only (references, objects: each film's)
    annotation_with_graphics: Dataset  # the same with graphic objects


@dataclass(frozen=True)
class _ModelParts:
    """What every Presentation State of one model shares, built by highdicom once per process
    and frozen (:mod:`cxrviewer.dicom.stamp`): each label's layer (its name, its colour), text
    object and annotation; the outline's graphic object; the notice layer, its annotation and
    its texts. A state stamps them with what its film changes."""

    layers: Mapping[str, _LayerParts]
    graphic: Dataset  # a POLYLINE GraphicObject in PIXEL units (points: each film's)
    notice_layer: Dataset
    notice_annotation: Dataset
    notices: tuple[Dataset, Dataset]  # the demo model's and the unusual film's TextObjects
    notice_lengths: tuple[int, int]  # their texts' lengths in characters (the box's width)


def _model_parts(info: ModelInfo, prediction: Prediction) -> _ModelParts:
    colors = tuple(class_color(prediction, label) for label in prediction.labels)
    return _parts_of(tuple(prediction.labels), colors, str(info.model_version))


#: a stand-in for the film in the model's templates: every use replaces what points at it
_STAND_IN = ("1.2.840.10008.5.1.4.1.1.1.1", "2.25.1", "2.25.2", "2.25.3")  # DX, valid UIDs


def _layer(name: str, label: str, rgb: tuple[int, int, int]) -> hd.pr.GraphicLayer:
    """``label``'s layer; its description is the one a film writes, the numbers aside (they
    change only digits), so highdicom's check of the label in it holds for every film."""
    return hd.pr.GraphicLayer(
        layer_name=name, order=1, description=f"{label}: probability 0.00 (threshold 0.00)"[:64],
        display_color=hd.color.CIELabColor.from_rgb(*rgb),
    )


def _stand_in() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID = _STAND_IN
    ds.Modality, ds.SamplesPerPixel, ds.Rows, ds.Columns = "DX", 1, 1, 1
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber",
                    "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName"):
        setattr(ds, keyword, "")
    return ds


@functools.lru_cache(maxsize=16)
def _parts_of(labels: tuple[str, ...], colors: tuple[tuple[int, int, int], ...], model_version: str) -> _ModelParts:
    with quiet_values():
        stand_in = _stand_in()
        pixel, left = hd.pr.AnnotationUnitsValues.PIXEL, hd.pr.TextJustificationValues.LEFT
        graphic = hd.pr.GraphicObject(graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
                                      graphic_data=np.array([[0.0, 0.0], [1.0, 1.0]]), units=pixel)
        names = layer_names(labels)
        layers, annotations, parts = [], [], {}
        for label, color in zip(labels, colors):
            positive = _layer(names[label], label, color)
            text = hd.pr.TextObject(text_value=f"{label} 0.00", units=pixel, bounding_box=(0.0, 0.0, 1.0, 1.0),
                                    text_justification=left)
            with_graphics = hd.pr.GraphicAnnotation(referenced_images=[stand_in], graphic_layer=positive,
                                                    graphic_objects=[graphic], text_objects=[text])
            layers.append(positive)
            annotations.append(with_graphics)
            parts[label] = _LayerParts(
                positive=freeze(positive),
                negative=freeze(_layer(names[label], label, _GRAY)),
                text=freeze(text),
                annotation=freeze(hd.pr.GraphicAnnotation(referenced_images=[stand_in], graphic_layer=positive,
                                                          text_objects=[text])),
                annotation_with_graphics=freeze(with_graphics),
            )
        notice_layer = hd.pr.GraphicLayer(
            layer_name=NOTICE_LAYER,
            order=len(labels) + 2,  # above every finding
            description="cxrviewer notices (demo model, unusual film)",
            display_color=hd.color.CIELabColor.from_rgb(255, 200, 0),
        )
        notice_texts = (f"{NOT_FOR_DIAGNOSIS}: demo model {model_version}",
                        "Film unlike the training films: findings unreliable")
        notices = tuple(
            hd.pr.TextObject(text_value=notice[:1024], units=pixel, bounding_box=(0.0, 0.0, 1.0, 1.0),
                             text_justification=left)
            for notice in notice_texts
        )
        notice_annotation = hd.pr.GraphicAnnotation(referenced_images=[stand_in], graphic_layer=notice_layer,
                                                    text_objects=list(notices))
        # highdicom's checks of the layers and annotations together, once for the model
        hd.pr.GrayscaleSoftcopyPresentationState(
            referenced_images=[stand_in], series_instance_uid=_STAND_IN[2], series_number=SERIES_NUMBER,
            sop_instance_uid=generate_uid(), instance_number=1, manufacturer=MANUFACTURER,
            manufacturer_model_name=MANUFACTURER, software_versions=f"cxrviewer {__version__}",
            device_serial_number=None, content_label=CONTENT_LABEL,
            graphic_annotations=[*annotations, notice_annotation], graphic_layers=[*layers, notice_layer],
        )
        return _ModelParts(
            layers=MappingProxyType(parts),
            graphic=freeze(graphic),
            notice_layer=freeze(notice_layer),
            notice_annotation=freeze(notice_annotation),
            notices=(freeze(notices[0]), freeze(notices[1])),
            notice_lengths=(len(notice_texts[0]), len(notice_texts[1])),
        )
