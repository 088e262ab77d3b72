"""Command line: ``cxrviewer score | export | info``; no subcommand starts the desktop app.

Exit codes: 0 every film scored; 1 some films could not be scored (their rows say why); 2 usage
or setup errors (bad arguments, a missing input, an output that is one of the inputs, an unusable
model); 3 the results cannot be written (a full disk, an I/O error, an output that is not a
regular file, a name too long, a results file of something else, another run writing the same
file; the rows written before stay and the file stays resumable); 130 after Ctrl+C and 143 after
SIGTERM (both finish the films in hand, write their rows and print the summary first). Errors are
one line on stderr.
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
from .errors import (
    CxrError,
    MissingInputError,
    ModelError,
    NoDicomSourceError,
    OutputError,
    OutputInUseError,
    SameFileError,
    UnknownClassError,
    UnknownResultsFileError,
)
from .model_card import model_card

logger = logging.getLogger("cxrviewer")

SUBCOMMANDS = ("score", "export", "info")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_OUTPUT = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl+C
EXIT_TERMINATED = 143  # 128 + SIGTERM (systemd, docker stop, timeout)

#: The options to name when an error of this kind is printed (library messages name none).
FLAG_HINTS: dict[type, str] = {
    UnknownResultsFileError: "--out / --overwrite",
    OutputInUseError: "--out",
    SameFileError: "--out",
    ModelError: "--model",
    UnknownClassError: "--classes",
    NoDicomSourceError: "--format dicom-sc",
}


def build_parser() -> argparse.ArgumentParser:
    from .options import add_display_options, add_model_options  # numpy and OpenCV: not for --version alone

    parser = argparse.ArgumentParser(
        prog="cxrviewer",
        description="Chest X-ray viewer and scorer. Run with no subcommand (or with files) to open the desktop app.",
    )
    parser.add_argument("--version", action="version", version=f"cxrviewer {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="{score,export,info}")

    s = sub.add_parser("score", help="score films and folders into a CSV", description="Score PNG/JPEG/DICOM films and folders into a CSV (resumes an existing --out).")
    s.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="film files (PNG, JPEG, TIFF, BMP, DICOM) and folders of them")
    s.add_argument("--out", type=Path, required=True, metavar="CSV", help="results CSV; one of ours that exists is resumed (required)")
    s.add_argument("--recursive", "-r", action="store_true", help="also score films in sub-folders (default: the folder itself only)")
    s.add_argument("--export-dir", type=Path, metavar="DIR", help="also write an annotated PNG per scored film into DIR (default: none)")
    s.add_argument("--batch-size", type=int, default=None, metavar="N", help="films per forward pass (default: 1 on CPU, the fastest there; 8 on a GPU)")
    s.add_argument("--workers", type=int, default=None, metavar="N", help="films read and scored side by side (default: one per CPU core; at most 4 feeding a GPU)")
    s.add_argument("--overwrite", action="store_true", help="start --out afresh instead of resuming it (default: resume)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar (default: a bar on a terminal)")
    add_model_options(s)
    add_display_options(s, "positives")

    e = sub.add_parser(
        "export", help="write an annotated picture of one film",
        description="Score one film and write it with its findings: a PNG with the heatmaps or outlines and "
        "the findings panel, or a DICOM object for a PACS; optionally its regions as JSON.",
    )
    e.add_argument("file", type=Path, metavar="FILE", help="the film (PNG, JPEG, TIFF, BMP or DICOM)")
    e.add_argument("--out", type=Path, required=True, help="output .png (or .dcm with --format dicom-sc)")
    e.add_argument("--format", choices=("png", "dicom-sc", "dicom-sr", "dicom-gsps"), default=None, help="png (default); dicom-sc: an RGB DICOM Secondary Capture that keeps the source's patient and study; dicom-sr: a DICOM Structured Report of the findings (TID 1500); dicom-gsps: a DICOM Presentation State with a toggleable layer per finding (both need a DICOM FILE)")
    e.add_argument("--anonymize", action="store_true", help="dicom-*: drop patient identity (dicom-sc also starts a new study; dicom-sr/gsps keep the UIDs that point at the source; default: keep the source's identity)")
    e.add_argument("--burn-in-patient-name", action="store_true", help="dicom-sc: draw the patient's name on the picture (off by default)")
    e.add_argument("--regions", type=Path, metavar="JSON", help="also write the drawn findings' regions (boxes, outlines) as JSON (default: none)")
    e.add_argument("--region-level", type=float, default=None, metavar="0..1", help="region threshold as a fraction of each map's peak (default: 0.5)")
    e.add_argument("--region-min-area", type=float, default=None, metavar="FRACTION", help="smallest region as a fraction of the film's area (default: 0.005)")
    add_model_options(e)
    add_display_options(e, "positives")

    i = sub.add_parser("info", help="model metadata, execution provider, library versions",
                       description="Show the model's card (labels, thresholds, version, demo or not), the execution provider in use and library versions.")
    i.add_argument("--json", action="store_true", help="machine-readable output (default: text)")
    add_model_options(i)
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
    from .results import safe_file_stem

    _check_inputs(args.inputs)
    paths = list_films(args.inputs, recursive=args.recursive)
    if not paths:
        raise CxrError("No films found in the inputs (looked for .png .jpg .jpeg .tif .tiff .bmp .dcm and DICOM files).")
    clf = _load_classifier(args, threads=_scoring_threads(args))
    args.classes.check(clf.info.labels)  # an unknown name fails now, not at the first picture
    if args.export_dir is not None:
        check_writable_dir(args.export_dir)
        _refuse_film_folder(args.export_dir, paths)
    used_names: set[str] = set()

    def on_result(result) -> None:
        if args.export_dir is None or not result.ok:
            return
        stem = safe_file_stem(result.path.stem)
        name = f"{stem}.png"
        n = 1
        while name in used_names:
            n += 1
            name = f"{stem}-{n}.png"
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
    stopped_by: list[int] = []
    try:
        with _ctrl_c_sets(stop, stopped_by):
            summary = score_to_csv(
                paths, clf, args.out, batch_size=args.batch_size, workers=args.workers, cancel=stop,
                progress=progress, on_result=on_result, overwrite=args.overwrite,
                keep_films=args.export_dir is not None,
            )
    except KeyboardInterrupt:  # the second Ctrl+C: stop at once
        print(f"cxrviewer: interrupted; {resume}", file=sys.stderr)
        return _stop_code(stopped_by)
    finally:
        if bar is not None:
            bar.close()
    print(f"{summary.line()} -> {args.out}", file=sys.stderr)
    if stop.is_set():
        print(f"cxrviewer: interrupted; {resume}", file=sys.stderr)
        return _stop_code(stopped_by)
    return summary.exit_code


def _stop_code(stopped_by: list[int]) -> int:
    return EXIT_TERMINATED if stopped_by and stopped_by[0] == signal.SIGTERM else EXIT_INTERRUPTED


def _check_inputs(inputs: Sequence[Path]) -> None:
    """A named input that does not exist is a typo, not a film: stop before any work. (A broken
    link or an unreadable file does exist: it gets an error row like any bad film.)"""
    import errno
    import os

    for p in inputs:
        try:
            os.stat(p)
        except FileNotFoundError:
            if not os.path.islink(p):
                raise MissingInputError(f"{p}: no such file or folder.") from None
        except OSError as exc:
            if exc.errno == errno.ENAMETOOLONG:
                raise MissingInputError(f"{p}: the name is too long for the file system (at most 255 bytes a name).") from None
        except ValueError:
            raise MissingInputError(f"{p!r} is not a valid path.") from None


def _refuse_film_folder(folder: Path, films: Sequence[Path]) -> None:
    """Pictures written into a folder of films would overwrite films of the same name and be
    scored as films by the next run."""
    import os

    try:
        target = os.stat(folder)
    except OSError:
        return
    seen: set[str] = set()
    for f in films:
        parent = os.path.dirname(os.path.abspath(f))
        if parent in seen:
            continue
        seen.add(parent)
        try:
            st = os.stat(parent)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino):
            raise SameFileError(f"{folder} holds films being scored: the pictures would overwrite or mix with them. "
                                "Choose another folder for the pictures.")


@contextlib.contextmanager
def _ctrl_c_sets(stop: threading.Event, stopped_by: list[int] | None = None):
    """The first Ctrl+C (SIGINT) or SIGTERM asks the batch to stop after the films in hand, so the
    rows of every finished film reach the CSV and the summary is printed; a second one
    interrupts. ``stopped_by`` gets the first signal's number."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread (e.g. under a test runner)
        return

    def first(signum, frame) -> None:
        if stopped_by is not None and not stopped_by:
            stopped_by.append(signum)
        stop.set()
        what = "Ctrl+C" if signum == signal.SIGINT else "the signal"
        print(f"\ncxrviewer: stopping after the current films ({what} again to stop now)...", file=sys.stderr)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)

    previous = signal.signal(signal.SIGINT, first)
    previous_term = signal.signal(signal.SIGTERM, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)


def cmd_export(args) -> int:
    from .export import check_writable_dir, export_png
    from .io import read_film
    from .render import RenderOptions, select_classes
    from .results import refuse_inputs_as_output, write_regions_json

    _check_inputs([args.file])
    check_writable_dir(args.out.parent if str(args.out.parent) else Path("."))
    refuse_inputs_as_output(args.out, [args.file])
    if args.regions is not None:
        refuse_inputs_as_output(args.regions, [args.file])
    clf = _load_classifier(args)
    args.classes.check(clf.info.labels)
    film = read_film(args.file)
    pred = clf.predict_one(film)
    opts = RenderOptions(select_classes(pred, args.classes), args.alpha, args.colormap, args.mode)
    fmt = args.format or ("dicom-sc" if args.out.suffix.lower() in (".dcm", ".dicom") else "png")
    if fmt in ("dicom-sr", "dicom-gsps"):
        if args.burn_in_patient_name:
            raise CxrError("--burn-in-patient-name applies to --format dicom-sc; a structured report or presentation state has no picture to draw on.")
        from .dicom import export_dicom_gsps, export_dicom_sr

        export = export_dicom_sr if fmt == "dicom-sr" else export_dicom_gsps
        out = export(args.out, film, pred, clf.info, region_labels=opts.classes, anonymize=args.anonymize)
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
        hint = next((flags for kind, flags in FLAG_HINTS.items() if isinstance(exc, kind)), None)
        print(f"cxrviewer: error: {exc}" + (f" ({hint})" if hint else ""), file=sys.stderr)
        return EXIT_OUTPUT if isinstance(exc, OutputError) else EXIT_USAGE
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
