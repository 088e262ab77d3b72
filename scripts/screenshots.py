"""Every screenshot of the app in README.md and docs/, from the real window, at the sizes a
reader uses: one script, so they stay true to the app.

    xvfb-run -a -s "-screen 0 1920x1080x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python scripts/screenshots.py [DOCS_DIR]

At 1280×800 and 1920×1080 it writes ``app-SIZE-folder.png`` (the samples folder scored, the
worklist on, several findings' heatmaps each in its own colour with the legend on the film),
``app-SIZE-measure.png`` (a distance and a cardiothoracic ratio; the Measurements list floats
apart, outside the grab) and
``app-SIZE-compare.png`` (two films side by side); and docs/screenshot.png (the README's: the
folder at 1280×800); docs/heatmaps.md's pictures (the app with every map on and in contour mode,
two ``cxrviewer export`` PNGs at 60%); docs/gui.md's DICOM pictures (gui-window-file/-full,
gui-rotate-markers, gui-measure, gui-header, gui-worklist); then runs scripts/screenshots_reading.py and scripts/screenshot_measure.py
for the other pictures of docs/gui.md (``--only-app``: not those). Uses the bundled demo model (else the tiny test model); settings go to a
temporary file. Each window is grabbed with ``QWidget.grab()``; a PNG over 300 KB is reduced to
256 colours. It also prints any status or panel label that is cut (there should be none).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "scripts"))
LIMIT = 300_000
SIZES = ((1280, 800), (1920, 1080))


def main(argv: list[str]) -> int:
    import screenshot_app
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QImage
    from PySide6.QtWidgets import QLabel

    from cxrviewer.paths import samples_dir
    from cxrviewer.ui.elided_label import ElidedLabel
    from cxrviewer.ui.main_window import MainWindow

    args = [a for a in argv if not a.startswith("--")]
    docs = Path(args[0]) if args else ROOT / "docs"
    tmp = Path(tempfile.mkdtemp())
    app, model = screenshot_app.start(tmp)

    def wait(cond, ms: int = 120_000) -> None:
        screenshot_app.wait(app, cond, ms)

    def settle(window, ms: int = 500) -> None:
        screenshot_app.settle(app, window, ms)

    def check(window, name: str) -> None:
        for label in window.findChildren(QLabel):
            if not label.isVisible() or not label.text() or label.wordWrap():
                continue
            if isinstance(label, ElidedLabel):
                if label.elided() and label.text() not in label.toolTip():
                    print(f"  {name}: {label.objectName()} elided without its text in the tooltip")
            elif label.width() < label.sizeHint().width():
                print(f"  {name}: {label.objectName() or label.text()[:30]!r} is cut ({label.width()} < {label.sizeHint().width()} px)")

    def save(window, name: str) -> None:
        check(window, name)
        image = window.grab().toImage()
        out = docs / name
        image.save(str(out), "PNG", 9)
        if out.stat().st_size > LIMIT:  # a film in a window: fewer colours, the same picture
            image.convertToFormat(QImage.Format.Format_Indexed8).save(str(out), "PNG", 9)
        print(f"wrote {out} ({image.width()}×{image.height()}, {out.stat().st_size // 1000} KB)")

    folder = tmp / "films"
    folder.mkdir()
    for png in sorted(samples_dir().glob("*.png")):
        shutil.copy(png, folder / png.name)
    for width, height in SIZES:
        tag = f"{width}x{height}"
        shutil.rmtree(tmp / "results", ignore_errors=True)
        w = MainWindow(QSettings(str(tmp / f"settings-{tag}.ini"), QSettings.Format.IniFormat), model_path=model,
                       device="cpu", results_dir=tmp / "results")
        w.resize(width, height)
        w.show()
        wait(lambda: w.model.classifier is not None)
        # 1. a folder, scored; several findings' heatmaps, each in its own colour, the legend on the film
        w.open_paths([folder])
        wait(lambda: w.progress is None and all(e.status in ("scored", "error") for e in w.model.entries))
        w.model.set_current(0)
        wait(lambda: w.model.prediction is not None)
        w.model.set_display(policy="positives", mode="heatmap", alpha=0.55)
        settle(w)
        film = w.model.film
        w.view.hovered.emit(film.width * 2 // 3, film.height * 3 // 4)
        settle(w)
        save(w, f"app-{tag}-folder.png")
        if (width, height) == SIZES[0]:
            shutil.copy(docs / f"app-{tag}-folder.png", docs / "screenshot.png")
            print(f"wrote {docs / 'screenshot.png'} (the README's)")
        # 2. measurements: a distance and a cardiothoracic ratio, the list open
        w.model.set_display(policy="none")
        w.measure.start("distance")
        for p in ((0.22, 0.25), (0.22, 0.45)):
            w.view.pointPicked.emit(film.width * p[0], film.height * p[1])
        w.measure.start("ctr")
        for p in ((0.36, 0.62), (0.66, 0.62), (0.12, 0.55), (0.88, 0.55)):
            w.view.pointPicked.emit(film.width * p[0], film.height * p[1])
        w.measure.start(None)
        w.statusBar().clearMessage()  # the tool's hint: a transient message, gone by the time one looks
        w.act_measure_panel.setChecked(True)
        settle(w)
        save(w, f"app-{tag}-measure.png")
        w.act_measure_panel.setChecked(False)
        # 3. compare: the next film beside it, same scale, tops aligned, each with its findings
        w.model.set_display(policy="positives")
        w.act_compare.trigger()
        wait(lambda: w.compare.film is not None)
        settle(w, 800)
        save(w, f"app-{tag}-compare.png")
        w.act_compare.trigger()
        w.close()
    heatmap_pictures(docs, model, tmp, app, wait, settle, save)
    dicom_pictures(docs, model, tmp, wait, settle, save)
    shutil.rmtree(tmp, ignore_errors=True)
    if "--only-app" in argv:
        return 0
    # the pictures of docs/gui.md's reading-room sections, by the scripts that set them up
    sys.path.insert(0, str(ROOT / "scripts"))
    import screenshot_measure
    import screenshots_reading

    code = screenshots_reading.main([str(docs)])
    return code or screenshot_measure.main(docs / "gui-calibrate-ctr.png")


def dicom_pictures(docs: Path, model: Path, tmp: Path, wait, settle, save) -> None:
    """docs/gui.md's reading pictures on DICOM films made from the samples (tests/dicomfactory.py):
    a stored window that clips, full range, markers turned, a distance and an angle, the header
    viewer, and the strip sorted by suspicion."""
    import pydicom
    from dicomfactory import make_generated_corpus
    from PySide6.QtCore import QSettings

    from cxrviewer.types import Measurement
    from cxrviewer.ui.main_window import MainWindow

    corpus = make_generated_corpus(tmp / "dicom")
    ds = pydicom.dcmread(corpus["no_preamble_chest"], force=True)
    ds.WindowCenter, ds.WindowWidth = [560, 400, 500], [80, 300, 900]
    ds.WindowCenterWidthExplanation = ["NARROW", "LUNG", "WIDE"]
    presets = tmp / "presets.dcm"
    ds.save_as(presets)
    w = MainWindow(QSettings(str(tmp / "settings-dicom.ini"), QSettings.Format.IniFormat), model_path=model,
                   device="cpu", results_dir=tmp / "results")
    w.resize(1280, 800)
    w.show()
    wait(lambda: w.model.classifier is not None)
    w.model.set_display(policy="none")

    def show(path: Path) -> None:
        w.act_close_all.trigger()
        w.open_paths([path])
        wait(lambda: w.model.prediction is not None and w.model.film is not None)

    show(presets)
    settle(w)
    save(w, "gui-window-file.png")
    w.act_full_range.trigger()
    settle(w)
    save(w, "gui-window-full.png")
    show(corpus["j2k_mono1"])
    w.model.turn(1)
    w.model.turn(flip=True)
    settle(w)
    save(w, "gui-rotate-markers.png")
    w.model.set_display(orientation=type(w.model.display.orientation)())
    show(corpus["jpeg_baseline_chest"])
    film = w.model.film
    pts = lambda *ps: tuple((film.width * x, film.height * y) for x, y in ps)  # noqa: E731
    w.model.add_measurement(Measurement("distance", pts((0.25, 0.3), (0.25, 0.6))))
    w.model.add_measurement(Measurement("angle", pts((0.55, 0.35), (0.7, 0.6), (0.85, 0.4))))
    w.act_measure_panel.setChecked(True)
    settle(w)
    save(w, "gui-measure.png")
    w.act_measure_panel.setChecked(False)
    w.act_dicom_header.trigger()
    from cxrviewer.ui.header_view import HeaderDialog

    wait(lambda: any(d.isVisible() for d in w.findChildren(HeaderDialog)))
    dialog = next(d for d in w.findChildren(HeaderDialog) if d.isVisible())
    dialog.resize(900, 640)
    settle(w)
    save(dialog, "gui-header.png")
    dialog.close()
    w.act_close_all.trigger()
    w.open_paths([tmp / "films"])
    wait(lambda: w.progress is None and all(e.status in ("scored", "error") for e in w.model.entries))
    w.act_sort_worklist.trigger()
    w.model.set_display(policy="positives")
    settle(w)
    save(w, "gui-worklist.png")
    w.close()


def heatmap_pictures(docs: Path, model: Path, tmp: Path, app, wait, settle, save) -> None:
    """docs/heatmaps.md's pictures: the app with every finding's map on (a colour each, the
    legend), the app in contour mode, and two ``cxrviewer export`` PNGs scaled to 60%."""
    import cv2
    from PySide6.QtCore import QSettings

    from cxrviewer.cli import main as cli
    from cxrviewer.paths import samples_dir
    from cxrviewer.ui.main_window import MainWindow

    w = MainWindow(QSettings(str(tmp / "settings-heatmaps.ini"), QSettings.Format.IniFormat), model_path=model,
                   device="cpu", results_dir=tmp / "results")
    w.resize(1280, 800)
    w.show()
    wait(lambda: w.model.classifier is not None)
    w.open_paths([samples_dir() / "00000103_000.png"])
    wait(lambda: w.model.prediction is not None)
    w.model.set_display(policy="all", mode="heatmap", alpha=0.55)
    settle(w)
    save(w, "heatmaps-app.png")
    w.model.set_display(mode="contour")
    settle(w)
    save(w, "heatmaps-app-contour.png")
    w.close()
    for src, out, extra in (("00001232_002.png", "heatmaps-export.png", ["--classes", "all", "--mode", "contour"]),
                            ("00000103_000.png", "heatmaps-export-heatmap.png", [])):
        full = tmp / out
        assert cli(["export", str(samples_dir() / src), "--out", str(full), "--model", str(model), *extra]) == 0
        img = cv2.imread(str(full))
        small = cv2.resize(img, (img.shape[1] * 3 // 5, img.shape[0] * 3 // 5), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(docs / out), small, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"wrote {docs / out} (cxrviewer export, 60%)")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
