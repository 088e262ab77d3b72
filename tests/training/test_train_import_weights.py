"""import-weights: Keras HDF5 files (legacy Keras 2 / Keras 3 layouts) → contract ONNX; mismatches."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

# slow: Keras models built and exported in every test
pytestmark = [pytest.mark.training, pytest.mark.slow]
tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from cxrviewer.model import Classifier  # noqa: E402
from training import cli  # noqa: E402
from training.errors import WeightsError  # noqa: E402
from training.model import build_classifier  # noqa: E402
from training.weights import load_weights, read_h5  # noqa: E402

S = 32


def course_style_model(classes: int = 3, seed: int = 0):
    """DenseNet121 + GlobalAveragePooling2D() + Dense() with Keras' default head names, as the
    course built it, with random BN statistics and head so that a silent non-load shows."""
    from keras import layers

    base = keras.applications.DenseNet121(include_top=False, weights=None, input_shape=(S, S, 3))
    x = layers.GlobalAveragePooling2D()(base.output)
    out = layers.Dense(classes, activation="sigmoid")(x)
    model = keras.Model(base.input, out)
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            g, b, m, v = layer.get_weights()
            layer.set_weights([g * rng.uniform(0.5, 1.5, g.shape), b + rng.normal(0, 0.1, b.shape),
                               rng.normal(0, 0.1, m.shape), v * rng.uniform(0.5, 2.0, v.shape)])
        elif isinstance(layer, layers.Dense):
            k, bias = layer.get_weights()
            layer.set_weights([rng.normal(0, 0.5, k.shape), rng.normal(0, 0.5, bias.shape)])
    return model


@pytest.fixture(scope="module")
def source_model():
    return course_style_model()


def write_keras2_h5(model, path, drop: str | None = None, reshape: str | None = None, head_name: str = "dense_1"):
    """The Keras 2 ``save_weights`` layout of the course's pretrained_model.h5 / CheXNet-Keras files:
    DenseNet's ``conv1/conv`` spelling, ``name:0`` weight names, weightless layers listed too."""
    def k2(name: str) -> str:
        if name in ("conv1_conv", "conv1_bn", "conv1_relu"):
            return name.replace("_", "/", 1)
        return head_name if name == "dense" else "global_average_pooling2d_1" if name == "global_average_pooling2d" else name

    with h5py.File(path, "w") as f:
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.6"
        names = []
        for layer in model.layers:
            name = k2(layer.name)
            if name == drop:
                continue
            names.append(name.encode())
            g = f.create_group(name)
            wnames = []
            for var, value in zip(layer.weights, layer.get_weights()):
                wn = f"{name}/{var.name.split('/')[-1]}:0"
                if name == reshape:
                    value = value[..., :-1]
                g.create_dataset(wn, data=value)
                wnames.append(wn.encode())
            g.attrs["weight_names"] = wnames
        f.attrs["layer_names"] = names
    return path


def _assert_same_weights(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    assert len(wa) == len(wb)
    for x, y in zip(wa, wb):
        np.testing.assert_array_equal(x, y)


def test_keras2_course_layout_loads_every_weight(source_model, tmp_path):
    path = write_keras2_h5(source_model, tmp_path / "pretrained_model.h5")
    layout, layers = read_h5(path)
    assert layout == "legacy" and layers[0].name == "conv1/conv"
    model = build_classifier(3, S)
    counts = load_weights(model, path, head="require")
    assert counts == {"layers": 242, "head": 1}  # 120 conv + 121 BN + the head
    _assert_same_weights(model, source_model)


def test_keras3_weights_h5_loads_by_class_order(source_model, tmp_path):
    path = tmp_path / "x.weights.h5"
    source_model.save_weights(path)
    model = build_classifier(3, S)
    load_weights(model, path)
    _assert_same_weights(model, source_model)


def test_import_weights_cli_on_a_legacy_h5_from_keras(source_model, tmp_path, capsys):
    h5 = tmp_path / "course_model.h5"
    source_model.save(h5)  # Keras' legacy HDF5 format (model_weights/layer_names)
    with h5py.File(h5) as f:
        assert "layer_names" in f["model_weights"].attrs
    out = tmp_path / "imported.onnx"
    rc = cli.main(["-q", "import-weights", str(h5), "--labels", "Cardiomegaly,Effusion,Mass", "--mean", "0.5",
                   "--std", "0.25", "--input-size", str(S), "--out", str(out), "--thresholds", "0.2,0.3,0.4",
                   "--trained-on", "NIH ChestX-ray14 (course subset)"])
    assert rc == 0, capsys.readouterr().err
    assert "242 layers loaded" in capsys.readouterr().out
    clf = Classifier.load(out, device="cpu")
    info = clf.info
    assert info.labels == ("Cardiomegaly", "Effusion", "Mass")
    assert (info.mean, info.std, info.input_size) == (0.5, 0.25, S)
    assert dict(info.thresholds) == pytest.approx({"Cardiomegaly": 0.2, "Effusion": 0.3, "Mass": 0.4})
    assert info.model_version == "imported-course_model" and info.demo is False
    assert info.trained_on["data"] == "NIH ChestX-ray14 (course subset)" and info.trained_on["weights_file"] == "course_model.h5"
    x = np.random.default_rng(1).normal(size=(3, S, S, 3)).astype(np.float32)
    raw = clf.run(x)
    np.testing.assert_allclose(raw.probs, np.asarray(source_model(x, training=False)), atol=1e-4)
    assert raw.cams.shape == (3, 3, 1, 1)


def test_mismatching_shape_names_the_layer_and_loads_nothing(source_model, tmp_path):
    path = write_keras2_h5(source_model, tmp_path / "bad.h5", reshape="conv3_block2_1_conv")
    model = build_classifier(3, S)
    before = model.get_weights()
    with pytest.raises(WeightsError) as exc:
        load_weights(model, path)
    msg = str(exc.value)
    assert "layer 'conv3_block2_1_conv' has shapes [(1, 1, 160, 127)]" in msg
    assert "needs [(1, 1, 160, 128)]" in msg and "nothing was loaded" in msg
    for a, b in zip(before, model.get_weights()):  # never a partial load
        np.testing.assert_array_equal(a, b)


def test_missing_layer_and_wrong_class_count(source_model, tmp_path, capsys):
    path = write_keras2_h5(source_model, tmp_path / "short.h5", drop="conv5_block16_2_conv")
    with pytest.raises(WeightsError, match="no weights for layer 'conv5_block16_2_conv'.*first layer it lacks"):
        load_weights(build_classifier(3, S), path)
    good = write_keras2_h5(source_model, tmp_path / "good.h5")
    rc = cli.main(["-q", "import-weights", str(good), "--labels", "A,B", "--mean", "0.5", "--std", "0.25",
                   "--input-size", str(S), "--out", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "head layer 'dense_1' has 3 outputs but 2 labels were given" in err
    assert not (tmp_path / "x.onnx").exists()
    # fit --weights: a head of another class count is skipped, the backbone still loads
    model = build_classifier(2, S)
    assert load_weights(model, good, head="optional") == {"layers": 241, "head": 0}
    np.testing.assert_array_equal(model.get_layer("conv1_conv").get_weights()[0], source_model.get_layer("conv1_conv").get_weights()[0])


def test_mean_on_the_wrong_scale_is_refused(source_model, tmp_path, capsys):
    good = write_keras2_h5(source_model, tmp_path / "good.h5")
    rc = cli.main(["-q", "import-weights", str(good), "--labels", "A,B,C", "--mean", "123.7", "--std", "58.4",
                   "--out", str(tmp_path / "x.onnx")])
    assert rc == 2 and "divided by 255" in capsys.readouterr().err
