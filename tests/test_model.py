import numpy as np
import pytest

from cxrviewer.errors import ModelError
from cxrviewer.model import Classifier
from cxrviewer.ood import OodModel, fit_ood
from cxrviewer.preprocess import model_input, preprocess_batch, resize, standardize
from cxrviewer.types import Film
from helpers import synthetic_pixels
from tinymodel import LABELS, build_tiny_model, tiny_info


def test_provider_reported_is_the_one_in_use(classifier):
    assert classifier.provider == classifier.session.get_providers()[0]
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


@pytest.mark.parametrize("maps", ["class score", "probability"])
def test_cams_equal_the_grad_cam_formula(tmp_path, maps):
    """The tiny graph computes cams = ReLU(A W)/(hw) (format 2: the class score's Grad-CAM), or
    p(1-p)/(hw) * ReLU(A W) (a format 1 file: the probability's); check against numpy."""
    path = build_tiny_model(tmp_path / "m.onnx", tiny_info(64), k=3, seed=5, maps=maps)
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
    factor = np.ones_like(p) if maps == "class score" else p * (1 - p)
    cams = np.maximum(act @ w["dense_w"], 0) * (factor / 4)[:, None, None, :]
    assert clf.info.format_version == (2 if maps == "class score" else 1)
    assert clf.info.maps_of == maps
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


def test_ood_model_refuses_nan_statistics():
    rng = np.random.default_rng(0)
    stats = fit_ood(rng.normal(size=(30, 4)), rank=2)
    from dataclasses import replace

    with pytest.raises(ValueError, match="NaN or infinite"):
        OodModel(replace(stats, mean=(float("nan"), 0.0, 0.0, 0.0)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        OodModel(replace(stats, threshold=float("nan")))


def test_raw_output_problems_are_per_film():
    from cxrviewer.model import RawOutputs

    probs = np.full((5, 3), 0.5, np.float32)
    cams = np.zeros((5, 3, 2, 2), np.float32)
    feats = np.ones((5, 4), np.float32)
    probs[1, 2] = np.nan
    probs[2, 0] = 1.5  # a logit where a probability belongs
    cams[3, 1, 0, 0] = np.inf
    feats[4, 3] = -np.inf
    probs[4, 0] = np.inf
    got = RawOutputs(probs, cams, feats).problems()
    assert got[0] is None
    assert got[1] == "NaN or infinite probabilities"
    assert got[2] == "probabilities outside 0..1"
    assert got[3] == "NaN or infinite heatmaps"
    assert got[4] == "NaN or infinite probabilities, features"
    ok = RawOutputs(np.array([[0.0, 1.0 + 1e-7]], np.float32), cams[:1], feats[:1]).problems()
    assert ok == [None]  # an ulp past 1, as a quantized model's output may be


@pytest.mark.parametrize("output", ["probs", "cams", "features"])
def test_a_model_with_invalid_outputs_is_refused_at_load(tmp_path, output):
    path = build_tiny_model(tmp_path / "nan.onnx", nan_output=output)
    with pytest.raises(ModelError, match="nan.onnx produced invalid numbers .* on a plain test film") as exc:
        Classifier.load(path, device="cpu")
    assert "another model file" in str(exc.value) and "--" not in str(exc.value)
    Classifier.load(path, device="cpu", check_outputs=False)  # the file itself is readable


def test_predict_raises_for_the_film_with_invalid_outputs(tmp_path):
    from cxrviewer.errors import ModelOutputError

    clf = Classifier.load(build_tiny_model(tmp_path / "m.onnx", nan_output="probs", nan_above=1.0), device="cpu")
    mid, bright = Film(np.full((64, 64), 0.5, np.float32)), Film(np.full((64, 64), 0.95, np.float32))
    assert np.isfinite(clf.predict_one(mid).probabilities).all()
    with pytest.raises(ModelOutputError, match="NaN or infinite probabilities"):
        clf.predict([mid, bright])
    outcomes = clf.outcomes(clf.run(preprocess_batch([mid, bright, mid], clf.info)))
    assert [type(o).__name__ for o in outcomes] == ["Prediction", "ModelOutputError", "Prediction"]
