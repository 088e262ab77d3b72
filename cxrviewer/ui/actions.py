"""The menus and shortcuts as one table: what each action is called, where it sits, its keys.

Each :class:`ActionSpec` names what it does on the window (``run(window)``, or
``run(window, checked)`` for a check item). :func:`build_menus` makes the ``QAction`` s, puts
them in the menu bar, adds them to the window (so their shortcuts work wherever the focus is)
and returns them by name; the window keeps each as ``act_<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QMessageBox

from .header_view import show_header
from .pacs_query_dialog import open_dicom_cd, open_pacs_dialog

Key = QKeySequence.StandardKey


@dataclass(frozen=True)
class ActionSpec:
    name: str
    text: str
    run: Callable[..., Any]
    keys: tuple[Any, ...] = ()
    tip: str = ""
    checkable: bool = False


SEPARATOR = "-"
RECENT = "recent"  # the File ▸ Open recent submenu, filled when it opens


def _display(**changes: Any) -> Callable[[Any], None]:
    return lambda w: w.model.set_display(**changes)


MENUS: tuple[tuple[str, tuple[ActionSpec | str, ...]], ...] = (
    ("&File", (
        ActionSpec("open", "&Open file…", lambda w: w.open_file_dialog(), (Key.Open,),
                   "Open films (PNG, JPEG, TIFF, BMP, DICOM)"),
        ActionSpec("open_folder", "Open &folder…", lambda w: w.open_folder_dialog(), ("Ctrl+Shift+O",),
                   "Open every film in a folder and score them all"),
        ActionSpec("open_pacs", "Open from P&ACS…", lambda w: open_pacs_dialog(w), (),
                   "Search the PACS (C-FIND or DICOMweb) and open a study's films (as `cxrviewer query` / `retrieve`)"),
        ActionSpec("open_cd", "Open DICOM &CD…", lambda w: open_dicom_cd(w), (),
                   "Open a study from a DICOM CD or USB stick: its DICOMDIR, or its files' headers"),
        RECENT,
        ActionSpec("close_all", "C&lose all", lambda w: w.close_all(), ("Ctrl+Shift+W",),
                   "Empty the worklist (Open adds films and folders to it)"),
        ActionSpec("recursive", "Include sub-folders", lambda w, on: None, (),
                   "Also open the films in sub-folders of an opened folder", checkable=True),
        SEPARATOR,
        ActionSpec("score", "&Score films to CSV…", lambda w: w.score_to_csv_dialog(), (),
                   "Score the opened films into a CSV file you choose"),
        ActionSpec("export", "&Export annotated image…", lambda w: w.export_dialog(), ("Ctrl+E",),
                   "Save the film with its heatmaps and findings as PNG or DICOM Secondary Capture "
                   "(as `cxrviewer export`)"),
        ActionSpec("send_pacs", "Send to &PACS…", lambda w: w.pacs.open(send=True), (),
                   "Send the film's results (SR, Presentation State, Secondary Capture) to the PACS"),
        ActionSpec("pacs_destination", "PACS &destination…", lambda w: w.pacs.open(), (),
                   "Where Send to PACS sends, what it sends, and a C-ECHO test"),
        SEPARATOR,
        ActionSpec("load_model", "&Load model…", lambda w: w.load_model_dialog(), ("Ctrl+M",), "Use another ONNX model"),
        SEPARATOR,
        ActionSpec("quit", "&Quit", lambda w: w.close(), ("Ctrl+Q",)),  # Key.Quit is empty on some platforms
    )),
    ("&View", (
        ActionSpec("fit", "&Fit to window", lambda w: w.view.fit(), ("F",)),
        ActionSpec("one", "&Actual size (1:1)", lambda w: w.view.actual_size(), ("Z",)),
        ActionSpec("zoom_in", "Zoom &in", lambda w: w.view.zoom_by(1.25), (Key.ZoomIn, "+", "=")),
        ActionSpec("zoom_out", "Zoom &out", lambda w: w.view.zoom_by(0.8), (Key.ZoomOut, "-")),
        SEPARATOR,
        ActionSpec("invert", "&Invert", lambda w, on: w.model.set_display(invert=on), ("I",),
                   "Show the film in negative", checkable=True),
        SEPARATOR,
        ActionSpec("rotate_right", "Rotate &right", lambda w: w.model.turn(1), (".",), "Turn the film a quarter clockwise (display only)"),
        ActionSpec("rotate_left", "Rotate &left", lambda w: w.model.turn(-1), (",",), "Turn the film a quarter anticlockwise (display only)"),
        ActionSpec("flip_h", "Flip &horizontal", lambda w: w.model.turn(flip=True), ("H",), "Mirror the film left-right (display only)"),
        ActionSpec("flip_v", "Flip &vertical", lambda w: w.model.turn(flip=True, vertical=True), ("V",), "Mirror the film top-bottom (display only)"),
        ActionSpec("markers", "Orientation &markers", lambda w, on: w.model.set_display(markers=on), ("M",),
                   "Patient orientation, view and laterality on the film", checkable=True),
        ActionSpec("overlay", "&Technique and demographics overlay", lambda w, on: w.overlay.set_on(on), ("O",),
                   "Patient, study and exposure text in the corners (on screen only: never exported)", checkable=True),
        SEPARATOR,
        ActionSpec("compare", "&Compare side by side", lambda w, on: w.compare.toggle(on), ("Ctrl+Shift+C",),
                   "A second film (the next one) beside the current one, with its own findings", checkable=True),
        ActionSpec("compare_next", "Compare with ne&xt film", lambda w: w.compare.step(+1), ("Ctrl+Shift+N",)),
        ActionSpec("compare_link", "&Link compared views", lambda w, on: w.compare.set_linked(on), ("Ctrl+Shift+L",),
                   "Zoom, pan and window/level of the second pane follow the main view", checkable=True),
        ActionSpec("dicom_header", "DICOM &header…", lambda w: show_header(w), ("Ctrl+Shift+H",),
                   "Every element of the film's DICOM file, read only"),
        ActionSpec("sort_worklist", "&Sort films by suspicion", lambda w: w.model.sort_by_suspicion(), ("S",),
                   "Films with findings above threshold first (highest probability, then most findings); unreadable last"),
        ActionSpec("next", "&Next film", lambda w: w.strip.step(+1), ("PgDown", "N")),
        ActionSpec("prev", "&Previous film", lambda w: w.strip.step(-1), ("PgUp", "P")),
    )),
    ("&Levels", (
        ActionSpec("reset_wl", "&Film's own window", lambda w: w.model.set_window(None), ("R",),
                   "Back to the film's own window, the one the model saw (right-drag or Ctrl+drag changes it)"),
        ActionSpec("full_range", "F&ull range", lambda w: w.levels.full_range(), ("0",),
                   "Every value of the film, nothing clipped"),
        ActionSpec("auto_window", "&Automatic (1st-99th percentile)", lambda w: w.levels.automatic(), ("A",),
                   "A window from the 1st to the 99th percentile of the film's values"),
        SEPARATOR,
        *(ActionSpec(f"preset_{i}", f"Preset {i}", lambda w, i=i: w.levels.apply_preset(i), (str(i),),
                     "A window or VOI LUT stored in the file") for i in range(1, 10)),
    )),
    ("&Measure", (
        ActionSpec("measure_distance", "&Distance", lambda w: w.measure.start("distance"), ("D",),
                   "Measure a distance: click its two ends (mm from the file's pixel spacing, else pixels)"),
        ActionSpec("measure_angle", "&Angle", lambda w: w.measure.start("angle"), ("G",),
                   "Measure an angle: click three points, the vertex second"),
        ActionSpec("measure_ctr", "&Cardiothoracic ratio", lambda w: w.measure.start("ctr"), ("T",),
                   "Cardiothoracic ratio: click the heart's widest width, then the thorax's widest inner width"),
        ActionSpec("measure_calibrate", "&Calibrate…", lambda w: w.measure.start("calibrate"), ("K",),
                   "Draw a line over something of known length and give its length in mm"),
        ActionSpec("measure_reset_calibration", "&Reset calibration", lambda w: w.measure.reset_calibration(), (),
                   "Measure with the file's own calibration again (or in pixels)"),
        ActionSpec("measure_stop", "&Stop measuring", lambda w: w.measure.start(None), ("Esc",)),
        ActionSpec("measure_delete", "D&elete selected measurement", lambda w: w.measure.delete_selected(), (Key.Delete,)),
        SEPARATOR,
        ActionSpec("measure_panel", "Measurements &list", lambda w, on: w.measure.show_panel(on), (),
                   "Show the panel that lists this film's measurements (it floats: the film keeps its zoom)",
                   checkable=True),
    )),
    ("&Heatmaps", (
        ActionSpec("positives", "&Positives only", _display(policy="positives"), ("Ctrl+1",)),
        ActionSpec("all", "&All", _display(policy="all"), ("Ctrl+2",)),
        ActionSpec("none", "&None", _display(policy="none"), ("Ctrl+0",)),
        ActionSpec("contour", "&Contour mode", lambda w, on: w.model.set_display(mode="contour" if on else "heatmap"),
                   ("C",), checkable=True),
    )),
    ("&Help", (
        ActionSpec("shortcuts", "&Keyboard shortcuts", lambda w: w.show_shortcuts(), ("Ctrl+/",),
                   "Every key of the menus (the same table as docs/gui.md)"),
        ActionSpec("about", "&About cxrviewer", lambda w: w.show_about(), ("F1",)),
        ActionSpec("about_qt", "About &Qt", lambda w: QMessageBox.aboutQt(w)),
    )),
)


def make_action(window: QMainWindow, spec: ActionSpec) -> QAction:
    action = QAction(spec.text, window)
    action.setObjectName(f"act_{spec.name}")
    if spec.keys:
        action.setShortcuts([QKeySequence(k) for k in spec.keys])
    if spec.tip:
        action.setStatusTip(spec.tip)
        action.setToolTip(spec.tip)
    action.setCheckable(spec.checkable)
    if spec.checkable:
        action.toggled.connect(lambda on, run=spec.run: run(window, on))
    else:
        action.triggered.connect(lambda _checked=False, run=spec.run: run(window))
    window.addAction(action)  # shortcuts work wherever the focus is in the window
    return action


def build_menus(window: QMainWindow, menus=MENUS) -> tuple[dict[str, QAction], QMenu | None]:
    """The menu bar from ``menus``: the actions by name, and the Open recent submenu."""
    actions: dict[str, QAction] = {}
    recent: QMenu | None = None
    for title, items in menus:
        menu = window.menuBar().addMenu(title)
        for item in items:
            if item == SEPARATOR:
                menu.addSeparator()
            elif item == RECENT:
                recent = menu.addMenu("Open &recent")
            else:
                actions[item.name] = make_action(window, item)
                menu.addAction(actions[item.name])
    return actions, recent
