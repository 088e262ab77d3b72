"""``cxrviewer listen``: a DICOM node that scores the films it receives and sends the results back."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from ..errors import CxrError
from ..node.config import DEFAULT_SCORING, SCORING
from ..options import add_model_options
from .common import EXIT_OK, load_classifier


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
                   help="where results go: a DICOM AE (AE@HOST:PORT) or a DICOMweb service root (https://HOST/dicom-web); repeatable (no default: required unless --status or --retry-parked)")
    p.add_argument("--outputs", default="sr,gsps", help="result objects, comma-separated among sr, gsps, sc (default: sr,gsps)")
    p.add_argument("--spool", type=Path, default=Path("cxrviewer-spool"), metavar="DIR", help="folder for films, results and the job table (default: ./cxrviewer-spool)")
    p.add_argument("--status", action="store_true", help="print the spool's job counts, parked and failed jobs, and exit")
    p.add_argument("--retry-parked", action="store_true", help="give parked deliveries a new round of attempts, then exit")
    p.add_argument("--allow-ae", action="append", default=[], metavar="AE", help="accept associations only from this calling AE title; repeatable (default: any)")
    p.add_argument("--allow-host", action="append", default=[], metavar="ADDR[/BITS]", help="accept associations only from this address or network; repeatable (default: any)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="TLS certificate for the listening port (with --tls-key; default: no TLS)")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="TLS private key (default: no TLS)")
    p.add_argument("--tls-ca", type=Path, metavar="PEM", help="CA bundle: callers must present a certificate it signed (default: not asked)")
    p.add_argument("--max-associations", type=int, default=8, metavar="N", help="simultaneous associations (default: 8)")
    p.add_argument("--max-object-mb", type=float, default=256, metavar="MB", help="largest object accepted, in MB (default: 256)")
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


def check_args(args, parser: argparse.ArgumentParser) -> None:
    if args.status or args.retry_parked:
        return
    if not args.send_to:
        parser.error("--send-to is required: name where the results go (AE@HOST:PORT or a DICOMweb URL)")
    if not 0 <= args.port < 65536:
        parser.error("--port must be between 0 and 65535")
    for name in ("max_associations", "workers", "max_attempts"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.keep_days < 0:
        parser.error("--keep-days must be 0 or more")
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_ca is not None and args.tls_cert is None:
        parser.error("--tls-ca needs --tls-cert and --tls-key")


def run(args) -> int:
    from ..node.spool import Spool

    if args.status or args.retry_parked:
        spool = Spool(args.spool, readonly=not args.retry_parked)
        try:
            if args.retry_parked:
                print(f"{spool.retry_parked()} parked deliveries will be tried again by the running node", file=sys.stderr)
                return EXIT_OK
            print_status(spool)
        finally:
            spool.close()
        return EXIT_OK
    return _listen(args)


def print_status(spool) -> None:
    counts = spool.counts()
    print(f"spool: {spool.root}")
    print("jobs:  " + ", ".join(f"{state} {n}" for state, n in counts.items()))
    parked = spool.parked()
    if parked:
        print(f"parked ({len(parked)}):")
        for p in parked:
            print(f"  {p.uid} -> {p.destination}: {p.attempts} attempts; {p.error}")
    failed = spool.failed()
    if failed:
        print(f"failed ({len(failed)}; no results):")
        for job in failed[-20:]:
            print(f"  {job.uid}: {job.error}")
    from ..node.spool import NOT_APPLICABLE

    outside = spool.jobs(NOT_APPLICABLE)
    if outside:
        print(f"not applicable ({len(outside)}; the model does not read them, no results):")
        for job in outside[-20:]:
            print(f"  {job.uid}: {job.error}")


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
    from ..node.service import Node

    for entry in args.allow_host:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise CxrError(f"{entry!r} is not an IP address or network (e.g. 10.1.2.3 or 10.1.0.0/16) (--allow-host)") from None
    tls = Tls(args.tls_cert, args.tls_key, args.tls_ca) if args.tls_cert else None
    clf = load_classifier(args, threads=session_threads(args.workers, args.device))
    workers = args.workers or default_workers(clf.provider)
    config = NodeConfig(
        ae_title=check_ae_title(args.ae_title), host=args.host, port=args.port,
        destinations=tuple(parse_destination(d) for d in args.send_to), outputs=parse_outputs(args.outputs),
        spool=args.spool, allowed_aes=tuple(check_ae_title(a, "calling AE title") for a in args.allow_ae),
        allowed_hosts=tuple(args.allow_host), tls=tls, max_associations=args.max_associations,
        max_object_bytes=int(args.max_object_mb * 1024 * 1024), workers=workers, max_attempts=args.max_attempts,
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
    host, port = node.start()
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
