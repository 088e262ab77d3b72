"""Window/level in the film's modality units: the drag, the file's presets, automatic and full
range, and the value under the cursor.

The film keeps its modality values (:class:`~cxrviewer.types.Grayscale`), so widening the window
brings back what the file's default window clipped. A right-drag (or Ctrl + left-drag) moves the
level by a fixed share of the film's value range per screen pixel and scales the width; the
presets the file holds (all its Window Center/Width pairs and VOI LUTs, PS3.3 C.11.2) are on the
number keys 1–9 and in the Levels menu, as Weasis puts them. Everything is a change of
:attr:`~cxrviewer.ui.state.viewer_model.Display.window`; the picture is drawn by the one renderer
(:func:`cxrviewer.render.overlay`), as ``cxrviewer export --window`` draws it.
"""

from __future__ import annotations

import cv2
from PySide6.QtCore import QObject

from ..io import grayscale
from ..render import resized_film
from ..types import Film, Voi
from .state.status_text import describe_finding, describe_value

#: Share of the film's value range the level moves per screen pixel dragged (400 px: the range).
LEVEL_PER_PIXEL = 1.0 / 400.0
#: Screen pixels dragged right to double the width.
PIXELS_PER_DOUBLING = 200.0
#: Presets on the number keys 1..MAX_PRESETS.
MAX_PRESETS = 9
#: While a drag lasts, films longer than this are drawn at this long side (a preview stretched
#: over the film), so each step repaints in a fraction of the time; the full picture follows at
#: the end of the drag.
PREVIEW_SIDE = 1280


class Levels(QObject):
    """Connects the film view's drag and hover to the model's window, and keeps the preset
    actions (``act_preset_1`` … of :mod:`cxrviewer.ui.actions`) named after the current film's."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.model = window.model
        self._start: Voi | None = None
        self._preview: tuple[Film, Film] | None = None  # (film, its smaller copy) while dragging
        view = window.view
        view.levelDragStarted.connect(self._started)
        view.levelDragged.connect(self._dragged)
        view.levelDragFinished.connect(self._finished)
        view.hovered.connect(self._hovered)
        self.model.events.film.connect(self.refresh)
        self.refresh()

    # ------------------------------------------------------------------ presets
    def presets(self) -> tuple[Voi, ...]:
        film = self.model.film
        return film.gray.presets[:MAX_PRESETS] if film is not None else ()

    def apply_preset(self, number: int) -> None:
        """The file's ``number``-th preset (1-based); nothing when the film has fewer."""
        presets = self.presets()
        if 1 <= number <= len(presets):
            self.model.set_window(presets[number - 1])

    def full_range(self) -> None:
        if self.model.film is not None:
            self.model.set_window(grayscale.full_range(self.model.film.gray))

    def automatic(self) -> None:
        if self.model.film is not None:
            self.model.set_window(grayscale.auto_window(self.model.film.gray))

    def refresh(self) -> None:
        """Name the preset actions after the current film's presets; hide the ones it lacks."""
        presets = self.presets()
        has_film = self.model.film is not None
        self.window.cursor_label.setText("")  # the readout belonged to the film shown before
        for i in range(1, MAX_PRESETS + 1):
            action = getattr(self.window, f"act_preset_{i}", None)
            if action is None:
                continue
            voi = presets[i - 1] if i <= len(presets) else None
            action.setVisible(voi is not None)
            action.setEnabled(voi is not None)
            if voi is not None:
                what = "VOI LUT" if voi.lut is not None else f"W {voi.width:g} L {voi.center:g}"
                action.setText(f"&{i}  {voi.name or 'preset'} ({what})")
        for name in ("full_range", "auto_window", "reset_wl"):
            action = getattr(self.window, f"act_{name}", None)
            if action is not None:
                action.setEnabled(has_film)

    # ------------------------------------------------------------------- drag
    def drawn_film(self, film: Film) -> Film:
        """The film the picture is drawn from: ``film``, or its preview while a drag lasts."""
        if self._preview is not None and self._preview[0] is film:
            return self._preview[1]
        return film

    def _started(self) -> None:
        film = self.model.film
        if film is None:
            self._start = None
            return
        long_side = max(film.height, film.width)
        if long_side > PREVIEW_SIDE * 1.25:
            f = PREVIEW_SIDE / long_side
            small = resized_film(film, max(1, round(film.width * f)), max(1, round(film.height * f)), cv2.INTER_AREA)
            self._preview = (film, small)
        start = self.model.window_or_default
        # a VOI LUT has no center and width: the drag starts from the full range
        self._start = grayscale.full_range(film.gray) if start is None or start.lut is not None else start

    def _dragged(self, dx: int, dy: int) -> None:
        film, start = self.model.film, self._start
        if film is None or start is None:
            return
        lo, hi = grayscale.value_range(film.gray)
        step = max(hi - lo, 1e-6) * LEVEL_PER_PIXEL
        # right = wider window, up = higher level (darker), as in most film viewers
        self.model.set_window((start.center - dy * step, start.width * 2.0 ** (dx / PIXELS_PER_DOUBLING)))

    def _finished(self) -> None:
        self._start = None
        if self._preview is not None:
            self._preview = None
            self.window.render()  # the full picture

    # ------------------------------------------------------------------ cursor
    def _hovered(self, x: int, y: int) -> None:
        """(x, y) is a pixel of the picture on screen; the film may be turned or mirrored."""
        film = self.model.film
        if film is None or x < 0:
            self.window.cursor_label.setText("")
            return
        fx, fy = self.model.display.orientation.to_film(x + 0.5, y + 0.5, film.height, film.width)
        text = describe_value(film, int(fx), int(fy))
        finding = describe_finding(film, self.model.prediction, self.model.shown_classes(), int(fx), int(fy))
        self.window.cursor_label.setText(f"{text} · {finding}" if text and finding else text)
