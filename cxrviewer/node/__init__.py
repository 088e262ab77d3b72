"""A DICOM node: films arrive from a PACS or a modality, results go back, nothing is lost.

:mod:`.scp` takes films (C-STORE, C-ECHO) into :mod:`.spool` (files and a job table),
:mod:`.service` scores them on a worker pool and writes the results (:mod:`.outputs`),
:mod:`.sender` delivers them (C-STORE or STOW-RS) with retries. See docs/dicom-node.md.

The package itself imports only the configuration: the app's "Send to PACS" uses it (and
:mod:`.sender`) without loading the node's service, spool or scoring workers.
"""

from .config import (
    DicomDestination,
    NodeConfig,
    Tls,
    WebDestination,
    parse_destination,
    parse_outputs,
)

__all__ = ["DicomDestination", "NodeConfig", "Tls", "WebDestination", "parse_destination", "parse_outputs"]
