"""DICOM Secondary Capture export: round trip, required attributes, new study for PNG, privacy."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom import config as dicom_config
from pydicom.dataset import Dataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from dicomfactory import CR_IMAGE, dicom_dataset, write_dicom
from helpers import synthetic_pixels, write_png
from cxrviewer.dicom.sc import (
    ANONYMIZED_FILM_NAME,
    SC_SOP_CLASS_UID,
    DicomExportError,
    derivation_description,
    display_name,
    export_dicom_sc,
    series_description,
)
from cxrviewer.errors import OutputError, UnreadableImageError
from cxrviewer.render import RenderOptions, annotate
from cxrviewer.types import Film

REAL_DICOM = "nih_dx"  # DX chest, uncompressed, 1024x1024 (generated, and the real one where present)

# A patient whose data must never leak: a non-ASCII name in two scripts, an ID, a birth date.
PHI_NAME = "Müller^Jürgen=山田^太郎"
PHI_STRINGS = ("Müller", "Jürgen", "Muller", "Jurgen", "山田", "PID-8675309", "19450317", "ACC-55501", "Hibbert")


def read_dicom_film(path: Path) -> Film:
    """``cxrviewer.io.read_film`` once it exists; until then the least a test needs."""
    try:
        from cxrviewer.io import read_film
    except ImportError:
        ds = pydicom.dcmread(path, force=True)
        px = ds.pixel_array.astype(np.float32)
        px = (px - px.min()) / max(float(px.max() - px.min()), 1.0)
        if ds.PhotometricInterpretation == "MONOCHROME1":
            px = 1.0 - px
        return Film(px, source=path, metadata={"format": "dicom"})
    return read_film(path)


def make_phi_dicom(path: Path) -> Dataset:
    """A small MONOCHROME2 CR with identifying attributes set (ISO_IR 192, explicit VR LE)."""
    ds = dicom_dataset(
        (np.arange(64 * 48, dtype=np.uint16) % 4096).reshape(64, 48),
        bits_stored=12,
        sop_class=CR_IMAGE,
        modality="CR",
        SpecificCharacterSet="ISO_IR 192",
        PatientName=PHI_NAME,
        PatientID="PID-8675309",
        PatientBirthDate="19450317",
        PatientSex="M",
        StudyDate="20240102",
        StudyTime="101500",
        AccessionNumber="ACC-55501",
        ReferringPhysicianName="Hibbert^Julius",
        StudyID="S1",
        BodyPartExamined="CHEST",
    )
    write_dicom(path, ds)
    return ds


@pytest.fixture
def phi_source(tmp_path) -> tuple[Path, Dataset]:
    # The file is named after the patient, as exports from some PACS are.
    path = tmp_path / "Muller_Jurgen.dcm"
    return path, make_phi_dicom(path)


@pytest.fixture
def phi_film(phi_source) -> Film:
    # Only the source header matters here; the pixels are the synthetic film's.
    return Film(synthetic_pixels(), source=phi_source[0], metadata={"format": "dicom"})


def read_strict(path: Path) -> Dataset:
    """Read back with pydicom, every value through its VR checks (PS3.5 6.2), raising on any."""
    with dicom_config.strict_reading():
        ds = pydicom.dcmread(path)
        for elem in ds.iterall():  # converting each raw element validates its value
            assert elem.VR != "UN", elem.tag
    pydicom.dataset.validate_file_meta(ds.file_meta, enforce_standard=True)
    return ds


# --------------------------------------------------------------------------- round trip
def test_sc_from_real_dicom_round_trips(tmp_path, dicom_corpus, classifier):
    src_path = dicom_corpus[REAL_DICOM]
    src = pydicom.dcmread(src_path, stop_before_pixels=True)
    film = read_dicom_film(src_path)
    pred = classifier.predict_one(film)
    opts = RenderOptions(classes=pred.labels[:2])

    out = export_dicom_sc(tmp_path / "sc.dcm", film, pred, classifier.info, opts)
    ds = read_strict(out)

    assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert ds.SOPClassUID == SC_SOP_CLASS_UID == ds.file_meta.MediaStorageSOPClassUID
    assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.StudyInstanceUID == src.StudyInstanceUID
    assert ds.PatientID == src.PatientID and ds.PatientName == src.PatientName
    assert ds.SeriesInstanceUID != src.SeriesInstanceUID and ds.SOPInstanceUID != src.SOPInstanceUID
    assert UID(ds.SeriesInstanceUID).is_valid and UID(ds.SOPInstanceUID).is_valid
    assert classifier.info.model_version in ds.SeriesDescription and "(DEMO)" in ds.SeriesDescription
    assert (ds.Modality, ds.ConversionType, ds.BurnedInAnnotation) == ("OT", "WSD", "YES")
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert "not for diagnosis" in ds.DerivationDescription
    for seq in (ds.ReferencedImageSequence, ds.SourceImageSequence):
        assert seq[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        assert seq[0].ReferencedSOPClassUID == src.SOPClassUID

    expected = annotate(film, pred, classifier.info, opts)
    assert (ds.Rows, ds.Columns, ds.SamplesPerPixel) == expected.shape
    assert (ds.PhotometricInterpretation, ds.PlanarConfiguration) == ("RGB", 0)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (8, 8, 7, 0)
    np.testing.assert_array_equal(ds.pixel_array, expected)


# --------------------------------------------------------------------------- validation
# PS3.3 A.8.1 Secondary Capture Image IOD, its mandatory modules and their type 1 / type 2
# attributes (type 1: present and not empty; type 2: present, may be empty).
SC_IOD_REQUIRED: dict[str, dict[str, tuple[str, ...]]] = {
    "Patient (C.7.1.1)": {"1": (), "2": ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")},
    "General Study (C.7.2.1)": {
        "1": ("StudyInstanceUID",),
        "2": ("StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber"),
    },
    "General Series (C.7.3.1)": {"1": ("Modality", "SeriesInstanceUID"), "2": ("SeriesNumber",)},
    "General Equipment (C.7.5.1)": {"1": (), "2": ("Manufacturer",)},
    "SC Equipment (C.8.6.1)": {"1": ("ConversionType",), "2": ()},
    "General Image (C.7.6.1)": {"1": (), "2": ("InstanceNumber", "PatientOrientation", "ContentDate", "ContentTime")},
    "Image Pixel (C.7.6.3)": {
        "1": (
            "SamplesPerPixel", "PhotometricInterpretation", "Rows", "Columns", "BitsAllocated",
            "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration", "PixelData",
        ),
        "2": (),
    },
    "SOP Common (C.12.1)": {"1": ("SOPClassUID", "SOPInstanceUID"), "2": ()},
}
FILE_META_TYPE1 = (
    "FileMetaInformationVersion", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID",
    "TransferSyntaxUID", "ImplementationClassUID",
)


def missing_required(ds: Dataset) -> list[str]:
    problems = []
    for module, types in SC_IOD_REQUIRED.items():
        for kw in types["1"]:
            if kw not in ds or ds[kw].is_empty:
                problems.append(f"{module}: type 1 {kw} missing or empty")
        problems += [f"{module}: type 2 {kw} missing" for kw in types["2"] if kw not in ds]
    problems += [f"file meta: {kw}" for kw in FILE_META_TYPE1 if kw not in ds.file_meta or ds.file_meta[kw].is_empty]
    if ds.get("PatientIdentityRemoved") == "YES" and not ds.get("DeidentificationMethod"):
        problems.append("Patient: DeidentificationMethod is type 1C when PatientIdentityRemoved is YES")
    if any(not str(e.value).isascii() for e in ds.iterall() if e.VR in ("PN", "LO", "SH", "ST", "LT")):
        if ds.get("SpecificCharacterSet") != "ISO_IR 192":
            problems.append("SOP Common: non-ASCII text needs SpecificCharacterSet (type 1C)")
    return problems


@pytest.fixture
def sc_files(tmp_path, dicom_corpus, classifier, phi_film, synthetic_film) -> dict[str, Path]:
    """One export of each kind: DICOM source, non-ASCII source, anonymized, PNG source."""
    real = read_dicom_film(dicom_corpus[REAL_DICOM])
    out = {}
    for name, film, kw in (
        ("real", real, {}),
        ("phi", phi_film, {}),
        ("phi-burn-in", phi_film, {"burn_in_patient_name": True}),
        ("anonymized", phi_film, {"anonymize": True}),
        ("png", synthetic_film, {}),
    ):
        pred = classifier.predict_one(film)
        opts = RenderOptions(pred.positives)
        out[name] = export_dicom_sc(tmp_path / f"{name}.dcm", film, pred, classifier.info, opts, **kw)
    return out


def test_sc_has_every_required_attribute_of_the_iod(sc_files):
    for name, path in sc_files.items():
        ds = read_strict(path)
        assert missing_required(ds) == [], name


def test_sc_passes_dciodvfy_when_installed(sc_files):
    """dicom3tools' IOD verifier (Debian package ``dicom3tools``): no line may say ``Error``."""
    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy is not installed (apt-get install dicom3tools)")
    for name, path in sc_files.items():
        proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
        report = proc.stdout + proc.stderr
        assert "SCImage" in report, report
        errors = [line for line in report.splitlines() if line.startswith("Error")]
        assert errors == [], f"{name}: {errors}"


# --------------------------------------------------------------------------- new study for PNG
def test_png_source_starts_a_new_study_with_empty_patient(tmp_path, classifier):
    png = write_png(tmp_path / "film.png", synthetic_pixels())
    film = Film(synthetic_pixels(), source=png, metadata={"format": "png"})
    pred = classifier.predict_one(film)
    a = read_strict(export_dicom_sc(tmp_path / "a.dcm", film, pred, classifier.info))
    b = read_strict(export_dicom_sc(tmp_path / "b.dcm", film, pred, classifier.info))
    assert UID(a.StudyInstanceUID).is_valid and a.StudyInstanceUID != b.StudyInstanceUID
    assert (str(a.PatientName), a.PatientID, a.PatientBirthDate, a.AccessionNumber) == ("", "", "", "")
    assert "ReferencedImageSequence" not in a and "SourceImageSequence" not in a
    assert "LossyImageCompression" not in a and "SpecificCharacterSet" not in a


@pytest.mark.parametrize("suffix", [".tif", ".bmp"])
def test_a_picture_named_dcm_is_a_picture_source_as_the_reader_says(tmp_path, classifier, caplog, suffix):
    """The content decides, with the reader's own sniffer: a TIFF or BMP named .dcm is not DICOM."""
    import cv2

    path = tmp_path / f"scan{suffix}.dcm"
    ok, buf = cv2.imencode(suffix, np.rint(synthetic_pixels() * 255).astype(np.uint8))
    assert ok
    path.write_bytes(buf.tobytes())
    film = read_dicom_film(path)
    assert film.metadata["format"] == suffix.lstrip(".").replace("tif", "tiff")
    caplog.set_level(logging.DEBUG)
    ds = read_strict(export_dicom_sc(tmp_path / "sc.dcm", film, classifier.predict_one(film), classifier.info))
    assert "StudyInstanceUID" not in caplog.text  # no DICOM header was looked for in the picture
    assert "ReferencedImageSequence" not in ds and "LossyImageCompression" not in ds


def test_lossy_source_keeps_the_lossy_flag(tmp_path, dicom_corpus, classifier, synthetic_film):
    """A JPEG-baseline DICOM was lossy once, so its derived image says so (PS3.3 C.7.6.1.1.5)."""
    film = Film(synthetic_film.pixels, source=dicom_corpus["jpeg_baseline_chest"])
    pred = classifier.predict_one(film)
    ds = read_strict(export_dicom_sc(tmp_path / "sc.dcm", film, pred, classifier.info))
    assert (ds.LossyImageCompression, ds.LossyImageCompressionMethod) == ("01", "ISO_10918_1")


# --------------------------------------------------------------------------- privacy
def test_non_ascii_patient_is_kept_in_utf8_and_never_logged(tmp_path, phi_source, phi_film, classifier, caplog, recwarn):  # noqa: E501
    _, src = phi_source
    pred = classifier.predict_one(phi_film)
    caplog.set_level(logging.DEBUG)
    out = export_dicom_sc(tmp_path / "sc.dcm", phi_film, pred, classifier.info, burn_in_patient_name=False)
    burned = export_dicom_sc(tmp_path / "burned.dcm", phi_film, pred, classifier.info, burn_in_patient_name=True)

    ds = read_strict(out)
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == PHI_NAME and ds.PatientID == src.PatientID
    assert ds.PatientBirthDate == "19450317" and ds.StudyInstanceUID == src.StudyInstanceUID

    assert burned.exists()
    said = caplog.text + "".join(str(w.message) for w in recwarn)
    assert str(out) in caplog.text  # the log names the file ...
    leaked = [s for s in PHI_STRINGS if s in said]
    assert leaked == []  # ... and nothing about the patient


def test_patient_name_is_burned_in_only_when_asked(tmp_path, phi_film, classifier):
    pred = classifier.predict_one(phi_film)
    plain = read_strict(export_dicom_sc(tmp_path / "plain.dcm", phi_film, pred, classifier.info)).pixel_array
    burned = read_strict(
        export_dicom_sc(tmp_path / "burned.dcm", phi_film, pred, classifier.info, burn_in_patient_name=True)
    ).pixel_array
    # The default picture is exactly the renderer's, which knows nothing of the patient.
    np.testing.assert_array_equal(plain, annotate(phi_film, pred, classifier.info))
    assert burned.shape[0] > plain.shape[0] and burned.shape[1:] == plain.shape[1:]
    np.testing.assert_array_equal(burned[: plain.shape[0]], plain)
    strip = burned[plain.shape[0] :]
    assert (strip > 200).any()  # white text in the strip under the picture


def test_anonymize_leaves_no_trace_of_the_patient_in_the_file(tmp_path, phi_source, phi_film, classifier, caplog):
    src_path, src = phi_source
    pred = classifier.predict_one(phi_film)
    caplog.set_level(logging.DEBUG)
    out = export_dicom_sc(tmp_path / "anon.dcm", phi_film, pred, classifier.info, anonymize=True)

    raw = out.read_bytes()
    for s in (*PHI_STRINGS, src_path.stem, src.StudyInstanceUID, src.SOPInstanceUID, src.SeriesInstanceUID):
        latin1 = s.encode("latin-1", "ignore")  # in case a writer fell back to ISO_IR 100
        assert s.encode("utf-8") not in raw and (not latin1 or latin1 not in raw), s
    assert not [s for s in PHI_STRINGS if s in caplog.text]

    ds = read_strict(out)
    assert (str(ds.PatientName), ds.PatientID, ds.PatientBirthDate, ds.PatientSex) == ("", "", "", "")
    assert (ds.StudyDate, ds.StudyTime, ds.AccessionNumber, str(ds.ReferringPhysicianName)) == ("", "", "", "")
    assert ds.StudyInstanceUID != src.StudyInstanceUID and UID(ds.StudyInstanceUID).is_valid
    assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod
    assert "ReferencedImageSequence" not in ds and "SourceImageSequence" not in ds
    # The findings panel shows a neutral name instead of the file name (here the patient's).
    shown = dataclasses.replace(phi_film, source=Path(ANONYMIZED_FILM_NAME))
    np.testing.assert_array_equal(ds.pixel_array, annotate(shown, pred, classifier.info))


def test_anonymize_and_burn_in_together_is_refused(tmp_path, phi_film, classifier):
    pred = classifier.predict_one(phi_film)
    with pytest.raises(DicomExportError, match="anonymize"):
        export_dicom_sc(tmp_path / "x.dcm", phi_film, pred, classifier.info, anonymize=True, burn_in_patient_name=True)
    assert not (tmp_path / "x.dcm").exists()


def test_invalid_source_values_are_left_out_without_pydicom_quoting_them(tmp_path, classifier, caplog, recwarn):
    """pydicom's 'Invalid value for VR DA: ...' warning quotes the value: here a birth date.
    A value that breaks its VR is left out of the export (Type 2: written empty), and the log
    names the attribute, not the value (issue 25)."""
    path = tmp_path / "src.dcm"
    with dicom_config.disable_value_validation():
        ds = make_phi_dicom(path)
        ds.PatientBirthDate = "17.03.1945"  # a local date format, as found in the wild
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    recwarn.clear()
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    film = Film(synthetic_pixels(), source=path)
    out = export_dicom_sc(tmp_path / "sc.dcm", film, classifier.predict_one(film), classifier.info)
    assert "1945" not in caplog.text + "".join(str(w.message) for w in recwarn)
    assert "Patient's Birth Date (0010,0030)" in caplog.text and "left out" in caplog.text
    back = pydicom.dcmread(out)
    assert back.PatientBirthDate == "" and str(back.PatientName) == str(ds.PatientName)  # the rest is copied


# --------------------------------------------------------------------------- errors and text
def test_unwritable_folder_and_vanished_source_are_clear_errors(tmp_path, phi_film, classifier):
    pred = classifier.predict_one(phi_film)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match="Cannot write"):
        export_dicom_sc(blocker / "sc.dcm", phi_film, pred, classifier.info)
    gone = dataclasses.replace(phi_film, source=tmp_path / "moved-away.dcm")
    with pytest.raises(UnreadableImageError, match="re-read the DICOM header"):
        export_dicom_sc(tmp_path / "sc.dcm", gone, pred, classifier.info)


def test_descriptions_fit_their_vr_and_name_the_findings(classifier, synthetic_film):
    info = dataclasses.replace(classifier.info, model_version="v" * 100)
    assert len(series_description(info)) <= 64 and series_description(info).endswith("(DEMO)")
    pred = classifier.predict_one(synthetic_film)
    text = derivation_description(pred, classifier.info)
    assert len(text) <= 1024 and "not for diagnosis" in text
    for label in pred.positives:
        assert f"{label}: {pred.probability(label):.2f}" in text
    if not pred.positives:
        assert "No finding" in text


def test_display_name_is_ascii_for_opencv():
    assert display_name("Müller^Jürgen") == "Muller, Jurgen"
    assert display_name("=山田^太郎") == "??, ??"
    assert display_name("Doe^John^Q^Dr^Jr") == "Doe, Dr John Q Jr"
    assert display_name("") == ""
