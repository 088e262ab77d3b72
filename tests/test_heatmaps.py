"""Heatmaps a reader can trust: one scale for every finding, faint activation transparent,
empty maps said and left out of legends, labelled outlines, distinct colours, banners beside
(never over) the film."""

from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cxrviewer import heatmap, render
from cxrviewer.io import read_film
from cxrviewer.model import Classifier
from cxrviewer.paths import DEMO_MODEL_NAME, resource_path, samples_dir
from cxrviewer.render import RenderOptions, annotate, film_rgb, overlay
from cxrviewer.types import Film, Prediction
from helpers import synthetic_pixels
from tinymodel import LABELS

ROOT = Path(__file__).resolve().parents[1]


def _palette_tools():
    spec = importlib.util.spec_from_file_location("make_palette", ROOT / "scripts" / "make_palette.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def blob_maps(peaks: dict[str, float], size: int = 10) -> np.ndarray:
    """Class maps: a Gaussian blob of the given peak for the named labels, zero elsewhere."""
    yy, xx = np.mgrid[0:size, 0:size]
    maps = np.zeros((len(LABELS), size, size), np.float32)
    for i, label in enumerate(LABELS):
        if label in peaks:
            cy, cx = 2 + (i * 3) % 6, 2 + (i * 5) % 6
            maps[i] = peaks[label] * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
    return maps


def prediction_with(peaks: dict[str, float], ood: bool = False) -> Prediction:
    probs = np.linspace(0.9, 0.05, len(LABELS)).astype(np.float32)
    return Prediction(LABELS, probs, blob_maps(peaks), (0.5,) * len(LABELS), "t", ood_score=0.9 if ood else None, ood_flag=ood)


@pytest.fixture(scope="module")
def demo_on_sample():
    """The bundled demo model on a bundled sample: Hernia's map there is one cell of ~1% of the
    strongest map, Edema's (issue #13; maps of the class score since issue #28)."""
    clf = Classifier.load(resource_path("models", DEMO_MODEL_NAME))
    film = read_film(samples_dir() / "00000103_000.png")
    return film, clf.predict_one(film), clf.info


def test_opacity_is_zero_below_the_visible_level_and_alpha_at_the_reference():
    heat = np.array([0.0, 0.05, heatmap.VISIBLE_LEVEL, 0.55, 1.0], np.float32)
    w = heatmap.opacity(heat, 0.6)
    assert w[0] == w[1] == w[2] == 0.0
    assert w[3] == pytest.approx(0.6 * 0.5**2, abs=1e-6) and w[4] == pytest.approx(0.6)
    assert np.all(np.diff(heatmap.opacity(np.linspace(0, 1, 101, dtype=np.float32), 0.6)) >= 0)  # rises with the value


def test_one_scale_for_all_findings():
    pred = prediction_with({"Edema": 1e-3, "Mass": 5e-4, "Hernia": 3e-5})
    s = dict(zip(LABELS, heatmap.strengths(pred)))
    assert s["Edema"] == pytest.approx(1.0) and s["Mass"] == pytest.approx(0.5, rel=1e-5)
    assert s["Hernia"] == pytest.approx(0.03, rel=1e-4)
    shape = (100, 100)
    # the weaker map stays weaker where drawn: not stretched to its own peak
    assert heatmap.combined_map(pred, ["Mass"], shape).max() == pytest.approx(0.5, abs=0.02)
    assert heatmap.active(pred, LABELS) == ("Edema", "Mass")
    assert heatmap.is_empty(pred, "Hernia") and heatmap.is_empty(pred, "Nodule") and not heatmap.is_empty(pred, "Mass")


def test_a_near_empty_map_draws_no_pixel_and_a_strong_one_does():
    film = Film(synthetic_pixels(256, 256))
    pred = prediction_with({"Edema": 1e-3, "Hernia": 3e-5})
    bare = film_rgb(film)
    for mode in render.MODES:
        assert np.array_equal(overlay(film, pred, ["Hernia"], alpha=1.0, mode=mode), bare)
        assert not np.array_equal(overlay(film, pred, ["Edema"], alpha=1.0, mode=mode), bare)


def test_low_activation_leaves_the_film_untouched():
    """No tint over the whole film: pixels where the map is under the visible level are the film's."""
    film = Film(synthetic_pixels(200, 200))
    pred = prediction_with({"Edema": 1e-3})
    heat = heatmap.combined_map(pred, ["Edema"], (200, 200))
    out = overlay(film, pred, ["Edema"], alpha=0.8)
    cold = heat < heatmap.VISIBLE_LEVEL
    assert cold.mean() > 0.3  # the blob covers part of the film only
    assert np.array_equal(out[cold], film_rgb(film)[cold])


def test_real_near_empty_map_draws_nothing(demo_on_sample):
    film, pred, _info = demo_on_sample
    hernia = pred.class_map("Hernia")
    assert 0 < hernia.max() < 0.1 * heatmap.reference(pred)  # a real, near-empty map
    bare = film_rgb(film)
    changed = np.any(overlay(film, pred, ["Hernia"], alpha=1.0) != bare, axis=-1).mean()
    assert changed == 0.0
    assert np.any(overlay(film, pred, ["Edema"], alpha=1.0) != bare, axis=-1).mean() > 0.05


def test_empty_maps_are_left_out_of_legends_and_said(demo_on_sample):
    film, pred, info = demo_on_sample
    shown = ("Pneumonia", "Hernia", "Atelectasis")  # Atelectasis' map is all zero on this film
    assert [label for label, _c in render.legend_entries(pred, shown)] == ["Pneumonia"]
    assert render.silent_classes(pred, shown) == ("Hernia", "Atelectasis")
    # the export's panel draws one swatch (the contour mode's legend) for the one drawn outline
    pic = annotate(film, pred, info, RenderOptions(classes=shown, mode="contour"))
    x0 = render.film_box(film.height, film.width)[2]
    panel = pic[:, x0:]
    for label in shown:
        found = np.all(panel == render.class_color(pred, label), axis=-1).sum()
        assert (found > 50) == (label == "Pneumonia"), label


def test_outlines_carry_their_label(demo_on_sample):
    film, pred, _info = demo_on_sample
    assert render.outline_label(pred, "Pleural_Thickening").startswith("Pleural Thickening 0.")
    region = heatmap.regions(pred, "Pneumonia", (film.height, film.width))[0]
    plain = film_rgb(film)
    out = plain.copy()
    render.draw_outlines(out, pred, ["Pneumonia"])
    x, y, _w, _h = region.box
    # the label's plate and its text, in the finding's colour, sit just above the largest region
    above = out[max(0, y - 60) : y, max(0, x - 5) : x + 400]
    assert np.all(above == (20, 20, 20), axis=-1).sum() > 500
    assert np.all(above == render.class_color(pred, "Pneumonia"), axis=-1).sum() > 20


def test_the_palette_has_14_clearly_distinct_colours_also_for_colour_blind_viewers():
    tools = _palette_tools()
    palette = np.array(render.PALETTE, float)
    assert len(set(render.PALETTE)) == 14 == len(LABELS)
    # CIEDE2000: ~2.3 is a just-noticeable difference; a pair under ~10 is easily confused in a
    # small swatch. The pairs (Mass pink vs Pleural Thickening lavender, three yellows)
    # were at 14.2 in normal vision and 2.0 for deuteranopes.
    assert tools.min_distance(palette)[0] >= 15.0
    for kind in tools.MACHADO:
        assert tools.min_distance(palette, kind, 0.5)[0] >= 13.0, kind  # anomalous trichromats
        assert tools.min_distance(palette, kind, 1.0)[0] >= 7.5, kind  # dichromats


def test_ciede2000_matches_the_published_test_data():
    """Sharma, Wu & Dalal (2005), Table 1, pairs 1, 7 and 17."""
    tools = _palette_tools()
    a = np.array([[50, 2.6772, -79.7751], [50, 0, 0], [50, 2.5, 0]], float)
    b = np.array([[50, 0, -82.7485], [50, -1, 2], [73, 25, -18]], float)
    np.testing.assert_allclose(tools.de2000(a, b), [2.0425, 2.3669, 27.1492], atol=1e-4)


@pytest.mark.parametrize("mode", render.MODES)
def test_banners_leave_every_film_pixel_unchanged(classifier, mode):
    film = Film(synthetic_pixels(1024, 1024))
    pred = replace(classifier.predict_one(film), ood_score=9.0, ood_flag=True)
    info = replace(classifier.info, demo=True)
    opts = RenderOptions(classes=pred.labels[:3], mode=mode)
    pic = annotate(film, pred, info, opts)
    x, y, w, h = render.film_box(film.height, film.width)
    assert (w, h) == (1024, 1024)
    expected = render.picture(film, pred, opts)  # the overlay, with its legend when several are hued
    assert np.array_equal(pic[y : y + h, x : x + w], expected)
    # the banners are there, above and below the film
    assert pic[: y, :w][..., 0].mean() > 150 and pic[y + h :, :w][..., 1].mean() > 90


# ------------------------------------------------ several findings: a hue each, a legend
def _two_blobs():
    a, b = LABELS[0], LABELS[1]  # blobs centred on cells (2, 2) and (5, 7) of the 10x10 maps
    return a, b, prediction_with({a: 1.0, b: 0.9}), Film(np.full((200, 200), 0.5, np.float32))


def test_several_findings_are_each_drawn_in_their_own_palette_colour():
    a, b, pred, film = _two_blobs()
    out = overlay(film, pred, [a, b], alpha=1.0)
    ca, cb = np.array(render.class_color(pred, a)), np.array(render.class_color(pred, b))
    at_a, at_b = out[50, 50].astype(int), out[110, 150].astype(int)  # film pixels over the two peaks
    assert np.abs(at_a - ca).sum() < np.abs(at_a - cb).sum() and np.abs(at_a - ca).max() < 25
    assert np.abs(at_b - cb).sum() < np.abs(at_b - ca).sum()
    # the colormap is not what says which is which: it changes nothing with two findings ...
    assert np.array_equal(out, overlay(film, pred, [a, b], alpha=1.0, colormap="inferno"))
    # ... and stays for one finding, where its colours say how strong the map is
    assert not np.array_equal(overlay(film, pred, [a], alpha=1.0), overlay(film, pred, [a], alpha=1.0, colormap="inferno"))
    assert render.finding_hues(pred, [a]) == ()
    assert render.finding_hues(pred, [a, b], "contour") == ()
    # a finding with an empty map does not count: one finding drawn keeps the colormap
    assert render.finding_hues(pred, [a, LABELS[5]]) == ()


def test_the_legend_names_the_hues_on_the_film_and_in_exports(classifier):
    a, b, pred, film = _two_blobs()
    both = render.picture(film, pred, RenderOptions(classes=(a, b), alpha=1.0))
    bare = overlay(film, pred, [a, b], alpha=1.0)
    corner = (slice(150, 200), slice(0, 100))  # the legend's place: bottom left
    assert not np.array_equal(both[corner], bare[corner])
    assert np.array_equal(both[:100, 100:], bare[:100, 100:])  # and nowhere else
    for label in (a, b):  # a swatch of each colour on the plate
        assert np.all(both[corner] == render.class_color(pred, label), axis=-1).sum() >= 16
    one = RenderOptions(classes=(a,), alpha=1.0)
    assert np.array_equal(render.picture(film, pred, one), overlay(film, pred, [a], alpha=1.0))  # no legend for one
    # exports draw with the same renderer: the legend is on the exported film too
    pic = annotate(film, pred, classifier.info, RenderOptions(classes=(a, b), alpha=1.0))
    x, y, w, h = render.film_box(film.height, film.width)
    film_part = pic[y : y + h, x : x + w]
    for label in (a, b):
        assert np.all(film_part == render.class_color(pred, label), axis=-1).sum() >= 16


def test_strongest_at_names_the_finding_under_a_point():
    a, b, pred, _film = _two_blobs()
    shape = (200, 200)
    assert heatmap.strongest_at(pred, [a, b], shape, 50, 50)[0] == a
    assert heatmap.strongest_at(pred, [a, b], shape, 150, 110)[0] == b
    assert heatmap.strongest_at(pred, [b], shape, 50, 50) is None  # b's map is not drawn there
    assert heatmap.strongest_at(pred, [a, b], shape, 199, 0) is None
    # the point's value is the upsampled map's, without upsampling
    up = heatmap.upsample(pred.class_map(a), shape)
    rng = np.random.default_rng(1)
    for x, y in rng.integers(0, 200, (20, 2)):
        assert heatmap.sample(pred.class_map(a), shape, x, y) == pytest.approx(float(up[y, x]), abs=1e-5)
    heat, which = heatmap.strongest_map(pred, [a, b], shape)
    assert which[50, 50] == 0 and which[110, 150] == 1
    # the maximum of the upsampled maps: never above the upsampled maximum, equal on each map's own ground
    combined = heatmap.combined_map(pred, [a, b], shape)
    assert np.all(heat <= combined + 1e-6) and heat[50, 50] == pytest.approx(combined[50, 50], abs=1e-6)
