"""DICOM films: parse with pydicom, decode the first frame, build the :class:`Film`.

This module reads the file and its header; the display pipeline itself (Modality LUT → VOI →
MONOCHROME1 inversion → [0, 1], PS3.4 N.2.1) is plain numpy in :mod:`cxrviewer.io.dicom_display`,
as pydicom keeps ``pixels/processing.py`` apart from its decoders. See docs/dicom.md.

Parsing (:func:`_parse`) and decoding (:func:`_decode_first_frame`) wrap pydicom and the codec
plugins, which raise many exception types on damaged input; both turn every failure into a
:class:`~cxrviewer.errors.CxrError`. :func:`grayscale_params` and :func:`read_lut` turn header
attributes into the plain values the pipeline takes, dropping (and logging) unusable ones.

Nothing identifying leaves this module: messages and logs name the file and DICOM keywords,
never attribute values other than the technical ones listed in the film metadata.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CxrError, MissingCodecError, UnreadableImageError, UnsupportedDicomError
from ..types import Film
from .dicom_display import (
    VOI_FUNCTIONS,
    DisplayFacts,
    GrayscaleParams,
    Lut,
    display_pixels,
    rgb_to_luma,
    valid_window,
)
from .limits import check_pixels
from .sniff import j2k_info, jpeg_info

logger = logging.getLogger(__name__)

# The pip package that provides each family of compressed transfer syntaxes (PS3.5 A.4).
_CODEC_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg-libjpeg",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": "pylibjpeg-libjpeg",  # JPEG Extended
    "1.2.840.10008.1.2.4.57": "pylibjpeg-libjpeg",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70": "pylibjpeg-libjpeg",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": "pylibjpeg-libjpeg",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "pylibjpeg-libjpeg",  # JPEG-LS Near-lossless
    "1.2.840.10008.1.2.4.90": "pylibjpeg-openjpeg",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": "pylibjpeg-openjpeg",  # JPEG 2000
    "1.2.840.10008.1.2.4.201": "pylibjpeg-openjpeg",  # HTJ2K Lossless
    "1.2.840.10008.1.2.4.202": "pylibjpeg-openjpeg",  # HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203": "pylibjpeg-openjpeg",  # HTJ2K
    "1.2.840.10008.1.2.5": "pylibjpeg-rle",  # RLE Lossless
}

# Attributes that any real DICOM object has; a "DICOM" read with force=True that has none of them
# is some other file that pydicom parsed as garbage.
_DICOM_EVIDENCE = ("SOPClassUID", "SOPInstanceUID", "Modality", "StudyInstanceUID", "SeriesInstanceUID", "Rows")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# The Pixel Data tag (7FE0,0010) as it appears in little- and big-endian files.
_PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


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


# --------------------------------------------------------------------- reading the file
def read_dicom(path: Path) -> Film:
    """Read the DICOM file at ``path`` (with or without preamble) as a :class:`Film`."""
    ds = _parse(path)
    has_pixels = _guard(path, lambda: any(k in ds for k in _PIXEL_KEYWORDS))
    if not has_pixels:
        _explain_missing_pixels(path, ds)

    ts = _transfer_syntax(path, ds)
    decoder = _decoder_for(path, ts)
    rows, cols = _get_int(path, ds, "Rows"), _get_int(path, ds, "Columns")
    if not rows or not cols or rows <= 0 or cols <= 0:
        raise UnreadableImageError(
            f"{path.name}: the DICOM header declares no image size (Rows/Columns); the file is damaged."
        )
    # The decompression-bomb guard, before anything is decoded; only the first frame is decoded.
    check_pixels(cols, rows, path, "DICOM frame")
    frames = max(1, _get_int(path, ds, "NumberOfFrames") or 1)
    if _is_encapsulated(ts):
        _check_codestream(path, ds)

    photometric = _get_str(path, ds, "PhotometricInterpretation").upper()
    samples = _get_int(path, ds, "SamplesPerPixel") or 1
    if samples not in (1, 3):
        raise UnsupportedDicomError(
            f"{path.name} has {samples} samples per pixel; cxrviewer reads 1 (gray) or 3 (colour)."
        )
    decode_options: dict[str, Any] = {}
    if not photometric:
        # Photometric Interpretation is type 1 (PS3.3 C.7.6.3), and pydicom's decoders refuse to
        # run without it. One sample per pixel can only be grayscale; MONOCHROME2 (no inversion)
        # is the only reading that does not invent one. Three samples are read as RGB.
        photometric = "MONOCHROME2" if samples == 1 else "RGB"
        decode_options["photometric_interpretation"] = photometric
        logger.warning("%s has no Photometric Interpretation; assuming %s", path.name, photometric)

    arr = _decode_first_frame(path, ds, ts, decoder, decode_options)
    if frames > 1:
        logger.warning("%s has %d frames; showing the first", path.name, frames)

    bits_stored = _get_int(path, ds, "BitsStored") or int(arr.dtype.itemsize * 8)
    is_color = arr.ndim == 3 or photometric == "PALETTE COLOR"
    if is_color:
        pixels = _color_to_gray(path, ds, arr, photometric, bits_stored)
        facts = DisplayFacts(voi="none", window=None, inverted=False)
    else:
        params = _guard(path, lambda: grayscale_params(ds, photometric))
        pixels, facts = display_pixels(arr, params)

    metadata: dict[str, Any] = {
        "format": "dicom",
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "bits": int(bits_stored),
        "bits_stored": int(bits_stored),
        "modality": _get_str(path, ds, "Modality") or None,
        "photometric": photometric,
        "transfer_syntax": str(ts),
        "window": facts.window,
        "voi": facts.voi,
        "inverted": facts.inverted,
        "frames": int(frames),
    }
    view = _get_str(path, ds, "ViewPosition")
    if view:
        metadata["view_position"] = view
    return Film(pixels, source=path, pixel_spacing=_pixel_spacing(path, ds), metadata=metadata)


def _parse(path: Path) -> Any:
    import pydicom

    try:
        return pydicom.dcmread(path, force=True)
    except CxrError:
        raise
    except MemoryError:
        raise UnreadableImageError(f"{path.name}: the DICOM file is too large to load into memory.") from None
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on damaged files
        logger.debug("pydicom could not parse %s (%s)", path.name, type(exc).__name__)
        raise UnreadableImageError(
            f"{path.name} is not a readable DICOM file: it is damaged, truncated or not DICOM "
            f"(the parser stopped with {type(exc).__name__})."
        ) from None


def _explain_missing_pixels(path: Path, ds: Any) -> None:
    """No Pixel Data: tell a report or presentation state apart from a cut-off image or a non-DICOM file."""
    evidence = _guard(path, lambda: [k for k in _DICOM_EVIDENCE if k in ds])
    has_meta = _guard(path, lambda: bool(getattr(ds, "file_meta", None)))
    if not evidence and not has_meta:
        raise UnreadableImageError(f"{path.name} is not a DICOM file (and not a PNG, JPEG, TIFF or BMP image).")
    # pydicom drops an undefined-length Pixel Data element that the end of the file cuts off, so
    # look for its tag in the bytes, and at the SOP Class, before calling the object image-less.
    sop = _guard(path, lambda: str(ds.get("SOPClassUID", "")))
    sop_name = _uid_name(sop)
    if _file_has_pixel_tag(path) or "Image Storage" in sop_name:
        raise UnreadableImageError(
            f"{path.name} is a damaged or truncated DICOM image: its pixel data is missing or cut off."
        )
    kind = f" ({sop_name})" if sop_name and sop_name != sop else ""
    raise UnsupportedDicomError(
        f"{path.name}: this DICOM object has no image (e.g. a report or a presentation state){kind}."
    )


def _file_has_pixel_tag(path: Path) -> bool:
    tail = b""
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                block = tail + chunk
                if any(tag in block for tag in _PIXEL_DATA_TAGS):
                    return True
                tail = block[-3:]
    except OSError:
        return False
    return False


def _uid_name(uid: str) -> str:
    if not uid:
        return ""
    from pydicom.uid import UID

    try:
        return str(UID(uid).name)
    except Exception:  # noqa: BLE001 - a malformed UID string
        return uid


def _transfer_syntax(path: Path, ds: Any) -> Any:
    """The data set's transfer syntax; for files without file meta, the encoding pydicom found."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    def get() -> Any:
        meta = getattr(ds, "file_meta", None)
        ts = meta.get("TransferSyntaxUID") if meta is not None else None
        if ts:
            return UID(str(ts).strip().rstrip("\x00"))
        implicit, little = getattr(ds, "original_encoding", (None, None))
        if implicit is False:
            uid = ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian
        else:
            uid = ImplicitVRLittleEndian
        if meta is None:
            ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = uid
        logger.debug("%s has no transfer syntax in its file meta; using %s", path.name, uid.name)
        return uid

    return _guard(path, get)


def _is_encapsulated(ts: Any) -> bool:
    try:
        return bool(ts.is_encapsulated)
    except ValueError:  # pydicom raises for UIDs that are not transfer syntaxes
        return False


def _check_codestream(path: Path, ds: Any) -> None:
    """For compressed data, check the size the codestream itself declares: a decoder allocates
    what the JPEG / JPEG 2000 header says, whatever Rows and Columns claim."""
    from pydicom.encaps import generate_fragments

    def first_fragment() -> bytes:
        for n, frag in enumerate(generate_fragments(ds.PixelData)):
            if n > 0 and frag:  # item 0 is the Basic Offset Table
                return bytes(frag[:65536])
        return b""

    try:
        head = first_fragment()
    except Exception:  # noqa: BLE001 - a damaged fragment list; the decoder will report it
        logger.debug("could not read the first fragment of %s", path.name)
        return
    info = jpeg_info(head) or j2k_info(head)
    if info is not None:
        check_pixels(info.width, info.height, path, "compressed DICOM frame")


def _decoder_for(path: Path, ts: Any) -> Any:
    """pydicom's decoder for ``ts``; unknown syntaxes and missing plugins are reported here,
    before anything is decoded."""
    from pydicom import pixels

    try:
        decoder = pixels.get_decoder(ts)
    except Exception:  # noqa: BLE001 - NotImplementedError for unknown syntaxes, others for malformed UIDs
        raise UnsupportedDicomError(_unsupported_syntax(path, ts)) from None
    if not decoder.is_available:
        raise MissingCodecError(_missing_codec(path, ts))
    return decoder


def _decode_first_frame(path: Path, ds: Any, ts: Any, decoder: Any, options: dict[str, Any]) -> np.ndarray:
    """The first frame as pydicom decodes it; ``options`` override Image Pixel values of the
    data set (pydicom's decoder options, e.g. ``photometric_interpretation``)."""
    from pydicom import pixels

    # Prefer pylibjpeg when it can: the same decoder everywhere gives the same pixels everywhere
    # (pydicom would otherwise take the first plugin that works, e.g. Pillow if installed).
    plugin = "pylibjpeg" if _is_encapsulated(ts) and "pylibjpeg" in decoder.available_plugins else ""
    try:
        arr = pixels.pixel_array(ds, index=0, decoding_plugin=plugin, **options)
    except CxrError:
        raise
    except MemoryError:
        raise UnreadableImageError(f"{path.name}: not enough memory to decode its pixel data.") from None
    except Exception as exc:  # noqa: BLE001 - the codec plugins raise many types on damaged data
        message = str(exc)
        if "missing dependencies" in message or "plugins are missing" in message:
            raise MissingCodecError(_missing_codec(path, ts)) from None
        logger.debug("decoding %s failed: %s: %s", path.name, type(exc).__name__, message)
        reason = message.splitlines()[0][:160] if message else type(exc).__name__
        raise UnreadableImageError(
            f"{path.name}: the DICOM pixel data could not be decoded; "
            f"the file is probably damaged or truncated ({reason})."
        ) from None

    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or arr.size == 0 or (arr.ndim == 3 and arr.shape[-1] < 3):
        raise UnreadableImageError(f"{path.name}: the decoded pixel data has an unexpected shape {arr.shape}.")
    if np.issubdtype(arr.dtype, np.floating):  # Float / Double Float Pixel Data
        arr = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return arr


def _unsupported_syntax(path: Path, ts: Any) -> str:
    name = _uid_name(str(ts))
    label = f"{name} ({ts})" if name and name != str(ts) else f"{ts} (not a transfer syntax pydicom knows)"
    return (
        f"{path.name} uses the transfer syntax {label}, which cxrviewer cannot decode. "
        f"Convert it to an uncompressed or JPEG / JPEG 2000 DICOM (e.g. with dcmtk's dcmconv or gdcmconv)."
    )


def _missing_codec(path: Path, ts: Any) -> str:
    package = _CODEC_PACKAGES.get(str(ts))
    everything = "pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle"
    install = f"pip install {package or everything}"
    return (
        f"{path.name} is compressed with {_uid_name(str(ts)) or ts}, and no installed decoder can read it. "
        f"Install one with `{install}` (or reinstall cxrviewer with `pip install --force-reinstall cxrviewer`)."
    )


def _color_to_gray(path: Path, ds: Any, arr: np.ndarray, photometric: str, bits_stored: int) -> np.ndarray:
    """RGB (pydicom already converts YBR_FULL / YBR_FULL_422) or PALETTE COLOR → BT.601 luma in [0, 1]
    (:func:`~cxrviewer.io.dicom_display.rgb_to_luma`, scaled by the sample range)."""
    if photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        try:
            rgb = apply_color_lut(arr, ds)
        except Exception as exc:  # noqa: BLE001 - missing or malformed palette tables
            logger.debug("applying the palette of %s failed (%s)", path.name, type(exc).__name__)
            raise UnreadableImageError(
                f"{path.name} is a PALETTE COLOR image whose colour palette is missing or damaged."
            ) from None
        top = float(np.iinfo(rgb.dtype).max) if np.issubdtype(rgb.dtype, np.integer) else 1.0
    else:
        rgb = arr
        top = float((1 << max(1, min(bits_stored, 32))) - 1)
    if rgb.ndim != 3 or rgb.shape[-1] < 3:
        raise UnreadableImageError(f"{path.name}: the colour pixel data has an unexpected shape {rgb.shape}.")
    return rgb_to_luma(rgb, top)


# ---------------------------------------------------------------- attribute extraction
def grayscale_params(ds: Any, photometric: str) -> GrayscaleParams:
    """The grayscale pipeline's inputs from a data set, with unusable values dropped (and logged):
    a malformed window or LUT costs the film its window or LUT, not its pixels."""
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    try:
        little = bool(ts.is_little_endian) if ts else None
    except ValueError:  # not a transfer syntax UID
        little = None
    if little is None:
        little = getattr(ds, "original_encoding", (None, True))[1] is not False
    signed = _first_number(_optional(ds, "PixelRepresentation")) == 1

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


def _pixel_spacing(path: Path, ds: Any) -> tuple[float, float] | None:
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


def _guard(path: Path, fn: Callable[[], Any]) -> Any:
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


def _get_int(path: Path, ds: Any, keyword: str) -> int | None:
    value = _guard(path, lambda: _get(ds, keyword))
    number = _first_number(value)
    if number is None or not math.isfinite(number):
        return None
    return int(number)


def _get_str(path: Path, ds: Any, keyword: str) -> str:
    """A short text attribute; an unreadable one is logged and treated as absent."""
    value = _optional(ds, keyword)
    if _is_sequence(value):  # several values where one is expected: the first
        value = value[0] if len(value) else None
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip().rstrip("\x00").strip()[:64]

