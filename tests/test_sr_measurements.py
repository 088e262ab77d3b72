"""The reader's measurements in the DICOM SR (#14): a distance, an angle and a cardiothoracic
ratio, each a TID 1501 group inferred from its coordinates on the source image, saying which
calibration was used; valid for dciodvfy. Generated films (tests/dicomfactory.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from cxrviewer.dicom import codes, export_dicom_sr
from cxrviewer.io import read_film
from cxrviewer.types import Calibration, Measurement
from dicomfactory import CR_IMAGE, build_dicom

DISTANCE = Measurement("distance", ((10.5, 20.5), (110.5, 20.5)))  # 100 px
ANGLE = Measurement("angle", ((60.0, 10.0), (10.0, 10.0), (10.0, 60.0)))  # 90°
CTR = Measurement("ctr", ((30.0, 40.0), (70.0, 40.0), (10.0, 70.0), (110.0, 70.0)))  # 40 / 100


def make_film(tmp_path: Path, **elements):
    pixels = (np.add.outer(np.arange(96), np.arange(128)) * 20 % 4096).astype(np.uint16)
    return read_film(build_dicom(tmp_path / "cr.dcm", pixels, bits_stored=12, sop_class=CR_IMAGE,
                                 modality="CR", BodyPartExamined="CHEST", **elements))


def dciodvfy_errors(path: Path) -> list[str]:
    exe = shutil.which("dciodvfy")
    if exe is None:  # CI installs it (.ci/run)
        pytest.skip("dciodvfy is not installed (apt-get install dicom3tools)")
    run = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (run.stdout + run.stderr).splitlines() if line.startswith("Error")]


def reader_groups(path: Path) -> dict[str, hd.sr.MeasurementsAndQualitativeEvaluations]:
    groups = hd.sr.srread(path).content.get_image_measurement_groups()
    return {str(g.tracking_identifier): g for g in groups if str(g.tracking_identifier).split()[0] in ("distance", "angle", "ctr")}


def test_measurements_in_the_sr_say_which_calibration(tmp_path, classifier):
    film = make_film(tmp_path, PixelSpacing=[0.2, 0.2])
    pred = classifier.predict_one(film)
    manual = Calibration.manual((0.0, 0.0), (100.0, 0.0), 50.0, film.calibration)  # 0.5 mm per pixel
    out = export_dicom_sr(tmp_path / "sr.dcm", film, pred, classifier.info,
                          measurements=(DISTANCE, ANGLE, CTR), calibration=manual)
    assert dciodvfy_errors(out) == []
    groups = reader_groups(out)
    assert set(groups) == {"distance 1", "angle 2", "ctr 3"}

    (length,) = groups["distance 1"].get_measurements()
    assert length.name == codes.LENGTH and length.unit == codes.MILLIMETER
    assert length.value == pytest.approx(50.0)
    assert length.method == codes.CALIBRATION_METHODS["manual"]
    (angle,) = groups["angle 2"].get_measurements()
    assert angle.name == codes.ANGLE and angle.unit == codes.DEGREE and angle.value == pytest.approx(90.0)
    (ratio,) = groups["ctr 3"].get_measurements()
    assert ratio.name == codes.CARDIOTHORACIC_RATIO and ratio.unit == codes.RATIO
    assert ratio.value == pytest.approx(0.4)
    # inferred from its points on the source image (both widths for the ratio)
    inferred = [item for item in ratio[0].ContentSequence if item.ValueType == "SCOORD"]
    assert [item.GraphicData for item in inferred] == [[30.0, 40.0, 70.0, 40.0], [10.0, 70.0, 110.0, 70.0]]
    ref = inferred[0].ContentSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == pydicom.dcmread(film.source, stop_before_pixels=True).SOPInstanceUID

    # the file's own calibration when none is given
    out2 = export_dicom_sr(tmp_path / "sr2.dcm", film, pred, classifier.info, measurements=(DISTANCE,))
    (length,) = reader_groups(out2)["distance 1"].get_measurements()
    assert length.value == pytest.approx(20.0) and length.method == codes.CALIBRATION_METHODS["pixel spacing"]


def test_a_film_without_calibration_has_no_lengths_but_its_ratio(tmp_path, classifier):
    film = make_film(tmp_path)
    assert film.calibration is None
    pred = classifier.predict_one(film)
    out = export_dicom_sr(tmp_path / "sr.dcm", film, pred, classifier.info, measurements=(DISTANCE, ANGLE, CTR))
    assert dciodvfy_errors(out) == []
    groups = reader_groups(out)
    assert set(groups) == {"angle 2", "ctr 3"}  # no unit for a length in pixels
    (angle,) = groups["angle 2"].get_measurements()
    assert angle.method is None and angle.value == pytest.approx(90.0)
