"""The node loses no result: a full spool disk, a scoring process that dies, a restart, a resend.

Against a real PACS (Debian's Orthanc, tests/orthancserver.py) and, for the full disk, a spool
on a small tmpfs mounted for the test (root only; unmounted in a ``finally``). The job table's
logic (a result written late, a job scored again, an old spool's table) is checked on its own
too, without a network.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pydicom
import pytest
from orthancserver import LOOPBACK, available, dcmtk, free_port
from pydicom.uid import generate_uid
from test_node import NODE_AET, _alive, _children, check_results, film_copies, start_node, store

DEST = "PACS@127.0.0.1:4242"
CR = "1.2.840.10008.5.1.4.1.1.1"
orthanc_only = pytest.mark.skipif(not available(), reason="Orthanc is not installed (apt-get install orthanc)")


# --------------------------------------------------------------------------- fixtures
@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A tmpfs of ``size`` on ``folder``: a disk that fills. Unmounted on leaving (stop the
    node first). Root only (as in CI)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs for a full-disk test needs root (as in CI)")
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)
        if os.path.ismount(folder):
            subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """The whole spool's disk: 4 MB."""
    with tmpfs(tmp_path / "disk", "4m") as folder:
        yield folder


def fill(folder: Path) -> Path:
    """Fill ``folder``'s file system to the last page; returns the file that holds it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        for size in (1 << 20, 1 << 16, 1 << 12, 1 << 9):
            chunk = b"\0" * size
            try:
                while True:
                    os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def uid_of(path: Path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)


def states(spool: Path) -> dict[str, int]:
    db = sqlite3.connect(spool / "jobs.sqlite")
    try:
        return dict(db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall())
    finally:
        db.close()


def wait_for(predicate, timeout: float = 60, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


# --------------------------------------------------------------- the job table alone
def _result(spool, uid: str, kind: str) -> Path:
    folder = spool.result_dir(uid)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}.dcm"
    path.write_bytes(b"")
    return path


def test_a_result_not_written_is_tried_again_then_the_job_is_incomplete_and_a_resend_scores_it_again(tmp_path):
    """The full-disk case in the job table: film A's Presentation State is written, its SR not
    (no room). The job is not done: the GSPS is delivered meanwhile, the SR is tried again
    (backoff), and once given up the job is incomplete, not sent. The film received again is
    scored again, and only the SR is then written and delivered."""
    from cxrviewer.node.spool import DUPLICATE, INCOMPLETE, NEW, RECEIVED, RESCORE, SENT, Spool

    spool = Spool(tmp_path / "spool")
    uid = generate_uid()
    assert spool.receive(uid, CR, b"film", "MODALITY") == NEW
    no_room = {"sr": "Cannot write sr.dcm: No space left on device."}
    wait = spool.write_failed(uid, {"gsps": _result(spool, uid, "gsps")}, [DEST], no_room, 2, 0.01, 1)
    assert wait == pytest.approx(0.01)
    assert spool.counts()[RECEIVED] == 1
    (delivery,) = spool.due()
    assert delivery.kinds == ("gsps",)
    spool.delivered_many([uid], DEST, {uid: delivery.kinds})
    assert spool.counts()[RECEIVED] == 1, "the GSPS is stored, the SR still to be written: not done"
    time.sleep(0.02)
    assert spool.take_due() == [uid] and spool.take_due() == []
    assert spool.written(uid) == {"gsps"}
    assert spool.write_failed(uid, {}, [DEST], no_room, 2, 0.01, 1) is None  # the last try: given up
    assert spool.counts()[INCOMPLETE] == 1 and spool.counts()[SENT] == 0
    (missing,) = spool.missing()
    assert (missing.uid, missing.kind, missing.state) == (uid, "sr", INCOMPLETE)

    assert spool.wants_film(uid)
    assert spool.receive(uid, CR, b"film", "MODALITY") == RESCORE
    assert spool.counts()[RECEIVED] == 1 and spool.written(uid) == {"gsps"}
    spool.mark_scored(uid, {"sr": _result(spool, uid, "sr")}, [DEST])
    (delivery,) = spool.due()
    assert delivery.kinds == ("sr",)  # the GSPS was stored already: not sent twice
    spool.delivered_many([uid], DEST, {uid: delivery.kinds})
    assert spool.counts()[SENT] == 1 and spool.missing() == []
    assert not spool.wants_film(uid)
    assert spool.receive(uid, CR, b"film", "MODALITY") == DUPLICATE  # a complete job is not scored again
    spool.close()


def test_a_result_written_while_its_delivery_is_on_the_way_is_sent_next(tmp_path):
    from cxrviewer.node.spool import SCORED, SENT, Spool

    spool = Spool(tmp_path / "spool")
    uid = generate_uid()
    spool.receive(uid, CR, b"film", "MODALITY")
    spool.write_failed(uid, {"gsps": _result(spool, uid, "gsps")}, [DEST], {"sr": "no room"}, 5, 0, 0)
    (on_the_way,) = spool.due()
    spool.take_due()
    spool.mark_scored(uid, {"sr": _result(spool, uid, "sr")}, [DEST])  # written meanwhile
    spool.delivered_many([uid], DEST, {uid: on_the_way.kinds})
    assert spool.counts()[SCORED] == 1
    (nxt,) = spool.due()
    assert nxt.kinds == ("sr",)
    spool.delivered_many([uid], DEST, {uid: nxt.kinds})
    assert spool.counts()[SENT] == 1
    spool.close()


def test_failed_jobs_are_scored_again_on_demand_or_when_resent(tmp_path, capsys):
    """``listen --retry-failed`` puts failed and incomplete jobs back (the running node takes
    them within a second); one whose film the spool no longer has is named, to be sent again.
    ``--status`` counts and lists them."""
    from cxrviewer.cli import main
    from cxrviewer.node.spool import FAILED, RECEIVED, RESCORE, Spool

    root = tmp_path / "spool"
    spool = Spool(root)
    uids = [generate_uid() for _ in range(3)]
    for uid in uids:
        spool.receive(uid, CR, b"film", "MODALITY")
        spool.mark_failed(uid, "the process scoring it died")
    spool.film_path(uids[2]).unlink()  # removed (--keep-days)
    assert spool.counts()[FAILED] == 3
    assert main(["listen", "--status", "--spool", str(root)]) == 0
    out = capsys.readouterr().out
    assert "failed 3" in out and f"{uids[0]}: the process scoring it died" in out
    assert main(["listen", "--retry-failed", "--spool", str(root)]) == 0
    err = capsys.readouterr().err
    assert "2 failed or incomplete job(s) will be scored again" in err and uids[2] in err
    assert sorted(spool.take_due()) == sorted(uids[:2])
    assert spool.counts()[RECEIVED] == 2 and spool.counts()[FAILED] == 1
    assert spool.receive(uids[2], CR, b"film", "MODALITY") == RESCORE  # sent again: stored and scored again
    assert spool.film_path(uids[2]).read_bytes() == b"film"
    spool.close()


def test_an_earlier_spool_is_upgraded_without_losing_a_delivery(tmp_path):
    """A spool written by the previous version (no results table): a sent job stays sent and
    is not sent again, a scored one is still due with its files."""
    from cxrviewer.node.spool import SENT, Spool

    root = tmp_path / "spool"
    (root / "results").mkdir(parents=True)
    db = sqlite3.connect(root / "jobs.sqlite")
    db.executescript("""
        CREATE TABLE jobs (uid TEXT PRIMARY KEY, sop_class TEXT NOT NULL, calling_ae TEXT NOT NULL, state TEXT NOT NULL,
            error TEXT, results TEXT, received REAL NOT NULL, scored REAL, finished REAL,
            times_received INTEGER NOT NULL DEFAULT 1, purged REAL);
        CREATE TABLE deliveries (uid TEXT NOT NULL REFERENCES jobs(uid), destination TEXT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL, error TEXT, delivered REAL,
            PRIMARY KEY (uid, destination));
        INSERT INTO jobs VALUES ('1.2.3', '', 'M', 'sent', NULL, '{"sr": "sr.dcm", "gsps": "gsps.dcm"}', 1, 2, 3, 1, NULL);
        INSERT INTO deliveries VALUES ('1.2.3', 'PACS@127.0.0.1:4242', 'delivered', 1, 2, NULL, 3);
        INSERT INTO jobs VALUES ('1.2.4', '', 'M', 'scored', NULL, '{"sr": "sr.dcm"}', 1, 2, NULL, 1, NULL);
        INSERT INTO deliveries VALUES ('1.2.4', 'PACS@127.0.0.1:4242', 'pending', 0, 2, NULL, NULL);
    """)
    db.close()
    spool = Spool(root)
    (due,) = spool.due()
    assert (due.uid, due.kinds, due.files) == ("1.2.4", ("sr",), (root / "results" / "1.2.4" / "sr.dcm",))
    spool.delivered_many(["1.2.4"], DEST, {"1.2.4": due.kinds})
    assert spool.counts()[SENT] == 2 and not spool.wants_film("1.2.3")
    spool.close()


def test_status_and_retries_need_a_spool_and_flag_hints_name_the_flag_at_fault(tmp_path, tiny_model, capsys, monkeypatch):
    """Usage errors exit 2 (3 is for results that cannot be written), and an error names the one
    option at fault, not every option of the node."""
    from cxrviewer.cli import main

    monkeypatch.chdir(tmp_path)  # no ./cxrviewer-spool here
    for flag in ("--status", "--retry-failed", "--retry-parked"):
        with pytest.raises(SystemExit) as exited:
            main(["listen", flag])
        assert exited.value.code == 2
        assert "needs --spool DIR" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["listen", "--status", "--spool", str(tmp_path)])
    assert exited.value.code == 2 and "is not a node's spool folder" in capsys.readouterr().err

    base = ["listen", "--model", str(tiny_model), "--device", "cpu", "--spool", str(tmp_path / "spool"), "--port", "0"]
    for args, flag in (
        (["--send-to", "PACS@nowhere"], "--send-to"),
        (["--send-to", DEST, "--outputs", "sr,pdf"], "--outputs"),
        (["--send-to", DEST, "--ae-title", "A" * 17], "--ae-title"),
        (["--send-to", DEST, "--allow-ae", "B\\C"], "--allow-ae"),
        (["--send-to", DEST, "--allow-host", "not-an-address"], "--allow-host"),
    ):
        assert main(base + args) == 2
        err = capsys.readouterr().err.strip()
        assert err.endswith(f"({flag})"), err
    assert not (tmp_path / "spool").exists()


# ------------------------------------------------------------------ against Orthanc
def _tried_to_write(caplog, uid: str) -> bool:
    """The node has found at least once that it could not write ``uid``'s results (or enter
    them: the job table shares the disk)."""
    return any(uid in r.getMessage() and r.levelno >= logging.WARNING for r in caplog.records)


def _fill_before_scoring(node, disk: Path, leave: int = 0) -> dict[str, Path]:
    """The next film's hand-over to the scoring workers fills ``disk`` first, but for
    ``leave`` bytes: the disk fills between a film's C-STORE success and its results. Returns
    where the filler will be."""
    filler: dict[str, Path] = {}
    hand_over = node.scp.on_film

    def fill_then_score(uid: str) -> None:
        node.scp.on_film = hand_over
        filler["path"] = fill(disk)
        if leave:
            with open(filler["path"], "r+b") as f:
                f.truncate(max(0, f.seek(0, os.SEEK_END) - leave))
        hand_over(uid)

    node.scp.on_film = fill_then_score
    return filler


@pytest.mark.slow
@orthanc_only
def test_a_full_spool_disk_refuses_new_films_and_loses_no_result(pacs, node_port, tiny_model, generated_dicoms, tmp_path,
                                                                 small_disk, caplog):
    """The spool on a 4 MB tmpfs. Film A is taken, then the disk fills before its results are
    written: they are tried again, not given up. Films B and C are refused with 0xA700 (Out of
    Resources, PS3.4 B.2.3), said once in the log. Once there is room A's results go out, and
    B and C sent again are taken: the PACS ends with an SR and a Presentation State for each
    film, once."""
    caplog.set_level(logging.INFO, logger="cxrviewer")
    warm_up, *films = film_copies(generated_dicoms, tmp_path / "films", 4, names=("jpeg_baseline_chest",))
    spool = small_disk / "spool"
    node = start_node(spool, tiny_model, node_port, [pacs.destination], outputs=("sr", "gsps"), workers=1,
                      min_free_bytes=256 * 1024, retry_delay=0.2, max_retry_delay=0.5, max_attempts=1000)
    try:
        # the model's first results take a while to build (constants made once): not on the full disk
        assert store([warm_up], node_port) == [0x0000]
        check_results(pacs, [warm_up], ("sr", "gsps"))
        filler = _fill_before_scoring(node, small_disk)
        assert store(films[:1], node_port) == [0x0000]
        wait_for(lambda: _tried_to_write(caplog, uid_of(films[0])), 60, "film A's results to fail")
        assert store(films[1:], node_port) == [0xA700, 0xA700]
        assert len(pacs.instance_ids()) == 2
        job = states(spool)
        assert job == {"sent": 1, "received": 1}, job  # A waits for room: neither failed nor "sent"
        refusals = [r for r in caplog.records if "refusing new films" in r.getMessage()]
        assert len(refusals) == 1, [r.getMessage() for r in refusals]
        assert "0xA700" in refusals[0].getMessage()

        filler["path"].unlink()  # room again
        check_results(pacs, [warm_up, films[0]], ("sr", "gsps"))
        assert store(films[1:], node_port) == [0x0000, 0x0000]
        check_results(pacs, [warm_up, *films], ("sr", "gsps"))
        assert node.wait_idle(30)
        assert node.spool.counts()["sent"] == 4
        assert store(films, node_port) == [0] * 3  # complete jobs: acknowledged, not scored again
        assert node.wait_idle(30)
        check_results(pacs, [warm_up, *films], ("sr", "gsps"))
    finally:
        node.stop()


def test_a_film_the_disk_fills_under_is_refused_with_0xa700_and_said_once(tiny_model, generated_dicoms, tmp_path,
                                                                           small_disk, caplog):
    """The disk fills between the room check and the film's write (ENOSPC): 0xA700, no piece
    of the film left in the spool, and one log line for that film and the next one refused
    by the room check; with room again the film sent again is taken."""
    caplog.set_level(logging.INFO, logger="cxrviewer")
    films = film_copies(generated_dicoms, tmp_path / "films", 2, names=("jpeg_baseline_chest",))
    port = free_port()
    node = start_node(small_disk / "spool", tiny_model, port, [f"NOWHERE@{LOOPBACK}:{free_port()}"], outputs=("sr",),
                      workers=1, min_free_bytes=0)
    filler: list[Path] = []
    try:
        receive = node.spool.receive

        def fill_then_receive(*args):  # after the room check, before the film is written
            if not filler:
                filler.append(fill(small_disk))
            return receive(*args)

        node.spool.receive = fill_then_receive
        assert store(films, port) == [0xA700, 0xA700]
        assert list((small_disk / "spool" / "films").iterdir()) == []
        refusals = [r for r in caplog.records if r.levelno >= logging.WARNING and "0xA700" in r.getMessage()]
        assert len(refusals) == 1 and "No space left on device" in refusals[0].getMessage(), refusals
        filler[0].unlink()
        assert store(films, port) == [0x0000, 0x0000]
        assert any("room again" in r.getMessage() for r in caplog.records)
        assert node.spool.counts()["received"] + node.spool.counts()["scored"] == 2
    finally:
        node.stop()


@pytest.mark.slow
@orthanc_only
def test_a_result_the_disk_had_no_room_for_is_written_and_sent_after_a_restart(pacs, node_port, tiny_model,
                                                                              generated_dicoms, tmp_path, capsys):
    """The issue's film A: the spool's results on a disk with room for the film's Presentation
    State (~10 kB) but not its SR (~95 kB). The GSPS goes out; the SR is not given up (the job
    is not "sent"): it waits for its next try, an hour away here, and the next start writes
    and sends it at once. The PACS ends with each result once."""
    from cxrviewer.cli import main

    warm_up, film = film_copies(generated_dicoms, tmp_path / "films", 2, names=("jpeg_baseline_chest",))
    spool = tmp_path / "spool"
    kw = dict(outputs=("sr", "gsps"), workers=1, retry_delay=3600, max_retry_delay=3600)
    with tmpfs(spool / "results", "1m") as results:
        node = start_node(spool, tiny_model, node_port, [pacs.destination], **kw)
        try:
            assert store([warm_up], node_port) == [0x0000]
            check_results(pacs, [warm_up], ("sr", "gsps"))
            filler = _fill_before_scoring(node, results, leave=32 * 1024)
            assert store([film], node_port) == [0x0000]
            wait_for(lambda: len(pacs.instance_ids()) == 3, 60, "the film's GSPS")
            time.sleep(0.5)
            assert states(spool) == {"sent": 1, "received": 1}  # not "sent" without its SR
            assert main(["listen", "--status", "--spool", str(spool)]) == 0
            out = capsys.readouterr().out
            assert "results waiting to be written again (1):" in out and f"{uid_of(film)} sr: next try in" in out, out
        finally:
            node.stop()
        filler["path"].unlink()
        node = start_node(spool, tiny_model, node_port, [pacs.destination], **kw)
        try:
            check_results(pacs, [warm_up, film], ("sr", "gsps"), timeout=30)
            assert node.wait_idle(30) and node.spool.counts()["sent"] == 2
        finally:
            node.stop()


@pytest.mark.slow
@orthanc_only
def test_films_failed_by_a_dead_scoring_process_are_scored_again(pacs, node_port, tiny_model, generated_dicoms, tmp_path,
                                                                 capsys):
    """Two films in the scoring processes when one of them is killed: both fail ("send it
    again"). Sent again, the first is scored again; ``listen --retry-failed`` does the second
    while the node runs. The PACS ends with each film's SR and Presentation State, once."""
    from cxrviewer.cli import main

    films = film_copies(generated_dicoms, tmp_path / "films", 2)
    spool = tmp_path / "spool"
    before = _children(os.getpid())
    node = start_node(spool, tiny_model, node_port, [pacs.destination], outputs=("sr", "gsps"), workers=2,
                      scoring="processes")
    workers = [pid for pid in _children(os.getpid()) - before if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(workers) == 2
    try:
        for pid in workers:  # the films wait in the processes' queue
            os.kill(pid, signal.SIGSTOP)
        assert store(films, node_port) == [0, 0]
        wait_for(lambda: len(node._in_hand) == 2, 30, "each scoring thread to take a film")
        time.sleep(0.5)  # and hand it to the processes
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: node.spool.counts()["failed"] == 2, 30, "both films to fail")
        assert main(["listen", "--status", "--spool", str(spool)]) == 0
        assert "failed 2" in capsys.readouterr().out
        assert pacs.instance_ids() == []

        assert store(films[:1], node_port) == [0]  # "send it again to retry"
        check_results(pacs, films[:1], ("sr", "gsps"))
        assert main(["listen", "--retry-failed", "--spool", str(spool)]) == 0
        check_results(pacs, films, ("sr", "gsps"))
        assert node.wait_idle(30) and node.spool.counts()["sent"] == 2
    finally:
        for pid in workers:  # a stopped worker would hold up the node's stop (it waits for its processes)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGCONT)
        node.stop()
        for pid in workers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert not any(_alive(pid) for pid in workers)


@orthanc_only
@pytest.mark.slow
def test_allow_host_refuses_with_an_associate_rj(pacs, node_port, tiny_model, tmp_path):
    """A caller outside ``--allow-host`` gets an A-ASSOCIATE-RJ, rejected-permanent, source
    service-user, calling AE title not recognised (PS3.8 9.3.4), not an abort: dcmtk's echoscu
    reports it so (a sender treats an abort as transient and tries forever)."""
    node = start_node(tmp_path / "spool", tiny_model, node_port, [pacs.destination], allowed_hosts=("10.0.0.0/8",))
    try:
        echo = subprocess.run([dcmtk("echoscu"), "-aet", "MODALITY", "-aec", NODE_AET, LOOPBACK, str(node_port)],
                              capture_output=True, text=True, timeout=60)
        out = echo.stdout + echo.stderr
        assert echo.returncode != 0
        assert "Association Rejected" in out, out
        assert "Rejected Permanent" in out and "Service User" in out and "Calling AE Title Not Recognized" in out, out
        assert "abort" not in out.lower(), out
    finally:
        node.stop()
    node = start_node(tmp_path / "spool", tiny_model, node_port, [pacs.destination], allowed_hosts=("127.0.0.1",))
    try:
        echo = subprocess.run([dcmtk("echoscu"), "-aet", "MODALITY", "-aec", NODE_AET, LOOPBACK, str(node_port)],
                              capture_output=True, text=True, timeout=60)
        assert echo.returncode == 0, echo.stdout + echo.stderr
    finally:
        node.stop()
