import numpy as np
import pytest

from cxrviewer.model import Classifier
from cxrviewer.ood import OodModel, fit_ood
from cxrviewer.preprocess import model_input, preprocess_batch, resize, standardize
from cxrviewer.types import Film
from helpers import synthetic_pixels
from tinymodel import LABELS, build_tiny_model, tiny_info


def test_provider_reported_is_the_one_in_use(classifier):
    assert classifier.provider == classifier._session.get_providers()[0]
    assert classifier.provider == "CPUExecutionProvider"


def test_predict_shapes_labels_and_ranges(classifier, synthetic_film):
    (pred,) = classifier.predict([synthetic_film])
    assert pred.labels == LABELS
    assert pred.probabilities.shape == (14,)
    assert np.all((pred.probabilities > 0) & (pred.probabilities < 1))
    assert pred.class_maps.shape == (14, 2, 2)
    assert np.all(pred.class_maps >= 0)
    assert pred.model_version == "tiny-test-1"
    assert not pred.probabilities.flags.writeable


def test_batching_does_not_change_results(classifier):
    films = [Film(synthetic_pixels(disc=(0.2 + 0.1 * i, 0.5, 0.1))) for i in range(5)]
    one_by_one = [classifier.predict_one(f) for f in films]
    batched = classifier.predict(films, batch_size=3)
    for a, b in zip(one_by_one, batched):
        np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a.class_maps, b.class_maps, rtol=1e-5, atol=1e-7)


def test_class_map_follows_the_bright_region(classifier):
    # bright disc in the top-left quadrant: every class map peaks in cell (0, 0)
    pred = classifier.predict_one(Film(synthetic_pixels(256, 256, disc=(0.25, 0.25, 0.2))))
    label = LABELS[0]
    cam = pred.class_map(label)
    assert np.unravel_index(np.argmax(cam), cam.shape) == (0, 0)


def test_cams_equal_the_grad_cam_formula(tmp_path):
    """The tiny graph computes cams = p(1-p)/(hw) * ReLU(A W); check against numpy."""
    path = build_tiny_model(tmp_path / "m.onnx", tiny_info(64), k=3, seed=5)
    clf = Classifier.load(path)
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(path)).graph
    w = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    x = preprocess_batch([Film(synthetic_pixels(64, 64))], clf.info)
    pooled = x.reshape(1, 2, 32, 2, 32, 3).mean(axis=(2, 4))  # NHWC 2x2x3
    act = np.maximum(np.einsum("nhwc,kc->nhwk", pooled, w["conv_w"][:, :, 0, 0]) + w["conv_b"], 0)
    feats = act.mean(axis=(1, 2))
    p = 1 / (1 + np.exp(-(feats @ w["dense_w"] + w["dense_b"])))
    cams = np.maximum(act @ w["dense_w"], 0) * (p * (1 - p) / 4)[:, None, None, :]
    raw = clf.run(x)
    np.testing.assert_allclose(raw.probs, p, rtol=1e-5)
    np.testing.assert_allclose(raw.cams, np.transpose(cams, (0, 3, 1, 2)), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(raw.features, feats, rtol=1e-5)


def test_preprocess_is_resize_then_standardize():
    px = synthetic_pixels(300, 200)
    x = model_input(px, 64, 0.4, 0.2)
    assert x.shape == (64, 64, 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    np.testing.assert_allclose(x[..., 0], (resize(px, 64) - 0.4) / 0.2, rtol=1e-6)
    np.testing.assert_allclose(standardize(np.full((2, 2), 0.6), 0.4, 0.2)[..., 1], 1.0, rtol=1e-6)
    # area interpolation: the mean is preserved when shrinking by an integer factor
    assert resize(px[:256, :192], 64).mean() == pytest.approx(px[:256, :192].mean(), rel=1e-4)


def test_ood_scores_flag_far_features():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(200, 16))
    stats = fit_ood(train, rng.normal(size=(100, 16)), rank=6, percentile=99)
    model = OodModel(stats)
    near = model.scores(rng.normal(size=(50, 16)))
    far = model.scores(rng.normal(size=(50, 16)) + 4.0)
    assert np.median(near) == pytest.approx(1.0, abs=0.35)
    assert far.min() > stats.threshold > np.median(near)
