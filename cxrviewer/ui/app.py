"""``run_app(argv) -> int``: start the desktop app (``cxrviewer`` with no subcommand).

Options besides files and folders to open:

- ``--model M.onnx`` / ``--device auto|cpu|cuda``: the model (default: ``$CXRVIEWER_MODEL`` or the
  bundled demo model, or the one last chosen with File ▸ Load model);
- ``--exit-after-result``: quit once the first film's findings are on screen, with exit code 0
  (1 when the film or the model could not be loaded): the packaging smoke test;
- ``--screenshot OUT.png``: save a picture of the window once the first film's findings are on
  screen, then quit (``docs/screenshot.png`` is made this way under Xvfb);
- ``--classes all|none|positives|A,B``, ``--alpha``, ``--colormap``, ``--mode heatmap|contour``:
  the heatmaps shown first, as ``cxrviewer export`` takes them (default: as last time);
- ``--window-size WxH``, ``--results-dir DIR`` (folder runs' CSVs), ``-v`` / ``-vv`` for more log.

Settings come from ``$CXRVIEWER_SETTINGS`` (an INI file) when set, else the platform's store.
An unexpected exception anywhere on the UI thread is logged with its traceback and shown in a
dialog; the app keeps running.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..options import add_display_options, add_model_options

logger = logging.getLogger(__name__)

EXIT_TIMEOUT_MS = 300_000  # --exit-after-result gives up (exit 1) after this long



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cxrviewer", description="Chest X-ray viewer with per-finding heatmaps.")
    p.add_argument("paths", nargs="*", type=Path, metavar="FILE_OR_FOLDER", help="films and folders to open")
    add_model_options(p)
    p.add_argument("--recursive", "-r", action="store_true", help="also open films in sub-folders")
    add_display_options(p, None)  # None: what is not given stays as the user left it last time
    p.add_argument("--exit-after-result", action="store_true", help="quit once the first film's findings are shown (exit 0; 1 on failure)")
    p.add_argument("--screenshot", type=Path, metavar="OUT.png", help="save a picture of the window once the findings are shown, then quit")
    p.add_argument("--window-size", metavar="WxH", help="initial window size, e.g. 1440x900")
    p.add_argument("--results-dir", type=Path, help="where folder runs write their CSV (default: the app's data folder)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--version", action="version", version=f"cxrviewer {__version__}")
    return p


def configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def install_excepthook(parent_getter=lambda: None):
    """Log unexpected exceptions with their traceback and show them in a dialog; never exit.

    Returns the previous hook (to restore it). Exceptions raised on other threads are logged;
    the dialog is only shown from the UI thread.
    """
    from PySide6.QtCore import QThread
    from PySide6.QtWidgets import QApplication, QMessageBox

    previous = sys.excepthook
    showing = {"now": False}

    def hook(exc_type, exc, tb) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            app = QApplication.instance()
            if app is not None:
                app.quit()
            return
        logger.error("unexpected error", exc_info=(exc_type, exc, tb))
        app = QApplication.instance()
        if app is None or QThread.currentThread() is not app.thread() or showing["now"]:
            return
        showing["now"] = True
        try:
            box = QMessageBox(parent_getter())
            box.setIcon(QMessageBox.Icon.Critical)
            box.setWindowTitle("Unexpected error")
            box.setText(
                f"Something went wrong: {exc_type.__name__}: {exc}\n\n"
                "This is a bug in cxrviewer. The app keeps running; the log has the details."
            )
            box.setDetailedText("".join(traceback.format_exception(exc_type, exc, tb)))
            box.exec()
        finally:
            showing["now"] = False

    sys.excepthook = hook
    threading.excepthook = lambda args: logger.error(
        "unexpected error in thread %s", args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
    return previous


def load_stylesheet() -> str:
    path = Path(__file__).with_name("style.qss")
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        logger.warning("style sheet %s is missing; using the plain style", path)
        return ""


def apply_theme(app) -> None:
    """Fusion with a dark palette (films are read on dark backgrounds) and our style sheet."""
    from PySide6.QtGui import QColor, QPalette

    app.setStyle("Fusion")
    pal = QPalette()
    base, window, text = QColor(30, 30, 33), QColor(40, 40, 44), QColor(225, 225, 228)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: window,
        QPalette.ColorRole.ToolTipBase: QColor(50, 50, 55),
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: QColor(52, 52, 57),
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.BrightText: QColor(255, 80, 80),
        QPalette.ColorRole.Highlight: QColor(56, 110, 180),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: QColor(110, 170, 255),
        QPalette.ColorRole.PlaceholderText: QColor(140, 140, 145),
    }
    for role, color in roles.items():
        pal.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 125))
    app.setPalette(pal)
    app.setStyleSheet(load_stylesheet())


def _parse_size(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None


def save_screenshot(window, out: Path) -> bool:
    """Grab the window as the screen shows it (X11: the screen itself), else render the widget."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    pixmap = None
    if app is not None and app.platformName() == "xcb":
        screen = window.screen() or app.primaryScreen()
        geo = window.frameGeometry()
        pixmap = screen.grabWindow(0, geo.x(), geo.y(), geo.width(), geo.height())
        if pixmap.isNull():
            pixmap = None
    if pixmap is None:
        pixmap = window.grab()
    out.parent.mkdir(parents=True, exist_ok=True)
    ok = pixmap.save(str(out), "PNG")
    if ok:
        logger.info("saved a screenshot of the window (%d×%d) to %s", pixmap.width(), pixmap.height(), out)
    else:
        logger.error("could not save the screenshot to %s", out)
    return ok


def apply_display_options(window, args) -> None:
    """``--classes``, ``--alpha``, ``--colormap``, ``--mode`` (as ``cxrviewer export`` takes them)."""
    changes: dict = {}
    if args.classes is not None:  # a ClassChoice; its names are checked when the model is loaded
        changes.update(policy=args.classes.rule, custom=args.classes.names)
    if args.alpha is not None:
        changes["alpha"] = args.alpha
    if args.colormap is not None:
        changes["colormap"] = args.colormap
    if args.mode is not None:
        changes["mode"] = args.mode
    if changes:
        window.model.set_display(**changes)


def run_app(argv: Sequence[str] | None = None) -> int:
    """Start the app with ``argv`` (files, folders, options); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, qt_args = parser.parse_known_args(argv)
    unknown = [a for a in qt_args if a.startswith("--") and not a.startswith("--platform")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    configure_logging(args.verbose)

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow, icon_path

    from .refcounts import protect_singletons

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "cxrviewer", *qt_args])
    protect_singletons()  # before the first window: PySide6 6.12.0 on Python 3.11 (see refcounts)
    app.setApplicationName("cxrviewer")
    app.setOrganizationName("cxrviewer")
    app.setApplicationVersion(__version__)
    app.setApplicationDisplayName("cxrviewer")
    app.setDesktopFileName("cxrviewer")  # Wayland app id: ties the window to resources/cxrviewer.desktop
    icon = icon_path()
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    apply_theme(app)

    unattended = args.exit_after_result or args.screenshot is not None
    window = MainWindow(
        model_path=args.model, device=args.device, results_dir=args.results_dir, interactive=not unattended,
    )
    apply_display_options(window, args)
    previous_hook = install_excepthook(lambda: window)
    size = _parse_size(args.window_size)
    if size is not None:
        window.resize(*size)
    window.show()

    code = {"value": 0}

    def finish(value: int) -> None:
        code["value"] = value
        app.exit(value)

    if unattended:
        if not args.paths:
            logger.error("--exit-after-result and --screenshot need a film to open")
            return 2

        def snap() -> None:
            # let the window settle (layout, fonts, the strip's thumbnails) before the picture
            QTimer.singleShot(700, lambda: finish(0 if save_screenshot(window, args.screenshot) else 1))

        def shown(ok: bool) -> None:
            if args.screenshot is None or not ok:
                finish(0 if ok else 1)
            elif window.session.scoring:  # a folder: picture it once every film has its badge
                window.scoringFinished.connect(lambda _summary: snap())
            else:
                snap()

        window.predictionShown.connect(shown)
        window.modelLoaded.connect(lambda ok: None if ok else finish(1))
        QTimer.singleShot(EXIT_TIMEOUT_MS, lambda: finish(1))

    if args.paths:
        QTimer.singleShot(0, lambda: window.open_paths(args.paths, recursive=args.recursive))
    try:
        result = app.exec()
    finally:
        sys.excepthook = previous_hook
    window.close()
    return int(code["value"] if unattended else result)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("QT_AUTO_SCREEN_SCALE_FACTOR", "1")
    sys.exit(run_app())
