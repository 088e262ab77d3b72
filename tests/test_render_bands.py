"""The renderer works band by band (and on all cores); the picture must be exactly the one the
whole-film expressions give."""

import cv2
import numpy as np
import pytest

from cxrviewer import heatmap, render
from cxrviewer.types import Film, Prediction
from tinymodel import LABELS


def plain_film_rgb(px, window=None, invert=False):
    px = np.asarray(px, dtype=np.float32)
    if window is not None:
        center, width = window
        width = max(float(width), 1e-6)
        px = (px - (center - width / 2.0)) / width
    gray = np.clip(np.rint(np.clip(px, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    if invert:
        gray = 255 - gray
    return np.repeat(gray[..., None], 3, axis=2)


def plain_overlay(film, pred, classes, alpha=0.4, colormap="jet", window=None, invert=False):
    base = plain_film_rgb(film.pixels, window, invert)
    drawn = heatmap.active(pred, classes)
    if len(drawn) >= 2:  # each finding in its palette colour, where its map is the strongest
        ref = heatmap.reference(pred)
        heats = np.stack([heatmap.upsample(np.clip(pred.class_map(c) / ref, 0, 1), (film.height, film.width)) for c in drawn])
        heat = heats.max(axis=0)
        palette = np.array([render.class_color(pred, c) for c in drawn], np.float32)
        color = palette[heats.argmax(axis=0)]
    else:
        heat = heatmap.combined_map(pred, classes, (film.height, film.width))
        u8 = np.clip(np.rint(heat * 255.0), 0, 255).astype(np.uint8)
        color = cv2.cvtColor(cv2.applyColorMap(u8, heatmap.COLORMAPS[colormap]), cv2.COLOR_BGR2RGB).astype(np.float32)
    # the weight's own rule is tested in test_heatmaps.py; here: bands give the whole-film picture
    weight = heatmap.opacity(heat, np.clip(alpha, 0.0, 1.0))[..., None]
    out = base.astype(np.float32) * (1.0 - weight) + color * weight
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


@pytest.fixture(params=[(2560, 2048), (1024, 1024), (37, 53)], ids=lambda s: f"{s[0]}x{s[1]}")
def case(request):
    rng = np.random.default_rng(request.param[0])
    h, w = request.param
    yy, xx = np.mgrid[0:h, 0:w]
    px = (0.5 + 0.4 * np.sin(xx / 97.0) * np.cos(yy / 61.0) + 0.05 * rng.standard_normal((h, w))).astype(np.float32)
    film = Film(np.clip(px, 0, 1))
    maps = np.maximum(rng.random((len(LABELS), 10, 10)).astype(np.float32) - 0.3, 0)
    pred = Prediction(LABELS, rng.random(len(LABELS)).astype(np.float32), maps, (0.5,) * len(LABELS), "t")
    return film, pred


@pytest.mark.parametrize("options", [
    {},
    {"alpha": 1.0, "colormap": "turbo"},
    {"alpha": np.float32(0.55), "colormap": "inferno"},
    {"window": (0.3, 0.5), "invert": True},
    {"window": (np.float64(0.6), 0.2), "alpha": 0.8},
])
@pytest.mark.slow
def test_overlay_equals_the_whole_film_expression(case, options):
    film, pred = case
    for classes in (LABELS[:1], LABELS[:5], LABELS):
        assert np.array_equal(render.overlay(film, pred, classes, **options), plain_overlay(film, pred, classes, **options))


def test_film_rgb_equals_the_whole_film_expression(case):
    film, _ = case
    for window, invert in ((None, False), ((0.4, 0.3), True), ((0.5, 1e-9), False)):
        assert np.array_equal(render.film_rgb(film, window, invert), plain_film_rgb(film.pixels, window, invert))
        assert np.array_equal(render.overlay(film, None, (), window=window, invert=invert), plain_film_rgb(film.pixels, window, invert))
