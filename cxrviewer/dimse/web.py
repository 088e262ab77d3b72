"""Sending DICOM files to a DICOMweb service: STOW-RS (PS3.18 10.5) with dicomweb-client."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from .destinations import WebDestination


def send_web(dest: WebDestination, files: Sequence[Path], timeout: float = 60) -> dict[Path, str | None]:
    """STOW-RS ``files`` to the DICOMweb service ``dest`` in one request (PS3.18 10.5)."""
    import pydicom
    import requests
    from dicomweb_client.api import DICOMwebClient

    client = DICOMwebClient(url=dest.url)
    datasets = [pydicom.dcmread(p) for p in files]
    try:
        response = client.store_instances(datasets)
    except (requests.RequestException, OSError, ValueError) as exc:
        return {p: f"{dest}: {type(exc).__name__}: {str(exc)[:200]}" for p in files}
    failed = {
        str(item.ReferencedSOPInstanceUID): int(getattr(item, "FailureReason", 0x0110))
        for item in getattr(response, "FailedSOPSequence", []) or []
    }
    return {
        p: (f"{dest} refused it (failure reason 0x{failed[ds.SOPInstanceUID]:04X})" if ds.SOPInstanceUID in failed else None)
        for p, ds in zip(files, datasets)
    }
