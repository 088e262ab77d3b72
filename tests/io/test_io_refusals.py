"""Films the readers refuse, or read with a word, rather than reading silently (issue 25).

Pixel data shorter than its header says is an error (the last rows would be invented); more
data than Rows say is read as the header says, with a warning; a retired Photometric
Interpretation (HSV) is refused by name; a multi-page TIFF or an animated PNG is refused with
its page count; pydicom's decoder tracebacks do not reach the command line's log.
"""

from __future__ import annotations

import logging
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from dicomfactory import dicom_dataset, write_dicom

from cxrviewer.errors import UnreadableImageError, UnsupportedDicomError, UnsupportedImageError
from cxrviewer.io import read_film

REPO = Path(__file__).resolve().parents[2]


def gray16(h: int = 64, w: int = 60) -> np.ndarray:
    return (np.arange(h * w) % 4096).astype(np.uint16).reshape(h, w)


def with_pixel_data(path: Path, ds, data: bytes) -> Path:
    """``ds`` written with Pixel Data ``data`` exactly, odd length included (pydicom's writer
    would pad an odd value to even: the length field is patched in the bytes)."""
    ds.PixelData = data + (b"\0" if len(data) % 2 else b"")
    write_dicom(path, ds)
    if len(data) % 2:
        raw = bytearray(path.read_bytes())
        tag = raw.rfind(b"\xe0\x7f\x10\x00")  # (7FE0,0010), Explicit VR: OW/OB, 2 reserved, 4 length
        assert tag > 0
        struct.pack_into("<I", raw, tag + 8, len(data))
        path.write_bytes(bytes(raw[: tag + 12 + len(data)]))
    return path


@pytest.mark.parametrize("case", ["16-bit, an odd length", "8-bit, odd size"])
def test_pixel_data_one_byte_short_is_an_error(tmp_path, case):
    px = gray16() if case.startswith("16") else (np.arange(63 * 61) % 256).astype(np.uint8).reshape(63, 61)
    ds = dicom_dataset(px, bits_stored=12 if px.dtype == np.uint16 else None)
    full = px.tobytes()
    path = with_pixel_data(tmp_path / "short.dcm", ds, full[:-1])
    with pytest.raises(UnreadableImageError, match=r"truncated pixel data: Pixel Data \(7FE0,0010\) holds "
                                                   rf"{len(full) - 1} bytes .* needs {len(full)}"):
        read_film(path)


def test_whole_pixel_data_with_its_padding_byte_is_read(tmp_path, caplog):
    px = (np.arange(63 * 61) % 256).astype(np.uint8).reshape(63, 61)  # 3843 bytes: one pad byte
    path = write_dicom(tmp_path / "odd.dcm", dicom_dataset(px))
    caplog.set_level(logging.WARNING)
    film = read_film(path)
    assert film.pixels.shape == (63, 61) and "Pixel Data" not in caplog.text


def test_more_rows_of_data_than_rows_is_a_warning(tmp_path, caplog):
    px = gray16()
    ds = dicom_dataset(px, bits_stored=12)
    path = with_pixel_data(tmp_path / "long.dcm", ds, px.tobytes() + px[:3].tobytes())  # three rows more
    caplog.set_level(logging.WARNING)
    film = read_film(path)
    assert film.pixels.shape == (64, 60)
    assert "long.dcm: Pixel Data (7FE0,0010) holds 360 bytes more than its header's 64 rows need" in caplog.text
    assert "about 3 more rows" in caplog.text and "Rows (0028,0010)" in caplog.text


def test_retired_hsv_is_refused_by_name(tmp_path):
    ds = dicom_dataset(np.zeros((32, 32, 3), np.uint8), photometric="RGB")
    ds.PhotometricInterpretation = "HSV"  # retired (PS3.3 C.7.6.3.1.2)
    path = write_dicom(tmp_path / "hsv.dcm", ds)
    with pytest.raises(UnsupportedDicomError, match=r"hsv.dcm has the Photometric Interpretation \(0028,0004\) "
                                                    r"HSV, which the standard retired"):
        read_film(path)


def test_a_multi_page_tiff_is_refused_with_its_page_count(tmp_path):
    a = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    assert cv2.imwritemulti(str(tmp_path / "pages.tif"), [a, a[::-1], a.T])
    with pytest.raises(UnsupportedImageError, match="pages.tif has 3 pages; cxrviewer reads single-image files"):
        read_film(tmp_path / "pages.tif")
    assert cv2.imwrite(str(tmp_path / "one.tif"), a)
    assert read_film(tmp_path / "one.tif").pixels.shape == (64, 64)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _chunks(png: bytes):
    pos = 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        yield png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length


def apng(frames: list[np.ndarray]) -> bytes:
    """An animated PNG (APNG 1.0: acTL, then fcTL/IDAT for the first frame, fcTL/fdAT after)."""
    encoded = [cv2.imencode(".png", f)[1].tobytes() for f in frames]
    h, w = frames[0].shape[:2]
    head = dict(_chunks(encoded[0]))[b"IHDR"]
    out = encoded[0][:8] + _chunk(b"IHDR", head) + _chunk(b"acTL", struct.pack(">II", len(frames), 0))
    seq = 0
    for i, png in enumerate(encoded):
        out += _chunk(b"fcTL", struct.pack(">IIIIIHHBB", seq, w, h, 0, 0, 1, 10, 0, 0))
        seq += 1
        for kind, body in _chunks(png):
            if kind == b"IDAT":
                if i == 0:
                    out += _chunk(b"IDAT", body)
                else:
                    out += _chunk(b"fdAT", struct.pack(">I", seq) + body)
                    seq += 1
    return out + _chunk(b"IEND", b"")


def test_an_animated_png_is_refused_with_its_frame_count(tmp_path):
    a = (np.arange(48 * 40) % 256).astype(np.uint8).reshape(48, 40)
    path = tmp_path / "anim.png"
    path.write_bytes(apng([a, 255 - a]))
    assert cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape == (48, 40)  # OpenCV reads frame 1 silently
    with pytest.raises(UnsupportedImageError, match=r"anim.png has 2 frames \(an animated PNG\); cxrviewer reads "
                                                    "single-image files"):
        read_film(path)
    path.write_bytes(apng([a]))  # an APNG of one frame is one image
    assert read_film(path).pixels.shape == (48, 40)


def test_an_undecodable_jpeg_is_one_line_not_pydicom_s_traceback(tmp_path, tiny_model):
    """pydicom's decoders log each failure with a traceback (``LOGGER.exception``): on the
    command line, even with ``-v``, the film is one error of ours (issue 25)."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    px = (np.arange(64 * 64) % 256).astype(np.uint8).reshape(64, 64)
    jpeg = bytearray(cv2.imencode(".jpg", px)[1].tobytes())
    scan = jpeg.find(b"\xff\xda")
    for i in range(scan + 20, len(jpeg) - 2):  # the entropy-coded data garbled, the end marker kept
        jpeg[i] = 0xFF if i % 2 else 0x00
    path = write_dicom(tmp_path / "bad.dcm", dicom_dataset(px, transfer_syntax=JPEGBaseline8Bit,
                                                           pixel_data=encapsulate([bytes(jpeg)])))
    with pytest.raises(UnreadableImageError, match="could not be decoded"):
        read_film(path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run([sys.executable, "-m", "cxrviewer", "-v", "score", str(path), "--out", str(tmp_path / "r.csv"),
                          "--model", str(tiny_model), "--no-progress"], capture_output=True, text=True, timeout=120,
                         env=env, cwd=REPO)
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and "pydicom" not in run.stderr, run.stderr
    assert "1 failed" in run.stderr
