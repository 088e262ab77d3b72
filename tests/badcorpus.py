"""A folder of bad (and awkward but good) inputs, generated rather than committed.

``make_corpus(folder, png, dcm)`` writes the files (truncated copies of a real ``png`` and
``dcm`` among them) and returns ``(bad, good)``: for each bad
file the words its error message must contain, and the list of good files. Used by the
corpus test and handy for trying the app by hand.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np

from dicomfactory import DX_IMAGE, build_dicom
from helpers import synthetic_pixels, write_png


def _dicom(path: Path, *, pixels: bool = True, rows: int = 64, cols: int = 64, syntax: str | None = None,
           pixel_bytes: bytes | None = None) -> Path:
    """A 12-bit DX ramp from the suite's DICOM factory; Rows/Columns may lie about the pixels."""
    ramp = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096
    no_pixels = {} if pixels else {"PixelData": None}
    return build_dicom(
        path, ramp, bits_stored=12, sop_class=DX_IMAGE, modality="DX", transfer_syntax=syntax,
        pixel_data=pixel_bytes, Rows=rows, Columns=cols, PatientID="SECRET-ID-123",
        PatientBirthDate="19450317", **no_pixels,
    )


def _png_header_only(path: Path, width: int, height: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def make_corpus(folder: Path, png: Path, dcm: Path) -> tuple[dict[Path, tuple[str, ...]], list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    bad: dict[Path, tuple[str, ...]] = {}
    good: list[Path] = []

    p = folder / "zero-bytes.png"
    p.write_bytes(b"")
    bad[p] = ("empty",)
    real_png = png.read_bytes()
    p = folder / "truncated.png"
    p.write_bytes(real_png[: len(real_png) // 2])
    bad[p] = ("truncated.png",)
    real_dcm = dcm.read_bytes()
    p = folder / "truncated.dcm"
    p.write_bytes(real_dcm[: len(real_dcm) // 2])
    bad[p] = ("truncated.dcm",)
    p = folder / "random.png"
    p.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    bad[p] = ("random.png",)
    p = folder / "random.dcm"
    p.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    bad[p] = ("random.dcm",)
    p = folder / "report.dcm"
    p.write_text("Findings: no acute cardiopulmonary process.\n" * 20)
    bad[p] = ("report.dcm",)
    bad[_dicom(folder / "no-pixels.dcm", pixels=False)] = ("pixel data",)
    bad[_dicom(folder / "odd-syntax.dcm", syntax="1.2.3.4.5.6.7", pixel_bytes=b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\xfe\xff\x00\xe0\x08\x00\x00\x00" + b"\0" * 8)] = ("1.2.3.4.5.6.7",)
    bad[_png_header_only(folder / "bomb.png", 200_000, 200_000)] = ("pixels",)
    from pydicom.encaps import encapsulate

    bad[_dicom(folder / "bomb.dcm", rows=65535, cols=65535, pixel_bytes=encapsulate([b"\0" * 64]),
               syntax="1.2.840.10008.1.2.4.90")] = ("pixels",)
    d = folder / "a folder.png"
    d.mkdir()
    bad[d] = ("folder",)
    link = folder / "gone.png"
    link.symlink_to(folder / "does-not-exist.png")
    bad[link] = ("gone.png",)
    if os.geteuid() != 0:
        p = write_png(folder / "locked.png", synthetic_pixels(32, 32))
        p.chmod(0)
        bad[p] = ("permission",)

    good.append(write_png(folder / "one-pixel.png", np.ones((1, 1), np.float32)))
    good.append(write_png(folder / "thin.png", synthetic_pixels(1, 500)))
    good.append(write_png(folder / "sixteen-bit.png", synthetic_pixels(300, 300), bits=16))
    import cv2

    rgba = np.dstack([np.rint(synthetic_pixels(200, 200) * 255).astype(np.uint8)] * 3 + [np.full((200, 200), 128, np.uint8)])
    cv2.imwrite(str(folder / "rgba.png"), rgba)
    good.append(folder / "rgba.png")
    good.append(write_png(folder / "Thorax Ünïcødé 胸部 film.png", synthetic_pixels(256, 256)))
    good.append(_dicom(folder / "plain.dcm"))
    return bad, good
