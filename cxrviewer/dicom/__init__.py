"""DICOM results built with highdicom: a Structured Report (TID 1500) and a Presentation State.

The Secondary Capture export still lives in :mod:`cxrviewer.dicom_export`. See
``docs/dicom-results.md`` for what each object holds and how a viewer shows it.
"""

from .folder import DicomResultsFolder, parse_formats, write_result
from .gsps import build_gsps, export_dicom_gsps
from .sr import build_sr, export_dicom_sr

__all__ = ["DicomResultsFolder", "build_gsps", "build_sr", "export_dicom_gsps", "export_dicom_sr", "parse_formats", "write_result"]
