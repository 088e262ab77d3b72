"""What ``cxrviewer query``, ``retrieve`` and ``score --pacs`` share: the PACS, the filters, the
cache and the retrieve options, and turning them into :mod:`cxrviewer.dimse` objects."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger("cxrviewer")


def add_connection_options(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--pacs", required=required, metavar="AE@HOST:PORT|URL",
                   help="the PACS: a DICOM AE (AE_TITLE@HOST:PORT, C-FIND/C-GET/C-MOVE) or a DICOMweb "
                        "service (https://HOST/dicom-web, QIDO-RS/WADO-RS)" + ("" if required else " (default: none, score the INPUTs)"))
    p.add_argument("--calling-ae", default="CXRVIEWER", metavar="AE", help="our AE title, as the PACS knows us (default: CXRVIEWER)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds to wait for each network step (default: 30)")
    p.add_argument("--tls-ca", type=Path, metavar="PEM", help="TLS towards the PACS, whose certificate this CA bundle must have signed (DICOM TLS, or https) (default: no TLS; https with the system's CAs)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="with TLS: our certificate, for a PACS that asks for one (with --tls-key) (default: none)")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="with TLS: our private key (default: none)")


def add_filter_options(p: argparse.ArgumentParser, study_uids: bool = True) -> None:
    f = p.add_argument_group("which studies (all given must match)")
    f.add_argument("--patient-id", default="", metavar="ID", help="Patient ID (wildcards * and ? allowed) (default: any)")
    f.add_argument("--patient-name", default="", metavar="NAME", help='Patient Name, DICOM style with wildcards: "DOE^J*" (default: any)')
    f.add_argument("--accession", default="", metavar="A", help="Accession Number (default: any)")
    f.add_argument("--study-date", default="", metavar="DATE", help="YYYYMMDD, a range YYYYMMDD-YYYYMMDD (either end open), or today (default: any)")
    f.add_argument("--modality", default="CR,DX", metavar="LIST", help="modalities, comma-separated (default: CR,DX); only their series are retrieved")
    if study_uids:
        f.add_argument("--study", action="append", default=[], metavar="UID", help="a Study Instance UID (repeatable) (default: any)")


def add_retrieve_options(p: argparse.ArgumentParser, default_cache: bool) -> None:
    r = p.add_argument_group("retrieve")
    r.add_argument("--method", choices=("get", "move"), default="get",
                   help="get: C-GET, the films come back on our association (default); move: C-MOVE to a "
                        "Storage SCP we open on --move-to-port (the PACS must know our AE title there). "
                        "A DICOMweb PACS always uses WADO-RS")
    r.add_argument("--move-to-port", type=int, metavar="PORT", help="with --method move: the port our temporary Storage SCP listens on (default: none)")
    r.add_argument("--move-host", default="", metavar="ADDR", help="with --method move: the address it listens on (default: all)")
    if default_cache:
        r.add_argument("--cache", type=Path, default=None, metavar="DIR", help="the retrieve cache (default: ~/.cache/cxrviewer/pacs)")
    r.add_argument("--cache-size", type=float, default=None, metavar="GB",
                   help="keep the cache within this size, removing the least recently used series first"
                        + (" (default: 10)" if default_cache else " (default: no limit)"))


def check_pacs_args(args, parser: argparse.ArgumentParser) -> None:
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.tls_cert is not None and args.tls_ca is None:
        parser.error("--tls-cert needs --tls-ca (TLS towards the PACS)")
    if args.timeout <= 0:
        parser.error("--timeout must be more than 0")
    if getattr(args, "method", None) == "move" and args.move_to_port is None and not args.pacs.lower().startswith("http"):
        parser.error("--method move needs --move-to-port")
    if getattr(args, "move_to_port", None) is not None and not 0 < args.move_to_port < 65536:
        parser.error("--move-to-port must be between 1 and 65535")
    if getattr(args, "cache_size", None) is not None and args.cache_size <= 0:
        parser.error("--cache-size must be more than 0")


def connection(args):
    from ..dimse import parse_destination
    from ..dimse.query import ClientTls, Connection
    from ..errors import PacsQueryError

    dest = parse_destination(args.pacs)
    if args.tls_ca is not None and str(dest).startswith("http://"):
        raise PacsQueryError(f"{dest} is plain http: TLS needs an https:// address.")
    tls = ClientTls(args.tls_ca, args.tls_cert, args.tls_key) if args.tls_ca is not None else None
    return Connection(dest, calling_ae=args.calling_ae, timeout=args.timeout, tls=tls)


def study_query(args):
    from ..dimse.query import StudyQuery, parse_modalities

    return StudyQuery(patient_id=args.patient_id.strip(), patient_name=args.patient_name.strip(),
                      accession=args.accession.strip(), study_date=args.study_date.strip(),
                      modalities=parse_modalities(args.modality), study_uids=tuple(getattr(args, "study", ()) or ()))


def cache(args, folder: Path | None):
    from ..dimse.retrieve import DEFAULT_CACHE_BYTES, RetrieveCache, default_cache_dir

    if folder is None:
        folder = getattr(args, "cache", None) or default_cache_dir()
        limit = int(args.cache_size * 2**30) if args.cache_size is not None else DEFAULT_CACHE_BYTES
    else:
        limit = int(args.cache_size * 2**30) if args.cache_size is not None else None
    return RetrieveCache(folder, limit)


def retrieve(args, folder: Path | None, show_progress: bool = True):
    """Find the studies of ``args`` and retrieve their series into the cache (``folder``, or the
    default cache); returns :class:`~cxrviewer.dimse.retrieve.Retrieved`."""
    from ..dimse.retrieve import retrieve_studies
    from ..errors import PacsQueryError

    conn = connection(args)
    query = study_query(args)
    target = cache(args, folder)
    bar = None
    if show_progress and not getattr(args, "no_progress", False):
        from tqdm import tqdm

        bar = tqdm(unit="film", file=sys.stderr, dynamic_ncols=True, disable=None, desc="retrieving")

    received: dict[str, int] = {}

    def progress(p) -> None:
        received[p.series_uid] = p.received
        if bar is not None:
            bar.set_postfix_str(f"series {min(p.series_done + 1, p.series_total)}/{p.series_total}")
            bar.n = sum(received.values())
            bar.refresh()

    try:
        from ..dimse.query import find_studies

        studies = find_studies(conn, query)
        if not studies:
            raise PacsQueryError(f"{conn.source}: no study matches the filters; check them with `cxrviewer query`.")
        result = retrieve_studies(conn, query, target, studies=studies, method=args.method,
                                  move_port=args.move_to_port, move_host=args.move_host, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    print(f"{len(result.studies)} stud{'y' if len(result.studies) == 1 else 'ies'}, {len(result.series)} series, "
          f"{len(result.files)} film(s): {result.fetched} series retrieved, {result.from_cache} already in "
          f"{target.root}", file=sys.stderr)
    return result
