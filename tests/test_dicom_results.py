"""DICOM results: Structured Report (TID 1500) and Presentation State, from real chest DICOMs.

Each object is checked by the tools a PACS team would use (dicom3tools' ``dciodvfy``, dcmtk's
``dsrdump``) and read back with highdicom and pydicom: the probabilities equal the CSV's, the
references point at the source instance, the study is kept, every finding has its layer.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.sr._concepts_dict import concepts as PS3_16_CONCEPTS

from dicomfactory import CR_IMAGE, corpus_cases, dicom_dataset, write_dicom
from cxrviewer import heatmap
from cxrviewer.dicom import build_gsps, build_sr, export_dicom_gsps, export_dicom_sr
from cxrviewer.dicom import codes
from cxrviewer.dicom.gsps import NOTICE_LAYER, layer_names
from cxrviewer.dicom.coords import box_points, outline_points
from cxrviewer.errors import DicomResultError, NoDicomSourceError
from cxrviewer.types import Film

REPO = Path(__file__).resolve().parent.parent
# Roles of the generated corpus, and of the real files where ../shared/data is present (dicomfactory).
CHEST_DICOMS = (
    "jpeg_baseline_chest",  # CR, JPEG baseline, MONOCHROME2
    "nih_dx",  # DX, uncompressed
    "no_preamble_chest",  # CR, MONOCHROME1, no preamble, window
    "j2k_mono1",  # CR, MONOCHROME1, JPEG 2000 (the real one is a tibia: the OOD guard flags it)
)
PHI_NAME = "Müller^Jürgen=山田^太郎"
PHI_STRINGS = ("Müller", "Jürgen", "Muller", "山田", "PID-8675309", "19450317", "ACC-55501", "Hibbert")


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def demo():
    """The bundled demo model (the real one: 14 ChestX-ray14 labels, OOD guard, demo=true)."""
    from cxrviewer.model import Classifier
    from cxrviewer.paths import default_model_path

    return Classifier.load(default_model_path(), device="cpu")


class Scored:
    """``scored[kind, role]`` → (film, prediction), scored once; ``scored.path(kind, role)``."""

    def __init__(self, demo, corpora):
        self.demo, self.corpora, self.cache = demo, corpora, {}

    def path(self, kind: str, role: str) -> Path:
        return self.corpora[kind][role]

    def __getitem__(self, key: tuple[str, str]):
        from cxrviewer.io import read_film

        if key not in self.cache:
            film = read_film(self.path(*key))
            self.cache[key] = (film, self.demo.predict_one(film))
        return self.cache[key]


@pytest.fixture(scope="module")
def scored(demo, dicom_corpora) -> Scored:
    return Scored(demo, dicom_corpora)


def tool(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:  # CI installs both (.ci/run); a developer machine may not
        pytest.skip(f"{name} is not installed (apt-get install dicom3tools dcmtk)")
    return exe


def dciodvfy_errors(path: Path) -> list[str]:
    run = subprocess.run([tool("dciodvfy"), str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def source_header(path: Path) -> pydicom.Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True, force=True)


# --------------------------------------------------------------------------- codes
def test_ps316_codes_are_the_standards():
    """Every code said to come from PS3.16 is there with that meaning (pydicom's dictionary is
    generated from PS3.16); local codes use the documented private scheme and fit SH."""

    def in_ps316(code) -> bool:
        entries = PS3_16_CONCEPTS.get(code.scheme_designator, {})
        return any(
            code.value in by_code and by_code[code.value][0].lower() == code.meaning.lower()
            for by_code in entries.values()
        )

    for finding in codes.FINDINGS.values():
        if finding.source == "PS3.16":
            assert in_ps316(finding.code), finding
        elif finding.source == "99CXRV":
            assert finding.code.scheme_designator == codes.LOCAL_SCHEME
        else:
            assert finding.source == "SNOMED CT (tables)" and finding.code.scheme_designator == "SCT"
        assert len(finding.code.value) <= 16
    for term in (codes.PROBABILITY, codes.THRESHOLD, codes.NO_UNITS, codes.PRESENT, codes.ABSENT,
                 codes.YES, codes.NO, codes.COMMENT, codes.IMAGING_PROCEDURE, codes.OUTLINE):
        assert in_ps316(term), term
    assert codes.LOCAL_SCHEME.startswith("99")  # PS3.3 8.2: private schemes start with "99"


def test_codes_table_is_documented():
    doc = (REPO / "docs" / "dicom-results.md").read_text(encoding="utf-8")
    for finding in codes.FINDINGS.values():
        row = f"| {finding.label} | {finding.code.value} | {finding.code.scheme_designator} |"
        assert row in doc, row
    assert set(codes.FINDINGS) == set(
        "Atelectasis Cardiomegaly Consolidation Edema Effusion Emphysema Fibrosis Hernia Infiltration "
        "Mass Nodule Pleural_Thickening Pneumonia Pneumothorax".split()
    )


def test_layer_names_are_unique_code_strings():
    names = layer_names(["Pleural_Thickening", "Pleural_Thickening_left", "a-b", "Pleural_Thickening_right"])
    assert len(set(names.values())) == 4
    for name in names.values():
        assert len(name) <= 16 and all(c.isupper() or c.isdigit() or c == "_" for c in name), name
    assert NOTICE_LAYER not in names.values()
    # a code starts with a letter and ends without an underscore (highdicom refuses the layer)
    odd = layer_names(["Effusion-é", "3D opacity", "(left) mass", "Pleural_Thickening_", "---"])
    assert odd == {"Effusion-é": "EFFUSION", "3D opacity": "F_3D_OPACITY", "(left) mass": "LEFT__MASS",
                   "Pleural_Thickening_": "PLEURAL_THICKENI", "---": "FINDING"}
    import highdicom as hd

    for name in odd.values():
        hd.pr.GraphicLayer(layer_name=name, order=1)


def test_region_coordinates_are_dicom_image_coordinates():
    region = heatmap.Region("Mass", box=(10, 20, 5, 4), contour=((10, 20), (14, 20), (14, 23), (10, 23)),
                            area=20, peak=1.0, probability=0.9)
    outline = outline_points(region)
    # pixel (10, 20)'s centre is at 10.5\20.5 (PS3.3 C.18.6.1.2); closed
    assert outline[0].tolist() == [10.5, 20.5] and outline[-1].tolist() == outline[0].tolist()
    box = box_points(region)
    assert box.tolist() == [[10, 20], [15, 20], [15, 24], [10, 24], [10, 20]]
    line = dataclasses.replace(region, contour=((10, 20), (14, 20)))
    assert outline_points(line) is None


# --------------------------------------------------------------------------- Structured Report
def sr_groups(path: Path):
    sr = hd.sr.srread(path)
    report = sr.content
    return sr, report, report.get_image_measurement_groups(), report.get_planar_roi_measurement_groups()


@pytest.mark.slow
@pytest.mark.parametrize("kind, role", corpus_cases(*CHEST_DICOMS))
def test_sr_from_dicom(tmp_path, scored, demo, kind, role):
    film, pred = scored[kind, role]
    out = export_dicom_sr(tmp_path / "sr.dcm", film, pred, demo.info)
    src = source_header(scored.path(kind, role))

    assert dciodvfy_errors(out) == []
    dump = subprocess.run([tool("dsrdump"), str(out)], capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    assert "Comprehensive 3D SR" in dump.stdout and "Imaging Measurement Report" in dump.stdout

    sr, report, groups, rois = sr_groups(out)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
    assert sr.StudyInstanceUID == src.StudyInstanceUID  # the source's study ...
    assert sr.SeriesInstanceUID != src.SeriesInstanceUID  # ... in a series of its own
    assert str(sr.PatientID) == str(src.get("PatientID", ""))
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID

    by_label = {str(g.tracking_identifier): g for g in groups}
    for label, p, t in zip(pred.labels, pred.probabilities, pred.thresholds):
        group = by_label[label]
        values = {m.name.meaning: m.value for m in group.get_measurements()}
        assert f"{values['Probability']:.6f}" == f"{float(p):.6f}"  # the CSV's format
        assert f"{values['Threshold Value']:.6f}" == f"{float(t):.6f}"
        assert group.finding_type == codes.finding_code(label)
        (evaluation,) = group.get_qualitative_evaluations()
        assert evaluation.value == (codes.PRESENT if p >= t else codes.ABSENT)
        refs = [item for item in group[0].ContentSequence if item.ValueType == "IMAGE"]
        assert refs[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID

    # the OOD guard: score as the CSV writes it, and the flag
    ood = by_label["out-of-distribution check"]
    values = {m.name.meaning: m.value for m in ood.get_measurements()}
    assert f"{values['Out-of-distribution score']:.6f}" == f"{pred.ood_score:.6f}"
    assert ood.get_qualitative_evaluations()[0].value == (codes.YES if pred.ood_flag else codes.NO)

    # regions of the positives: an outline and a box each, on the source image, inside it
    expected = {
        label: len(heatmap.regions(pred, label, (film.height, film.width))) for label in pred.positives
    }
    found: dict[str, int] = {}
    for roi in rois:
        label = str(roi.tracking_identifier).split(" region ")[0]
        found[label] = found.get(label, 0) + 1
        region = roi.roi
        assert region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        pts = region.value
        assert pts[0].tolist() == pts[-1].tolist()  # closed
        assert pts.min() >= 0 and (pts[:, 0] <= film.width).all() and (pts[:, 1] <= film.height).all()
    assert sum(expected.values()) > 0
    for label, n in expected.items():
        assert n <= found.get(label, 0) <= 2 * n, label


def test_sr_evidence_is_complete_and_its_content_is_highdicoms(dicom_corpus, scored, demo):
    """highdicom's SR constructor gets the whole tree: every image the tree references is in the
    evidence, and ``sr.content`` is highdicom's view of that tree."""
    from highdicom.sr.utils import collect_evidence

    film, pred = scored[dicom_corpus.kind, "jpeg_baseline_chest"]
    sr = build_sr(film, pred, demo.info)
    assert pred.positives  # so the tree has region groups (SCOORDs on the image) too
    names = [item.ConceptNameCodeSequence[0].CodeValue for item in sr.ContentSequence]
    assert names[-2:] == ["111028", "126010"]  # Image Library, Imaging Measurements
    source = source_header(dicom_corpus["jpeg_baseline_chest"])
    same_study, other = collect_evidence([source], sr, study_instance_uid=sr.StudyInstanceUID)  # whole tree
    assert other == [] and "PertinentOtherEvidenceSequence" not in sr
    assert sr.CurrentRequestedProcedureEvidenceSequence == same_study
    (root,) = sr.content
    assert [item.ConceptNameCodeSequence[0].CodeValue for item in root.ContentSequence] == names


@pytest.mark.slow
def test_demo_sr_says_not_for_diagnosis_before_the_measurements(tmp_path, scored, demo):
    film, pred = scored["generated", "nih_dx"]
    sr = build_sr(film, pred, demo.info)
    assert sr.SeriesDescription.startswith("NOT FOR DIAGNOSIS")
    names = [item.ConceptNameCodeSequence[0].CodeMeaning for item in sr.ContentSequence]
    at = names.index("Qualitative Evaluations")
    assert at < names.index("Image Library") < names.index("Imaging Measurements")
    comment = sr.ContentSequence[at].ContentSequence[0]
    assert comment.TextValue.startswith("NOT FOR DIAGNOSIS") and demo.info.model_version in comment.TextValue

    real = dataclasses.replace(demo.info, demo=False)
    sr = build_sr(film, pred, real)
    text = sr.ContentSequence[at].ContentSequence[0].TextValue
    assert "NOT FOR DIAGNOSIS" not in text + sr.SeriesDescription
    assert "demo model: no" in str(pydicom.dcmread(export_dicom_sr(tmp_path / "r.dcm", film, pred, real)))


# --------------------------------------------------------------------------- Presentation State
@pytest.mark.slow
@pytest.mark.parametrize("kind, role", corpus_cases(*CHEST_DICOMS))
def test_gsps_from_dicom(tmp_path, scored, demo, kind, role):
    film, pred = scored[kind, role]
    out = export_dicom_gsps(tmp_path / "pr.dcm", film, pred, demo.info)
    src = source_header(scored.path(kind, role))

    assert dciodvfy_errors(out) == []
    pr = pydicom.dcmread(out)
    assert pr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1"  # Grayscale Softcopy Presentation State
    assert pr.StudyInstanceUID == src.StudyInstanceUID
    ref = pr.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == src.SeriesInstanceUID
    assert ref.ReferencedImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
    assert pr.ContentDescription.startswith("NOT FOR DIAGNOSIS")

    names = layer_names(pred.labels)
    layers = [item.GraphicLayer for item in pr.GraphicLayerSequence]
    assert set(layers) == set(names.values()) | {NOTICE_LAYER}
    annotations = {item.GraphicLayer: item for item in pr.GraphicAnnotationSequence}
    for label, p, t in zip(pred.labels, pred.probabilities, pred.thresholds):
        item = annotations[names[label]]
        (text,) = item.TextObjectSequence
        assert text.UnformattedTextValue == f"{label} {p:.2f}"
        graphics = list(item.get("GraphicObjectSequence", []))
        n = len(heatmap.regions(pred, label, (film.height, film.width))) if p >= t else 0
        assert n <= len(graphics) <= 2 * n, label  # an outline and a box for each region
        for g in graphics:
            pts = np.asarray(g.GraphicData, dtype=float).reshape(-1, 2)
            assert g.GraphicType == "POLYLINE" and pts[0].tolist() == pts[-1].tolist()
    assert any(annotations[names[label]].get("GraphicObjectSequence") for label in pred.positives)

    # the source's window and polarity (PS3.3 C.11.6.1): a MONOCHROME1 film needs INVERSE
    inverse = src.PhotometricInterpretation == "MONOCHROME1"
    assert pr.PresentationLUTShape == ("INVERSE" if inverse else "IDENTITY")
    if "WindowCenter" in src:
        voi = pr.SoftcopyVOILUTSequence[0]
        assert float(voi.WindowCenter) == float(src.WindowCenter)
        assert float(voi.WindowWidth) == float(src.WindowWidth)


@pytest.mark.slow
def test_gsps_renders_the_film_as_the_app_shows_it(tmp_path, dicom_corpus, scored, demo):
    """dcmtk applies the presentation state (modality LUT, window, presentation LUT) to the
    MONOCHROME1 film: the picture must look like cxrviewer's film, not like its negative."""
    exe = tool("dcmp2pgm")
    film, pred = scored[dicom_corpus.kind, "no_preamble_chest"]
    pr = export_dicom_gsps(tmp_path / "pr.dcm", film, pred, demo.info)
    pgm = tmp_path / "shown.pgm"
    run = subprocess.run([exe, "-p", str(pr), str(dicom_corpus["no_preamble_chest"]), str(pgm)],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    import cv2

    shown = cv2.imread(str(pgm), cv2.IMREAD_UNCHANGED).astype(np.float64)
    assert shown.shape == film.pixels.shape
    r = np.corrcoef(shown.ravel(), film.pixels.astype(np.float64).ravel())[0, 1]
    assert r > 0.95


# --------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("build", [build_sr, build_gsps])
def test_png_is_refused(tmp_path, demo, nih_images, build):
    from cxrviewer.io import read_film

    film = read_film(nih_images[0])
    pred = demo.predict_one(film)
    with pytest.raises(NoDicomSourceError, match="not a DICOM image.*Secondary Capture"):
        build(film, pred, demo.info)
    export = export_dicom_sr if build is build_sr else export_dicom_gsps
    with pytest.raises(NoDicomSourceError):
        export(tmp_path / "x.dcm", film, pred, demo.info)
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file


def test_film_not_matching_its_header_is_refused(dicom_corpus, scored, demo):
    film, pred = scored[dicom_corpus.kind, "no_preamble_chest"]
    other = Film(np.zeros((100, 80), np.float32), source=film.source, metadata=film.metadata)
    with pytest.raises(DicomResultError, match="80x100.*440x440"):
        build_sr(other, pred, demo.info)


# --------------------------------------------------------------------------- privacy
@pytest.fixture
def phi_film(tmp_path):
    """A real read of a CR whose header names a patient (two scripts), with ID, dates, physician."""
    from cxrviewer.io import read_film

    ds = dicom_dataset(
        (np.arange(96 * 80, dtype=np.uint16) % 4096).reshape(96, 80),
        bits_stored=12, sop_class=CR_IMAGE, modality="CR", SpecificCharacterSet="ISO_IR 192",
        PatientName=PHI_NAME, PatientID="PID-8675309", PatientBirthDate="19450317", PatientSex="M",
        PatientAge="081Y", OtherPatientIDs="PID-8675309-B", StudyDate="20240102", StudyTime="101500",
        AccessionNumber="ACC-55501", ReferringPhysicianName="Hibbert^Julius", StudyID="S1",
        BodyPartExamined="CHEST",
    )
    return read_film(write_dicom(tmp_path / "film.dcm", ds)), ds


@pytest.mark.parametrize("export", [export_dicom_sr, export_dicom_gsps])
def test_anonymize_removes_the_patient(tmp_path, demo, phi_film, export):
    film, src = phi_film
    pred = demo.predict_one(film)
    kept = export(tmp_path / "kept.dcm", film, pred, demo.info)
    anon = export(tmp_path / "anon.dcm", film, pred, demo.info, anonymize=True)
    assert dciodvfy_errors(kept) == [] and dciodvfy_errors(anon) == []

    ds = pydicom.dcmread(kept)
    assert str(ds.PatientName) == PHI_NAME and ds.PatientID == "PID-8675309"  # same patient
    assert "OtherPatientIDs" not in ds  # only what the SC export copies too

    ds = pydicom.dcmread(anon)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                    "StudyTime", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
        assert not str(ds.get(keyword, "")), keyword
    assert ds.PatientIdentityRemoved == "YES"
    raw = anon.read_bytes()
    for phi in (*PHI_STRINGS, "081Y"):
        assert phi.encode("utf-8") not in raw, phi
    # the result still points at the image: UIDs are kept (PS3.15 Retain UIDs Option)
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert src.SOPInstanceUID.encode() in raw


@pytest.mark.parametrize("export", [export_dicom_sr, export_dicom_gsps])
def test_no_patient_data_in_logs_or_warnings(tmp_path, demo, phi_film, caplog, export):
    """highdicom warns about a one-component Patient's Name quoting it; pydicom's validation
    quotes values too: neither may reach the log or the warnings."""
    film, _ = phi_film
    pred = demo.predict_one(film)
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export(tmp_path / "out.dcm", film, pred, demo.info)
    said = caplog.text + "\n".join(str(w.message) for w in caught)
    for phi in PHI_STRINGS:
        assert phi not in said, phi
    assert "out.dcm" in caplog.text  # the log says what was written


@pytest.mark.slow
def test_no_patient_data_in_logs_or_warnings_from_two_threads(tmp_path, demo, caplog):
    """SRs and Presentation States built in two threads at once (the node's and ``score``'s
    workers): no patient value reaches the log or the warnings, even with every warning shown,
    and pydicom's validation is left as it was (a switch saved by one thread and restored by
    the other would leave it off, or turn it back on under the other's build)."""
    from pydicom import config as dicom_config

    from cxrviewer.io import read_film

    ds = dicom_dataset(
        (np.arange(96 * 80, dtype=np.uint16) % 4096).reshape(96, 80),
        bits_stored=12, sop_class=CR_IMAGE, modality="CR",
        PatientName="Hibbert", PatientID="PID-8675309", AccessionNumber="ACC-55501",  # one-component name
    )
    film = read_film(write_dicom(tmp_path / "film.dcm", ds))
    pred = demo.predict_one(film)
    modes = (dicom_config.settings.reading_validation_mode, dicom_config.settings.writing_validation_mode)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(8):
                export = export_dicom_sr if j % 2 == 0 else export_dicom_gsps
                export(tmp_path / f"out-{i}-{j}.dcm", film, pred, demo.info)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    said = caplog.text + "\n".join(str(w.message) for w in caught)
    for phi in ("Hibbert", "PID-8675309", "ACC-55501"):
        assert phi not in said, phi
    assert (dicom_config.settings.reading_validation_mode, dicom_config.settings.writing_validation_mode) == modes
    assert pydicom.dcmread(tmp_path / "out-0-0.dcm").PatientName == "Hibbert"  # still copied as it was


def test_one_component_name_is_not_echoed(tmp_path, dicom_corpus, scored, demo, caplog):
    """The SIIM file's Patient's Name (and its generated twin's) is one component: highdicom
    would warn with it."""
    film, pred = scored[dicom_corpus.kind, "jpeg_baseline_chest"]
    name = str(source_header(dicom_corpus["jpeg_baseline_chest"]).PatientName)
    assert "^" not in name
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        build_gsps(film, pred, demo.info)
    assert name and name not in caplog.text + "\n".join(str(w.message) for w in caught)


# --------------------------------------------------------------------------- command line
def cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "cxrviewer", *args], capture_output=True, text=True,
                          timeout=120, env=env, cwd=REPO)


@pytest.mark.slow
def test_cli_export_sr_and_gsps(tmp_path, generated_dicoms, nih_images):
    source = generated_dicoms["no_preamble_chest"]
    src = source_header(source)
    for fmt, sop_class in (("dicom-sr", "1.2.840.10008.5.1.4.1.1.88.34"), ("dicom-gsps", "1.2.840.10008.5.1.4.1.1.11.1")):
        out = tmp_path / f"{fmt}.dcm"
        run = cli("export", str(source), "--format", fmt, "--out", str(out), "--anonymize")
        assert run.returncode == 0, run.stderr
        ds = pydicom.dcmread(out)
        assert ds.SOPClassUID == sop_class and ds.StudyInstanceUID == src.StudyInstanceUID
        assert ds.PatientIdentityRemoved == "YES" and not str(ds.PatientName)
    # the SR says what the results CSV of `score` says, to the digit
    csv_path = tmp_path / "results.csv"
    run = cli("score", str(source), "--out", str(csv_path), "--no-progress")
    assert run.returncode == 0, run.stderr
    import csv

    (row,) = csv.DictReader(csv_path.open(newline=""))
    report = hd.sr.srread(tmp_path / "dicom-sr.dcm").content
    for group in report.get_image_measurement_groups():
        values = {m.name.meaning: m.value for m in group.get_measurements()}
        label = str(group.tracking_identifier)
        if label == "out-of-distribution check":
            decimals = len(row["ood_score"].split(".")[1])  # the CSV rounds it coarser
            assert f"{values['Out-of-distribution score']:.{decimals}f}" == row["ood_score"]
        else:
            assert f"{values['Probability']:.6f}" == row[label], label

    run = cli("export", str(nih_images[0]), "--format", "dicom-sr", "--out", str(tmp_path / "png.dcm"))
    assert run.returncode == 2 and not (tmp_path / "png.dcm").exists()
    assert "not a DICOM image" in run.stderr and "--format dicom-sc" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_anonymize_list_is_documented():
    from pydicom.datadict import tag_for_keyword

    from cxrviewer.dicom.source import ANONYMIZED_RESULT_ATTRIBUTES

    doc = (REPO / "docs" / "dicom-results.md").read_text(encoding="utf-8")
    section = doc[doc.index("## `--anonymize`"):doc.index("## How it shows")]
    keywords = {k for key in ANONYMIZED_RESULT_ATTRIBUTES for k in key.replace(",", " ").split() if tag_for_keyword(k)}
    assert {"PatientName", "PatientID", "StudyInstanceUID", "AccessionNumber"} <= keywords
    for keyword in keywords:
        assert keyword in section, keyword


def test_gsps_of_a_colour_image_is_refused(tmp_path, generated_dicoms, demo):
    """cxrviewer's own SC export is an RGB DICOM: its SR can be made, a grayscale GSPS cannot."""
    from cxrviewer.dicom.sc import export_dicom_sc
    from cxrviewer.io import read_film

    film = read_film(generated_dicoms["nih_dx"])
    sc = read_film(export_dicom_sc(tmp_path / "sc.dcm", film, demo.predict_one(film), demo.info))
    pred = demo.predict_one(sc)
    with pytest.raises(DicomResultError, match="colour image"):
        build_gsps(sc, pred, demo.info)
    assert build_sr(sc, pred, demo.info).SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"


def test_gsps_keeps_a_voi_lut_whose_data_is_us(tmp_path, dicom_corpus, classifier):
    """pydicom-data's vlut_04.dcm (and its generated twin) has its VOI LUT Data as US (a list in
    pydicom), which highdicom could not read (TypeError): the Presentation State must carry the
    same LUT."""
    from cxrviewer.io import read_film

    source = dicom_corpus["vlut"]
    film = read_film(source)
    out = export_dicom_gsps(tmp_path / "pr.dcm", film, classifier.predict_one(film), classifier.info)
    src_lut = source_header(source).VOILUTSequence[0]
    lut = pydicom.dcmread(out).SoftcopyVOILUTSequence[0].VOILUTSequence[0]
    assert list(lut.LUTDescriptor) == list(src_lut.LUTDescriptor)
    assert np.array_equal(np.frombuffer(lut.LUTData, "<u2"), np.asarray(src_lut.LUTData))
    assert dciodvfy_errors(out) == []
