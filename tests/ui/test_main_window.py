"""The main window on real films: findings, heatmap toggles, opacity, W/L, export, errors."""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, QSettings, Qt, QUrl  # noqa: E402
from PySide6.QtGui import QDropEvent, QMouseEvent  # noqa: E402
from uihelpers import open_and_wait, shown  # noqa: E402

from cxrviewer.export import export_png  # noqa: E402
from cxrviewer.io import read_film  # noqa: E402
from cxrviewer.render import RenderOptions, picture  # noqa: E402

pytestmark = pytest.mark.gui


def expected(window, **changes) -> np.ndarray:
    """What the window must show: the core renderer on the cached prediction."""
    m = window.model
    return picture(m.film, m.prediction, dataclasses.replace(m.render_options(), **changes))


def hot_labels(prediction, n=2) -> list[str]:
    """Labels whose class maps are not empty (a toggle must change the picture)."""
    peaks = [(float(prediction.class_map(label).max()), label) for label in prediction.labels]
    return [label for peak, label in sorted(peaks, reverse=True)[:n] if peak > 0]


def visible_pair(window) -> tuple[str, str]:
    """Two labels each of which changes the picture (the second drawn over the first): which
    pair depends on the film, since a weaker map can hide under a stronger one everywhere."""
    m = window.model
    base = m.render_options()
    draw = lambda *classes: picture(m.film, m.prediction, dataclasses.replace(base, classes=classes))  # noqa: E731
    empty = draw()
    for a in hot_labels(m.prediction, n=len(m.prediction.labels)):
        only_a = draw(a)
        if np.array_equal(only_a, empty):
            continue
        for b in hot_labels(m.prediction, n=len(m.prediction.labels)):
            if b != a and not np.array_equal(draw(a, b), only_a):
                return a, b
    raise AssertionError("no two findings of this film change the picture")


def count_runs(window, monkeypatch) -> list[int]:
    """Count forward passes of the window's classifier from now on."""
    clf = window.model.classifier
    calls = [0]
    original = clf.run

    def run(batch):
        calls[0] += 1
        return original(batch)

    monkeypatch.setattr(clf, "run", run)
    return calls


def test_open_nih_film_shows_every_label_sorted(qtbot, window, nih_film, classifier, dialogs):
    assert open_and_wait(qtbot, window, [nih_film]) is True
    m = window.model
    assert window.windowTitle() == nih_film.name  # shown as "NAME — cxrviewer": Qt adds the app's name
    assert sorted(window.panel.labels()) == sorted(classifier.info.labels)
    probs = [m.prediction.probability(label) for label in window.panel.labels()]
    assert probs == sorted(probs, reverse=True)
    for label in m.prediction.labels:
        p, t = m.prediction.probability(label), m.prediction.thresholds[m.prediction.labels.index(label)]
        assert window.panel.is_highlighted(label) == (p >= t)
        assert window.panel.bar(label).threshold == pytest.approx(t)
    # default: the positives' heatmaps are on, and the view shows exactly the core renderer's picture
    assert m.shown_classes() == m.prediction.positives
    assert np.array_equal(shown(qtbot, window), expected(window))
    clf = window.model.classifier
    # what runs it: the settings' auto choice (ONNX Runtime or OpenVINO on this CPU), and why
    assert clf.engine.device == "cpu" and window.session.backend == window.session.precision == "auto"
    shown_device = " · CPU" if clf.engine.backend == "onnxruntime" else " · OpenVINO CPU"
    assert "tiny-test-1" in window.model_label.text() and window.model_label.text().endswith(shown_device)
    assert clf.provider in window.model_label.toolTip() and str(clf.engine) in window.model_label.toolTip()
    assert window.time_label.text().startswith("inference ")
    assert "1024 × 1024 px" in window.film_label.text()
    assert window.demo_banner.isVisible() and "not for diagnosis" in window.demo_banner.text()
    assert "docs/models.md" in window.demo_banner.text()  # how to get a real model
    assert dialogs == []


def test_open_real_dicom(qtbot, window, dicom_film, classifier):
    assert open_and_wait(qtbot, window, [dicom_film]) is True
    film = window.model.film
    assert film.metadata["format"] == "dicom"
    assert window.windowTitle().endswith(dicom_film.name)
    assert sorted(window.panel.labels()) == sorted(classifier.info.labels)
    assert np.array_equal(shown(qtbot, window), expected(window))
    assert "(file)" in window.wl_label.text()  # opened with the file's own window


def test_toggling_classes_changes_the_overlay_and_back_without_running_the_model(qtbot, window, nih_film, monkeypatch):
    open_and_wait(qtbot, window, [nih_film])
    runs = count_runs(window, monkeypatch)
    window.panel.policy_buttons["none"].click()
    base = shown(qtbot, window)
    assert np.array_equal(base, expected(window)) and window.model.shown_classes() == ()
    a, b = visible_pair(window)

    window.panel.checkbox(a).click()
    only_a = shown(qtbot, window)
    assert not np.array_equal(only_a, base)
    assert np.array_equal(only_a, expected(window, classes=(a,)))

    window.panel.checkbox(b).click()
    both = shown(qtbot, window)
    assert not np.array_equal(both, only_a)
    assert np.array_equal(both, expected(window, classes=(a, b)))

    window.panel.checkbox(a).click()
    window.panel.checkbox(b).click()
    assert np.array_equal(shown(qtbot, window), base)  # toggled back: exactly the film again
    assert window.model.display.policy == "custom"

    window.panel.policy_buttons["all"].click()
    assert all(window.panel.checkbox(label).isChecked() for label in window.panel.labels())
    window.panel.policy_buttons["positives"].click()
    assert window.model.shown_classes() == window.model.prediction.positives
    assert runs[0] == 0  # no toggle ran the model


def test_opacity_colormap_and_contour_mode(qtbot, window, nih_film, monkeypatch):
    open_and_wait(qtbot, window, [nih_film])
    runs = count_runs(window, monkeypatch)
    window.panel.policy_buttons["all"].click()
    before = shown(qtbot, window)
    window.panel.opacity_slider.setValue(80)
    assert window.model.display.alpha == pytest.approx(0.8)
    after = shown(qtbot, window)
    assert not np.array_equal(before, after)
    assert np.array_equal(after, expected(window, alpha=0.8))
    assert window.panel.opacity_value.text() == "80%"

    window.panel.colormap_combo.setCurrentText("inferno")
    assert window.model.display.colormap == "inferno"
    assert np.array_equal(shown(qtbot, window), expected(window, colormap="inferno"))

    window.panel.contour_check.setChecked(True)
    assert window.model.display.mode == "contour" and window.act_contour.isChecked()
    assert np.array_equal(shown(qtbot, window), expected(window, mode="contour"))
    window.panel.opacity_slider.setValue(0)
    assert np.array_equal(shown(qtbot, window), expected(window, classes=()))  # alpha 0: the film alone
    assert runs[0] == 0


def test_export_equals_export_png(qtbot, window, nih_film, tmp_path, monkeypatch):
    open_and_wait(qtbot, window, [nih_film])
    window.panel.policy_buttons["all"].click()
    window.panel.opacity_slider.setValue(55)
    window.panel.colormap_combo.setCurrentText("turbo")
    out = tmp_path / "gui.png"
    from PySide6.QtWidgets import QFileDialog

    monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, **k: (str(out), "PNG image (*.png)")))
    assert window.act_export.isEnabled()
    with qtbot.waitSignal(window.session.exported, timeout=20_000) as blocker:
        window.act_export.trigger()  # written off the UI thread, like every other job
    assert blocker.args == [str(out)] and out.is_file()
    m = window.model
    ref = export_png(
        tmp_path / "core.png", m.film, m.prediction, m.classifier.info,
        RenderOptions(classes=m.prediction.labels, alpha=0.55, colormap="turbo"),
    )
    assert out.read_bytes() == ref.read_bytes()


def _mouse(view, kind, pos: QPoint, button, buttons, modifiers=Qt.KeyboardModifier.NoModifier):
    from PySide6.QtWidgets import QApplication

    p = QPointF(pos)
    event = QMouseEvent(kind, p, view.viewport().mapToGlobal(p), button, buttons, modifiers)
    QApplication.sendEvent(view.viewport(), event)


def test_export_dicom_sc_from_the_gui_keeps_or_replaces_the_study(qtbot, window, dicom_film, tmp_path, monkeypatch):
    import pydicom
    from PySide6.QtWidgets import QFileDialog

    from cxrviewer.ui.state.export_choice import EXPORT_FILTERS

    open_and_wait(qtbot, window, [dicom_film])
    source = pydicom.dcmread(dicom_film, stop_before_pixels=True)
    filters = {anon: name for name, (fmt, anon) in EXPORT_FILTERS.items() if fmt == "dicom-sc"}
    for anonymize, name in ((False, "same"), (True, "anon")):
        # the user types a name without a suffix: the filter decides the format and the suffix
        chosen = (str(tmp_path / name), filters[anonymize])
        monkeypatch.setattr(QFileDialog, "getSaveFileName", staticmethod(lambda *a, _c=chosen, **k: _c))
        with qtbot.waitSignal(window.session.exported, timeout=20_000):
            window.act_export.trigger()
        ds = pydicom.dcmread(tmp_path / f"{name}.dcm")
        assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
        assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
        assert ds.SOPInstanceUID != source.SOPInstanceUID
        if anonymize:
            assert ds.StudyInstanceUID != source.StudyInstanceUID
            assert str(ds.get("PatientID", "")) != str(source.PatientID)  # the source has one: "Covid0000"
        else:
            assert ds.StudyInstanceUID == source.StudyInstanceUID
            assert str(ds.PatientID) == str(source.PatientID)


def test_window_level_drag_changes_pixels_and_resets(qtbot, window, nih_film):
    open_and_wait(qtbot, window, [nih_film])
    view = window.view
    before = shown(qtbot, window)
    center = view.viewport().rect().center()
    right = Qt.MouseButton.RightButton
    _mouse(view, QEvent.Type.MouseButtonPress, center, right, right)
    _mouse(view, QEvent.Type.MouseMove, center + QPoint(-120, -60), Qt.MouseButton.NoButton, right)
    _mouse(view, QEvent.Type.MouseButtonRelease, center + QPoint(-120, -60), right, Qt.MouseButton.NoButton)
    wl = window.model.display.window
    # narrower window, higher level, in the PNG's own values (0..255)
    assert wl is not None and wl.width < 255.0 and wl.center > 127.5
    after = shown(qtbot, window)
    assert not np.array_equal(before, after)
    assert np.array_equal(after, expected(window))
    assert "(file)" not in window.wl_label.text()

    # Ctrl + left-drag does the same
    left = Qt.MouseButton.LeftButton
    ctrl = Qt.KeyboardModifier.ControlModifier
    _mouse(view, QEvent.Type.MouseButtonPress, center, left, left, ctrl)
    _mouse(view, QEvent.Type.MouseMove, center + QPoint(200, 0), Qt.MouseButton.NoButton, left, ctrl)
    _mouse(view, QEvent.Type.MouseButtonRelease, center + QPoint(200, 0), left, Qt.MouseButton.NoButton, ctrl)
    assert window.model.display.window.width > wl.width

    window.act_reset_wl.trigger()
    assert window.model.display.window is None
    assert np.array_equal(shown(qtbot, window), before)

    window.act_invert.trigger()
    inverted = shown(qtbot, window)
    assert np.array_equal(inverted, expected(window, invert=True))
    window.act_invert.trigger()
    assert np.array_equal(shown(qtbot, window), before)


def test_unreadable_file_shows_its_message(qtbot, window, tmp_path, dialogs):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"definitely not a PNG" * 20)
    with pytest.raises(Exception) as info:
        read_film(bad)
    assert open_and_wait(qtbot, window, [bad]) is False
    assert len(dialogs) == 1
    kind, title, text = dialogs[0]
    assert kind == "warning" and "broken.png" in title
    assert text == str(info.value)
    assert window.model.entry.status == "error"
    assert not window.view.has_image()
    assert str(info.value) in window.panel.status_label.text()


def test_ood_flag_shows_a_warning(qtbot, window, nih_film):
    open_and_wait(qtbot, window, [nih_film])
    assert not window.panel.ood_label.isVisible()
    from dataclasses import replace

    pred = window.model.prediction
    flagged = replace(pred, ood_score=9.5, ood_flag=True)
    window.model.update_entry(window.model.current, prediction=flagged)
    assert window.panel.ood_label.isVisible()
    assert "9.50" in window.panel.ood_label.text() and "unreliable" in window.panel.ood_label.text()


def test_drop_opens_files(qtbot, window, nih_film):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(nih_film))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.predictionShown, timeout=20_000):
        window.dropEvent(event)
    assert window.model.entry.path == nih_film


def test_zoom_fit_and_actual_size(qtbot, window, nih_film):
    open_and_wait(qtbot, window, [nih_film])
    view = window.view
    fitted = view.zoom
    assert 0 < fitted < 1  # a 1024 px film in an 800 px high window
    window.act_one.trigger()
    assert view.zoom == pytest.approx(1.0)
    assert window.status_extras.zoom.text() == "zoom 100%"
    view.zoom_by(2.0, view.viewport().rect().center())
    assert view.zoom == pytest.approx(2.0)
    window.act_fit.trigger()
    assert view.zoom == pytest.approx(fitted)
    # the cursor readout
    window.view.hovered.emit(5, 7)
    value = int(window.model.film.gray.stored[7, 5])  # a PNG's values are its samples
    assert window.cursor_label.text().split(" · ")[0] == f"x 5  y 7  value {value}"  # then the finding there


def test_settings_persist_between_runs(qtbot, make_window, nih_film):
    w = make_window()
    open_and_wait(qtbot, w, [nih_film])
    w.panel.opacity_slider.setValue(65)
    w.panel.colormap_combo.setCurrentText("viridis")
    w.panel.contour_check.setChecked(True)
    w.panel.policy_buttons["all"].click()
    w.act_invert.trigger()
    w.close()
    w2 = make_window()
    d = w2.model.display
    assert (d.alpha, d.colormap, d.mode, d.policy, d.invert) == (0.65, "viridis", "contour", "all", True)
    assert w2.panel.opacity_slider.value() == 65
    assert str(nih_film.resolve()) in w2.prefs.recent
    assert w2.prefs.last_folder == str(nih_film.parent.resolve())


def test_load_another_model_rescores(qtbot, window, nih_film, tmp_path):
    from tinymodel import build_tiny_model, tiny_info

    open_and_wait(qtbot, window, [nih_film])
    other = build_tiny_model(tmp_path / "three.onnx", tiny_info(64, labels=("Mass", "Nodule", "Effusion"), demo=False, model_version="three-1"), seed=3)
    with qtbot.waitSignal(window.predictionShown, timeout=20_000):
        window.load_model_file(other)
    assert sorted(window.panel.labels()) == ["Effusion", "Mass", "Nodule"]
    assert window.model.prediction.model_version == "three-1"
    assert not window.demo_banner.isVisible()
    assert "three-1" in window.model_label.text() and "int8" not in window.model_label.text()


def test_an_int8_model_says_so(qtbot, window, tmp_path):
    from cxrviewer.model_card import model_card
    from cxrviewer.ui.about import AboutDialog
    from tinymodel import build_tiny_model, tiny_info

    q = build_tiny_model(tmp_path / "q.onnx", tiny_info(64, model_version="q-1", precision="int8"))
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000):
        window.load_model_file(q)
    assert "q-1" in window.model_label.text() and "int8" in window.model_label.text()
    dlg = AboutDialog(model_card(window.model.classifier), window)
    assert "precision" in dlg.text.toPlainText() and "int8" in dlg.text.toPlainText()
    dlg.close()


def test_bad_model_file_is_reported(qtbot, window, tmp_path, dialogs):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with qtbot.waitSignal(window.modelLoaded, timeout=20_000) as blocker:
        window.load_model_file(bad)
    assert blocker.args == [False]
    assert dialogs and "bad.onnx" in dialogs[-1][2]
    assert window.model.classifier is not None  # the previous model stays


def test_about_box_has_versions_model_card_and_disclaimer(window):
    from cxrviewer.model_card import model_card
    from cxrviewer.ui.about import DISCLAIMER, AboutDialog

    dlg = AboutDialog(model_card(window.model.classifier), window)
    text = dlg.text.toPlainText()
    assert "tiny-test-1" in text and "DEMO MODEL" in text
    assert "Cardiomegaly" in text and "onnxruntime" in text and "PySide6" in text
    assert DISCLAIMER.split(".")[0] in text
    # the training line reads as text, not as raw JSON (issue #13)
    assert "data: none: a synthetic test model · films: 0" in text and '{"data"' not in text
    dlg.close()


def test_unexpected_exception_is_logged_and_shown(qtbot, window, dialogs, caplog):
    import sys

    from cxrviewer.ui.app import install_excepthook

    previous = install_excepthook(lambda: window)
    try:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
    finally:
        sys.excepthook = previous
    assert any(kind == "exec" and "boom" in text for kind, _t, text in dialogs)
    assert "unexpected error" in caplog.text
    assert window.isVisible()


def test_window_level_is_described_in_the_films_units():
    from cxrviewer.types import Film
    from cxrviewer.ui.state.status_text import describe_film, describe_window

    from cxrviewer.types import Grayscale, Voi

    px = np.zeros((4, 6), np.float32)
    stored = np.arange(24, dtype=np.uint16).reshape(4, 6) * 40
    gray = Grayscale(stored, default=Voi("LUNG", 550.0, 1024.0), presets=(Voi("LUNG", 550.0, 1024.0),))
    dicom = Film(px, metadata={"format": "dicom"}, pixel_spacing=(0.2, 0.1), gray=gray)
    assert describe_window(dicom, None) == "W 1024  L 550 · LUNG (file)"
    assert describe_window(dicom, Voi("", 294.0, 512.0)) == "W 512  L 294"
    assert describe_window(Film(px), None) == "W 1  L 0.5 · film (file)"
    assert describe_film(dicom) == "6 × 4 px · pixel 0.100 × 0.200 mm"


def test_recent_menu_and_command_line_display_options(qtbot, window, nih_film):
    from cxrviewer.ui.app import apply_display_options, build_parser

    open_and_wait(qtbot, window, [nih_film])
    window._fill_recent()
    texts = [a.text() for a in window.recent_menu.actions()]
    assert str(nih_film.resolve()) in texts and "Clear the list" in texts
    args = build_parser().parse_args(["--classes", "mass,EFFUSION", "--alpha", "0.7", "--colormap", "hot"])
    apply_display_options(window, args)
    assert window.model.shown_classes() == ("Effusion", "Mass")  # by name, any case, in the model's order
    assert window.model.display.alpha == 0.7 and window.model.display.colormap == "hot"
    assert np.array_equal(shown(qtbot, window), expected(window))
    assert window.panel.checkbox("Mass").isChecked() and not window.panel.checkbox("Nodule").isChecked()


def test_empty_window_says_how_to_open_a_film(window):
    assert window.windowTitle() == "cxrviewer"
    assert "Ctrl+O" in window.view.placeholder
    assert "Open a film" in window.panel.status_label.text()
    assert not window.act_export.isEnabled()


def test_the_engine_comes_from_the_settings_unless_given(qtbot, make_window, isolated_settings):
    from cxrviewer.ui.settings import AppSettings

    store = QSettings(str(isolated_settings), QSettings.Format.IniFormat)
    prefs = AppSettings.load(store)
    assert (prefs.backend, prefs.precision) == ("auto", "auto")  # the default
    prefs.backend, prefs.precision = "onnxruntime", "fp32"
    prefs.save(store)
    w = make_window()
    assert (w.session.backend, w.session.precision) == ("onnxruntime", "fp32")
    assert str(w.model.classifier.engine) == "ONNX Runtime CPU fp32"
    w.close()
    store.setValue("model/backend", "tensorflow")  # a value this version does not know: auto
    store.setValue("model/precision", "fp8")
    store.sync()
    assert (AppSettings.load(store).backend, AppSettings.load(store).precision) == ("auto", "auto")
    given = make_window(backend="onnxruntime", precision="auto")  # the command line wins
    assert (given.session.backend, given.session.precision) == ("onnxruntime", "auto")


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                    reason="OpenVINO is not installed (pip install 'cxrviewer[openvino]')")
def test_the_app_scores_on_openvino(qtbot, make_window, nih_images):
    """OpenVINO in the app's pool threads: its infer requests must outlive a Qt pool thread's
    Python state (kept per thread, they were destroyed with it and the app crashed). Two films,
    each scored on a pool thread (a film opened again is only shown: it is in the worklist)."""
    w = make_window(backend="openvino", precision="fp32")
    assert str(w.model.classifier.engine) == "OpenVINO CPU fp32"
    for film in nih_images[:2]:
        open_and_wait(qtbot, w, [film])
        assert w.model.prediction is not None and w.model.prediction.model_version == "tiny-test-1"
    assert w.model_label.text().endswith(" · OpenVINO CPU")
