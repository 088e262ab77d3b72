"""The trained run, its ONNX export: parity with Keras, in-graph Grad-CAM vs GradientTape, metadata."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

# slow: every test here shares a module fixture that trains and exports a run (~45 s)
pytestmark = [pytest.mark.training, pytest.mark.slow]
tf = pytest.importorskip("tensorflow")

from cxrviewer import contract  # noqa: E402
from cxrviewer.io import read_film  # noqa: E402
from cxrviewer.model import Classifier  # noqa: E402
from cxrviewer.preprocess import model_input  # noqa: E402
from training.data import NIH_LABELS  # noqa: E402

FILMS = ["00000022_000.png", "00000103_000.png", "00000468_014.png", "00001153_004.png", "00001232_002.png", "00001831_000.png"]


@pytest.fixture(scope="module")
def classifier(trained_run):
    return Classifier.load(trained_run / "model.onnx", device="cpu")


@pytest.fixture(scope="module")
def batch(nih, classifier):
    info = classifier.info
    return np.stack([model_input(read_film(nih / "images" / n).pixels, info.input_size, info.mean, info.std) for n in FILMS])


def test_run_directory(trained_run):
    for name in ("model.keras", "model.onnx", "report.md", "metrics.json", "history.csv", "run.json", "splits.csv",
                 "roc_valid.png", "pr_valid.png", "roc_test.png"):
        assert (trained_run / name).is_file(), name
    rows = list(csv.DictReader(open(trained_run / "history.csv")))
    assert len(rows) == 1 and {"loss", "val_loss", "auc"} <= set(rows[0])
    splits = list(csv.DictReader(open(trained_run / "splits.csv")))
    assert len(splits) == 12 and {r["split"] for r in splits} == {"train", "valid", "test"}
    report = (trained_run / "report.md").read_text()
    assert "Demo model" in report and "| Atelectasis |" in report


def test_onnx_matches_keras_on_real_films(classifier, export_model, batch):
    keras_out = {k: np.asarray(v) for k, v in export_model(batch, training=False).items()}
    onnx_out = classifier.session.run(list(contract.OUTPUT_NAMES), {contract.INPUT_NAME: batch})
    deltas = {}
    for name, got in zip(contract.OUTPUT_NAMES, onnx_out):
        assert got.shape == keras_out[name].shape, name
        deltas[name] = float(np.max(np.abs(got - keras_out[name])))
    print("ONNX vs Keras max |delta|:", deltas)
    assert max(deltas.values()) <= 1e-4, deltas
    assert onnx_out[1].shape == (len(FILMS), 2, 2, 14)  # NHWC cams, h = w = 64/32
    assert onnx_out[2].shape == (len(FILMS), 1024)


def test_app_predictions_equal_keras(nih, classifier, keras_model, batch):
    """The app's whole path (read_film → preprocess → ONNX Runtime) against Keras."""
    films = [read_film(nih / "images" / n) for n in FILMS]
    preds = classifier.predict(films, batch_size=4)
    probs = np.asarray(keras_model(batch, training=False))
    np.testing.assert_allclose(np.stack([p.probabilities for p in preds]), probs, atol=1e-4)
    assert all(p.ood_score is not None and np.isfinite(p.ood_score) for p in preds)


def test_in_graph_cams_equal_gradient_tape_gradcam(keras_model, export_model, classifier, batch):
    """The maps are Grad-CAM of the class score (the logit before the sigmoid, Selvaraju et al.),
    not of the probability: no factor p(1 − p) (format version 2, issue #28)."""
    import keras

    head = keras_model.get_layer("predictions")
    grad_model = keras.Model(keras_model.input, [keras_model.get_layer("relu").output, keras_model.output])
    x = tf.constant(batch)
    with tf.GradientTape(persistent=True) as tape:
        feature_map, probs = grad_model(x, training=False)
        # the class scores: the head's own pre-activation on the pooled feature map
        logits = tf.matmul(tf.reduce_mean(feature_map, axis=(1, 2)), head.kernel) + head.bias
        per_class = [logits[:, c] for c in range(logits.shape[1])]
    np.testing.assert_allclose(tf.sigmoid(logits), probs, atol=1e-6)  # they are the model's scores
    tape_cams = []
    for c, z_c in enumerate(per_class):
        grads = tape.gradient(z_c, feature_map)  # ∂z_c/∂A, [N, h, w, K]
        alpha = tf.reduce_mean(grads, axis=(1, 2))  # [N, K]
        tape_cams.append(tf.nn.relu(tf.einsum("nhwk,nk->nhw", feature_map, alpha)))
    del tape
    tape_cams = np.stack([np.asarray(t) for t in tape_cams], axis=-1)  # [N, h, w, C]
    in_graph = np.asarray(export_model(batch, training=False)["cams"])
    onnx_cams = classifier.session.run([contract.CAMS], {contract.INPUT_NAME: batch})[0]
    scale = float(np.max(np.abs(tape_cams)))
    assert scale > 0 and np.count_nonzero(tape_cams) > tape_cams.size // 10  # a non-trivial comparison
    rel_keras = float(np.max(np.abs(in_graph - tape_cams))) / scale
    rel_onnx = float(np.max(np.abs(onnx_cams - tape_cams))) / scale
    print(f"cams vs GradientTape Grad-CAM: relative max |delta| Keras {rel_keras:.2e}, ONNX {rel_onnx:.2e}")
    assert rel_keras <= 1e-5
    assert rel_onnx <= 1e-4


def test_metadata_round_trip(trained_run, classifier):
    info = classifier.info
    run = json.loads((trained_run / "run.json").read_text())
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert info.labels == NIH_LABELS
    assert info.input_size == 64 and info.layout == "NHWC"
    assert info.format_version == 2 and info.maps_of == "class score"  # maps of the class score
    assert info.mean == pytest.approx(run["mean"]) and info.std == pytest.approx(run["std"])
    assert 0.3 < info.mean < 0.7 and 0.1 < info.std < 0.4  # [0, 1] film scale
    assert dict(info.thresholds) == pytest.approx(metrics["thresholds"])
    assert info.model_version == "test-64" and info.demo is True
    assert info.trained_on["films"] == 12 and info.trained_on["split"]["train"] + info.trained_on["split"]["valid"] + info.trained_on["split"]["test"] == 12
    assert "predictions mean nothing" in info.trained_on["note"]
    valid = metrics["splits"]["valid"]["auroc"]
    assert dict(info.metrics) == pytest.approx({k: v for k, v in valid.items() if v is not None})
    assert set(metrics["splits"]["valid"]["omitted"]).isdisjoint(info.metrics)
    assert info.ood is not None and len(info.ood.mean) == 1024 and info.ood.threshold > 0
    # the raw file: names, free batch dimension, every contract key
    import onnx

    proto = onnx.load(str(trained_run / "model.onnx"), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    assert set(contract.PREFIX + k for k in contract.KEYS) <= set(props)
    assert contract.from_metadata(props) == info
    assert [i.name for i in proto.graph.input] == ["image"]
    assert sorted(o.name for o in proto.graph.output) == ["cams", "features", "probs"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert any(o.version == 17 for o in proto.opset_import if o.domain in ("", "ai.onnx"))


def test_evaluate_command_rewrites_thresholds(trained_run, tmp_path, capsys):
    from training import cli

    run = tmp_path / "run"
    shutil.copytree(trained_run, run, ignore=shutil.ignore_patterns("model.onnx", "*.png"))
    assert cli.main(["-q", "evaluate", str(run), "--threshold-method", "fixed", "--threshold-value", "0.3"]) == 0
    assert "mean AUROC" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["thresholds"].values()) == {0.3}
    assert (run / "roc_valid.png").stat().st_size > 1000
    assert cli.main(["-q", "evaluate", str(tmp_path / "nope")]) == 2
