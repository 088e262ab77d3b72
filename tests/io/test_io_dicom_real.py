"""Golden checks on the real DICOM files in ../shared/data/dicom (see its README)."""

from __future__ import annotations

import numpy as np
import pytest
from dicomfactory import REAL_DICOMS, stored_array

from cxrviewer.io import is_dicom, read_film
from cxrviewer.types import Film

# Measured with cxrviewer's pipeline (pydicom 3.0.2, pylibjpeg decoders); documented in
# docs/dicom.md. name: (shape, mean, min, voi, photometric)
GOLDEN = {
    "dcmfx_fo-dicom_CR-MONO1-10-chest.dcm": ((440, 440), 0.5466, 0.0802, "window", "MONOCHROME1"),
    "dcmfx_fo-dicom_CR-ModalitySequenceLUT.dcm": ((1576, 1976), 0.3018, 0.0, "minmax", "MONOCHROME1"),
    "nccid_nih_cxr14_gcp_dx.dcm": ((1024, 1024), 0.7145, 0.0, "minmax", "MONOCHROME2"),
    "pydicom-data_RG3_J2KR.dcm": ((1760, 1760), 0.6961, 0.0371, "window", "MONOCHROME1"),
    "pydicom-data_mlut_18.dcm": ((512, 512), 0.5063, 0.0, "minmax", "MONOCHROME2"),
    "pydicom-data_vlut_04.dcm": ((512, 512), 0.5052, 0.0, "lut-sequence", "MONOCHROME2"),
    "torchxrayvision_Fake_MONOHR1.dcm": ((1024, 1024), 0.3709, 0.0, "minmax", "MONOCHROME1"),
    "torchxrayvision_siim_cr_chest.dcm": ((1024, 1024), 0.6291, 0.0, "minmax", "MONOCHROME2"),
}


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


@pytest.fixture(scope="module")
def films(dicom_dir) -> dict[str, Film]:
    return {name: read_film(dicom_dir / name) for name in REAL_DICOMS}


def test_the_golden_table_covers_every_shared_dicom(dicom_dir):
    assert sorted(p.name for p in dicom_dir.glob("*.dcm")) == sorted(GOLDEN) == sorted(REAL_DICOMS)


@pytest.mark.parametrize("name", REAL_DICOMS)
def test_real_dicom_matches_golden_stats(films, name):
    film = films[name]
    shape, mean, minimum, voi, photometric = GOLDEN[name]
    px = film.pixels
    assert px.dtype == np.float32 and px.shape == shape
    assert np.isfinite(px).all() and px.min() >= 0.0 and px.max() <= 1.0
    assert px.std() > 0.1  # not constant, real contrast
    assert float(px.mean()) == pytest.approx(mean, abs=0.005)
    assert float(px.min()) == pytest.approx(minimum, abs=0.005)
    assert float(px.max()) == pytest.approx(1.0, abs=1e-6)
    md = film.metadata
    assert md["format"] == "dicom" and md["voi"] == voi and md["photometric"] == photometric
    assert (md["height"], md["width"]) == shape and md["frames"] == 1
    assert md["inverted"] == (photometric == "MONOCHROME1")
    assert film.source.name == name


def test_metadata_is_small_plain_and_has_the_documented_keys(films):
    md = films["pydicom-data_RG3_J2KR.dcm"].metadata
    assert md["transfer_syntax"] == "1.2.840.10008.1.2.4.90"
    assert md["bits_stored"] == 10 and md["bits"] == 10
    assert md["window"] == (550.0, 1024.0) and md["modality"] == "CR" and md["view_position"] == "AP"
    for film in films.values():
        for value in film.metadata.values():
            assert value is None or isinstance(value, (str, int, float, bool, tuple))


def test_fake_monochrome1_is_the_siim_chest_inverted(films):
    fake = films["torchxrayvision_Fake_MONOHR1.dcm"].pixels
    real = films["torchxrayvision_siim_cr_chest.dcm"].pixels
    assert corr(fake, real) < -0.95
    np.testing.assert_allclose(fake, 1.0 - real, atol=1e-6)


def _centre_minus_lateral(px: np.ndarray) -> float:
    """Mean of the central column band minus the lateral bands, in the middle rows: positive
    when the mediastinum (dense) is brighter than the lungs (air)."""
    h, w = px.shape
    mid = px[int(0.3 * h) : int(0.6 * h)]
    centre = mid[:, int(0.45 * w) : int(0.55 * w)].mean()
    lateral = np.concatenate([mid[:, int(0.15 * w) : int(0.3 * w)], mid[:, int(0.7 * w) : int(0.85 * w)]], axis=1).mean()
    return float(centre - lateral)


def test_no_preamble_chest_reads_and_is_chest_like(dicom_dir, films):
    path = dicom_dir / "dcmfx_fo-dicom_CR-MONO1-10-chest.dcm"
    assert path.read_bytes()[128:132] != b"DICM"  # really no preamble
    assert is_dicom(path)
    film = films[path.name]
    assert film.metadata["transfer_syntax"] == "1.2.840.10008.1.2"  # implicit VR, as found
    assert film.metadata["view_position"] == "PA"
    assert _centre_minus_lateral(film.pixels) > 0.15  # lungs dark, mediastinum bright


@pytest.mark.parametrize("name", ["torchxrayvision_siim_cr_chest.dcm", "nccid_nih_cxr14_gcp_dx.dcm"])
def test_chest_films_show_the_mediastinum_brighter_than_the_lungs(films, name):
    assert _centre_minus_lateral(films[name].pixels) > 0.15


def test_the_fake_monochrome1_tag_is_honoured_even_though_it_makes_a_negative(films):
    # Its stored values are a normal MONOCHROME2 chest; the tag says MONOCHROME1, and a correct
    # reader follows the tag (shared/data README), so the lungs come out bright.
    assert _centre_minus_lateral(films["torchxrayvision_Fake_MONOHR1.dcm"].pixels) < -0.15


@pytest.mark.parametrize("name", ["dcmfx_fo-dicom_CR-MONO1-10-chest.dcm", "pydicom-data_RG3_J2KR.dcm"])
def test_monochrome1_films_are_inverted_so_bone_is_bright(dicom_dir, films, name):
    stored = stored_array(dicom_dir / name)
    assert corr(stored, films[name].pixels) < -0.95


def test_j2k_tibia_bone_is_bright_and_the_air_beside_it_dark(films):
    # Across the upper shaft: collimator (unexposed, white) | air | leg | air | collimator.
    px = films["pydicom-data_RG3_J2KR.dcm"].pixels
    h, w = px.shape
    profile = px[int(0.2 * h) : int(0.4 * h)].mean(axis=0)
    assert profile[int(0.31 * w) : int(0.37 * w)].mean() < 0.15  # air lateral to the leg
    assert profile[int(0.45 * w) : int(0.55 * w)].mean() > 0.6  # tibia
    assert profile[: int(0.2 * w)].mean() > 0.95  # the shutter blocked the beam: white


LUT_FILES = ["pydicom-data_vlut_04.dcm", "pydicom-data_mlut_18.dcm", "dcmfx_fo-dicom_CR-ModalitySequenceLUT.dcm"]


@pytest.mark.parametrize("name", LUT_FILES)
def test_lut_sequence_objects_span_the_output_range(films, name):
    px = films[name].pixels
    assert px.min() <= 0.05 and px.max() >= 0.95


@pytest.mark.parametrize("name", LUT_FILES + ["pydicom-data_RG3_J2KR.dcm", "dcmfx_fo-dicom_CR-MONO1-10-chest.dcm"])
def test_pipeline_agrees_with_pydicoms_reference_functions(dicom_dir, films, name):
    """Our Modality/VOI code against pydicom's apply_modality_lut + apply_voi_lut(prefer_lut=True)."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(dicom_dir / name, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    modality = apply_modality_lut(stored_array(dicom_dir / name), ds)
    voi = apply_voi_lut(modality, ds, prefer_lut=True).astype(np.float64)
    if "VOILUTSequence" in ds:
        expected = voi / 65535.0  # vlut_04's table declares and uses 16 bits
    elif "WindowCenter" in ds:
        expected = voi / (2**ds.BitsStored - 1)  # pydicom windows into 0..2**BitsStored-1
    else:
        expected = (voi - voi.min()) / (voi.max() - voi.min())
    if ds.PhotometricInterpretation == "MONOCHROME1":
        expected = 1.0 - expected
    np.testing.assert_allclose(films[name].pixels, expected, atol=2e-6)


def test_nih_dicom_is_a_1024_film(films):
    film = films["nccid_nih_cxr14_gcp_dx.dcm"]
    assert film.pixels.shape == (1024, 1024) and film.metadata["modality"] == "DX"


def test_pixel_spacing_comes_from_the_file(films):
    assert films["torchxrayvision_siim_cr_chest.dcm"].pixel_spacing == pytest.approx((0.168, 0.168))
    assert films["dcmfx_fo-dicom_CR-ModalitySequenceLUT.dcm"].pixel_spacing == pytest.approx((0.15, 0.15))
    assert films["pydicom-data_RG3_J2KR.dcm"].pixel_spacing is None


def test_all_nih_pngs_read_as_1024_films(nih_pngs):
    assert len(nih_pngs) == 74
    for path in nih_pngs:
        film = read_film(path)
        assert film.pixels.shape == (1024, 1024), path.name
        assert film.metadata["format"] == "png" and film.metadata["bits"] == 8
        assert 0.0 <= film.pixels.min() < film.pixels.max() <= 1.0


@pytest.mark.parametrize("name", ["nccid_nih_cxr14_gcp_dx.dcm", "pydicom-data_RG3_J2KR.dcm"])
def test_a_real_dicom_without_photometric_interpretation_is_read_as_announced(dicom_dir, films, tmp_path, caplog, name):
    """#18: the log said "assuming MONOCHROME2" and the decoder then refused the file: the
    announced fallback is now what is decoded (uncompressed and JPEG 2000)."""
    import logging

    import pydicom

    ds = pydicom.dcmread(dicom_dir / name)
    del ds.PhotometricInterpretation
    path = tmp_path / name
    ds.save_as(path)
    with caplog.at_level(logging.WARNING, logger="cxrviewer.io"):
        film = read_film(path)
    assert "no Photometric Interpretation; assuming MONOCHROME2" in caplog.text
    assert film.metadata["photometric"] == "MONOCHROME2" and film.metadata["inverted"] is False
    original = films[name]
    # The same film, only never inverted (the tag that would have said MONOCHROME1 is gone).
    expected = 1.0 - original.pixels if original.metadata["inverted"] else original.pixels
    np.testing.assert_allclose(film.pixels, expected, atol=1e-6)
