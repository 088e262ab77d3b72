"""Errors that reach the user.

Every error the user can cause derives from :class:`CxrError`. Its message says what happened
and what to do next; front ends show ``str(exc)`` as it is (the GUI in a dialog, the CLI on one
line). Anything that is not a ``CxrError`` is a bug and is logged with its traceback.
"""

from __future__ import annotations


class CxrError(Exception):
    """Base class of every error cxrviewer reports to the user."""


class UnreadableImageError(CxrError):
    """The file is missing, empty, truncated, not an image, or too large to decode safely."""


class UnsupportedImageError(UnreadableImageError):
    """A picture file cxrviewer does not score as one film (a multi-page TIFF, an animated PNG)."""


class UnsupportedDicomError(CxrError):
    """A DICOM object that cxrviewer cannot show as a film (no pixels, unknown syntax, ...)."""


class MissingCodecError(CxrError):
    """The pixel data needs a decoder plugin that is not installed."""


class ModelError(CxrError):
    """The model file is missing, corrupt, or does not honour the cxrviewer model contract."""


class EngineError(ModelError):
    """The model cannot run on the backend, device or precision asked for (on this machine)."""


class OutputError(CxrError):
    """An output path cannot be written."""


class UnknownResultsFileError(OutputError):
    """The output file exists but is not a results file of ours (or holds another model's
    columns); it is left untouched."""


class OutputInUseError(OutputError):
    """Another run is writing the same results file."""


class MissingFolderError(CxrError):
    """An output's folder does not exist (a typo, most often); it is created only when asked."""


class OutputFormatError(CxrError):
    """An output's file name extension and the format asked for disagree."""


class SameFileError(CxrError):
    """An output would be written over one of the inputs."""


class FileChangedError(UnreadableImageError):
    """A film was replaced or modified while it was being read."""


class MissingInputError(CxrError):
    """An input named on the command line does not exist or cannot be named on this file system."""


class ExportError(CxrError):
    """A film that cannot be drawn as a readable annotated picture (e.g. a thin strip)."""


class ModelOutputError(CxrError):
    """The model produced invalid numbers (NaN, infinity, out of range) for one film."""


class UnknownClassError(CxrError):
    """A finding's name that the model does not have."""


class NoDicomSourceError(CxrError):
    """A DICOM result (SR, Presentation State) was asked for a film that is not a DICOM image."""


class DicomResultError(CxrError):
    """A DICOM Structured Report or Presentation State that cannot be made from this film."""


class DicomResultsIncomplete(CxrError):
    """A scored film some of whose DICOM results could not be written: its probabilities stand
    (its row stays ``ok``, the message says which result failed and why) and a rerun tries the
    missing results again."""


class DicomExportError(CxrError):
    """A DICOM Secondary Capture export that cannot be made as asked."""


class NodeConfigError(CxrError):
    """The DICOM node cannot start as configured (a bad destination, AE title, port or TLS file)."""


class SpoolError(OutputError):
    """The DICOM node's spool folder cannot be used (not writable, damaged, or another node's)."""


class PacsSendError(CxrError):
    """Results could not be sent to the PACS destination set in the app (unreachable, refused)."""


class PacsQueryError(CxrError):
    """A PACS (DICOM AE or DICOMweb service) could not be queried: unreachable, refused, a
    malformed filter, or an answer that is not DICOM."""


class PacsRetrieveError(CxrError):
    """Films could not be retrieved from a PACS (refused, unreachable, it went away mid-way, or
    some of a series' instances did not arrive); nothing partial is kept as complete."""


class RetrieveCancelledError(PacsRetrieveError):
    """A retrieve was cancelled (C-CANCEL sent); what had arrived of the series is discarded."""


class ClusterError(CxrError):
    """The cluster engine cannot run: Ray is missing, its cluster cannot be reached, or a worker
    could not load the model."""


class NoDisplayError(CxrError):
    """The desktop app has no display to show its window on."""


class LabelsFileError(CxrError):
    """A site's labels file (``cxrviewer validate``) that cannot be read, or that names none of the films."""


class MissingExtraError(CxrError):
    """A feature needs an optional extra of cxrviewer that is not installed; the message names it."""
