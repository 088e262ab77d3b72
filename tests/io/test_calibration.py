"""Measuring calibration as PS3.3 10.7.1.3 and C.8.11.4 say, and the Patient Orientation read (#14)."""

from __future__ import annotations

import numpy as np
import pytest

from cxrviewer.io import read_film
from cxrviewer.types import Calibration, Measurement

PX = np.zeros((8, 8), np.uint16)


@pytest.mark.parametrize(
    ("elements", "want"),
    [
        ({"PixelSpacing": [0.15, 0.1], "ImagerPixelSpacing": [0.2, 0.2]}, Calibration(0.15, 0.1, "pixel spacing")),
        ({"ImagerPixelSpacing": [0.2, 0.25], "EstimatedRadiographicMagnificationFactor": 1.25},
         Calibration(0.16, 0.2, "magnification corrected")),
        ({"ImagerPixelSpacing": [0.2, 0.2]}, Calibration(0.2, 0.2, "detector")),
        ({"ImagerPixelSpacing": [0.2, 0.2], "EstimatedRadiographicMagnificationFactor": 0}, Calibration(0.2, 0.2, "detector")),
        ({"PixelSpacing": [0, 0.1]}, None),
        ({}, None),
    ],
)
def test_calibration_follows_the_standard(make_dicom, elements, want):
    film = read_film(make_dicom(PX, **elements))
    if want is None:
        assert film.calibration is None
    else:
        cal = film.calibration
        assert cal.kind == want.kind
        assert (cal.row_mm, cal.col_mm) == pytest.approx((want.row_mm, want.col_mm))


def test_measurement_values_and_labels():
    d = Measurement("distance", ((0, 0), (30, 40)))
    assert d.label(None) == "50 px"
    assert d.label(Calibration(0.5, 0.1, "pixel spacing")) == f"{np.hypot(3.0, 20.0):.1f} mm"
    assert d.label(Calibration(0.2, 0.2, "detector")) == "10.0 mm at detector"
    a = Measurement("angle", ((10, 0), (0, 0), (0, 10)))
    assert a.label(None) == "90.0°"
    # non-square pixels: the angle is measured in millimetres
    assert Measurement("angle", ((10, 0), (0, 0), (10, 10))).value(Calibration(2.0, 1.0)) == pytest.approx(
        np.degrees(np.arctan2(20, 10)))
    with pytest.raises(ValueError):
        Measurement("angle", ((0, 0), (1, 1)))


def test_patient_orientation_and_laterality_reach_the_metadata(make_dicom):
    film = read_film(make_dicom(PX, PatientOrientation=["L", "F"], ImageLaterality="L", ViewPosition="PA"))
    assert film.metadata["patient_orientation"] == ("L", "F")
    assert film.metadata["laterality"] == "L" and film.metadata["view_position"] == "PA"
    odd = read_film(make_dicom(PX, PatientOrientation=["X", "Q"]))
    assert "patient_orientation" not in odd.metadata
