"""``cxrviewer listen``: a DICOM node that scores the films it receives and sends the results back."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from ..errors import CxrError, NodeConfigError
from ..node.config import DEFAULT_SCORING, SCORING
from ..options import add_model_options
from .common import EXIT_OK, load_classifier

DEFAULT_SPOOL = Path("cxrviewer-spool")
_T = TypeVar("_T")


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "listen", help="run a DICOM node: receive films, score them, send the results back",
        description="Receive chest films by DICOM C-STORE (CR, DX, grayscale SC), score them, and send the results "
        "(Structured Report, Presentation State, Secondary Capture) back by C-STORE or DICOMweb STOW-RS. "
        "Every film is kept in the spool until its results are delivered; a restart resumes. See docs/dicom-node.md.",
    )
    p.add_argument("--ae-title", default="CXRVIEWER", help="this node's AE title (default: CXRVIEWER)")
    p.add_argument("--host", default="0.0.0.0", help="address to listen on (default: 0.0.0.0, every interface)")
    p.add_argument("--port", type=int, default=11112, help="port to listen on (default: 11112; 0 picks a free one)")
    p.add_argument("--send-to", action="append", default=[], metavar="AE@HOST:PORT|URL",
                   help="where results go: a DICOM AE (AE@HOST:PORT) or a DICOMweb service root (https://HOST/dicom-web); repeatable (no default: required unless --status, --retry-parked or --retry-failed)")
    p.add_argument("--outputs", default="sr,gsps", help="result objects, comma-separated among sr, gsps, sc (default: sr,gsps)")
    p.add_argument("--spool", type=Path, default=None, metavar="DIR", help="folder for films, results and the job table (default: ./cxrviewer-spool)")
    p.add_argument("--status", action="store_true", help="print the spool's job counts, parked, incomplete and failed jobs, and exit")
    p.add_argument("--retry-parked", action="store_true", help="give parked deliveries a new round of attempts, then exit")
    p.add_argument("--retry-failed", action="store_true",
                   help="score failed and incomplete jobs again (only the results they lack are written), then exit; "
                   "the running node takes them within a second, or the next start does")
    p.add_argument("--allow-ae", action="append", default=[], metavar="AE", help="accept associations only from this calling AE title; repeatable (default: any)")
    p.add_argument("--allow-host", action="append", default=[], metavar="ADDR[/BITS]", help="accept associations only from this address or network; repeatable (default: any)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="TLS certificate for the listening port (with --tls-key; default: no TLS)")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="TLS private key (default: no TLS)")
    p.add_argument("--tls-ca", type=Path, metavar="PEM", help="CA bundle: callers must present a certificate it signed (default: not asked)")
    p.add_argument("--max-associations", type=int, default=8, metavar="N", help="simultaneous associations (default: 8)")
    p.add_argument("--max-object-mb", type=float, default=256, metavar="MB", help="largest object accepted, in MB (default: 256)")
    p.add_argument("--min-free-mb", type=float, default=64, metavar="MB",
                   help="room the spool's disk keeps free beyond a film and its results; a film that would leave less is "
                   "refused with C-STORE status 0xA700 (default: 64)")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="films scored side by side (default: one per CPU core)")
    p.add_argument("--scoring", choices=SCORING, default=DEFAULT_SCORING,
                   help="what the scoring workers are: threads of the node, or processes of their own that read, score "
                   f"and write each film's results (default: {DEFAULT_SCORING}; see docs/dicom-node.md)")
    p.add_argument("--send-associations", type=int, default=2, metavar="N",
                   help="associations (or STOW-RS requests) a destination gets at once when results wait; 1 for a "
                   "PACS that limits them (default: 2)")
    p.add_argument("--max-attempts", type=int, default=6, metavar="N", help="delivery attempts before results are parked (default: 6)")
    p.add_argument("--retry-delay", type=float, default=5.0, metavar="S", help="first wait before a new attempt, doubled each time up to 10 minutes (default: 5)")
    p.add_argument("--keep-days", type=float, default=7, metavar="DAYS", help="days a film and its results stay in the spool once delivered (default: 7)")
    p.add_argument("--anonymize", action="store_true", help="results without the patient's identity (UIDs kept; default: the source's identity, so results join the study)")
    p.add_argument("--score-all", action="store_true", help="also score films the model does not read by their header (a lateral view, another body part or modality) and send their results (default: such films end not_applicable, with no results sent)")
    add_model_options(p)
    return p


def _spool_only(args) -> bool:
    """--status, --retry-parked, --retry-failed: work on a spool's table, no node started."""
    return bool(args.status or args.retry_parked or args.retry_failed)


def check_args(args, parser: argparse.ArgumentParser) -> None:
    if _spool_only(args):
        what = next(f for f, on in (("--status", args.status), ("--retry-parked", args.retry_parked),
                                    ("--retry-failed", args.retry_failed)) if on)
        if args.spool is None and not (DEFAULT_SPOOL / "jobs.sqlite").is_file():
            parser.error(f"{what} needs --spool DIR, the folder of the node's films and job table "
                         f"(./{DEFAULT_SPOOL} is not a node's spool)")
        if args.spool is not None and not (args.spool / "jobs.sqlite").is_file():
            parser.error(f"--spool {args.spool} is not a node's spool folder (it has no jobs.sqlite); name the folder the node uses")
        args.spool = args.spool or DEFAULT_SPOOL
        return
    args.spool = args.spool or DEFAULT_SPOOL
    if not args.send_to:
        parser.error("--send-to is required: name where the results go (AE@HOST:PORT or a DICOMweb URL)")
    if not 0 <= args.port < 65536:
        parser.error("--port must be between 0 and 65535")
    for name in ("max_associations", "workers", "max_attempts", "send_associations"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.keep_days < 0:
        parser.error("--keep-days must be 0 or more")
    if args.min_free_mb < 0:
        parser.error("--min-free-mb must be 0 or more")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_ca is not None and args.tls_cert is None:
        parser.error("--tls-ca needs --tls-cert and --tls-key")


def run(args) -> int:
    from ..node.spool import Spool

    if _spool_only(args):
        spool = Spool(args.spool, readonly=not (args.retry_parked or args.retry_failed))
        try:
            if args.retry_parked:
                print(f"{spool.retry_parked()} parked deliveries will be tried again by the running node", file=sys.stderr)
            if args.retry_failed:
                n, gone = spool.retry_failed()
                print(f"{n} failed or incomplete job(s) will be scored again by the running node (or at its next start)",
                      file=sys.stderr)
                if gone:
                    print(f"{len(gone)} cannot be: their film was removed from the spool (older than --keep-days); send "
                          f"them again: {', '.join(gone[:20])}", file=sys.stderr)
            if args.status:
                print_status(spool)
        finally:
            spool.close()
        return EXIT_OK
    return _listen(args)


def print_status(spool) -> None:
    from ..node.spool import INCOMPLETE

    counts = spool.counts()
    print(f"spool: {spool.root}")
    print("jobs:  " + ", ".join(f"{state} {n}" for state, n in counts.items()))
    parked = spool.parked()
    if parked:
        print(f"parked ({len(parked)}):")
        for p in parked:
            print(f"  {p.uid} -> {p.destination}: {p.attempts} attempts; {p.error}")
    missing = spool.missing()
    waiting = [m for m in missing if m.retry_at is not None]
    if waiting:
        print(f"results waiting to be written again ({len(waiting)}):")
        for m in waiting[:20]:
            print(f"  {m.uid} {m.kind}: next try in {max(0, m.retry_at - time.time()):.0f} s; {m.error}")
    incomplete = [m for m in missing if m.state == INCOMPLETE]
    if incomplete:
        jobs = len({m.uid for m in incomplete})
        print(f"incomplete ({jobs}; partly delivered: these results are missing; --retry-failed or sending the film again "
              "scores it again):")
        for m in incomplete[:20]:
            print(f"  {m.uid} {m.kind}: {m.error}")
    failed = spool.failed()
    if failed:
        print(f"failed ({len(failed)}; no results; --retry-failed or sending the film again scores it again):")
        for job in failed[-20:]:
            print(f"  {job.uid}: {job.error}")
    from ..node.spool import NOT_APPLICABLE

    outside = spool.jobs(NOT_APPLICABLE)
    if outside:
        print(f"not applicable ({len(outside)}; the model does not read them, no results):")
        for job in outside[-20:]:
            print(f"  {job.uid}: {job.error}")


def _flag(flag: str, make: Callable[[], _T]) -> _T:
    """``make()``, its :class:`NodeConfigError` naming ``flag``, the option at fault."""
    try:
        return make()
    except NodeConfigError as exc:
        exc.flags = flag
        raise


def _listen(args) -> int:
    import ipaddress

    try:
        import dicomweb_client  # noqa: F401
        import pynetdicom  # noqa: F401
    except ImportError as exc:
        raise CxrError(f"The DICOM node needs pynetdicom and dicomweb-client ({exc}). Install them with "
                       "`pip install 'cxrviewer[node]'`.") from None

    from ..batch import default_workers, session_threads
    from ..dimse import check_ae_title, parse_destination
    from ..node import NodeConfig, Tls, parse_outputs
    from ..node.scp import tls_context
    from ..node.service import Node

    for entry in args.allow_host:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            error = NodeConfigError(f"{entry!r} is not an IP address or network (e.g. 10.1.2.3 or 10.1.0.0/16).")
            error.flags = "--allow-host"
            raise error from None
    tls = Tls(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
    if tls is not None:  # checked here, so that an error names these flags and not --port
        _flag("--tls-cert / --tls-key" + (" / --tls-ca" if tls.ca else ""), lambda: tls_context(tls))
    ae_title = _flag("--ae-title", lambda: check_ae_title(args.ae_title))
    destinations = _flag("--send-to", lambda: tuple(parse_destination(d) for d in args.send_to))
    outputs = _flag("--outputs", lambda: parse_outputs(args.outputs))
    allowed_aes = _flag("--allow-ae", lambda: tuple(check_ae_title(a, "calling AE title") for a in args.allow_ae))
    clf = load_classifier(args, threads=session_threads(args.workers, args.device))
    workers = args.workers or default_workers(clf.provider)
    config = NodeConfig(
        ae_title=ae_title, host=args.host, port=args.port,
        destinations=destinations, outputs=outputs,
        spool=args.spool, allowed_aes=allowed_aes,
        allowed_hosts=tuple(args.allow_host), tls=tls, max_associations=args.max_associations,
        max_object_bytes=int(args.max_object_mb * 1024 * 1024), min_free_bytes=int(args.min_free_mb * 1024 * 1024),
        workers=workers, max_attempts=args.max_attempts,
        retry_delay=args.retry_delay, keep_days=args.keep_days, anonymize=args.anonymize,
        scoring=args.scoring, send_associations=args.send_associations, score_all=args.score_all,
    )
    node = Node(config, clf, workers=workers)
    stop = threading.Event()

    def on_signal(signum, frame) -> None:
        stop.set()
        # a second signal stops at once; whatever was acknowledged is in the spool already
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    host, port = _flag("--host / --port", node.start)
    demo = " (DEMO model: results are not for diagnosis; for a real model see docs/models.md)" if clf.info.demo else ""
    print(f"cxrviewer: listening as {config.ae_title} on {host}:{port}, sending {','.join(config.outputs)} to "
          f"{', '.join(str(d) for d in config.destinations)}; spool {config.spool}{demo}", file=sys.stderr, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        node.stop()
    print("cxrviewer: stopped", file=sys.stderr, flush=True)
    return EXIT_OK
