"""What a file is, from its first bytes, and how big its image is, from its header alone.

Nothing here decodes pixels or raises: every function returns ``None`` (or ``False``) when the
bytes do not say. The dimension parsers exist so that :mod:`cxrviewer.io.limits` can refuse a
decompression bomb before any decoder allocates memory for it.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

# How many bytes of a file to read to decide what it is: the DICOM preamble (128) + "DICM".
HEAD_BYTES = 132

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
BMP_SIGNATURE = b"BM"
# The DIB header sizes a BMP can have (core, info, v2-v5, OS/2 2.x), little-endian at byte 14.
_BMP_DIB_SIZES = frozenset(struct.pack("<I", n) for n in (12, 16, 40, 52, 56, 64, 108, 124))
DICOM_MAGIC = b"DICM"  # PS3.10 7.1: after a 128-byte preamble

# Value representations (PS3.5 6.2) that can follow a tag in explicit-VR encoding.
_VRS = frozenset(
    b"AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split()
)


def sniff_format(head: bytes) -> str | None:
    """``"png"``, ``"jpeg"``, ``"tiff"``, ``"bmp"`` or ``"dicom"`` from a file's first bytes.

    A DICOM file with a preamble wins over everything else (a dual-personality DICOM/TIFF file
    carries a TIFF header in its preamble). A DICOM stream without preamble is reported only if
    :func:`looks_like_raw_dicom` says so.
    """
    if has_dicom_preamble(head):
        return "dicom"
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head.startswith(JPEG_SIGNATURE):
        return "jpeg"
    if head[:4] in TIFF_SIGNATURES:
        return "tiff"
    if head.startswith(BMP_SIGNATURE) and len(head) >= 18 and head[14:18] in _BMP_DIB_SIZES:
        return "bmp"
    if looks_like_raw_dicom(head):
        return "dicom"
    return None


def has_dicom_preamble(head: bytes) -> bool:
    """``True`` when ``DICM`` sits at byte 128 (PS3.10 7.1), as torchxrayvision sniffs it."""
    return head[128:132] == DICOM_MAGIC


def looks_like_raw_dicom(head: bytes) -> bool:
    """Guess whether bytes are a DICOM data set written without preamble and file meta.

    Such files (old ACR-NEMA style, or "raw" data sets) start directly with a tag of group 0x0008
    (or 0x0002), little- or big-endian, followed either by a two-letter VR (explicit VR) or by a
    4-byte length (implicit VR).
    """
    if len(head) < 8:
        return False
    for order in ("<", ">"):
        group, element = struct.unpack(order + "HH", head[:4])
        if group not in (0x0002, 0x0008) or element > 0x00FF:
            continue
        if head[4:6] in _VRS:
            return True
        (length,) = struct.unpack(order + "I", head[4:8])
        if length < 0x10000:
            return True
    return False


def is_dicom(path: str | os.PathLike[str]) -> bool:
    """Whether the file at ``path`` is DICOM by its content (never by its name); never raises."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(HEAD_BYTES)
    except (OSError, ValueError):
        return False
    return has_dicom_preamble(head) or looks_like_raw_dicom(head)


# ----------------------------------------------------------------------- header dimensions
@dataclass(frozen=True)
class HeaderInfo:
    """What a raster header says before decoding: size, bit depth, and (JPEG) where data starts."""

    width: int
    height: int
    bits: int | None = None
    scan_offset: int | None = None


def png_info(data: bytes) -> HeaderInfo | None:
    """Width, height and bit depth from the IHDR chunk (PNG spec 11.2.2), which must come first."""
    if len(data) < 26 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", data[16:24])
    return HeaderInfo(width, height, bits=data[24])


# JPEG start-of-frame markers (ITU T.81 B.1.1.3) and JPEG-LS SOF55 (T.87): not DHT, JPG or DAC.
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} | {0xF7}


def jpeg_info(data: bytes) -> HeaderInfo | None:
    """Size and precision from the first SOF segment, and the offset of the first SOS marker.

    Walks the marker segments of ITU T.81 Annex B. Returns ``None`` when the stream ends before a
    frame header and a scan are both found, or when the frame header declares zero lines (the
    rare DNL form, which no reader here supports).
    """
    if not data.startswith(b"\xff\xd8"):
        return None
    i, n = 2, len(data)
    size: tuple[int, int, int] | None = None
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # stand-alone markers
            i += 2
            continue
        if marker == 0xD9:  # EOI before any scan
            return None
        (seglen,) = struct.unpack(">H", data[i + 2 : i + 4])
        if seglen < 2:
            return None
        if marker in _SOF_MARKERS and size is None:
            if i + 9 > n:
                return None
            precision = data[i + 4]
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            size = (width, height, precision)
        elif marker == 0xDA:
            if size is None or size[0] == 0 or size[1] == 0:
                return None
            return HeaderInfo(size[0], size[1], bits=size[2], scan_offset=i)
        i += 2 + seglen
    return None


def jpeg_has_end(data: bytes, scan_offset: int) -> bool:
    """Whether an EOI marker follows the first scan: entropy-coded data never contains FF D9
    (T.81 B.1.1.5), so its absence means the file was cut short."""
    return data.find(b"\xff\xd9", scan_offset) != -1


def tiff_info(data: bytes) -> HeaderInfo | None:
    """ImageWidth (256) and ImageLength (257) from the first IFD (TIFF 6.0; BigTIFF too)."""
    if len(data) < 16 or data[:4] not in TIFF_SIGNATURES:
        return None
    bo = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        if big:
            (offset,) = struct.unpack(bo + "Q", data[8:16])
            (count,) = struct.unpack(bo + "Q", data[offset : offset + 8])
            entry, start, value_at = 20, offset + 8, 12
        else:
            (offset,) = struct.unpack(bo + "I", data[4:8])
            (count,) = struct.unpack(bo + "H", data[offset : offset + 2])
            entry, start, value_at = 12, offset + 2, 8
        found: dict[int, int] = {}
        bits = None
        for k in range(min(count, 4096)):
            pos = start + k * entry
            tag, typ = struct.unpack(bo + "HH", data[pos : pos + 4])
            raw = data[pos + value_at : pos + entry]
            if typ == 3:  # SHORT
                (value,) = struct.unpack(bo + "H", raw[:2])
            elif typ == 4:  # LONG
                (value,) = struct.unpack(bo + "I", raw[:4])
            elif typ == 16 and big:  # LONG8
                (value,) = struct.unpack(bo + "Q", raw[:8])
            else:
                continue
            if tag in (256, 257):
                found[tag] = value
            elif tag == 258:  # BitsPerSample (first sample when inline)
                bits = value
    except struct.error:
        return None
    if 256 not in found or 257 not in found:
        return None
    return HeaderInfo(found[256], found[257], bits=bits)


#: Pages counted at most (a TIFF's IFD chain may loop: TIFF 6.0 section 2 gives no bound).
_MAX_PAGES = 10_000


def tiff_pages(data: bytes) -> int:
    """The full-resolution images of a TIFF: the IFDs of its chain (TIFF 6.0 section 2) that are
    not a reduced-resolution copy or a transparency mask of another (NewSubfileType (254) bits 0
    and 2), so a page with a thumbnail is one page. 1 when the chain cannot be walked."""
    if len(data) < 16 or data[:4] not in TIFF_SIGNATURES:
        return 1
    bo = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    pages = 0
    seen: set[int] = set()
    try:
        (offset,) = struct.unpack(bo + ("Q" if big else "I"), data[8:16] if big else data[4:8])
        while offset and offset not in seen and len(seen) < _MAX_PAGES:
            seen.add(offset)
            if big:
                (count,) = struct.unpack(bo + "Q", data[offset : offset + 8])
                entry, start, value_at, link = 20, offset + 8, 12, "Q"
            else:
                (count,) = struct.unpack(bo + "H", data[offset : offset + 2])
                entry, start, value_at, link = 12, offset + 2, 8, "I"
            subfile = 0
            for k in range(min(count, 4096)):
                pos = start + k * entry
                tag, typ = struct.unpack(bo + "HH", data[pos : pos + 4])
                if tag == 254 and typ == 4:  # NewSubfileType, LONG
                    (subfile,) = struct.unpack(bo + "I", data[pos + value_at : pos + value_at + 4])
            pages += not (subfile & 0b101)
            end = start + count * entry
            (offset,) = struct.unpack(bo + link, data[end : end + struct.calcsize(link)])
    except struct.error:
        pass  # a chain cut short: the pages found so far
    return max(1, pages)


def png_frames(data: bytes) -> int:
    """The frames of an animated PNG (APNG's ``acTL`` chunk, its num_frames, before the first
    ``IDAT``); 1 for a plain PNG."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            return 1
        if kind == b"acTL" and length >= 8:
            (frames,) = struct.unpack(">I", data[pos + 8 : pos + 12])
            return max(1, int(frames))
        pos += 12 + length
    return 1


def bmp_info(data: bytes) -> HeaderInfo | None:
    """Size and bit count from the DIB header (BITMAPCOREHEADER or BITMAPINFOHEADER and later)."""
    if len(data) < 26 or not data.startswith(BMP_SIGNATURE):
        return None
    (dib_size,) = struct.unpack("<I", data[14:18])
    try:
        if dib_size == 12:
            width, height, _, bits = struct.unpack("<HHHH", data[18:26])
        else:
            width, height, _, bits = struct.unpack("<iiHH", data[18:30])
    except struct.error:
        return None
    return HeaderInfo(abs(width), abs(height), bits=bits)


def j2k_info(data: bytes) -> HeaderInfo | None:
    """Image size from the SIZ marker segment of a JPEG 2000 codestream (T.800 A.5.1).

    Looks in the first 4 KB so that a codestream wrapped in JP2 boxes is found too.
    """
    pos = data.find(b"\xff\x4f\xff\x51", 0, 4096)
    if pos < 0 or pos + 24 > len(data):
        return None
    xsiz, ysiz, xosiz, yosiz = struct.unpack(">IIII", data[pos + 8 : pos + 24])
    if xsiz <= xosiz or ysiz <= yosiz:
        return None
    return HeaderInfo(xsiz - xosiz, ysiz - yosiz)


RASTER_INFO = {"png": png_info, "jpeg": jpeg_info, "tiff": tiff_info, "bmp": bmp_info}
