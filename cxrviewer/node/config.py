"""How a node is set up: its AE, where results go, what it sends, its limits.

Plain frozen dataclasses made by the CLI (destinations by
:func:`cxrviewer.dimse.parse_destination`); nothing here touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..dimse.destinations import Destination
from ..errors import NodeConfigError

#: The result objects a node can send back (docs/dicom-results.md, docs/dicom-sc.md).
OUTPUTS = ("sr", "gsps", "sc")
DEFAULT_OUTPUTS = ("sr", "gsps")
#: What the node's scoring workers are: threads of the node's process, or worker processes of
#: their own, each reading, scoring and writing the results of a film (docs/dicom-node.md,
#: "Scoring workers"; :mod:`cxrviewer.node.workers`).
SCORING = ("threads", "processes")
DEFAULT_SCORING = "threads"

def parse_outputs(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(x.strip().lower() for x in text.split(",") if x.strip()))
    unknown = [n for n in names if n not in OUTPUTS]
    if unknown or not names:
        raise NodeConfigError(
            f"Unknown result object {', '.join(unknown) or '(none)'}; choose among {', '.join(OUTPUTS)}."
        )
    return names


@dataclass(frozen=True)
class Tls:
    """TLS for the listening port (PS3.15 B.1, the Basic TLS Secure Transport profile)."""

    cert: Path
    key: Path
    #: CA bundle to verify the callers' certificates; None: callers are not asked for one
    ca: Path | None = None


@dataclass(frozen=True)
class NodeConfig:
    ae_title: str = "CXRVIEWER"
    host: str = "0.0.0.0"
    port: int = 11112
    destinations: tuple[Destination, ...] = ()
    outputs: tuple[str, ...] = DEFAULT_OUTPUTS
    spool: Path = Path("cxrviewer-spool")
    #: calling AE titles allowed to associate (empty: any)
    allowed_aes: tuple[str, ...] = ()
    #: peer IP addresses allowed to associate (empty: any)
    allowed_hosts: tuple[str, ...] = ()
    tls: Tls | None = None
    max_associations: int = 8
    #: largest object accepted, in bytes (a chest film is 5–50 MB uncompressed)
    max_object_bytes: int = 256 * 1024 * 1024
    #: room the spool's disk keeps free beyond a film and its results (the job table's
    #: journal, the logs): a film that would leave less is refused with 0xA700
    min_free_bytes: int = 64 * 1024 * 1024
    #: films scored side by side (None: one per core, as `cxrviewer score`)
    workers: int | None = None
    #: delivery attempts before a result is parked
    max_attempts: int = 6
    #: first wait before a new attempt, doubled each time, at most :attr:`max_retry_delay`
    retry_delay: float = 5.0
    max_retry_delay: float = 600.0
    #: days a delivered (or failed) film and its results stay in the spool
    keep_days: float = 7.0
    #: what the results say about the patient: False keeps the source's identity (the results
    #: join the patient's study in the PACS, as a PACS expects)
    anonymize: bool = False
    #: associations (or STOW-RS requests) a destination gets at once when results are waiting
    send_associations: int = 2
    #: what the scoring workers are (:data:`SCORING`)
    scoring: str = DEFAULT_SCORING
    #: score films the model does not read by their header too (cxrviewer.applicability); by
    #: default they end ``not_applicable`` with no results
    score_all: bool = False

    def __post_init__(self) -> None:
        if self.send_associations < 1:
            raise NodeConfigError(f"A destination needs at least 1 association at a time, not {self.send_associations}.")
        if self.scoring not in SCORING:
            raise NodeConfigError(f"Unknown scoring workers {self.scoring!r}; choose {' or '.join(SCORING)}.")
