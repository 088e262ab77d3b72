"""``run_app(argv) -> int``: start the desktop app (``cxrviewer`` with no subcommand).

Options besides files and folders to open:

- ``--model M.onnx`` / ``--device auto|cpu|cuda``: the model (default: ``$CXRVIEWER_MODEL`` or the
  bundled demo model, or the one last chosen with File ▸ Load model);
- ``--backend auto|onnxruntime|openvino`` / ``--precision auto|fp32|bf16|int8``: what runs it
  (default: the settings' ``model/backend`` and ``model/precision``, ``auto``);
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
import socket
import sys
import threading
import traceback
from collections.abc import Sequence
from pathlib import Path

from .. import __version__
from ..errors import NoDisplayError
from ..options import add_display_options, add_model_options

logger = logging.getLogger(__name__)

EXIT_TIMEOUT_MS = 300_000  # --exit-after-result gives up (exit 1) after this long
#: The exit code when there is no display to show the window on: a setup error, as the
#: command line's 2 (Qt itself would abort with SIGABRT, exit 134).
EXIT_NO_DISPLAY = 2



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cxrviewer", description="Chest X-ray viewer with per-finding heatmaps.")
    p.add_argument("paths", nargs="*", type=Path, metavar="FILE_OR_FOLDER", help="films and folders to open")
    add_model_options(p, engine_default=None)
    p.add_argument("--recursive", "-r", action="store_true", help="also open films in sub-folders")
    add_display_options(p, None)  # None: what is not given stays as the user left it last time
    p.add_argument("--exit-after-result", action="store_true", help="quit once the first film's findings are shown (exit 0; 1 on failure)")
    p.add_argument("--screenshot", type=Path, metavar="OUT.png", help="save a picture of the window once the findings are shown, then quit")
    p.add_argument("--window-size", metavar="WxH", help="initial window size, e.g. 1440x900")
    p.add_argument("--results-dir", type=Path, help="where folder runs write their CSV (default: the app's data folder)")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--version", action="version", version=f"cxrviewer {__version__}")
    return p


def _x_display_reachable(display: str) -> bool:
    """Whether an X server answers at ``display`` (``:0``, ``unix:1.0``, ``host:0``): a connect to
    its socket, as Xlib would make, without speaking X (X Window System protocol, 'Connection
    setup': display N is /tmp/.X11-unix/XN locally, TCP port 6000 + N remotely)."""
    host, _, rest = display.rpartition(":")
    try:
        number = int(rest.split(".")[0])
    except ValueError:
        return False
    try:
        if host in ("", "unix") or host.startswith("/"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(1.0)
                path = f"/tmp/.X11-unix/X{number}"
                try:
                    s.connect(path)
                except OSError:
                    s.connect("\0" + path)  # the abstract socket some servers listen on only
            return True
        with socket.create_connection((host, 6000 + number), timeout=1.0):
            return True
    except OSError:
        return False


def display_problem(qt_args: Sequence[str] = (), environ=os.environ, platform: str = sys.platform) -> str | None:
    """Why the window could not be shown (no display), or None when it can be, or when we cannot
    tell. Only for the X11 / Wayland desktops of Linux and the BSDs; other platforms (and Qt
    platforms such as offscreen, vnc, eglfs) are left to Qt."""
    if not platform.startswith(("linux", "freebsd", "openbsd", "netbsd")):
        return None
    chosen = environ.get("QT_QPA_PLATFORM", "")
    args = list(qt_args)
    for i, a in enumerate(args):
        if a in ("-platform", "--platform") and i + 1 < len(args):
            chosen = args[i + 1]
        elif a.startswith(("-platform=", "--platform=")):
            chosen = a.split("=", 1)[1]
    names = {n.split(":")[0].strip() for n in chosen.split(";") if n.strip()}
    if names - {"xcb", "wayland", "wayland-egl"}:
        return None  # offscreen, vnc, eglfs, linuxfb...: no desktop needed
    if environ.get("WAYLAND_DISPLAY") and (not names or names & {"wayland", "wayland-egl"}):
        return None
    display = environ.get("DISPLAY", "")
    if display:
        if _x_display_reachable(display):
            return None
        return f"cannot connect to the display {display!r} (DISPLAY): no X server answers there"
    return "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"


def no_display_message(problem: str) -> str:
    return (
        f"cxrviewer: the desktop app cannot start: {problem}.\n"
        "  To score or annotate films without a screen, use the command line: "
        "`cxrviewer score FILES --out results.csv` or `cxrviewer export FILE --out picture.png`.\n"
        "  To run the app without a screen (tests, screenshots), set QT_QPA_PLATFORM=offscreen, "
        "or start it under Xvfb (xvfb-run cxrviewer)."
    )


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


def show_window(window, size: tuple[int, int] | None = None) -> None:
    """Show the main window: at ``size`` (``--window-size``) when given; maximized on the first
    start (no saved geometry); else as it was left (its saved geometry, maximized included,
    restored by the window and saved again on quit)."""
    if size is not None:
        window.resize(*size)
        window.show()
    elif window.prefs.geometry is None:
        window.showMaximized()
    else:
        window.show()


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


def QApplicationInstance():  # noqa: N802 - mirrors Qt's name
    """The running QApplication, if PySide6 is already imported and one exists (tests)."""
    widgets = sys.modules.get("PySide6.QtWidgets")
    return widgets.QApplication.instance() if widgets is not None else None


def run_app(argv: Sequence[str] | None = None) -> int:
    """Start the app with ``argv`` (files, folders, options); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, qt_args = parser.parse_known_args(argv)
    unknown = [a for a in qt_args if a.startswith("--") and not a.startswith("--platform")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    configure_logging(args.verbose)
    if QApplicationInstance() is None:
        problem = display_problem(qt_args)
        if problem is not None:
            # Qt would abort the process (SIGABRT) with "Reinstalling the application may fix
            # this problem"; say what is wrong and what works instead (the entry point prints it
            # and exits EXIT_NO_DISPLAY)
            raise NoDisplayError(no_display_message(problem))

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from .main_window import MainWindow, icon_path

    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "cxrviewer", *qt_args])
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
        model_path=args.model, device=args.device, backend=args.backend, precision=args.precision,
        results_dir=args.results_dir, interactive=not unattended,
    )
    apply_display_options(window, args)
    previous_hook = install_excepthook(lambda: window)
    show_window(window, _parse_size(args.window_size))

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
    exit_code = int(code["value"] if unattended else result)
    if window.session.pool.activeThreadCount():
        end_process_now(window, exit_code)
    return exit_code


def end_process_now(window, exit_code: int) -> None:
    """End the process at once, without waiting for the jobs still running.

    Quitting used to linger ~1-2 s: the window's close waited for the job in flight, typically a
    folder run's batch in inference (ONNX Runtime cannot be interrupted mid-run), then for
    Python's and Qt's teardown. Its result would be thrown away anyway. The settings are saved
    (closeEvent) and synced here; a folder run's CSV keeps every finished row, and a record cut
    mid-write is cut off when the run is resumed (cxrviewer.results).
    """
    store = getattr(window, "store", None)
    if store is not None and hasattr(store, "sync"):
        store.sync()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(exit_code)


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("QT_AUTO_SCREEN_SCALE_FACTOR", "1")
    sys.exit(run_app())
