"""The main window: menus, the film strip, the film view, the findings panel, the status bar.

It owns the :class:`~cxrviewer.ui.viewer_model.ViewerModel` and a ``QThreadPool``. Films are
read and scored by :class:`~cxrviewer.ui.workers.Worker` s; many films are scored through
:func:`cxrviewer.batch.score_to_csv` (the code behind ``cxrviewer score``) into a CSV, with a
progress dialog that can cancel. The picture comes from :func:`cxrviewer.render.overlay`, the
renderer behind ``cxrviewer export``; every display change re-renders from the cached
prediction and never runs the model again.

Signals for callers and tests: ``filmShown(path)`` when a film's pixels are on screen,
``predictionShown(ok)`` when the current film's findings are on screen (``False`` when it could
not be read or scored), ``modelLoaded(ok)``, ``scoringFinished(summary)``.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths, Qt, QThreadPool, QTimer, Signal
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QIcon,
    QKeySequence,
)
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressDialog,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..errors import CxrError
from ..io import SUPPORTED_SUFFIXES, list_films
from ..types import Film
from .film_strip import FilmStrip
from .film_view import FilmView
from .findings_panel import FindingsPanel
from .refcounts import protect_singletons
from .settings import AppSettings, open_settings
from .viewer_model import DEFAULT_WINDOW, ERROR, QUEUED, READING, SCORED, ViewerModel
from .workers import (
    FilmJob,
    Rendered,
    RenderRequest,
    ScoredFilm,
    Worker,
    WorkerError,
    WorkerHandle,
    export_annotated,
    load_model,
    read_and_score,
    render_picture,
    score_folder,
)

logger = logging.getLogger(__name__)

APP_NAME = "cxrviewer"
DEMO_BANNER = "DEMO MODEL — not for diagnosis"
# Export dialog file types → (format, anonymize); the first is the default.
EXPORT_FILTERS = {
    "PNG image (*.png)": ("png", False),
    "DICOM Secondary Capture, same patient and study (*.dcm)": ("dicom-sc", False),
    "DICOM Secondary Capture, anonymized (*.dcm)": ("dicom-sc", True),
}
FILM_CACHE = 4  # films kept in memory for quick back-and-forth
WL_SENSITIVITY = 1.0 / 400.0  # film-scale units per screen pixel dragged


def icon_path() -> Path | None:
    from ..paths import resource_path

    for name in ("cxrviewer.svg", "cxrviewer.png"):
        p = resource_path("icons", name)
        if p.is_file():
            return p
    return None


def describe_window(film: Film | None, window: tuple[float, float] | None) -> str:
    """W/L for the status bar, in the film's own units where we know them."""
    center, width = window if window is not None else DEFAULT_WINDOW
    tag = " (file)" if window is None else ""
    if film is None:
        return ""
    stored = film.metadata.get("window") if film.metadata else None
    if stored:  # DICOM with a stored window: film [0, 1] spans that window, in modality units
        c0, w0 = stored
        lower = c0 - w0 / 2.0
        return f"W {width * w0:.0f}  L {lower + center * w0:.0f}{tag}"
    if film.metadata.get("format") == "dicom":
        return f"W {100 * width:.0f}%  L {100 * center:.0f}%{tag}"
    return f"W {255 * width:.0f}  L {255 * center:.0f}{tag}"


def describe_film(film: Film | None) -> str:
    if film is None:
        return ""
    text = f"{film.width} × {film.height} px"
    if film.pixel_spacing:
        r, c = film.pixel_spacing
        text += f" · pixel {c:.3f} × {r:.3f} mm"
    else:
        text += " · pixel size unknown"
    return text


class MainWindow(QMainWindow):
    filmShown = Signal(str)
    predictionShown = Signal(bool)
    modelLoaded = Signal(bool)
    scoringFinished = Signal(object)
    rendered = Signal()

    def __init__(
        self,
        settings: QSettings | None = None,
        *,
        model_path: str | Path | None = None,
        device: str = "auto",
        load_default_model: bool = True,
        results_dir: str | Path | None = None,
        interactive: bool = True,
    ) -> None:
        protect_singletons()
        super().__init__()
        self.setObjectName("mainWindow")
        self.store = settings if settings is not None else open_settings()
        self.prefs = AppSettings.load(self.store)
        self.device = device
        #: False: errors are logged and shown in the window, never in a modal dialog (for
        #: unattended runs such as --exit-after-result).
        self.interactive = interactive
        self.results_dir = Path(results_dir) if results_dir is not None else None
        self.model = ViewerModel(display=self.prefs.display())
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(4)
        # pictures are drawn on their own thread: never queued behind reading or scoring
        self.render_pool = QThreadPool(self)
        self.render_pool.setMaxThreadCount(1)
        self._render_worker: Worker | None = None
        self._wanted: RenderRequest | None = None
        self._shown: RenderRequest | None = None
        self._workers: set[Worker] = set()
        self._generation = 0  # bumped when the films or the model change: late results are dropped
        self._inflight: dict[Path, Worker] = {}
        self._films: OrderedDict[Path, Film] = OrderedDict()
        self._batch: Worker | None = None
        self._batch_generation = -1
        self._batch_pending: tuple[list[Path], Path | None] | None = None
        self._progress: QProgressDialog | None = None
        self._model_worker: Worker | None = None
        self._announced: tuple[Path, int] | None = None
        self._film_announced: Path | None = None
        self._explicit_single = False
        self._wl_start: tuple[float, float] | None = None
        self.last_results: Path | None = None
        self.last_summary = None

        self._build_ui()
        self._build_menus()
        self._connect_model()
        self.setAcceptDrops(True)
        icon = icon_path()
        if icon is not None:
            self.setWindowIcon(QIcon(str(icon)))
        if self.prefs.geometry is not None:
            self.restoreGeometry(self.prefs.geometry)
        else:
            self.resize(1400, 900)
        if self.prefs.splitter is not None:
            self.splitter.restoreState(self.prefs.splitter)
        self._update_title()
        self._update_model_status()
        self.render()  # the empty view's hint
        if model_path is not None:
            self.load_model_file(model_path, remember=False)
        elif load_default_model:
            self._load_startup_model()

    # ================================================================== layout
    def _build_ui(self) -> None:
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)

        self.demo_banner = QLabel(DEMO_BANNER, central)
        self.demo_banner.setObjectName("demoBanner")
        self.demo_banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.demo_banner.setToolTip(
            "This model was trained on a handful of films to show how the app works. "
            "Its findings mean nothing. Load a real model with File ▸ Load model."
        )
        self.demo_banner.setVisible(False)
        layout.addWidget(self.demo_banner)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.splitter.setObjectName("mainSplitter")
        self.strip = FilmStrip(self.model, self.splitter)
        self.view = FilmView(self.splitter)
        self.panel = FindingsPanel(self.model, self.splitter)
        self.splitter.addWidget(self.strip)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(self.panel)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([230, 900, 340])
        self.strip.setMinimumWidth(160)
        self.panel.setMinimumWidth(280)
        self.strip.setVisible(False)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        sb = self.statusBar()
        self.film_label = QLabel("", self)
        self.film_label.setObjectName("filmInfo")
        self.wl_label = QLabel("", self)
        self.wl_label.setObjectName("wlInfo")
        self.cursor_label = QLabel("", self)
        self.cursor_label.setObjectName("cursorInfo")
        self.cursor_label.setMinimumWidth(150)
        self.model_label = QLabel("", self)
        self.model_label.setObjectName("modelInfo")
        self.time_label = QLabel("", self)
        self.time_label.setObjectName("timeInfo")
        # all permanent (right-hand side): transient messages on the left never hide them
        for w in (self.cursor_label, self.film_label, self.wl_label, self.time_label, self.model_label):
            sb.addPermanentWidget(w)

        self.view.hovered.connect(self._hovered)
        self.view.levelDragStarted.connect(self._wl_started)
        self.view.levelDragged.connect(self._wl_dragged)
        self.view.levelDragFinished.connect(self._wl_finished)

    def _action(self, text: str, slot, shortcut=None, tip: str = "", checkable: bool = False) -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            seqs = shortcut if isinstance(shortcut, list) else [shortcut]
            a.setShortcuts([QKeySequence(s) for s in seqs])
        if tip:
            a.setStatusTip(tip)
            a.setToolTip(tip)
        a.setCheckable(checkable)
        if checkable:
            a.toggled.connect(slot)
        else:
            a.triggered.connect(lambda _checked=False: slot())
        self.addAction(a)  # shortcuts work wherever the focus is in the window
        return a

    def _build_menus(self) -> None:
        mb = self.menuBar()
        f = mb.addMenu("&File")
        self.act_open = self._action("&Open file…", self.open_file_dialog, QKeySequence.StandardKey.Open, "Open films (PNG, JPEG, TIFF, BMP, DICOM)")
        self.act_open_folder = self._action("Open &folder…", self.open_folder_dialog, "Ctrl+Shift+O", "Open every film in a folder and score them all")
        self.recent_menu = f.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.act_recursive = self._action("Include sub-folders", lambda on: None, None, "Also open the films in sub-folders of an opened folder", checkable=True)
        f.addAction(self.act_open)
        f.addAction(self.act_open_folder)
        f.addMenu(self.recent_menu)
        f.addAction(self.act_recursive)
        f.addSeparator()
        self.act_score = self._action("&Score films to CSV…", self.score_to_csv_dialog, None, "Score the opened films into a CSV file you choose")
        self.act_export = self._action("&Export annotated image…", self.export_dialog, "Ctrl+E", "Save the film with its heatmaps and findings as PNG or DICOM Secondary Capture (as `cxrviewer export`)")
        f.addAction(self.act_score)
        f.addAction(self.act_export)
        f.addSeparator()
        self.act_load_model = self._action("&Load model…", self.load_model_dialog, "Ctrl+M", "Use another ONNX model")
        f.addAction(self.act_load_model)
        f.addSeparator()
        self.act_quit = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        f.addAction(self.act_quit)

        v = mb.addMenu("&View")
        self.act_fit = self._action("&Fit to window", self.view.fit, "F")
        self.act_one = self._action("&Actual size (1:1)", self.view.actual_size, "1")
        self.act_zoom_in = self._action("Zoom &in", lambda: self.view.zoom_by(1.25), [QKeySequence.StandardKey.ZoomIn, "+", "="])
        self.act_zoom_out = self._action("Zoom &out", lambda: self.view.zoom_by(0.8), [QKeySequence.StandardKey.ZoomOut, "-"])
        self.act_invert = self._action("&Invert", lambda on: self.model.set_display(invert=on), "I", "Show the film in negative", checkable=True)
        self.act_reset_wl = self._action("&Reset window/level", lambda: self.model.set_window(None), "R", "Back to the film's own window (right-drag or Ctrl+drag changes it)")
        for a in (self.act_fit, self.act_one, self.act_zoom_in, self.act_zoom_out):
            v.addAction(a)
        v.addSeparator()
        v.addAction(self.act_invert)
        v.addAction(self.act_reset_wl)
        v.addSeparator()
        self.act_next = self._action("&Next film", lambda: self.model.step(+1), ["PgDown", "N"])
        self.act_prev = self._action("&Previous film", lambda: self.model.step(-1), ["PgUp", "P"])
        v.addAction(self.act_next)
        v.addAction(self.act_prev)

        h = mb.addMenu("&Heatmaps")
        self.act_positives = self._action("&Positives only", lambda: self.model.set_display(policy="positives"), "Ctrl+1")
        self.act_all = self._action("&All", lambda: self.model.set_display(policy="all"), "Ctrl+2")
        self.act_none = self._action("&None", lambda: self.model.set_display(policy="none"), "Ctrl+0")
        self.act_contour = self._action("&Contour mode", lambda on: self.model.set_display(mode="contour" if on else "heatmap"), "C", checkable=True)
        for a in (self.act_positives, self.act_all, self.act_none, self.act_contour):
            h.addAction(a)

        help_menu = mb.addMenu("&Help")
        self.act_about = self._action("&About cxrviewer", self.show_about, "F1")
        help_menu.addAction(self.act_about)
        about_qt = QAction("About &Qt", self)
        about_qt.triggered.connect(lambda: QMessageBox.aboutQt(self))
        help_menu.addAction(about_qt)
        self._sync_actions()

    def _connect_model(self) -> None:
        ev = self.model.events
        ev.current.connect(self._current_changed)
        ev.film.connect(self.render)
        ev.display.connect(self._display_changed)
        ev.entry.connect(self._entry_changed)
        ev.classifier.connect(self._update_model_status)

    # ================================================================= opening
    def open_file_dialog(self) -> None:
        suffixes = " ".join(f"*{s}" for s in SUPPORTED_SUFFIXES)
        files, _ = QFileDialog.getOpenFileNames(
            self, "Open films", self.prefs.last_folder, f"Films ({suffixes});;All files (*)"
        )
        if files:
            self.open_paths([Path(f) for f in files])

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of films", self.prefs.last_folder)
        if folder:
            self.open_paths([Path(folder)])

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        if not self.prefs.recent:
            a = self.recent_menu.addAction("(none yet)")
            a.setEnabled(False)
            return
        for p in self.prefs.recent:
            a = self.recent_menu.addAction(p)
            a.triggered.connect(lambda _c=False, path=p: self.open_paths([Path(path)]))
        self.recent_menu.addSeparator()
        clear = self.recent_menu.addAction("Clear the list")
        clear.triggered.connect(self._clear_recent)

    def _clear_recent(self) -> None:
        self.prefs.recent = []
        self.prefs.save(self.store)

    def open_paths(self, paths: list[Path] | list[str], recursive: bool | None = None) -> bool:
        """Open files and folders; several films are scored in the background into a CSV."""
        paths = [Path(p) for p in paths]
        if not paths:
            return False
        recursive = self.act_recursive.isChecked() if recursive is None else recursive
        try:
            films = list_films(paths, recursive=recursive)
        except CxrError as exc:
            self.error_dialog("Cannot open", str(exc))
            return False
        if not films:
            where = ", ".join(p.name or str(p) for p in paths)
            self.error_dialog("No films", f"No films found in {where} (looked for {' '.join(SUPPORTED_SUFFIXES)} and DICOM files).")
            return False
        self._cancel_batch()
        self._generation += 1
        self._inflight.clear()
        self._films.clear()
        self._announced = None
        self._film_announced = None
        self._explicit_single = len(films) == 1
        for p in paths:
            self.prefs.add_recent(p)
        first = paths[0]
        self.prefs.last_folder = str((first if first.is_dir() else first.parent).resolve())
        self.prefs.save(self.store)
        self.model.set_paths(films)
        self.strip.setVisible(len(films) > 1)
        self.model.set_current(0)
        if len(films) > 1:
            self.score_paths(films)
        self._sync_actions()
        return True

    # ---------------------------------------------------------- drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt API
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt API
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            QTimer.singleShot(0, self, lambda: self.open_paths(paths))

    # ========================================================== current film
    def _current_changed(self, index: int) -> None:
        self.model.set_window(None)  # each film opens with its own (stored) window
        self._update_title()
        self._ensure_current()

    def _ensure_current(self) -> None:
        """Start whatever the current film still needs: its pixels, its prediction."""
        entry = self.model.entry
        if entry is None or entry.status == ERROR:
            return  # an unreadable film is not tried again until it is opened again
        film = self._films.get(entry.path)
        if film is not None:
            self._films.move_to_end(entry.path)
            if self.model.film is not film:
                self.model.set_film(film)
        clf = self.model.classifier
        needs_film = film is None
        needs_prediction = entry.prediction is None and clf is not None
        if not (needs_film or needs_prediction) or entry.path in self._inflight:
            return
        path, generation = entry.path, self._generation
        worker = Worker(read_and_score, path, clf if needs_prediction else None, generation)
        WorkerHandle(
            self, worker,
            result=self._film_job_done,
            error=lambda err: self._film_job_failed(path, generation, err),
            finished=lambda: self._film_job_finished(worker, path),
        )
        self._inflight[path] = worker
        if needs_prediction and entry.status == QUEUED:
            self.model.update_entry(self.model.current, status=READING)
        self._start(worker)

    def _film_job_done(self, job: FilmJob) -> None:
        if job.generation != self._generation:
            return
        self._films[job.path] = job.film
        self._films.move_to_end(job.path)
        while len(self._films) > FILM_CACHE:
            self._films.popitem(last=False)
        index = self.model.index_of(job.path)
        if index < 0:
            return
        entry = self.model.entries[index]
        changes: dict = {"thumbnail": job.thumbnail, "shape": (job.film.height, job.film.width)}
        if job.prediction is not None and entry.prediction is None:
            changes.update(prediction=job.prediction, status=SCORED, seconds=job.infer_seconds, batch=False, error=None)
        elif entry.status == READING:
            changes["status"] = QUEUED
        self.model.update_entry(index, **changes)
        if index == self.model.current:
            self.model.set_film(job.film)

    def _film_job_failed(self, path: Path, generation: int, err: WorkerError) -> None:
        if generation != self._generation:
            return
        index = self.model.index_of(path)
        if index < 0:
            return
        self.model.update_entry(index, status=ERROR, error=err.message)
        if index == self.model.current:
            self.model.set_film(None)
            self.statusBar().showMessage(err.message, 10000)
            self.predictionShown.emit(False)
            if self._explicit_single or err.bug:
                self.error_dialog(f"Cannot open {path.name}", err.message)

    def _film_job_finished(self, worker: Worker, path: Path) -> None:
        if self._inflight.get(path) is worker:
            del self._inflight[path]
        self._workers.discard(worker)
        # the current film may still need something (e.g. a model arrived meanwhile)
        entry = self.model.entry
        if entry is not None and entry.path == path:
            QTimer.singleShot(0, self, self._ensure_current)

    def _entry_changed(self, index: int) -> None:
        if index == self.model.current:
            self._update_time_status()

    # ================================================================ render
    def render(self) -> None:
        """Ask for the current film's picture; :func:`cxrviewer.render.overlay` draws it off the
        UI thread (never running the model). Requests made while one is drawn coalesce: only
        the latest is drawn next."""
        film = self.model.film
        entry = self.model.entry
        self._update_title()
        if film is None:
            self._wanted = None
            self._shown = None
            self.view.set_image(None)
            if entry is None:
                self.view.set_placeholder("Drop films or folders here\nor File ▸ Open file (Ctrl+O)")
            elif entry.status == ERROR:
                self.view.set_placeholder(f"{entry.name} could not be read\n\n{entry.error or ''}")
            else:
                self.view.set_placeholder(f"Reading {entry.name}…")
            self.film_label.setText(f"{entry.name}: reading…" if entry is not None and entry.status != ERROR else "")
            self.wl_label.setText("")
            self._sync_actions()
            return
        request = RenderRequest(film, self.model.prediction, self.model.render_options())
        self.film_label.setText(describe_film(film))
        wl = describe_window(film, self.model.display.window)
        self.wl_label.setText(wl + ("  · inverted" if self.model.display.invert else ""))
        self._update_time_status()
        self._wanted = request
        if request.same(self._shown):
            self._announce(request)
            return
        if self._render_worker is None:
            self._start_render()

    def _start_render(self) -> None:
        request = self._wanted
        if request is None:
            return
        worker = Worker(render_picture, request)
        WorkerHandle(self, worker, result=self._rendered, error=self._render_failed, finished=self._render_finished)
        self._render_worker = worker
        self._workers.add(worker)
        self.render_pool.start(worker)

    def _rendered(self, out: Rendered) -> None:
        if self._wanted is None or not out.request.same(self._wanted):
            return  # a newer picture is wanted
        self.view.set_image(out.rgb)
        self._shown = out.request
        logger.debug("rendered %s in %.1f ms", out.request.film.name, 1000 * out.seconds)
        self._announce(out.request)
        self.rendered.emit()

    def _render_failed(self, err: WorkerError) -> None:
        self.statusBar().showMessage(err.message, 20000)
        if err.bug:
            self.error_dialog("Cannot draw the film", err.message)

    def _render_finished(self) -> None:
        self._workers.discard(self._render_worker)
        self._render_worker = None
        if self._wanted is not None and not self._wanted.same(self._shown):
            self._start_render()

    def render_idle(self) -> bool:
        """True when the view shows the latest picture asked for (nothing left to draw)."""
        return self._render_worker is None and (self._wanted is None or self._wanted.same(self._shown))

    def _announce(self, request: RenderRequest) -> None:
        film, pred = request.film, request.prediction
        self._sync_actions()
        if film.source is not None and self._film_announced != film.source:
            self._film_announced = film.source
            self.filmShown.emit(str(film.source))
        if pred is not None and film.source is not None:
            key = (film.source, id(pred))
            if self._announced != key:
                self._announced = key
                self.predictionShown.emit(True)

    def rendered_rgb(self):
        """What the film view shows, as an RGB array (for tests and screenshots)."""
        return self.view.displayed_rgb()

    def _display_changed(self) -> None:
        self.prefs.take_display(self.model.display)
        self._sync_actions()
        self.render()

    def _sync_actions(self) -> None:
        d = self.model.display
        for act, on in ((self.act_invert, d.invert), (self.act_contour, d.mode == "contour")):
            if act.isChecked() != on:
                act.blockSignals(True)
                act.setChecked(on)
                act.blockSignals(False)
        has_pred = self.model.prediction is not None and self.model.film is not None
        self.act_export.setEnabled(has_pred)
        self.act_score.setEnabled(bool(self.model.entries) and self.model.classifier is not None)

    # --------------------------------------------------------- window/level
    def _wl_started(self) -> None:
        self._wl_start = self.model.window_or_default

    def _wl_dragged(self, dx: int, dy: int) -> None:
        if self._wl_start is None:
            return
        c0, w0 = self._wl_start
        # right = wider window, up = higher level (darker), as in most film viewers
        self.model.set_window((c0 - dy * WL_SENSITIVITY, w0 * (2.0 ** (dx / 200.0))))

    def _wl_finished(self) -> None:
        self._wl_start = None

    def _hovered(self, x: int, y: int) -> None:
        film = self.model.film
        if film is None or x < 0:
            self.cursor_label.setText("")
            return
        self.cursor_label.setText(f"x {x}  y {y}  value {film.pixels[y, x]:.3f}")

    # ========================================================== status, title
    def _update_title(self) -> None:
        entry = self.model.entry
        self.setWindowTitle(f"{APP_NAME} — {entry.name}" if entry is not None else APP_NAME)

    def _update_model_status(self) -> None:
        clf = self.model.classifier
        if clf is None:
            self.model_label.setText("no model")
            self.demo_banner.setVisible(False)
        else:
            demo = " (demo)" if clf.info.demo else ""
            precision = f" · {clf.info.precision}" if clf.info.precision != "fp32" else ""
            self.model_label.setText(f"model {clf.info.model_version}{demo}{precision} · {clf.provider}")
            self.model_label.setToolTip(str(clf.path))
            self.demo_banner.setVisible(bool(clf.info.demo))
        self._sync_actions()

    def _update_time_status(self) -> None:
        entry = self.model.entry
        if entry is None or entry.seconds is None:
            self.time_label.setText("")
        elif entry.batch:
            self.time_label.setText(f"read + inference {1000 * entry.seconds:.0f} ms (folder run)")
        else:
            self.time_label.setText(f"inference {1000 * entry.seconds:.0f} ms")
        self._sync_actions()

    # ================================================================= model
    def _load_startup_model(self) -> None:
        from ..paths import default_model_path

        remembered = Path(self.prefs.model_path) if self.prefs.model_path else None
        if remembered is not None and remembered.is_file():
            self.load_model_file(remembered, remember=False, fallback=True)
            return
        try:
            path = default_model_path()
        except CxrError as exc:
            logger.warning("%s", exc)
            self.statusBar().showMessage(str(exc), 20000)
            QTimer.singleShot(0, self, lambda: self.modelLoaded.emit(False))
            return
        self.load_model_file(path, remember=False)

    def load_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load a model", self.prefs.last_folder, "ONNX model (*.onnx);;All files (*)")
        if path:
            self.load_model_file(Path(path), remember=True)

    def load_model_file(self, path: str | Path, remember: bool = True, fallback: bool = False) -> None:
        """Load a model in the background; on success every film is scored again with it."""
        path = Path(path)
        worker = Worker(load_model, path, self.device)
        WorkerHandle(
            self, worker,
            result=lambda clf: self._model_loaded(clf, remember),
            error=lambda err: self._model_failed(path, err, fallback),
            finished=lambda: self._workers.discard(worker),
        )
        self._model_worker = worker
        self.model_label.setText(f"loading {path.name}…")
        self._start(worker)

    def _model_loaded(self, clf, remember: bool) -> None:
        if remember:
            self.prefs.model_path = str(Path(clf.path).resolve())
            self.prefs.save(self.store)
        self._cancel_batch()
        self._generation += 1
        self._inflight.clear()
        self._announced = None
        self.model.set_classifier(clf)
        self.statusBar().showMessage(f"Loaded {clf.path.name} ({clf.info.model_version}) on {clf.provider}", 8000)
        self.modelLoaded.emit(True)
        pending, self._batch_pending = self._batch_pending, None
        if pending is not None:
            self.score_paths(*pending)
        elif len(self.model.entries) > 1:
            self.score_paths([e.path for e in self.model.entries])
        self._ensure_current()

    def _model_failed(self, path: Path, err: WorkerError, fallback: bool) -> None:
        if fallback:
            logger.warning("the remembered model %s could not be loaded (%s); using the default", path, err)
            self.prefs.model_path = ""
            self._load_startup_model()
            return
        self._update_model_status()
        self.statusBar().showMessage(err.message, 20000)
        self.modelLoaded.emit(False)
        self.error_dialog("Cannot load the model", err.message)

    # ========================================================= folder scoring
    def default_results_path(self, films: list[Path]) -> Path:
        base = self.results_dir
        if base is None:
            base = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation)) / "results"
        parent = films[0].parent.name or "films"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = base / f"{parent}-{stamp}.csv"
        n = 1
        while path.exists():
            n += 1
            path = base / f"{parent}-{stamp}-{n}.csv"
        return path

    def score_to_csv_dialog(self) -> None:
        if not self.model.entries:
            return
        start = str(Path(self.prefs.last_folder or ".") / "results.csv")
        out, _ = QFileDialog.getSaveFileName(self, "Score the films into a CSV", start, "CSV (*.csv)")
        if out:
            self.score_paths([e.path for e in self.model.entries], Path(out))

    def score_paths(self, paths: list[Path], out: Path | None = None) -> None:
        """Score ``paths`` into ``out`` (default: a new CSV under the results folder), in the background."""
        clf = self.model.classifier
        if clf is None:
            self._batch_pending = (list(paths), out)  # starts when a model arrives
            return
        self._batch_pending = None
        self._cancel_batch()
        out = Path(out) if out is not None else self.default_results_path(list(paths))
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.error_dialog("Cannot write the results", f"Cannot create {out.parent}: {exc.strerror or exc}.")
            return
        self._batch_generation = self._generation
        worker = Worker(score_folder, list(paths), clf, out, generation=self._generation, reports=True)
        WorkerHandle(
            self, worker,
            progress=self._batch_progress,
            result=lambda summary: self._batch_done(worker, summary, out),
            error=lambda err: self._batch_failed(worker, err),
            finished=lambda: self._batch_finished(worker),
        )
        self._batch = worker
        self.last_results = out

        dlg = QProgressDialog(f"Scoring {len(paths)} films…", "Cancel", 0, len(paths), self)
        dlg.setObjectName("scoringProgress")
        dlg.setWindowTitle("Scoring films")
        dlg.setWindowModality(Qt.WindowModality.NonModal)  # browse the scored films meanwhile
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.setMinimumDuration(0)
        dlg.setValue(0)
        dlg.canceled.connect(worker.cancel)
        # it must not take the keyboard from the window: PgDown/PgUp keep browsing the films
        dlg.setAttribute(Qt.WidgetAttribute.WA_ShowWithoutActivating)
        dlg.show()
        self._progress = dlg
        logger.info("scoring %d films into %s", len(paths), out)
        self._start(worker)

    def cancel_scoring(self) -> None:
        if self._batch is not None:
            self._batch.cancel()

    @property
    def scoring(self) -> bool:
        return self._batch is not None

    def _cancel_batch(self) -> None:
        if self._batch is not None:
            self._batch.cancel()
            self._batch = None
        self._close_progress()

    def _close_progress(self) -> None:
        if self._progress is None:
            return
        active = QApplication.activeWindow()
        was_active = active is None or active is self._progress
        self._progress.close()
        self._progress.deleteLater()
        self._progress = None
        if was_active and self.isVisible():
            self.activateWindow()  # give the keyboard back to the window

    def _batch_progress(self, sf: ScoredFilm) -> None:
        if sf.generation != self._generation or self._batch is None:
            return
        if self._progress is not None:
            self._progress.setMaximum(sf.total)
            self._progress.setValue(sf.done)
            self._progress.setLabelText(f"Scored {sf.done} of {sf.total} films · {sf.path.name}")
        index = self.model.index_of(sf.path)
        if index < 0:
            return
        entry = self.model.entries[index]
        changes: dict = {}
        if sf.thumbnail is not None:
            changes["thumbnail"] = sf.thumbnail
        if sf.prediction is not None:
            if entry.prediction is None:
                changes.update(prediction=sf.prediction, seconds=sf.seconds, batch=True, shape=sf.shape)
            changes.update(status=SCORED, error=None)
        else:
            changes.update(status=ERROR, error=sf.error)
        self.model.update_entry(index, **changes)
        if index == self.model.current and sf.prediction is None:
            self.predictionShown.emit(False)

    def _batch_done(self, worker: Worker, summary, out: Path) -> None:
        if worker is not self._batch:
            return
        self.last_summary = summary
        self._close_progress()
        msg = f"{summary.line()} → {out}"
        logger.info("%s", msg)
        self.statusBar().showMessage(msg, 30000)
        self.scoringFinished.emit(summary)

    def _batch_failed(self, worker: Worker, err: WorkerError) -> None:
        if worker is not self._batch:
            return
        self._close_progress()
        self.statusBar().showMessage(err.message, 30000)
        self.error_dialog("Scoring stopped", err.message)
        self.scoringFinished.emit(None)

    def _batch_finished(self, worker: Worker) -> None:
        self._workers.discard(worker)
        if worker is self._batch:
            self._batch = None
            self._close_progress()
            # films the run did not reach (cancelled) are scored one by one when shown
            for i, e in enumerate(self.model.entries):
                if e.status == READING and e.path not in self._inflight:
                    self.model.update_entry(i, status=QUEUED)

    # ================================================================ export
    def export_dialog(self) -> None:
        entry = self.model.entry
        if entry is None or self.model.prediction is None or self.model.film is None:
            return
        start = Path(self.prefs.last_folder or ".") / f"{entry.path.stem}-annotated.png"
        out, chosen = QFileDialog.getSaveFileName(self, "Export annotated image", str(start), ";;".join(EXPORT_FILTERS))
        if not out:
            return
        fmt, anonymize = EXPORT_FILTERS.get(chosen, ("png", False))
        if fmt == "png" and Path(out).suffix.lower() in (".dcm", ".dicom"):
            fmt = "dicom-sc"  # a .dcm name typed under the PNG filter: the user wants DICOM
        suffix = ".png" if fmt == "png" else ".dcm"
        if Path(out).suffix.lower() not in ((".png",) if fmt == "png" else (".dcm", ".dicom")):
            out += suffix
        self.export_annotated(Path(out), fmt=fmt, anonymize=anonymize)

    def export_annotated(self, path: Path, fmt: str = "png", anonymize: bool = False) -> Path | None:
        """The current film as shown (classes, opacity, colormap, W/L): an annotated PNG, or an
        RGB DICOM Secondary Capture in the source's study (``anonymize``: a new, anonymous one)."""
        film, pred, clf = self.model.film, self.model.prediction, self.model.classifier
        if film is None or pred is None or clf is None:
            self.error_dialog("Nothing to export", "Open a film and wait for its findings first.")
            return None
        try:
            out = export_annotated(path, film, pred, clf.info, self.model.render_options(), fmt=fmt, anonymize=anonymize)
        except CxrError as exc:
            self.error_dialog("Export failed", str(exc))
            return None
        self.statusBar().showMessage(f"Exported {out}", 10000)
        return out

    # ================================================================= about
    def show_about(self) -> None:
        from ..cli import model_card
        from .about import AboutDialog

        card = None
        if self.model.classifier is not None:
            try:
                card = model_card(self.model.classifier)
            except Exception:  # noqa: BLE001 - the About box must open whatever happens
                logger.exception("could not build the model card")
        AboutDialog(card, self).exec()

    # ================================================================ plumbing
    def _start(self, worker: Worker) -> None:
        self._workers.add(worker)
        self.pool.start(worker)

    def error_dialog(self, title: str, message: str) -> None:
        logger.warning("%s: %s", title, message)
        if self.interactive:
            QMessageBox.warning(self, title, message)
        else:
            self.statusBar().showMessage(message, 30000)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self._cancel_batch()
        for w in list(self._workers):
            w.cancel()
        self.prefs.geometry = self.saveGeometry()
        self.prefs.splitter = self.splitter.saveState()
        self.prefs.take_display(self.model.display)
        self.prefs.save(self.store)
        self.pool.waitForDone(5000)
        self.render_pool.waitForDone(5000)
        super().closeEvent(event)
