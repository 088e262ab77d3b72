"""Films for the export tests (local and Ray engines): the six real sample films of
``resources/samples`` repeated under distinct names, as PNGs and as DICOMs, and how to compare
two export folders (PNG pixels; DICOM pixels and coded content, generated UIDs and times aside)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pydicom
from dicomfactory import CR_IMAGE, build_dicom

REPO = Path(__file__).resolve().parent.parent
SAMPLES = sorted((REPO / "resources" / "samples").glob("*.png"))
#: Value representations a writer fills in afresh each time: new UIDs (PS3.5 9.1) and the
#: moment it wrote (content / instance creation date and time).
GENERATED_VRS = {"UI", "DA", "TM", "DT"}


def make_films(folder: Path, pngs: int = 18, dicoms: int = 12, dicom_px: int = 256) -> list[Path]:
    """``pngs`` copies of the sample PNGs (two of them of one stem in two sub-folders, so that the
    picture names must tell them apart) and ``dicoms`` CR DICOMs made of their pixels, each with
    its own UIDs, plus one broken PNG (an error row, no export). Returns the films in input order."""
    folder.mkdir(parents=True, exist_ok=True)
    films: list[Path] = []
    for i in range(pngs):
        src = SAMPLES[i % len(SAMPLES)]
        if i < 2:
            target = folder / ("one", "two")[i] / "same.png"
            target.parent.mkdir(exist_ok=True)
        else:
            target = folder / f"p{i:02d}_{src.name}"
        shutil.copyfile(src, target)
        films.append(target)
    for i in range(dicoms):
        gray = cv2.imread(str(SAMPLES[i % len(SAMPLES)]), cv2.IMREAD_GRAYSCALE)
        pixels = cv2.resize(gray, (dicom_px, dicom_px), interpolation=cv2.INTER_AREA)
        # a 12-bit CR as a detector stores it: 0..4095, a window over the whole range
        stored = (pixels.astype(np.uint16) * 16)
        films.append(build_dicom(folder / f"d{i:02d}.dcm", stored, bits_stored=12, sop_class=CR_IMAGE,
                                 modality="CR", window=(2048, 4096), ViewPosition="PA"))
    broken = folder / "zz-broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n cut off")
    films.append(broken)
    return films


def files_under(folder: Path) -> dict[str, Path]:
    """Relative name → file, leaving out hidden names (temporary files, probes)."""
    out = {}
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for f in files:
            if not f.startswith("."):
                p = Path(root) / f
                out[p.relative_to(folder).as_posix()] = p
    return out


def png_pixels(path: Path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def coded_content(ds: pydicom.Dataset) -> list:
    """Every element of ``ds`` (sequences walked) but the generated ones: (tag, value) pairs.
    The key of the film file a result was made from (a private block, its size and mtime:
    cxrviewer.dicom.folder.KEY_GROUP) is left out too: a copy of the file has another."""
    out: list = []
    for elem in ds:
        if elem.VR in GENERATED_VRS or (elem.tag.is_private and elem.tag.group == 0x0077):
            continue
        if elem.VR == "SQ":
            out.append((elem.tag, [coded_content(item) for item in elem.value]))
        elif elem.tag == 0x7FE00010:
            continue  # pixel data: compared decoded
        else:
            out.append((elem.tag, elem.value))
    return out


def same_dicom(a: Path, b: Path) -> None:
    """Assert two DICOM results carry the same pixels and the same coded content."""
    da, db = pydicom.dcmread(a), pydicom.dcmread(b)
    assert da.SOPClassUID == db.SOPClassUID
    if "PixelData" in da or "PixelData" in db:
        assert np.array_equal(da.pixel_array, db.pixel_array), f"{a.name}: pixels differ"
    assert coded_content(da) == coded_content(db), f"{a.name}: coded content differs"
