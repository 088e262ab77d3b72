"""``cxr-train upgrade-maps``: turn a format version 1 file's maps into maps of the class score.

A version 1 file (docs/model-format.md) computes its ``cams`` output as

    cams = ReLU(A·W) · p(1 − p)/(h·w)

— the Grad-CAM map of the *probability*, which fades as the model grows sure of a finding. The
weights needed for the class score's map, ReLU(A·W)/(h·w), are already in the graph: this module
replaces the factor p(1 − p)/(h·w) by the constant 1/(h·w), drops the nodes nothing uses any more,
and sets ``cxr.format_version`` to 2. Nothing else changes: the probabilities and the features
come from the same nodes and weights, bit for bit, and every other metadata key is kept.

The rewrite is checked before the file is written: on a test batch the new maps times p(1 − p)
must equal the old maps, and the probabilities and features must be identical.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from cxrviewer import contract

from .errors import TrainingError

logger = logging.getLogger(__name__)

#: The new maps times p(1 − p) must equal the old ones to this, relative to their peak.
CHECK_TOLERANCE = 1e-5


def _fail(name: str, why: str) -> TrainingError:
    return TrainingError(
        f"{name}: {why}, so its maps cannot be rewritten in place. Export the model again with "
        "`cxr-train export RUN` (or `cxr-train import-weights ...`), which writes maps of the class score."
    )


def upgrade_proto(proto, name: str = "the model"):
    """A copy of ``proto`` (an ``onnx.ModelProto`` of format version 1) with maps of the class score."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    props = {p.key: p.value for p in proto.metadata_props}
    version = json.loads(props.get(contract.PREFIX + "format_version", "null"))
    if version != 1:
        raise TrainingError(f"{name} has model format version {version!r}; only version 1 files need upgrading.")
    g = proto.graph
    producer = {out: node for node in g.node for out in node.output}
    outputs = {o.name: o for o in g.output}
    if contract.CAMS not in outputs:
        raise _fail(name, f"it has no '{contract.CAMS}' output")
    dims = outputs[contract.CAMS].type.tensor_type.shape.dim
    if len(dims) != 4 or not (dims[1].HasField("dim_value") and dims[2].HasField("dim_value")):
        raise _fail(name, "its cams output has no fixed h×w")
    hw = int(dims[1].dim_value) * int(dims[2].dim_value)
    node = producer.get(contract.CAMS)
    while node is not None and node.op_type == "Identity":
        node = producer.get(node.input[0])
    if node is None or node.op_type != "Mul" or len(node.input) != 2:
        raise _fail(name, "its cams are not made by a final multiplication")
    relu_side = [i for i, x in enumerate(node.input) if x in producer and producer[x].op_type == "Relu"]
    if len(relu_side) != 1:
        raise _fail(name, "its cams are not ReLU(A·W) times a factor")
    k = relu_side[0]
    const = f"cxr_maps_class_score_inv_hw_{hw}"
    g.initializer.append(numpy_helper.from_array(np.array(1.0 / hw, dtype=np.float32), const))
    node.input[1 - k] = const
    _prune(g)
    del proto.metadata_props[:]
    props[contract.PREFIX + "format_version"] = json.dumps(contract.FORMAT_VERSION)
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto


def _prune(graph) -> None:
    """Drop the nodes and initializers that no output depends on any more."""
    producer = {out: node for node in graph.node for out in node.output}
    needed: set[str] = set()
    stack = [o.name for o in graph.output]
    keep: set[int] = set()
    while stack:
        name = stack.pop()
        if name in needed:
            continue
        needed.add(name)
        node = producer.get(name)
        if node is not None and id(node) not in keep:
            keep.add(id(node))
            stack.extend(i for i in node.input if i)
    nodes = [n for n in graph.node if id(n) in keep]
    inits = [i for i in graph.initializer if i.name in needed]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(inits)


def check_upgrade(old_path: str | Path, new_path: str | Path, input_size: int, seed: int = 0) -> dict[str, float]:
    """Max differences between the two files on a seeded batch: probabilities and features
    (must be 0) and new maps · p(1 − p) against the old maps (relative to their peak)."""
    import onnxruntime as ort

    batch = np.random.default_rng(seed).normal(size=(2, input_size, input_size, 3)).astype(np.float32)
    names = list(contract.OUTPUT_NAMES)
    old = dict(zip(names, ort.InferenceSession(str(old_path), providers=["CPUExecutionProvider"]).run(
        names, {contract.INPUT_NAME: batch})))
    new = dict(zip(names, ort.InferenceSession(str(new_path), providers=["CPUExecutionProvider"]).run(
        names, {contract.INPUT_NAME: batch})))
    p = old[contract.PROBS]
    rebuilt = new[contract.CAMS] * (p * (1 - p))[:, None, None, :]
    peak = float(np.max(old[contract.CAMS])) or 1.0
    return {
        contract.PROBS: float(np.max(np.abs(new[contract.PROBS] - p))),
        contract.FEATURES: float(np.max(np.abs(new[contract.FEATURES] - old[contract.FEATURES]))),
        contract.CAMS: float(np.max(np.abs(rebuilt - old[contract.CAMS]))) / peak,
    }


def upgrade_maps(model: str | Path, out: str | Path) -> dict[str, float]:
    """Write ``out``: ``model`` (format version 1) with maps of the class score, checked."""
    import onnx

    from cxrviewer.model import Classifier

    src, out = Path(model), Path(out)
    if not src.is_file():
        raise TrainingError(f"Model file not found: {src}.")
    if src.resolve() == out.resolve():
        raise TrainingError(f"--out {out} is the input file: write the upgraded model to another file.")
    info = Classifier.load(src, device="cpu").info
    proto = upgrade_proto(onnx.load(str(src)), src.name)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(proto, str(tmp))
    deltas = check_upgrade(src, tmp, info.input_size)
    if deltas[contract.PROBS] != 0.0 or deltas[contract.FEATURES] != 0.0 or deltas[contract.CAMS] > CHECK_TOLERANCE:
        tmp.unlink()
        raise TrainingError(f"The rewritten {src.name} does not agree with the original ({deltas}); nothing was "
                            "written. Export the model again instead.")
    os.replace(tmp, out)
    Classifier.load(out, device="cpu")  # the app's own validation of the contract
    logger.info("wrote %s: maps of the class score; check %s", out, deltas)
    return deltas
