"""Query/retrieve against a real PACS: Debian's Orthanc (with its DICOMweb plugin) on loopback
ports, loaded with generated studies (dicomfactory.make_pacs_studies) and the real DICOMs of
../shared/data where present; dcmtk's findscu as a second opinion."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pydicom
import pytest
from dicomfactory import PACS_PATIENTS, make_big_series, make_pacs_studies
from helpers import SHARED_DATA
from orthancserver import available, dcmtk, free_port, running_orthanc

from cxrviewer.dimse import parse_destination
from cxrviewer.dimse.query import Connection, StudyQuery, find_series, find_studies, parse_study_date
from cxrviewer.dimse.retrieve import MANIFEST, RetrieveCache, retrieve_studies
from cxrviewer.errors import PacsQueryError, PacsRetrieveError, RetrieveCancelledError

# slow: a query/retrieve Orthanc with its DICOMweb plugin, and dcmtk's SCUs
pytestmark = [pytest.mark.skipif(not available(), reason="Orthanc is not installed (apt-get install orthanc)"), pytest.mark.slow]

CALLING_AE = "CXRTEST"
TODAY = dt.date.today().strftime("%Y%m%d")
#: real files of ../shared/data/dicom a PACS takes (they have file meta), by Patient ID
REAL = {"11RG3": "pydicom-data_RG3_J2KR.dcm", "Covid0000": "nccid_nih_cxr14_gcp_dx.dcm",
        "XX": "dcmfx_fo-dicom_CR-ModalitySequenceLUT.dcm"}


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """An Orthanc holding the generated studies (and the real films where present); it knows us
    (CALLING_AE) at a port of ours for C-MOVE."""
    root = tmp_path_factory.mktemp("pacs")
    films = make_pacs_studies(root / "films", TODAY)
    move_port = free_port()
    with running_orthanc(root / "orthanc", {"cxrtest": (CALLING_AE, move_port)}, query_retrieve=True) as server:
        for f in films:
            server.upload(f.path)
        real = {}
        if (SHARED_DATA / "dicom").is_dir():
            for pid, name in REAL.items():
                server.upload(SHARED_DATA / "dicom" / name)
                real[pid] = SHARED_DATA / "dicom" / name
        server.films, server.real, server.move_port = films, real, move_port
        yield server


def dimse(server) -> Connection:
    return Connection(parse_destination(server.destination), calling_ae=CALLING_AE, timeout=20)


def web(server) -> Connection:
    if server.dicomweb is None:
        pytest.skip("the DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)")
    return Connection(parse_destination(server.dicomweb), timeout=20)


CONNECTIONS = ("dimse", "web")


def connect(kind: str, server) -> Connection:
    return dimse(server) if kind == "dimse" else web(server)


def studies_of(server, keep) -> set[str]:
    return {f.study_uid for f in server.films if keep(f)}


# --------------------------------------------------------------------------- filters
def test_study_date_forms():
    assert parse_study_date("today", dt.date(2025, 3, 4)) == "20250304"
    assert parse_study_date("20250101-20251231") == "20250101-20251231"
    assert parse_study_date("20250101-") == "20250101-"
    assert parse_study_date("-20250101") == "-20250101"
    for bad in ("2025-01-01", "20251301", "20250102-20250101", "-", "yesterday", "20250101-20250102-20250103"):
        with pytest.raises(PacsQueryError):
            parse_study_date(bad)
    with pytest.raises(PacsQueryError, match="backslash"):
        StudyQuery(patient_id="A\\B")
    with pytest.raises(PacsQueryError, match="modality"):
        StudyQuery(modalities=("cr",))
    with pytest.raises(PacsQueryError, match="Study Instance UID"):
        StudyQuery(study_uids=("../../etc",))


@pytest.mark.parametrize("kind", CONNECTIONS)
def test_each_filter_lists_exactly_its_studies(pacs, kind):
    conn = connect(kind, pacs)
    chest = lambda f: f.modality in ("CR", "DX")  # noqa: E731 - the default modalities
    alpha, bravo, _ = (pid for pid, _ in PACS_PATIENTS)
    cases = [
        (StudyQuery(patient_id=alpha), lambda f: chest(f) and f.patient_id == alpha),
        (StudyQuery(patient_name="DOE^J*"), lambda f: chest(f) and f.patient_name.startswith("DOE^J")),
        (StudyQuery(patient_name="ROE^RICH?RD"), lambda f: chest(f) and f.patient_name == "ROE^RICHARD"),
        (StudyQuery(accession="ACC11"), lambda f: chest(f) and f.accession == "ACC11"),
        (StudyQuery(study_date="20250201-20250430", patient_name="*O*"),
         lambda f: chest(f) and "20250201" <= f.study_date <= "20250430"),
        (StudyQuery(study_date="today", patient_id="PACS-*"), lambda f: chest(f) and f.study_date == TODAY),
        (StudyQuery(patient_id=bravo, modalities=("CT",)), lambda f: f.patient_id == bravo and f.modality == "CT"),
        (StudyQuery(patient_id=bravo, modalities=("CR",)), lambda f: False),
        (StudyQuery(patient_id=alpha, modalities=("CR",)), lambda f: f.patient_id == alpha and f.modality == "CR"),
    ]
    for query, keep in cases:
        found = find_studies(conn, query)
        assert {s.StudyInstanceUID for s in found} == studies_of(pacs, keep), query
        assert len(found) == len({s.StudyInstanceUID for s in found})
    one = find_studies(conn, StudyQuery(accession="ACC01"))
    assert len(one) == 1
    s = one[0]
    assert (s.PatientID, s.PatientName, s.StudyDate, s.ModalitiesInStudy) == (alpha, "DOE^JOHN", "20250320", ("CR",))
    assert s.StudyDescription == "CHEST PA LAT 1" and s.NumberOfStudyRelatedInstances == 2 and s.AccessionNumber == "ACC01"
    dates = [x.StudyDate for x in find_studies(conn, StudyQuery(patient_id=alpha))]
    assert dates == sorted(dates, reverse=True)  # newest first


@pytest.mark.parametrize("kind", CONNECTIONS)
def test_series_level_keeps_the_modalities_asked(pacs, kind):
    conn = connect(kind, pacs)
    first = next(f for f in pacs.films if f.modality == "SR")
    series = find_series(conn, first.study_uid, ("CR", "DX"))
    expected = {f.series_uid for f in pacs.films if f.study_uid == first.study_uid and f.modality == "CR"}
    assert {s.SeriesInstanceUID for s in series} == expected and len(expected) == 2
    assert {s.SeriesInstanceUID for s in find_series(conn, first.study_uid, ())} == expected | {first.series_uid}


def test_findscu_finds_the_same_studies(pacs):
    """dcmtk's findscu, a C-FIND SCU nobody here wrote, gets the same study UIDs."""
    pid = PACS_PATIENTS[1][0]
    out = subprocess.run([dcmtk("findscu"), "-S", "-aet", CALLING_AE, "-aec", pacs.aet, "-k", "QueryRetrieveLevel=STUDY",
                          "-k", f"PatientID={pid}", "-k", "StudyInstanceUID", "127.0.0.1", str(pacs.dicom_port)],
                         capture_output=True, text=True, timeout=60)
    theirs = set(re.findall(r"\(0020,000d\) UI \[([0-9.]+)", out.stdout + out.stderr))
    ours = {s.StudyInstanceUID for s in find_studies(dimse(pacs), StudyQuery(patient_id=pid, modalities=()))}
    assert theirs and theirs == ours


def test_wrong_ae_or_port_is_a_clear_error(pacs):
    wrong = Connection(parse_destination(f"NOTORTHANC@127.0.0.1:{pacs.dicom_port}"), calling_ae=CALLING_AE, timeout=5)
    # Orthanc 1.10 does not check the called AE title unless told to: it answers anyway, or refuses
    try:
        find_studies(wrong, StudyQuery(patient_id="x"))
    except PacsQueryError as exc:
        assert "NOTORTHANC" in str(exc)
    closed = Connection(parse_destination(f"ORTHANC@127.0.0.1:{free_port()}"), timeout=5)
    with pytest.raises(PacsQueryError, match="could not be reached"):
        find_studies(closed, StudyQuery(patient_id="x"))
    with pytest.raises(PacsQueryError, match="could not be reached"):
        find_studies(Connection(parse_destination(f"http://127.0.0.1:{free_port()}/dicom-web"), timeout=5), StudyQuery())


# --------------------------------------------------------------------------- retrieve
def _pixels_by_sop(paths) -> dict[str, tuple[str, bytes]]:
    out = {}
    for p in paths:
        ds = pydicom.dcmread(p)
        out[str(ds.SOPInstanceUID)] = (str(ds.file_meta.TransferSyntaxUID), ds.PixelData)
    return out


@pytest.mark.parametrize("kind,method", [("dimse", "get"), ("dimse", "move"), ("web", "get")])
def test_retrieve_brings_the_films_as_stored_and_only_once(pacs, tmp_path, kind, method):
    conn = connect(kind, pacs)
    pid = PACS_PATIENTS[0][0]
    cache = RetrieveCache(tmp_path / "cache")
    kwargs = {"method": method, "move_port": pacs.move_port, "move_host": "127.0.0.1"}
    got = retrieve_studies(conn, StudyQuery(patient_id=pid), cache, **kwargs)
    films = [f for f in pacs.films if f.patient_id == pid and f.modality == "CR"]
    assert got.fetched == len(films) == 6 and got.from_cache == 0  # one series a film; no SR
    assert _pixels_by_sop(got.files) == _pixels_by_sop(f.path for f in films)
    for s in got.series:
        assert s.folder == tmp_path / "cache" / s.StudyInstanceUID / s.SeriesInstanceUID
        assert (s.folder / MANIFEST).is_file()
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".partial")]
    again = retrieve_studies(conn, StudyQuery(patient_id=pid), cache, **kwargs)
    assert (again.fetched, again.from_cache) == (0, 6) and sorted(again.files) == sorted(got.files)


def test_real_films_come_back_byte_for_byte(pacs, tmp_path):
    """The real files (JPEG 2000, JPEG Lossless, a DX): the PACS sends them as stored."""
    if not pacs.real:
        pytest.skip("../shared/data is not here")
    conn = dimse(pacs)
    for pid, path in pacs.real.items():
        got = retrieve_studies(conn, StudyQuery(patient_id=pid, modalities=("CR", "DX")), RetrieveCache(tmp_path / pid))
        assert _pixels_by_sop(got.files) == _pixels_by_sop([path]), pid


def test_move_to_an_ae_the_pacs_does_not_know_says_so(pacs, tmp_path):
    stranger = Connection(parse_destination(pacs.destination), calling_ae="STRANGER", timeout=20)
    with pytest.raises(PacsRetrieveError, match="STRANGER"):
        retrieve_studies(stranger, StudyQuery(patient_id=PACS_PATIENTS[2][0]), RetrieveCache(tmp_path / "c"),
                         method="move", move_port=free_port(), move_host="127.0.0.1")
    assert not list((tmp_path / "c").glob("*/*/" + MANIFEST))


def test_cache_keeps_within_its_limit_least_recently_used_first(pacs, tmp_path):
    conn = dimse(pacs)
    pid = PACS_PATIENTS[2][0]
    studies = find_studies(conn, StudyQuery(patient_id=pid))
    assert len(studies) == 3
    probe = RetrieveCache(tmp_path / "probe")
    one = retrieve_studies(conn, StudyQuery(), probe, studies=studies[:1])
    study_bytes = sum(s.bytes for s in one.series)
    cache = RetrieveCache(tmp_path / "cache", max_bytes=int(study_bytes * 2.25))  # two studies fit, not three
    first = retrieve_studies(conn, StudyQuery(), cache, studies=[studies[0]])
    retrieve_studies(conn, StudyQuery(), cache, studies=[studies[1]])
    assert retrieve_studies(conn, StudyQuery(), cache, studies=[studies[0]]).fetched == 0  # used again: now the newest
    retrieve_studies(conn, StudyQuery(), cache, studies=[studies[2]])
    assert cache.size() <= cache.max_bytes
    held = {p.parent.parent.name for p in (tmp_path / "cache").glob("*/*/" + MANIFEST)}
    assert held == {studies[0].StudyInstanceUID, studies[2].StudyInstanceUID}  # the least recently used went
    assert all(f.is_file() for f in first.files)
    assert not (tmp_path / "cache" / studies[1].StudyInstanceUID).exists()


def test_a_series_not_committed_is_never_complete(tmp_path):
    cache = RetrieveCache(tmp_path)
    partial = cache.begin("1.2.3", "1.2.3.4")
    partial.add("1.2.3.4.5", b"not really DICOM")
    assert cache.get("1.2.3", "1.2.3.4") is None and cache.entries() == []
    partial.discard()
    (tmp_path / "1.2.3" / "1.2.3.4").mkdir(parents=True)  # a folder without a manifest
    (tmp_path / "1.2.3" / "1.2.3.4" / "x.dcm").write_bytes(b"x")
    assert cache.get("1.2.3", "1.2.3.4") is None
    partial = cache.begin("1.2.3", "1.2.3.4")
    partial.add("1.2.3.4.6", b"abc")
    done = partial.commit()
    assert [f.name for f in done.files] == ["1.2.3.4.6.dcm"] and done.bytes == 3
    with pytest.raises(PacsRetrieveError, match="not a DICOM UID"):
        cache.begin("1.2.3", "../../x")
    # what a killed process left: an old partial folder goes when a cache is next opened there, a
    # young one (maybe another process's retrieve in hand) stays
    old, young = cache.begin("1.2.3", "1.2.3.7"), cache.begin("1.2.3", "1.2.3.8")
    old.add("1.2.3.7.1", b"x")
    os.utime(old.folder, (0, 0))
    RetrieveCache(tmp_path)
    assert not old.folder.exists() and young.folder.exists()
    assert [folder.name for _, _, folder in cache.entries()] == ["1.2.3.4"]


def test_name_matching_of_dicomweb_answers():
    from cxrviewer.dimse.query import name_matches

    assert name_matches("DOE^J*", "DOE^JOHN") and name_matches("doe^j*", "DOE^JANE")
    assert not name_matches("DOE^J*", "DOEX^JOHN") and not name_matches("DOE^J*", "DOEJOHN")
    assert name_matches("ROE^RICH?RD", "ROE^RICHARD") and not name_matches("ROE^RICH?RD", "ROE^RICHHARD")
    assert name_matches("[A]*", "[A]BC") and not name_matches("[A]*", "ABC")  # brackets are literal


@pytest.fixture
def big_pacs(tmp_path):
    """An Orthanc of its own holding one long series (to cancel or kill in the middle of)."""
    films = make_big_series(tmp_path / "big", 40)
    move_port = free_port()
    with running_orthanc(tmp_path / "orthanc", {"cxrtest": (CALLING_AE, move_port)}, query_retrieve=True) as server:
        for f in films:
            server.upload(f)
        server.move_port = move_port
        yield server


@pytest.mark.slow
@pytest.mark.parametrize("kind,method", [("dimse", "get"), ("dimse", "move"), ("web", "get")])
def test_cancel_keeps_nothing_half_done(big_pacs, tmp_path, kind, method, caplog):
    caplog.set_level(logging.DEBUG, logger="cxrviewer.dimse.retrieve")
    conn = connect(kind, big_pacs)
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.received)
        if p.received >= 3:
            cancel.set()

    cache = RetrieveCache(tmp_path / "cache")
    with pytest.raises(RetrieveCancelledError, match="cancelled"):
        retrieve_studies(conn, StudyQuery(patient_id="PACS-BIG-0009"), cache, method=method, cancel=cancel,
                         progress=progress, move_port=big_pacs.move_port, move_host="127.0.0.1")
    assert max(seen) < 40  # it stopped before the end
    if kind == "dimse":  # a real C-CANCEL, answered by the PACS with Cancel (PS3.4 C.4.2.1.5)
        assert any("final status 0xFE00" in r.getMessage() for r in caplog.records)
    assert cache.entries() == [] and not any((tmp_path / "cache").glob(".partial*"))


@pytest.mark.slow
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_a_pacs_killed_mid_retrieve_is_a_clear_error_and_nothing_is_complete(big_pacs, tmp_path, kind):
    conn = connect(kind, big_pacs)

    def progress(p):
        if p.received >= 2 and big_pacs.process.poll() is None:
            os.kill(big_pacs.process.pid, signal.SIGKILL)
            big_pacs.process.wait(10)

    cache = RetrieveCache(tmp_path / "cache")
    with pytest.raises(PacsRetrieveError) as caught:
        retrieve_studies(conn, StudyQuery(patient_id="PACS-BIG-0009"), cache, progress=progress)
    assert not isinstance(caught.value, RetrieveCancelledError)
    assert "run the retrieve again" in str(caught.value) and "PACS-BIG" not in str(caught.value)
    assert cache.entries() == [] and not any((tmp_path / "cache").glob(".partial*"))


# --------------------------------------------------------------------------- CLI
def cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cxrviewer", *argv], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("kind", CONNECTIONS)
def test_query_cli_json_and_table(pacs, kind, capsys):
    from cxrviewer.cli import main

    where = pacs.destination if kind == "dimse" else (pacs.dicomweb or pytest.skip("no DICOMweb plugin"))
    pid = PACS_PATIENTS[1][0]
    assert main(["query", "--pacs", where, "--calling-ae", CALLING_AE, "--patient-id", pid, "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert {g["StudyInstanceUID"] for g in got} == studies_of(pacs, lambda f: f.patient_id == pid and f.modality == "DX")
    for g in got:
        assert {"StudyInstanceUID", "PatientID", "StudyDate", "StudyDescription", "ModalitiesInStudy",
                "NumberOfStudyRelatedInstances"} <= set(g)
        assert g["PatientID"] == pid and g["ModalitiesInStudy"] == ["DX"] and g["NumberOfStudyRelatedInstances"] == 2
    assert main(["query", "--pacs", where, "--calling-ae", CALLING_AE, "--patient-id", pid, "--study-date", "today"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[0].startswith("DATE")
    today = next(f for f in pacs.films if f.patient_id == pid and f.study_date == TODAY)
    assert lines[1].split()[:2] == [f"{TODAY[:4]}-{TODAY[4:6]}-{TODAY[6:]}", pid] and lines[1].endswith(today.study_uid)


def test_cli_errors_name_the_flags(pacs, capsys):
    from cxrviewer.cli import main

    assert main(["query", "--pacs", f"ORTHANC@127.0.0.1:{free_port()}", "--timeout", "3"]) == 2
    err = capsys.readouterr().err
    assert "could not be reached" in err and "--pacs" in err and "Traceback" not in err
    assert main(["query", "--pacs", pacs.destination, "--study-date", "20251301"]) == 2
    assert "20251301" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stopped:
        main(["score", "film.png", "--out", "r.csv", "--patient-id", "X"])
    assert stopped.value.code == 2 and "go with --pacs" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["score", "--out", "r.csv"])
    assert "give the films to score" in capsys.readouterr().err


def test_nothing_identifying_is_logged_even_at_debug(pacs, tmp_path):
    pid, name = PACS_PATIENTS[0]
    runs = [cli("-vv", "query", "--pacs", pacs.destination, "--calling-ae", CALLING_AE, "--patient-id", pid,
                "--patient-name", "DOE^JOHN"),
            cli("-vv", "retrieve", "--pacs", pacs.destination, "--calling-ae", CALLING_AE, "--patient-id", pid,
                "--to", str(tmp_path / "r"), "--no-progress")]
    if pacs.dicomweb:
        runs.append(cli("-vv", "query", "--pacs", pacs.dicomweb, "--patient-id", pid, "--patient-name", "DOE^JOHN"))
    for r in runs:
        assert r.returncode == 0, r.stderr
        assert "INFO" in r.stderr or "DEBUG" in r.stderr  # it did log
        assert pid not in r.stderr and "DOE" not in r.stderr, r.stderr
    assert len(list((tmp_path / "r").glob("*/*/*.dcm"))) == 6


def test_retrieve_cli_into_a_folder(pacs, tmp_path):
    study = next(f for f in pacs.films if f.patient_id == PACS_PATIENTS[2][0])
    r = cli("retrieve", "--pacs", pacs.destination, "--calling-ae", CALLING_AE, "--study", study.study_uid,
            "--to", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 0, r.stderr
    files = sorted((tmp_path / "out").glob("*/*/*.dcm"))
    assert {pydicom.dcmread(f).SOPInstanceUID for f in files} == {
        f.sop_uid for f in pacs.films if f.study_uid == study.study_uid}
    assert "2 series retrieved" in r.stderr
    r = cli("retrieve", "--pacs", pacs.destination, "--calling-ae", CALLING_AE, "--study", study.study_uid,
            "--to", str(tmp_path / "out"), "--no-progress")
    assert r.returncode == 0 and "0 series retrieved, 2 already" in r.stderr
    r = cli("retrieve", "--pacs", pacs.destination, "--to", str(tmp_path / "x"))
    assert r.returncode == 2 and "say which studies" in r.stderr


def _probabilities(csv_path: Path, labels) -> dict[str, tuple[str, list[float] | None]]:
    """SOP Instance UID → (status, probabilities or None): the laterals of the test PACS are
    ``not_applicable`` (the frontal chest gate), the frontal films ``ok``."""
    import csv

    out = {}
    with open(csv_path, newline="") as f:
        for row in csv.DictReader(f):
            assert row["status"] in ("ok", "not_applicable"), row
            sop = str(pydicom.dcmread(row["path"], stop_before_pixels=True).SOPInstanceUID)
            out[sop] = (row["status"], [float(row[label]) for label in labels] if row["status"] == "ok" else None)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("kind", CONNECTIONS)
def test_score_pacs_scores_exactly_that_patients_films(pacs, tmp_path, tiny_model, kind):
    from tinymodel import LABELS

    where = pacs.destination if kind == "dimse" else (pacs.dicomweb or pytest.skip("no DICOMweb plugin"))
    pid = PACS_PATIENTS[1][0]
    films = [f.path for f in pacs.films if f.patient_id == pid and f.modality in ("CR", "DX")]
    direct = cli("score", *map(str, films), "--out", str(tmp_path / "direct.csv"), "--model", str(tiny_model), "--no-progress")
    assert direct.returncode == 0, direct.stderr
    argv = ["score", "--pacs", where, "--calling-ae", CALLING_AE, "--patient-id", pid, "--out", str(tmp_path / "r.csv"),
            "--cache", str(tmp_path / "cache"), "--model", str(tiny_model), "--no-progress"]
    r = cli(*argv)
    assert r.returncode == 0, r.stderr
    ours, theirs = _probabilities(tmp_path / "r.csv", LABELS), _probabilities(tmp_path / "direct.csv", LABELS)
    assert set(ours) == set(theirs) and len(ours) == 6
    assert {status for status, _ in ours.values()} == {"ok", "not_applicable"}  # PA scored, laterals not
    for sop, (status, probs) in ours.items():
        assert status == theirs[sop][0]
        if probs is not None:
            assert max(abs(a - b) for a, b in zip(probs, theirs[sop][1])) <= 1e-6
    before = (tmp_path / "r.csv").read_bytes()
    again = cli(*argv)  # resumes: nothing fetched, nothing scored again
    assert again.returncode == 0, again.stderr
    assert "0 series retrieved, 6 already" in again.stderr
    assert (tmp_path / "r.csv").read_bytes() == before


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a certificate it signed for 127.0.0.1 (openssl), for DICOM TLS."""
    import shutil

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder.mkdir()
    ca_key, ca, key, csr, cert = (folder / n for n in ("ca.key", "ca.pem", "pacs.key", "pacs.csr", "pacs.pem"))
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    for cmd in (
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca, "-days", "2",
         "-subj", "/CN=cxrviewer test CA"],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-out", cert,
         "-days", "2", "-extfile", ext],
    ):
        subprocess.run([str(c) for c in cmd], check=True, capture_output=True, timeout=60)
    return ca, cert, key


@pytest.mark.slow
def test_dicom_tls_towards_the_pacs(tmp_path):
    """Orthanc speaking DICOM TLS only: with --tls-ca we query and C-GET; without it, or with
    another CA, a clear error."""
    from cxrviewer.dimse.query import ClientTls

    ca, cert, key = _certificates(tmp_path / "tls")
    films = make_pacs_studies(tmp_path / "films", TODAY, size=64)
    tls = {"DicomTlsEnabled": True, "DicomTlsCertificate": str(cert), "DicomTlsPrivateKey": str(key),
           "DicomTlsTrustedCertificates": str(ca), "DicomTlsRemoteCertificateRequired": False}
    with running_orthanc(tmp_path / "orthanc", {}, query_retrieve=True, extra=tls) as server:
        for f in films[:2]:
            server.upload(f.path)
        dest = parse_destination(server.destination)
        conn = Connection(dest, calling_ae=CALLING_AE, timeout=10, tls=ClientTls(ca=ca))
        found = find_studies(conn, StudyQuery(patient_id=films[0].patient_id))
        assert [s.StudyInstanceUID for s in found] == [films[0].study_uid]
        got = retrieve_studies(conn, StudyQuery(patient_id=films[0].patient_id), RetrieveCache(tmp_path / "c"))
        assert len(got.files) == 2
        with pytest.raises(PacsQueryError, match="aborted the association"):
            find_studies(Connection(dest, calling_ae=CALLING_AE, timeout=5), StudyQuery(patient_id="x"))
        other_ca, _, _ = _certificates(tmp_path / "other")
        with pytest.raises(PacsQueryError, match="TLS"):
            find_studies(Connection(dest, calling_ae=CALLING_AE, timeout=5, tls=ClientTls(ca=other_ca)), StudyQuery())


def test_getscu_gets_what_we_get(pacs, tmp_path):
    """dcmtk's getscu, a C-GET SCU nobody here wrote, receives the same instances and pixels."""
    pid = PACS_PATIENTS[2][0]
    ours = retrieve_studies(dimse(pacs), StudyQuery(patient_id=pid), RetrieveCache(tmp_path / "ours"))
    out = tmp_path / "theirs"
    out.mkdir()
    for s in ours.series:
        r = subprocess.run([dcmtk("getscu"), "-S", "-aet", CALLING_AE, "-aec", pacs.aet, "-k", "QueryRetrieveLevel=SERIES",
                            "-k", f"StudyInstanceUID={s.StudyInstanceUID}", "-k", f"SeriesInstanceUID={s.SeriesInstanceUID}",
                            "-od", str(out), "127.0.0.1", str(pacs.dicom_port)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    assert _pixels_by_sop(ours.files) == _pixels_by_sop(sorted(out.iterdir())) and len(ours.files) == 6


def test_check_connection_echoes_or_says_why_not(pacs):
    from cxrviewer.dimse.query import check_connection

    assert check_connection(dimse(pacs)) == f"{pacs.destination} answered the C-ECHO"
    assert "answered a QIDO-RS search" in check_connection(web(pacs))
    with pytest.raises(PacsQueryError, match="could not be reached"):
        check_connection(Connection(parse_destination(f"ORTHANC@127.0.0.1:{free_port()}"), timeout=3))
    stranger = Connection(parse_destination(pacs.destination), calling_ae="STRANGER", timeout=5)
    with pytest.raises(PacsQueryError, match="C-ECHO"):  # Orthanc answers, and refuses a caller it does not know
        check_connection(stranger)


@pytest.mark.parametrize("kind", CONNECTIONS)
def test_find_prior_is_the_same_patients_previous_chest_study(pacs, kind):
    from cxrviewer.dimse.query import find_prior

    conn = connect(kind, pacs)
    bravo = PACS_PATIENTS[1][0]
    by_date = {s.StudyDate: s for s in find_studies(conn, StudyQuery(patient_id=bravo))}
    assert sorted(by_date) == ["20250115", "20250420", TODAY]
    assert find_prior(conn, by_date[TODAY]).StudyInstanceUID == by_date["20250420"].StudyInstanceUID  # not the CT of 20250301
    assert find_prior(conn, by_date["20250420"]).StudyInstanceUID == by_date["20250115"].StudyInstanceUID
    assert find_prior(conn, by_date["20250115"]) is None
    ct = find_studies(conn, StudyQuery(patient_id=bravo, modalities=("CT",)))[0]
    assert find_prior(conn, by_date[TODAY], ("CT",)).StudyInstanceUID == ct.StudyInstanceUID
