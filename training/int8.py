"""int8 copies of exported models: ONNX Runtime static quantization, accepted only after a parity check.

``cxr-train export RUN --int8`` writes, next to the fp32 model, ``model.int8.onnx``:

1. **Pre-processing** (``onnxruntime.quantization.quant_pre_process``, as ONNX Runtime's
   quantization guide recommends): ORT graph optimization and ONNX shape inference. Symbolic shape
   inference is skipped (the guide: it is for transformers; ONNX shape inference suits CNNs).
2. **Static quantization** (``quantize_static``; the guide: static for CNNs) in the QDQ format with
   int8 activations and per-channel int8 weights (S8S8 + QDQ, the guide's default and first
   choice on CPU), MinMax calibration on up to ``--calibration-films`` films of the run's
   **training** split, read and standardized exactly as the app does (``read_film`` →
   ``cxrviewer.preprocess.model_input`` with the run's mean and std).
   Only the **convolutions of the DenseNet121 backbone** are quantized: every node downstream of the
   last feature map (the pooled ``features``, the head's Gemm and sigmoid, the in-graph Grad-CAM)
   stays float32, so ``probs`` are not rounded to 8-bit steps (which would tie scores and move
   AUROC), and the inputs and outputs stay float32 tensors with the contract's names and shapes.
   Quantizing the backbone's batch-norm Mul/Add, ReLU, Concat and pooling nodes as well was both
   slower and ten times less accurate on the 320-px demo run (max |Δprob| 0.025 against 0.0026,
   one thread 15.6 against 18–19.5 films/s; docs/training.md).
3. **Metadata**: every ``metadata_props`` entry of the fp32 model, plus ``cxr.precision = "int8"``.
4. **Parity**: the fp32 and int8 models score the same held-out films (the test split, else the
   validation split); the per-label AUROC of each is computed on the labels that have both
   positives and negatives there, and the int8 file is accepted only if the mean AUROC drop is at
   most ``--max-auroc-drop`` (0.005). Max |Δprob| and the one-thread speed of both (films/s, batch
   1, the median of a few side-by-side repeats) are reported too. Everything goes to
   ``RUN/int8.json`` and the ``int8`` section of ``RUN/report.md``, accepted or not; a rejected
   file is deleted and :class:`Int8RejectedError` says why.

This module needs ONNX Runtime and ``onnx`` only (no TensorFlow).
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrviewer import contract
from cxrviewer.errors import CxrError
from cxrviewer.io import read_film
from cxrviewer.preprocess import model_input

from .data import Record
from .errors import Int8RejectedError, RunError, TrainingError
from .metrics import auroc
from .report import update_int8_section
from .run import INT8_JSON, REPORT_FILE, Run, write_json

logger = logging.getLogger(__name__)

DEFAULT_CALIBRATION_FILMS = 200
#: Accept the int8 model only if its mean AUROC on held-out films is at most this much lower.
MAX_AUROC_DROP = 0.005
#: Only these node types are quantized (and only upstream of the feature map).
QUANTIZED_OP_TYPES = ("Conv",)
CALIBRATION_BATCH = 8
PARITY_BATCH = 16
#: Speed: held-out films timed one at a time on a one-thread session, repeats interleaved.
SPEED_FILMS = 8
SPEED_REPEATS = 5
POOLING_OPS = ("GlobalAveragePool", "ReduceMean")


def default_int8_path(fp32_path: str | os.PathLike[str]) -> Path:
    """``model.onnx`` → ``model.int8.onnx``, next to it."""
    p = Path(fp32_path)
    return p.with_name(p.stem + ".int8" + (p.suffix or ".onnx"))


# ----------------------------------------------------------------------------- films
def _tensors(records: Sequence[Record], size: int, mean: float, std: float) -> Iterator[tuple[Record, np.ndarray]]:
    """(record, (S, S, 3) input) per readable film: the app's reader and preprocessing."""
    for r in records:
        try:
            pixels = read_film(r.path).pixels
        except (CxrError, OSError) as exc:
            logger.warning("skipping %s: %s", Path(r.path).name, exc)
            continue
        yield r, model_input(pixels, size, mean, std)


def _batches(items: Iterator[tuple[Record, np.ndarray]], n: int) -> Iterator[tuple[list[Record], np.ndarray]]:
    recs: list[Record] = []
    xs: list[np.ndarray] = []
    for r, x in items:
        recs.append(r)
        xs.append(x)
        if len(xs) == n:
            yield recs, np.stack(xs)
            recs, xs = [], []
    if xs:
        yield recs, np.stack(xs)


def calibration_records(run: Run, films: int, seed: int = 0) -> list[Record]:
    """Up to ``films`` training films (a seeded sample when there are more)."""
    train = run.splits()["train"]
    if not train:
        raise RunError(f"{run.path} has no training films to calibrate the int8 model on; "
                       "it needs the run made by `cxr-train fit` (RUN/splits.csv).")
    if len(train) > films:
        idx = np.random.default_rng(seed).choice(len(train), size=films, replace=False)
        train = [train[i] for i in sorted(idx)]
    return train


def held_out(run: Run) -> tuple[str, list[Record]]:
    """The films the parity check runs on: the test split, else the validation split."""
    splits = run.splits()
    for name in ("test", "valid"):
        if splits[name]:
            return name, splits[name]
    raise RunError(f"{run.path} has no test or validation films to check an int8 model on. "
                   "Train with --val-frac or --test-frac above 0 (or a --valid-csv) and export again.")


# ----------------------------------------------------------------------------- quantization
def backbone_nodes(model, op_types: Sequence[str] = QUANTIZED_OP_TYPES) -> list[str]:
    """Names of the ``op_types`` nodes upstream of the last feature map (the input of the pooling
    that produces ``features``); everything after it — head and Grad-CAM — is left float."""
    producer = {out: n for n in model.graph.node for out in n.output}
    node = producer.get(contract.FEATURES)
    while node is not None and node.op_type not in POOLING_OPS:
        node = producer.get(node.input[0]) if node.input else None
    if node is None:
        raise TrainingError(f"Cannot find the pooling that produces {contract.FEATURES!r} in the model: "
                            "it does not look like a `cxr-train export` DenseNet121. Export it again.")
    seen: set[str] = set()
    stack = [node.input[0]]
    while stack:
        n = producer.get(stack.pop())
        if n is None or n.name in seen:
            continue
        seen.add(n.name)
        stack.extend(n.input)
    names = [n.name for n in model.graph.node if n.name in seen and n.op_type in op_types]
    if not names:
        raise TrainingError("The model has no convolutions before its feature map: nothing to quantize.")
    return names


def quantize(fp32_path: Path, out: Path, batches: Iterator[np.ndarray]) -> dict[str, Any]:
    """Write the int8 QDQ model of ``fp32_path`` to ``out`` (metadata copied, ``cxr.precision``
    added); ``batches`` are calibration inputs. Returns what was done, for the report."""
    import onnx
    import onnxruntime
    from onnx import helper
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quant_pre_process,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.films = 0

        def get_next(self):
            batch = next(batches, None)
            if batch is None:
                return None
            self.films += len(batch)
            return {contract.INPUT_NAME: batch}

    fp32 = onnx.load(str(fp32_path))
    props = {p.key: p.value for p in fp32.metadata_props}
    with tempfile.TemporaryDirectory(prefix="cxr-int8-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        nodes = backbone_nodes(onnx.load(str(pre)))
        reader = Reader()
        t0 = time.perf_counter()
        quantize_static(
            str(pre), str(out), reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZED_OP_TYPES),
            nodes_to_quantize=nodes,
            calibrate_method=CalibrationMethod.MinMax,
        )
        seconds = time.perf_counter() - t0
    if reader.films == 0:
        raise RunError("None of the training films could be read to calibrate the int8 model; "
                       "check that the films listed in RUN/splits.csv are still on disk.")
    q = onnx.load(str(out))
    # quant_pre_process's ORT optimizer declares every ORT domain; keep the ones the graph uses.
    used = {n.domain for n in q.graph.node} | {""}
    keep = [o for o in q.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del q.opset_import[:]
    q.opset_import.extend(keep)
    del q.metadata_props[:]
    helper.set_model_props(q, {**props, contract.PRECISION_KEY: json.dumps("int8")})
    q.doc_string = (fp32.doc_string + " " if fp32.doc_string else "") + (
        "int8: ONNX Runtime static quantization (QDQ, S8S8, per-channel weights) of the backbone's "
        "convolutions; inputs and outputs float32.")
    onnx.save(q, str(out))
    return {
        "tool": f"onnxruntime {onnxruntime.__version__} quantization.quantize_static after quant_pre_process",
        "format": "QDQ",
        "activations": "int8 (QInt8)",
        "weights": "int8 (QInt8), per channel",
        "calibration_method": "MinMax",
        "quantized_op_types": list(QUANTIZED_OP_TYPES),
        "quantized_nodes": len(nodes),
        "calibration_films": reader.films,
        "seconds": round(seconds, 1),
    }


# ----------------------------------------------------------------------------- parity and speed
def parity(fp32, int8, records: Sequence[Record], labels: Sequence[str], size: int, mean: float, std: float) -> dict[str, Any]:
    """Both models on the same films: per-label AUROC, |Δprob|, relative |Δ| of cams and features."""
    probs: dict[str, list[np.ndarray]] = {"fp32": [], "int8": []}
    y: list[np.ndarray] = []
    worst = {"cams": 0.0, "features": 0.0}
    scale = {"cams": 0.0, "features": 0.0}
    flips = ood_flips = 0
    thresholds = np.array([fp32.info.thresholds[c] for c in labels], dtype=np.float32)
    for recs, x in _batches(_tensors(records, size, mean, std), PARITY_BATCH):
        a, b = fp32.run(x), int8.run(x)
        probs["fp32"].append(a.probs)
        probs["int8"].append(b.probs)
        y.append(np.array([r.values for r in recs], dtype=np.float64))
        for k in worst:
            worst[k] = max(worst[k], float(np.max(np.abs(getattr(a, k) - getattr(b, k)))))
            scale[k] = max(scale[k], float(np.max(np.abs(getattr(a, k)))))
        flips += int(np.sum((a.probs >= thresholds) != (b.probs >= thresholds)))
        pa, pb = fp32.predictions(a), int8.predictions(b)
        ood_flips += sum(p.ood_flag != q.ood_flag for p, q in zip(pa, pb))
    if not y:
        raise RunError("None of the held-out films could be read for the int8 parity check; "
                       "check that the films listed in RUN/splits.csv are still on disk.")
    pf, pi, yy = np.concatenate(probs["fp32"]), np.concatenate(probs["int8"]), np.concatenate(y)
    auc_f = {c: auroc(yy[:, i], pf[:, i]) for i, c in enumerate(labels)}
    auc_i = {c: auroc(yy[:, i], pi[:, i]) for i, c in enumerate(labels)}
    scored = [c for c in labels if not math.isnan(auc_f[c])]
    positives = {c: int(np.sum(yy[:, i] == 1.0)) for i, c in enumerate(labels)}
    drop = float(np.mean([auc_f[c] - auc_i[c] for c in scored])) if scored else None
    d = np.abs(pf - pi)
    return {
        "films": int(yy.shape[0]),
        "labels_scored": scored,
        "labels_omitted": [c for c in labels if c not in scored],
        "positives": positives,
        "auroc_fp32": {c: auc_f[c] for c in scored},
        "auroc_int8": {c: auc_i[c] for c in scored},
        "mean_auroc_fp32": float(np.mean([auc_f[c] for c in scored])) if scored else None,
        "mean_auroc_int8": float(np.mean([auc_i[c] for c in scored])) if scored else None,
        "mean_auroc_drop": drop,
        "max_abs_delta_prob": float(d.max()),
        "mean_abs_delta_prob": float(d.mean()),
        "cams_max_delta_relative": worst["cams"] / scale["cams"] if scale["cams"] > 0 else 0.0,
        "features_max_delta_relative": worst["features"] / scale["features"] if scale["features"] > 0 else 0.0,
        "threshold_decisions_changed": flips,
        "threshold_decisions": int(d.size),
        "ood_flags_changed": int(ood_flips),
    }


def speed(fp32_path: Path, int8_path: Path, inputs: Sequence[np.ndarray], repeats: int = SPEED_REPEATS) -> dict[str, Any]:
    """Films/s of each model on a one-thread CPU session, batch 1 (the app's CPU default), the
    median of ``repeats`` rounds; the two models take turns so both see the same machine state."""
    from cxrviewer.model import Classifier

    models = {k: Classifier.load(p, device="cpu", threads=1) for k, p in (("fp32", fp32_path), ("int8", int8_path))}
    xs = [np.ascontiguousarray(x[np.newaxis]) for x in inputs]
    rates: dict[str, list[float]] = {k: [] for k in models}
    for clf in models.values():  # warm-up: the first run allocates
        clf.run(xs[0])
    for _ in range(repeats):
        for k, clf in models.items():
            t0 = time.perf_counter()
            for x in xs:
                clf.run(x)
            rates[k].append(len(xs) / (time.perf_counter() - t0))
    med = {k: float(np.median(v)) for k, v in rates.items()}
    return {
        "threads": 1, "batch": 1, "films": len(xs), "repeats": repeats, "cpu_count": os.cpu_count(),
        "fp32_films_per_s": med["fp32"], "int8_films_per_s": med["int8"],
        "speedup": med["int8"] / med["fp32"] if med["fp32"] > 0 else None,
    }


# ----------------------------------------------------------------------------- the run
def quantize_run(run_dir: str | os.PathLike[str], fp32_path: str | os.PathLike[str] | None = None,
                 out: str | os.PathLike[str] | None = None, calibration_films: int = DEFAULT_CALIBRATION_FILMS,
                 max_auroc_drop: float = MAX_AUROC_DROP, seed: int = 0) -> dict[str, Any]:
    """Quantize ``fp32_path`` (default ``RUN/model.onnx``) to ``out`` (default ``model.int8.onnx``
    next to it), check parity, write ``RUN/int8.json`` and the report section. Returns the result;
    raises :class:`Int8RejectedError` (after writing the report) when parity fails."""
    from cxrviewer.model import Classifier

    from .run import ONNX_FILE

    run = Run.open(run_dir)
    fp32_path = Path(fp32_path) if fp32_path else run.require(ONNX_FILE, f"export it first with `cxr-train export {run.path}`.")
    out = Path(out) if out else default_int8_path(fp32_path)
    if out.resolve() == fp32_path.resolve():
        raise TrainingError(f"--int8-out {out} is the fp32 model itself; choose another file name.")
    if calibration_films < 1:
        raise TrainingError("--calibration-films must be at least 1.")
    fp32 = Classifier.load(fp32_path, device="cpu")
    info = fp32.info
    if info.precision != "fp32":
        raise TrainingError(f"{fp32_path.name} is already {info.precision}: quantize the fp32 export.")
    if info.labels != run.labels or info.input_size != run.input_size or not (
            math.isclose(info.mean, run.mean, rel_tol=1e-6) and math.isclose(info.std, run.std, rel_tol=1e-6)):
        raise RunError(f"{fp32_path.name} was not exported from {run.path} (labels, size or statistics differ); "
                       f"run `cxr-train export {run.path}` first.")
    size, mean, std = run.input_size, run.mean, run.std
    cal = calibration_records(run, calibration_films, seed)
    split, held = held_out(run)
    logger.info("int8: calibrating on %d training films, checking on %d %s films", len(cal), len(held), split)

    out.parent.mkdir(parents=True, exist_ok=True)
    candidate = out.with_name(out.stem + ".candidate" + out.suffix)
    try:
        batches = (x for _, x in _batches(_tensors(cal, size, mean, std), CALIBRATION_BATCH))
        quant = quantize(fp32_path, candidate, batches)
        int8 = Classifier.load(candidate, device="cpu")  # the app's own check of the contract
        types = {o.name: o.type for o in int8.session.get_outputs()}
        if any(types.get(n) != "tensor(float)" for n in contract.OUTPUT_NAMES) or int8.info.precision != "int8":
            raise TrainingError(f"The quantized model's outputs are {types}, not float32; please report this "
                                "with your onnxruntime version. The fp32 model is unaffected.")
        par = parity(fp32, int8, held, run.labels, size, mean, std)
        timing_inputs = [x for _, x in _tensors(held[:SPEED_FILMS], size, mean, std)]
        spd = speed(fp32_path, candidate, timing_inputs)
        drop = par["mean_auroc_drop"]
        accepted = drop is not None and drop <= max_auroc_drop
        if drop is None:
            detail = (f"no label has both positive and negative films among the {par['films']} {split} films, "
                      "so AUROC parity cannot be checked")
        else:
            detail = (f"mean AUROC drop {drop:+.4f} over {len(par['labels_scored'])} labels on {par['films']} "
                      f"{split} films ({'≤' if accepted else '>'} the limit {max_auroc_drop:g})")
        verdict = f"{'accepted' if accepted else 'rejected'}: {detail}"
        result = {
            "accepted": accepted,
            "verdict": verdict,
            "detail": detail,
            "model": str(out),
            "fp32_model": str(fp32_path),
            "max_auroc_drop": max_auroc_drop,
            "held_out_split": split,
            "quantization": quant,
            "parity": par,
            "speed": spd,
            "size_mb": {"fp32": round(fp32_path.stat().st_size / 1e6, 2), "int8": round(candidate.stat().st_size / 1e6, 2)},
        }
        del int8
        if accepted:
            os.replace(candidate, out)
        else:
            candidate.unlink(missing_ok=True)
            if out.exists():  # an older int8 file no longer matches this fp32 export
                out.unlink()
                result["removed_previous"] = True
    except BaseException:
        candidate.unlink(missing_ok=True)
        raise
    write_json(run.file(INT8_JSON), result)
    update_int8_section(run, result)
    logger.info("int8: %s; max |Δprob| %.4f; one thread %.1f → %.1f films/s", verdict, par["max_abs_delta_prob"],
                spd["fp32_films_per_s"], spd["int8_films_per_s"])
    if not accepted:
        raise Int8RejectedError(
            f"The int8 model was {verdict}; it was not kept. The fp32 model {fp32_path} is unaffected; "
            f"see {run.file(REPORT_FILE)}. Try more --calibration-films, or a larger held-out split, or use the fp32 model."
        )
    return result
