"""A DICOM node: films arrive from a PACS or a modality, results go back, nothing is lost.

:mod:`.scp` takes films (C-STORE, C-ECHO) into :mod:`.spool` (files and a job table),
:mod:`.service` scores them on a worker pool and writes the results (:mod:`.outputs`),
:mod:`.sender` delivers them (C-STORE or STOW-RS, through :mod:`cxrviewer.dimse`) with
retries. See docs/dicom-node.md.

The package itself imports only the configuration (destinations are
:mod:`cxrviewer.dimse`'s), so the CLI reads it without loading the node's service, spool or
scoring workers. The app never imports the node: it sends through :mod:`cxrviewer.dimse`.
"""

from .config import NodeConfig, Tls, parse_outputs

__all__ = ["NodeConfig", "Tls", "parse_outputs"]
