"""View ▸ DICOM header: the current film's elements, read only, filterable (#14)."""

from __future__ import annotations

import pytest

pytest.importorskip("PySide6")

from uihelpers import open_and_wait  # noqa: E402

pytestmark = pytest.mark.gui


def test_the_header_of_a_dicom_film(qtbot, window, dicom_corpus, nih_film):
    open_and_wait(qtbot, window, [dicom_corpus["j2k_mono1"]])
    window.act_dicom_header.trigger()
    dialog = window.header_dialog
    rows = {r[1].strip(): r for r in dialog.rows()}
    assert rows["Rows"][3] == ("1760" if dicom_corpus.real else "512") and rows["Rows"][0] == "(0028,0010)"
    assert rows["PatientOrientation"][3] == "['R', 'F']"
    assert "TransferSyntaxUID" in rows and "PixelData" not in rows
    dialog.filter.setText("patientorientation")
    assert [r[1].strip() for r in dialog.rows()] == ["PatientOrientation"]
    dialog.filter.setText("orientation")
    assert [r[1].strip() for r in dialog.rows()] == ["CassetteOrientation", "PatientOrientation"]
    dialog.close()

    open_and_wait(qtbot, window, [nih_film])
    window.header_dialog = None
    window.act_dicom_header.trigger()
    assert window.header_dialog is None  # a PNG has no DICOM header
    assert "needs a DICOM film" in window.statusBar().currentMessage()
