"""Regions in DICOM image coordinates, for SR SCOORDs and Presentation State graphics."""

from __future__ import annotations

import numpy as np

from ..heatmap import Region


def outline_points(region: Region) -> np.ndarray | None:
    """The region's outline as a closed polyline in DICOM image coordinates, or None if degenerate.

    Region points are pixel indices; DICOM puts the top-left corner of the top-left pixel at
    0.0\\0.0, so a pixel's centre is at +0.5 (PS3.3 C.18.6.1.2, C.10.5.1.2).
    """
    pts = np.asarray(region.contour, dtype=np.float64).reshape(-1, 2) + 0.5
    if len(np.unique(pts, axis=0)) < 3:
        return None
    return np.vstack([pts, pts[:1]])  # closed: the last point repeats the first


def box_points(region: Region) -> np.ndarray:
    """The region's box (the pixels it covers, edge to edge) as a closed polyline."""
    x, y, w, h = (float(v) for v in region.box)
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]], dtype=np.float64)
