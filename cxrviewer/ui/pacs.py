"""The app's PACS destination and the two jobs on it: a C-ECHO test and sending a film's results.

:class:`PacsTarget` is what the preferences hold (persisted with ``QSettings`` by
:func:`load_target` / :func:`save_target`). The jobs run on the session's pool: :func:`echo`
asks the destination for a C-ECHO (PS3.7 9.1.5, the Verification service), :func:`send_results`
builds the chosen objects with the exporters behind File ▸ Export and ``cxrviewer export`` and
C-STOREs them as the DICOM node's sender does (:func:`cxrviewer.dimse.store.send_dicom`); the
C-ECHO is :func:`cxrviewer.dimse.echo.echo`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QSettings

from ..dimse.destinations import DicomDestination, check_ae_title
from ..dimse.echo import echo as dimse_echo
from ..dimse.store import send_dicom, unreachable
from ..errors import NodeConfigError, PacsSendError
from ..types import Film, Prediction
from .workers import export_annotated

logger = logging.getLogger(__name__)

#: result object → the export format that builds it, and its name in messages
KINDS = {"sr": ("dicom-sr", "Structured Report"), "gsps": ("dicom-gsps", "Presentation State"),
         "sc": ("dicom-sc", "Secondary Capture")}
TIMEOUT = 15.0  # seconds for each network step: a PACS that does not answer is said, not waited for


@dataclass(frozen=True)
class PacsTarget:
    """Where File ▸ Send to PACS sends, and what."""

    ae_title: str = ""
    host: str = ""
    port: int = 104
    calling_ae: str = "CXRVIEWER"
    outputs: tuple[str, ...] = ("sr", "gsps")

    def check(self) -> DicomDestination:
        """The destination, or :class:`NodeConfigError` saying which field is wrong."""
        if not self.ae_title.strip() or not self.host.strip():
            raise NodeConfigError("No PACS destination is set: give its AE title, host and port in File ▸ PACS destination.")
        check_ae_title(self.calling_ae, "calling AE title (ours)")
        if not 0 < self.port < 65536:
            raise NodeConfigError(f"Port {self.port} is not a TCP port: give one between 1 and 65535.")
        if not self.outputs:
            raise NodeConfigError("No result object is chosen: tick SR, GSPS or SC.")
        return DicomDestination(check_ae_title(self.ae_title, "PACS AE title"), self.host.strip(), self.port)

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def load_target(store: QSettings) -> PacsTarget:
    """The destination saved in ``store`` (INI files give text back: everything is converted)."""
    d = PacsTarget()
    try:
        port = int(store.value("pacs/port", d.port))
    except (TypeError, ValueError):
        port = d.port
    raw = store.value("pacs/outputs", ",".join(d.outputs))
    names = raw if isinstance(raw, list) else str(raw or "").split(",")
    outputs = tuple(n for n in KINDS if n in {str(x).strip().lower() for x in names})
    return PacsTarget(
        str(store.value("pacs/ae_title", d.ae_title) or ""), str(store.value("pacs/host", d.host) or ""),
        port, str(store.value("pacs/calling_ae", d.calling_ae) or d.calling_ae), outputs,
    )


def save_target(store: QSettings, t: PacsTarget) -> None:
    for key, value in (("ae_title", t.ae_title), ("host", t.host), ("port", t.port),
                       ("calling_ae", t.calling_ae), ("outputs", ",".join(t.outputs))):
        store.setValue(f"pacs/{key}", value)
    store.sync()


def _reach(dest: DicomDestination) -> None:
    """Raise with the reason when nothing listens at ``dest`` (pynetdicom reports that as a bare abort)."""
    why = unreachable(dest, TIMEOUT)
    if why is not None:
        raise PacsSendError(f"{dest} {why}: check the host and port, and that the PACS is running.")


def echo(target: PacsTarget) -> str:
    """C-ECHO the destination; returns what to say on success, raises :class:`CxrError` with the reason."""
    dest = target.check()
    _reach(dest)
    dimse_echo(target.calling_ae.strip(), dest, TIMEOUT)
    return f"{dest} answered the C-ECHO"


@dataclass(frozen=True)
class Sent:
    """What :func:`send_results` stored: the destination and each object's SOP Instance UID by kind."""

    destination: str
    film: str
    uids: dict[str, str]

    def line(self) -> str:
        names = [KINDS[k][1] for k in self.uids]
        names = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        return f"Sent the {names} of {self.film} to {self.destination}"


def send_results(target: PacsTarget, film: Film, prediction: Prediction, info, options) -> Sent:
    """Build the chosen result objects of ``film`` in a temporary folder and C-STORE them to ``target``."""
    import pydicom

    dest = target.check()
    with tempfile.TemporaryDirectory(prefix="cxrviewer-send-") as tmp:
        files: dict[str, Path] = {}
        for kind in target.outputs:
            fmt = KINDS[kind][0]
            files[kind] = export_annotated(Path(tmp) / f"{kind}.dcm", film, prediction, info, options, fmt)
        _reach(dest)
        outcome = send_dicom(target.calling_ae.strip(), dest, list(files.values()), timeout=TIMEOUT)
        errors = [f"{KINDS[k][1]}: {outcome[p]}" for k, p in files.items() if outcome.get(p)]
        if errors:
            stored = [KINDS[k][1] for k, p in files.items() if not outcome.get(p)]
            also = f" ({', '.join(stored)} stored)" if stored else ""
            raise PacsSendError(f"Not sent to {dest}{also}: " + "; ".join(errors))
        uids = {k: str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for k, p in files.items()}
    logger.info("sent %s results of one film to %s", ",".join(uids), dest)
    return Sent(str(dest), film.name, uids)


def send_reason(film: Film | None, prediction: Prediction | None) -> str | None:
    """Why the current film's results cannot be sent, or None when they can."""
    if film is None or prediction is None:
        return "Open a film and wait for its findings first."
    from ..dicom.source import source_kind

    if source_kind(film) != "dicom":
        # PS3.3 A.35.13 / A.33.1: an SR and a Presentation State reference a DICOM image, and
        # the results join the film's study in the PACS: a PNG or JPEG has neither
        return (
            f"{film.name} is not a DICOM image: its results would have no study to join in the "
            "PACS. Open the film's DICOM file to send its results."
        )
    return None
