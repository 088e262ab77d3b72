"""The strip names the top finding above threshold (not a sub-threshold maximum) and flags
unusual films (#14)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from cxrviewer.types import Prediction  # noqa: E402
from cxrviewer.ui.film_strip import entry_text  # noqa: E402
from cxrviewer.ui.state.viewer_model import SCORED, FilmEntry  # noqa: E402

pytestmark = pytest.mark.gui


def entry(probs, ood=False) -> FilmEntry:
    labels = ("Mass", "Pleural_Thickening", "Nodule")
    pred = Prediction(labels, np.array(probs, np.float32), np.zeros((3, 2, 2), np.float32), (0.5, 0.3, 0.9), "v",
                      ood_flag=ood)
    return FilmEntry(Path("f.png"), status=SCORED, prediction=pred)


def test_the_top_positive_finding_or_none_above_threshold():
    assert entry_text(entry([0.2, 0.35, 0.8])) == "f.png\nscored · Pleural Thickening 0.35"
    assert entry_text(entry([0.45, 0.1, 0.85])) == "f.png\nscored · no finding above threshold"
    assert entry_text(entry([0.45, 0.1, 0.85], ood=True)) == "f.png\nscored · no finding above threshold · unusual film"
