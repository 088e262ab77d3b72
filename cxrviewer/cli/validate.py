"""``cxrviewer validate``: a model's figures on a site's own labelled films, with a report."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from pathlib import Path

from ..errors import CxrError, LabelsFileError, OutputInUseError, SameFileError, UnknownResultsFileError
from ..options import add_model_options
from .common import EXIT_FAILED, EXIT_OK, check_inputs, ctrl_c_sets, load_classifier, stop_code, sub_folder_hint

logger = logging.getLogger("cxrviewer")

#: Asked before the CLI's own hints: here the results file is REPORT/results.csv.
FLAG_HINTS: dict[type, str] = {
    LabelsFileError: "--labels",
    UnknownResultsFileError: "--report / --overwrite",
    OutputInUseError: "--report",
    SameFileError: "--report / --out",
}


def add_parser(sub) -> argparse.ArgumentParser:
    s = sub.add_parser(
        "validate", help="check a model on your own labelled films: AUROC with CIs, calibration, subgroups",
        description="Score labelled films (as `score` does, resumable) and report each finding's AUROC with a 95% "
        "bootstrap CI, sensitivity/specificity at the model's threshold, Brier score and calibration, overall and "
        "per view position, sex and age band: REPORT/metrics.json and REPORT/index.html (docs/validation.md).",
    )
    s.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="film files and folders of them (PNG, JPEG, TIFF, BMP, DICOM); only those the labels file lists are scored")
    s.add_argument("--labels", type=Path, required=True, metavar="LABELS.csv",
                   help="the films' labels: NIH Data_Entry_2017 layout (Image Index, Finding Labels with |, Patient ID, "
                   "Patient Age, Patient Gender, View Position) or one-hot (a file column, one 0/1 column per finding); "
                   "films are matched by file name (required)")
    s.add_argument("--report", type=Path, required=True, metavar="DIR",
                   help="folder for results.csv (the scores; resumed by a rerun), metrics.json, index.html and its "
                   "figures (created if missing; required)")
    s.add_argument("--recursive", "-r", action="store_true", help="also take films in sub-folders (default: the folder itself only)")
    s.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples for the 95%% CIs; 0: no CIs (default: 1000)")
    s.add_argument("--seed", type=int, default=0, metavar="N", help="seed of the bootstrap (default: 0)")
    s.add_argument("--tune-thresholds", action="store_true",
                   help="also write a copy of the model (--out) whose thresholds are chosen on these films (Youden's J, "
                   "where a finding has at least 5 positive and 5 negative films; the others keep the model's) (default: no copy)")
    s.add_argument("--out", type=Path, metavar="M-site.onnx", help="with --tune-thresholds: the model copy to write (default: none; the model itself is never changed)")
    s.add_argument("--no-figures", action="store_true", help="no PNG figures (no matplotlib needed); the page shows the tables (default: figures)")
    s.add_argument("--batch-size", type=int, default=None, metavar="N", help="films per forward pass (default: 1 on CPU, 8 on a GPU, as score)")
    s.add_argument("--workers", type=int, default=None, metavar="N", help="films read and scored side by side (default: one per CPU core)")
    s.add_argument("--overwrite", action="store_true", help="score every film again instead of resuming REPORT/results.csv (default: resume)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar (default: a bar on a terminal)")
    add_model_options(s)
    return s


def check_args(args, parser: argparse.ArgumentParser) -> None:
    if args.tune_thresholds and args.out is None:
        parser.error("--tune-thresholds needs --out M-site.onnx (the model copy to write)")
    if args.out is not None and not args.tune_thresholds:
        parser.error("--out goes with --tune-thresholds")
    if args.out is not None and args.out.suffix.lower() != ".onnx":
        parser.error(f"--out {args.out}: the model copy's name must end in .onnx")
    if args.bootstrap < 0:
        parser.error("--bootstrap must be 0 or more")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")


def run(args) -> int:
    from ..batch import session_threads
    from ..io import list_films
    from ..validate import Bootstrap, summary_text, validate

    check_inputs(args.inputs)
    films = list_films(args.inputs, recursive=args.recursive)
    if not films:
        raise CxrError("No films found in the inputs (looked for .png .jpg .jpeg .tif .tiff .bmp .dcm and DICOM files)."
                       + sub_folder_hint(args.inputs, args.recursive))
    clf = load_classifier(args, threads=session_threads(args.workers, args.device))
    if clf.info.demo:
        logger.warning("validating the DEMO model: its figures mean nothing about any real model")

    bar = None
    redirect = contextlib.nullcontext()

    def start(n: int) -> None:
        nonlocal bar
        if not args.no_progress:
            from tqdm import tqdm

            bar = tqdm(total=n, unit="film", file=sys.stderr, dynamic_ncols=True, disable=None)

    def progress(result, done, total) -> None:
        if bar is not None:
            bar.n = done
            bar.refresh()

    if not args.no_progress:
        from tqdm.contrib.logging import logging_redirect_tqdm

        redirect = logging_redirect_tqdm()
    stop = threading.Event()
    stopped_by: list[int] = []
    resume = f"the scores so far are in {args.report / 'results.csv'}; run the same command again to resume."
    try:
        with ctrl_c_sets(stop, stopped_by), redirect:
            result = validate(
                films, args.labels, args.report, clf, boot=Bootstrap(args.bootstrap, args.seed),
                tune_to=args.out, batch_size=args.batch_size, workers=args.workers, cancel=stop,
                progress=progress, overwrite=args.overwrite, figures=not args.no_figures, before_scoring=start,
            )
    except KeyboardInterrupt:
        print(f"cxrviewer: interrupted; {resume}", file=sys.stderr)
        return stop_code(stopped_by)
    finally:
        if bar is not None:
            bar.close()
    print(f"{result.summary.line()} -> {args.report / 'results.csv'}", file=sys.stderr)
    if result.cancelled or stop.is_set():
        print(f"cxrviewer: interrupted before the report; {resume}", file=sys.stderr)
        return stop_code(stopped_by)
    print(summary_text(result.metrics, args.report))
    return EXIT_FAILED if result.failed else EXIT_OK
