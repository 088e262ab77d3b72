"""``cxrviewer query``: list the studies a PACS holds for the filters (C-FIND or QIDO-RS)."""

from __future__ import annotations

import argparse
import json
import sys

from .common import EXIT_OK
from .pacs import add_connection_options, add_filter_options, check_pacs_args, connection, study_query


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("query", help="list a PACS's studies (C-FIND / QIDO-RS)",
                       description="List the studies a PACS holds that match the filters: date, description, "
                                   "modalities, number of images and Study Instance UID, newest first.")
    add_connection_options(p)
    add_filter_options(p)
    p.add_argument("--json", action="store_true", help="print a JSON list, one object per study, keyed by DICOM keywords")
    return p


def check_args(args, parser: argparse.ArgumentParser) -> None:
    check_pacs_args(args, parser)


def run(args) -> int:
    from ..dimse.query import find_studies

    studies = find_studies(connection(args), study_query(args))
    if args.json:
        json.dump([s.as_json() for s in studies], sys.stdout, indent=1)
        sys.stdout.write("\n")
        return EXIT_OK
    if not studies:
        print("no study matches the filters", file=sys.stderr)
        return EXIT_OK
    rows = [("DATE", "PATIENT ID", "DESCRIPTION", "MODALITIES", "IMAGES", "STUDY INSTANCE UID")]
    for s in studies:
        date = f"{s.StudyDate[:4]}-{s.StudyDate[4:6]}-{s.StudyDate[6:]}" if len(s.StudyDate) == 8 else s.StudyDate
        rows.append((date, s.PatientID, s.StudyDescription, ",".join(s.ModalitiesInStudy),
                     "" if s.NumberOfStudyRelatedInstances is None else str(s.NumberOfStudyRelatedInstances),
                     s.StudyInstanceUID))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    return EXIT_OK
