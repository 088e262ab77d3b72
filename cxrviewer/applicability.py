"""Which films the model may read: a frontal chest radiograph, by its DICOM header.

A chest X-ray model trained on frontal films answers anything it is given: a lateral view, a
tibia or a test pattern gets findings and heatmaps as if it were a frontal chest film. Deployed
chest X-ray AI accepts frontal CR/DX chest films only and says "not applicable" to the rest;
:func:`check` is that gate, on the one scoring path (``read_film → check → Classifier``: the app,
``cxrviewer score``, the Ray engine and the DICOM node).

It reads the header facts :func:`cxrviewer.io.read_film` records in :attr:`Film.metadata`
(never who the patient is), against the model's rule (:class:`~cxrviewer.types.Applicability`,
``cxr.applicable`` in the model card; absent = the frontal chest default):

- Modality (0008,0060) CR, DX or DR (PS3.3 C.7.3.1.1.1). A Secondary Capture (PS3.3 A.8.1)
  passes when its Modality names one of them: the SC Equipment Module's Modality (C.8.6.1) is
  "the source equipment for the image" and overrides the series' (OT is an SC of unknown origin,
  such as a test pattern, or one of our own annotated pictures). Modality is Type 1; a file
  without one is read by its SOP class when that names the modality (CR Image Storage, the DX
  Image Storage classes, PS3.4 B.5), else it is not applicable.
- Presentation Intent Type (0008,0068) not FOR PROCESSING, nor a For Processing SOP class
  (PS3.3 C.8.11.1.1.1, PS3.4 B.5): such an image holds raw detector values, not a film as shown.
- Body Part Examined (0018,0015) CHEST (or THORAX, the same region), or absent (PS3.16 Annex L).
- View Position (0018,5101) PA or AP, or absent (C.8.11.5; LL/RL are laterals, LLD/RLD
  decubitus, RLO/LLO obliques).
- Patient Orientation (0020,0020), when present, consistent with the views accepted
  (C.7.6.1.1.1: the directions of the rows and the columns, the first letter the dominant one):
  a frontal film's rows and columns run along R/L and H/F; a lateral's run along A/P and H/F.
- Image Laterality (0020,0062), or the series' Laterality (0020,0060) (C.7.6.2, C.8.11.5): not
  checked by default. It names the side of a paired body part, not the projection, so it does
  not tell a frontal film from a lateral one; a card may narrow it (``"lateralities": ["B", "U"]``:
  R or L is then one side only).

PNG and JPEG films have no header: they are always applicable here, and the model's
out-of-distribution guard stays their gate. A film that fails gets the first reason, in plain
words: ``"lateral view (View Position LL): the model reads frontal chest films"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .types import ANY, Applicability, Film, ModelInfo

#: The row status of a film the model does not read (results CSV/Parquet, the app, the node).
NOT_APPLICABLE = "not_applicable"
#: The ``error`` cell of a film scored anyway (``--score-all``, "Score anyway") starts with this.
OUTSIDE_USE = "scored outside the model's use: "

#: Secondary Capture Image Storage and the multi-frame SC classes (PS3.4 B.5)
SECONDARY_CAPTURE_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.7.1",
    "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3",
    "1.2.840.10008.5.1.4.1.1.7.4",
})

#: View Position defined terms (PS3.3 C.8.11.5.1.1, DX Positioning) by the plane of the film
FRONTAL_VIEWS = frozenset({"PA", "AP"})
LATERAL_VIEWS = frozenset({"LL", "RL", "LATERAL", "LAT"})
#: The modality an image SOP class implies, for a file that lacks Modality (PS3.4 B.5)
_MODALITY_OF_CLASS = {
    "1.2.840.10008.5.1.4.1.1.1": "CR",  # Computed Radiography Image Storage
    "1.2.840.10008.5.1.4.1.1.1.1": "DX",  # Digital X-Ray Image Storage - For Presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1": "DX",  # Digital X-Ray Image Storage - For Processing
}
#: The For Processing image classes (PS3.4 B.5): raw detector values, not processed for display
FOR_PROCESSING_CLASSES = frozenset({
    "1.2.840.10008.5.1.4.1.1.1.1.1",  # Digital X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.1.2.1",  # Digital Mammography X-Ray Image Storage - For Processing
    "1.2.840.10008.5.1.4.1.1.1.3.1",  # Digital Intra-Oral X-Ray Image Storage - For Processing
})
#: Body Part Examined values that name the same region as one the rule may list: THORAX is a
#: CID 4031 term sites write for the chest (PS3.16; cxrviewer.dicom.source lists it unpaired too)
_SAME_REGION = {"THORAX": "CHEST"}
_VIEW_WORDS = {"LLD": "decubitus", "RLD": "decubitus", "RLO": "oblique", "LLO": "oblique"}
_SIDES = {"R": "right", "L": "left"}


@dataclass(frozen=True)
class Verdict:
    """Whether the model reads a film; ``reason`` says why not (``""`` when it does)."""

    applicable: bool
    reason: str = ""


APPLICABLE = Verdict(True)


def check(film: Film, info: ModelInfo | None = None) -> Verdict:
    """Whether the model (``info``'s rule; ``None``: the default frontal chest rule) reads
    ``film``, from the DICOM header facts its metadata records. Non-DICOM films always pass."""
    rule = info.applicable if info is not None else Applicability()
    return check_header(film.metadata, rule)


def check_header(meta: Mapping[str, Any], rule: Applicability = Applicability()) -> Verdict:
    """:func:`check` on a film's metadata (:attr:`Film.metadata`)."""
    if meta.get("format") != "dicom":
        return APPLICABLE
    reads = _reads(rule)
    modality = _value(meta.get("modality")) or _MODALITY_OF_CLASS.get(str(meta.get("sop_class_uid") or ""), "")
    if not rule.accepts("modalities", modality):
        what = f"modality {modality}" if modality else "no Modality in the header"
        if modality and str(meta.get("sop_class_uid") or "") in SECONDARY_CAPTURE_CLASSES:
            what += " (a secondary capture of unknown origin)" if modality == "OT" else " (a secondary capture)"
        kinds = "" if rule.modalities == ANY else f" ({', '.join(rule.modalities)}, or a secondary capture of one)"
        return Verdict(False, f"{what}: the model reads {_anatomy(rule)}radiographs{kinds}")
    # PS3.3 C.8.11.1.1.1: a FOR PROCESSING image is "intended for further processing before
    # presentation" (raw detector values); the models read films as they are shown
    if (_value(meta.get("presentation_intent")) == "FOR PROCESSING"
            or str(meta.get("sop_class_uid") or "") in FOR_PROCESSING_CLASSES):
        return Verdict(False, "a For Processing image (Presentation Intent Type FOR PROCESSING: raw detector values, "
                              "not processed for display): the model reads For Presentation films")
    body = _value(meta.get("body_part"))
    if body and not (rule.accepts("body_parts", body) or rule.accepts("body_parts", _SAME_REGION.get(body, body))):
        return Verdict(False, f"body part {body}: the model reads {_anatomy(rule)}films")
    view = _value(meta.get("view_position"))
    if view and not rule.accepts("view_positions", view):
        return Verdict(False, f"{_view_words(view)} (View Position {view}): {reads}")
    orientation = meta.get("patient_orientation")
    if orientation and len(orientation) == 2:
        plane = _plane(str(orientation[0]), str(orientation[1]))
        if plane is not None and plane not in _planes(rule):
            shown = "\\".join(str(v) for v in orientation)
            return Verdict(False, f"{plane} view (Patient Orientation {shown}): {reads}")
    side = _value(meta.get("laterality"))
    if side and not rule.accepts("lateralities", side):
        words = f"one side only, the {_SIDES[side]}" if side in _SIDES else f"laterality {side}"
        return Verdict(False, f"{words} (Image Laterality {side}): {reads}")
    return APPLICABLE


def _value(value: Any) -> str:
    """A header code string as the rule compares it: stripped, upper case, printable, short."""
    if value is None:
        return ""
    text = "".join(c for c in str(value).strip().upper() if c.isprintable())
    return text[:16]  # a CS value holds at most 16 characters (PS3.5 6.2)


def _plane(row: str, column: str) -> str | None:
    """The plane a film's Patient Orientation shows (PS3.3 C.7.6.1.1.1): ``"frontal"`` when its
    rows and columns run along R/L and H/F (either way round), ``"lateral"`` along A/P and H/F,
    else ``None`` (an axial or unusual film: not judged here)."""
    axes = {_axis(row[:1]), _axis(column[:1])}
    if axes == {"RL", "HF"}:
        return "frontal"
    if axes == {"AP", "HF"}:
        return "lateral"
    return None


def _axis(letter: str) -> str:
    return {"R": "RL", "L": "RL", "A": "AP", "P": "AP", "H": "HF", "F": "HF"}.get(letter.upper(), "")


def _planes(rule: Applicability) -> set[str]:
    """The planes the rule's views show: any plane when views are not checked, or when it names
    a view of neither plane (an oblique or decubitus film: its orientation is not judged)."""
    if rule.view_positions == ANY:
        return {"frontal", "lateral"}
    views = set(rule.view_positions)
    planes = {"frontal"} if views & FRONTAL_VIEWS else set()
    if views & LATERAL_VIEWS:
        planes.add("lateral")
    if views - FRONTAL_VIEWS - LATERAL_VIEWS:
        planes |= {"frontal", "lateral"}
    return planes


def _view_words(view: str) -> str:
    if view in LATERAL_VIEWS:
        return "lateral view"
    if view in FRONTAL_VIEWS:
        return "frontal view"
    return f"{_VIEW_WORDS[view]} view" if view in _VIEW_WORDS else "other view"


def _anatomy(rule: Applicability) -> str:
    """"chest " (the rule's body parts, with a space), or "" when they are not checked."""
    return "" if rule.body_parts == ANY else " and ".join(b.lower() for b in rule.body_parts) + " "


def _reads(rule: Applicability) -> str:
    """"the model reads frontal chest films" (or what the rule's views and body parts say)."""
    planes = _planes(rule)
    if rule.view_positions == ANY:
        views = ""
    elif set(rule.view_positions) <= FRONTAL_VIEWS:
        views = "frontal "
    elif set(rule.view_positions) <= LATERAL_VIEWS:
        views = "lateral "
    elif planes == {"frontal", "lateral"} and set(rule.view_positions) <= FRONTAL_VIEWS | LATERAL_VIEWS:
        views = "frontal and lateral "
    else:
        views = f"{'/'.join(rule.view_positions)} "
    return f"the model reads {views}{_anatomy(rule)}films"
