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

import logging
from collections.abc import Sequence
from pathlib import Path

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
    with quiet_values():
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
    """The state, every layer, annotation, graphic and text object built by highdicom for this
    film, and the state around them by its constructor.

    Only the calls that read the source's header are inside :func:`highdicom_errors` (a header
    highdicom cannot use becomes a :class:`~cxrviewer.errors.DicomResultError`); an error
    anywhere else is a bug and is raised as it is.
    """
    src = shared.image(WHAT)
    ref = shared.reference(WHAT, anonymize=anonymize)
    patient_name = patient_name_aside(ref)
    with highdicom_errors(film, WHAT):
        # the film as every annotation references it (its SOP class an image's, its UIDs valid)
        hd.ReferencedImageSequence(referenced_images=[ref])
    w, h = float(src.columns), float(src.rows)
    names = layer_names(prediction.labels)
    pixel, left = hd.pr.AnnotationUnitsValues.PIXEL, hd.pr.TextJustificationValues.LEFT
    ranked = prediction.ranked()  # most probable first
    line = max(12.0, h / 40.0)  # text box height in image pixels: ~40 lines on the film
    layers, annotations = [], []
    listed = 0  # findings without a region are listed down the left edge
    for rank, (label, probability, threshold) in enumerate(ranked):
        color = class_color(prediction, label) if probability >= threshold else _GRAY
        layer = hd.pr.GraphicLayer(
            layer_name=names[label],
            order=len(ranked) - rank + 1,  # higher is drawn later, on top (PS3.3 C.10.7.1.1)
            description=f"{label}: probability {probability:.2f} (threshold {threshold:.2f})"[:64],
            display_color=hd.color.CIELabColor.from_rgb(*color),
        )
        layers.append(layer)
        graphics = []
        anchor = None
        if label in region_labels:
            for region in shared.regions(label):
                for points in (outline_points(region), box_points(region)):
                    if points is not None:
                        # a closed POLYLINE in PIXEL units, inside the image (PS3.3 C.10.5.1.2)
                        graphics.append(hd.pr.GraphicObject(
                            graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
                            graphic_data=np.clip(points, 0.0, (w, h)), units=pixel,
                        ))
                if anchor is None:  # the largest region carries the label
                    anchor = (float(region.box[0]), float(region.box[1]))
        text = f"{label} {probability:.2f}"
        box = label_box(text, anchor, listed, line, w, h)
        listed += anchor is None
        annotations.append(hd.pr.GraphicAnnotation(
            referenced_images=[ref], graphic_layer=layer, graphic_objects=graphics or None,
            text_objects=[hd.pr.TextObject(text_value=text, units=pixel, bounding_box=box, text_justification=left)],
        ))
    notices = []
    if info.demo:
        notices.append(f"{NOT_FOR_DIAGNOSIS}: demo model {info.model_version}")
    if prediction.ood_flag:
        notices.append("Film unlike the training films: findings unreliable")
    if notices:
        notice_layer = hd.pr.GraphicLayer(
            layer_name=NOTICE_LAYER,
            order=len(ranked) + 2,  # above every finding
            description="cxrviewer notices (demo model, unusual film)",
            display_color=hd.color.CIELabColor.from_rgb(255, 200, 0),
        )
        layers.append(notice_layer)
        texts = []
        for i, notice in enumerate(reversed(notices)):  # the last notice at the bottom
            bottom = h - i * line
            texts.append(hd.pr.TextObject(
                text_value=notice[:1024], units=pixel, text_justification=left,
                bounding_box=(0.0, max(0.0, bottom - line), min(w, 0.6 * line * len(notice)), bottom),
            ))
        annotations.append(hd.pr.GraphicAnnotation(referenced_images=[ref], graphic_layer=notice_layer,
                                                   text_objects=texts))

    with highdicom_errors(film, WHAT):  # the patient, the study, the source's window and LUTs
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
            graphic_annotations=annotations,
            graphic_layers=layers,
            presentation_lut_transformation=hd.PresentationLUTTransformation(
                # A GSPS ignores the image's photometric interpretation: P-values go to the display
                # as they are, so a MONOCHROME1 film needs INVERSE to look as it does in the app
                # (PS3.3 C.11.6.1; PS3.4 N.2.4). ``inverted`` is what the reader did for display.
                presentation_lut_shape="INVERSE" if film.metadata.get("inverted") else "IDENTITY"
            ),
        )
    _series_laterality(gsps, src)
    patient_name_back(gsps, patient_name)
    if anonymize:
        gsps.PatientIdentityRemoved = "YES"
        gsps.DeidentificationMethod = DEIDENTIFICATION_METHOD
    logger.debug("GSPS for %s: %d layers", film.source, len(layers))
    return gsps
