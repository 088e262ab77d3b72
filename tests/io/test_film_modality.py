"""Films keep their modality values, default VOI and presets; the model's view does not change (#14)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dicomfactory import CORPORA, CR15_WINDOW, DX_SAMPLE, EXTRA_ROLES, ROLES, corpus_cases, lut_item
from helpers import SAMPLES, SHARED_DATA, TESTS

from cxrviewer.io import read_film
from cxrviewer.io.grayscale import (
    auto_window,
    display_gray,
    full_range,
    user_window,
    value_at,
    value_range,
    values,
)
from cxrviewer.types import Film, Voi

GOLDEN = TESTS / "data" / "golden_probabilities.json"


@pytest.fixture(scope="module")
def demo_classifier():
    from cxrviewer.model import Classifier
    from cxrviewer.paths import default_model_path

    return Classifier.load(default_model_path())


@pytest.mark.slow
@pytest.mark.parametrize("kind", CORPORA)
def test_every_probability_is_unchanged(demo_classifier, generated_dicoms, kind):
    """``score`` gives what it gave before films kept their modality values: max |Δ| ≤ 1e-6.

    On the generated corpus: the NIH film made into a DX scores as its PNG does, and the JPEG
    film tagged MONOCHROME1 scores as the inverted pixels of its MONOCHROME2 twin. On the real
    files of ../shared/data: as the golden table measured before."""
    clf = demo_classifier
    if kind == "generated":
        dx = clf.predict_one(read_film(generated_dicoms["nih_dx"])).probabilities
        png = clf.predict_one(read_film(SAMPLES / DX_SAMPLE)).probabilities
        assert np.abs(dx.astype(np.float64) - png).max() <= 1e-6
        twin = read_film(generated_dicoms["jpeg_baseline_chest"])
        fake = clf.predict_one(read_film(generated_dicoms["fake_mono1"])).probabilities
        inverted = clf.predict_one(Film(1.0 - twin.pixels)).probabilities
        assert np.abs(fake.astype(np.float64) - inverted).max() <= 1e-6
        assert np.abs(fake - clf.predict_one(twin).probabilities).max() > 0.01  # the inversion matters
        return
    from cxrviewer.paths import default_model_path

    golden = json.loads(GOLDEN.read_text())
    assert default_model_path().name == golden["model"]
    assert tuple(golden["labels"]) == clf.info.labels
    films = sorted(p for p in SHARED_DATA.rglob("*") if p.suffix.lower() in (".png", ".dcm"))
    assert {str(p.relative_to(SHARED_DATA)) for p in films} == set(golden["films"])
    worst = 0.0
    for path in films:
        pred = clf.predict_one(read_film(path))
        want = np.asarray(golden["films"][str(path.relative_to(SHARED_DATA))], dtype=np.float64)
        worst = max(worst, float(np.abs(pred.probabilities.astype(np.float64) - want).max()))
    assert worst <= 1e-6


@pytest.mark.parametrize("kind, role", corpus_cases(*ROLES, *EXTRA_ROLES))
def test_the_default_voi_on_the_modality_values_draws_the_models_view(dicom_corpora, kind, role):
    """Windowing the kept modality values with the default VOI gives the model's [0, 1] view
    (to the display's 8-bit rounding): the two halves of the pipeline agree."""
    film = read_film(dicom_corpora[kind][role])
    shown = display_gray(film.gray, film.gray.default).astype(np.int16)
    want = np.rint(film.pixels * 255.0).astype(np.int16)
    assert np.abs(shown - want).max() <= 1


@pytest.mark.parametrize("kind, role", corpus_cases("j2k_mono1"))
def test_a_16_bit_film_keeps_its_integers_and_does_not_triple_its_footprint(dicom_corpora, kind, role):
    film = read_film(dicom_corpora[kind][role])
    g = film.gray
    assert g.stored.dtype == np.uint16 and g.stored.shape == film.pixels.shape
    assert film.pixels.nbytes + g.stored.nbytes <= 1.5 * film.pixels.nbytes
    assert not g.stored.flags.writeable
    assert g.inverted and film.metadata["photometric"] == "MONOCHROME1"
    assert (g.default.center, g.default.width, g.default.function) == (550.0, 1024.0, "LINEAR")
    lo, hi = value_range(g)
    assert lo < 550 - 512 <= hi  # the stored window clips the bottom of the range


def test_rasters_are_their_own_modality_values(nih_images):
    path = nih_images[0]
    film = read_film(path)
    g = film.gray
    assert g.stored.dtype == np.uint8
    assert value_at(g, 10, 20) == float(g.stored[20, 10]) == pytest.approx(255 * film.pixels[20, 10])
    np.testing.assert_array_equal(display_gray(g, g.default), np.rint(film.pixels * 255).astype(np.uint8))


def test_every_window_pair_and_voi_lut_becomes_a_preset(make_dicom):
    px = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 4096)
    path = make_dicom(
        px, bits_stored=12, window=([1000, 2000, 3000], [500, 1000, 4000]),
        voi_lut=lut_item(list(range(0, 4096, 16)), 0, 8), WindowCenterWidthExplanation=["LUNG", "MEDIASTINUM", "BONE"],
        VOILUTFunction="LINEAR_EXACT", RescaleSlope=2, RescaleIntercept=-100, RescaleType="US",
    )
    g = read_film(path).gray
    names = [v.name for v in g.presets]
    assert names == ["LUNG", "MEDIASTINUM", "BONE", "VOI LUT 1"]
    assert [(v.center, v.width, v.function) for v in g.presets[:3]] == [
        (1000, 500, "LINEAR_EXACT"), (2000, 1000, "LINEAR_EXACT"), (3000, 4000, "LINEAR_EXACT")]
    assert g.presets[3].lut is not None and g.default is g.presets[3]  # a VOI LUT wins (C.11.2.1.1)
    assert g.voi_function == "LINEAR_EXACT" and g.units == "US"
    assert value_at(g, 5, 0) == 2 * 5 - 100  # modality units: the rescale is applied
    assert value_range(g) == (-100.0, 2 * 4095 - 100.0)


def test_a_film_without_a_window_defaults_to_its_full_range(make_dicom):
    px = np.array([[100, 200], [300, 400]], dtype=np.uint16)
    g = read_film(make_dicom(px)).gray
    assert g.presets == ()
    assert (g.default.center, g.default.width) == (250.0, 300.0)


def test_widening_the_window_reveals_what_the_stored_window_clipped(make_dicom):
    ramp = np.tile(np.arange(0, 4096, 4, dtype=np.uint16), (8, 1))
    film = read_film(make_dicom(ramp, bits_stored=12, window=(2048, 256)))
    assert len(np.unique(film.pixels)) < 100  # the model's view is clipped by the stored window
    full = display_gray(film.gray, full_range(film.gray))
    assert len(np.unique(full)) == 256 and full.min() == 0 and full.max() == 255
    auto = display_gray(film.gray, auto_window(film.gray))
    assert 0.01 < (auto == 0).mean() < 0.03  # 1st percentile at black


def test_a_15_bit_chest_shows_under_the_full_window_what_its_stored_window_clipped(generated_dicoms):
    """#14 on a film made from a real one: a 15-bit CR whose stored window spans an eighth of its
    range. The model's view is clipped to black and white over most of the chest; the full
    window brings back the lung and mediastinum detail."""
    film = read_film(generated_dicoms["cr15_window"])
    g = film.gray
    assert g.stored.dtype == np.uint16 and film.metadata["bits_stored"] == 15
    assert (g.default.center, g.default.width) == CR15_WINDOW
    clipped = ((film.pixels == 0.0) | (film.pixels == 1.0)).mean()
    assert clipped > 0.5  # the stored window throws most of the film away
    full = display_gray(g, full_range(g))
    assert ((full == 0) | (full == 255)).mean() < 0.05
    assert len(np.unique(full)) > 4 * len(np.unique(np.rint(film.pixels * 255)))
    # The detail is the chest's: the full window is the source PNG's own grey levels, up to rounding.
    png = read_film(SAMPLES / "00000022_000.png")
    import cv2

    want = cv2.resize(np.rint(png.pixels * 255).astype(np.uint8), (512, 512), interpolation=cv2.INTER_AREA)
    assert np.corrcoef(full.ravel(), want.ravel())[0, 1] > 0.999


@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.uint8, np.int32])
def test_table_and_per_pixel_windowing_agree(dtype, make_dicom):
    rng = np.random.default_rng(0)
    hi = 200 if dtype == np.uint8 else 3000
    px = rng.integers(-hi if np.issubdtype(dtype, np.signedinteger) else 0, hi, (40, 30)).astype(dtype)
    film = read_film(make_dicom(px, rescale=(0.5, 10.0)))
    voi = user_window(film.gray, 40.0, 300.0)
    got = display_gray(film.gray, voi)
    m = values(film.gray).astype(np.float64)
    lower, upper = 40.0 - 0.5 - 299 / 2, 40.0 - 0.5 + 299 / 2
    want = np.where(m <= lower, 0.0, np.where(m > upper, 1.0, (m - 39.5) / 299 + 0.5))
    assert np.abs(got.astype(np.int16) - np.rint(want * 255)).max() <= 1


def test_a_film_made_from_pixels_windows_its_own_values():
    px = np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10)
    film = Film(px)
    assert film.gray.stored is not None and film.gray.stored.dtype == np.float32
    np.testing.assert_array_equal(display_gray(film.gray, film.gray.default), np.rint(px * 255).astype(np.uint8))
    narrow = display_gray(film.gray, Voi("", 0.5, 0.5, "LINEAR_EXACT"))
    assert narrow[0, 0] == 0 and narrow[-1, -1] == 255
