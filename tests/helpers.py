"""Plain helpers the tests import (conftest.py holds only fixtures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"
#: The six real NIH films the repository carries, with their labels (labels.csv, bbox.csv).
SAMPLES = REPO / "resources" / "samples"


def synthetic_pixels(h: int = 256, w: int = 200, disc=(0.3, 0.7, 0.12)) -> np.ndarray:
    """A gradient plus a bright disc at (row, col, radius) as fractions of the film."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    px = 0.15 + 0.3 * xx / max(w - 1, 1)
    r0, c0, rad = disc[0] * h, disc[1] * w, disc[2] * min(h, w)
    px[(yy - r0) ** 2 + (xx - c0) ** 2 <= rad**2] = 1.0
    return px.astype(np.float32)


def write_png(path: Path, pixels: np.ndarray, bits: int = 8) -> Path:
    import cv2

    scale = 255 if bits == 8 else 65535
    arr = np.clip(np.rint(pixels * scale), 0, scale).astype(np.uint8 if bits == 8 else np.uint16)
    cv2.imwrite(str(path), arr)
    return path


def run_in_threads(fn, jobs: list[tuple]) -> list:
    """``fn(*job)`` for every job, all at once in threads; their results in order. An exception
    in any thread fails the caller (re-raised after all have finished)."""
    import threading

    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def run(i: int, job: tuple) -> None:
        try:
            results[i] = fn(*job)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


#: UIDs that name a kind of thing, not an instance: the same in every build
_FIXED_UIDS = {"SOPClassUID", "ReferencedSOPClassUID", "MediaStorageSOPClassUID", "TransferSyntaxUID",
               "ImplementationClassUID"}
#: dates and times of the source, copied as they are (the others are the build's own)
_SOURCE_TIMES = {"StudyDate", "StudyTime", "PatientBirthDate"}


def decoded_result(ds) -> str:
    """A DICOM result as written (cxrviewer.dicom.output.encode), decoded, its new UIDs numbered
    in order of appearance and the build's own dates and times blanked: two builds of the same
    result give the same text."""
    import io

    import pydicom

    from cxrviewer.dicom.output import encode, quiet_values

    with quiet_values():
        back = pydicom.dcmread(io.BytesIO(encode(ds, "test")))
    uids: dict[str, str] = {}

    def renumber(dataset, element):
        if element.VR == "UI" and element.keyword not in _FIXED_UIDS and element.value:
            element.value = uids.setdefault(str(element.value), f"9.{len(uids)}")
        if element.VR in ("DA", "TM", "DT") and element.keyword not in _SOURCE_TIMES:
            element.value = ""

    back.walk(renumber)
    back.file_meta.MediaStorageSOPInstanceUID = "9"
    del back.file_meta.FileMetaInformationGroupLength  # it counts the new UID's digits
    return str(back)
