"""Asking an AE whether it is there: C-ECHO, the Verification service (PS3.7 9.1.5)."""

from __future__ import annotations

from ..errors import PacsSendError
from .destinations import DicomDestination


def echo(calling_ae: str, dest: DicomDestination, timeout: float) -> None:
    """C-ECHO ``dest`` as ``calling_ae``, waiting at most ``timeout`` seconds for each network
    step; returns when it answered with Success, else raises :class:`PacsSendError` with the
    reason."""
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    ae.add_requested_context(Verification)
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
    if not assoc.is_established:
        why = "rejected the association" if assoc.is_rejected else "aborted the association"
        raise PacsSendError(
            f"{dest} {why}: check that its AE title is {dest.ae_title} and that it accepts "
            f"{calling_ae} from this computer."
        )
    try:
        status = assoc.send_c_echo()
    finally:
        if assoc.is_established:
            assoc.release()
    if not status or "Status" not in status:
        raise PacsSendError(f"{dest} did not answer the C-ECHO within {timeout:.0f} s.")
    if status.Status != 0x0000:
        raise PacsSendError(f"{dest} answered the C-ECHO with status 0x{status.Status:04X}.")
