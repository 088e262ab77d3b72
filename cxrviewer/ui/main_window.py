"""The main window: layout, dialogs and the status bar. It listens; it does not coordinate.

Films are opened, read, scored, scored as a folder into a CSV and exported by the
:class:`~cxrviewer.ui.session.FilmSession` (no widgets; it emits what happened); pictures are
drawn by the :class:`~cxrviewer.ui.render_scheduler.RenderScheduler` with
:func:`cxrviewer.render.overlay`, the renderer behind ``cxrviewer export``; the menus are the
table in :mod:`cxrviewer.ui.actions`. Every display change re-renders from the cached
prediction and never runs the model again.

Signals for callers and tests: ``filmShown(path)`` when a film's pixels are on screen,
``predictionShown(ok)`` when the current film's findings are on screen (``False`` when it could
not be read or scored), ``modelLoaded(ok)``, ``scoringFinished(summary)``, ``rendered()``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent, QIcon
from PySide6.QtWidgets import QFileDialog, QLabel, QMainWindow, QMessageBox, QSplitter, QVBoxLayout, QWidget

from ..errors import CxrError
from ..io import SUPPORTED_SUFFIXES
from ..types import Orientation
from .actions import build_menus
from .compare import Compare
from .elided_label import ElidedLabel
from .state.export_choice import export_filters, export_target
from .film_overlay import Overlays
from .film_strip import FilmStrip
from .film_view import FilmView
from .findings_panel import FindingsPanel
from .levels import Levels
from .measure_tool import MeasureTool
from .pacs_dialog import PacsActions
from .render_scheduler import RenderScheduler
from .scoring_progress import ScoringProgress
from .session import FilmSession
from .settings import AppSettings, open_settings
from .status_extras import StatusExtras
from .state.status_text import describe_film, describe_window, results_message
from .state.viewer_model import ERROR, ViewerModel
from .workers import Rendered, RenderRequest

logger = logging.getLogger(__name__)

APP_NAME = "cxrviewer"
#: The most of the status bar's width each field may take (it elides beyond, its tooltip holding
#: the whole text); together with the zoom and the results link they leave ~20% to the messages.
STATUS_SHARES = {"cursorInfo": 0.22, "filmInfo": 0.12, "wlInfo": 0.10, "timeInfo": 0.08, "modelInfo": 0.11}
DEMO_BANNER = "DEMO MODEL — not for diagnosis · for a real model see docs/models.md"


def icon_path() -> Path | None:
    from ..paths import resource_path

    for name in ("cxrviewer.svg", "cxrviewer.png"):
        p = resource_path("icons", name)
        if p.is_file():
            return p
    return None


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
        backend: str | None = None,
        precision: str | None = None,
        load_default_model: bool = True,
        results_dir: str | Path | None = None,
        interactive: bool = True,
    ) -> None:
        super().__init__()
        self.setObjectName("mainWindow")
        self.store = settings if settings is not None else open_settings()
        self.prefs = AppSettings.load(self.store)
        #: False: errors are logged and shown in the window, never in a modal dialog (for
        #: unattended runs such as --exit-after-result).
        self.interactive = interactive
        self.model = ViewerModel(display=self.prefs.display())
        # None: the settings' choice (auto unless changed): what runs the model
        self.session = FilmSession(self.model, device=device, results_dir=results_dir, parent=self,
                                   backend=backend or self.prefs.backend, precision=precision or self.prefs.precision)
        self.renderer = RenderScheduler(self)
        self.progress: ScoringProgress | None = None
        self._remember_model = self._fallback = False
        self._announced: tuple[Path, int] | None = None
        self._film_announced: Path | None = None

        self._build_ui()
        actions, self.recent_menu = build_menus(self)
        for name, action in actions.items():
            setattr(self, f"act_{name}", action)
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        self.levels = Levels(self)
        self.measure = MeasureTool(self)
        self.status_extras = StatusExtras(self)
        self.compare = Compare(self)
        self.overlay = Overlays(self)
        self.pacs = PacsActions(self)
        self.act_compare_link.setChecked(True)
        self._connect()
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
            "Its findings mean nothing. Load a real model with File ▸ Load model; docs/models.md says how to "
            "import a published one (cxr-train import-torchxrayvision / import-chexnet)."
        )
        self.demo_banner.setVisible(False)
        layout.addWidget(self.demo_banner)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.splitter.setObjectName("mainSplitter")
        self.strip = FilmStrip(self.model, self.splitter)
        self.view = FilmView(self.splitter)
        self.panel = FindingsPanel(self.model, self.splitter)
        for w in (self.strip, self.view, self.panel):
            self.splitter.addWidget(w)
        for i, stretch in enumerate((0, 1, 0)):
            self.splitter.setStretchFactor(i, stretch)
        self.splitter.setCollapsible(1, False)
        self.splitter.setSizes([230, 900, 340])
        self.strip.setMinimumWidth(160)
        # the panel is as wide as its rows need (FindingsPanel sets its list's minimum): no number or note is cut
        self.strip.setVisible(False)
        layout.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

        labels = {}
        # all permanent (right-hand side): transient messages on the left never hide them. Each
        # elides to the width it gets, with the whole text in its tooltip (never cut or drawn
        # over its neighbour), and none may take more than its share of the bar (STATUS_SHARES):
        # the rest is left to the messages.
        for name in STATUS_SHARES:
            labels[name] = ElidedLabel("", self)
            labels[name].setObjectName(name)
            self.statusBar().addPermanentWidget(labels[name])
        self.status_fields: dict[str, ElidedLabel] = labels
        self.cursor_label, self.film_label, self.wl_label, self.time_label, self.model_label = labels.values()
        self.cursor_label.setMinimumWidth(120)

    def _connect(self) -> None:
        ev = self.model.events
        ev.current.connect(self._current_changed)
        ev.film.connect(self.render)
        ev.display.connect(self._display_changed)
        ev.entry.connect(self._entry_changed)
        ev.classifier.connect(self._update_model_status)
        s = self.session
        s.filmFailed.connect(self._film_failed)
        s.notApplicable.connect(self._not_applicable)
        self.panel.scoreAnywayRequested.connect(self.session.score_anyway)
        s.failed.connect(self.error_dialog)
        s.modelChanged.connect(self._model_loaded)
        s.modelFailed.connect(self._model_failed)
        s.scoringStarted.connect(self._scoring_started)
        s.scoringProgress.connect(self._scoring_progress)
        s.scoringFinished.connect(self._scoring_finished)
        s.scoringEnded.connect(self._close_progress)
        s.exported.connect(lambda out: self.statusBar().showMessage(f"Exported {out}", 10000))
        self.renderer.rendered.connect(self._rendered)
        self.renderer.failed.connect(self._render_failed)

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
            self.recent_menu.addAction("(none yet)").setEnabled(False)
            return
        for p in self.prefs.recent:
            self.recent_menu.addAction(p).triggered.connect(lambda _c=False, path=p: self.open_paths([Path(path)]))
        self.recent_menu.addSeparator()
        self.recent_menu.addAction("Clear the list").triggered.connect(self._clear_recent)

    def _clear_recent(self) -> None:
        self.prefs.recent = []
        self.prefs.save(self.store)

    def open_paths(self, paths: list[Path] | list[str], recursive: bool | None = None) -> bool:
        """Open files and folders; several films are scored in the background into a CSV."""
        paths = [Path(p) for p in paths]
        if not paths:
            return False
        recursive = self.act_recursive.isChecked() if recursive is None else recursive
        self._announced = self._film_announced = None
        films = self.session.open(paths, recursive=recursive)
        if not films:
            return False
        for p in paths:
            self.prefs.add_recent(p)
        first = paths[0]
        self.prefs.last_folder = str((first if first.is_dir() else first.parent).resolve())
        self.prefs.save(self.store)
        self.strip.setVisible(len(self.model.entries) > 1)
        self._sync_actions()
        return True

    def close_all(self) -> None:
        """File ▸ Close all: an empty worklist, no results link."""
        self._announced = self._film_announced = None
        self.session.close_all()
        self.status_extras.clear_file()
        self.strip.setVisible(False)
        self._sync_actions()

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
    def _current_changed(self, _index: int) -> None:
        self.model.set_display(window=None, orientation=Orientation())  # each film as stored
        self._update_title()

    def _film_failed(self, path: str, message: str) -> None:
        entry = self.model.entry
        if entry is not None and str(entry.path) == path:
            self.statusBar().showMessage(message, 10000)
            self.predictionShown.emit(False)

    def _not_applicable(self, path: str, reason: str) -> None:
        """The model does not read the current film: the panel says why (the findings' place)."""
        entry = self.model.entry
        if entry is not None and str(entry.path) == path:
            self.statusBar().showMessage(f"Not applicable: {reason}", 10000)
            self.predictionShown.emit(True)  # what there is to show about it is on screen

    def _entry_changed(self, index: int) -> None:
        if index == self.model.current:
            self._update_time_status()

    # ================================================================ render
    def render(self) -> None:
        """Ask for the current film's picture (drawn off the UI thread, never running the model)."""
        film, entry = self.model.film, self.model.entry
        self._update_title()
        if film is None:
            self.renderer.clear()
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
        request = RenderRequest(self.levels.drawn_film(film), self.model.prediction, self.model.render_options())
        self.film_label.setText(describe_film(film, self.model.calibration()))
        wl = describe_window(film, self.model.display.window)
        self.wl_label.setText(wl + ("  · inverted" if self.model.display.invert else ""))
        self._update_time_status()
        if self.renderer.request(request):
            self._announce(request)

    def _rendered(self, out: Rendered) -> None:
        film = self.model.film
        size = None if film is None else self.model.display.orientation.shape(film.height, film.width)[::-1]
        self.view.set_image(out.rgb, size)
        self._announce(out.request)
        self.rendered.emit()

    def _render_failed(self, message: str, bug: bool) -> None:
        self.statusBar().showMessage(message, 20000)
        if bug:
            self.error_dialog("Cannot draw the film", message)

    def render_idle(self) -> bool:
        """True when the view shows the latest picture asked for (nothing left to draw)."""
        return self.renderer.idle()

    def _announce(self, request: RenderRequest) -> None:
        film, pred = request.film, request.prediction
        self._sync_actions()
        if film.source is not None and self._film_announced != film.source:
            self._film_announced = film.source
            self.filmShown.emit(str(film.source))
        if pred is not None and film.source is not None and self._announced != (film.source, id(pred)):
            self._announced = (film.source, id(pred))
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
        for act, on in ((self.act_invert, d.invert), (self.act_contour, d.mode == "contour"), (self.act_markers, d.markers)):
            if act.isChecked() != on:
                act.blockSignals(True)
                act.setChecked(on)
                act.blockSignals(False)
        self.act_export.setEnabled(self.model.prediction is not None and self.model.film is not None)
        self.act_score.setEnabled(bool(self.model.entries) and self.model.classifier is not None)
        self.pacs.sync()

    # ========================================================== status, title
    def _update_title(self) -> None:
        entry = self.model.entry
        # Qt adds " — " and the application's display name to a title that does not end with it
        # (QPlatformWindow::formatWindowTitle): the film's name alone reads "FILE — cxrviewer"
        self.setWindowTitle(entry.name if entry is not None else APP_NAME)

    def _update_model_status(self) -> None:
        clf = self.model.classifier
        if clf is None:
            self.model_label.setText("no model")
            self.demo_banner.setVisible(False)
        else:
            demo = " (demo)" if clf.info.demo else ""
            precision = f" · {clf.engine.precision}" if clf.engine.precision != "fp32" else ""
            # "CPU", "CUDA": the status bar is narrow; the tooltip has the provider's full name
            device = clf.provider.removesuffix("ExecutionProvider")
            self.model_label.setText(f"model {clf.info.model_version}{demo}{precision} · {device}")
            self.model_label.setToolTip(f"{clf.path}\n{clf.provider}: {clf.engine} ({clf.choice.how}), {clf.choice.reason}")
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

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().resizeEvent(event)
        self._fit_status()

    def _fit_status(self) -> None:
        """Cap each status field at its share of the bar (STATUS_SHARES); they elide beyond it."""
        width = max(1, self.statusBar().width())
        for name, share in STATUS_SHARES.items():
            label = self.status_fields[name]
            label.setMaximumWidth(max(label.minimumWidth(), int(share * width)))
        if hasattr(self, "status_extras"):
            self.status_extras.fit(width)

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
        """Load a model in the background; on success every film is scored again with it.
        ``fallback``: if it cannot be loaded, load the default model instead (no dialog)."""
        self._remember_model, self._fallback = remember, fallback
        self.model_label.setText(f"loading {Path(path).name}…")
        self.session.load_model(path)

    def _model_loaded(self, clf) -> None:
        if self._remember_model:
            self.prefs.model_path = str(Path(clf.path).resolve())
            self.prefs.save(self.store)
        self._announced = None
        self.statusBar().showMessage(f"Loaded {clf.path.name} ({clf.info.model_version}) on {clf.provider}", 8000)
        self.modelLoaded.emit(True)

    def _model_failed(self, path: str, message: str) -> None:
        if self._fallback:
            logger.warning("the remembered model %s could not be loaded (%s); using the default", path, message)
            self.prefs.model_path = ""
            self._fallback = False
            self._load_startup_model()
            return
        self._update_model_status()
        self.statusBar().showMessage(message, 20000)
        self.modelLoaded.emit(False)
        self.error_dialog("Cannot load the model", message)

    # ========================================================= folder scoring
    def score_to_csv_dialog(self) -> None:
        if not self.model.entries:
            return
        start = str(Path(self.prefs.last_folder or ".") / "results.csv")
        out, _ = QFileDialog.getSaveFileName(self, "Score the films into a CSV", start, "CSV (*.csv)")
        if out:
            self.session.score([e.path for e in self.model.entries], Path(out))

    def _scoring_started(self, total: int, _out: str) -> None:
        self._close_progress()
        self.progress = ScoringProgress(total, self)
        self.progress.canceled.connect(self.session.cancel_scoring)
        self.progress.show()

    def _scoring_progress(self, done: int, total: int, name: str) -> None:
        if self.progress is not None:
            self.progress.report(done, total, name)

    def _scoring_finished(self, summary) -> None:
        if summary is not None:
            self.statusBar().showMessage(results_message(summary.line(), self.session.last_results), 30000)
        self._close_progress()
        self.scoringFinished.emit(summary)

    def _close_progress(self) -> None:
        if self.progress is not None:
            self.progress.dismiss()
            self.progress = None

    # ================================================================ export
    def export_dialog(self) -> None:
        entry = self.model.entry
        if entry is None or self.model.prediction is None or self.model.film is None:
            return
        start = Path(self.prefs.last_folder or ".") / f"{entry.path.stem}-annotated.png"
        out, chosen = QFileDialog.getSaveFileName(self, "Export annotated image", str(start), ";;".join(export_filters(self.model.film)))
        if not out:
            return
        path, fmt, anonymize = export_target(out, chosen)
        self.session.export(path, fmt=fmt, anonymize=anonymize)

    # ================================================================= about
    def show_shortcuts(self) -> None:
        from .shortcuts import show_shortcuts

        self.shortcuts_dialog = show_shortcuts(self)

    def show_about(self) -> None:
        from ..model_card import model_card
        from .about import AboutDialog

        card = None
        if self.model.classifier is not None:
            try:
                card = model_card(self.model.classifier)
            except Exception:  # noqa: BLE001 - the About box must open whatever happens
                logger.exception("could not build the model card")
        AboutDialog(card, self).exec()

    # ================================================================ plumbing
    def error_dialog(self, title: str, message: str) -> None:
        logger.warning("%s: %s", title, message)
        if self.interactive:
            QMessageBox.warning(self, title, message)
        else:
            self.statusBar().showMessage(message, 30000)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt API
        self.prefs.geometry = self.saveGeometry()
        self.prefs.splitter = self.splitter.saveState()
        self.prefs.take_display(self.model.display)
        self.prefs.save(self.store)
        self.session.shutdown(0)  # cancel, do not wait: run_app ends the process (a film in inference is not waited for)
        self.renderer.shutdown(5000)
        self.compare.shutdown()
        self.overlay.shutdown()
        super().closeEvent(event)
