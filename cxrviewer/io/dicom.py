"""DICOM films: parse with pydicom, decode the first frame, build the :class:`Film`.

This module reads the file and its header; the display pipeline itself (Modality LUT → VOI →
MONOCHROME1 inversion → [0, 1], PS3.4 N.2.1) is plain numpy in :mod:`cxrviewer.io.dicom_display`,
as pydicom keeps ``pixels/processing.py`` apart from its decoders. See docs/dicom.md.

Parsing (:func:`_parse`) and decoding (:func:`_decode_first_frame`) wrap pydicom and the codec
plugins, which raise many exception types on damaged input; both turn every failure into a
:class:`~cxrviewer.errors.CxrError`. Header values are read through
:mod:`cxrviewer.io.dicom_header` (guarded reads; :func:`~cxrviewer.io.dicom_header.grayscale_params`
turns attributes into the plain values the pipeline takes, dropping and logging unusable ones).

Nothing identifying leaves this module: messages and logs name the file and DICOM keywords,
never attribute values other than the technical ones listed in the film metadata.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CxrError, MissingCodecError, UnreadableImageError, UnsupportedDicomError
from ..types import Film, Grayscale, Voi
from .dicom_display import DisplayFacts, GrayscaleParams, display_pixels, rgb_to_luma
from .dicom_header import (
    calibration,
    get_int,
    get_str,
    grayscale_params,
    guard,
    patient_orientation,
    pixel_spacing,
    study_facts,
    voi_presets,
)
from .grayscale import full_range
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
# Photometric Interpretations the standard retired (PS3.3 C.7.6.3.1.2) that no decoder reads:
# a film in them is refused by name, rather than read as something it is not.
_RETIRED_PHOTOMETRIC = ("HSV", "ARGB", "CMYK")
# The Pixel Data tag (7FE0,0010) as it appears in little- and big-endian files.
_PIXEL_DATA_TAGS = (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10")


# --------------------------------------------------------------------- logging
class DecoderTracebackFilter(logging.Filter):
    """pydicom's decoders log each plugin's failure with its traceback at ERROR
    (``pydicom.pixels.decoders.base``: ``LOGGER.exception``) before they raise; cxrviewer turns
    that failure into one :class:`UnreadableImageError` naming the file, which the caller
    reports. This filter, installed by an entry point on the ``pydicom`` logger
    (:func:`install_decoder_traceback_filter`), makes such a record one DEBUG line without its
    traceback, shown only when the log is at DEBUG (``-vv``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info is None or not record.name.startswith("pydicom.pixels"):
            return True
        exc = record.exc_info[1]
        record.msg, record.args = "a decoding plugin failed (%s: %s)", (type(exc).__name__, record.getMessage())
        record.exc_info, record.exc_text = None, None
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def install_decoder_traceback_filter() -> None:
    """Install :class:`DecoderTracebackFilter` on the logger of pydicom's decoders (once); for
    the entry points that configure logging (the CLI)."""
    target = logging.getLogger("pydicom.pixels.decoders.base")
    if not any(isinstance(f, DecoderTracebackFilter) for f in target.filters):
        target.addFilter(DecoderTracebackFilter())


# --------------------------------------------------------------------- reading the file
def read_dicom(path: Path, data: bytes | None = None) -> Film:
    """Read the DICOM file at ``path`` (with or without preamble) as a :class:`Film`; from
    ``data`` when given (the file's bytes, fetched from an object store), ``path`` naming it."""
    ds = _parse(path, data)
    has_pixels = guard(path, lambda: any(k in ds for k in _PIXEL_KEYWORDS))
    if not has_pixels:
        _explain_missing_pixels(path, ds)

    ts = _transfer_syntax(path, ds)
    decoder = _decoder_for(path, ts)
    rows, cols = get_int(path, ds, "Rows"), get_int(path, ds, "Columns")
    if not rows or not cols or rows <= 0 or cols <= 0:
        raise UnreadableImageError(
            f"{path.name}: the DICOM header declares no image size (Rows/Columns); the file is damaged."
        )
    # The decompression-bomb guard, before anything is decoded; only the first frame is decoded.
    check_pixels(cols, rows, path, "DICOM frame")
    frames = max(1, get_int(path, ds, "NumberOfFrames") or 1)
    if _is_encapsulated(ts):
        _check_codestream(path, ds)

    photometric = get_str(path, ds, "PhotometricInterpretation").upper()
    samples = get_int(path, ds, "SamplesPerPixel") or 1
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

    if photometric in _RETIRED_PHOTOMETRIC:
        raise UnsupportedDicomError(
            f"{path.name} has the Photometric Interpretation (0028,0004) {photometric}, which the "
            "standard retired (PS3.3 C.7.6.3.1.2) and cxrviewer does not read. Convert the image to "
            "MONOCHROME2 or RGB (e.g. with gdcmconv or dcmtk's dcmconv), then score it."
        )
    if not _is_encapsulated(ts):
        _check_native_length(path, ds, rows, cols)

    arr = _decode_first_frame(path, ds, ts, decoder, decode_options)
    if frames > 1:
        logger.warning("%s has %d frames; showing the first", path.name, frames)

    bits_stored = get_int(path, ds, "BitsStored") or int(arr.dtype.itemsize * 8)
    is_color = arr.ndim == 3 or photometric == "PALETTE COLOR"
    gray = None
    if is_color:
        pixels = _color_to_gray(path, ds, arr, photometric, bits_stored)
        facts = DisplayFacts(voi="none", window=None, inverted=False)
    else:
        params = guard(path, lambda: grayscale_params(ds, photometric))
        pixels, facts = display_pixels(arr, params)
        gray = _grayscale(path, ds, arr, params, facts)

    metadata: dict[str, Any] = {
        "format": "dicom",
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "bits": int(bits_stored),
        "bits_stored": int(bits_stored),
        "modality": get_str(path, ds, "Modality") or None,
        "photometric": photometric,
        "transfer_syntax": str(ts),
        "window": facts.window,
        "voi": facts.voi,
        "inverted": facts.inverted,
        "frames": int(frames),
    }
    view = get_str(path, ds, "ViewPosition")
    if view:
        metadata["view_position"] = view
    # what the applicability gate reads (cxrviewer.applicability): the anatomy and the kind of
    # object (PS3.3 C.7.3.1 Body Part Examined; PS3.4 B.5 SOP classes), never who
    body_part = get_str(path, ds, "BodyPartExamined").upper()
    if body_part:
        metadata["body_part"] = body_part
    intent = get_str(path, ds, "PresentationIntentType").upper()  # PS3.3 C.8.11.1.1.1
    if intent:
        metadata["presentation_intent"] = intent
    sop_class = get_str(path, ds, "SOPClassUID")
    if sop_class:
        metadata["sop_class_uid"] = sop_class
    # for the display's markers (PS3.3 C.7.6.1.1.1, C.7.6.2, C.7.3.1): directions, not identity
    orientation = patient_orientation(ds)
    if orientation is not None:
        metadata["patient_orientation"] = orientation
    laterality = get_str(path, ds, "ImageLaterality") or get_str(path, ds, "Laterality")
    if laterality in ("R", "L", "B", "U"):
        metadata["laterality"] = laterality
    # which study the film belongs to (the film strip groups by it): a keyed hash of the Patient
    # ID (dicom_header.patient_key), never the ID itself (PS3.3 C.7.1.1, C.7.2.1)
    metadata.update(study_facts(path, ds))
    cal = guard(path, lambda: calibration(ds))
    return Film(pixels, source=path, pixel_spacing=pixel_spacing(ds), metadata=metadata, gray=gray, calibration=cal)


def _grayscale(path: Path, ds: Any, stored: np.ndarray, params: GrayscaleParams, facts: DisplayFacts) -> Grayscale:
    """The film's modality-unit image for display-time windowing: the decoded samples as they are
    (no copy, their own dtype), the VOI the model's view was made with, and the file's presets."""
    presets = guard(path, lambda: voi_presets(ds, params.voi_function))
    if facts.voi == "lut-sequence":
        luts = [v for v in presets if v.lut is not None]
        default = luts[0] if luts else Voi("file VOI LUT", lut=params.voi_lut)
    elif facts.voi == "window" and facts.window is not None:
        center, width = facts.window
        named = [v for v in presets if v.lut is None and (v.center, v.width) == (center, width)]
        default = named[0] if named else Voi("file window", center, width, params.voi_function)
    else:
        default = Voi()  # replaced just below, once the values' range is known
    gray = Grayscale(
        stored, default=default, presets=presets, rescale=params.rescale, modality_lut=params.modality_lut,
        inverted=facts.inverted, voi_function=params.voi_function, units=get_str(path, ds, "RescaleType"),
    )
    if facts.voi == "minmax":  # no usable VOI in the file: the model saw min..max (apply_voi)
        gray = dataclasses.replace(gray, default=full_range(gray))
    return gray


def _parse(path: Path, data: bytes | None = None) -> Any:
    import io

    import pydicom

    try:
        return pydicom.dcmread(io.BytesIO(data) if data is not None else path, force=True)
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
    evidence = guard(path, lambda: [k for k in _DICOM_EVIDENCE if k in ds])
    has_meta = guard(path, lambda: bool(getattr(ds, "file_meta", None)))
    if not evidence and not has_meta:
        raise UnreadableImageError(f"{path.name} is not a DICOM file (and not a PNG, JPEG, TIFF or BMP image).")
    # pydicom drops an undefined-length Pixel Data element that the end of the file cuts off, so
    # look for its tag in the bytes, and at the SOP Class, before calling the object image-less.
    sop = guard(path, lambda: str(ds.get("SOPClassUID", "")))
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

    return guard(path, get)


def _check_native_length(path: Path, ds: Any, rows: int, cols: int) -> None:
    """Native (uncompressed) Pixel Data holds exactly what the Image Pixel module describes,
    Rows x Columns x Samples per Pixel x Bits Allocated per frame, padded to an even length
    (PS3.5 8.1.1, 7.1.1). Shorter is a damaged file (an error: the last rows would be invented);
    longer, more rows than Rows say, is read as the header says and logged."""
    from pydicom.pixels.utils import get_expected_length

    if "PixelData" not in ds:
        return  # Float / Double Float Pixel Data: pydicom's decoder checks its length
    try:
        expected = int(get_expected_length(ds, "bytes"))
        actual = len(ds.PixelData)
    except Exception:  # noqa: BLE001 - a header pydicom cannot size: its decoder says what is wrong
        logger.debug("could not size the pixel data of %s", path.name)
        return
    if actual < expected:
        raise UnreadableImageError(
            f"{path.name} has truncated pixel data: Pixel Data (7FE0,0010) holds {actual} bytes where "
            f"its header (Rows {rows}, Columns {cols}, Samples per Pixel, Bits Allocated, Number of "
            f"Frames) needs {expected}. The file is damaged or was cut off; copy or export it again."
        )
    extra = actual - expected - (expected % 2)  # an odd length is padded by one byte
    if extra > 0:
        row_bytes = max(1, expected // max(1, rows * max(1, get_int(path, ds, "NumberOfFrames") or 1)))
        logger.warning(
            "%s: Pixel Data (7FE0,0010) holds %d bytes more than its header's %d rows need (about %d "
            "more rows); the image is read as Rows (0028,0010) says and the rest is ignored",
            path.name, extra, rows, extra // row_bytes,
        )


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
        # pydicom refuses to decode when no plugin's dependencies are met (a RuntimeError): said
        # by the decoder's public state, not by the message's words
        if isinstance(exc, RuntimeError) and not decoder.available_plugins:
            raise MissingCodecError(_missing_codec(path, ts)) from None
        message = str(exc)
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


