"""Checks on DICOM films with the properties of the real files in ../shared/data/dicom (see its
README): always on the generated corpus made from the NIH samples (dicomfactory), and with golden
values on the real files where ../shared/data is present."""

from __future__ import annotations

import numpy as np
import pytest
from dicomfactory import CORPORA, DX_SAMPLE, EXTRA_ROLES, ROLES, corpus_cases, stored_array

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
# The generated films: role: (shape, voi, photometric); their pixels are checked against pydicom's
# reference functions below rather than against measured statistics.
GENERATED = {
    "j2k_mono1": ((512, 512), "window", "MONOCHROME1"),
    "no_preamble_chest": ((440, 440), "window", "MONOCHROME1"),
    "jpeg_lossless_mlut": ((512, 512), "minmax", "MONOCHROME1"),
    "jpeg_baseline_chest": ((1024, 1024), "minmax", "MONOCHROME2"),
    "fake_mono1": ((1024, 1024), "minmax", "MONOCHROME1"),
    "nih_dx": ((1024, 1024), "minmax", "MONOCHROME2"),
    "vlut": ((512, 512), "lut-sequence", "MONOCHROME2"),
    "mlut_signed": ((512, 512), "minmax", "MONOCHROME2"),
    "signed_rescale": ((512, 512), "minmax", "MONOCHROME2"),
    "cr15_window": ((512, 512), "window", "MONOCHROME2"),
}
ALL_ROLES = tuple(ROLES) + EXTRA_ROLES


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel())[0, 1])


class Films:
    """``films[kind, role]`` → the film read once per session, and its path."""

    def __init__(self, corpora):
        self.corpora, self.cache = corpora, {}

    def path(self, kind: str, role: str):
        return self.corpora[kind][role]

    def __getitem__(self, key: tuple[str, str]) -> Film:
        if key not in self.cache:
            self.cache[key] = read_film(self.path(*key))
        return self.cache[key]


@pytest.fixture(scope="module")
def films(dicom_corpora) -> Films:
    return Films(dicom_corpora)


@pytest.mark.parametrize("kind", CORPORA)
def test_the_tables_cover_every_dicom_of_the_corpus(dicom_corpora, kind):
    corpus = dicom_corpora[kind]
    if corpus.real:
        dicom_dir = next(iter(corpus.files.values())).parent
        assert sorted(p.name for p in dicom_dir.glob("*.dcm")) == sorted(GOLDEN) == sorted(ROLES.values())
    else:
        assert set(corpus.files) <= set(GENERATED) == set(ALL_ROLES)
        assert set(ALL_ROLES) - set(corpus.files) <= {"jpeg_lossless_mlut"}  # only without dcmcjpeg


@pytest.mark.parametrize("kind, role", corpus_cases(*ALL_ROLES))
def test_dicom_matches_its_table(films, kind, role):
    film = films[kind, role]
    px = film.pixels
    if kind == "shared":
        name = ROLES[role]
        shape, mean, minimum, voi, photometric = GOLDEN[name]
        assert float(px.mean()) == pytest.approx(mean, abs=0.005)
        assert float(px.min()) == pytest.approx(minimum, abs=0.005)
    else:
        name = f"{role}.dcm"
        shape, voi, photometric = GENERATED[role]
    assert px.dtype == np.float32 and px.shape == shape
    assert np.isfinite(px).all() and px.min() >= 0.0 and px.max() <= 1.0
    assert px.std() > 0.1  # not constant, real contrast
    assert float(px.max()) == pytest.approx(1.0, abs=1e-6 if kind == "shared" else 0.05)
    md = film.metadata
    assert md["format"] == "dicom" and md["voi"] == voi and md["photometric"] == photometric
    assert (md["height"], md["width"]) == shape and md["frames"] == 1
    assert md["inverted"] == (photometric == "MONOCHROME1")
    assert film.source.name == name


@pytest.mark.parametrize("kind, role", corpus_cases("j2k_mono1"))
def test_metadata_is_small_plain_and_has_the_documented_keys(dicom_corpora, films, kind, role):
    md = films[kind, role].metadata
    assert md["transfer_syntax"] == "1.2.840.10008.1.2.4.90"
    assert md["bits_stored"] == 10 and md["bits"] == 10
    assert md["window"] == (550.0, 1024.0) and md["modality"] == "CR" and md["view_position"] == "AP"
    for other in dicom_corpora[kind].files:
        for value in films[kind, other].metadata.values():
            assert value is None or isinstance(value, (str, int, float, bool, tuple))


@pytest.mark.parametrize("kind, role", corpus_cases("fake_mono1"))
def test_fake_monochrome1_is_the_siim_chest_inverted(films, kind, role):
    fake = films[kind, role].pixels
    real = films[kind, "jpeg_baseline_chest"].pixels
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


@pytest.mark.parametrize("kind, role", corpus_cases("no_preamble_chest"))
def test_no_preamble_chest_reads_and_is_chest_like(films, kind, role):
    path = films.path(kind, role)
    assert path.read_bytes()[128:132] != b"DICM"  # really no preamble
    assert is_dicom(path)
    film = films[kind, role]
    assert film.metadata["transfer_syntax"] == "1.2.840.10008.1.2"  # implicit VR, as found
    assert film.metadata["view_position"] == "PA"
    assert _centre_minus_lateral(film.pixels) > 0.15  # lungs dark, mediastinum bright


@pytest.mark.parametrize("kind, role", corpus_cases("jpeg_baseline_chest", "nih_dx"))
def test_chest_films_show_the_mediastinum_brighter_than_the_lungs(films, kind, role):
    assert _centre_minus_lateral(films[kind, role].pixels) > 0.15


@pytest.mark.parametrize("kind, role", corpus_cases("fake_mono1"))
def test_the_fake_monochrome1_tag_is_honoured_even_though_it_makes_a_negative(films, kind, role):
    # Its stored values are a normal MONOCHROME2 chest; the tag says MONOCHROME1, and a correct
    # reader follows the tag (shared/data README), so the lungs come out bright.
    assert _centre_minus_lateral(films[kind, role].pixels) < -0.15


@pytest.mark.parametrize("kind, role", corpus_cases("no_preamble_chest", "j2k_mono1", "jpeg_lossless_mlut"))
def test_monochrome1_films_are_inverted_so_bone_is_bright(films, kind, role):
    stored = stored_array(films.path(kind, role))
    assert corr(stored, films[kind, role].pixels) < -0.95


@pytest.mark.parametrize("kind, role", corpus_cases("j2k_mono1"))
def test_j2k_monochrome1_film_shows_dense_parts_bright(films, kind, role):
    px = films[kind, role].pixels
    if kind == "generated":  # an inverted NIH chest: the mediastinum comes back bright
        assert _centre_minus_lateral(px) > 0.15
        return
    # The real tibia, across the upper shaft: collimator (unexposed, white) | air | leg | air | collimator.
    h, w = px.shape
    profile = px[int(0.2 * h) : int(0.4 * h)].mean(axis=0)
    assert profile[int(0.31 * w) : int(0.37 * w)].mean() < 0.15  # air lateral to the leg
    assert profile[int(0.45 * w) : int(0.55 * w)].mean() > 0.6  # tibia
    assert profile[: int(0.2 * w)].mean() > 0.95  # the shutter blocked the beam: white


LUT_ROLES = ["vlut", "mlut_signed", "jpeg_lossless_mlut"]


@pytest.mark.parametrize("kind, role", corpus_cases(*LUT_ROLES))
def test_lut_sequence_objects_span_the_output_range(films, kind, role):
    px = films[kind, role].pixels
    assert px.min() <= 0.05 and px.max() >= 0.95


# Every generated film; of the real ones, those the golden statistics do not already pin down.
REFERENCE_CASES = [p for p in corpus_cases(*ALL_ROLES)
                   if p.values[0] == "generated" or p.values[1] in LUT_ROLES + ["j2k_mono1", "no_preamble_chest"]]


@pytest.mark.parametrize("kind, role", REFERENCE_CASES)
def test_pipeline_agrees_with_pydicoms_reference_functions(films, kind, role):
    """Our Modality/VOI code against pydicom's apply_modality_lut + apply_voi_lut(prefer_lut=True)."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    path = films.path(kind, role)
    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    modality = apply_modality_lut(stored_array(path), ds)
    voi = apply_voi_lut(modality, ds, prefer_lut=True).astype(np.float64)
    if "VOILUTSequence" in ds:
        expected = voi / 65535.0  # both VOI LUT tables declare and use 16 bits
    elif "WindowCenter" in ds:
        expected = voi / (2**ds.BitsStored - 1)  # pydicom windows into 0..2**BitsStored-1
    else:
        expected = (voi - voi.min()) / (voi.max() - voi.min())
    if ds.PhotometricInterpretation == "MONOCHROME1":
        expected = 1.0 - expected
    np.testing.assert_allclose(films[kind, role].pixels, expected, atol=2e-6)


@pytest.mark.parametrize("kind, role", corpus_cases("nih_dx"))
def test_nih_dicom_is_a_1024_film(films, kind, role):
    film = films[kind, role]
    assert film.pixels.shape == (1024, 1024) and film.metadata["modality"] == "DX"


def test_an_nih_film_as_dicom_reads_as_its_png(films, nih_samples):
    """The DX made from an NIH PNG (its values span 0..255) reads to the PNG's own pixels."""
    png = read_film(next(p for p in nih_samples if p.name == DX_SAMPLE))
    np.testing.assert_allclose(films["generated", "nih_dx"].pixels, png.pixels, atol=1e-6)


@pytest.mark.parametrize("kind", CORPORA)
def test_pixel_spacing_comes_from_the_file(films, kind):
    try:
        lossless = films[kind, "jpeg_lossless_mlut"]
    except pytest.skip.Exception:
        lossless = None  # no dcmcjpeg here: the other two still say where spacing comes from
    assert films[kind, "jpeg_baseline_chest"].pixel_spacing == pytest.approx((0.168, 0.168))
    assert lossless is None or lossless.pixel_spacing == pytest.approx((0.15, 0.15))
    assert films[kind, "j2k_mono1"].pixel_spacing is None


def test_all_nih_pngs_read_as_1024_films(nih_images):
    assert len(nih_images) in (6, 6 + 68)  # the samples, and the shared films where present
    for path in nih_images:
        film = read_film(path)
        assert film.pixels.shape == (1024, 1024), path.name
        assert film.metadata["format"] == "png" and film.metadata["bits"] == 8
        assert 0.0 <= film.pixels.min() < film.pixels.max() <= 1.0


@pytest.mark.parametrize("kind, role", corpus_cases("nih_dx", "j2k_mono1"))
def test_a_dicom_without_photometric_interpretation_is_read_as_announced(films, tmp_path, caplog, kind, role):
    """#18: the log said "assuming MONOCHROME2" and the decoder then refused the file: the
    announced fallback is now what is decoded (uncompressed and JPEG 2000)."""
    import logging

    import pydicom

    ds = pydicom.dcmread(films.path(kind, role))
    del ds.PhotometricInterpretation
    path = tmp_path / f"{role}.dcm"
    ds.save_as(path)
    with caplog.at_level(logging.WARNING, logger="cxrviewer.io"):
        film = read_film(path)
    assert "no Photometric Interpretation; assuming MONOCHROME2" in caplog.text
    assert film.metadata["photometric"] == "MONOCHROME2" and film.metadata["inverted"] is False
    original = films[kind, role]
    # The same film, only never inverted (the tag that would have said MONOCHROME1 is gone).
    expected = 1.0 - original.pixels if original.metadata["inverted"] else original.pixels
    np.testing.assert_allclose(film.pixels, expected, atol=1e-6)
