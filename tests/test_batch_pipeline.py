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
def test_regions_and_maps_equal_the_plain_way(shape):
    rng = np.random.default_rng(sum(shape))
    for _ in range(3):
        pred = random_prediction(rng)
        for label in LABELS:
            assert np.array_equal(heatmap.display_map(pred, label, shape), plain_display_map(pred, label, shape))
            for level, min_area in ((0.5, 0.005), (0.3, 0.0), (0.9, 0.001), (0.0, 0.0)):
                assert heatmap.regions(pred, label, shape, level, min_area) == plain_regions(pred, label, shape, level, min_area)


def test_defaults_follow_the_device():
    import os

    from cxrviewer.batch import default_batch_size, default_workers
    from cxrviewer.model import CPU, CUDA

    assert default_batch_size(CPU) == 1 and default_batch_size(CUDA) == 8
    assert default_workers(CPU) == max(1, os.cpu_count() or 1)
    assert 1 <= default_workers(CUDA) <= 4
