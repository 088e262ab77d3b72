"""The fast batch path: one-thread sessions side by side, and regions computed without waste,
must give exactly what the plain path gives."""

import threading

import cv2
import numpy as np
import pytest

from cxrviewer import heatmap
from cxrviewer.batch import iter_scores
from cxrviewer.heatmap import Region
from cxrviewer.io import read_film
from cxrviewer.model import Classifier
from cxrviewer.types import Prediction
from helpers import synthetic_pixels, write_png
from tinymodel import LABELS


@pytest.fixture
def films(tmp_path):
    d = tmp_path / "films"
    d.mkdir()
    paths = []
    for i in range(9):
        paths.append(write_png(d / f"f{i}.png", synthetic_pixels(150 + 10 * i, 128, disc=(0.2 + 0.06 * i, 0.5, 0.1))))
        if i == 4:
            bad = d / "broken.png"
            bad.write_bytes(b"\x89PNG\r\n\x1a\n not really")
            paths.append(bad)
    return paths


def test_for_throughput_is_one_cached_single_thread_session(tiny_model):
    clf = Classifier.load(tiny_model, device="cpu")
    fast = clf.for_throughput()
    assert fast is not clf and fast.threads == 1 and fast.info == clf.info
    assert clf.for_throughput() is fast
    assert fast.for_throughput() is fast
    one = Classifier.load(tiny_model, device="cpu", threads=1)
    assert one.for_throughput() is one


@pytest.mark.parametrize("workers,batch_size", [(1, 1), (2, 1), (3, 1), (2, 3), (1, 4)])
def test_same_results_whatever_the_workers_and_batches(films, classifier, workers, batch_size):
    direct = classifier.predict([read_film(p) for p in films if p.name != "broken.png"])
    got = list(iter_scores(films, classifier, batch_size=batch_size, workers=workers))
    assert [r.path for r in got] == films
    assert [r.path.name for r in got if not r.ok] == ["broken.png"]
    for r, p in zip([r for r in got if r.ok], direct):
        np.testing.assert_allclose(r.prediction.probabilities, p.probabilities, rtol=1e-5)
        np.testing.assert_allclose(r.prediction.class_maps, p.class_maps, rtol=1e-5, atol=1e-7)


def test_stopping_early_leaves_no_worker_running(films, classifier):
    before = threading.active_count()
    gen = iter_scores(films * 5, classifier, workers=2)
    next(gen)
    gen.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("cxr-score")]
    assert threading.active_count() <= before


def test_opencv_runs_single_threaded_only_while_workers_fill_the_cores(films, classifier, monkeypatch):
    import os

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        seen = []
        for _ in iter_scores(films, classifier, workers=2):
            seen.append(cv2.getNumThreads())
        assert set(seen) == {1}
        assert cv2.getNumThreads() == 3  # restored
        # a batch that leaves cores free leaves OpenCV's threads alone
        assert {cv2.getNumThreads() for _ in iter_scores(films, classifier, workers=1)} == {3}
        # two batches at once (the GUI may score while a folder is scored): the last one restores
        a, b = iter_scores(films, classifier, workers=2), iter_scores(films, classifier, workers=2)
        next(a), next(b)
        assert cv2.getNumThreads() == 1
        a.close()
        assert cv2.getNumThreads() == 1
        b.close()
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


# ------------------------------------------------------------------ regions, the plain way
def plain_display_map(pred, label, shape):
    h, w = shape
    cam = heatmap.normalize(pred.class_map(label))
    up = cv2.resize(np.asarray(cam, dtype=np.float32), (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
    return np.maximum(up, 0.0, out=up)


def plain_regions(pred, label, shape, level=heatmap.REGION_LEVEL, min_area=heatmap.REGION_MIN_AREA):
    """The straightforward version: whole-film masks for every piece."""
    heat = plain_display_map(pred, label, shape)
    mask = (heat >= level).astype(np.uint8)
    if not mask.any():
        return []
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        piece = np.zeros_like(mask)
        cv2.drawContours(piece, [c], -1, 1, thickness=cv2.FILLED)
        area = int(piece.sum())
        if area < min_area * shape[0] * shape[1]:
            continue
        x, y, w, h = cv2.boundingRect(c)
        c = cv2.approxPolyDP(c, max(1.0, 0.001 * max(shape)), True)
        out.append(Region(label, (x, y, w, h), tuple((int(p[0][0]), int(p[0][1])) for p in c), area,
                          float(heat[piece.astype(bool)].max()), pred.probability(label)))
    out.sort(key=lambda r: -r.area)
    return out


def random_prediction(rng, grid=10):
    maps = rng.random((len(LABELS), grid, grid)).astype(np.float32) - 0.45  # some pieces, some zeros
    maps = np.maximum(maps, 0.0) * rng.random((len(LABELS), 1, 1)).astype(np.float32)
    maps[3] = 0.0  # an all-zero map
    maps[5, 0, :] = 1.0  # a piece along the top edge
    maps[6, :, -1] = 1.0  # and one along the right edge
    return Prediction(LABELS, rng.random(len(LABELS)).astype(np.float32), maps, (0.5,) * len(LABELS), "t")


@pytest.mark.parametrize("shape", [(1024, 1024), (2560, 2048), (333, 517), (40, 33)])
def test_display_maps_equal_the_plain_way(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(3):
        pred = random_prediction(rng)
        for label in LABELS:
            assert np.array_equal(heatmap.display_map(pred, label, shape), plain_display_map(pred, label, shape))


LEVELS = ((0.5, 0.005), (0.3, 0.0), (0.9, 0.001), (0.0, 0.0))


@pytest.mark.parametrize("shape", [(512, 512), (333, 500), (40, 33)])
def test_regions_of_films_up_to_the_grid_equal_the_plain_way(shape):
    assert heatmap.region_grid(shape) == shape
    rng = np.random.default_rng(sum(shape))
    for _ in range(3):
        pred = random_prediction(rng)
        for label in LABELS:
            for level, min_area in LEVELS:
                assert heatmap.regions(pred, label, shape, level, min_area) == plain_regions(pred, label, shape, level, min_area)


LARGE = [(1024, 1024), (2560, 2048), (333, 517), (3000, 700)]


def distance_to_edge(hot):
    """Each pixel's distance to the edge of a 0/1 mask (outside the film counts as cold)."""
    hot = np.pad(hot.astype(np.uint8), 1)
    return np.maximum(cv2.distanceTransform(hot, cv2.DIST_L2, 5), cv2.distanceTransform(1 - hot, cv2.DIST_L2, 5))[1:-1, 1:-1]


def blob_prediction(rng, grid=10):
    """Smooth maps like real class maps: two or three Gaussian hot spots each."""
    yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float32)
    maps = np.zeros((len(LABELS), grid, grid), np.float32)
    for m in maps:
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0, grid - 1, 2)
            m += rng.uniform(0.3, 1.0) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * rng.uniform(0.8, 2.0) ** 2))
    return Prediction(LABELS, rng.random(len(LABELS)).astype(np.float32), maps, (0.5,) * len(LABELS), "t")


@pytest.mark.parametrize("shape", LARGE)
@pytest.mark.slow
def test_regions_of_larger_films_match_the_plain_way_within_a_grid_pixel(shape):
    """On smooth maps the pieces pair up one to one: boxes within two grid pixels, areas within
    2%, peaks within the map's sampling, every outline point within about a grid pixel of
    the plain outline."""
    grid = heatmap.region_grid(shape)
    step = max(shape[0] / grid[0], shape[1] / grid[1])
    rng = np.random.default_rng(sum(shape))
    compared = 0
    for _ in range(4):
        pred = blob_prediction(rng)
        for label in LABELS:
            ours = heatmap.regions(pred, label, shape)
            plain = plain_regions(pred, label, shape)
            assert len(ours) == len(plain), (label, [r.box for r in ours], [r.box for r in plain])
            heat = plain_display_map(pred, label, shape)
            to_edge = distance_to_edge(heat >= heatmap.REGION_LEVEL)
            for o, r in zip(ours, plain):
                assert all(abs(a - b) <= 2 * step + 1 for a, b in zip(o.box, r.box)), (o.box, r.box)
                assert abs(o.area - r.area) <= 0.02 * r.area
                assert abs(o.peak - r.peak) <= 0.05  # both sample the top of a bilinear map
                assert max(to_edge[y, x] for x, y in o.contour) <= 1.5 * step + 1  # within ~a grid pixel
                compared += 1
    assert compared > 20


def test_regions_cost_does_not_grow_with_the_film():
    """Films longer than the grid are traced on a grid of REGION_GRID pixels, aspect kept."""
    assert heatmap.region_grid((2560, 2048)) == (512, 410)
    assert heatmap.region_grid((4096, 1024)) == (512, 128)
    assert heatmap.region_grid((100, 7000)) == (7, 512)


def test_defaults_follow_the_device():
    import os

    from cxrviewer.batch import default_batch_size, default_workers
    from cxrviewer.model import CPU, CUDA

    assert default_batch_size(CPU) == 1 and default_batch_size(CUDA) == 8
    assert default_workers(CPU) == max(1, os.cpu_count() or 1)
    assert 1 <= default_workers(CUDA) <= 4
