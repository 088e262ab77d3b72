"""DICOM results of films in every Specific Character Set, and of films with invalid values.

A film's patient and study text may come in any character set pydicom decodes (PS3.3
C.12.1.1.2), ISO 2022 code extensions included (PS3.5 6.1.2.5; the Japanese and Korean
examples of PS3.5 annexes H and I, as pydicom's documentation uses them). Every result is
written in ISO_IR 192 (UTF-8) with the text decoded (:mod:`cxrviewer.dicom.charset`): each is
checked with dicom3tools' ``dciodvfy`` (no ``Error`` line) and read back, its names equal to
the source's. Values that break their VR are left out, with a log line that names the
attribute and never the value (issue 25).
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom import config as dicom_config

from dicomfactory import CR_IMAGE, dicom_dataset, write_dicom
from cxrviewer.dicom import export_dicom_gsps, export_dicom_sr
from cxrviewer.dicom.folder import DicomResultsFolder, dicom_uids
from cxrviewer.dicom.sc import export_dicom_sc
from cxrviewer.io import read_film

REPO = Path(__file__).resolve().parent.parent

#: case → (Specific Character Set, Patient's Name, Study Description); None: no (0008,0005)
CHARSETS = {
    "japanese_iso2022": ("\\ISO 2022 IR 87", "Yamada^Tarou=山田^太郎=やまだ^たろう", "胸部 正面"),
    "korean_iso2022": ("\\ISO 2022 IR 149", "Hong^Gildong=洪^吉洞=홍^길동", "흉부 촬영"),
    "lone_iso2022_ir100": ("ISO 2022 IR 100", "Müller^Jürgen", "Thorax p.a. Übersicht"),
    "empty": ("", "Doe^Jane", "CHEST PA"),
    "absent": (None, "Doe^Jane", "CHEST PA"),
    "latin1": ("ISO_IR 100", "Buc^Jérôme", "Radiographie thoracique"),
    "greek": ("ISO_IR 126", "Διονυσιος", "Θώρακας"),
    "cyrillic": ("ISO_IR 144", "Люкceмбypг", "Грудная клетка"),
    "utf8": ("ISO_IR 192", "Wang^XiaoDong=王^小東", "胸部"),
    "gb18030": ("GB18030", "Wang^XiaoDong=王^小东", "胸部"),
    "japanese_katakana": ("\\ISO 2022 IR 13\\ISO 2022 IR 87", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう", "ｷｮｳﾌﾞ"),
}
FORMATS = {"sr": export_dicom_sr, "gsps": export_dicom_gsps, "sc": export_dicom_sc}


def charset_film(path: Path, charset: str | None, name: str, description: str, **elements) -> Path:
    """A small CR whose patient and study text pydicom encodes in ``charset``."""
    ds = dicom_dataset(
        (np.arange(96 * 80, dtype=np.uint16) % 4096).reshape(96, 80), bits_stored=12, sop_class=CR_IMAGE,
        modality="CR", BodyPartExamined="CHEST", PatientID="PID-77", **elements,
    )
    if charset is not None:
        ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.StudyDescription = description
    ds.ReferringPhysicianName = name.split("=")[0]
    write_dicom(path, ds)
    back = pydicom.dcmread(path)  # the source itself reads back as built (pydicom encoded it)
    assert str(back.PatientName) == name and back.StudyDescription == description
    return path


def dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy is not installed (apt-get install dicom3tools)")
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def check_result(path: Path, fmt: str, name: str, description: str) -> None:
    """Valid, in UTF-8 (or plain ASCII), and its names read back equal to the source's."""
    assert dciodvfy_errors(path) == [], (path.name, dciodvfy_errors(path))
    ds = pydicom.dcmread(path)
    text = name + description
    if fmt != "sc" or not text.isascii():  # the SC writes no character set for ASCII text
        assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == name
    assert str(ds.ReferringPhysicianName) == name.split("=")[0]
    if fmt != "gsps":  # the Presentation State IOD has no Study Description of its own to copy
        assert ds.get("StudyDescription", description) == description
    if not text.isascii():
        assert name.split("=")[-1].encode("utf-8") in path.read_bytes()  # UTF-8 on the wire
    if fmt == "sr":
        assert hd.sr.srread(path).PatientName == ds.PatientName  # highdicom reads it too


@pytest.mark.parametrize("case", sorted(CHARSETS))
def test_results_of_a_film_in_each_character_set(tmp_path, classifier, case, caplog):
    charset, name, description = CHARSETS[case]
    film = read_film(charset_film(tmp_path / "film.dcm", charset, name, description))
    pred = classifier.predict_one(film)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for fmt, export in FORMATS.items():
            out = export(tmp_path / f"{fmt}.dcm", film, pred, classifier.info)
            check_result(out, fmt, name, description)
    said = caplog.text + "\n".join(str(w.message) for w in caught)
    for part in name.replace("=", "^").split("^"):
        assert part not in said  # never the patient's name in a log line or a warning


def test_a_misspelt_character_set_is_named_and_read_as_pydicom_reads_it(tmp_path, classifier, caplog):
    """``ISO-IR 100`` is not a defined term (PS3.3 C.12.1.1.2): the results are still written,
    and the log names the attribute instead of "(ValueError) ... please report it"."""
    path = tmp_path / "film.dcm"
    with dicom_config.disable_value_validation():
        charset_film(path, "ISO_IR 100", "Buc^Jérôme", "Thorax")
        ds = pydicom.dcmread(path)
        ds.SpecificCharacterSet = "ISO-IR 100"  # the bytes stay Latin-1
        ds.save_as(path)
    film = read_film(path)
    pred = classifier.predict_one(film)
    caplog.set_level(logging.INFO)
    for fmt, export in FORMATS.items():
        check_result(export(tmp_path / f"{fmt}.dcm", film, pred, classifier.info), fmt, "Buc^Jérôme", "Thorax")
    assert "Specific Character Set (0008,0005)" in caplog.text and "'ISO-IR 100'" in caplog.text
    assert "please report it" not in caplog.text


def test_invalid_source_values_are_left_out_with_a_log_line(tmp_path, classifier, caplog):
    """A 65-character Patient's Name, a one-value Patient Orientation and a date that is no
    date break their VR (PS3.5 table 6.2-1, PS3.6): each result leaves them out (a Type 2
    attribute empty), stays valid, and the log names each attribute, never its value."""
    long_name = "Verylongfamilyname" * 3 + "^Givennames"  # 65 characters in one component group
    assert len(long_name) > 64
    path = tmp_path / "film.dcm"
    with dicom_config.disable_value_validation():
        ds = dicom_dataset((np.arange(96 * 80, dtype=np.uint16) % 4096).reshape(96, 80), bits_stored=12,
                           sop_class=CR_IMAGE, modality="CR", BodyPartExamined="CHEST")
        ds.PatientName = long_name
        ds.PatientOrientation = "P"  # VM 2: row and column directions (PS3.3 C.7.6.1.1.1)
        ds.StudyDate = "20241345"  # month 13
        ds.PatientBirthDate = "1945-03-17"
        write_dicom(path, ds)
    film = read_film(path)
    pred = classifier.predict_one(film)
    caplog.set_level(logging.INFO)
    for fmt, export in FORMATS.items():
        out = export(tmp_path / f"{fmt}.dcm", film, pred, classifier.info)
        assert dciodvfy_errors(out) == [], (fmt, dciodvfy_errors(out))
        back = pydicom.dcmread(out)
        assert str(back.PatientName) == "" and back.StudyDate == "" and back.PatientBirthDate == ""
        assert back.get("PatientOrientation", "") in ("", None)
        assert "Verylong" not in out.read_bytes().decode("latin-1")
    for attribute in ("Patient's Name (0010,0010)", "Patient Orientation (0020,0020)", "Study Date (0008,0020)",
                      "Patient's Birth Date (0010,0030)"):
        assert attribute in caplog.text, attribute
    assert "Verylong" not in caplog.text and "20241345" not in caplog.text and "1945" not in caplog.text


def test_a_two_valued_patient_name_is_left_out(tmp_path, classifier, caplog):
    path = tmp_path / "film.dcm"
    with dicom_config.disable_value_validation():
        ds = dicom_dataset((np.arange(96 * 80, dtype=np.uint16) % 4096).reshape(96, 80), bits_stored=12,
                           sop_class=CR_IMAGE, modality="CR")
        ds.add_new(0x00100010, "PN", ["Doe^Jane", "Roe^Richard"])  # Patient's Name is VM 1 (PS3.6)
        write_dicom(path, ds)
    film = read_film(path)
    pred = classifier.predict_one(film)
    caplog.set_level(logging.INFO)
    for fmt, export in FORMATS.items():
        out = export(tmp_path / f"{fmt}.dcm", film, pred, classifier.info)
        assert dciodvfy_errors(out) == [], (fmt, dciodvfy_errors(out))
        assert str(pydicom.dcmread(out).PatientName) == ""
    assert "Patient's Name (0010,0010) has 2 values where the standard allows 1" in caplog.text
    assert "Roe" not in caplog.text and "Doe" not in caplog.text


# --------------------------------------------------------------------------- command line
def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cxrviewer", *args], capture_output=True, text=True,
                          timeout=180, env=env, cwd=REPO)


CLI_CASES = ("japanese_iso2022", "korean_iso2022", "lone_iso2022_ir100", "empty")


@pytest.mark.slow
def test_cli_export_and_score_of_films_in_iso2022_and_empty_character_sets(tmp_path, tiny_model):
    """The issue's films: ``export --format dicom-sr|dicom-gsps|dicom-sc`` and ``score
    --dicom-out`` write every result, the rows keep their probabilities, and the results read
    back with the source's names."""
    films = tmp_path / "films"
    films.mkdir()
    for case in CLI_CASES:
        charset_film(films / f"{case}.dcm", *CHARSETS[case])
    jp = films / "japanese_iso2022.dcm"
    for fmt in ("dicom-sr", "dicom-gsps", "dicom-sc"):
        out = tmp_path / f"{fmt}.dcm"
        run = run_cli("export", str(jp), "--format", fmt, "--out", str(out), "--model", str(tiny_model))
        assert run.returncode == 0, run.stderr
        check_result(out, fmt.split("-")[1], *CHARSETS["japanese_iso2022"][1:])

    out = tmp_path / "out"
    run = run_cli("score", str(films), "--out", str(out / "results.csv"), "--dicom-out", str(out / "dicom"),
                  "--model", str(tiny_model), "--no-progress", "--workers", "1")
    assert run.returncode == 0, run.stderr
    assert "please report it" not in run.stderr and "wrote 12 DICOM result(s)" in run.stderr
    rows = list(csv.DictReader((out / "results.csv").open(newline="", encoding="utf-8")))
    assert len(rows) == 4 and all(r["status"] == "ok" and r["error"] == "" for r in rows), rows
    folder = DicomResultsFolder(out / "dicom")
    for case in CLI_CASES:
        for fmt, path in folder.paths(dicom_uids(films / f"{case}.dcm")).items():
            check_result(path, fmt, *CHARSETS[case][1:])


def test_the_node_writes_every_result_of_an_iso2022_film(tmp_path, classifier):
    """The DICOM node's writer (``node.outputs.write_results``, the one it sends from) makes all
    three results of a Japanese and a Korean film, where it made none before (issue 25)."""
    from cxrviewer.node.outputs import write_results

    for case in ("japanese_iso2022", "korean_iso2022", "empty"):
        charset, name, description = CHARSETS[case]
        film = read_film(charset_film(tmp_path / f"{case}.dcm", charset, name, description))
        written, errors = write_results(tmp_path / case, film, classifier.predict_one(film), classifier.info,
                                        ("sr", "gsps", "sc"))
        assert errors == {} and sorted(written) == ["gsps", "sc", "sr"], errors
        for fmt, path in written.items():
            check_result(path, fmt, name, description)


@pytest.mark.parametrize(("keyword", "value", "attribute"), [
    ("PatientSex", "U", "Patient's Sex (0010,0040)"),  # CS, but not M, F or O: highdicom refused the SR
    ("Laterality", "X", "Laterality (0020,0060)"),
    ("PatientName", "A^B^C^D^E^F", "Patient's Name (0010,0010)"),  # six components
    ("StudyTime", "10:15:00", "Study Time (0008,0030)"),
])
def test_values_outside_their_enumerated_or_structured_form_are_left_out(tmp_path, classifier, caplog, keyword,
                                                                         value, attribute):
    with dicom_config.disable_value_validation():
        ds = dicom_dataset((np.arange(96 * 80, dtype=np.uint16) % 4096).reshape(96, 80), bits_stored=12,
                           sop_class=CR_IMAGE, modality="CR", BodyPartExamined="HAND")
        setattr(ds, keyword, value)
        path = write_dicom(tmp_path / "film.dcm", ds)
    film = read_film(path)
    pred = classifier.predict_one(film)
    caplog.set_level(logging.INFO)
    for fmt, export in FORMATS.items():
        out = export(tmp_path / f"{fmt}.dcm", film, pred, classifier.info)
        assert dciodvfy_errors(out) == [], (fmt, dciodvfy_errors(out))
        assert str(pydicom.dcmread(out).get(keyword, "")) == ""
    assert f"{attribute} has" in caplog.text and "please report it" not in caplog.text
