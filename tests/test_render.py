import numpy as np
import pytest

from cxrviewer import heatmap
from cxrviewer.export import encode_png, export_png
from cxrviewer.errors import UnknownClassError
from cxrviewer.render import RenderOptions, annotate, film_rgb, overlay, select_classes
from cxrviewer.types import Film
from helpers import synthetic_pixels
from tinymodel import LABELS


@pytest.fixture
def disc_prediction(classifier):
    film = Film(synthetic_pixels(256, 256, disc=(0.25, 0.75, 0.18)))
    return film, classifier.predict_one(film)


def test_upsample_and_normalize():
    cam = np.array([[0.0, 2.0], [1.0, 0.0]], np.float32)
    up = heatmap.upsample(heatmap.normalize(cam), (100, 50))
    assert up.shape == (100, 50) and up.max() <= 1.0 and up.min() >= 0.0
    assert np.all(heatmap.normalize(np.zeros((3, 3))) == 0)


@pytest.mark.parametrize("name", ["jet", "turbo", "inferno"])
def test_colormaps_differ_and_are_rgb(name):
    ramp = np.linspace(0, 1, 256, dtype=np.float32)[None, :]
    rgb = heatmap.colorize(ramp, name)
    assert rgb.shape == (1, 256, 3) and rgb.dtype == np.uint8
    assert not np.array_equal(rgb[0, 0], rgb[0, -1])
    with pytest.raises(ValueError, match="unknown colormap"):
        heatmap.colorize(ramp, "rainbowish")


def test_regions_land_on_the_blob(disc_prediction):
    film, pred = disc_prediction
    regs = heatmap.regions(pred, LABELS[0], (film.height, film.width))
    assert regs, "the bright disc should give a region"
    x, y, w, h = regs[0].box
    cy, cx = 0.25 * 256, 0.75 * 256
    assert x <= cx <= x + w and y <= cy <= y + h
    d = regs[0].as_dict()
    assert set(d) >= {"label", "box", "contour", "area", "peak", "probability"}


def test_overlay_changes_only_with_classes_and_alpha(disc_prediction):
    film, pred = disc_prediction
    plain = overlay(film, pred, ())
    np.testing.assert_array_equal(plain, film_rgb(film))
    # the two strongest maps (the maps share one scale: a weak one may draw nothing)
    first, second = (pred.labels[i] for i in np.argsort(-heatmap.strengths(pred))[:2])
    one = overlay(film, pred, (first,), alpha=0.5)
    two = overlay(film, pred, (first, second), alpha=0.5)
    faint = overlay(film, pred, (first,), alpha=0.1)
    assert not np.array_equal(one, plain)
    assert not np.array_equal(one, faint)
    assert np.abs(one.astype(int) - plain).sum() > np.abs(faint.astype(int) - plain).sum()
    assert two.shape == one.shape == (256, 256, 3)
    contour = overlay(film, pred, (first,), mode="contour")
    assert not np.array_equal(contour, plain)


def test_window_and_invert():
    film = Film(np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10))
    rgb = film_rgb(film, window=(0.5, 0.5))
    assert rgb[0, 0, 0] == 0 and rgb[-1, -1, 0] == 255 and rgb[5, 0, 0] == 130  # (50/99 - 0.25) / 0.5 * 255
    np.testing.assert_array_equal(film_rgb(film, invert=True), 255 - film_rgb(film))


def test_select_classes(disc_prediction):
    _, pred = disc_prediction
    assert select_classes(pred, "all") == LABELS
    assert select_classes(pred, "none") == ()
    assert select_classes(pred, "mass, effusion") == ("Mass", "Effusion")
    assert select_classes(pred, "positives") == pred.positives
    with pytest.raises(UnknownClassError, match="Pneumonitis"):
        select_classes(pred, "Pneumonitis")


def test_annotate_has_demo_banner_and_panel(disc_prediction, classifier):
    film, pred = disc_prediction
    pic = annotate(film, pred, classifier.info, RenderOptions(classes=(LABELS[0],)))
    h, w = pic.shape[:2]
    assert w > h  # side panel
    banner = pic[: int(0.03 * h), : h]
    assert banner[..., 0].mean() > 150 and banner[..., 1].mean() < 100  # the red demo mark
    from dataclasses import replace

    real = replace(classifier.info, demo=False)
    pic2 = annotate(film, pred, real, RenderOptions(classes=(LABELS[0],)))
    assert pic2[: int(0.03 * h), : h][..., 0].mean() < 150


def test_export_png_is_atomic_and_deterministic(tmp_path, disc_prediction, classifier):
    film, pred = disc_prediction
    out = export_png(tmp_path / "a.png", film, pred, classifier.info, RenderOptions(classes=LABELS[:2]))
    again = encode_png(annotate(film, pred, classifier.info, RenderOptions(classes=LABELS[:2])))
    assert out.read_bytes() == again
    assert not list(tmp_path.glob("*.part"))
