"""Screenshots of the reading-room extras for docs/gui.md, from the real window.

    xvfb-run -a -s "-screen 0 1500x960x24" env QT_QPA_PLATFORM=xcb \\
        .venv/bin/python scripts/screenshots_reading.py [DOCS_DIR]

Writes gui-overlay.png (a DX film made from a sample with a fake patient and technique tags,
the overlay on), gui-worklist-filter.png (16 NIH films from ../shared/data when there, else the
samples, and a damaged file: filtered by a finding, sorted) and
gui-compare-findings.png (two films side by side, each with its own findings list). Uses the
bundled demo model when it is there, else the tiny test model. Settings go to a temporary file.
Each picture is grabbed with QWidget.grab() and kept under 300 KB (256 colours if need be).
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


def main(argv: list[str]) -> int:
    import screenshot_app
    import cv2
    import numpy as np
    from dicomfactory import DX_IMAGE, build_dicom
    from PySide6.QtCore import QSettings
    from PySide6.QtGui import QImage

    from cxrviewer.paths import samples_dir
    from cxrviewer.ui.main_window import MainWindow

    docs = Path(argv[0]) if argv else ROOT / "docs"
    tmp = Path(tempfile.mkdtemp())
    app, model = screenshot_app.start(tmp)

    def wait(cond, ms: int = 60_000) -> None:
        screenshot_app.wait(app, cond, ms)

    def settle(window, ms: int = 400) -> None:
        screenshot_app.settle(app, window, ms)

    def save(window, name: str) -> None:
        image = window.grab().toImage()
        out = docs / name
        image.save(str(out), "PNG", 9)
        if out.stat().st_size > LIMIT:  # a film in a window: fewer colours, the same picture
            image.convertToFormat(QImage.Format.Format_Indexed8).save(str(out), "PNG", 9)
        if out.stat().st_size > LIMIT:
            w = image.width() * 4 // 5
            image.scaledToWidth(w).convertToFormat(QImage.Format.Format_Indexed8).save(str(out), "PNG", 9)
        print(f"wrote {out} ({out.stat().st_size // 1000} KB)")

    def window_on(*paths: Path) -> MainWindow:
        w = MainWindow(QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat), model_path=model,
                       device="cpu", results_dir=tmp / "results")
        w.resize(1440, 900)
        w.show()
        wait(lambda: w.model.classifier is not None)
        w.open_paths(list(paths))
        wait(lambda: w.model.prediction is not None)
        return w

    # 1. the overlay on a DX film with a (fake) patient and technique
    gray = cv2.imread(str(samples_dir() / "00000103_000.png"), cv2.IMREAD_GRAYSCALE).astype(np.uint16) * 16
    dx = build_dicom(
        tmp / "chest-dx.dcm", gray, sop_class=DX_IMAGE, modality="DX", bits_stored=12, window=(2000, 3600),
        PatientSex="F", PatientAge="079Y", StudyDate="20240102", StudyTime="101530", AccessionNumber="ACC-2024-0077",
        InstitutionName="General Hospital", ViewPosition="PA", BodyPartExamined="CHEST", KVP="125",
        ExposureInuAs=3200, DistanceSourceToDetector="1800", DetectorType="SCINTILLATOR", DetectorID="DR-2",
        EstimatedRadiographicMagnificationFactor="1.1", ImagerPixelSpacing=[0.143, 0.143],
    )
    w = window_on(dx)
    w.act_overlay.trigger()
    wait(lambda: bool(w.overlay.main.layer.corners.top_left))
    settle(w)
    save(w, "gui-overlay.png")
    w.act_overlay.trigger()  # off again: the next windows start without it
    w.close()

    # 2. the worklist filtered by a finding, sorted by suspicion
    folder = tmp / "films"
    folder.mkdir()
    nih = ROOT.parent / "shared" / "data" / "nih" / "images"  # more films, more variety, when there
    for png in (sorted(nih.glob("*.png"))[:16] if nih.is_dir() else []) or sorted(samples_dir().glob("*.png")):
        shutil.copy(png, folder / png.name)
    (folder / "zz_damaged.png").write_bytes(b"not a PNG" * 20)
    w = window_on(folder)
    wait(lambda: w.progress is None and all(e.status in ("scored", "error") for e in w.model.entries))
    w.act_sort_worklist.trigger()
    counts: dict[str, int] = {}
    for e in w.model.entries:
        for label in e.prediction.positives if e.prediction is not None else ():
            counts[label] = counts.get(label, 0) + 1
    n = len(w.model.entries)
    label = min(counts, key=lambda k: (abs(counts[k] - n / 2), k))  # a finding some films have
    print("films positive per finding:", counts)
    combo = w.strip.filter_combo
    combo.setCurrentIndex(combo.findText(f"Positive for {label.replace('_', ' ')}"))
    combo.activated.emit(combo.currentIndex())
    settle(w)
    save(w, "gui-worklist-filter.png")

    # 3. compare: each pane with its own findings
    w.strip.set_filter(type(w.strip.film_filter)())
    w.model.set_current(0)
    w.act_compare.trigger()
    wait(lambda: w.compare.film is not None)
    w.compare.panel.policy_buttons["all"].click()
    settle(w, 800)
    save(w, "gui-compare-findings.png")
    w.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
