"""File ▸ Open from PACS… against a real Orthanc (search, sortable table, double-click opens,
cancel opens nothing) and File ▸ Open DICOM CD… on a DICOMDIR made with pydicom's FileSet."""

from __future__ import annotations

import datetime as dt

import pytest

pytest.importorskip("PySide6")

import pydicom  # noqa: E402
from dicomfactory import PACS_PATIENTS, make_big_series, make_pacs_studies  # noqa: E402
from orthancserver import LOOPBACK, available, free_port, running_orthanc  # noqa: E402
from PySide6.QtCore import Qt  # noqa: E402
from uihelpers import WAIT_MS  # noqa: E402

from cxrviewer.dimse.retrieve import MANIFEST, RetrieveCache  # noqa: E402
from cxrviewer.ui.pacs import PacsTarget, save_target  # noqa: E402
from cxrviewer.ui.pacs_query_dialog import PacsQueryDialog, open_dicom_cd  # noqa: E402

pytestmark = [pytest.mark.gui]
TODAY = dt.date.today().strftime("%Y%m%d")


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    if not available():
        pytest.skip("Orthanc is not installed (apt-get install orthanc)")
    root = tmp_path_factory.mktemp("pacs-app")
    films = make_pacs_studies(root / "films", TODAY)
    big = make_big_series(root / "big", 40)
    # it knows our AE title (CXRAPP): it answers our C-ECHO
    with running_orthanc(root / "orthanc", {"app": ("CXRAPP", free_port())}, query_retrieve=True) as server:
        for f in [*(f.path for f in films), *big]:
            server.upload(f)
        server.films = films
        yield server


def dialog_for(window, server, tmp_path) -> PacsQueryDialog:
    save_target(window.store, PacsTarget(server.aet, LOOPBACK, server.dicom_port, "CXRAPP"))
    d = PacsQueryDialog(window, cache=RetrieveCache(tmp_path / "cache"))
    d.show()
    return d


def search(qtbot, d, **fields) -> None:
    for name, value in fields.items():
        getattr(d, name).setText(value)
    d.search_button.click()
    qtbot.waitUntil(lambda: not d.busy and d.status.text().endswith(("found", "open it")), timeout=WAIT_MS)


def test_menu_has_the_two_items(window):
    texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "Open from P&ACS…" in texts and "Open DICOM &CD…" in texts


def test_search_sort_and_double_click_opens_the_study(qtbot, window, pacs, tmp_path):
    d = dialog_for(window, pacs, tmp_path)
    assert d.source.currentText() == f"{pacs.aet}@{LOOPBACK}:{pacs.dicom_port}"  # from the preferences
    pid = PACS_PATIENTS[0][0]
    search(qtbot, d, patient_id=pid)
    assert d.table.rowCount() == 3
    d.table.sortItems(0, Qt.SortOrder.AscendingOrder)
    dates = [d.table.item(r, 0).text() for r in range(3)]
    assert dates == sorted(dates) and dates[0] == "2025-01-15"
    study = d.study_at(0)
    assert study.StudyDate == "20250115"
    where = d.table.visualItemRect(d.table.item(0, 1)).center()
    qtbot.mouseClick(d.table.viewport(), Qt.MouseButton.LeftButton, pos=where)  # a double-click follows a click
    qtbot.mouseDClick(d.table.viewport(), Qt.MouseButton.LeftButton, pos=where)
    qtbot.waitUntil(lambda: len(window.model.entries) == 2, timeout=WAIT_MS)
    opened = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in (e.path for e in window.model.entries)}
    assert opened == {f.sop_uid for f in pacs.films if f.study_uid == study.StudyInstanceUID and f.modality == "CR"}
    assert not d.isVisible()  # accepted


def test_open_with_prior_compares_the_previous_study(qtbot, window, pacs, tmp_path):
    d = dialog_for(window, pacs, tmp_path)
    pid = PACS_PATIENTS[0][0]
    search(qtbot, d, patient_id=pid)
    d.table.sortItems(0, Qt.SortOrder.DescendingOrder)
    newest = d.study_at(0)
    assert newest.StudyDate == TODAY
    d.table.selectRow(0)
    d.prior_button.click()
    qtbot.waitUntil(lambda: len(window.model.entries) == 4, timeout=WAIT_MS)
    prior = next(f.study_uid for f in pacs.films if f.patient_id == pid and f.study_date == "20250320")
    uids = [str(pydicom.dcmread(e.path, stop_before_pixels=True).StudyInstanceUID) for e in window.model.entries]
    assert uids[:2] == [newest.StudyInstanceUID] * 2 and uids[2:] == [prior] * 2
    assert window.compare.active and window.compare.index == 2  # the prior beside the study


def test_a_bad_pacs_says_so_without_a_traceback(qtbot, window, pacs, tmp_path):
    d = dialog_for(window, pacs, tmp_path)
    d.test_button.click()
    qtbot.waitUntil(lambda: not d.busy and d.status.text().startswith("✓"), timeout=WAIT_MS)
    assert "answered the C-ECHO" in d.status.text()
    d.source.setEditText(pacs.dicomweb)
    d.test_button.click()
    qtbot.waitUntil(lambda: not d.busy and d.status.text().startswith("✓"), timeout=WAIT_MS)
    d.source.setEditText(f"{pacs.aet}@{LOOPBACK}:1")
    d.search_button.click()
    qtbot.waitUntil(lambda: not d.busy and "could not be reached" in d.status.text(), timeout=WAIT_MS)
    d.test_button.click()
    qtbot.waitUntil(lambda: not d.busy and "could not be reached" in d.status.text() and "…" not in d.status.text(),
                    timeout=WAIT_MS)
    d.source.setEditText("")
    d.search_button.click()
    assert "No PACS is set" in d.status.text()


@pytest.mark.slow
def test_cancel_opens_nothing_and_keeps_nothing(qtbot, window, pacs, tmp_path):
    d = dialog_for(window, pacs, tmp_path)
    search(qtbot, d, patient_id="PACS-BIG-0009")
    assert d.table.rowCount() == 1
    before = [e.path for e in window.model.entries]
    d.open_row(0)
    qtbot.waitUntil(lambda: d.progress.maximum() == 40 and d.progress.value() >= 2, timeout=WAIT_MS)
    d.cancel_button.click()
    qtbot.waitUntil(lambda: not d.busy, timeout=WAIT_MS)
    assert "cancelled" in d.status.text() and "Traceback" not in d.status.text()
    assert [e.path for e in window.model.entries] == before
    assert not list((tmp_path / "cache").glob("*/*/" + MANIFEST)) and not list((tmp_path / "cache").glob(".partial*"))


@pytest.mark.slow
def test_dicom_cd_lists_its_studies_and_opens_one(qtbot, window, pacs, tmp_path, dialogs):
    from pydicom.fileset import FileSet

    fs = FileSet()
    for f in pacs.films:
        if f.patient_id == PACS_PATIENTS[2][0]:
            fs.add(pydicom.dcmread(f.path))
    fs.write(tmp_path / "cd")
    d = open_dicom_cd(window, tmp_path / "cd" / "DICOMDIR")
    assert d is not None and d.table.rowCount() == 3
    assert {d.table.item(r, 1).text() for r in range(3)} == {PACS_PATIENTS[2][0]}
    row = next(r for r in range(3) if d.table.item(r, 2).text() == "2025-01-15")
    d.open_row(row)
    qtbot.waitUntil(lambda: len(window.model.entries) == 2, timeout=WAIT_MS)
    opened = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in (e.path for e in window.model.entries)}
    study = next(f.study_uid for f in pacs.films if f.patient_id == PACS_PATIENTS[2][0] and f.study_date == "20250115")
    assert opened == {f.sop_uid for f in pacs.films if f.study_uid == study}
    (tmp_path / "notcd").write_bytes(b"nothing")
    assert open_dicom_cd(window, tmp_path / "notcd") is None
    assert dialogs and "not a readable DICOMDIR" in dialogs[-1][2]
    (tmp_path / "empty").mkdir()
    assert open_dicom_cd(window, tmp_path / "empty") is None
    assert "holds no DICOM study" in dialogs[-1][2]
