"""A tiny ONNX model that honours the cxrviewer contract, built with ``onnx.helper``.

It stands in for the trained DenseNet121 in most tests: same input/output names, layouts and
metadata, and the same in-graph Grad-CAM formula (cams = ReLU(A @ W)/(h*w), the map of the class
score, format version 2; ``maps="probability"`` builds a version 1 file whose maps carry the
old factor p(1-p) instead), so the
core and the app are tested without TensorFlow. Its "backbone" is a 32×32 average pool followed
by a 1×1 convolution and ReLU: a bright region in the film gives a bright class map there.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from cxrviewer import contract
from cxrviewer.types import ModelInfo

LABELS = (
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Effusion", "Emphysema", "Fibrosis",
    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural_Thickening", "Pneumonia", "Pneumothorax",
)


def tiny_info(size: int = 64, labels: tuple[str, ...] = LABELS, demo: bool = True, crop: str = "none",
              **kw) -> ModelInfo:
    """The tiny model's metadata; ``crop="center"`` makes a model that reads the film's centred
    square (``cxr.crop``), as an imported torchxrayvision model does."""
    values = dict(
        crop=crop,
        labels=labels,
        input_size=size,
        mean=0.5,
        std=0.25,
        thresholds={label: 0.5 for label in labels},
        model_version="tiny-test-1",
        demo=demo,
        trained_on={"data": "none: a synthetic test model", "films": 0},
        metrics={},
    )
    values.update(kw)
    return ModelInfo(**values)


def build_tiny_model(
    path: Path,
    info: ModelInfo | None = None,
    *,
    k: int = 4,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
    output_names: tuple[str, ...] = contract.OUTPUT_NAMES,
    nan_output: str | None = None,
    nan_above: float = float("-inf"),
    maps: str = "class score",
) -> Path:
    """Write a tiny contract model to ``path``; ``metadata`` replaces the contract metadata.

    ``nan_output`` (``"probs"``, ``"cams"`` or ``"features"``) makes that output NaN for the
    films whose mean input value (standardized, as the model sees it) is above ``nan_above``:
    every film by default, or only bright ones with e.g. ``nan_above=1.0`` (a film of mean
    pixel 0.75 under the tiny model's mean 0.5 and std 0.25), which a mid-grey film is not.
    The NaN comes from the graph itself (0 / 0 where the condition holds), as a broken export
    or an overflowing layer would give it.
    """
    info = info or tiny_info()
    if maps not in ("class score", "probability"):
        raise ValueError(f"maps must be 'class score' or 'probability', got {maps!r}")
    if maps == "probability" and info.format_version != 1:
        info = replace(info, format_version=1)  # the maps a version 1 file carries
    s, c = info.input_size, info.num_classes
    h = s // contract.CAM_STRIDE
    rng = np.random.default_rng(seed)
    conv_w = (rng.normal(size=(k, 3, 1, 1)) * 0.5 + 0.3).astype(np.float32)
    conv_b = np.zeros(k, np.float32)
    w = rng.normal(size=(k, c)).astype(np.float32)
    w[0, :] = np.abs(w[0, :]) + 0.5  # channel 0 follows brightness: every class map lights up there
    b = (rng.normal(size=(c,)) * 0.1).astype(np.float32)
    inits = [
        numpy_helper.from_array(conv_w, "conv_w"),
        numpy_helper.from_array(conv_b, "conv_b"),
        numpy_helper.from_array(w, "dense_w"),
        numpy_helper.from_array(b, "dense_b"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(1.0 / (h * h), np.float32), "inv_hw"),
    ]
    if nan_output not in (None, *contract.OUTPUT_NAMES):
        raise ValueError(f"nan_output must be one of {contract.OUTPUT_NAMES}, got {nan_output!r}")
    out_names = dict(zip(contract.OUTPUT_NAMES, output_names))
    probs_name, cams_name, feat_name = "p_raw", "cams_raw", "feat_raw"
    nodes = [
        helper.make_node("Transpose", ["image"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["nchw"], ["pooled"], kernel_shape=[32, 32], strides=[32, 32]),
        helper.make_node("Conv", ["pooled", "conv_w", "conv_b"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["act"]),
        helper.make_node("Transpose", ["act"], ["act_nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("ReduceMean", ["act_nhwc"], [feat_name], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", [feat_name, "dense_w"], ["mm"]),
        helper.make_node("Add", ["mm", "dense_b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], [probs_name]),
        helper.make_node("MatMul", ["act_nhwc", "dense_w"], ["cam_lin"]),
        helper.make_node("Relu", ["cam_lin"], ["cam_relu"]),
    ]
    if maps == "class score":
        nodes.append(helper.make_node("Mul", ["cam_relu", "inv_hw"], [cams_name]))
    else:
        nodes += [
            helper.make_node("Sub", ["one", probs_name], ["one_minus_p"]),
            helper.make_node("Mul", [probs_name, "one_minus_p"], ["pq"]),
            helper.make_node("Mul", ["pq", "inv_hw"], ["alpha_scale"]),
            helper.make_node("Unsqueeze", ["alpha_scale", "axes12"], ["alpha4"]),
            helper.make_node("Mul", ["cam_relu", "alpha4"], [cams_name]),
        ]
    raw = {contract.PROBS: probs_name, contract.CAMS: cams_name, contract.FEATURES: feat_name}
    for key, final in out_names.items():
        if key != nan_output:
            nodes.append(helper.make_node("Identity", [raw[key]], [final]))
            continue
        # zero = 0 where the film's mean input is above nan_above, else 1; zero / zero is
        # NaN there and 1 elsewhere; the output times it is NaN for those films only.
        rank = {contract.PROBS: 2, contract.CAMS: 4, contract.FEATURES: 2}[key]
        inits += [
            numpy_helper.from_array(np.array(nan_above, np.float32), "nan_above"),
            numpy_helper.from_array(np.array([-1] + [1] * (rank - 1), np.int64), "nan_shape"),
            numpy_helper.from_array(np.array(0.0, np.float32), "zero_f"),
        ]
        nodes += [
            helper.make_node("ReduceMean", ["image"], ["film_mean"], axes=[1, 2, 3], keepdims=0),
            helper.make_node("Greater", ["film_mean", "nan_above"], ["poisoned"]),
            helper.make_node("Where", ["poisoned", "zero_f", "one"], ["zero_where"]),
            helper.make_node("Div", ["zero_where", "zero_where"], ["nan_or_one"]),
            helper.make_node("Reshape", ["nan_or_one", "nan_shape"], ["nan_b"]),
            helper.make_node("Mul", [raw[key], "nan_b"], [final]),
        ]
    probs_name, cams_name, feat_name = output_names
    inits.append(numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"))
    graph = helper.make_graph(
        nodes,
        "tiny_cxr",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", s, s, 3])],
        [
            helper.make_tensor_value_info(probs_name, TensorProto.FLOAT, ["N", c]),
            helper.make_tensor_value_info(cams_name, TensorProto.FLOAT, ["N", h, h, c]),
            helper.make_tensor_value_info(feat_name, TensorProto.FLOAT, ["N", k]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="cxrviewer-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    meta = contract.to_metadata(info) if metadata is None else metadata
    helper.set_model_props(model, meta)
    path = Path(path)
    onnx.save(model, str(path))
    return path
