"""The DICOM node against a real PACS (Debian's Orthanc) and real senders (dcmtk, pynetdicom).

Films are the generated chest DICOMs of tests/dicomfactory.py (JPEG baseline CR, DX, JPEG 2000
CR), copied with new UIDs to make distinct films. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
from orthancserver import LOOPBACK, Orthanc, available, dcmtk, free_port, referenced_uids
from pydicom.uid import generate_uid

pynetdicom = pytest.importorskip("pynetdicom")

pytestmark = pytest.mark.skipif(not available(), reason="Orthanc is not installed (apt-get install orthanc)")

REPO = Path(__file__).resolve().parents[1]
CHEST = ("jpeg_baseline_chest", "nih_dx", "j2k_mono1")  # generated from NIH films (tests/dicomfactory.py)
SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
GSPS_CLASS = "1.2.840.10008.5.1.4.1.1.11.1"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
KIND_OF_CLASS = {SR_CLASS: "sr", GSPS_CLASS: "gsps", SC_CLASS: "sc"}
NODE_AET = "CXRVIEWER"


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def quiet_model(tmp_path_factory) -> Path:
    """The tiny model with thresholds no film reaches: no finding, so no regions to draw, and the
    results are made in a fraction of the time (the kill -9 test is about the spool, not regions)."""
    from tinymodel import LABELS, build_tiny_model, tiny_info

    info = tiny_info(64, thresholds={label: 0.999 for label in LABELS})
    return build_tiny_model(tmp_path_factory.mktemp("quiet") / "quiet.onnx", info)


def film_copies(corpus, folder: Path, n: int, names=CHEST) -> list[Path]:
    """``n`` distinct films: the chest DICOMs in turn, each with a new study, series and instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        ds = pydicom.dcmread(corpus[names[i % len(names)]])
        ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = folder / f"film{i:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        out.append(path)
    return out


def start_node(spool: Path, model: Path, port: int, destinations, outputs=("sr", "gsps", "sc"), workers: int = 2, **kw):
    from cxrviewer.model import Classifier
    from cxrviewer.dimse import parse_destination
    from cxrviewer.node import NodeConfig
    from cxrviewer.node.service import Node

    config = NodeConfig(ae_title=NODE_AET, host=LOOPBACK, port=port, spool=spool, outputs=tuple(outputs),
                        destinations=tuple(parse_destination(d) for d in destinations), **kw)
    node = Node(config, Classifier.load(model, device="cpu", threads=1), workers=workers, drain_seconds=5)
    node.start()
    return node


@pytest.fixture
def node_factory(tmp_path, tiny_model, node_port):
    nodes = []

    def make(destinations, **kw):
        node = start_node(tmp_path / "spool", tiny_model, node_port, destinations, **kw)
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        if node.address is not None and not node._stop_scoring.is_set():
            node.stop()


def results_by_source(pacs: Orthanc) -> dict[str, dict[str, list[pydicom.Dataset]]]:
    """Orthanc's result objects grouped by the source instance they reference, then by kind."""
    out: dict[str, dict[str, list]] = {}
    for ds in pacs.datasets():
        kind = KIND_OF_CLASS.get(str(ds.SOPClassUID))
        if kind is None or getattr(ds, "Manufacturer", "") != "cxrviewer":
            continue
        for uid in referenced_uids(ds):
            out.setdefault(uid, {}).setdefault(kind, []).append(ds)
    return out


def check_results(pacs: Orthanc, films: list[Path], kinds: tuple[str, ...], timeout: float = 60) -> None:
    """Every film's results are in the PACS exactly once, in its study, pointing at it."""
    expected = len(films) * len(kinds)
    pacs.wait_count(expected, timeout)
    time.sleep(0.3)  # anything sent twice would arrive now
    found = results_by_source(pacs)
    for path in films:
        src = pydicom.dcmread(path, stop_before_pixels=True)
        got = found.get(src.SOPInstanceUID, {})
        assert sorted(got) == sorted(kinds), f"{path.name}: {sorted(got)}"
        for kind, items in got.items():
            assert len(items) == 1, f"{path.name}: {len(items)} {kind} results"
            assert items[0].StudyInstanceUID == src.StudyInstanceUID
    results = [ds for ds in pacs.datasets() if getattr(ds, "Manufacturer", "") == "cxrviewer"]
    assert len(results) == expected


def store(files, port: int, calling: str = "MODALITY") -> list[int | None]:
    """C-STORE ``files`` to the node with pynetdicom, each in its own transfer syntax. As a
    modality does, a film that got no answer is sent again on a new association: under load,
    pynetdicom's requestor can lose a response to its own reactor thread (a race; pynetdicom
    issue #875) and then waits for the DIMSE timeout."""
    from pynetdicom import AE

    ae = AE(ae_title=calling)
    ae.dimse_timeout = 10
    for p in files:
        ds = pydicom.dcmread(p, stop_before_pixels=True)
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    statuses: list[int | None] = []
    assoc = None
    try:
        for p in files:
            status = None
            for _ in range(3):
                if assoc is None or not assoc.is_established:
                    assoc = ae.associate(LOOPBACK, port, ae_title=NODE_AET)
                    assert assoc.is_established
                status = assoc.send_c_store(p)
                if status:
                    break
            statuses.append(status.Status if status else None)
    finally:
        if assoc is not None and assoc.is_established:
            assoc.release()
    return statuses


# ------------------------------------------------------------------------------ tests
def test_destinations_and_outputs_are_parsed_or_refused():
    from cxrviewer.errors import NodeConfigError
    from cxrviewer.dimse import DicomDestination, WebDestination, parse_destination
    from cxrviewer.node import parse_outputs

    assert parse_destination("PACS@127.0.0.1:4242") == DicomDestination("PACS", "127.0.0.1", 4242)
    assert parse_destination("PACS@[::1]:104") == DicomDestination("PACS", "::1", 104)
    assert parse_destination("https://pacs.example/dicom-web/") == WebDestination("https://pacs.example/dicom-web")
    for bad in ("PACS@host", "127.0.0.1:4242", "A" * 17 + "@h:1", "PACS@h:0", "http:///x"):
        with pytest.raises(NodeConfigError):
            parse_destination(bad)
    assert parse_outputs("sr, SC,sr") == ("sr", "sc")
    with pytest.raises(NodeConfigError, match="choose among sr, gsps, sc"):
        parse_outputs("sr,pdf")


def test_scoring_workers_are_threads_or_processes():
    from cxrviewer.cli import build_parser
    from cxrviewer.errors import NodeConfigError
    from cxrviewer.node import NodeConfig

    assert NodeConfig(scoring="processes").scoring == "processes"
    with pytest.raises(NodeConfigError, match="choose threads or processes"):
        NodeConfig(scoring="fibres")
    args = build_parser().parse_args(["listen", "--send-to", "PACS@127.0.0.1:4242", "--scoring", "processes"])
    assert args.scoring == "processes"
    assert build_parser().parse_args(["listen", "--send-to", "PACS@127.0.0.1:4242"]).scoring == NodeConfig().scoring


def test_send_associations_is_an_option_of_at_least_one():
    from cxrviewer.cli import build_parser
    from cxrviewer.errors import NodeConfigError
    from cxrviewer.node import NodeConfig

    with pytest.raises(NodeConfigError, match="at least 1 association"):
        NodeConfig(send_associations=0)
    base = ["listen", "--send-to", "PACS@127.0.0.1:4242"]
    assert build_parser().parse_args(base).send_associations == NodeConfig().send_associations == 2
    assert build_parser().parse_args([*base, "--send-associations", "1"]).send_associations == 1


@pytest.mark.slow
def test_storescu_films_come_back_as_results_in_their_study(pacs, node_factory, node_port, generated_dicoms, tmp_path):
    """dcmtk's storescu as the modality: each film, in its own transfer syntax (JPEG baseline,
    explicit little endian, JPEG 2000), ends up in Orthanc as an SR, a Presentation State and a
    Secondary Capture in the film's study, each referencing the film."""
    films = film_copies(generated_dicoms, tmp_path / "films", 3)
    node = node_factory([pacs.destination], outputs=("sr", "gsps", "sc"))
    echo = subprocess.run([dcmtk("echoscu"), "-aec", NODE_AET, LOOPBACK, str(node_port)], capture_output=True, text=True, timeout=30)
    assert echo.returncode == 0, echo.stderr
    # storescu proposes uncompressed syntaxes alone by default and cannot send a compressed
    # file then: name the file's own syntax (-xy JPEG baseline, -xv JPEG 2000 lossless)
    flags = {"1.2.840.10008.1.2.4.50": ["-xy"], "1.2.840.10008.1.2.4.90": ["-xv"]}
    for film in films:
        syntax = str(pydicom.dcmread(film, stop_before_pixels=True).file_meta.TransferSyntaxUID)
        sent = subprocess.run([dcmtk("storescu"), *flags.get(syntax, []), "-aet", "MODALITY", "-aec", NODE_AET, LOOPBACK,
                               str(node_port), str(film)], capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
    check_results(pacs, films, ("sr", "gsps", "sc"))
    assert node.wait_idle(30)
    assert node.spool.counts()["sent"] == 3
    # the spool keeps films and results for --keep-days (7), then removes them but remembers the
    # instances: one sent again is acknowledged and not scored again
    assert node.purge() == 0
    assert node.spool.purge(time.time() + 1) == 3
    assert not list(node.spool.films.glob("*.dcm")) and not list(node.spool.results.iterdir())
    assert store(films[:1], node_port) == [0]
    assert node.wait_idle(10) and node.spool.counts()["sent"] == 3 and node.spool.counts()["received"] == 0


@pytest.mark.slow
def test_pacs_push_refusals_bad_films_and_duplicates(pacs, node_factory, node_port, generated_dicoms, tmp_path, caplog):
    """Orthanc pushes a film to the node (the PACS as sender); pynetdicom sends another, a
    non-image object, a damaged film and a duplicate. The non-image object is refused with
    0x0122; the damaged film is taken (it is on disk) but gives no result and one clear log
    line, and the node goes on; the duplicate is not scored again."""
    caplog.set_level(logging.INFO, logger="cxrviewer")
    films = film_copies(generated_dicoms, tmp_path / "films", 3)
    node = node_factory([pacs.destination], outputs=("sr",))

    # 1. from the PACS: Orthanc's own C-STORE to the node, asked over its REST API
    orthanc_id = pacs.upload(films[0])
    pacs.post("/modalities/cxrviewer/store", f'{{"Resources": ["{orthanc_id}"], "Synchronous": true}}')

    # 2. a Basic Text SR (not an image) and a damaged CR (its pixel data cut short)
    text_sr = pydicom.dcmread(films[1])
    text_sr.SOPClassUID = text_sr.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    text_sr.SOPInstanceUID = text_sr.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    text_sr.save_as(tmp_path / "text_sr.dcm", enforce_file_format=True)
    damaged = pydicom.dcmread(films[1])
    damaged.SOPInstanceUID = damaged.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    damaged.PixelData = damaged.PixelData[: len(damaged.PixelData) // 50]
    damaged.save_as(tmp_path / "damaged.dcm", enforce_file_format=True)

    statuses = store([tmp_path / "text_sr.dcm", tmp_path / "damaged.dcm", films[1], films[1], films[2]], node_port)
    assert statuses == [0x0122, 0x0000, 0x0000, 0x0000, 0x0000]
    assert node.wait_idle(60)

    found = results_by_source(pacs)
    good = [pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in films]
    assert all(list(found.get(uid, {})) == ["sr"] and len(found[uid]["sr"]) == 1 for uid in good), found.keys()
    assert damaged.SOPInstanceUID not in found
    counts = node.spool.counts()
    assert counts["sent"] == 3 and counts["failed"] == 1, counts
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR and damaged.SOPInstanceUID in r.getMessage()]
    assert len(errors) == 1 and "could not be scored" in errors[0].getMessage()
    db = sqlite3.connect(node.spool.root / "jobs.sqlite")
    assert db.execute("SELECT times_received FROM jobs WHERE uid = ?", (good[1],)).fetchone() == (2,)
    # the PACS holds the films it was given plus one SR for each good film, nothing else
    assert len(pacs.instance_ids()) == 1 + 3


def test_allow_lists_size_limit_and_echo(pacs, node_factory, node_port, generated_dicoms, tmp_path):
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    films = film_copies(generated_dicoms, tmp_path / "films", 1, names=("nih_dx",))
    node = node_factory([pacs.destination], allowed_aes=("MODALITY",), max_object_bytes=100_000)
    ae = AE(ae_title="STRANGER")
    ae.add_requested_context(Verification)
    assoc = ae.associate(LOOPBACK, node_port, ae_title=NODE_AET)
    assert assoc.is_rejected
    # an allowed caller: a 1 MB film is over the 100 kB limit: out of resources
    assert store(films, node_port, calling="MODALITY") == [0xA700]
    assert node.spool.counts()["received"] == 0 and not list(node.spool.films.glob("*.dcm"))
    node.stop()

    node = node_factory([pacs.destination], allowed_hosts=("10.0.0.0/8",))
    assoc = AE(ae_title="MODALITY")
    assoc.add_requested_context(Verification)
    a = assoc.associate(LOOPBACK, node_port, ae_title=NODE_AET)
    assert a.is_rejected and not a.is_aborted  # an A-ASSOCIATE-RJ, as for --allow-ae (echoscu: test_node_reliability.py)


def test_parked_deliveries_are_listed_by_status(node_factory, node_port, generated_dicoms, tmp_path, capsys):
    """A destination that never answers: after the attempts allowed, the delivery is parked and
    ``cxrviewer listen --status`` shows it with the reason."""
    from cxrviewer.cli import main

    films = film_copies(generated_dicoms, tmp_path / "films", 1, names=("nih_dx",))
    dead = f"NOWHERE@{LOOPBACK}:{free_port()}"
    node = node_factory([dead], outputs=("sr",), max_attempts=2, retry_delay=0.1, max_retry_delay=0.2)
    assert store(films, node_port) == [0]
    uid = pydicom.dcmread(films[0], stop_before_pixels=True).SOPInstanceUID
    deadline = time.monotonic() + 30
    while node.spool.counts()["parked"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert node.spool.counts()["parked"] == 1
    assert main(["listen", "--status", "--spool", str(tmp_path / "spool")]) == 0
    out = capsys.readouterr().out
    assert "parked 1" in out and f"{uid} -> {dead}: 2 attempts; {dead} could not be reached (Connection refused)" in out


@pytest.mark.slow
def test_stow_rs_destination(pacs, node_factory, node_port, generated_dicoms, tmp_path):
    if pacs.dicomweb is None:
        pytest.skip("Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
    films = film_copies(generated_dicoms, tmp_path / "films", 2)
    node_factory([pacs.dicomweb], outputs=("sr", "gsps"))
    assert store(films, node_port) == [0, 0]
    check_results(pacs, films, ("sr", "gsps"))


def test_tls_echo(pacs, node_factory, node_port, tmp_path):
    """With a certificate the node speaks DICOM over TLS only (PS3.15 B.1)."""
    import ssl

    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    from cxrviewer.node import Tls

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    node_factory([pacs.destination], tls=Tls(cert, key))
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(Verification)
    client = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cert))
    assoc = ae.associate(LOOPBACK, node_port, ae_title=NODE_AET, tls_args=(client, "127.0.0.1"))
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    plain = ae.associate(LOOPBACK, node_port, ae_title=NODE_AET)
    assert not plain.is_established


# ------------------------------------------------------------------ a real process
def _listen(spool: Path, model: Path, port: int, pacs: Orthanc, log: Path, scoring: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "cxrviewer", "-v", "listen", "--ae-title", NODE_AET, "--host", LOOPBACK, "--port", str(port),
         "--send-to", pacs.destination, "--outputs", "sr,gsps", "--spool", str(spool), "--model", str(model),
         "--device", "cpu", "--workers", "1", "--scoring", scoring],
        stdout=subprocess.DEVNULL, stderr=open(log, "ab"), env=env, cwd=REPO,
    )


def _children(pid: int) -> set[int]:
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out.update(int(x) for x in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the node exited"
        ae = AE(ae_title="MODALITY")
        ae.add_requested_context(Verification)
        ae.acse_timeout = 2
        assoc = ae.associate(LOOPBACK, port, ae_title=NODE_AET)
        if assoc.is_established:
            assoc.release()
            return
        time.sleep(0.2)
    raise AssertionError("the node did not start listening")


SCORING = pytest.mark.parametrize("scoring", ["threads", "processes"])


@pytest.mark.slow
@SCORING
def test_kill_9_in_the_middle_of_20_films_then_restart(pacs, quiet_model, node_port, generated_dicoms, tmp_path, scoring):
    """A real ``python -m cxrviewer listen``: 20 films, kill -9 once some are acknowledged and
    while some are unscored; the modality sends again what got no answer; after a restart every
    film's results are in Orthanc exactly once. Then SIGTERM stops the node cleanly (exit 0)."""
    from pynetdicom import AE

    films = film_copies(generated_dicoms, tmp_path / "films", 20)
    spool, log = tmp_path / "spool", tmp_path / "node.log"
    proc = _listen(spool, quiet_model, node_port, pacs, log, scoring)
    try:
        _wait_listening(node_port, proc)
        ae = AE(ae_title="MODALITY")
        for p in films[:3]:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
            ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = ae.associate(LOOPBACK, node_port, ae_title=NODE_AET)
        assert assoc.is_established
        acknowledged = []
        for i, p in enumerate(films):
            status = assoc.send_c_store(p)
            if status and status.Status == 0:
                acknowledged.append(p)
            if i == 9:
                children = _children(proc.pid)
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                break
        assoc.abort()
        assert 1 <= len(acknowledged) <= 10
        # the scoring processes of the killed node leave too (they hold their own queue)
        deadline = time.monotonic() + 30
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in children)
        db = sqlite3.connect(spool / "jobs.sqlite")
        states = dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
        db.close()
        assert sum(states.values()) == len(acknowledged), states  # every acknowledged film is in the table
        assert states.get("sent", 0) < len(acknowledged), states  # and the kill left work undone
        # the restart: the modality sends again every film, also those already acknowledged
        proc = _listen(spool, quiet_model, node_port, pacs, log, scoring)
        _wait_listening(node_port, proc)
        assert store(films, node_port) == [0] * 20
        check_results(pacs, films, ("sr", "gsps"), timeout=90)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert "stopped" in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    db = sqlite3.connect(spool / "jobs.sqlite")
    assert dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()) == {"sent": 20}


@pytest.mark.slow
@SCORING
def test_sigterm_finishes_the_films_in_hand(pacs, quiet_model, node_port, generated_dicoms, tmp_path, scoring):
    """SIGTERM while films are being scored: the process exits 0, every film it had scored has
    its results in Orthanc (none left 'scored' but unsent), and the rest wait in the spool."""
    films = film_copies(generated_dicoms, tmp_path / "films", 8)
    spool, log = tmp_path / "spool", tmp_path / "node.log"
    proc = _listen(spool, quiet_model, node_port, pacs, log, scoring)
    try:
        _wait_listening(node_port, proc)
        assert store(films, node_port) == [0] * 8
        deadline = time.monotonic() + 60
        while not pacs.instance_ids() and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    db = sqlite3.connect(spool / "jobs.sqlite")
    states = dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
    assert set(states) <= {"sent", "received"} and sum(states.values()) == 8, states
    assert states["sent"] >= 1
    time.sleep(0.5)
    assert len(pacs.instance_ids()) == 2 * states["sent"]  # an SR and a GSPS for each


def _due_results(spool, n: int, dest: str) -> list[str]:
    """``n`` jobs of ``spool`` scored, each with one (unread) result due to ``dest``."""
    uids = [generate_uid() for _ in range(n)]
    for uid in uids:
        assert spool.receive(uid, "1.2.840.10008.5.1.4.1.1.1", b"not read here", "MODALITY")
        folder = spool.result_dir(uid)
        folder.mkdir(parents=True)
        (folder / "sr.dcm").write_bytes(b"")
        spool.mark_scored(uid, {"sr": folder / "sr.dcm"}, [dest])
    return uids


def test_a_sending_round_is_entered_in_one_commit(tmp_path):
    """The sender marks a round's deliveries done in one transaction (one fsync of the job
    table, not one per film), and each job is then sent."""
    from cxrviewer.node.spool import SENT, Spool

    spool = Spool(tmp_path / "spool")
    dest = "PACS@127.0.0.1:4242"
    uids = _due_results(spool, 5, dest)
    commits = []
    spool._db.set_trace_callback(lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
    spool.delivered_many(uids, dest)
    spool._db.set_trace_callback(None)
    assert len(commits) == 1
    assert sorted(j.uid for j in spool.jobs(SENT)) == sorted(uids)
    assert spool.due() == []
    spool.close()


@SCORING
@pytest.mark.slow
def test_the_node_tallies_its_cpu_by_stage(pacs, node_factory, node_port, tmp_path, scoring):
    """What bench/bench_node.py prints: each stage a film goes through, on its own clock, the
    scoring processes' figures brought back from them, or the threads' own."""
    import numpy as np
    from dicomfactory import CR_IMAGE, dicom_dataset, write_dicom

    film = write_dicom(tmp_path / "cr.dcm", dicom_dataset(
        (np.arange(128 * 96, dtype=np.uint16) % 4096).reshape(128, 96), bits_stored=12, sop_class=CR_IMAGE, modality="CR"))
    before = _children(os.getpid())  # Orthanc
    node = node_factory([pacs.destination], outputs=("sr", "gsps"), scoring=scoring)
    # scoring processes are the node's children, started (their model loaded) before it takes films
    spawned = [pid for pid in _children(os.getpid()) - before
               if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]  # not the resource tracker
    assert len(spawned) == (node.workers if scoring == "processes" else 0)
    assert store([film], node_port) == [0]
    assert node.wait_idle(60) and node.spool.counts()["sent"] == 1
    assert len(pacs.instance_ids()) == 2
    stages = node.cpu.seconds()
    common = {"receive (C-STORE handler, spool)", "job table", "send"}
    scored = {"read", "infer", "build sr", "build gsps"}
    if scoring == "processes":
        scored = {f"worker: {s}" for s in scored} | {"worker: start-up (once a process)"}
    assert set(stages) == common | scored
    assert all(seconds >= 0 for seconds in stages.values())
    prefix = "worker: " if scoring == "processes" else ""
    assert stages[f"{prefix}build sr"] > 0 and stages[f"{prefix}infer"] > 0


def test_a_round_of_results_goes_over_parallel_associations(tmp_path):
    """A destination storing each object slowly (a real pynetdicom Storage SCP that takes 0.2 s
    an object) gets a round's results over ``send_associations`` associations at once, each
    delivery once; the round then takes about half as long as on one association."""
    import threading

    import numpy as np
    from dicomfactory import CR_IMAGE, dicom_dataset, write_dicom
    from pynetdicom import AE, evt
    from pynetdicom.presentation import AllStoragePresentationContexts

    from cxrviewer.node import NodeConfig
    from cxrviewer.node.sender import Sender
    from cxrviewer.node.spool import SENT, Spool

    lock = threading.Lock()
    stores: list[tuple[int, float, float, str]] = []  # association, start, end, instance

    def on_store(event):
        start = time.monotonic()
        time.sleep(0.2)
        with lock:
            stores.append((id(event.assoc), start, time.monotonic(), str(event.request.AffectedSOPInstanceUID)))
        return 0x0000

    scp = AE(ae_title="SLOWPACS")
    scp.supported_contexts = AllStoragePresentationContexts
    port = free_port()
    server = scp.start_server((LOOPBACK, port), block=False, evt_handlers=[(evt.EVT_C_STORE, on_store)])
    try:
        spool = Spool(tmp_path / "spool")
        dest = f"SLOWPACS@{LOOPBACK}:{port}"
        uids = [generate_uid() for _ in range(6)]
        for uid in uids:
            assert spool.receive(uid, CR_IMAGE, b"not read here", "MODALITY")
            folder = spool.result_dir(uid)
            folder.mkdir(parents=True)
            ds = dicom_dataset(np.zeros((8, 8), np.uint16), sop_class=CR_IMAGE, modality="CR")
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            spool.mark_scored(uid, {"sr": write_dicom(folder / "sr.dcm", ds)}, [dest])
        config = NodeConfig(ae_title="CXRVIEWER", send_associations=2)
        assert Sender(spool, config, threading.Event()).send_due() == 6
        assert sorted(j.uid for j in spool.jobs(SENT)) == sorted(uids)
        spool.close()
    finally:
        server.shutdown()
    associations = {a for a, *_ in stores}
    assert len(stores) == 6 and len({uid for *_, uid in stores}) == 6
    assert len(associations) == 2
    first, second = ([(s, e) for a, s, e, _ in stores if a == assoc] for assoc in associations)
    # the two associations stored at the same time
    assert min(e for _, e in first) > min(s for s, _ in second) and min(e for _, e in second) > min(s for s, _ in first)


def test_a_round_lingers_while_films_are_scored_and_not_when_the_node_is_quiet(tmp_path):
    """While films are being scored a sending round waits for more results (fewer associations
    a film in a burst, bench/bench_node.py): until ``linger`` has passed, enough results are due
    for each association of the round, or the node has gone quiet; a quiet node's results go at once."""
    import threading

    from cxrviewer.node import NodeConfig, sender
    from cxrviewer.node.sender import Sender
    from cxrviewer.node.spool import Spool

    spool = Spool(tmp_path / "spool")
    _due_results(spool, 2, "PACS@127.0.0.1:4242")
    assert spool.due_count() == 2
    config = NodeConfig(ae_title="CXRVIEWER", send_associations=1)
    busy, stop, wake = threading.Event(), threading.Event(), threading.Event()

    def gathered(linger: float) -> float:
        s = Sender(spool, config, wake, busy=busy.is_set, linger=linger)
        t0 = time.monotonic()
        s.gather(stop)
        return time.monotonic() - t0

    assert gathered(30) < 0.5  # quiet: no wait
    busy.set()
    assert 0.4 <= gathered(0.4) < 5  # busy all along: the whole linger
    # busy, then quiet (the last film scored): the round goes then, not after the linger
    threading.Timer(0.3, busy.clear).start()
    assert 0.25 <= gathered(30) < 5
    busy.set()
    threading.Timer(0.3, stop.set).start()  # stopping ends it too
    assert gathered(30) < 5
    stop.clear()
    # busy, but enough due for every association of a round: no wait
    old = sender.GATHER
    sender.GATHER = 2
    try:
        assert gathered(30) < 0.5
    finally:
        sender.GATHER = old
    assert Sender(spool, config, wake).busy is None  # a bare sender never lingers
    spool.close()


def test_opencv_runs_serial_while_the_node_scores_on_every_core(node_factory, pacs):
    """As `cxrviewer score` does: OpenCV's own thread pool off while one worker a core scores,
    restored when the node stops. (And the node's sender knows when the node is busy.)"""
    import cv2

    before = cv2.getNumThreads()
    cv2.setNumThreads(2)  # a pool of its own, whatever an earlier test left
    try:
        node = node_factory([pacs.destination], outputs=("sr",), workers=max(2, os.cpu_count() or 1))
        assert cv2.getNumThreads() == 1
        # and its sender lingers only while films wait to be scored: none here
        assert node.sender.busy is not None and node.sender.busy() is False
        node.stop()
        assert cv2.getNumThreads() == 2
    finally:
        cv2.setNumThreads(before)


@pytest.mark.slow
def test_a_dead_scoring_process_is_replaced(pacs, node_factory, node_port, generated_dicoms, tmp_path):
    """A scoring process killed (as the kernel's out-of-memory killer would) while the node is
    idle: new ones start and the next films get their results."""
    films = film_copies(generated_dicoms, tmp_path / "films", 2)
    before = _children(os.getpid())
    node = node_factory([pacs.destination], outputs=("sr",), scoring="processes")
    workers = [pid for pid in _children(os.getpid()) - before if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert workers
    os.kill(workers[0], signal.SIGKILL)
    time.sleep(0.5)  # the pool notices and calls itself broken
    try:
        assert store(films, node_port) == [0, 0]
        assert node.wait_idle(90)
        assert node.spool.counts()["sent"] == 2 and node.failed == 0
        check_results(pacs, films, ("sr",))
        # the broken pool's other workers, which ignore SIGTERM, were ended by the node
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in workers)
    finally:
        for pid in workers:  # else the interpreter's exit would wait for them
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
