"""Orientation markers stay readable on a white film (a bright abdomen, a collimator edge)."""

from __future__ import annotations

import numpy as np

from cxrviewer.render import draw_markers
from cxrviewer.types import Orientation


class _Film:
    metadata = {"patient_orientation": ("R", "F"), "view_position": "AP", "laterality": ""}


def test_markers_on_white_have_a_dark_box():
    rgb = np.full((700, 700, 3), 255, np.uint8)
    draw_markers(rgb, _Film(), Orientation())
    h, w = rgb.shape[:2]
    bottom = rgb[h - 60 :, w // 2 - 40 : w // 2 + 40]  # the "F" marker at the middle of the bottom edge
    dark = bottom.max(axis=2) < 100
    ys, xs = np.nonzero(dark)
    box = bottom[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    # a filled dark box around the letter (its edges dark all along, not a thin halo) ...
    for edge in (box[0], box[-1], box[:, 0], box[:, -1]):
        assert (edge.max(axis=1) < 100).mean() > 0.9
    # ... with the letter drawn white inside it
    assert (box.min(axis=2) > 200).mean() > 0.05
