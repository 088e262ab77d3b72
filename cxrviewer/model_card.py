"""The model card: what a loaded model says about itself, with the libraries it runs on.

Shown by ``cxrviewer info`` and by the app's About box; it lives in the core so that neither
front end imports the other.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from . import __version__


def model_card(clf) -> dict:
    """A :class:`~cxrviewer.model.Classifier`'s metadata, provider and library versions."""
    import cv2
    import numpy
    import onnxruntime
    import pydicom

    info = clf.info
    return {
        "model": str(clf.path),
        "model_version": info.model_version,
        "demo": info.demo,
        "labels": list(info.labels),
        "input_size": info.input_size,
        "layout": info.layout,
        "mean": info.mean,
        "std": info.std,
        "thresholds": dict(info.thresholds),
        "default_thresholds": sorted(defaulted_thresholds(info.trained_on)),
        "trained_on": dict(info.trained_on),
        "metrics": dict(info.metrics),
        "ood_guard": info.ood is not None,
        "precision": info.precision,
        # which part of the film it reads (cxr.crop): "none" the whole film, "center" its centred square
        "crop": info.crop,
        "format_version": info.format_version,
        "maps": info.maps_of,
        # which DICOM films it reads (cxr.applicable; the frontal chest default when absent)
        "applicable": info.applicable.as_dict(),
        "provider": clf.provider,
        "engine": {"backend": clf.engine.backend, "device": clf.engine.device, "precision": clf.engine.precision,
                   "name": str(clf.engine), "file": str(clf.weights_path), "how": clf.choice.how,
                   "reason": clf.choice.reason, "lines": clf.choice.lines()},
        "versions": {
            "cxrviewer": __version__,
            "onnxruntime": onnxruntime.__version__,
            "numpy": numpy.__version__,
            "pydicom": pydicom.__version__,
            "opencv": cv2.__version__,
            "python": sys.version.split()[0],
            **({"openvino": ov} if (ov := _openvino_version()) else {}),
        },
    }


def _openvino_version() -> str | None:
    from .inference.machine import this_machine

    return this_machine().openvino


def defaulted_thresholds(trained_on: Mapping[str, Any]) -> frozenset[str]:
    """The labels whose threshold is the default, not chosen from validation films, as the
    training export records it (``trained_on.thresholds.defaulted``; see training.metrics)."""
    rule = trained_on.get("thresholds") if isinstance(trained_on, Mapping) else None
    names = rule.get("defaulted") if isinstance(rule, Mapping) else None
    return frozenset(str(n) for n in names) if isinstance(names, (list, tuple)) else frozenset()


def describe_thresholds(rule: Mapping[str, Any]) -> str:
    """``trained_on.thresholds`` as words: the rule, and the labels that kept the default."""
    method = str(rule.get("method", "?"))
    if method == "fixed":
        return f"one fixed value, {rule.get('default', '?')}"
    name = {"youden": "Youden's J", "sensitivity": "a target sensitivity"}.get(method, method)
    text = (f"{name} on the validation films where they hold at least {rule.get('min_positives', '?')} "
            f"positives and {rule.get('min_negatives', '?')} negatives of the label, else {rule.get('default', '?')}")
    defaulted = list(rule.get("defaulted", ()) or ())
    if defaulted:
        n = len(defaulted)
        text += f"; the default for {n} label{'s' if n != 1 else ''} (too few validation films): " + ", ".join(map(str, defaulted))
    return text


#: ``trained_on``'s record of a site validation (``cxrviewer validate --tune-thresholds``;
#: docs/model-format.md).
SITE_VALIDATION = "site_validation"


def describe_site_validation(site: Mapping[str, Any]) -> str:
    """``trained_on.site_validation`` as words: where, when, and which thresholds it chose."""
    text = (f"{site.get('films', '?')} films of {site.get('labels_file', '?')} on {site.get('date', '?')}, "
            f"from model {site.get('source_model_version', '?')}")
    aurocs = site.get("auroc")
    if isinstance(aurocs, Mapping) and aurocs:
        values = [float(v) for v in aurocs.values() if isinstance(v, (int, float))]
        if values:
            text += f"; mean AUROC {sum(values) / len(values):.3f} over {len(values)} findings"
    rule = site.get("thresholds")
    if isinstance(rule, Mapping):
        chosen = rule.get("chosen") or {}
        if chosen:
            text += (f"; thresholds chosen there (Youden's J, at least {rule.get('min_positives', '?')} positive and "
                     f"{rule.get('min_negatives', '?')} negative films) for " + ", ".join(map(str, chosen)))
        else:
            text += "; no threshold chosen there (too few films)"
    return text


def describe_training(trained_on: Mapping[str, Any]) -> str:
    """``trained_on`` as a line of text: ``data: NIH ChestX-ray14 · films: 112,120``."""
    parts = []
    for key, value in trained_on.items():
        if key == "thresholds" and isinstance(value, Mapping):
            text = describe_thresholds(value)
        elif key == SITE_VALIDATION and isinstance(value, Mapping):
            text = describe_site_validation(value)
        elif isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int):
            text = f"{value:,}"
        elif isinstance(value, float):
            text = f"{value:g}"
        elif isinstance(value, Mapping):
            text = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            text = ", ".join(str(v) for v in value)
        else:
            text = str(value)
        parts.append(f"{str(key).replace('_', ' ')}: {text}")
    return " · ".join(parts) if parts else "not stated"
