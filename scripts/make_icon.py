"""Render resources/icons/cxrviewer.svg to the PNG sizes the app and the Linux menu use, and pack
them into a Windows .ico and a macOS .icns (both hold PNGs; stdlib only, so this runs anywhere).
Run from the repository root: ``python scripts/make_icon.py``."""

from __future__ import annotations

import logging
import os
import struct
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)
ICO_SIZES = (16, 24, 32, 48, 64, 128, 256)  # 256 is the largest an .ico entry can declare
# .icns entry types that hold PNG data, by pixel size (Apple's iconutil writes the same set)
ICNS_TYPES = ((b"icp4", 16), (b"icp5", 32), (b"icp6", 64), (b"ic07", 128), (b"ic08", 256), (b"ic09", 512),
              (b"ic10", 1024), (b"ic11", 32), (b"ic12", 64), (b"ic13", 256), (b"ic14", 512))

logger = logging.getLogger("make_icon")


def render(svg: Path, size: int):
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"{svg} is not a valid SVG")
    img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    img.fill(Qt.GlobalColor.transparent)
    p = QPainter(img)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(p)
    p.end()
    return img


def png_bytes(img) -> bytes:
    from PySide6.QtCore import QBuffer, QByteArray, QIODevice

    data = QByteArray()
    buf = QBuffer(data)
    buf.open(QIODevice.OpenModeFlag.WriteOnly)
    if not img.save(buf, "PNG"):
        raise SystemExit("could not encode a PNG")
    return bytes(data.data())


def pack_ico(pngs: dict[int, bytes]) -> bytes:
    """ICONDIR, one ICONDIRENTRY a size, then the PNGs (PNG entries: Windows Vista and later)."""
    sizes = sorted(pngs)
    offset = 6 + 16 * len(sizes)
    head, body = struct.pack("<HHH", 0, 1, len(sizes)), b""
    for size in sizes:
        data = pngs[size]
        side = 0 if size >= 256 else size  # 0 means 256
        head += struct.pack("<BBBBHHII", side, side, 0, 0, 1, 32, len(data), offset + len(body))
        body += data
    return head + body


def pack_icns(pngs: dict[int, bytes]) -> bytes:
    """'icns', total length, then (type, length, PNG) entries; all big-endian."""
    body = b"".join(kind + struct.pack(">I", 8 + len(pngs[size])) + pngs[size] for kind, size in ICNS_TYPES)
    return b"icns" + struct.pack(">I", 8 + len(body)) + body


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from PySide6.QtGui import QGuiApplication

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - fonts, image plugins
    svg = ICONS / "cxrviewer.svg"
    pngs = {size: png_bytes(render(svg, size)) for size in (*SIZES, 1024)}
    for size in SIZES:
        out = ICONS / f"cxrviewer-{size}.png"
        out.write_bytes(pngs[size])
        logger.info("wrote %s", out)
    (ICONS / "cxrviewer.png").write_bytes(pngs[256])
    logger.info("wrote %s", ICONS / "cxrviewer.png")
    (ICONS / "cxrviewer.ico").write_bytes(pack_ico({size: pngs[size] for size in ICO_SIZES}))
    logger.info("wrote %s (%s px)", ICONS / "cxrviewer.ico", ", ".join(map(str, ICO_SIZES)))
    (ICONS / "cxrviewer.icns").write_bytes(pack_icns(pngs))
    logger.info("wrote %s (16 to 1024 px)", ICONS / "cxrviewer.icns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
