"""Command line: ``cxrviewer score | export | info``; no subcommand starts the desktop app.

Exit codes: 0 all good; 1 some films could not be scored (their rows say why); 2 usage or setup
errors (bad arguments, unusable model, unwritable output). Errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from . import __version__
from .errors import CxrError, NoDicomSourceError

logger = logging.getLogger("cxrviewer")

SUBCOMMANDS = ("score", "export", "info")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl+C


def _add_model(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, help="ONNX model file (default: $CXRVIEWER_MODEL or the bundled demo model)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="execution provider (default: CUDA when available, else CPU)")


def _add_render(p: argparse.ArgumentParser, default_classes: str) -> None:
    from .heatmap import COLORMAPS, DEFAULT_COLORMAP

    p.add_argument("--classes", default=default_classes, help=f"heatmaps to draw: all, none, positives or A,B,... (default: {default_classes})")
    p.add_argument("--alpha", type=float, default=0.4, help="heatmap opacity 0..1 (default 0.4)")
    p.add_argument("--colormap", choices=sorted(COLORMAPS), default=DEFAULT_COLORMAP)
    p.add_argument("--mode", choices=("heatmap", "contour"), default="heatmap", help="blend heatmaps, or outline their hot regions")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cxrviewer",
        description="Chest X-ray viewer and scorer. Run with no subcommand (or with files) to open the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"cxrviewer {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="{score,export,info}")

    s = sub.add_parser("score", help="score films and folders into a CSV", description="Score PNG/JPEG/DICOM films and folders into a CSV (resumes an existing --out).")
    s.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="files and folders")
    s.add_argument("--out", type=Path, required=True, help="results CSV (an existing one is resumed)")
    s.add_argument("--recursive", "-r", action="store_true", help="descend into sub-folders")
    s.add_argument("--export-dir", type=Path, help="also write an annotated PNG per scored film here")
    s.add_argument("--batch-size", type=int, default=None, help="films per forward pass (default 1 on CPU, the fastest there; 8 on a GPU)")
    s.add_argument("--workers", type=int, default=None, help="films read and scored side by side (default: one per CPU core)")
    s.add_argument("--overwrite", action="store_true", help="start --out afresh instead of resuming it")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_model(s)
    _add_render(s, "positives")

    e = sub.add_parser("export", help="write an annotated picture of one film")
    e.add_argument("file", type=Path, metavar="FILE")
    e.add_argument("--out", type=Path, required=True, help="output .png (or .dcm with --format dicom-sc)")
    e.add_argument("--format", choices=("png", "dicom-sc", "dicom-sr", "dicom-gsps"), default=None, help="png (default); dicom-sc: an RGB DICOM Secondary Capture that keeps the source's patient and study; dicom-sr: a DICOM Structured Report of the findings (TID 1500); dicom-gsps: a DICOM Presentation State with a toggleable layer per finding (both need a DICOM FILE)")
    e.add_argument("--anonymize", action="store_true", help="dicom-*: drop patient identity (dicom-sc also starts a new study; dicom-sr/gsps keep the UIDs that point at the source)")
    e.add_argument("--burn-in-patient-name", action="store_true", help="dicom-sc: draw the patient's name on the picture (off by default)")
    e.add_argument("--regions", type=Path, metavar="JSON", help="also write the drawn classes' regions (boxes, outlines) as JSON")
    e.add_argument("--region-level", type=float, default=None, help="region threshold as a fraction of each map's peak (default 0.5)")
    e.add_argument("--region-min-area", type=float, default=None, help="smallest region as a fraction of the film's area (default 0.005)")
    _add_model(e)
    _add_render(e, "positives")

    i = sub.add_parser("info", help="model metadata, execution provider, library versions")
    i.add_argument("--json", action="store_true", help="machine-readable output")
    _add_model(i)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _load_classifier(args, threads: int = 0):
    from .model import Classifier
    from .paths import default_model_path

    return Classifier.load(args.model or default_model_path(), device=args.device, threads=threads)


def _scoring_threads(args) -> int:
    """ONNX Runtime threads for `score`: 1 when it will run one film per core on the CPU (the
    batch path would otherwise open a second, one-thread session beside an unused all-core
    one; see Classifier.for_throughput), else 0 (one per core)."""
    from .batch import default_workers
    from .model import CPU, choose_providers

    side_by_side = (args.workers or default_workers()) > 1
    return 1 if side_by_side and choose_providers(args.device)[0] == CPU else 0


def _check_args(args, parser) -> None:
    if getattr(args, "alpha", None) is not None and not 0.0 <= args.alpha <= 1.0:
        parser.error("--alpha must be between 0 and 1")
    if getattr(args, "batch_size", None) is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if getattr(args, "workers", None) is not None and args.workers < 1:
        parser.error("--workers must be at least 1")


# ------------------------------------------------------------------------ commands
def cmd_score(args) -> int:
    from .batch import score_to_csv
    from .export import check_writable_dir, export_png
    from .io import list_films
    from .render import RenderOptions, select_classes

    paths = list_films(args.inputs, recursive=args.recursive)
    if not paths:
        raise CxrError("No films found in the inputs (looked for .png .jpg .jpeg .tif .tiff .bmp .dcm and DICOM files).")
    clf = _load_classifier(args, threads=_scoring_threads(args))
    if args.export_dir is not None:
        check_writable_dir(args.export_dir)
    used_names: set[str] = set()

    def on_result(result) -> None:
        if args.export_dir is None or not result.ok:
            return
        name = f"{result.path.stem}.png"
        n = 1
        while name in used_names:
            n += 1
            name = f"{result.path.stem}-{n}.png"
        used_names.add(name)
        opts = RenderOptions(select_classes(result.prediction, args.classes), args.alpha, args.colormap, args.mode)
        export_png(args.export_dir / name, result.film, result.prediction, clf.info, opts)

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), unit="film", file=sys.stderr, dynamic_ncols=True, disable=None)

    def progress(result, done, total) -> None:
        if bar is not None:
            bar.n = done
            bar.refresh()

    if clf.info.demo:
        logger.warning("scoring with a DEMO model: its probabilities are not for diagnosis")
    resume = f"rows scored so far are in {args.out}; run the same command again to resume."
    stop = threading.Event()
    try:
        with _ctrl_c_sets(stop):
            summary = score_to_csv(
                paths, clf, args.out, batch_size=args.batch_size, workers=args.workers, cancel=stop,
                progress=progress, on_result=on_result, overwrite=args.overwrite,
                keep_films=args.export_dir is not None,
            )
    except KeyboardInterrupt:  # the second Ctrl+C: stop at once
        if bar is not None:
            bar.close()
        print(f"cxrviewer: interrupted; {resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if bar is not None:
        bar.close()
    print(f"{summary.line()} -> {args.out}", file=sys.stderr)
    if stop.is_set():
        print(f"cxrviewer: interrupted; {resume}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return summary.exit_code


@contextlib.contextmanager
def _ctrl_c_sets(stop: threading.Event):
    """The first Ctrl+C (SIGINT) asks the batch to stop after the film in hand, so the rows of
    every finished film reach the CSV and the summary is printed; a second one interrupts."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. under a test runner)
        return

    def first(signum, frame) -> None:
        stop.set()
        print("\ncxrviewer: stopping after the current films (Ctrl+C again to stop now)...", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_export(args) -> int:
    from .export import check_writable_dir, export_png
    from .io import read_film
    from .render import RenderOptions, select_classes

    check_writable_dir(args.out.parent if str(args.out.parent) else Path("."))
    clf = _load_classifier(args)
    film = read_film(args.file)
    pred = clf.predict_one(film)
    opts = RenderOptions(select_classes(pred, args.classes), args.alpha, args.colormap, args.mode)
    fmt = args.format or ("dicom-sc" if args.out.suffix.lower() in (".dcm", ".dicom") else "png")
    if fmt in ("dicom-sr", "dicom-gsps"):
        if args.burn_in_patient_name:
            raise CxrError("--burn-in-patient-name applies to --format dicom-sc; a structured report or presentation state has no picture to draw on.")
        from .dicom import export_dicom_gsps, export_dicom_sr

        export = export_dicom_sr if fmt == "dicom-sr" else export_dicom_gsps
        try:
            out = export(args.out, film, pred, clf.info, region_labels=opts.classes, anonymize=args.anonymize)
        except NoDicomSourceError as exc:
            raise NoDicomSourceError(f"{exc} (--format dicom-sc)") from None
    elif fmt == "dicom-sc":
        from .dicom_export import export_dicom_sc

        out = export_dicom_sc(args.out, film, pred, clf.info, opts, anonymize=args.anonymize,
                              burn_in_patient_name=args.burn_in_patient_name)
    else:
        if args.anonymize or args.burn_in_patient_name:
            raise CxrError("--anonymize and --burn-in-patient-name apply to --format dicom-sc; PNG exports never carry patient data.")
        out = export_png(args.out, film, pred, clf.info, opts)
    print(f"wrote {out}", file=sys.stderr)
    if args.regions is not None:
        write_regions_json(args.regions, film, pred, clf.info, opts.classes or pred.positives,
                           args.region_level, args.region_min_area)
        print(f"wrote {args.regions}", file=sys.stderr)
    return EXIT_OK


def write_regions_json(path: Path, film, pred, info, classes, level=None, min_area=None) -> Path:
    """Regions of ``classes`` (boxes and outlines in film pixels) as a JSON document."""
    from . import heatmap
    from .export import atomic_write_bytes

    level = heatmap.REGION_LEVEL if level is None else level
    min_area = heatmap.REGION_MIN_AREA if min_area is None else min_area
    doc = {
        "film": film.name,
        "width": film.width,
        "height": film.height,
        "model_version": info.model_version,
        "demo": info.demo,
        "level": level,
        "min_area": min_area,
        "regions": [
            r.as_dict()
            for label in classes
            for r in heatmap.regions(pred, label, (film.height, film.width), level, min_area)
        ],
    }
    # One region a line (an outline has hundreds of points: one number a line would bury it).
    regions = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in doc.pop("regions"))
    head = json.dumps(doc, indent=1)[:-2]  # without the closing "\n}"
    text = f'{head},\n "regions": [\n  {regions}\n ]\n}}\n' if regions else f'{head},\n "regions": []\n}}\n'
    return atomic_write_bytes(path, text.encode("utf-8"))


def model_card(clf) -> dict:
    """What `info` shows and the GUI's About box: metadata, provider, library versions."""
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
        "trained_on": dict(info.trained_on),
        "metrics": dict(info.metrics),
        "ood_guard": info.ood is not None,
        "precision": info.precision,
        "provider": clf.provider,
        "versions": {
            "cxrviewer": __version__,
            "onnxruntime": onnxruntime.__version__,
            "numpy": numpy.__version__,
            "pydicom": pydicom.__version__,
            "opencv": cv2.__version__,
            "python": sys.version.split()[0],
        },
    }


def cmd_info(args) -> int:
    clf = _load_classifier(args)
    card = model_card(clf)
    if args.json:
        print(json.dumps(card, indent=2))
        return EXIT_OK
    print(f"model:         {card['model']}")
    print(f"version:       {card['model_version']}" + ("   ** DEMO MODEL - not for diagnosis **" if card["demo"] else ""))
    print(f"input:         {card['input_size']}x{card['input_size']}x3 {card['layout']}, mean {card['mean']:.4f}, std {card['std']:.4f}")
    print(f"precision:     {card['precision']}" + ("   (static-quantized copy of an fp32 export; docs/training.md)" if card["precision"] == "int8" else ""))
    print(f"provider:      {card['provider']}")
    print(f"trained on:    {json.dumps(card['trained_on'])}")
    print(f"OOD guard:     {'yes' if card['ood_guard'] else 'no'}")
    print("labels (threshold, validation AUROC):")
    for label in card["labels"]:
        auc = card["metrics"].get(label)
        print(f"  {label:<20} {card['thresholds'][label]:.3f}  {'' if auc is None else f'{auc:.3f}'}")
    print("versions:      " + ", ".join(f"{k} {v}" for k, v in card["versions"].items()))
    return EXIT_OK


COMMANDS = {"score": cmd_score, "export": cmd_export, "info": cmd_info}


def _wants_cli(argv: Sequence[str]) -> bool:
    """CLI when the first argument (after -v flags) is a subcommand or --help/--version."""
    for a in argv:
        if a in ("-v", "-vv", "-vvv", "--verbose"):
            continue
        return a in SUBCOMMANDS or a in ("-h", "--help", "--version")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not _wants_cli(argv):
        return gui_main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_args(args, parser)
    _configure_logging(args.verbose)
    try:
        return COMMANDS[args.command](args)
    except CxrError as exc:
        print(f"cxrviewer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("cxrviewer: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cxrviewer info | head`: the reader left; not an error of ours
        sys.stderr.close()
        return EXIT_OK


def gui_main(argv: Sequence[str] | None = None) -> int:
    """Start the desktop app with optional files/folders to open."""
    try:
        from .ui.app import run_app
    except ImportError as exc:
        print(f"cxrviewer: the desktop app needs PySide6 ({exc}). Install it with `pip install PySide6-Essentials`, "
              "or use the `score`, `export` and `info` subcommands.", file=sys.stderr)
        return EXIT_USAGE
    return run_app(list(sys.argv[1:] if argv is None else argv))
