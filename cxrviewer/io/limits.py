"""The decompression-bomb guard: how many pixels one film may have.

A 1 KB PNG or DICOM header can declare a 100 000 × 100 000 image; decoding it would ask for tens
of gigabytes. Every reader checks the dimensions it finds in the header against
:func:`max_pixels` *before* it decodes anything.

The default, :data:`MAX_PIXELS` = 50 megapixels, is about five times the largest radiograph a
detector produces (43 × 43 cm at 0.1 mm is 4300 × 4300 = 18.5 MP; mammography detectors reach
~40 MP). Set the environment variable ``CXRVIEWER_MAX_PIXELS`` to raise or lower it; the value is
read at every call, so it can be changed while the program runs.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..errors import UnreadableImageError

logger = logging.getLogger(__name__)

MAX_PIXELS = 50_000_000
"""Default largest number of pixels (rows × columns of one frame) a film may have."""

ENV_VAR = "CXRVIEWER_MAX_PIXELS"


def max_pixels() -> int:
    """The pixel limit in force: ``$CXRVIEWER_MAX_PIXELS`` when it is a positive integer, else
    :data:`MAX_PIXELS` (an unusable value is logged and ignored)."""
    raw = os.environ.get(ENV_VAR, "").strip().replace("_", "")
    if not raw:
        return MAX_PIXELS
    try:
        value = int(float(raw)) if ("e" in raw.lower() or "." in raw) else int(raw)
    except (ValueError, OverflowError):
        value = 0
    if value <= 0:
        logger.warning("ignoring %s=%r: it must be a positive whole number of pixels", ENV_VAR, raw)
        return MAX_PIXELS
    return value


def check_pixels(width: int, height: int, path: Path, what: str = "image") -> None:
    """Refuse a ``width`` × ``height`` image larger than :func:`max_pixels`, before decoding.

    ``what`` names the thing being checked in the message (``"PNG image"``, ``"DICOM frame"``).
    """
    limit = max_pixels()
    if width * height > limit:
        raise UnreadableImageError(
            f"{path.name}: the {what} is {width} × {height} pixels "
            f"({width * height / 1e6:.1f} megapixels), more than the {limit / 1e6:g} megapixel limit; "
            f"it was not decoded (this guards against decompression bombs). If the file is genuine, "
            f"raise the limit with the environment variable {ENV_VAR}."
        )
