"""The app's DICOM results: the session writes a Structured Report and a Presentation State of a
DICOM film on its worker, and refuses them, with the reason, for a PNG (issue #15)."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("PySide6")

from uihelpers import WAIT_MS, open_in_session  # noqa: E402

import highdicom as hd  # noqa: E402
import pydicom  # noqa: E402

from cxrviewer.ui.state.export_choice import EXPORT_FILTERS, export_filters, export_target  # noqa: E402

pytestmark = pytest.mark.gui




def test_session_writes_sr_and_gsps_of_a_dicom_film(qtbot, session, dicom_film, tmp_path, monkeypatch):
    from cxrviewer.ui import workers

    threads = []
    original = workers.export_annotated

    def spy(*args, **kwargs):
        threads.append(threading.current_thread())
        return original(*args, **kwargs)

    import cxrviewer.ui.session as session_module

    monkeypatch.setattr(session_module, "export_annotated", spy)
    open_in_session(qtbot, session, dicom_film)
    source = pydicom.dcmread(dicom_film, stop_before_pixels=True, force=True)
    pred = session.model.prediction
    assert all("unavailable" not in name for name in export_filters(session.model.film))
    for fmt, sop_class in (("dicom-sr", "1.2.840.10008.5.1.4.1.1.88.34"), ("dicom-gsps", "1.2.840.10008.5.1.4.1.1.11.1")):
        out = tmp_path / f"{fmt}.dcm"
        with qtbot.waitSignal(session.exported, timeout=WAIT_MS) as blocker:
            assert session.export(out, fmt=fmt)
        assert blocker.args == [str(out)]
        ds = pydicom.dcmread(out)
        assert ds.SOPClassUID == sop_class and ds.StudyInstanceUID == source.StudyInstanceUID
        if fmt == "dicom-sr":
            report = hd.sr.srread(out).content
            probabilities = {}
            for group in report.get_image_measurement_groups():
                values = {m.name.meaning: m.value for m in group.get_measurements()}
                if "Probability" in values:
                    probabilities[str(group.tracking_identifier)] = values["Probability"]
                    ref = group.source_images[0].referenced_sop_instance_uid
                    assert ref == source.SOPInstanceUID
            assert probabilities == pytest.approx({label: pred.probability(label) for label in pred.labels}, abs=1e-6)
        else:
            assert str(ds.ReferencedSeriesSequence[0].ReferencedImageSequence[0].ReferencedSOPInstanceUID) == source.SOPInstanceUID
    assert len(threads) == 2 and all(t is not threading.main_thread() for t in threads)


def test_sr_and_gsps_of_a_png_are_refused_with_the_reason(qtbot, session, nih_images, tmp_path):
    open_in_session(qtbot, session, nih_images[0])
    filters = export_filters(session.model.film)
    marked = [name for name, (fmt, _) in filters.items() if "unavailable: needs a DICOM film" in name]
    assert sorted(filters[name][0] for name in marked) == ["dicom-gsps", "dicom-sr"]
    for name in marked:  # picked anyway: the format it stands for, refused with the reason
        path, fmt, _ = export_target(str(tmp_path / "x"), name)
        told = []
        session.failed.connect(lambda title, text: told.append(text))
        assert not session.export(path, fmt=fmt)
        assert not path.exists() and "is not a DICOM image" in told[-1] and "Secondary Capture" in told[-1]
    assert set(EXPORT_FILTERS.values()) == set(filters.values())
