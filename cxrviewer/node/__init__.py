"""A DICOM node: films arrive from a PACS or a modality, results go back, nothing is lost.

:mod:`.scp` takes films (C-STORE, C-ECHO) into :mod:`.spool` (files and a job table),
:mod:`.service` scores them on a worker pool and writes the results (:mod:`.outputs`),
:mod:`.sender` delivers them (C-STORE or STOW-RS) with retries. See docs/dicom-node.md.
"""

from .config import (
    DicomDestination,
    NodeConfig,
    Tls,
    WebDestination,
    parse_destination,
    parse_outputs,
)
from .service import Node
from .spool import Spool

__all__ = ["DicomDestination", "Node", "NodeConfig", "Spool", "Tls", "WebDestination", "parse_destination", "parse_outputs"]
