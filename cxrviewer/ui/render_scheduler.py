"""``RenderScheduler``: the film's picture, drawn off the UI thread, newest request first.

The window asks for a picture (:class:`~cxrviewer.ui.workers.RenderRequest`: film, prediction,
display options) whenever anything shown changes; :func:`cxrviewer.render.overlay` draws it on
a thread of its own, so a picture never queues behind reading or scoring. Requests made while
one is drawn coalesce: only the latest (``wanted``) is drawn next, and a picture that is no
longer wanted when it arrives is dropped. ``shown`` is what the view has now.

Signals: ``rendered(Rendered)`` for the picture to put on screen; ``failed(message, bug)``.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, QThreadPool, Signal

from .workers import Rendered, RenderRequest, Worker, WorkerError, WorkerHandle, render_picture

logger = logging.getLogger(__name__)


class RenderScheduler(QObject):
    rendered = Signal(object)
    failed = Signal(str, bool)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self._worker: Worker | None = None
        self.wanted: RenderRequest | None = None
        self.shown: RenderRequest | None = None

    def request(self, request: RenderRequest) -> bool:
        """Ask for ``request``'s picture; True when the view already shows it (nothing to draw)."""
        self.wanted = request
        if request.same(self.shown):
            return True
        if self._worker is None:
            self._start()
        return False

    def clear(self) -> None:
        """Nothing to show (no film): forget what was wanted and shown."""
        self.wanted = None
        self.shown = None

    def idle(self) -> bool:
        """True when the latest picture asked for is the one shown (nothing left to draw)."""
        return self._worker is None and (self.wanted is None or self.wanted.same(self.shown))

    def shutdown(self, wait_ms: int = 5000) -> None:
        self.wanted = None
        self.pool.waitForDone(wait_ms)

    def _start(self) -> None:
        request = self.wanted
        if request is None:
            return
        worker = Worker(render_picture, request)
        WorkerHandle(self, worker, result=self._done, error=self._failed, finished=self._finished)
        self._worker = worker
        self.pool.start(worker)

    def _done(self, out: Rendered) -> None:
        if self.wanted is None or not out.request.same(self.wanted):
            return  # a newer picture is wanted
        self.shown = out.request
        logger.debug("rendered %s in %.1f ms", out.request.film.name, 1000 * out.seconds)
        self.rendered.emit(out)

    def _failed(self, err: WorkerError) -> None:
        self.failed.emit(err.message, err.bug)

    def _finished(self) -> None:
        self._worker = None
        if self.wanted is not None and not self.wanted.same(self.shown):
            self._start()
