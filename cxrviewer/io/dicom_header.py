"""DICOM header values → the plain values the rest of the reader takes, failures contained.

pydicom converts values lazily and raises many exception types on a damaged header. Here every
read is guarded: a required attribute that cannot be read becomes an
:class:`~cxrviewer.errors.UnreadableImageError` naming the keyword (:func:`guard`,
:func:`get_int`); an optional one is logged and treated as absent (:func:`get_str`,
:func:`grayscale_params`, :func:`pixel_spacing`), so a malformed window or LUT costs the film its
window or LUT, not its pixels. Logs and messages name keywords, never values (a value may be a
patient's name).
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CxrError, UnreadableImageError
from ..types import Calibration, Voi
from .dicom_display import VOI_FUNCTIONS, GrayscaleParams, Lut, valid_window

logger = logging.getLogger(__name__)


class _BadAttribute(Exception):
    """An attribute whose value pydicom could not convert; carries only the keyword."""

    def __init__(self, keyword: str) -> None:
        super().__init__(keyword)
        self.keyword = keyword


# ------------------------------------------------------------------------------- LUTs
def read_lut(item: Any, little_endian: bool, signed_input: bool) -> Lut | None:
    """A :class:`Lut` from a Modality/VOI LUT Sequence item, or ``None`` if it is unusable.

    Handles LUT Data as US (a list of values) or OW (bytes, in the data set's byte order),
    8-bit entries packed two to a word, and tables shorter than the descriptor says.
    """
    desc = item.get("LUTDescriptor")
    if desc is None or "LUTData" not in item:
        return None
    values = [int(v) for v in desc] if _is_sequence(desc) else [int(desc)]
    if len(values) != 3:
        return None
    entries, first_map, bits = values
    if entries < 0:  # the descriptor was read as SS
        entries += 65536
    entries = entries or 65536  # PS3.3 C.11.1.1: 0 means 2**16 entries
    if signed_input and first_map >= 32768:  # descriptor read as US for signed pixels
        first_map -= 65536
    value = item["LUTData"].value
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if 0 < bits <= 8 and len(raw) in (entries, entries + 1) and entries > 1:
            data = np.frombuffer(raw[:entries], dtype=np.uint8).astype(np.int64)
        else:
            words = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<u2" if little_endian else ">u2")
            data = words.astype(np.int64)
    else:
        seq = value if _is_sequence(value) else [value]
        data = np.asarray([int(v) for v in seq], dtype=np.int64)
    if data.size == 0:
        return None
    if data.size > entries:
        data = data[:entries]
    elif data.size < entries:
        logger.warning("a LUT declares %d entries but holds %d; using those", entries, data.size)
    data = np.clip(data, 0, 65535)
    return Lut(data=data, first_map=first_map, bits=bits)


# ---------------------------------------------------------------- attribute extraction
def grayscale_params(ds: Any, photometric: str) -> GrayscaleParams:
    """The grayscale pipeline's inputs from a data set, with unusable values dropped (and logged):
    a malformed window or LUT costs the film its window or LUT, not its pixels."""
    little, signed = _lut_encoding(ds)

    rescale = None
    raw_slope, raw_intercept = _optional(ds, "RescaleSlope"), _optional(ds, "RescaleIntercept")
    if _present(raw_slope) or _present(raw_intercept):
        slope = _first_number(raw_slope) if _present(raw_slope) else 1.0
        intercept = _first_number(raw_intercept) if _present(raw_intercept) else 0.0
        # |v| < 1e30 also rejects inf, nan and unparsable values (None).
        if slope is None or intercept is None or not (abs(slope) < 1e30 and abs(intercept) < 1e30) or slope == 0.0:
            logger.warning("ignoring an unusable Rescale Slope/Intercept (they must be numbers, the slope non-zero)")
        elif (slope, intercept) != (1.0, 0.0):
            rescale = (slope, intercept)

    modality_lut = _first_lut(ds, "ModalityLUTSequence", little, signed)
    voi_lut = _first_lut(ds, "VOILUTSequence", little, signed)

    function = _first_str(_optional(ds, "VOILUTFunction")) or "LINEAR"
    if function not in VOI_FUNCTIONS:
        logger.warning("unknown VOI LUT Function %r; using LINEAR", function[:16])
        function = "LINEAR"
    window = None
    raw_center, raw_width = _optional(ds, "WindowCenter"), _optional(ds, "WindowWidth")
    if _present(raw_center) or _present(raw_width):
        center, width = _first_number(raw_center), _first_number(raw_width)
        if center is None or width is None:
            logger.warning("ignoring a Window Center/Width that is not a pair of numbers")
        elif valid_window(center, width, function):  # PS3.3 C.11.2.1.2
            window = (center, width)
        else:
            logger.warning("ignoring window center/width %s/%s: not a valid %s window", center, width, function)

    shape = _first_str(_optional(ds, "PresentationLUTShape")) or None
    return GrayscaleParams(
        photometric=photometric,
        rescale=rescale,
        modality_lut=modality_lut,
        voi_lut=voi_lut,
        window=window,
        voi_function=function,
        presentation_shape=shape,
    )


def _lut_encoding(ds: Any) -> tuple[bool, bool]:
    """(little endian, signed pixels): how LUT Data words and first-mapped values are read."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        little = bool(ts.is_little_endian) if ts else None
    except ValueError:  # not a transfer syntax UID
        little = None
    if little is None:
        little = getattr(ds, "original_encoding", (None, True))[1] is not False
    signed = _first_number(_optional(ds, "PixelRepresentation")) == 1
    return little, signed


def voi_presets(ds: Any, function: str) -> tuple[Voi, ...]:
    """Every VOI the file offers, in its order: each Window Center/Width pair with its
    explanation (PS3.3 C.11.2.1.2: the values are multi-valued and pair up), then each VOI LUT
    Sequence item with its LUT Explanation (C.11.2.1.1). Unusable pairs and tables are skipped
    (logged); an unreadable header part costs its presets, never the film."""
    out: list[Voi] = []
    centers = _numbers(_optional(ds, "WindowCenter"))
    widths = _numbers(_optional(ds, "WindowWidth"))
    names = _strings(_optional(ds, "WindowCenterWidthExplanation"))
    if len(centers) != len(widths):
        logger.warning("Window Center and Window Width have %d and %d values; pairing the first ones",
                       len(centers), len(widths))
    for i, (center, width) in enumerate(zip(centers, widths)):
        if center is None or width is None or not valid_window(center, width, function):
            logger.warning("ignoring window preset %d: not a valid %s window", i + 1, function)
            continue
        name = names[i] if i < len(names) and names[i] else f"window {i + 1}"
        out.append(Voi(name, center, width, function))
    try:
        little, signed = _lut_encoding(ds)
        items = list(ds.get("VOILUTSequence") or ())
    except Exception as exc:  # noqa: BLE001 - a malformed sequence costs its presets only
        logger.warning("ignoring an unreadable VOILUTSequence (%s)", type(exc).__name__)
        items = []
    for i, item in enumerate(items):
        try:
            lut = read_lut(item, little, signed)
            name = _strings(item.get("LUTExplanation"))
        except Exception as exc:  # noqa: BLE001
            logger.warning("ignoring VOI LUT %d (%s)", i + 1, type(exc).__name__)
            continue
        if lut is None:
            logger.warning("ignoring an incomplete VOI LUT %d", i + 1)
            continue
        out.append(Voi(name[0] if name and name[0] else f"VOI LUT {i + 1}", lut=lut))
    return tuple(out)


def _numbers(value: Any) -> list[float | None]:
    if not _present(value):
        return []
    items = list(value) if _is_sequence(value) else [value]
    return [_first_number(v) for v in items]


def _strings(value: Any) -> list[str]:
    """A (possibly multi-valued) short text as a list of stripped strings, at most 64 characters each."""
    if not _present(value):
        return []
    items = list(value) if _is_sequence(value) else [value]
    return [(v.decode("ascii", "replace") if isinstance(v, bytes) else str(v)).strip()[:64] for v in items]


def _optional(ds: Any, keyword: str) -> Any:
    """An optional attribute's value, or ``None`` (logged) when pydicom cannot convert it."""
    try:
        return ds.get(keyword)
    except Exception as exc:  # noqa: BLE001 - e.g. a DS that is not a number
        logger.warning("ignoring an unreadable %s (%s)", keyword, type(exc).__name__)
        return None


def _first_lut(ds: Any, keyword: str, little: bool, signed: bool) -> Lut | None:
    try:
        seq = ds.get(keyword)
        if not seq:
            return None
        lut = read_lut(seq[0], little, signed)
    except Exception as exc:  # noqa: BLE001 - a malformed LUT is ignored, not fatal
        logger.warning("ignoring an unreadable %s (%s)", keyword, type(exc).__name__)
        return None
    if lut is None:
        logger.warning("ignoring an incomplete %s", keyword)
    return lut


def _first_number(value: Any) -> float | None:
    """A DS/IS/US value (or the first of several) as a float; ``None`` when absent or not a number."""
    if value is None or value == "":
        return None
    if _is_sequence(value):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _present(value: Any) -> bool:
    return value is not None and value != "" and not (_is_sequence(value) and len(value) == 0)


def _first_str(value: Any) -> str:
    """A CS value (or the first of several), stripped and upper-cased; ``""`` when absent."""
    if _is_sequence(value):
        value = value[0] if len(value) else ""
    return "" if value is None else str(value).strip().upper()


def _is_sequence(value: Any) -> bool:
    """A multi-valued element (pydicom's MultiValue, a list), not a str/bytes value."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def patient_orientation(ds: Any) -> tuple[str, str] | None:
    """Patient Orientation (0020,0020): the directions of the rows and columns, e.g. ("L", "F")
    (PS3.3 C.7.6.1.1.1); ``None`` when absent or not two values of the letters A P R L H F."""
    values = _strings(_optional(ds, "PatientOrientation"))
    if len(values) != 2:
        return None
    row, col = (v.upper() for v in values)
    if not row or not col or not set(row + col) <= set("APRLHF"):
        return None
    return row, col


def calibration(ds: Any) -> Calibration | None:
    """How to measure on the film (PS3.3 10.7.1.3 and C.8.11.4): Pixel Spacing as it is; else
    Imager Pixel Spacing divided by the Estimated Radiographic Magnification Factor when the file
    gives one (> 0); else Imager Pixel Spacing labelled "at detector"; else ``None`` (pixels)."""

    def spacing(keyword: str) -> tuple[float, float] | None:
        values = _numbers(_optional(ds, keyword))
        if len(values) != 2 or any(v is None or not math.isfinite(v) or v <= 0 for v in values):
            return None
        return values[0], values[1]  # type: ignore[return-value]

    ps = spacing("PixelSpacing")
    if ps is not None:
        return Calibration(ps[0], ps[1], "pixel spacing")
    ips = spacing("ImagerPixelSpacing")
    if ips is None:
        return None
    factor = _first_number(_optional(ds, "EstimatedRadiographicMagnificationFactor"))
    if factor is not None and math.isfinite(factor) and factor > 0:
        return Calibration(ips[0] / factor, ips[1] / factor, "magnification corrected")
    return Calibration(ips[0], ips[1], "detector")


def pixel_spacing(ds: Any) -> tuple[float, float] | None:
    """(row, column) spacing in mm: Pixel Spacing, else Imager Pixel Spacing (PS3.3 10.7.1.3)."""

    def get() -> tuple[float, float] | None:
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            value = ds.get(keyword)
            if not _is_sequence(value) or len(value) != 2:
                continue
            values = list(value)
            if len(values) != 2:
                continue
            try:
                row, col = float(values[0]), float(values[1])
            except (TypeError, ValueError, OverflowError):
                continue
            if math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0:
                return (row, col)
        return None

    try:
        return get()
    except Exception:  # noqa: BLE001 - an unreadable spacing is simply unknown
        return None


def guard(path: Path, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` (which touches pydicom attributes); map any failure to a damaged-header error."""
    try:
        return fn()
    except CxrError:
        raise
    except _BadAttribute as exc:
        raise UnreadableImageError(
            f"{path.name}: the DICOM attribute {exc.keyword} could not be read; the file is damaged."
        ) from None
    except Exception as exc:  # noqa: BLE001 - pydicom converts values lazily and raises many types
        logger.debug("reading attributes of %s failed (%s)", path.name, type(exc).__name__)
        raise UnreadableImageError(
            f"{path.name}: the DICOM header could not be read; the file is damaged ({type(exc).__name__})."
        ) from None


def _get(ds: Any, keyword: str) -> Any:
    try:
        return ds.get(keyword)
    except Exception:  # noqa: BLE001
        raise _BadAttribute(keyword) from None


def get_int(path: Path, ds: Any, keyword: str) -> int | None:
    value = guard(path, lambda: _get(ds, keyword))
    number = _first_number(value)
    if number is None or not math.isfinite(number):
        return None
    return int(number)


def get_str(path: Path, ds: Any, keyword: str) -> str:
    """A short text attribute; an unreadable one is logged and treated as absent."""
    value = _optional(ds, keyword)
    if _is_sequence(value):  # several values where one is expected: the first
        value = value[0] if len(value) else None
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip().rstrip("\x00").strip()[:64]


def header_rows(path: Path, max_value: int = 200) -> list[tuple[int, str, str, str, str]]:
    """Every element of the DICOM file at ``path`` except the pixel data, for a read-only viewer:
    ``(depth, tag, keyword or name, VR, value)``, sequence items indented by ``depth``. Values
    (patient fields included: they are shown, never logged) are cut to ``max_value`` characters.
    Raises :class:`~cxrviewer.errors.UnreadableImageError` when the file cannot be parsed."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise UnreadableImageError(
            f"{path.name}: its DICOM header could not be read ({type(exc).__name__})."
        ) from None
    rows: list[tuple[int, str, str, str, str]] = []

    def walk(dataset: Any, depth: int) -> None:
        for elem in dataset:
            try:
                name = elem.keyword or elem.name
                if elem.VR == "SQ":
                    rows.append((depth, str(elem.tag), name, "SQ", f"{len(elem.value)} item(s)"))
                    for i, item in enumerate(elem.value):
                        rows.append((depth + 1, "", f"item {i + 1}", "", ""))
                        walk(item, depth + 2)
                    continue
                value = elem.repval if elem.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") else str(elem.value)
            except Exception as exc:  # noqa: BLE001 - one unreadable value costs its row's value only
                value = f"<unreadable: {type(exc).__name__}>"
            text = value if len(value) <= max_value else value[: max_value - 1] + "…"
            rows.append((depth, str(elem.tag), name, str(elem.VR), text))

    meta = getattr(ds, "file_meta", None)
    if meta:
        walk(meta, 0)
    walk(ds, 0)
    return rows


#: What the on-screen overlay shows from a header (IHE Basic Image Review: demographics and
#: technique). Patient fields among them are for the screen only: never logged, never exported.
OVERLAY_KEYWORDS = (
    "PatientName", "PatientID", "PatientSex", "PatientAge", "PatientBirthDate",
    "StudyDate", "StudyTime", "AccessionNumber", "InstitutionName",
    "Modality", "ViewPosition", "ImageLaterality", "Laterality", "BodyPartExamined",
    "KVP", "Exposure", "ExposureInuAs", "XRayTubeCurrent", "ExposureTime",
    "DistanceSourceToDetector", "DetectorType", "DetectorID",
    "EstimatedRadiographicMagnificationFactor",
)


def overlay_attributes(path: Path, keywords: Sequence[str] = OVERLAY_KEYWORDS) -> dict[str, str]:
    """The text of each of ``keywords`` the DICOM file at ``path`` holds, as :func:`get_str`
    reads it (a multi-valued element gives its first value, at most 64 characters); absent,
    empty or unreadable elements are left out. Only the header is read (no pixel data).
    Raises :class:`~cxrviewer.errors.UnreadableImageError` when the file cannot be parsed."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, specific_tags=list(keywords))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise UnreadableImageError(
            f"{path.name}: its DICOM header could not be read ({type(exc).__name__})."
        ) from None
    out: dict[str, str] = {}
    for keyword in keywords:
        text = get_str(path, ds, keyword)
        if text:
            out[keyword] = text
    return out


#: The attributes that place a film in its study (PS3.3 C.7.2.1 General Study Module, C.7.1.1
#: Patient Module, C.8.11.5 DX Positioning / C.8.1.1 CR Series: View Position).
STUDY_KEYWORDS = ("PatientID", "StudyInstanceUID", "StudyDate", "StudyDescription", "ViewPosition")


#: a secret of this process: a patient key cannot be looked up in a table of hashed IDs, and
#: means nothing outside the process that made it
_PATIENT_SALT = os.urandom(16)


def patient_key(patient_id: str) -> str:
    """A stand-in for a Patient ID that groups one patient's films without saying who: 16 hex
    digits of a keyed BLAKE2b hash of the ID, keyed by a random secret of this process, so equal
    within one run of the app and meaningless outside it (empty for an empty ID)."""
    if not patient_id:
        return ""
    return hashlib.blake2b(patient_id.encode("utf-8"), digest_size=8, key=_PATIENT_SALT).hexdigest()


def study_facts(path: Path, ds: Any) -> dict[str, str]:
    """The film's study, as metadata keys: ``patient_key`` (:func:`patient_key`, never the ID
    itself), ``study_uid``, ``study_date`` (DA, YYYYMMDD), ``study_description``; absent or empty
    attributes are left out."""
    out = {
        "patient_key": patient_key(get_str(path, ds, "PatientID")),
        "study_uid": get_str(path, ds, "StudyInstanceUID"),
        "study_date": get_str(path, ds, "StudyDate"),
        "study_description": get_str(path, ds, "StudyDescription"),
    }
    return {k: v for k, v in out.items() if v}


def read_study_facts(path: Path) -> dict[str, str]:
    """:func:`study_facts` and ``view_position`` of the DICOM file at ``path``, from its header
    alone (no pixel data is read). Raises :class:`~cxrviewer.errors.UnreadableImageError` when
    the file cannot be parsed."""
    import pydicom

    try:
        ds = pydicom.dcmread(path, force=True, stop_before_pixels=True, specific_tags=list(STUDY_KEYWORDS))
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        raise UnreadableImageError(
            f"{path.name}: its DICOM header could not be read ({type(exc).__name__})."
        ) from None
    out = study_facts(path, ds)
    view = get_str(path, ds, "ViewPosition")
    if view:
        out["view_position"] = view
    return out
