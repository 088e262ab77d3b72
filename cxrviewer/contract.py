"""The model file contract: tensor names and the ``metadata_props`` keys (docs/model-format.md).

Both sides use this module: ``training`` writes metadata with :func:`to_metadata`, the app reads
it with :func:`from_metadata`. Values are JSON-encoded strings.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from .errors import ModelError
from .types import ANY, APPLICABLE_KEYS, CROPS, Applicability, ModelInfo, OodStats

#: The newest model format this module reads and writes (docs/model-format.md). Version 2 files
#: carry maps of the class score (the logit before the sigmoid); version 1 files, maps of the
#: probability, which carry a factor p(1 − p). Both are read; their maps are shown as they are.
FORMAT_VERSION = 2

INPUT_NAME = "image"
PROBS = "probs"
CAMS = "cams"
FEATURES = "features"
OUTPUT_NAMES = (PROBS, CAMS, FEATURES)

#: The last feature map of Keras' DenseNet121: Grad-CAM is taken here.
CAM_LAYER = "relu"
#: DenseNet121 downsamples by 32: cams are (S/32)×(S/32).
CAM_STRIDE = 32

PREFIX = "cxr."
KEYS = (
    "format_version",
    "labels",
    "input_size",
    "layout",
    "mean",
    "std",
    "thresholds",
    "model_version",
    "demo",
    "trained_on",
    "metrics",
)
OPTIONAL_KEYS = ("ood", "precision", "applicable", "crop", "forbid_precisions")

#: ``cxr.precision``: the numeric precision of the weights and activations. Absent means fp32;
#: ``int8`` is an ONNX Runtime static-quantized (QDQ) copy of an fp32 export whose inputs and
#: outputs are still float32 (``cxr-train export RUN --int8``).
PRECISIONS = ("fp32", "int8")
PRECISION_KEY = PREFIX + "precision"
#: ``cxr.forbid_precisions``: precisions the model must not be run at (its maker found them
#: inaccurate for it); fp32 is what every model runs at and cannot be forbidden.
FORBIDDABLE_PRECISIONS = ("bf16", "int8")

_FIX = (
    "Export the model with `cxr-train export RUN` (or `cxr-train import-weights ...`), "
    "which writes every required key; see docs/model-format.md."
)


def to_metadata(info: ModelInfo) -> dict[str, str]:
    """The ``metadata_props`` entries for ``info`` (key → JSON string)."""
    values: dict[str, Any] = {
        "format_version": info.format_version,
        "labels": list(info.labels),
        "input_size": info.input_size,
        "layout": info.layout,
        "mean": info.mean,
        "std": info.std,
        "thresholds": {k: float(info.thresholds[k]) for k in info.labels},
        "model_version": info.model_version,
        "demo": bool(info.demo),
        "trained_on": dict(info.trained_on),
        "metrics": {k: float(v) for k, v in info.metrics.items()},
    }
    if info.precision != "fp32":  # absent means fp32: fp32 files stay as they always were
        values["precision"] = info.precision
    if info.crop != "none":  # absent means the whole film: existing files stay as they were
        values["crop"] = info.crop
    if info.applicable != Applicability():  # absent means the default rule
        values["applicable"] = info.applicable.as_dict()
    if info.forbid_precisions:
        values["forbid_precisions"] = list(info.forbid_precisions)
    if info.ood is not None:
        o = info.ood
        values["ood"] = {
            "mean": list(o.mean),
            "components": [list(c) for c in o.components],
            "variances": list(o.variances),
            "residual_variance": o.residual_variance,
            "threshold": o.threshold,
            "percentile": o.percentile,
        }
    return {PREFIX + k: json.dumps(v, allow_nan=False) for k, v in values.items()}


#: The sane range of ``cxr.std`` (exclusive): the film's [0, 1] or 0-255 values divided by it.
STD_RANGE = (1e-6, 1e3)


def from_metadata(props: Mapping[str, str], source: str = "the model") -> ModelInfo:
    """Parse and validate ``metadata_props``; raise one :class:`ModelError` listing every problem."""
    missing = [PREFIX + k for k in KEYS if PREFIX + k not in props]
    if missing:
        raise ModelError(
            f"{source} is not a cxrviewer model: its metadata lacks {', '.join(missing)}. {_FIX}"
        )
    raw: dict[str, Any] = {}
    for key in KEYS + OPTIONAL_KEYS:
        if PREFIX + key not in props:
            continue
        try:
            raw[key] = json.loads(props[PREFIX + key])
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{source}: metadata {PREFIX}{key} is not valid JSON ({exc}). {_FIX}") from None

    problems: list[str] = []
    version = raw["format_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        # JSON's true is not a version, though Python counts it as the integer 1
        raise ModelError(
            f"{source}: metadata {PREFIX}format_version must be an integer (this cxrviewer reads "
            f"version {FORMAT_VERSION}), got {json.dumps(version)}. {_FIX}"
        )
    if version > FORMAT_VERSION or version < 1:
        raise ModelError(
            f"{source} uses model format version {version!r}; this cxrviewer reads version "
            f"{FORMAT_VERSION}. Upgrade cxrviewer or re-export the model."
        )
    labels = raw["labels"]
    if not (isinstance(labels, list) and labels and all(isinstance(x, str) and x for x in labels)):
        problems.append("cxr.labels must be a non-empty list of names")
        labels = []
    elif len(set(labels)) != len(labels):
        problems.append("cxr.labels has duplicate names")
    size = raw["input_size"]
    if not isinstance(size, int) or size < 32:
        problems.append(f"cxr.input_size must be an integer ≥ 32, got {size!r}")
    if raw["layout"] != "NHWC":
        problems.append(f"cxr.layout must be \"NHWC\", got {raw['layout']!r}")
    mean, std = raw["mean"], raw["std"]
    if not _finite(mean):
        problems.append(f"cxr.mean must be a number, got {mean!r}")
    if not _finite(std) or std <= 0:
        problems.append(f"cxr.std must be a positive number, got {std!r}")
    elif not STD_RANGE[0] < std < STD_RANGE[1]:
        # the input is (x - mean) / std: a std of 1e-30 or 1e300 makes it inf or 0 for every film
        problems.append(f"cxr.std must lie between {STD_RANGE[0]:g} and {STD_RANGE[1]:g}, got {std!r}")
    thresholds = raw["thresholds"]
    if isinstance(thresholds, list) and len(thresholds) == len(labels):
        thresholds = dict(zip(labels, thresholds))
    if not isinstance(thresholds, dict) or set(thresholds) != set(labels):
        problems.append("cxr.thresholds must give one threshold per label")
        thresholds = {}
    elif not all(_finite(t) and 0.0 <= t <= 1.0 for t in thresholds.values()):
        problems.append("cxr.thresholds must lie in [0, 1]")
    if not isinstance(raw["model_version"], str) or not raw["model_version"]:
        problems.append("cxr.model_version must be a non-empty string")
    if not isinstance(raw["demo"], bool):
        problems.append("cxr.demo must be true or false")
    if not isinstance(raw["trained_on"], dict):
        problems.append("cxr.trained_on must be an object")
    metrics = raw["metrics"]
    if not isinstance(metrics, dict) or not all(_finite(v) for v in metrics.values()):
        problems.append("cxr.metrics must map labels to numbers")
        metrics = {}
    ood = None
    if "ood" in raw and raw["ood"] is not None:
        try:
            ood = _parse_ood(raw["ood"])
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(f"cxr.ood is malformed ({exc})")
    precision = raw.get("precision", "fp32")
    if precision not in PRECISIONS:
        problems.append(
            f"cxr.precision must be one of {', '.join(json.dumps(p) for p in PRECISIONS)} (absent means \"fp32\"), "
            f"got {precision!r}"
        )
    crop = raw.get("crop", "none")
    if not isinstance(crop, str) or crop not in CROPS:
        problems.append(
            f"cxr.crop must be one of {', '.join(json.dumps(c) for c in CROPS)} (absent means \"none\": the "
            f"whole film), got {crop!r}; this cxrviewer may be older than the file: upgrade it"
        )
        crop = "none"
    applicable = Applicability()
    if raw.get("applicable") is not None:
        try:
            applicable = parse_applicable(raw["applicable"])
        except (TypeError, ValueError) as exc:
            problems.append(f"cxr.applicable is malformed ({exc})")
    forbid = raw.get("forbid_precisions", [])
    if not (isinstance(forbid, list) and all(isinstance(p, str) and p in FORBIDDABLE_PRECISIONS for p in forbid)):
        problems.append(
            f"cxr.forbid_precisions must be a list of {', '.join(json.dumps(p) for p in FORBIDDABLE_PRECISIONS)}, "
            f"got {forbid!r}"
        )
        forbid = []
    if problems:
        raise ModelError(f"{source} has invalid metadata: {'; '.join(problems)}. {_FIX}")
    return ModelInfo(
        labels=tuple(labels),
        input_size=int(size),
        mean=float(mean),
        std=float(std),
        thresholds={k: float(v) for k, v in thresholds.items()},
        model_version=raw["model_version"],
        demo=raw["demo"],
        trained_on=raw["trained_on"],
        metrics={k: float(v) for k, v in metrics.items()},
        layout="NHWC",
        format_version=version,
        ood=ood,
        precision=precision,
        applicable=applicable,
        crop=crop,
        forbid_precisions=tuple(dict.fromkeys(forbid)),
    )


def parse_applicable(d: Any) -> Applicability:
    """``cxr.applicable``: an object whose keys (each optional; absent = the default) list the
    accepted header values, or say ``"any"``."""
    if not isinstance(d, dict):
        raise TypeError("it must be an object")
    unknown = sorted(set(d) - set(APPLICABLE_KEYS))
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; use {', '.join(APPLICABLE_KEYS)}")
    values: dict[str, Any] = {}
    for key, value in d.items():
        if value == ANY:
            values[key] = ANY
        elif isinstance(value, list) and value and all(isinstance(v, str) and v.strip() for v in value):
            values[key] = tuple(value)
        else:
            raise ValueError(f"{key} must be a list of header values (e.g. [\"PA\", \"AP\"]) or \"any\"")
    return Applicability(**values)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _parse_ood(d: Mapping[str, Any]) -> OodStats:
    mean = tuple(float(x) for x in d["mean"])
    comps = tuple(tuple(float(x) for x in row) for row in d["components"])
    variances = tuple(float(x) for x in d["variances"])
    if any(len(row) != len(mean) for row in comps) or len(variances) != len(comps):
        raise ValueError("components/variances do not match the feature size")
    residual, threshold, percentile = (float(d[k]) for k in ("residual_variance", "threshold", "percentile"))
    # JSON readers accept NaN and Infinity. A NaN anywhere makes every score NaN, and NaN is
    # never above the threshold; an infinite threshold is never exceeded: either way the guard
    # would be silently off while the model claims to have one.
    numbers = (*mean, *(x for row in comps for x in row), *variances, residual, threshold, percentile)
    if not all(math.isfinite(x) for x in numbers):
        raise ValueError("it holds NaN or infinite numbers, which would switch the guard off")
    if any(v <= 0 for v in variances) or residual <= 0:
        raise ValueError("variances must be positive")
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must lie in (0, 100], got {percentile!r}")
    return OodStats(
        mean=mean,
        components=comps,
        variances=variances,
        residual_variance=residual,
        threshold=threshold,
        percentile=percentile,
    )
