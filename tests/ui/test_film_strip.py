"""The film strip over a big folder: icons only for the rows shown, changes told in batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")

from cxrviewer.ui.film_strip import ICON_CACHE, FilmStrip  # noqa: E402
from cxrviewer.ui.state.viewer_model import SCORED, ViewerModel  # noqa: E402

pytestmark = pytest.mark.gui


def test_a_strip_of_10000_films_draws_only_what_is_shown(qtbot):
    model = ViewerModel()
    model.set_paths([Path(f"/films/{i:05d}.png") for i in range(10_000)])
    strip = FilmStrip(model)
    qtbot.addWidget(strip)
    strip.resize(240, 800)
    strip.show()
    qtbot.waitExposed(strip)
    model.set_current(0)
    thumb = np.full((96, 80), 128, np.uint8)
    for i in range(10_000):  # a folder run reports every film
        model.update_entry(i, status=SCORED, thumbnail=thumb)
    qtbot.waitUntil(lambda: not strip.films._dirty, timeout=5000)
    strip.scrollToBottom()
    qtbot.wait(50)
    assert strip.count() == 10_000
    assert len(strip.films._icons) <= 40  # a screenful or two, never one per film
    assert strip.status_of(9_999) == "scored" and strip.text_of(9_999).startswith("09999.png")
    strip.setCurrentRow(5_000)
    assert model.current == 5_000
    assert ICON_CACHE < 10_000
