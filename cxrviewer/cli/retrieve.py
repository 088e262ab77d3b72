"""``cxrviewer retrieve``: copy a PACS's studies into a folder (C-GET, C-MOVE or WADO-RS)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import EXIT_OK
from .pacs import add_connection_options, add_filter_options, add_retrieve_options, check_pacs_args, retrieve


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("retrieve", help="copy a PACS's studies into a folder (C-GET / C-MOVE / WADO-RS)",
                       description="Retrieve the series of the chosen modalities of the studies the filters (or "
                                   "--study UIDs) select into DIR/<StudyInstanceUID>/<SeriesInstanceUID>/. A series "
                                   "already complete there is not fetched again; one that stops half-way is not kept.")
    add_connection_options(p)
    add_filter_options(p)
    p.add_argument("--to", type=Path, required=True, metavar="DIR", help="the folder to retrieve into (created if needed)")
    add_retrieve_options(p, default_cache=False)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (default: a bar on a terminal)")
    return p


def check_args(args, parser: argparse.ArgumentParser) -> None:
    check_pacs_args(args, parser)
    if not (args.study or args.patient_id or args.patient_name or args.accession or args.study_date):
        parser.error("say which studies: --patient-id, --patient-name, --accession, --study-date or --study UID")


def run(args) -> int:
    retrieve(args, args.to)
    return EXIT_OK
