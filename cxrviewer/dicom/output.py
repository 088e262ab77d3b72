"""What every DICOM result shares: its Part 10 bytes, its atomic write, its descriptions."""

from __future__ import annotations

import functools
import io
import logging
import threading
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pydicom import config as dicom_config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.filewriter import correct_ambiguous_vr, correct_ambiguous_vr_element
from pydicom.valuerep import AMBIGUOUS_VR, VR

from ..errors import DicomResultError
from ..storage import atomic_write_bytes, check_writable_dir
from ..types import Film, ModelInfo
from .stamp import is_encoded, is_frozen

logger = logging.getLogger(__name__)


def _remember_iod_lookups() -> None:
    """Let highdicom look each attribute of an IOD up once per process, not once per call.

    Before it references an image, highdicom checks that the image's IOD has pixel data, or
    frames (``highdicom._standard_utils.is_attribute_in_iod``): a linear scan of the standard's
    module tables, ~2 ms, 15 times for one Presentation State and 18 for one SR, with the same
    answer every time (the tables ship with highdicom). The check still runs, its answer is
    remembered per (attribute, SOP class, excluded path elements). Where highdicom has no such
    function (another version), nothing changes.
    """
    try:
        import highdicom._standard_utils as standard
        import highdicom.sr.content as sr_content
        from highdicom import base
    except ImportError:
        return
    lookup = getattr(standard, "is_attribute_in_iod", None)
    if lookup is None or getattr(lookup, "_cxr_remembered", False):
        return

    @functools.lru_cache(maxsize=4096)
    def remembered(attribute: str, sop_class_uid: str, exclude: tuple[str, ...] | None) -> bool:
        return lookup(attribute, sop_class_uid, None if exclude is None else list(exclude))

    @functools.wraps(lookup)
    def is_attribute_in_iod(attribute, sop_class_uid, exclude_path_elements=None):
        exclude = None if exclude_path_elements is None else tuple(exclude_path_elements)
        return remembered(str(attribute), str(sop_class_uid), exclude)

    is_attribute_in_iod._cxr_remembered = True
    # the module's own callers (does_iod_have_pixel_data, is_multiframe_image) and the modules
    # that imported the name
    for module in (standard, base, sr_content):
        if getattr(module, "is_attribute_in_iod", None) is lookup:
            module.is_attribute_in_iod = is_attribute_in_iod


_remember_iod_lookups()

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
            _saved_validation = (settings._reading_validation_mode, settings._writing_validation_mode)
            settings.reading_validation_mode = dicom_config.IGNORE
            settings.writing_validation_mode = dicom_config.IGNORE
        _validation_users += 1
    try:
        yield
    finally:
        with _validation_lock:
            _validation_users -= 1
            if _validation_users == 0:
                settings._reading_validation_mode, settings._writing_validation_mode = _saved_validation


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


def _resolve_encoding_once(ds: Dataset) -> None:
    """Resolve the ambiguous VRs of ``ds`` once, for the whole tree, and let the writer copy
    what is already encoded.

    pydicom's writer resolves ambiguous VRs (``correct_ambiguous_vr``, which walks every nested
    item) for each dataset whose "original encoding" differs from the one written: every item of
    a dataset built in memory, so a report's tree of ~1000 items was walked once per nesting
    level. And the walk from the root decodes every raw sequence it meets, which would undo
    what :mod:`cxrviewer.dicom.stamp` encoded once. So the walk is done here, once: ambiguous
    elements are resolved with their ancestors at hand, as pydicom does (its
    ``correct_ambiguous_vr_element``); items built here are marked as already in the encoding
    written; frozen parts (raw, in that encoding) are left as they are; items read from a file
    in another encoding (parts of the source's header) get pydicom's own walk, with their
    ancestors; a sequence the result encoded itself (:func:`~cxrviewer.dicom.stamp.put_sequence`)
    is left as it is. Then the root is marked too, and the writer goes straight to the elements. The
    bytes do not change (tests/test_dicom_encode.py, tests/test_sr_stamp.py).
    """
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or not syntax.is_transfer_syntax:
        return  # dcmwrite says what is missing
    target = (syntax.is_implicit_VR, syntax.is_little_endian)
    little = syntax.is_little_endian
    stack: list[tuple[Dataset, list[Dataset]]] = [(ds, [ds])]  # an item, its ancestors nearest first
    while stack:
        parent, ancestors = stack.pop()
        for element in parent.elements():
            if element.is_raw:
                if parent is not ds and parent.original_encoding == target:
                    continue  # written as it is: a frozen part
                if parent is ds and is_encoded(ds, element.tag):
                    continue  # a sequence encoded in this encoding (stamp.put_sequence)
                # a raw element in a built item would be written as read, in the encoding of
                # the file it came from: decoded now, as the writer would have done
                element = parent[element.tag]
            if element.VR == VR.SQ:
                for item in element.value:
                    if is_frozen(item):
                        continue  # encoded once, in this encoding (cxrviewer.dicom.stamp)
                    if item.original_encoding == (None, None):  # built here
                        item.set_original_encoding(*target, item._character_set)
                    elif item.original_encoding != target:  # read from a file: pydicom's walk
                        correct_ambiguous_vr(item, little, [item, *ancestors])
                        continue
                    stack.append((item, [item, *ancestors]))
            elif element.VR in AMBIGUOUS_VR:
                correct_ambiguous_vr_element(element, parent, little, ancestors)
    ds.set_original_encoding(*target, ds._character_set)


def encode(ds: Dataset, what: str) -> bytes:
    """The Part 10 file (preamble, ``DICM``, file meta, dataset) as bytes."""
    buf = io.BytesIO()
    try:
        with quiet_values():
            _resolve_encoding_once(ds)
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
