"""Export to the cxrviewer ONNX contract (docs/model-format.md) with tf2onnx.

The export model (:func:`training.model.build_export_model`) is traced through a ``tf.function``
whose input signature is ``image`` [N, S, S, 3] (free batch) and whose outputs are the dict
``probs``, ``cams``, ``features`` — tf2onnx names the ONNX outputs after the dict keys (in
alphabetical order: consumers fetch them by name). The metadata comes from
:func:`cxrviewer.contract.to_metadata`. Every export is checked: ONNX Runtime must agree with
Keras on a test batch, and :meth:`cxrviewer.model.Classifier.load` must accept the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cxrviewer import contract
from cxrviewer.ood import fit_ood
from cxrviewer.types import ModelInfo, OodStats

from .errors import RunError, TrainingError
from .metrics import DEFAULT_THRESHOLD, threshold_record, valid_auroc
from .run import METRICS_FILE, MODEL_FILE, ONNX_FILE, Run

logger = logging.getLogger(__name__)

OPSET = 17
#: ONNX Runtime must match Keras to this (max |Δ|) on the export's own check batch.
CHECK_TOLERANCE = 1e-3
DOC = ("cxrviewer chest X-ray classifier: DenseNet121 + GAP + Dense(sigmoid) with in-graph Grad-CAM of the class score. "
       "Input 'image' [N,S,S,3] standardized film; outputs 'probs' [N,C], 'cams' [N,h,w,C], "
       "'features' [N,1024]. Metadata keys cxr.*; see docs/model-format.md.")


def to_onnx(export_model, input_size: int, opset: int = OPSET):
    """Convert a Keras export model (dict outputs) to an ``onnx.ModelProto``."""
    import tensorflow as tf
    import tf2onnx

    spec = (tf.TensorSpec((None, input_size, input_size, 3), tf.float32, name=contract.INPUT_NAME),)

    @tf.function(input_signature=spec)
    def serve(image):
        return export_model(image, training=False)

    proto, _ = tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset)
    names_in = [i.name for i in proto.graph.input]
    names_out = sorted(o.name for o in proto.graph.output)
    if names_in != [contract.INPUT_NAME] or names_out != sorted(contract.OUTPUT_NAMES):
        raise TrainingError(f"tf2onnx produced inputs {names_in} and outputs {names_out}, not the contract's; "
                            "check the tf2onnx version (≥ 1.17).")
    h = input_size // contract.CAM_STRIDE
    for value in list(proto.graph.input) + list(proto.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[0].ClearField("dim_value")
        dims[0].dim_param = "N"
        if value.name == contract.CAMS:  # tf2onnx leaves h and w symbolic after the MatMul
            for d in (dims[1], dims[2]):
                d.ClearField("dim_param")
                d.dim_value = h
    return proto


def export_onnx(model, info: ModelInfo, out: str | Path, opset: int = OPSET) -> dict[str, float]:
    """Write ``model`` with ``info`` as metadata to ``out``; returns the check's max |Δ| per output."""
    import onnx
    from onnx import helper

    from cxrviewer.model import Classifier

    from .model import build_export_model

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    classes = int(model.output.shape[-1])
    if classes != info.num_classes:
        raise TrainingError(f"The model has {classes} outputs but the metadata names {info.num_classes} labels.")
    export_model = build_export_model(model)
    proto = to_onnx(export_model, info.input_size, opset)
    proto.doc_string = DOC
    helper.set_model_props(proto, contract.to_metadata(info))
    onnx.checker.check_model(proto)
    tmp = out.with_name(out.name + ".tmp")
    onnx.save(proto, str(tmp))
    os.replace(tmp, out)
    clf = Classifier.load(out, device="cpu")  # the app's own validation of the contract
    deltas = compare(export_model, clf, info.input_size)
    worst = max(deltas.values())
    if worst > CHECK_TOLERANCE:
        raise TrainingError(f"The exported model disagrees with Keras (max |Δ| {worst:.2e}); "
                            "do not use it. Please report this with your tf2onnx/onnxruntime versions.")
    logger.info("exported %s (%.1f MB); ONNX Runtime vs Keras max |Δ|: %s", out.name, out.stat().st_size / 1e6,
                ", ".join(f"{k} {v:.1e}" for k, v in deltas.items()))
    return deltas


def compare(export_model, classifier, input_size: int, batch: np.ndarray | None = None) -> dict[str, float]:
    """Max |Δ| of every output between Keras and ONNX Runtime on ``batch`` (default: 2 seeded inputs)."""
    if batch is None:
        batch = np.random.default_rng(0).normal(size=(2, input_size, input_size, 3)).astype(np.float32)
    keras_out = {k: np.asarray(v) for k, v in export_model(batch, training=False).items()}
    raw = classifier.session.run(list(contract.OUTPUT_NAMES), {contract.INPUT_NAME: batch})
    return {k: float(np.max(np.abs(keras_out[k] - v))) for k, v in zip(contract.OUTPUT_NAMES, raw)}


def ood_stats(export_model, run: Run, sample: int = 2000, rank: int = 32, percentile: float = 99.0, seed: int = 0) -> OodStats | None:
    """PPCA statistics of the pooled features of the training films (threshold on validation)."""
    from .pipeline import film_dataset, predict

    splits = run.splits()
    train = splits["train"]
    if len(train) < 2:
        logger.warning("fewer than two training films: the model carries no OOD statistics")
        return None
    if sample and len(train) > sample:
        idx = np.random.default_rng(seed).choice(len(train), size=sample, replace=False)
        train = [train[i] for i in sorted(idx)]
    feats = {}
    for name, records in (("train", train), ("valid", splits["valid"])):
        if records:
            out, _, _ = predict(export_model, film_dataset(records, run.input_size), run.mean, run.std, run.input_size)
            feats[name] = out[contract.FEATURES]
    stats = fit_ood(feats["train"], feats.get("valid"), rank=rank, percentile=percentile)
    logger.info("OOD statistics from %d training films (rank %d), threshold %.3g at the %g-th percentile of %s",
                len(feats["train"]), len(stats.variances), stats.threshold, percentile,
                "validation" if "valid" in feats else "training")
    return stats


def run_model_info(run: Run, metrics: Mapping[str, Any] | None, ood: OodStats | None, model_version: str | None = None) -> ModelInfo:
    labels = run.labels
    thresholds = dict(metrics["thresholds"]) if metrics else {c: DEFAULT_THRESHOLD for c in labels}
    return ModelInfo(
        labels=labels,
        input_size=run.input_size,
        mean=run.mean,
        std=run.std,
        thresholds=thresholds,
        model_version=model_version or run.info["model_version"],
        demo=bool(run.info.get("demo", False)),
        trained_on=_with_threshold_rule(run.info.get("trained_on", {}), metrics, labels),
        metrics=valid_auroc(dict(metrics)) if metrics else {},
        ood=ood,
        format_version=contract.FORMAT_VERSION,  # cams of the class score (training.model.GradCam)
    )


def _with_threshold_rule(trained_on: Mapping[str, Any], metrics: Mapping[str, Any] | None, labels) -> dict[str, Any]:
    """``trained_on`` plus how the thresholds were set (``thresholds``: the rule and the labels
    that kept the default), which the model card, ``cxrviewer info`` and the app show."""
    if metrics and "threshold_rule" in metrics:
        rule = dict(metrics["threshold_rule"])
    elif metrics:  # metrics.json from before the rule: say nothing we do not know
        return dict(trained_on)
    else:
        rule = threshold_record(labels, None, "youden")
    return {**dict(trained_on), "thresholds": rule}


def export_run(run_dir: str | Path, out: str | Path | None = None, model_version: str | None = None,
               opset: int = OPSET, ood_sample: int = 2000, model=None) -> Path:
    """``RUN/model.onnx`` (or ``out``) from ``RUN/model.keras``, ``run.json`` and ``metrics.json``."""
    import json

    from .model import build_export_model, load_model

    run = Run.open(run_dir)
    if model is None:
        model = load_model(run.require(MODEL_FILE, "train first with `cxr-train fit`."))
    metrics = None
    mf = run.file(METRICS_FILE)
    if mf.is_file():
        metrics = json.loads(mf.read_text(encoding="utf-8"))
        if tuple(metrics.get("labels", ())) != run.labels:
            raise RunError(f"{mf} belongs to other labels; run `cxr-train evaluate {run.path}` again.")
    else:
        logger.warning("%s has no %s: thresholds default to 0.5 and the model carries no metrics "
                       "(run `cxr-train evaluate %s` first)", run.path, METRICS_FILE, run.path)
    ood = ood_stats(build_export_model(model), run, sample=ood_sample)
    info = run_model_info(run, metrics, ood, model_version)
    target = Path(out) if out else run.file(ONNX_FILE)
    export_onnx(model, info, target, opset)
    return target
