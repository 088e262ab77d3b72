import json

import numpy as np
import pytest

from cxrviewer import contract
from cxrviewer.errors import ModelError
from cxrviewer.model import Classifier
from cxrviewer.ood import fit_ood
from tinymodel import LABELS, build_tiny_model, tiny_info


def test_metadata_round_trip_with_ood():
    rng = np.random.default_rng(1)
    ood = fit_ood(rng.normal(size=(50, 8)), rng.normal(size=(20, 8)), rank=4, percentile=95)
    info = tiny_info(96, ood=ood, metrics={"Mass": 0.71})
    meta = contract.to_metadata(info)
    assert all(k.startswith("cxr.") for k in meta)
    back = contract.from_metadata(meta)
    assert back == info


def test_every_missing_key_is_named(tmp_path):
    meta = contract.to_metadata(tiny_info())
    del meta["cxr.mean"], meta["cxr.thresholds"]
    with pytest.raises(ModelError) as exc:
        contract.from_metadata(meta, source="m.onnx")
    assert "cxr.mean" in str(exc.value) and "cxr.thresholds" in str(exc.value)
    assert "cxr-train export" in str(exc.value)


@pytest.mark.parametrize(
    "key,value,needle",
    [
        ("cxr.std", "0", "cxr.std"),
        ("cxr.labels", "[]", "cxr.labels"),
        ("cxr.thresholds", json.dumps({"Mass": 0.5}), "one threshold per label"),
        ("cxr.demo", '"yes"', "cxr.demo"),
        ("cxr.layout", '"NCHW"', "NHWC"),
        ("cxr.input_size", "not json", "not valid JSON"),
        ("cxr.format_version", "99", "version 99"),
        # issue 25: true is no version (Python counts it as 1), a std that makes every input 0 or inf
        ("cxr.format_version", "true", r"cxr.format_version must be an integer .*, got true"),
        ("cxr.format_version", "1.0", r"cxr.format_version must be an integer .*, got 1.0"),
        ("cxr.std", "1e-30", r"cxr.std must lie between 1e-06 and 1000, got 1e-30"),
        ("cxr.std", "1e300", r"cxr.std must lie between 1e-06 and 1000, got 1e\+300"),
        ("cxr.precision", '"fp16"', r'cxr.precision must be one of "fp32", "int8" \(absent means "fp32"\), got \'fp16\''),
        ("cxr.precision", "8", "cxr.precision must be one of"),
    ],
)
def test_invalid_values_are_refused(key, value, needle):
    meta = contract.to_metadata(tiny_info())
    meta[key] = value
    with pytest.raises(ModelError, match=needle):
        contract.from_metadata(meta)


def test_precision_absent_means_fp32(tiny_model):
    """Models written before cxr.precision existed load as fp32; fp32 exports still leave it out."""
    assert "cxr.precision" not in contract.to_metadata(tiny_info())
    clf = Classifier.load(tiny_model)
    assert clf.info.precision == "fp32"
    meta = contract.to_metadata(tiny_info(precision="int8"))
    assert meta["cxr.precision"] == '"int8"'
    assert contract.from_metadata(meta) == tiny_info(precision="int8")
    meta["cxr.precision"] = '"fp32"'  # written explicitly, it means the same as absent
    assert contract.from_metadata(meta) == tiny_info()


def test_model_with_invalid_precision_is_refused(tmp_path):
    meta = contract.to_metadata(tiny_info())
    meta["cxr.precision"] = '"int4"'
    path = build_tiny_model(tmp_path / "m.onnx", metadata=meta)
    with pytest.raises(ModelError, match=r"m.onnx has invalid metadata: cxr.precision must be one of .*cxr-train export"):
        Classifier.load(path)


def test_thresholds_as_list_are_accepted_by_label_order():
    meta = contract.to_metadata(tiny_info())
    meta["cxr.thresholds"] = json.dumps([0.1 * (i % 10) for i in range(len(LABELS))])
    info = contract.from_metadata(meta)
    assert info.thresholds[LABELS[3]] == pytest.approx(0.3)


def test_model_without_metadata_is_refused(tmp_path):
    path = build_tiny_model(tmp_path / "bare.onnx", metadata={})
    with pytest.raises(ModelError, match="is not a cxrviewer model"):
        Classifier.load(path)


def test_model_with_wrong_output_names_is_refused(tmp_path):
    path = build_tiny_model(tmp_path / "renamed.onnx", output_names=("scores", "cams", "features"))
    with pytest.raises(ModelError, match="output 'probs' is missing"):
        Classifier.load(path)


def test_model_whose_size_disagrees_with_metadata_is_refused(tmp_path):
    meta = contract.to_metadata(tiny_info(128))
    path = build_tiny_model(tmp_path / "m.onnx", tiny_info(64), metadata=meta)
    with pytest.raises(ModelError, match=r"must be \[N, 128, 128, 3\]"):
        Classifier.load(path)


def test_truncated_and_missing_model_files(tmp_path, tiny_model):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(tiny_model.read_bytes()[:300])
    with pytest.raises(ModelError, match="not a readable ONNX model"):
        Classifier.load(cut)
    with pytest.raises(ModelError, match="not found"):
        Classifier.load(tmp_path / "nope.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("hello")
    with pytest.raises(ModelError):
        Classifier.load(text)


def _ood_meta(**changes) -> dict[str, str]:
    """Metadata with an OOD guard whose JSON has ``changes`` applied (NaN and Infinity allowed,
    as a JSON writer without allow_nan=False writes them)."""
    rng = np.random.default_rng(2)
    info = tiny_info(ood=fit_ood(rng.normal(size=(50, 4)), rng.normal(size=(20, 4)), rank=2))
    meta = contract.to_metadata(info)
    ood = json.loads(meta["cxr.ood"])
    for key, value in changes.items():
        if key == "mean0":
            ood["mean"][0] = value
        elif key == "component":
            ood["components"][1][2] = value
        else:
            ood[key] = value
    meta["cxr.ood"] = json.dumps(ood)  # allow_nan defaults to True: writes NaN / Infinity
    return meta


@pytest.mark.parametrize(
    "changes",
    [
        {"threshold": float("nan")},
        {"threshold": float("inf")},
        {"mean0": float("nan")},
        {"component": float("-inf")},
        {"variances": [1.0, float("inf")]},
        {"residual_variance": float("nan")},
        {"percentile": float("nan")},
        {"percentile": 250.0},
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_ood_metadata_with_nan_or_infinity_is_refused(tmp_path, changes):
    """NaN statistics make every score NaN and an infinite threshold is never exceeded: both
    used to load and silently switch the out-of-distribution guard off."""
    meta = _ood_meta(**changes)
    with pytest.raises(ModelError, match="cxr.ood is malformed"):
        contract.from_metadata(meta, source="m.onnx")
    path = build_tiny_model(tmp_path / "m.onnx", metadata=meta)
    with pytest.raises(ModelError, match="cxr.ood is malformed"):
        Classifier.load(path, device="cpu")


def test_ood_metadata_that_is_finite_still_loads(tmp_path):
    clf = Classifier.load(build_tiny_model(tmp_path / "m.onnx", metadata=_ood_meta()), device="cpu")
    assert clf.info.ood is not None and np.isfinite(clf.info.ood.threshold)
