"""PNG / JPEG / TIFF / BMP films, the decompression-bomb guard, and damaged raster files."""

from __future__ import annotations

import struct
import time
import zlib

import cv2
import numpy as np
import pytest

from cxrviewer.errors import CxrError, UnreadableImageError
from cxrviewer.io import read_film


def gradient(h: int = 40, w: int = 64, top: int = 255, dtype=np.uint8) -> np.ndarray:
    return np.linspace(0, top, w).round().astype(dtype)[None, :].repeat(h, axis=0)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and a valid IHDR (correct CRC) declaring width × height, then a tiny IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + png_chunk(b"IEND", b"")


@pytest.fixture
def no_decode(monkeypatch):
    """Make any call to cv2.imdecode fail the test: proves a file was refused before decoding."""

    def must_not_decode(*args, **kwargs):
        raise AssertionError("cv2.imdecode was called")

    monkeypatch.setattr(cv2, "imdecode", must_not_decode)


# ----------------------------------------------------------------------------- formats
def test_8bit_gray_png_scales_by_255(write_image):
    img = gradient()
    film = read_film(write_image(img, "g8.png"))
    np.testing.assert_allclose(film.pixels, img / 255.0, atol=1e-7)
    assert film.pixels.dtype == np.float32
    assert dict(film.metadata) == {"format": "png", "width": 64, "height": 40, "bits": 8, "channels": 1}
    assert film.pixel_spacing is None


def test_16bit_gray_png_scales_by_65535_even_when_only_12_bits_are_used(write_image):
    full = gradient(top=65535, dtype=np.uint16)
    twelve = gradient(top=4095, dtype=np.uint16)
    f_full = read_film(write_image(full, "g16.png"))
    f_12 = read_film(write_image(twelve, "g12in16.png"))
    np.testing.assert_allclose(f_full.pixels, full / 65535.0, atol=1e-7)
    np.testing.assert_allclose(f_12.pixels, twelve / 65535.0, atol=1e-7)
    assert f_full.metadata["bits"] == 16 and f_12.pixels.max() == pytest.approx(4095 / 65535)


def test_rgb_png_becomes_bt601_luma(write_image):
    bgr = np.zeros((2, 4, 3), np.uint8)
    bgr[:, 0] = (0, 0, 255)  # red
    bgr[:, 1] = (0, 255, 0)  # green
    bgr[:, 2] = (255, 0, 0)  # blue
    bgr[:, 3] = (255, 255, 255)
    film = read_film(write_image(bgr, "rgb.png"))
    np.testing.assert_allclose(film.pixels[0], [0.299, 0.587, 0.114, 1.0], atol=1e-6)
    assert film.metadata["channels"] == 3


def test_gray_saved_as_rgb_is_exact(write_image):
    img = gradient()
    film = read_film(write_image(np.dstack([img] * 3), "grey-rgb.png"))
    np.testing.assert_array_equal(film.pixels, (img / 255.0).astype(np.float32))


def test_rgba_png_drops_alpha(write_image):
    bgr = np.dstack([gradient()] * 3)
    alpha = np.zeros(bgr.shape[:2], np.uint8)  # fully transparent: still the same film
    film = read_film(write_image(np.dstack([bgr, alpha]), "rgba.png"))
    np.testing.assert_allclose(film.pixels, gradient() / 255.0, atol=1e-7)


def test_16bit_rgb_png(write_image):
    bgr = np.dstack([gradient(top=65535, dtype=np.uint16)] * 3)
    bgr[..., 2] = 0  # no red
    film = read_film(write_image(bgr, "rgb16.png"))
    np.testing.assert_allclose(film.pixels, gradient(top=65535, dtype=np.uint16) * (0.114 + 0.587) / 65535, atol=1e-5)
    assert film.metadata["bits"] == 16


def test_jpeg_reads_close_to_its_source(write_image):
    img = gradient(64, 64)
    film = read_film(write_image(img, "g.jpg", [cv2.IMWRITE_JPEG_QUALITY, 100]))
    assert film.metadata["format"] == "jpeg"
    assert np.abs(film.pixels - img / 255.0).max() < 0.02


@pytest.mark.parametrize("name, dtype, top", [("t.tif", np.uint16, 65535), ("t.tiff", np.uint8, 255), ("b.bmp", np.uint8, 255)])
def test_tiff_and_bmp(write_image, name, dtype, top):
    img = gradient(top=top, dtype=dtype)
    film = read_film(write_image(img, name))
    np.testing.assert_allclose(film.pixels, img / float(top), atol=1e-6)


def test_float_tiff_in_unit_range_is_kept(write_image):
    img = np.linspace(0.1, 0.9, 32, dtype=np.float32)[None, :].repeat(4, axis=0)
    film = read_film(write_image(img, "f.tiff"))
    np.testing.assert_allclose(film.pixels, img, atol=1e-7)


@pytest.mark.parametrize("shape", [(1, 1), (1, 500), (500, 1), (2, 3)])
def test_tiny_and_thin_images_are_valid_films(write_image, shape):
    img = (np.arange(np.prod(shape)) % 256).astype(np.uint8).reshape(shape)
    film = read_film(write_image(img, f"thin-{shape[0]}x{shape[1]}.png"))
    assert film.pixels.shape == shape
    np.testing.assert_allclose(film.pixels, img / 255.0, atol=1e-7)


def test_jpeg_exif_orientation_is_honoured(write_image, tmp_path):
    img = np.zeros((20, 40), np.uint8)
    img[:, :10] = 255  # a bright band on the left
    data = write_image(img, "plain.jpg", [cv2.IMWRITE_JPEG_QUALITY, 100]).read_bytes()
    # An APP1 Exif segment with Orientation = 6 ("rotate 90° clockwise to display").
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0) + b"\x00" * 4
    app1 = b"\xff\xe1" + struct.pack(">H", 2 + 6 + len(tiff)) + b"Exif\x00\x00" + tiff
    rotated = tmp_path / "rotated.jpg"
    rotated.write_bytes(data[:2] + app1 + data[2:])
    film = read_film(rotated)
    assert film.pixels.shape == (40, 20)
    assert film.pixels[:10].mean() > 0.9 and film.pixels[-10:].mean() < 0.1  # the band is now on top


# ------------------------------------------------------------------------ content wins
def test_content_decides_not_the_suffix(write_image, tmp_path, make_dicom):
    png = write_image(gradient(), "src.png").rename(tmp_path / "really-a-png.jpg")
    assert read_film(png).metadata["format"] == "png"
    dcm = make_dicom(gradient(), name="really-a-dicom.png")
    assert read_film(dcm).metadata["format"] == "dicom"


def test_unicode_and_space_laden_names(write_image, tmp_path):
    folder = tmp_path / "Röntgen Aufnahmen 胸部"
    folder.mkdir()
    path = folder / "  patiënt thorax (1) — 胸片.png"
    path.write_bytes(write_image(gradient(), "src.png").read_bytes())
    film = read_film(str(path))
    assert film.source == path and film.pixels.shape == (40, 64)


# ---------------------------------------------------------------- decompression bombs
def test_png_declaring_100000_squared_is_refused_before_decoding(tmp_path, no_decode):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    t0 = time.perf_counter()
    with pytest.raises(UnreadableImageError, match=r"100000 × 100000 pixels .*megapixel limit"):
        read_film(path)
    assert time.perf_counter() - t0 < 0.5


def test_jpeg_declaring_a_huge_frame_is_refused_before_decoding(tmp_path, no_decode):
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, 60000, 60000, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    path = tmp_path / "bomb.jpg"
    path.write_bytes(b"\xff\xd8" + sof + sos + b"\x00" * 32 + b"\xff\xd9")
    with pytest.raises(UnreadableImageError, match="JPEG image is 60000 × 60000"):
        read_film(path)


def test_tiff_and_bmp_declaring_huge_sizes_are_refused_before_decoding(tmp_path, no_decode):
    entries = [(256, 4, 1, 200_000), (257, 4, 1, 200_000), (258, 3, 1, 8)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    tiff = tmp_path / "bomb.tif"
    tiff.write_bytes(b"II*\x00" + struct.pack("<I", 8) + ifd)
    bmp = tmp_path / "bomb.bmp"
    bmp.write_bytes(b"BM" + struct.pack("<IHHI", 0, 0, 0, 54) + struct.pack("<IiiHH", 40, 80_000, -80_000, 1, 24) + b"\x00" * 24)
    with pytest.raises(UnreadableImageError, match="TIFF image is 200000 × 200000"):
        read_film(tiff)
    with pytest.raises(UnreadableImageError, match="BMP image is 80000 × 80000"):
        read_film(bmp)


def test_a_real_png_over_a_lowered_limit_is_refused(write_image, monkeypatch):
    path = write_image(gradient(), "g.png")  # 64 × 40 = 2560 pixels
    monkeypatch.setenv("CXRVIEWER_MAX_PIXELS", "2559")
    with pytest.raises(UnreadableImageError, match="limit"):
        read_film(path)
    monkeypatch.setenv("CXRVIEWER_MAX_PIXELS", "2560")
    assert read_film(path).pixels.shape == (40, 64)


# ---------------------------------------------------------------------- damaged files
def test_truncated_nih_png_is_damaged(nih_images, tmp_path):
    data = nih_images[0].read_bytes()
    cut = tmp_path / "half.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(UnreadableImageError, match="damaged or truncated"):
        read_film(cut)


def test_truncated_jpeg_is_reported_truncated(write_image, tmp_path):
    rng = np.random.default_rng(0)
    data = write_image(rng.integers(0, 255, (128, 128), dtype=np.uint8), "noise.jpg").read_bytes()
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(UnreadableImageError, match="truncated"):
        read_film(cut)


@pytest.mark.parametrize("name", ["noise.png", "noise.jpg", "noise.dcm", "noise", "noise.tif"])
def test_random_bytes_are_refused_with_a_cxr_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(1).bytes(4096))
    with pytest.raises(UnreadableImageError, match="not"):
        read_film(path)


def test_a_text_file_named_dcm_is_not_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("Patient seen today; films to follow.\n" * 20)
    with pytest.raises(UnreadableImageError, match="not a DICOM file"):
        read_film(path)


def test_a_text_file_with_an_unknown_suffix_is_not_an_image(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(UnreadableImageError, match=r"not an image cxrviewer can read \(PNG, JPEG, TIFF, BMP or DICOM\)"):
        read_film(path)


def test_a_png_signature_with_garbage_after_it(tmp_path):
    path = tmp_path / "sig-only.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(UnreadableImageError, match="header could not be read"):
        read_film(path)


def test_every_error_is_a_cxr_error_subclass_not_a_bare_one(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"garbage")
    with pytest.raises(CxrError) as info:
        read_film(path)
    assert type(info.value) is not CxrError
