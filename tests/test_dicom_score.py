"""``cxrviewer score --dicom-out``: DICOM results per film of a folder run, resumed with the CSV.

Real chest DICOMs from ``../shared/data`` and the tiny contract model; every object written is
checked with dicom3tools' ``dciodvfy``. A rerun after a failed write, a removed file or a
``kill -9`` writes exactly the results that are missing and leaves the others as they are.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from cxrviewer.dicom.folder import DicomResultsFolder, dicom_uids, parse_formats

REPO = Path(__file__).resolve().parent.parent
# Roles of the DICOM corpus (generated, and real where ../shared/data is present; dicomfactory).
CHEST_ROLES = ("jpeg_baseline_chest", "nih_dx", "no_preamble_chest", "j2k_mono1")
CHEST_DICOMS = tuple(f"{role}.dcm" for role in CHEST_ROLES)
SOP_CLASSES = {"sr": "1.2.840.10008.5.1.4.1.1.88.34", "pr": "1.2.840.10008.5.1.4.1.1.11.1", "sc": "1.2.840.10008.5.1.4.1.1.7"}


def cli_args(films: Path, out: Path, model: Path, *extra: str) -> list[str]:
    # --score-all: the real j2k_mono1 (pydicom-data's RG3) is a tibia, which the model does not
    # read by its header; these tests are about the DICOM results of every film
    return [sys.executable, "-m", "cxrviewer", "score", str(films), "--out", str(out / "results.csv"),
            "--dicom-out", str(out / "dicom"), "--model", str(model), "--no-progress", "--workers", "1",
            "--score-all", *extra]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, env=env, cwd=REPO)


def dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy is not installed (apt-get install dicom3tools)")
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


@pytest.fixture
def films(tmp_path, dicom_corpus, nih_images) -> Path:
    """Four chest DICOMs and one NIH PNG in a folder of their own."""
    folder = tmp_path / "films"
    folder.mkdir()
    for role, name in zip(CHEST_ROLES, CHEST_DICOMS):
        shutil.copy2(dicom_corpus[role], folder / name)
    shutil.copy2(nih_images[0], folder / nih_images[0].name)
    return folder


def expected_files(films: Path, out: Path) -> dict[str, Path]:
    """film name → each result file it must get."""
    target = DicomResultsFolder(out / "dicom")
    found = {}
    for name in CHEST_DICOMS:
        for fmt, p in target.paths(dicom_uids(films / name)).items():
            found[f"{name}:{fmt}"] = p
    return found


def stamps(files) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files if p.is_file()}


def last_rows(csv_path: Path) -> dict[str, dict]:
    rows = {}
    for row in csv.DictReader(csv_path.open(newline="", encoding="utf-8")):
        rows[Path(row["path"]).name] = row  # the last row of a film wins, as on resume
    return rows


def test_parse_formats():
    assert parse_formats("sc, SR") == ("sr", "sc")
    with pytest.raises(ValueError, match="pdf"):
        parse_formats("sr,pdf")
    with pytest.raises(ValueError):
        parse_formats(",")


def test_a_png_has_no_dicom_results(nih_images, dicom_corpus):
    assert dicom_uids(nih_images[0]) is None
    assert DicomResultsFolder(Path("unused")).missing(nih_images[0]) == ()
    uids = dicom_uids(dicom_corpus["no_preamble_chest"])  # no preamble
    src = pydicom.dcmread(dicom_corpus["no_preamble_chest"], force=True, stop_before_pixels=True)
    assert (uids.study, uids.instance) == (src.StudyInstanceUID, src.SOPInstanceUID)


@pytest.mark.slow
def test_score_writes_valid_dicom_results_per_dicom_film(tmp_path, films, tiny_model):
    out = tmp_path / "out"
    run = run_cli(*cli_args(films, out, tiny_model))
    assert run.returncode == 0, run.stderr
    expected = expected_files(films, out)
    written = sorted(p for p in (out / "dicom").rglob("*") if p.is_file())
    assert written == sorted(expected.values())  # the PNG got none, and nothing else is there
    # the PNG is said once, in the summary, and is no error row
    assert run.stderr.count("not DICOM") == 1 and "1 film(s) are not DICOM" in run.stderr
    rows = last_rows(out / "results.csv")
    assert {r["status"] for r in rows.values()} == {"ok"} and len(rows) == 5
    for key, path in expected.items():
        name, fmt = key.split(":")
        src = pydicom.dcmread(films / name, force=True, stop_before_pixels=True)
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == SOP_CLASSES[path.name.split(".")[-2]]
        assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
        assert dciodvfy_errors(path) == [], (key, dciodvfy_errors(path))
        if fmt == "sr":
            dsrdump = shutil.which("dsrdump")
            if dsrdump is not None:  # dcmtk reads it as a structured report
                dump = subprocess.run([dsrdump, str(path)], capture_output=True, text=True, timeout=60)
                assert dump.returncode == 0 and "Imaging Measurement Report" in dump.stdout, dump.stderr
            report = hd.sr.srread(path).content
            (group, *_) = report.get_image_measurement_groups()
            assert str(group.source_images[0].referenced_sop_instance_uid) == src.SOPInstanceUID
            for group in report.get_image_measurement_groups():
                label = str(group.tracking_identifier)
                if label in rows[name]:
                    values = {m.name.meaning: m.value for m in group.get_measurements()}
                    assert f"{values['Probability']:.6f}" == rows[name][label], label


@pytest.mark.slow
def test_rerun_writes_exactly_the_missing_results(tmp_path, films, tiny_model):
    out = tmp_path / "out"
    expected = expected_files(films, out)
    blocked = expected[f"{CHEST_DICOMS[1]}:gsps"]
    blocked.mkdir(parents=True)  # a folder where the Presentation State goes: its write fails
    run = run_cli(*cli_args(films, out, tiny_model, "--dicom-formats", "sr,gsps"))
    assert run.returncode == 1, run.stderr
    rows = last_rows(out / "results.csv")
    # the film keeps its probabilities: its row is ok and says which DICOM result was not written
    failed = rows[CHEST_DICOMS[1]]
    assert failed["status"] == "ok" and "DICOM result pr not written" in failed["error"], failed
    assert failed["Atelectasis"] != "" and "could not be made" in run.stderr
    assert sum(r["status"] == "ok" for r in rows.values()) == 5
    sr_only = {k: p for k, p in expected.items() if not k.endswith(":sc")}
    before = stamps(sr_only.values())
    assert set(before) == set(sr_only.values()) - {blocked}

    blocked.rmdir()
    run = run_cli(*cli_args(films, out, tiny_model, "--dicom-formats", "sr,gsps"))
    assert run.returncode == 0, run.stderr
    assert "1 scored, 0 failed" in run.stderr and "4 already done" in run.stderr
    assert "wrote 1 DICOM result(s)" in run.stderr
    after = stamps(sr_only.values())
    assert set(after) == set(sr_only.values())
    assert {p: after[p] for p in before} == before  # the others were not written again
    assert dciodvfy_errors(blocked) == []
    assert last_rows(out / "results.csv")[CHEST_DICOMS[1]]["status"] == "ok"
    assert last_rows(out / "results.csv")[CHEST_DICOMS[1]]["error"] == ""

    # a result removed after its film's row was written: that film alone is scored again
    gone = expected[f"{CHEST_DICOMS[2]}:sr"]
    gone.unlink()
    before = stamps(sr_only.values())
    run = run_cli(*cli_args(films, out, tiny_model, "--dicom-formats", "sr,gsps"))
    assert run.returncode == 0, run.stderr
    assert "1 scored, 0 failed" in run.stderr and "wrote 1 DICOM result(s)" in run.stderr
    after = stamps(sr_only.values())
    assert gone in after and {p: after[p] for p in before} == before

    # asking for one more format later: every DICOM film is scored again for it alone
    run = run_cli(*cli_args(films, out, tiny_model))
    assert run.returncode == 0, run.stderr
    assert "4 scored" in run.stderr and "wrote 4 DICOM result(s)" in run.stderr
    assert {p: stamps(sr_only.values())[p] for p in after} == after


@pytest.mark.slow
def test_rerun_after_kill_completes_the_results(tmp_path, films, tiny_model):
    out = tmp_path / "out"
    expected = expected_files(films, out)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cli_args(films, out, tiny_model), env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if any(p.is_file() for p in expected.values()):
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    before = stamps(expected.values())
    assert before and len(before) < len(expected), "the kill came too late to test anything"

    run = run_cli(*cli_args(films, out, tiny_model))
    assert run.returncode == 0, run.stderr
    after = stamps(expected.values())
    assert set(after) == set(expected.values())
    assert {p: after[p] for p in before} == before  # what the killed run wrote is kept
    assert f"wrote {len(expected) - len(before)} DICOM result(s)" in run.stderr
    for path in set(after) - set(before):
        assert dciodvfy_errors(path) == [], path
    rows = last_rows(out / "results.csv")
    assert len(rows) == 5 and {r["status"] for r in rows.values()} == {"ok"}


def test_dicom_out_in_the_film_folder_is_refused(tmp_path, films, tiny_model, capsys):
    from cxrviewer.cli import main

    code = main(["score", str(films), "--out", str(tmp_path / "r.csv"), "--dicom-out", str(films),
                 "--model", str(tiny_model), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3 and "Choose another folder for the DICOM results" in err and "(--out)" not in err
    assert not (tmp_path / "r.csv").exists() and sorted(p.name for p in films.iterdir()) == sorted(
        [*CHEST_DICOMS, next(p.name for p in films.iterdir() if p.suffix == ".png")])


# --------------------------------------------------------------------------- issue 25
def score_main(films: Path, out: Path, model: Path, *extra: str, capsys=None) -> tuple[int, str]:
    from cxrviewer.cli import main

    code = main(["score", str(films), "--out", str(out / "results.csv"), "--dicom-out", str(out / "dicom"),
                 "--model", str(model), "--no-progress", "--workers", "1", *extra])
    return code, capsys.readouterr().err if capsys is not None else ""


def test_a_dicom_result_that_cannot_be_made_keeps_the_rows_probabilities(tmp_path, dicom_corpus, tiny_model, capsys):
    """An RGB DICOM (cxrviewer's own Secondary Capture) gets an SR and an SC but no grayscale
    Presentation State: its row stays ok with its probabilities and says which result failed;
    a rerun tries that one again (and only that one). The SC is not a chest radiograph by its
    header (applicability), so it is scored with --score-all."""
    from cxrviewer.dicom.sc import export_dicom_sc
    from cxrviewer.io import read_film
    from cxrviewer.model import Classifier

    clf = Classifier.load(tiny_model, device="cpu")
    films = tmp_path / "films"
    films.mkdir()
    film = read_film(dicom_corpus["nih_dx"])
    export_dicom_sc(films / "colour.dcm", film, clf.predict_one(film), clf.info)
    shutil.copy2(dicom_corpus["nih_dx"], films / "grey.dcm")
    out = tmp_path / "out"
    code, err = score_main(films, out, tiny_model, "--score-all", capsys=capsys)
    assert code == 1, err  # not everything asked for was made
    rows = last_rows(out / "results.csv")
    colour = rows["colour.dcm"]
    assert colour["status"] == "ok" and colour["Atelectasis"] != "", colour
    assert "DICOM result pr not written" in colour["error"] and "colour image" in colour["error"]
    assert rows["grey.dcm"]["status"] == "ok" and rows["grey.dcm"]["error"] == ""
    assert "wrote 5 DICOM result(s)" in err and "1 could not be made" in err
    paths = DicomResultsFolder(out / "dicom").paths(dicom_uids(films / "colour.dcm"))
    assert paths["sr"].is_file() and paths["sc"].is_file() and not paths["gsps"].exists()
    before = stamps(p for p in (out / "dicom").rglob("*.dcm"))

    code, err = score_main(films, out, tiny_model, "--score-all", capsys=capsys)
    assert code == 1 and "1 scored" in err and "0 failed" in err and "1 already done" in err, err
    assert "wrote 0 DICOM result(s)" in err  # the SR and SC it has are kept; the pr is tried again
    assert stamps(before) == before


def replace_film(path: Path) -> None:
    """The film re-exported under the same UIDs: other pixels (mirrored), a later mtime."""
    ds = pydicom.dcmread(path)
    px = ds.pixel_array
    ds.PixelData = np.ascontiguousarray(px[:, ::-1]).tobytes()
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.save_as(path)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))


def test_dicom_results_follow_a_replaced_film(tmp_path, dicom_corpus, tiny_model, capsys):
    """``score --dicom-out``, then the film is replaced under the same UIDs: the rerun scores it
    again and makes each result again, a new object (new SOP Instance UID) in place of the old
    file, saying what the new row says; a third run keeps them."""
    films = tmp_path / "films"
    films.mkdir()
    film = shutil.copy2(dicom_corpus["nih_dx"], films / "film.dcm")
    out = tmp_path / "out"
    code, err = score_main(films, out, tiny_model, capsys=capsys)
    assert code == 0, err
    paths = DicomResultsFolder(out / "dicom").paths(dicom_uids(film))
    old = {f: pydicom.dcmread(p).SOPInstanceUID for f, p in paths.items()}
    old_row = last_rows(out / "results.csv")["film.dcm"]

    replace_film(film)
    code, err = score_main(films, out, tiny_model, capsys=capsys)
    assert code == 0, err
    assert "1 scored" in err and "wrote 3 DICOM result(s)" in err
    assert "3 of them replace the results of a film that changed since" in err
    row = last_rows(out / "results.csv")["film.dcm"]
    assert row["status"] == "ok" and row != old_row
    for f, p in paths.items():
        ds = pydicom.dcmread(p)
        assert ds.SOPInstanceUID != old[f], f  # a corrected result is a new object
        assert dciodvfy_errors(p) == [], (f, dciodvfy_errors(p))
    assert sorted(q.name for q in paths["sr"].parent.iterdir()) == sorted(p.name for p in paths.values())
    report = hd.sr.srread(paths["sr"]).content
    for group in report.get_image_measurement_groups():
        label = str(group.tracking_identifier)
        if label in row:
            values = {m.name.meaning: m.value for m in group.get_measurements()}
            assert f"{values['Probability']:.6f}" == row[label], label

    before = stamps(paths.values())
    code, err = score_main(films, out, tiny_model, capsys=capsys)
    assert code == 0 and "0 scored" in err and "1 already done" in err, err
    assert stamps(paths.values()) == before
