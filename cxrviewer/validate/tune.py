"""A copy of a model whose thresholds are chosen on a site's own films.

The rule is training's (:func:`cxrviewer.metrics.choose_threshold`, Youden's J): a label's
threshold is chosen only where the site's films hold at least
:data:`~cxrviewer.metrics.MIN_POSITIVES` positive and :data:`~cxrviewer.metrics.MIN_NEGATIVES`
negative films of it; the other labels keep the model's own threshold. Only the metadata
changes (``cxr.thresholds``, ``cxr.trained_on``, ``cxr.model_version``); the weights, and so
every probability, are the original's, and the original file is not touched. The copy records
the validation in ``cxr.trained_on.site_validation`` (docs/model-format.md), which
``cxrviewer info`` and the app's About box show.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .. import contract
from ..errors import MissingExtraError, OutputError, SameFileError
from ..storage import atomic_write_bytes
from ..metrics import MIN_NEGATIVES, MIN_POSITIVES, can_choose_threshold, choose_threshold
from ..model_card import SITE_VALIDATION
from ..types import ModelInfo

METHOD = "youden"
#: The key of ``cxr.trained_on`` that records a site validation.
SITE_KEY = SITE_VALIDATION


def chosen_thresholds(labels, y: np.ndarray, s: np.ndarray, current: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """(every label's threshold, the labels whose threshold was chosen on these films): the
    training rule on each label's films of known label (``y`` 0/1/NaN)."""
    new = {label: float(current[label]) for label in labels}
    chosen = []
    for i, label in enumerate(labels):
        known = ~np.isnan(y[:, i])
        yy, ss = y[known, i], s[known, i]
        if can_choose_threshold(yy, MIN_POSITIVES, MIN_NEGATIVES):
            new[label] = choose_threshold(yy, ss, METHOD)
            chosen.append(label)
    return new, chosen


def site_record(info: ModelInfo, thresholds: Mapping[str, float], chosen: list[str], films: int,
                labels_file: str, aurocs: Mapping[str, float]) -> dict[str, Any]:
    """What ``cxr.trained_on.site_validation`` holds."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "films": int(films),
        "labels_file": labels_file,
        "source_model_version": info.model_version,
        "auroc": {k: round(float(v), 4) for k, v in aurocs.items()},
        "thresholds": {
            "method": METHOD,
            "min_positives": MIN_POSITIVES,
            "min_negatives": MIN_NEGATIVES,
            "chosen": {k: round(float(thresholds[k]), 6) for k in chosen},
            "kept": [k for k in info.labels if k not in chosen],
        },
    }


def tuned_info(info: ModelInfo, thresholds: Mapping[str, float], record: Mapping[str, Any]) -> ModelInfo:
    """``info`` with the site's thresholds and record; labels whose threshold was chosen here are
    no longer listed as keeping the training default (``trained_on.thresholds.defaulted``)."""
    trained_on = json.loads(json.dumps(dict(info.trained_on)))  # a deep, plain copy
    rule = trained_on.get("thresholds")
    chosen = set(record["thresholds"]["chosen"])
    if isinstance(rule, dict) and isinstance(rule.get("defaulted"), list):
        rule["defaulted"] = [k for k in rule["defaulted"] if k not in chosen]
    trained_on[SITE_KEY] = dict(record)
    version = f"{info.model_version}+site.{record['date'].replace('-', '')}"
    return dataclasses.replace(info, thresholds=dict(thresholds), trained_on=trained_on, model_version=version)


def _onnx():
    try:
        import onnx
    except ImportError:
        raise MissingExtraError(
            "Writing a model copy with the site's thresholds needs the onnx package: "
            "pip install 'cxrviewer[validate]'."
        ) from None
    return onnx


def check_target(source: Path, out: Path | str) -> None:
    """Before any film is scored: the copy can be written (the onnx package is here, ``out`` is
    neither the model itself nor a folder, its folder exists)."""
    _onnx()
    out = Path(out)
    try:
        if out.exists() and os.path.samefile(out, source):
            raise SameFileError(f"{out} is the model being validated; write its copy to another file.")
    except OSError:
        pass
    if out.is_dir():
        raise OutputError(f"{out} is a folder; give the model copy a file name ending in .onnx.")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{folder} does not exist; create it, or write the model copy elsewhere.")


def write_tuned_model(source: Path, out: Path | str, info: ModelInfo) -> Path:
    """Write ``source`` with the metadata of ``info`` (thresholds, trained_on, model_version) to
    ``out``, atomically; ``source`` is left as it is."""
    check_target(source, out)
    onnx = _onnx()
    model = onnx.load(str(source))
    values = contract.to_metadata(info)
    changed = {contract.PREFIX + k: values[contract.PREFIX + k] for k in ("thresholds", "trained_on", "model_version")}
    for entry in model.metadata_props:
        if entry.key in changed:
            entry.value = changed.pop(entry.key)
    for key, value in changed.items():  # a key the source lacked: appended, the others keep their order
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    contract.from_metadata({e.key: e.value for e in model.metadata_props}, out.name)  # still a valid card
    return Path(atomic_write_bytes(out, model.SerializeToString()))
