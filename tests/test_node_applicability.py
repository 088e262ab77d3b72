"""The DICOM node and the applicability gate, against a real PACS (Debian's Orthanc): a lateral
chest film and a tibia CR get no results sent, one log line each (no patient data), and end
``not_applicable`` (``listen --status`` shows them); with ``score_all`` they are scored and sent."""

from __future__ import annotations

import logging

import pydicom
import pytest
from orthancserver import LOOPBACK, available, referenced_uids

from gatefilms import LATERAL_REASON, TIBIA_REASON, frontal_chest, lateral_chest, tibia_cr

pynetdicom = pytest.importorskip("pynetdicom")

pytestmark = pytest.mark.skipif(not available(), reason="Orthanc is not installed (apt-get install orthanc)")

NODE_AET = "CXRVIEWER"
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"


@pytest.fixture
def films(tmp_path):
    folder = tmp_path / "films"
    return {"lateral": lateral_chest(folder), "tibia": tibia_cr(folder), "frontal": frontal_chest(folder)}


def start_node(spool, model, port, pacs, **kw):
    from cxrviewer.model import Classifier
    from cxrviewer.dimse import parse_destination
    from cxrviewer.node import NodeConfig
    from cxrviewer.node.service import Node

    config = NodeConfig(ae_title=NODE_AET, host=LOOPBACK, port=port, spool=spool, outputs=("sr",),
                        destinations=(parse_destination(pacs.destination),), **kw)
    node = Node(config, Classifier.load(model, device="cpu", threads=1), workers=1, drain_seconds=5)
    node.start()
    return node


def store(files, port: int) -> list[int]:
    from pynetdicom import AE

    ae = AE(ae_title="MODALITY")
    ae.dimse_timeout = 30
    for p in files:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(LOOPBACK, port, ae_title=NODE_AET)
    assert assoc.is_established
    try:
        return [assoc.send_c_store(p).Status for p in files]
    finally:
        assoc.release()


def sr_sources(pacs) -> list[str]:
    """The source instances the SRs in the PACS point at."""
    return sorted(uid for ds in pacs.datasets() if str(ds.SOPClassUID) == SR_CLASS for uid in referenced_uids(ds))


def uid_of(path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def identity_values(paths) -> set[str]:
    out = set()
    for p in paths:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        out |= {str(ds.get(k)) for k in ("PatientName", "PatientID", "PatientBirthDate") if ds.get(k)}
    return out


@pytest.mark.parametrize("scoring", ["threads", pytest.param("processes", marks=pytest.mark.slow)])
def test_films_the_model_does_not_read_get_no_results(pacs, films, tiny_model, node_port, tmp_path, caplog, capsys,
                                                      scoring):
    from cxrviewer.cli import main

    caplog.set_level(logging.INFO, logger="cxrviewer")
    node = start_node(tmp_path / "spool", tiny_model, node_port, pacs, scoring=scoring)
    try:
        assert store([films["lateral"], films["tibia"], films["frontal"]], node_port) == [0, 0, 0]
        assert node.wait_idle(60)
        counts = node.spool.counts()
    finally:
        node.stop()
    assert (counts["sent"], counts["not_applicable"], counts["failed"]) == (1, 2, 0), counts
    assert node.not_applicable == 2 and node.scored == 1
    # the PACS got one SR, for the frontal film: nothing for the others
    assert sr_sources(pacs) == [uid_of(films["frontal"])]
    # one log line per film the model does not read, with its reason, and no patient data
    for name, reason in (("lateral", LATERAL_REASON), ("tibia", TIBIA_REASON)):
        lines = [r.getMessage() for r in caplog.records  # what became of it (the SCP logs its arrival)
                 if r.name == "cxrviewer.node.service" and uid_of(films[name]) in r.getMessage()]
        assert lines == [f"instance {uid_of(films[name])} is not applicable, so no results are sent for it: {reason}"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not any(v in logged for v in identity_values(films.values()))
    # --status shows them, with their reasons
    assert main(["listen", "--status", "--spool", str(tmp_path / "spool")]) == 0
    out = capsys.readouterr().out
    assert "sent 1" in out and "not_applicable 2" in out
    assert f"  {uid_of(films['lateral'])}: {LATERAL_REASON}" in out
    assert f"  {uid_of(films['tibia'])}: {TIBIA_REASON}" in out


def test_score_all_scores_and_sends_them(pacs, films, tiny_model, node_port, tmp_path):
    node = start_node(tmp_path / "spool", tiny_model, node_port, pacs, score_all=True)
    try:
        assert store([films["lateral"], films["tibia"]], node_port) == [0, 0]
        assert node.wait_idle(60)
        counts = node.spool.counts()
    finally:
        node.stop()
    assert (counts["sent"], counts["not_applicable"]) == (2, 0), counts
    assert sr_sources(pacs) == sorted([uid_of(films["lateral"]), uid_of(films["tibia"])])


@pytest.mark.slow
def test_listen_score_all_on_the_command_line(pacs, films, tiny_model, node_port, tmp_path):
    """``cxrviewer listen --score-all``: the lateral film is scored and its SR reaches the PACS;
    then ``--status`` (without it) shows the job sent, none not applicable."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    spool = tmp_path / "spool"
    with open(tmp_path / "node.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cxrviewer", "listen", "--ae-title", NODE_AET, "--host", LOOPBACK, "--port",
             str(node_port), "--send-to", pacs.destination, "--outputs", "sr", "--spool", str(spool), "--model",
             str(tiny_model), "--device", "cpu", "--workers", "1", "--score-all"],
            stdout=subprocess.DEVNULL, stderr=log, env=env, cwd=repo)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "node.log").read_text()
            ae = AE(ae_title="MODALITY")
            ae.add_requested_context(Verification)
            assoc = ae.associate(LOOPBACK, node_port, ae_title=NODE_AET)
            if assoc.is_established:
                assoc.release()
                break
            assert time.monotonic() < deadline, "the node did not start listening"
            time.sleep(0.2)
        assert store([films["lateral"]], node_port) == [0]
        deadline = time.monotonic() + 60
        while not sr_sources(pacs) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    assert sr_sources(pacs) == [uid_of(films["lateral"])]
    status = subprocess.run([sys.executable, "-m", "cxrviewer", "listen", "--status", "--spool", str(spool)],
                            capture_output=True, text=True, env=env, cwd=repo, timeout=60)
    assert "sent 1" in status.stdout and "not_applicable 0" in status.stdout, status.stdout
