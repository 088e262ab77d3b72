"""Sending DICOM files to an AE: C-STORE (PS3.4 Annex B) with pynetdicom, one association a call.

Each file goes in its own transfer syntax (nothing is re-encoded on the way). Used by the node's
sender and by the app's Send to PACS.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path

from .destinations import DicomDestination

# C-STORE statuses that mean stored: success and the warnings (PS3.4 table B.2-1)
_STORED = {0x0000, 0xB000, 0xB006, 0xB007}


def _file_meta(path: Path) -> tuple[str, str]:
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    return str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID)


def send_dicom(calling_ae: str, dest: DicomDestination, files: Sequence[Path], timeout: float = 30) -> dict[Path, str | None]:
    """C-STORE ``files`` to ``dest`` on one association; for each file, None when stored, else why not."""
    from pynetdicom import AE

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    contexts = sorted({_file_meta(p) for p in files})
    for sop_class, syntax in contexts[:128]:  # PS3.8 9.3.2.2: at most 128 presentation contexts
        # each file goes in its own transfer syntax: nothing is re-encoded on the way
        ae.add_requested_context(sop_class, syntax)
    assoc = ae.associate(dest.host, dest.port, ae_title=dest.ae_title)
    if not assoc.is_established:
        why = "rejected the association" if assoc.is_rejected else unreachable(dest, timeout) or "aborted the association"
        return {p: f"{dest} {why}" for p in files}
    out: dict[Path, str | None] = {}
    try:
        for p in files:
            try:
                status = assoc.send_c_store(p)
            except (ValueError, RuntimeError, OSError) as exc:
                out[p] = f"{dest}: {exc}"
                continue
            if not status or "Status" not in status:
                out[p] = f"{dest} did not answer (the association timed out or was aborted)"
                if not assoc.is_established:
                    break
            elif status.Status in _STORED:
                out[p] = None
            else:
                out[p] = f"{dest} refused it with status 0x{status.Status:04X}"
    finally:
        if assoc.is_established:
            assoc.release()
    for p in files:
        out.setdefault(p, f"{dest}: the association ended before it was sent")
    return out


def unreachable(dest: DicomDestination, timeout: float) -> str | None:
    """Why ``dest`` cannot be reached over TCP, or None when it can (pynetdicom reports both as an abort)."""
    try:
        socket.create_connection((dest.host, dest.port), timeout=min(timeout, 5)).close()
    except OSError as exc:
        return f"could not be reached ({exc.strerror or type(exc).__name__})"
    return None
