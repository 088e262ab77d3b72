"""View ▸ Compare: a second film (e.g. a prior) beside the current one.

The second pane is another :class:`~cxrviewer.ui.film_view.FilmView` in the splitter, as wide and
tall as the main view, both films against the top of their panes; it is drawn by its own
:class:`~cxrviewer.ui.render_scheduler.RenderScheduler` with the one renderer
(:func:`cxrviewer.render.picture`). Its findings panel sits under the main film's in the
right-hand column (each named by its film): the second film's
findings and heatmap switches live in a :class:`~cxrviewer.ui.state.viewer_model.ViewerModel` of its
own (:attr:`Compare.pane_model`, one film), so ticking a finding in one pane leaves the other
alone. The pane starts with the main view's choice of heatmaps; opacity, colormap, contour
mode, invert and rotation follow the main view. With View ▸ Link compared views on, zoom and pan
follow the main view, and the window/level too (the same VOI in modality units: meaningful for
films of the same kind); off, each pane keeps its own and the second film shows its own stored
window. The second film is read (and scored, when the strip has not scored it yet) off the UI
thread.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QThreadPool, Signal
from PySide6.QtWidgets import QSplitter

from ..types import Film, Prediction
from .film_view import FilmView
from .findings_panel import FindingsPanel
from .render_scheduler import RenderScheduler
from .state.viewer_model import ERROR, NOT_APPLICABLE, READING, SCORED, ViewerModel
from .workers import FilmJob, Rendered, RenderRequest, Worker, WorkerError, WorkerHandle, read_and_score

logger = logging.getLogger(__name__)


class Compare(QObject):
    shown = Signal()  # the second pane's picture is on screen

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.model = window.model
        #: the second film alone, with its own choice of heatmaps (its findings panel's model)
        self.pane_model = ViewerModel(display=self.model.display)
        # The second film gets a pane as tall as the main view's (two equal panes, the films at
        # the same scale, their tops aligned); its findings go under the main film's in the
        # right-hand column, each list named by its film.
        self.pane = QSplitter(Qt.Orientation.Vertical, window.splitter)
        self.pane.setObjectName("comparePane")
        self.view = FilmView(self.pane)
        self.view.setObjectName("compareView")
        self.pane.addWidget(self.view)
        self.pane.setCollapsible(0, False)
        window.splitter.insertWidget(2, self.pane)
        window.splitter.setStretchFactor(2, 1)
        self.pane.setVisible(False)
        self.side = QSplitter(Qt.Orientation.Vertical, window.splitter)
        self.side.setObjectName("findingsColumn")
        window.splitter.insertWidget(window.splitter.indexOf(window.panel), self.side)
        self.side.addWidget(window.panel)
        self.panel = FindingsPanel(self.pane_model, self.side, compact=True)
        self.panel.setObjectName("compareFindings")
        self.panel.set_named(True)
        self.side.addWidget(self.panel)
        self.side.setCollapsible(0, False)
        self.panel.setVisible(False)
        self.renderer = RenderScheduler(self)
        self.renderer.rendered.connect(self._rendered)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.index = -1
        self.film: Film | None = None
        self.prediction: Prediction | None = None
        self.linked = True
        self._path: Path | None = None
        main = window.view
        main.zoomChanged.connect(lambda _z: self._follow())
        main.horizontalScrollBar().valueChanged.connect(lambda _v: self._follow())
        main.verticalScrollBar().valueChanged.connect(lambda _v: self._follow())
        self.model.events.display.connect(self._main_display_changed)
        self.model.events.entries.connect(self._entries_changed)
        self.model.events.classifier.connect(self._classifier_changed)
        self.pane_model.events.display.connect(self.render)

    @property
    def active(self) -> bool:
        return self.view.isVisible()

    def toggle(self, on: bool) -> None:
        """Show the second pane with the film after the current one (before it, for the last)."""
        if not on:
            self.pane.setVisible(False)
            self.panel.setVisible(False)
            self._align(False)
            self.window.panel.set_named(False)
            self.window.panel.set_brief(False)
            return
        n = len(self.model.entries)
        if n < 2 or self.model.current < 0:
            self.window.statusBar().showMessage("Open two films or more to compare them.", 6000)
            self.window.act_compare.setChecked(False)
            return
        # the pane starts with the main view's heatmaps, then has its own
        d = self.model.display
        self.pane_model.set_display(policy=d.policy, custom=d.custom)
        self.pane.setVisible(True)
        self.panel.setVisible(True)
        self._align(True)
        self.window.panel.set_named(True)
        self.window.panel.set_brief(True)  # two lists share the column: no notes
        sizes = self.window.splitter.sizes()  # the two films share the space the main view had
        both = sizes[1] + sizes[2]
        sizes[1], sizes[2] = both - both // 2, both // 2
        self.window.splitter.setSizes(sizes)
        tall = sum(self.side.sizes()) or self.window.splitter.height()
        self.side.setSizes([tall * 11 // 20, tall - tall * 11 // 20])  # the main film's findings (and the controls), then the second's
        cur = self.model.current
        # the next film the worklist's filter lists (the previous one for the last); any film
        # when the filter lists no other
        nearest = self._listed_from(cur, +1)
        self.show_entry(nearest if nearest is not None else (cur + 1 if cur + 1 < n else cur - 1))

    def _align(self, on: bool) -> None:
        """Both films against the top of their panes while comparing (centred otherwise)."""
        top = Qt.AlignmentFlag.AlignHCenter | (Qt.AlignmentFlag.AlignTop if on else Qt.AlignmentFlag.AlignVCenter)
        for view in (self.window.view, self.view):
            view.setAlignment(top)

    def _listed_from(self, start: int, delta: int) -> int | None:
        """The first film after ``start`` in direction ``delta`` (wrapping) that the worklist's
        filter lists and the main view does not show; None when there is none."""
        n = len(self.model.entries)
        listed = set(self.window.strip.visible_rows())
        i = start
        for _ in range(n):
            i = (i + delta) % n
            if i != self.model.current and i in listed:
                return i
        return None

    def step(self, delta: int = 1) -> None:
        """Compare with the next (or previous) film the worklist's filter lists, skipping the
        one in the main view; nothing changes when there is no other."""
        n = len(self.model.entries)
        if not self.active or n < 2:
            return
        i = self._listed_from(self.index, delta)
        if i is not None:
            self.show_entry(i)

    def set_linked(self, on: bool) -> None:
        self.linked = on
        self._follow()
        self.render()

    def show_entry(self, index: int) -> None:
        entry = self.model.entries[index]
        self.index = index
        self.film, self.prediction, self._path = None, entry.prediction, entry.path
        pm = self.pane_model
        pm.classifier = self.model.classifier
        pm.set_paths([entry.path])
        pm.set_current(0)
        pm.update_entry(0, status=SCORED if entry.prediction is not None else READING, prediction=entry.prediction,
                        outside_use=entry.outside_use)
        self.view.set_image(None)
        self.view.set_placeholder(f"Reading {entry.name}…")
        clf = self.model.classifier if entry.prediction is None else None
        worker = Worker(read_and_score, entry.path, clf)
        WorkerHandle(self, worker, result=self._read, error=self._failed)
        self.pool.start(worker)

    def _read(self, job: FilmJob) -> None:
        if job.path != self._path:
            return  # another film was asked for meanwhile
        self.film = job.film
        if self.prediction is None:
            self.prediction = job.prediction
            refused = job.prediction is None and job.outside_use is not None  # the model does not read it
            self.pane_model.update_entry(0, status=SCORED if job.prediction is not None else
                                         NOT_APPLICABLE if refused else READING,
                                         prediction=job.prediction, outside_use=job.outside_use)
        self.pane_model.set_film(job.film)
        self.render()

    def _failed(self, err: WorkerError) -> None:
        self.view.set_placeholder(err.message)
        if self.pane_model.entries:
            self.pane_model.update_entry(0, status=ERROR, error=err.message)

    def _main_display_changed(self) -> None:
        """Opacity, colormap, mode, invert and rotation follow the main view; the window is
        taken when rendering (linked or not)."""
        d = self.model.display
        self.pane_model.set_display(alpha=d.alpha, colormap=d.colormap, mode=d.mode, invert=d.invert,
                                    orientation=d.orientation, markers=d.markers)
        self.render()

    def _classifier_changed(self) -> None:
        """Another model: the second film is scored again with it (its findings panel follows)."""
        self.pane_model.set_classifier(self.model.classifier)
        if self.active and 0 <= self.index < len(self.model.entries):
            self.show_entry(self.index)

    def render(self) -> None:
        if not self.active or self.film is None:
            return
        options = self.model.render_options()
        pred = self.prediction
        options = dataclasses.replace(
            options,
            classes=self.pane_model.shown_classes(pred) if pred is not None else (),
            window=options.window if self.linked else None,
            measurements=self.model.measurements.get(self._path, ()) if self._path is not None else (),
            calibration=self.model.manual_calibration(self._path) if self._path is not None else None,
        )
        if self.renderer.request(RenderRequest(self.film, pred, options)):
            self.shown.emit()

    def _rendered(self, out: Rendered) -> None:
        self.view.set_image(out.rgb)
        self._follow()
        self.shown.emit()

    def _follow(self) -> None:
        """Zoom and pan as the main view (when linked)."""
        if not self.linked or not self.active or not self.view.has_image():
            return
        main = self.window.view
        self.view.setTransform(main.transform())
        self.view.horizontalScrollBar().setValue(main.horizontalScrollBar().value())
        self.view.verticalScrollBar().setValue(main.verticalScrollBar().value())

    def _entries_changed(self) -> None:
        if self._path is not None:
            i = self.model.index_of(self._path)
            self.index = i
            if i < 0:
                self.pane.setVisible(False)
                self.panel.setVisible(False)
                self._align(False)
                self.window.panel.set_named(False)
                self.window.panel.set_brief(False)

    def shutdown(self) -> None:
        self.renderer.shutdown()
        self.pool.waitForDone(5000)
