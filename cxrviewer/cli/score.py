"""``cxrviewer score``: films and folders into a resumable results CSV."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ..errors import CxrError, OutputError, SameFileError
from ..options import add_display_options, add_model_options
from .common import check_inputs, load_classifier, sub_folder_hint
from .common import ctrl_c_sets as _ctrl_c_sets
from .common import stop_code as _stop_code

logger = logging.getLogger("cxrviewer")


def add_parser(sub) -> argparse.ArgumentParser:
    s = sub.add_parser("score", help="score films and folders into a CSV", description="Score PNG/JPEG/DICOM films and folders into a CSV (resumes an existing --out).")
    s.add_argument("inputs", nargs="*", type=_input, metavar="INPUT", help="film files (PNG, JPEG, TIFF, BMP, DICOM) and folders of them; also URLs (s3://, gs://, file://); or none, with --pacs")
    s.add_argument("--out", type=str, required=True, metavar="CSV_OR_DIR", help="results CSV, or a folder (an existing one, or a name ending in /) of Parquet shards; a folder may be a URL (s3://bucket/results/, gs://, file://); one of ours that exists is resumed (required)")
    s.add_argument("--recursive", "-r", action="store_true", help="also score films in sub-folders (default: the folder itself only)")
    s.add_argument("--export-dir", type=_input, metavar="DIR", help="also write an annotated PNG per scored film into DIR, a folder or a URL (s3://, gs://, file://) (default: none)")
    s.add_argument("--dicom-out", type=_input, metavar="DIR", help="also write DICOM results of each DICOM film into DIR/<StudyInstanceUID>/<SOPInstanceUID>.<sr|pr|sc>.dcm; resumed with --out (default: none)")
    s.add_argument("--dicom-formats", type=_dicom_formats, default=None, metavar="LIST", help="with --dicom-out: which, comma-separated: sr (Structured Report), gsps (Presentation State), sc (Secondary Capture) (default: sr,gsps,sc)")
    s.add_argument("--batch-size", type=int, default=None, metavar="N", help="films per forward pass (default: 1 on CPU, the fastest there; 8 on a GPU)")
    s.add_argument("--workers", type=int, default=None, metavar="N", help="films read and scored side by side (default: one per CPU core; at most 4 feeding a GPU)")
    s.add_argument("--engine", choices=("local", "ray"), default="local", help="local: a thread pool on this machine (default); ray: Ray Data actors on a Ray cluster (the 'ray' extra)")
    s.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (host:6379, ray://host:10001 or auto; default: a local Ray runtime)")
    s.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="F", help="with --engine ray: GPU share per worker (default: 0, CPU workers of one core each)")
    s.add_argument("--overwrite", action="store_true", help="start --out afresh instead of resuming it (default: resume)")
    s.add_argument("--score-all", action="store_true", help="also score DICOM films the model does not read by their header (a lateral view, another body part or modality), their rows marked \"scored outside the model's use\" (default: such films get the status not_applicable and no scores)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar (default: a bar on a terminal)")
    add_model_options(s)
    add_display_options(s, "positives")
    from .pacs import add_connection_options, add_filter_options, add_retrieve_options

    pacs = s.add_argument_group("from a PACS (instead of INPUTs): retrieve the studies the filters select, then score them")
    add_connection_options(pacs, required=False)
    add_filter_options(s)
    add_retrieve_options(s, default_cache=True)
    return s


def check_args(args, parser: argparse.ArgumentParser) -> None:
    if args.pacs:
        from .pacs import check_pacs_args

        if args.inputs:
            parser.error("give INPUTs or --pacs, not both")
        check_pacs_args(args, parser)
    elif not args.inputs:
        parser.error("give the films to score (INPUT), or --pacs with filters")
    elif args.patient_id or args.patient_name or args.accession or args.study_date or args.study:
        parser.error("the study filters (--patient-id, --patient-name, --accession, --study-date, --study) go with --pacs")
    if args.batch_size is not None and args.batch_size < 1:
        parser.error("--batch-size must be at least 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.dicom_formats is not None and args.dicom_out is None:
        parser.error("--dicom-formats needs --dicom-out")
    if args.engine != "ray" and (args.ray_address or args.gpus_per_worker):
        parser.error("--ray-address and --gpus-per-worker go with --engine ray")
    if args.gpus_per_worker < 0:
        parser.error("--gpus-per-worker must be 0 or more")


def _input(text: str):
    from ..io import is_url

    return text if is_url(text) else Path(text)


def _dicom_formats(text: str) -> tuple[str, ...]:
    from ..dicom.folder import parse_formats

    try:
        return parse_formats(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args) -> int:
    from ..batch import ExportPlan, ExportTally, score_to_csv, session_threads
    from ..storage import check_writable_dir
    from ..io import is_url, list_films

    out = _results_target(args.out)
    if args.pacs:
        from .pacs import retrieve

        # the films land in the retrieve cache, always under the same names: a second run resumes
        paths = retrieve(args, None, show_progress=not args.no_progress).files
    else:
        check_inputs([p for p in args.inputs if not is_url(p)])
        paths = list_films(args.inputs, recursive=args.recursive)
    if not paths:
        raise CxrError("No films found in the inputs (looked for .png .jpg .jpeg .tif .tiff .bmp .dcm and DICOM files)."
                       + sub_folder_hint([p for p in args.inputs if not is_url(p)], args.recursive))
    clf = load_classifier(args, threads=session_threads(args.workers, args.device))
    args.classes.check(clf.info.labels)  # an unknown name fails now, not at the first picture
    if args.export_dir is not None:
        _refuse_film_folder(args.export_dir, paths)
        check_writable_dir(args.export_dir)
    if args.dicom_out is not None:
        try:
            _refuse_film_folder(args.dicom_out, paths, "the DICOM results")
        except SameFileError as exc:
            raise OutputError(str(exc)) from None  # an output folder, not the results file (--out)
        check_writable_dir(args.dicom_out)
    plan = None
    if args.export_dir is not None or args.dicom_out is not None:
        plan = ExportPlan(args.export_dir, args.dicom_out, args.dicom_formats, args.classes,
                          args.alpha, args.colormap, args.mode, overwrite=args.overwrite)
    tally = ExportTally()

    if clf.info.demo:  # before the bar is drawn: a line of its own
        logger.warning("scoring with a DEMO model: its probabilities are not for diagnosis "
                       "(for a real model see docs/models.md)")
    bar = None
    redirect = contextlib.nullcontext()
    if not args.no_progress:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        bar = tqdm(total=len(paths), unit="film", file=sys.stderr, dynamic_ncols=True, disable=None)
        # log lines during the run go through tqdm.write: above the bar, never glued onto it
        redirect = logging_redirect_tqdm()

    def progress(result, done, total) -> None:
        if bar is not None:
            bar.n = done
            bar.refresh()

    def score():
        if args.engine == "ray":
            from ..scale import RayOptions, score_on_ray

            options = RayOptions(args.ray_address, args.workers, args.gpus_per_worker, args.batch_size or 1)
            return score_on_ray(paths, clf.path, out, device=args.device, engine=clf.engine, options=options, cancel=stop,
                                progress=progress, overwrite=args.overwrite, exports=plan, tally=tally,
                                score_all=args.score_all)
        return score_to_csv(
            paths, clf, out, batch_size=args.batch_size, workers=args.workers, cancel=stop,
            progress=progress, overwrite=args.overwrite, exports=plan, tally=tally, score_all=args.score_all,
        )

    resume = f"rows scored so far are in {args.out}; run the same command again to resume."
    stop = threading.Event()
    stopped_by: list[int] = []
    try:
        with _ctrl_c_sets(stop, stopped_by), redirect:
            summary = score()
    except KeyboardInterrupt:  # the second Ctrl+C: stop at once
        print(f"cxrviewer: interrupted; {resume}", file=sys.stderr)
        return _stop_code(stopped_by)
    finally:
        if bar is not None:
            bar.close()
    print(f"{summary.line()} -> {args.out}", file=sys.stderr)
    if args.dicom_out is not None:
        print(_dicom_line(tally, plan), file=sys.stderr)
    if stop.is_set():
        print(f"cxrviewer: interrupted; {resume}", file=sys.stderr)
        return _stop_code(stopped_by)
    if summary.exit_code == 0 and tally.dicom_failed:
        return 1  # every film scored, but not every DICOM result asked for was made
    return summary.exit_code


def _results_target(out: str) -> str:
    """``--out`` as the results code takes it: a ``file://`` URL is the local path it names (a
    shared file system mounted here: its OS lock and renames apply); another URL is a results
    folder on an object store (:class:`~cxrviewer.results.ResultsDir`)."""
    import urllib.parse

    from ..io import is_url

    if not is_url(out):
        return out
    parts = urllib.parse.urlsplit(out)
    if parts.scheme.lower() == "file" and parts.netloc in ("", "localhost"):
        return urllib.parse.unquote(parts.path)
    return out


def _dicom_line(tally, plan) -> str:
    from ..dicom.folder import FORMATS

    text = f"wrote {tally.dicom} DICOM result(s) ({', '.join(plan.dicom_formats or FORMATS)}) -> {plan.dicom}"
    if tally.stale:
        text += f"; {tally.stale} of them replace the results of a film that changed since (new SOP Instance UIDs)"
    if tally.dicom_failed:
        text += (f"; {tally.dicom_failed} could not be made (their films' rows say why in 'error' and keep their "
                 "probabilities; a rerun with the same --out tries them again)")
    if tally.same_uids:
        text += f"; {tally.same_uids} film(s) share the SOP Instance UID of another and get no results of their own"
    if tally.not_dicom:
        text += (f"; {tally.not_dicom} film(s) are not DICOM and get none: a DICOM result must point at "
                 "a DICOM image (export one as a DICOM Secondary Capture with `cxrviewer export`)")
    return text


def _refuse_film_folder(folder: Path | str, films: Sequence[Path | str], what: str = "the pictures") -> None:
    """Pictures (or DICOM results) written into a folder of films would overwrite films of the
    same name and be scored as films by the next run."""
    import os

    from ..io import is_url

    if is_url(folder):
        folder = _results_target(str(folder))  # file:// names a local folder
        if is_url(folder):
            return  # a store's prefix: not a folder of local films
    films = [f for f in films if not is_url(f)]

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
            raise SameFileError(f"{folder} holds films being scored: {what} would overwrite or mix with them. "
                                f"Choose another folder for {what}.")
