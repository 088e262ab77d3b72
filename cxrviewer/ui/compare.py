"""View ▸ Compare: a second film (e.g. a prior) beside the current one.

The second pane is another :class:`~cxrviewer.ui.film_view.FilmView` in the splitter, drawn by
its own :class:`~cxrviewer.ui.render_scheduler.RenderScheduler` with the one renderer
(:func:`cxrviewer.render.picture`): its own film, its own findings and heatmaps (under the same
class policy, opacity and colormap). With View ▸ Link compared views on, zoom and pan follow the
main view, and the window/level too (the same VOI in modality units: meaningful for films of the
same kind); off, each pane keeps its own and the second film shows its own stored window.
The second film is read (and scored, when the strip has not scored it yet) off the UI thread.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from PySide6.QtCore import QObject, QThreadPool, Signal

from ..types import Film, Prediction
from .film_view import FilmView
from .render_scheduler import RenderScheduler
from .workers import FilmJob, Rendered, RenderRequest, Worker, WorkerError, WorkerHandle, read_and_score

logger = logging.getLogger(__name__)


class Compare(QObject):
    shown = Signal()  # the second pane's picture is on screen

    def __init__(self, window) -> None:
        super().__init__(window)
        self.window = window
        self.model = window.model
        self.view = FilmView(window.splitter)
        self.view.setObjectName("compareView")
        window.splitter.insertWidget(2, self.view)
        window.splitter.setStretchFactor(2, 1)
        self.view.setVisible(False)
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
        self.model.events.display.connect(self.render)
        self.model.events.entries.connect(self._entries_changed)

    @property
    def active(self) -> bool:
        return self.view.isVisible()

    def toggle(self, on: bool) -> None:
        """Show the second pane with the film after the current one (before it, for the last)."""
        if not on:
            self.view.setVisible(False)
            return
        n = len(self.model.entries)
        if n < 2 or self.model.current < 0:
            self.window.statusBar().showMessage("Open two films or more to compare them.", 6000)
            self.window.act_compare.setChecked(False)
            return
        self.view.setVisible(True)
        sizes = self.window.splitter.sizes()  # the two films share the space the main view had
        both = sizes[1] + sizes[2]
        sizes[1], sizes[2] = both - both // 2, both // 2
        self.window.splitter.setSizes(sizes)
        cur = self.model.current
        self.show_entry(cur + 1 if cur + 1 < n else cur - 1)

    def step(self, delta: int = 1) -> None:
        """Compare with the next (or previous) film, skipping the one in the main view."""
        n = len(self.model.entries)
        if not self.active or n < 2:
            return
        i = self.index
        for _ in range(n):
            i = (i + delta) % n
            if i != self.model.current:
                break
        self.show_entry(i)

    def set_linked(self, on: bool) -> None:
        self.linked = on
        self._follow()
        self.render()

    def show_entry(self, index: int) -> None:
        entry = self.model.entries[index]
        self.index = index
        self.film, self.prediction, self._path = None, entry.prediction, entry.path
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
        self.render()

    def _failed(self, err: WorkerError) -> None:
        self.view.set_placeholder(err.message)

    def render(self) -> None:
        if not self.active or self.film is None:
            return
        options = self.model.render_options()
        pred = self.prediction
        options = dataclasses.replace(
            options,
            classes=self.model.shown_classes(pred) if pred is not None else (),
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
                self.view.setVisible(False)

    def shutdown(self) -> None:
        self.renderer.shutdown()
        self.pool.waitForDone(5000)
