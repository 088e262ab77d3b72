"""``cxr-train fit | evaluate | export | import-weights | import-torchxrayvision | import-chexnet |
upgrade-maps`` (also ``python -m training``).

Exit codes: 0 done; 2 a problem the user can fix (bad data, leakage, a weights file that does
not fit, an int8 model that failed its parity check, ...), printed on one line; 130 interrupted.
Progress is logged (INFO by default, ``-q`` for warnings only, ``-v`` for debug); the final
summary is printed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from cxrviewer.errors import CxrError

logger = logging.getLogger("training")

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130


def _labels(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if not names:
        raise argparse.ArgumentTypeError("give label names separated by commas")
    return names


def _fraction(text: str) -> float:
    v = float(text)
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1)")
    return v


def _positive_int(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"{text} must be at least 1")
    return v


def build_parser() -> argparse.ArgumentParser:
    from .fit import CACHES, STRATEGIES
    from .int8 import DEFAULT_CALIBRATION_FILMS, MAX_AUROC_DROP
    from .metrics import METHODS

    parser = argparse.ArgumentParser(
        prog="cxr-train",
        description="Train DenseNet121 chest X-ray classifiers and export them as self-describing ONNX models "
                    "(see docs/training.md).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    sub = parser.add_subparsers(dest="command", metavar="{fit,evaluate,export,import-weights,import-torchxrayvision,import-chexnet,upgrade-maps}", required=True)

    f = sub.add_parser("fit", help="train a model into a run directory (then evaluate and export it)",
                       description="Train, evaluate on the validation/test films and export RUN/model.onnx.")
    data = f.add_argument_group("data (one of: --labels-csv with --images, or --folders)")
    data.add_argument("--labels-csv", type=Path, metavar="CSV",
                      help="NIH Data_Entry_2017 CSV, or a one-hot CSV (Image, label columns, PatientId; CheXpert -1 = uncertain)")
    data.add_argument("--images", type=Path, metavar="DIR", help="folder holding the films the CSV names (searched recursively)")
    data.add_argument("--valid-csv", type=Path, metavar="CSV", help="a preset validation split (same format)")
    data.add_argument("--test-csv", type=Path, metavar="CSV", help="a preset test split (same format)")
    data.add_argument("--folders", type=Path, metavar="DIR",
                      help="class folders: DIR/{train,val,test}/CLASS/* or DIR/CLASS/*; NORMAL = no finding")
    data.add_argument("--labels", type=_labels, metavar="A,B,...", help="train these labels only, in this order")
    data.add_argument("--uncertain-value", type=float, default=0.0, metavar="U",
                      help="target for uncertain (-1) labels: 0 = U-Zeros (default), 1 = U-Ones")
    data.add_argument("--uncertain-weight", type=float, default=1.0, metavar="W",
                      help="loss weight of uncertain labels (0 ignores them; default 1)")
    sp = f.add_argument_group("split (by patient)")
    sp.add_argument("--val-frac", type=_fraction, default=0.1, help="fraction of patients for validation (default 0.1)")
    sp.add_argument("--test-frac", type=_fraction, default=0.1, help="fraction of patients for test (default 0.1)")
    sp.add_argument("--seed", type=int, default=0, help="split, shuffle and initialization seed (default 0)")
    tr = f.add_argument_group("training")
    tr.add_argument("--out", type=Path, required=True, metavar="RUN", help="new run directory")
    tr.add_argument("--input-size", type=int, default=320, metavar="S", help="model input S×S, a multiple of 32 (default 320)")
    tr.add_argument("--epochs", type=_positive_int, default=10, help="maximum epochs (default 10; early stopping on val_loss)")
    tr.add_argument("--batch-size", type=_positive_int, default=16, help="global batch size (default 16)")
    tr.add_argument("--learning-rate", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    tr.add_argument("--patience", type=_positive_int, default=3, help="early-stopping patience in epochs (default 3)")
    tr.add_argument("--weights", type=Path, metavar="H5",
                    help="initial weights: a local Keras .h5 (ImageNet *_notop.h5 or a whole DenseNet121+GAP+Dense)")
    tr.add_argument("--steps-per-epoch", type=_positive_int, metavar="N", help="at most N batches per epoch (quick checks)")
    tr.add_argument("--stats-sample", type=int, default=0, metavar="N",
                    help="compute the mean/std on N random training films (default 0 = all)")
    tr.add_argument("--rotation", type=float, default=5.0, metavar="DEG", help="random rotation ± degrees (default 5; 0 = off)")
    tr.add_argument("--zoom", type=float, default=0.1, metavar="F", help="random zoom ± fraction (default 0.1; 0 = off)")
    tr.add_argument("--flip", action="store_true", help="random horizontal flips (off by default: chest films are not symmetric)")
    tr.add_argument("--cache", choices=CACHES, default="auto",
                    help="keep resized films in memory or in RUN/cache (default auto: memory up to 4 GiB)")
    tr.add_argument("--strategy", choices=STRATEGIES, default="none",
                    help="tf.distribute: mirrored = all local GPUs, multiworker = several machines via TF_CONFIG")
    tr.add_argument("--tensorboard", action="store_true", help="write TensorBoard logs to RUN/logs")
    ex = f.add_argument_group("evaluation and export")
    ex.add_argument("--threshold-method", choices=METHODS, default="youden",
                    help="per-label thresholds on validation: youden (default), fixed, sensitivity")
    ex.add_argument("--threshold-value", type=float, metavar="X",
                    help="the fixed threshold, or the target sensitivity (default 0.9)")
    ex.add_argument("--model-version", metavar="V", help="version string stored in the model (default densenet121-S-DATE)")
    ex.add_argument("--demo", action="store_true", help="mark the model as a demo (cxr.demo = true) whose predictions mean nothing")
    ex.add_argument("--no-export", dest="export", action="store_false", help="stop after evaluation (run `export` later)")
    ex.add_argument("--ood-sample", type=int, default=2000, metavar="N",
                    help="training films used for the out-of-distribution statistics (default 2000)")

    e = sub.add_parser("evaluate", help="(re)evaluate a run: metrics.json, report.md, ROC/PR plots")
    e.add_argument("run", type=Path, metavar="RUN")
    e.add_argument("--threshold-method", choices=METHODS, help="default: the run's (youden)")
    e.add_argument("--threshold-value", type=float, metavar="X")

    x = sub.add_parser("export", help="write RUN/model.onnx (model, metadata, OOD statistics)")
    x.add_argument("run", type=Path, metavar="RUN")
    x.add_argument("--out", type=Path, metavar="ONNX", help="output file (default RUN/model.onnx)")
    x.add_argument("--model-version", metavar="V", help="override the run's version string")
    x.add_argument("--ood-sample", type=int, default=2000, metavar="N")
    q = x.add_argument_group("int8 (docs/training.md)")
    q.add_argument("--int8", action="store_true",
                   help="also write an int8 copy (ONNX Runtime static QDQ quantization), kept only if it passes "
                        "an AUROC parity check on the held-out films")
    q.add_argument("--int8-out", type=Path, metavar="ONNX",
                   help="int8 output file (default: next to the fp32 model, model.int8.onnx); implies --int8")
    q.add_argument("--calibration-films", type=_positive_int, default=DEFAULT_CALIBRATION_FILMS, metavar="N",
                   help=f"training films to calibrate on (default {DEFAULT_CALIBRATION_FILMS}, at most the training split)")
    q.add_argument("--max-auroc-drop", type=float, default=MAX_AUROC_DROP, metavar="X",
                   help=f"reject the int8 model if its mean AUROC on the held-out films is lower by more than X "
                        f"(default {MAX_AUROC_DROP})")

    i = sub.add_parser("import-weights", help="export an existing Keras DenseNet121+GAP+Dense .h5 to ONNX",
                       description="Load a Keras HDF5 weights file (CheXNet-Keras, the course's pretrained_model.h5, "
                                   "Keras 3 files) into DenseNet121+GAP+Dense and export it with the given metadata.")
    i.add_argument("weights", type=Path, metavar="WEIGHTS.h5")
    i.add_argument("--labels", type=_labels, required=True, metavar="A,B,...", help="output names in the file's order")
    i.add_argument("--mean", type=float, required=True, help="training pixel mean on the [0, 1] scale")
    i.add_argument("--std", type=float, required=True, help="training pixel std on the [0, 1] scale")
    i.add_argument("--input-size", type=int, default=320, metavar="S", help="input size (default 320)")
    i.add_argument("--out", type=Path, required=True, metavar="ONNX")
    i.add_argument("--thresholds", metavar="T|T1,T2,...", help="one threshold, or one per label (default 0.5)")
    i.add_argument("--model-version", metavar="V")
    i.add_argument("--trained-on", metavar="TEXT", help="what data the weights were trained on (stored in the metadata)")
    i.add_argument("--demo", action="store_true", help="mark the model as a demo")

    from .torch_import import XRV_WEIGHTS

    t = sub.add_parser("import-torchxrayvision", help="export a torchxrayvision DenseNet121 (PyTorch) to ONNX",
                       description="Export torchxrayvision's DenseNet121 weights NAME as a cxrviewer model: labels, "
                                   "op_threshs as thresholds, in-graph Grad-CAM of the class score (docs/models.md). "
                                   "Needs `pip install 'cxrviewer[import]'`; torchxrayvision downloads the weights "
                                   "into ~/.torchxrayvision the first time unless --weights gives the file.")
    t.add_argument("name", choices=XRV_WEIGHTS, metavar="NAME", help=f"one of: {', '.join(XRV_WEIGHTS)}")
    t.add_argument("--out", type=Path, required=True, metavar="ONNX")
    t.add_argument("--weights", type=Path, metavar="FILE", help="the weights file, already downloaded (no network)")
    t.add_argument("--model-version", metavar="V", help="version string (default torchxrayvision-VERSION-NAME)")
    t.add_argument("--ood-films", type=Path, nargs="+", metavar="FILM_OR_DIR",
                   help="frontal chest films (files or folders) to fit the out-of-distribution guard on "
                        "(optional; without it the file has no guard)")

    c = sub.add_parser("import-chexnet", help="export an arnoweng/CheXNet PyTorch checkpoint to ONNX",
                       description="Export arnoweng/CheXNet's model.pth.tar (DenseNet121, 14 ChestX-ray14 labels, "
                                   "ImageNet normalization, 224 px) as a cxrviewer model (docs/models.md). Needs "
                                   "`pip install 'cxrviewer[import]'`.")
    c.add_argument("checkpoint", type=Path, metavar="CHECKPOINT")
    c.add_argument("--out", type=Path, required=True, metavar="ONNX")
    c.add_argument("--model-version", metavar="V", help="version string (default chexnet-arnoweng-STEM)")
    c.add_argument("--ood-films", type=Path, nargs="+", metavar="FILM_OR_DIR",
                   help="frontal chest films (files or folders) to fit the out-of-distribution guard on "
                        "(optional; without it the file has no guard)")

    u = sub.add_parser("upgrade-maps", help="rewrite a format-1 model's heatmaps as maps of the class score",
                       description="Copy a model file of format version 1 (heatmaps of the probability, which fade "
                                   "as p nears 0 or 1) with heatmaps of the class score (format version 2). The "
                                   "probabilities and features stay bit for bit the same (docs/model-format.md).")
    u.add_argument("model", type=Path, metavar="MODEL.onnx")
    u.add_argument("--out", type=Path, required=True, metavar="ONNX", help="the upgraded copy (never the input file)")
    return parser


def _configure_logging(args) -> None:
    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)
    logging.getLogger("training").setLevel(level)
    # TensorFlow's C++ log lines (CUDA probing, CPU features) are noise here.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def cmd_fit(args) -> int:
    from .fit import FitConfig, fit

    cfg = FitConfig(
        out=args.out, labels_csv=args.labels_csv, images=args.images, valid_csv=args.valid_csv,
        test_csv=args.test_csv, folders=args.folders, labels=args.labels, input_size=args.input_size,
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate, weights=args.weights,
        val_frac=args.val_frac, test_frac=args.test_frac, seed=args.seed, uncertain_value=args.uncertain_value,
        uncertain_weight=args.uncertain_weight, stats_sample=args.stats_sample, rotation=args.rotation,
        zoom=args.zoom, flip=args.flip, cache=args.cache, strategy=args.strategy, patience=args.patience,
        tensorboard=args.tensorboard, steps_per_epoch=args.steps_per_epoch, demo=args.demo,
        model_version=args.model_version, threshold_method=args.threshold_method,
        threshold_value=args.threshold_value, export=args.export, ood_sample=args.ood_sample,
    )
    s = fit(cfg)
    valid = s["metrics"]["splits"].get("valid", {})
    test = s["metrics"]["splits"].get("test", {})
    print(f"run {s['run']}: {s['model_version']}, {s['epochs_run']} epochs in {s['fit_seconds']:.0f} s; "
          f"films train {s['counts']['train']} / valid {s['counts']['valid']} / test {s['counts']['test']}; "
          f"mean AUROC valid {_auc(valid)} test {_auc(test)}"
          + (f"; exported {s['onnx']}" if "onnx" in s else "; not exported (run `cxr-train export RUN`)"))
    return EXIT_OK


def _auc(m) -> str:
    v = m.get("mean_auroc") if m else None
    return "n/a" if v is None else f"{v:.3f}"


def cmd_evaluate(args) -> int:
    from .evaluate import evaluate_run

    m = evaluate_run(args.run, args.threshold_method, args.threshold_value)
    parts = [f"{k} mean AUROC {_auc(v)} ({v['films']} films)" for k, v in m["splits"].items()]
    print(f"{args.run}: " + ("; ".join(parts) or "no validation or test films") + f"; see {args.run / 'report.md'}")
    return EXIT_OK


def cmd_export(args) -> int:
    from .export import export_run

    out = export_run(args.run, args.out, args.model_version, ood_sample=args.ood_sample)
    print(f"exported {out} ({out.stat().st_size / 1e6:.1f} MB)")
    if args.int8 or args.int8_out:
        from .int8 import quantize_run

        r = quantize_run(args.run, out, args.int8_out, args.calibration_films, args.max_auroc_drop)
        p, s = r["parity"], r["speed"]
        print(f"exported {r['model']} ({r['size_mb']['int8']:.1f} MB): {r['verdict']}; "
              f"max |Δprob| {p['max_abs_delta_prob']:.4f}; one thread {s['fp32_films_per_s']:.1f} → "
              f"{s['int8_films_per_s']:.1f} films/s (×{s['speedup']:.2f}); see {args.run / 'report.md'}")
    return EXIT_OK


def cmd_import(args) -> int:
    from .import_weights import import_weights

    thresholds = None
    if args.thresholds:
        try:
            vals = [float(t) for t in args.thresholds.split(",")]
        except ValueError:
            raise CxrError(f"--thresholds {args.thresholds!r} must be numbers separated by commas.") from None
        thresholds = vals[0] if len(vals) == 1 else vals
    r = import_weights(args.weights, args.labels, args.mean, args.std, args.out, args.input_size, thresholds,
                       args.model_version, args.trained_on, args.demo)
    print(f"exported {r['onnx']}: {r['layers']} layers loaded from {args.weights.name}; "
          f"ONNX vs Keras max |Δ| {max(r['check'].values()):.1e}")
    return EXIT_OK


def _print_import(r, ood_films) -> None:
    d = r["check"]
    ood = ""
    if ood_films:
        from .torch_import import add_ood

        o = add_ood(r["onnx"], ood_films)
        ood = f"; out-of-distribution guard from {o['films']} films ({o['skipped']} skipped)"
    print(f"exported {r['onnx']}: {len(r['labels'])} labels ({', '.join(r['labels'])}); ONNX vs PyTorch max |Δ| "
          f"probabilities {d['probs']:.1e}, maps {d['cams']:.1e} of their peak{ood}")


def cmd_import_xrv(args) -> int:
    from .torch_import import import_torchxrayvision

    _print_import(import_torchxrayvision(args.name, args.out, args.weights, model_version=args.model_version),
                  args.ood_films)
    return EXIT_OK


def cmd_import_chexnet(args) -> int:
    from .torch_import import import_chexnet

    _print_import(import_chexnet(args.checkpoint, args.out, model_version=args.model_version), args.ood_films)
    return EXIT_OK


def cmd_upgrade_maps(args) -> int:
    from .upgrade_maps import upgrade_maps

    d = upgrade_maps(args.model, args.out)
    print(f"wrote {args.out}: heatmaps of the class score (format version 2); probabilities unchanged "
          f"(max |Δ| {d['probs']:.1e}); new maps × p(1 − p) vs old maps: {d['cams']:.1e} of their peak")
    return EXIT_OK


COMMANDS = {"fit": cmd_fit, "evaluate": cmd_evaluate, "export": cmd_export, "import-weights": cmd_import,
            "import-torchxrayvision": cmd_import_xrv, "import-chexnet": cmd_import_chexnet,
            "upgrade-maps": cmd_upgrade_maps}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    _configure_logging(args)
    try:
        return COMMANDS[args.command](args)
    except CxrError as exc:
        print(f"cxr-train: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cxr-train: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
