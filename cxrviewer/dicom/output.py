"""What every DICOM result shares: its Part 10 bytes, its atomic write, its descriptions."""

from __future__ import annotations

import io
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pydicom import config as dicom_config
from pydicom.dataset import Dataset

from ..errors import DicomResultError
from ..export import atomic_write_bytes, check_writable_dir
from ..types import Film, ModelInfo

logger = logging.getLogger(__name__)

#: Series Number of every cxrviewer result (the SC export uses the same), after acquired series.
SERIES_NUMBER = 999
MANUFACTURER = "cxrviewer"
NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSIS"
_LO_MAX = 64  # PS3.5 table 6.2-1


def demo_notice(info: ModelInfo) -> str:
    """The sentence a demo model's results carry where a viewer shows them."""
    return (
        f"{NOT_FOR_DIAGNOSIS}: these findings come from a demo model ({info.model_version}) that "
        "shows how cxrviewer works; they are not a diagnosis and must not be used as one."
    )


def description(kind: str, info: ModelInfo) -> str:
    """Series / content description (LO, 64 characters): the warning first, so it is never cut."""
    head = f"{NOT_FOR_DIAGNOSIS} (demo model) " if info.demo else ""
    return f"{head}cxrviewer AI {kind} {info.model_version}"[:_LO_MAX]


@contextmanager
def quiet_values():
    """Build without value warnings: pydicom's and highdicom's quote the value (a patient's name).

    pydicom's validation is switched off (process-wide, for the build only) and highdicom's
    user warnings (e.g. on a one-component Patient's Name) are dropped.
    """
    with dicom_config.disable_value_validation(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"highdicom(\.|$)")
        yield


@contextmanager
def highdicom_errors(film: Film, what: str):
    """highdicom's refusals (a header it cannot use) as a :class:`DicomResultError`.

    Its messages may quote a value of the source (a patient's name), so only the error type
    is kept; the traceback goes to the debug log without the message.
    """
    try:
        yield
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
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
