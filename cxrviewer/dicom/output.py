"""What every DICOM result shares: its Part 10 bytes, its atomic write, its descriptions."""

from __future__ import annotations

import io
import logging
import threading
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pydicom import config as dicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from ..errors import DicomResultError
from ..storage import atomic_write_bytes, check_writable_dir
from ..types import Film, ModelInfo

logger = logging.getLogger(__name__)


#: Series Number of every cxrviewer result (the SC export uses the same), after acquired series.
SERIES_NUMBER = 999
MANUFACTURER = "cxrviewer"
NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSIS"
LO_MAX = 64  # PS3.5 table 6.2-1: the longest LO value


def demo_notice(info: ModelInfo) -> str:
    """The sentence a demo model's results carry where a viewer shows them."""
    return (
        f"{NOT_FOR_DIAGNOSIS}: these findings come from a demo model ({info.model_version}) that "
        "shows how cxrviewer works; they are not a diagnosis and must not be used as one."
    )


def description(kind: str, info: ModelInfo) -> str:
    """Series / content description (LO, 64 characters): the warning first, so it is never cut."""
    head = f"{NOT_FOR_DIAGNOSIS} (demo model) " if info.demo else ""
    return f"{head}cxrviewer AI {kind} {info.model_version}"[:LO_MAX]


# pydicom's validation switch is process-wide (``pydicom.config.settings``): a per-call
# save-and-restore (``disable_value_validation``) run by two threads at once restores the other's
# state, leaving validation on under a build (its warnings quote values) or off for good. So the
# builds share one switch: the first to start turns validation off, the last to finish restores it.
_validation_lock = threading.Lock()
_validation_users = 0
_saved_validation: tuple = (None, None)


@contextmanager
def quiet_values():
    """Build without pydicom's value validation: its warnings quote the value (a patient's name).

    Thread-safe: validation stays off while any thread builds and is restored after the last.
    highdicom's own value warning (a one-component Patient's Name, quoted) is not filtered here
    (warning filters are process-wide and ``warnings.catch_warnings`` is not thread-safe): it is
    never raised, as highdicom is not given the name (:func:`patient_name_aside`).
    """
    global _validation_users, _saved_validation
    settings = dicom_config.settings
    with _validation_lock:
        if _validation_users == 0:
            # pydicom's public settings (``reading_validation_mode``, ``writing_validation_mode``)
            _saved_validation = (settings.reading_validation_mode, settings.writing_validation_mode)
            settings.reading_validation_mode = dicom_config.IGNORE
            settings.writing_validation_mode = dicom_config.IGNORE
        _validation_users += 1
    try:
        yield
    finally:
        with _validation_lock:
            _validation_users -= 1
            if _validation_users == 0:
                settings.reading_validation_mode, settings.writing_validation_mode = _saved_validation


def patient_name_aside(ref: Dataset) -> DataElement | None:
    """Take the Patient's Name out of ``ref``, the dataset highdicom copies the patient from.

    highdicom checks the name it is given and warns, quoting it, when it has one component
    (``highdicom.valuerep.check_person_name``; a valid PN all the same, PS3.5 6.2.1.2). So it
    is given an empty one (Type 2: present, empty) and :func:`patient_name_back` puts the
    source's element, as it was, in the result.
    """
    element = None
    if "PatientName" in ref:
        element = ref["PatientName"]
        del ref["PatientName"]  # setting it would empty this very element
    ref.PatientName = ""
    return element


def patient_name_back(result: Dataset, element: DataElement | None) -> None:
    """Put the element :func:`patient_name_aside` took in ``result``."""
    if element is not None:
        result["PatientName"] = element


#: what highdicom and pydicom raise for a source header they cannot use: a value that fails
#: highdicom's checks (ValueError), an attribute it needs and the header lacks (AttributeError),
#: a SOP class missing from its IOD tables (KeyError). A TypeError is a wrong argument: a bug.
HEADER_ERRORS = (ValueError, AttributeError, KeyError)


@contextmanager
def highdicom_errors(film: Film, what: str):
    """highdicom's refusals of the source's header as a :class:`DicomResultError`.

    Put around the highdicom calls that read the header (the reference, the patient and study,
    the Image Library), never around cxrviewer's own code: an error there is a bug, and is
    raised as it is. highdicom's messages may quote a value of the source (a patient's name),
    so only the error type is kept.
    """
    try:
        yield
    except HEADER_ERRORS as exc:
        logger.debug("highdicom refused the header of %s: %s", film.source, type(exc).__name__)
        raise DicomResultError(
            f"Could not build a DICOM {what} from the header of {film.name} ({type(exc).__name__}). "
            "Export a DICOM Secondary Capture instead; if the file is a valid DICOM image, please "
            "report it."
        ) from None


def encode(ds: Dataset, what: str) -> bytes:
    """The Part 10 file (preamble, ``DICM``, file meta, dataset) as bytes."""
    buf = io.BytesIO()
    try:
        with quiet_values():
            # pydicom's writer encodes the whole tree in the file meta's transfer syntax, and
            # resolves the ambiguous VRs (US or SS, OB or OW: PS3.5 6.2) as it goes
            pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except (ValueError, TypeError, OverflowError, AttributeError) as exc:
        # The message names only the error type: pydicom's may quote a value (a patient's name).
        raise DicomResultError(
            f"Could not encode the DICOM {what} ({type(exc).__name__}); this is a bug in cxrviewer, "
            "please report it. A DICOM Secondary Capture or a PNG export still works."
        ) from None
    return buf.getvalue()


def write(path: str | Path, ds: Dataset, what: str) -> Path:
    """Write ``ds`` to ``path`` atomically and log its UIDs (never the patient's)."""
    out = atomic_write_bytes(Path(path), encode(ds, what))
    logger.info(
        "wrote DICOM %s %s (study %s, series %s, instance %s)",
        what, out, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID,
    )
    return out


def check_folder(path: str | Path) -> None:
    """Fail on an unwritable folder before any work is done."""
    path = Path(path)
    check_writable_dir(path.parent if str(path.parent) else Path("."))
