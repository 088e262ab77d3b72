"""``cxrviewer info``: the model card, the engine in use and why it was chosen, library versions."""

from __future__ import annotations

import argparse
import json

from ..model_card import describe_training, model_card
from ..options import add_model_options
from .common import EXIT_OK, load_classifier


def add_parser(sub) -> argparse.ArgumentParser:
    i = sub.add_parser("info", help="model metadata, execution provider, library versions",
                       description="Show the model's card (labels, thresholds, version, demo or not), the execution provider in use and library versions.")
    i.add_argument("--json", action="store_true", help="machine-readable output (default: text)")
    add_model_options(i)
    return i


def run(args) -> int:
    clf = load_classifier(args)
    card = model_card(clf)
    if args.json:
        print(json.dumps(card, indent=2))
        return EXIT_OK
    print(f"model:         {card['model']}")
    print(f"version:       {card['model_version']}" + ("   ** DEMO MODEL - not for diagnosis; for a real model see docs/models.md **" if card["demo"] else ""))
    print(f"input:         {card['input_size']}x{card['input_size']}x3 {card['layout']}, mean {card['mean']:.4f}, std {card['std']:.4f}"
          + ("; the film's largest centred square (cxr.crop)" if card["crop"] == "center" else ""))
    print(f"precision:     {card['precision']}" + ("   (static-quantized copy of an fp32 export; docs/training.md)" if card["precision"] == "int8" else ""))
    print(f"maps:          Grad-CAM of the {card['maps']} (format version {card['format_version']})"
          + ("   (re-export, or `cxr-train upgrade-maps`, for maps of the class score)" if card["format_version"] < 2 else ""))
    print(f"provider:      {card['provider']}")
    engine = card["engine"]
    print(f"engine:        {engine['lines'][0]}" + (f"  file {engine['file']}" if engine["file"] != card["model"] else ""))
    for line in engine["lines"][1:]:
        print(f"               {line}")
    training = describe_training(card["trained_on"]).split(" · ")
    print(f"trained on:    {training[0]}")
    for line in training[1:]:
        print(f"               {line}")
    print(f"OOD guard:     {'yes' if card['ood_guard'] else 'no'}")
    rule = card["applicable"]
    print("reads (DICOM): " + "; ".join(f"{key.replace('_', ' ')} {v if v == 'any' else ', '.join(v)}"
                                       for key, v in rule.items())
          + "   (other films: not_applicable; docs/dicom.md)")
    print("labels (threshold, validation AUROC):")
    defaulted = set(card["default_thresholds"])
    for label in card["labels"]:
        auc = card["metrics"].get(label)
        mark = " (default)" if label in defaulted else ""
        print(f"  {label:<20} {card['thresholds'][label]:.3f}{mark:<10}  {'' if auc is None else f'{auc:.3f}'}".rstrip())
    if defaulted:
        print("  (default): too few validation films with and without the finding to choose a threshold")
    print("versions:      " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()))
    return EXIT_OK
