"""Every DICOM object cxrviewer writes, and the access to the DICOM source it is about.

A Structured Report (TID 1500, :mod:`.sr`) and a Presentation State (:mod:`.gsps`) built with
highdicom; the annotated picture as a Secondary Capture (:mod:`.sc`); the source's header, read
from a path or a URL (:mod:`.source`). See ``docs/dicom-results.md`` and ``docs/dicom-sc.md`` for
what each object holds and how a viewer shows it.
"""

from .folder import DicomResultsFolder, parse_formats, write_result
from .gsps import build_gsps, export_dicom_gsps
from .sr import build_sr, export_dicom_sr

__all__ = ["DicomResultsFolder", "build_gsps", "build_sr", "export_dicom_gsps", "export_dicom_sr", "parse_formats", "write_result"]
