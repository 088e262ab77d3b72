"""The state behind the window, as plain Python: what is open, what is shown, how.

``ViewerModel`` holds the opened films (:class:`FilmEntry`: path, status, the cached
:class:`~cxrviewer.types.Prediction`, a thumbnail), the current film, the loaded classifier and
the display options (:class:`Display`). It imports no Qt: widgets call its setters and listen to
its :class:`Event` s, as napari's Qt layer listens to its components. Everything here runs on
the UI thread; the :class:`~cxrviewer.ui.session.FilmSession` writes what its jobs learn.

A prediction is computed once per film and kept: toggling a class, the opacity, the colormap,
the mode or the window/level only re-renders (:func:`cxrviewer.render.overlay`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...classes import CUSTOM, RULES, name_key
from ...heatmap import COLORMAPS, DEFAULT_COLORMAP
from ...io import grayscale
from ...render import MODES, RenderOptions
from ...types import Calibration, Film, Measurement, Orientation, Prediction, Voi
from .studies import StudyKey

logger = logging.getLogger(__name__)

QUEUED, READING, SCORED, ERROR = "queued", "reading", "scored", "error"
#: the model does not read the film (its DICOM header: :mod:`cxrviewer.applicability`): not scored
NOT_APPLICABLE = "not_applicable"
STATUSES = (QUEUED, READING, SCORED, ERROR, NOT_APPLICABLE)

#: Which classes' heatmaps a newly shown film gets: a rule, or the user's own pick ("custom").
POLICIES = (*RULES, CUSTOM)


class Event:
    """A list of callbacks: ``connect(cb)``, ``disconnect(cb)``, ``emit(*args)``."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> None:
        if callback not in self._callbacks:
            self._callbacks.append(callback)

    def disconnect(self, callback: Callable[..., Any]) -> None:
        if callback in self._callbacks:
            self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class Events:
    """The model's events.

    - ``entries()``: the list of films was replaced;
    - ``entry(index)``: one film's status, prediction or thumbnail changed;
    - ``current(index)``: another film was selected;
    - ``film()``: the current film's pixels or prediction arrived (or went);
    - ``display()``: display options changed;
    - ``classifier()``: another model was loaded;
    - ``measurements()``: the current film's measurements changed;
    - ``studies()``: films learnt which study they belong to (:meth:`ViewerModel.set_studies`).
    """

    def __init__(self) -> None:
        for name in ("entries", "entry", "current", "film", "display", "classifier", "measurements", "studies"):
            setattr(self, name, Event(name))


@dataclass
class FilmEntry:
    """One opened film: where it is, how far it got, and the model's answer once there."""

    path: Path
    status: str = QUEUED
    prediction: Prediction | None = None
    error: str | None = None
    seconds: float | None = None  # time to score it (see ``batch``)
    batch: bool = False  # scored in a folder run: ``seconds`` is read + this film's share of a batch
    thumbnail: np.ndarray | None = None  # uint8 H×W, a small grey picture of the film
    shape: tuple[int, int] | None = None
    #: why the film lies outside the model's use (its header): not scored (``NOT_APPLICABLE``),
    #: or scored anyway ("Score anyway": ``SCORED`` with a prediction)
    outside_use: str | None = None
    #: the study the film belongs to, once its header is read (None: not known, or none: PNG)
    study: StudyKey | None = None
    view_position: str = ""  # PS3.3 C.8.11.5: PA, AP, LL, ...

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def top_finding(self) -> tuple[str, float] | None:
        """The most probable finding: ``(label, probability)``."""
        if self.prediction is None:
            return None
        label, p, _t = self.prediction.ranked()[0]
        return label, p


@dataclass(frozen=True)
class Display:
    """How the current film is drawn. ``window`` is the VOI in the film's modality units
    (:class:`~cxrviewer.types.Voi`: a preset, full range, automatic, or dragged), ``None`` for
    the film's default VOI (what the model saw)."""

    policy: str = "positives"
    custom: tuple[str, ...] = ()
    alpha: float = 0.4
    colormap: str = DEFAULT_COLORMAP
    mode: str = "heatmap"
    window: Voi | None = None
    invert: bool = False
    orientation: Orientation = Orientation()
    markers: bool = True

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"unknown class policy {self.policy!r}; choose one of {POLICIES}")
        if self.colormap not in COLORMAPS:
            raise ValueError(f"unknown colormap {self.colormap!r}; choose one of {tuple(COLORMAPS)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {MODES}")
        object.__setattr__(self, "alpha", float(min(1.0, max(0.0, self.alpha))))
        object.__setattr__(self, "custom", tuple(self.custom))


@dataclass
class ViewerModel:
    entries: list[FilmEntry] = field(default_factory=list)
    current: int = -1
    film: Film | None = None  # the current film's pixels, once read
    classifier: Any = None  # cxrviewer.model.Classifier
    display: Display = field(default_factory=Display)
    events: Events = field(default_factory=Events, repr=False)
    _index: dict[Path, int] = field(default_factory=dict, repr=False)
    #: each film's distances and angles, kept while the app runs (by the film's path)
    measurements: dict[Path, tuple[Measurement, ...]] = field(default_factory=dict, repr=False)
    #: manual calibrations (a line of known length), kept while the app runs (by the film's path);
    #: they override the file's own
    calibrations: dict[Path, Calibration] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._reindex()

    def _reindex(self) -> None:
        # one lookup per scored film: a scan of 10,000 paths each time stalls the UI thread
        self._index = {}
        for i, entry in enumerate(self.entries):
            self._index.setdefault(entry.path, i)

    # ----------------------------------------------------------------- films
    def set_paths(self, paths: Sequence[Path]) -> None:
        self.entries = [FilmEntry(Path(p)) for p in paths]
        self._reindex()
        self.current = -1
        self.film = None
        self.events.entries.emit()
        self.events.film.emit()

    def add_paths(self, paths: Sequence[Path]) -> list[Path]:
        """Append the films of ``paths`` not in the list yet (File ▸ Open adds to the worklist);
        the current film stays. Returns those added."""
        added = []
        for p in map(Path, paths):
            if self.index_of(p) < 0 and p not in added:
                added.append(p)
        if added:
            self.entries.extend(FilmEntry(p) for p in added)
            self._reindex()
            self.events.entries.emit()
        return added

    def remove_path(self, path: Path) -> None:
        """Take one film out of the list (one opened by name that could not be read)."""
        i = self.index_of(path)
        if i < 0:
            return
        current = self.entry.path if self.entry is not None and self.current != i else None
        del self.entries[i]
        self._reindex()
        self.current = -1
        self.film = None
        self.events.entries.emit()
        if current is not None:
            self.set_current(self.index_of(current))
        else:
            self.events.film.emit()

    def index_of(self, path: Path) -> int:
        i = self._index.get(Path(path), -1)
        return i if 0 <= i < len(self.entries) and self.entries[i].path == Path(path) else -1

    @property
    def entry(self) -> FilmEntry | None:
        return self.entries[self.current] if 0 <= self.current < len(self.entries) else None

    @property
    def prediction(self) -> Prediction | None:
        entry = self.entry
        return entry.prediction if entry is not None else None

    def set_current(self, index: int) -> None:
        if not 0 <= index < len(self.entries) or index == self.current:
            return
        self.current = index
        self.film = None
        self.events.current.emit(index)
        self.events.film.emit()

    def sort_by_suspicion(self) -> None:
        """A worklist: films with findings above threshold first (highest such probability, then
        most findings), then scored films without findings, films not scored yet, films the model does
        not read, and unreadable films last; the current film stays selected. Stable: ties keep their order."""
        current = self.entry

        def key(entry: FilmEntry) -> tuple[int, float, int]:
            if entry.status == ERROR:
                return (3, 0.0, 0)
            if entry.status == NOT_APPLICABLE:
                return (2, 0.0, 1)
            pred = entry.prediction
            if entry.status != SCORED or pred is None:
                return (2, 0.0, 0)
            if not pred.positives:
                return (1, -float(pred.probabilities.max()), 0)
            return (0, -pred.probability(pred.positives[0]), -len(pred.positives))

        self.entries = sorted(self.entries, key=key)
        self._reindex()
        if current is not None:
            self.current = next(i for i, e in enumerate(self.entries) if e is current)
        self.events.entries.emit()

    def step(self, delta: int) -> None:
        """Select the next (``+1``) or previous (``-1``) film, stopping at the ends."""
        if self.entries:
            self.set_current(min(len(self.entries) - 1, max(0, self.current + delta)))

    def set_studies(self, studies: Mapping[Path, tuple[StudyKey | None, str]]) -> None:
        """Films' studies and View Positions, by path, as their headers are read; emits
        ``studies`` once if any film's changed."""
        changed = False
        for path, (study, view) in studies.items():
            i = self.index_of(path)
            if i < 0:
                continue
            entry = self.entries[i]
            if (entry.study, entry.view_position) != (study, view):
                entry.study, entry.view_position = study, view
                changed = True
        if changed:
            self.events.studies.emit()

    def update_entry(self, index: int, **changes: Any) -> None:
        entry = self.entries[index]
        for key, value in changes.items():
            setattr(entry, key, value)
        self.events.entry.emit(index)
        if index == self.current and "prediction" in changes:
            self.events.film.emit()

    def set_film(self, film: Film | None) -> None:
        """The current film's pixels have been read."""
        self.film = film
        self.events.film.emit()

    def set_classifier(self, classifier: Any) -> None:
        """A new model: every cached prediction belongs to the old one and is dropped."""
        self.classifier = classifier
        for entry in self.entries:
            if entry.status in (SCORED, READING, NOT_APPLICABLE) or entry.prediction is not None:
                # another model may read what this one does not (its card: cxr.applicable)
                entry.prediction = None
                entry.status = QUEUED
                entry.seconds = None
                entry.outside_use = None
        self.events.classifier.emit()
        self.events.entries.emit()
        self.events.film.emit()

    # --------------------------------------------------------------- display
    def set_display(self, **changes: Any) -> None:
        new = replace(self.display, **changes)
        if new != self.display:
            self.display = new
            self.events.display.emit()

    def shown_classes(self, prediction: Prediction | None = None) -> tuple[str, ...]:
        """The classes whose heatmaps are on for ``prediction`` (the current one by default)."""
        pred = self.prediction if prediction is None else prediction
        if pred is None:
            return ()
        policy = self.display.policy
        if policy == "positives":
            return pred.positives
        if policy == "all":
            return pred.labels
        if policy == "none":
            return ()
        # the session checked the names against this model when it was loaded (labels or display names)
        wanted = {name_key(name) for name in self.display.custom}
        return tuple(label for label in pred.labels if name_key(label) in wanted)

    def set_class(self, label: str, on: bool) -> None:
        """Switch one class's heatmap on or off: the pick becomes the user's own ("custom")."""
        shown = list(self.shown_classes())
        if on and label not in shown:
            shown.append(label)
        elif not on and label in shown:
            shown.remove(label)
        self.set_display(policy="custom", custom=tuple(shown))

    def turn(self, quarter_turns: int = 0, flip: bool = False, vertical: bool = False) -> None:
        """Turn the picture on screen clockwise by ``quarter_turns``, or mirror it (display only)."""
        o = self.display.orientation
        o = o.flipped(vertical) if flip else o.rotated(quarter_turns)
        self.set_display(orientation=o)

    def set_window(self, window: Voi | tuple[float, float] | None) -> None:
        """Show the current film under ``window``: a :class:`~cxrviewer.types.Voi`, (center,
        width) in modality units (kept within reach of the film's values: the center at most one
        value range beyond them, the width between 1/1000 and 4 value ranges), or ``None`` for
        the film's default VOI."""
        if isinstance(window, tuple):
            if self.film is None:
                return
            gray = self.film.gray
            lo, hi = grayscale.value_range(gray)
            span = max(hi - lo, 1e-6)
            center = min(hi + span, max(lo - span, float(window[0])))
            width = min(4.0 * span, max(span / 1000.0, float(window[1])))
            window = grayscale.user_window(gray, center, width, _drag_function(self.window_or_default))
        self.set_display(window=window)

    @property
    def window_or_default(self) -> Voi | None:
        """The VOI the current film is drawn with (``None`` when no film is shown)."""
        if self.display.window is not None:
            return self.display.window
        return self.film.gray.default if self.film is not None else None

    def render_options(self) -> RenderOptions:
        d = self.display
        return RenderOptions(
            classes=self.shown_classes(), alpha=d.alpha, colormap=d.colormap, mode=d.mode,
            window=d.window, invert=d.invert, orientation=d.orientation, markers=d.markers,
            measurements=self.current_measurements(), calibration=self.manual_calibration(),
        )

    # ---------------------------------------------------------- measurements
    def current_measurements(self) -> tuple[Measurement, ...]:
        entry = self.entry
        return self.measurements.get(entry.path, ()) if entry is not None else ()

    def add_measurement(self, measurement: Measurement) -> None:
        entry = self.entry
        if entry is not None:
            self.measurements[entry.path] = (*self.current_measurements(), measurement)
            self.events.measurements.emit()

    def remove_measurement(self, index: int) -> None:
        current = self.current_measurements()
        if 0 <= index < len(current) and self.entry is not None:
            self.measurements[self.entry.path] = current[:index] + current[index + 1 :]
            self.events.measurements.emit()

    def replace_measurement(self, index: int, measurement: Measurement) -> None:
        """Put ``measurement`` in place of the current film's ``index`` th (a point dragged)."""
        current = self.current_measurements()
        if 0 <= index < len(current) and self.entry is not None:
            self.measurements[self.entry.path] = (*current[:index], measurement, *current[index + 1 :])
            self.events.measurements.emit()

    # ----------------------------------------------------------- calibration
    def manual_calibration(self, path: Path | None = None) -> Calibration | None:
        """The manual calibration of the film at ``path`` (default: the current film), if any."""
        if path is None:
            entry = self.entry
            path = entry.path if entry is not None else None
        return self.calibrations.get(path) if path is not None else None

    def calibration(self) -> Calibration | None:
        """What the current film's lengths are measured in: its manual calibration, else the file's."""
        manual = self.manual_calibration()
        if manual is not None:
            return manual
        return self.film.calibration if self.film is not None else None

    def set_calibration(self, calibration: Calibration | None) -> None:
        """Calibrate the current film by hand (``None``: back to the file's own); every
        measurement on it is relabelled."""
        entry = self.entry
        if entry is None:
            return
        if calibration is None:
            self.calibrations.pop(entry.path, None)
        else:
            self.calibrations[entry.path] = calibration
        self.events.measurements.emit()

    # ---------------------------------------------------------------- counts
    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for entry in self.entries:
            out[entry.status] += 1
        return out


def _drag_function(voi: Voi | None) -> str | None:
    """A dragged window keeps the VOI LUT Function of the window it started from (a VOI LUT has
    none: the film's own function is used)."""
    return voi.function if voi is not None and voi.lut is None else None
