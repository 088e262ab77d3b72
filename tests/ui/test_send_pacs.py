"""File ▸ Send to PACS (issue #16): the session builds the current film's SR / GSPS on its pool
and C-STOREs them with the node's sender to a real Orthanc; the C-ECHO test; a PNG is refused."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("PySide6")

import pydicom  # noqa: E402
from orthancserver import LOOPBACK, Orthanc, available, free_port, referenced_uids, running_orthanc  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402
from uihelpers import WAIT_MS, open_and_wait, open_in_session  # noqa: E402

from cxrviewer.ui import pacs as pacs_module  # noqa: E402
from cxrviewer.ui.pacs import PacsTarget, load_target  # noqa: E402

pytestmark = [pytest.mark.gui, pytest.mark.skipif(not available(), reason="Orthanc is not installed (apt-get install orthanc)")]

CALLING = "CXRVIEWER"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    with running_orthanc(tmp_path_factory.mktemp("orthanc"), {"cxrviewer": (CALLING, free_port())}) as server:
        yield server


@pytest.fixture
def pacs(orthanc):
    orthanc.clear()
    return orthanc


def target_of(server: Orthanc, **changes) -> PacsTarget:
    values = {"ae_title": server.aet, "host": LOOPBACK, "port": server.dicom_port, "calling_ae": CALLING}
    return PacsTarget(**{**values, **changes})




def test_session_sends_sr_and_gsps_into_the_films_study(qtbot, session, pacs, dicom_film, monkeypatch):
    threads = []
    real_send = pacs_module.send_dicom

    def watch(*args, **kwargs):  # the node's real sender, noting the thread it runs on
        threads.append(threading.current_thread())
        return real_send(*args, **kwargs)

    monkeypatch.setattr(pacs_module, "send_dicom", watch)
    open_in_session(qtbot, session, dicom_film)
    source = pydicom.dcmread(dicom_film, stop_before_pixels=True)
    with qtbot.waitSignal(session.sentToPacs, timeout=WAIT_MS) as blocker:
        assert session.send_to_pacs(target_of(pacs))
    sent = blocker.args[0]
    assert threads and threads[0] is not threading.main_thread()
    assert sent.destination == f"ORTHANC@{LOOPBACK}:{pacs.dicom_port}"
    assert sent.line() == f"Sent the Structured Report and Presentation State of {dicom_film.name} to {sent.destination}"

    stored = {str(ds.SOPClassUID): ds for ds in pacs.datasets()}
    assert set(stored) == {SR_CLASS, GSPS_CLASS}
    assert {k: str(stored[c].SOPInstanceUID) for k, c in (("sr", SR_CLASS), ("gsps", GSPS_CLASS))} == sent.uids
    for ds in stored.values():
        assert ds.StudyInstanceUID == source.StudyInstanceUID
        assert source.SOPInstanceUID in referenced_uids(ds)


def test_send_failure_says_why(qtbot, session, dicom_film):
    open_in_session(qtbot, session, dicom_film)
    closed = free_port()
    with qtbot.waitSignal(session.failed, timeout=WAIT_MS) as blocker:
        assert session.send_to_pacs(PacsTarget("ORTHANC", LOOPBACK, closed, CALLING, ("sr",)))
    title, message = blocker.args
    assert title == "Not sent to the PACS"
    assert f"ORTHANC@{LOOPBACK}:{closed} could not be reached" in message


def test_echo_succeeds_against_orthanc_and_fails_clearly(qtbot, session, pacs):
    with qtbot.waitSignal(session.pacsEchoed, timeout=WAIT_MS) as blocker:
        session.echo_pacs(target_of(pacs))
    assert blocker.args == [True, f"ORTHANC@{LOOPBACK}:{pacs.dicom_port} answered the C-ECHO"]

    closed = free_port()
    with qtbot.waitSignal(session.pacsEchoed, timeout=WAIT_MS) as blocker:
        session.echo_pacs(target_of(pacs, port=closed))
    ok, message = blocker.args
    assert not ok and f"{LOOPBACK}:{closed} could not be reached" in message and "check the host and port" in message

    # Orthanc takes only the AE titles it names: a stranger's association is rejected
    with qtbot.waitSignal(session.pacsEchoed, timeout=WAIT_MS) as blocker:
        session.echo_pacs(target_of(pacs, calling_ae="STRANGER"))
    ok, message = blocker.args
    assert not ok and "rejected the association" in message and "STRANGER" in message


def test_png_film_is_refused_with_the_reason(qtbot, session, window, nih_film, dicom_film):
    open_in_session(qtbot, session, nih_film)
    with qtbot.waitSignal(session.failed, timeout=WAIT_MS) as blocker:
        assert not session.send_to_pacs(PacsTarget("ORTHANC", LOOPBACK, 104, CALLING))
    assert blocker.args[0] == "Nothing to send"
    assert f"{nih_film.name} is not a DICOM image" in blocker.args[1]

    assert open_and_wait(qtbot, window, [nih_film])
    qtbot.waitUntil(lambda: window.model.film is not None, timeout=WAIT_MS)
    assert not window.act_send_pacs.isEnabled()
    assert "is not a DICOM image" in window.act_send_pacs.toolTip()
    assert open_and_wait(qtbot, window, [dicom_film])
    qtbot.waitUntil(window.act_send_pacs.isEnabled, timeout=WAIT_MS)
    assert "Send the film's results" in window.act_send_pacs.toolTip()


@pytest.mark.slow
def test_destination_dialog_tests_and_saves(qtbot, window, pacs, isolated_settings):
    dialog = window.pacs.open()
    dialog.ae.setText(pacs.aet)
    dialog.host.setText(LOOPBACK)
    dialog.port.setValue(pacs.dicom_port)
    dialog.calling.setText(CALLING)
    dialog.kinds["sc"].setChecked(True)
    with qtbot.waitSignal(window.session.pacsEchoed, timeout=WAIT_MS):
        dialog.test_button.click()
    assert dialog.result.text().startswith("✓") and "answered the C-ECHO" in dialog.result.text()

    dialog.ae.setText("")  # an empty AE title is said at once, without the network
    dialog.test_button.click()
    assert dialog.result.text().startswith("✗") and "No PACS destination is set" in dialog.result.text()
    dialog.ae.setText(pacs.aet)
    dialog.ok.click()
    assert not dialog.isVisible()
    saved = load_target(QSettings(str(isolated_settings), QSettings.Format.IniFormat))
    assert saved == PacsTarget(pacs.aet, LOOPBACK, pacs.dicom_port, CALLING, ("sr", "gsps", "sc"))


@pytest.mark.slow
def test_send_button_sends_and_the_status_bar_says_what(qtbot, window, pacs, dicom_film):
    assert open_and_wait(qtbot, window, [dicom_film])
    qtbot.waitUntil(window.act_send_pacs.isEnabled, timeout=WAIT_MS)
    dialog = window.pacs.open(send=True)
    dialog.ae.setText(pacs.aet)
    dialog.host.setText(LOOPBACK)
    dialog.port.setValue(pacs.dicom_port)
    dialog.kinds["gsps"].setChecked(False)
    with qtbot.waitSignal(window.session.sentToPacs, timeout=WAIT_MS):
        dialog.ok.click()
    assert window.statusBar().currentMessage() == (
        f"Sent the Structured Report of {dicom_film.name} to ORTHANC@{LOOPBACK}:{pacs.dicom_port}"
    )
    assert [str(ds.SOPClassUID) for ds in pacs.datasets()] == [SR_CLASS]
