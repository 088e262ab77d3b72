"""Render resources/icons/cxrviewer.svg to the PNG sizes (and a Windows .ico) the app and the
installers use. Run from the repository root: ``python scripts/make_icon.py``."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)

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


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from PySide6.QtGui import QGuiApplication, QImageWriter

    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841 - fonts, image plugins
    svg = ICONS / "cxrviewer.svg"
    images = {size: render(svg, size) for size in SIZES}
    for size, img in images.items():
        out = ICONS / f"cxrviewer-{size}.png"
        img.save(str(out), "PNG")
        logger.info("wrote %s", out)
    images[256].save(str(ICONS / "cxrviewer.png"), "PNG")
    logger.info("wrote %s", ICONS / "cxrviewer.png")
    if b"ico" in [bytes(f) for f in QImageWriter.supportedImageFormats()]:
        images[256].save(str(ICONS / "cxrviewer.ico"), "ICO")
        logger.info("wrote %s", ICONS / "cxrviewer.ico")
    else:
        logger.warning("this Qt has no ICO writer; cxrviewer.ico not made")
    return 0


if __name__ == "__main__":
    sys.exit(main())
