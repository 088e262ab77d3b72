"""The plain model behind the window (no Qt): class policies, toggles, window/level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrviewer.types import Prediction
from cxrviewer.types import Film
from cxrviewer.ui.state.viewer_model import Display, FilmEntry, ViewerModel

pytestmark = pytest.mark.gui  # lives with the app; needs no Qt itself


def prediction():
    labels = ("A", "B", "C")
    return Prediction(labels, np.array([0.9, 0.2, 0.6], np.float32), np.ones((3, 2, 2), np.float32), (0.5, 0.5, 0.5), "v1")


def model_with_film():
    m = ViewerModel()
    m.set_paths([Path("a.png"), Path("b.png")])
    m.set_current(0)
    m.update_entry(0, prediction=prediction(), status="scored")
    return m


def test_policies_and_toggles():
    m = model_with_film()
    seen = []
    m.events.display.connect(lambda: seen.append(m.display.policy))
    assert m.shown_classes() == ("A", "C")  # positives, most probable first
    m.set_display(policy="all")
    assert m.shown_classes() == ("A", "B", "C")
    m.set_display(policy="none")
    assert m.shown_classes() == ()
    m.set_class("B", True)
    assert m.display.policy == "custom" and m.shown_classes() == ("B",)
    m.set_class("B", False)
    assert m.shown_classes() == ()
    assert seen == ["all", "none", "custom", "custom"]
    m.set_display(policy="none")  # no change, no event
    m.set_display(policy="none")
    assert seen[-1] == "none" and seen.count("none") == 2


def test_window_is_in_modality_units_clamped_and_resets():
    m = model_with_film()
    assert m.window_or_default is None  # no film read yet
    m.set_window((5.0, 1.0))
    assert m.display.window is None  # nothing to window
    film = Film(np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10))
    m.set_film(film)
    assert m.window_or_default is film.gray.default
    m.set_window((5.0, 0.0))  # values 0..1: the center stays within a range of them, the width above 1/1000
    w = m.display.window
    assert (w.center, w.width, w.function) == (2.0, 0.001, "LINEAR_EXACT")
    m.set_window(None)
    assert m.display.window is None


def test_new_model_drops_cached_predictions():
    m = model_with_film()
    m.update_entry(1, status="error", error="unreadable")
    m.set_classifier(object())
    assert m.entries[0].prediction is None and m.entries[0].status == "queued"
    assert m.entries[1].status == "error"  # a read error does not depend on the model


def test_display_validates():
    with pytest.raises(ValueError):
        Display(colormap="rainbow")
    with pytest.raises(ValueError):
        Display(policy="some")
    assert Display(alpha=3).alpha == 1.0


def test_step_stops_at_the_ends():
    m = model_with_film()
    m.step(-1)
    assert m.current == 0
    m.step(+1)
    m.step(+1)
    assert m.current == 1


def test_index_of_a_film_in_a_big_folder_is_a_lookup():
    """A folder run looks up every scored film: a scan of 10,000 paths per film stalled the UI."""
    import time

    paths = [Path(f"/films/{i:05d}.png") for i in range(10_000)]
    m = ViewerModel()
    m.set_paths(paths)
    t0 = time.perf_counter()
    assert [m.index_of(p) for p in paths] == list(range(10_000))
    assert time.perf_counter() - t0 < 0.5
    assert m.index_of(Path("/films/elsewhere.png")) == -1
    assert ViewerModel(entries=[FilmEntry(Path("a.png")), FilmEntry(Path("b.png"))]).index_of(Path("b.png")) == 1
