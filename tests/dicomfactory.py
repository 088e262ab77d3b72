"""The one DICOM factory of the test suite: synthetic DICOM data sets and files built with pydicom.

Every test that needs a DICOM it cannot take from ``../shared/data`` builds it here:

- :func:`dicom_dataset` → a :class:`~pydicom.dataset.Dataset` (with file meta) holding ``pixels``;
- :func:`write_dicom` → that data set as a Part 10 file, or as a bare data set without preamble
  and file meta (like fo-dicom's ``CR-MONO1-10-chest.dcm``);
- :func:`build_dicom` → both in one call;
- :func:`lut_item` → a Modality / VOI LUT Sequence item (PS3.3 C.11.1.1, C.11.2.1.1).

Synthetic DICOMs carry a fake patient (:data:`PHI_VALUES`) so tests can check that no identifying
value ever reaches a film's metadata, a log line or an error message. The real files are listed
in :data:`REAL_DICOMS` and found at :data:`helpers.SHARED_DATA`.

:func:`make_generated_corpus` writes, from the real NIH sample films in ``resources/samples/``, one
DICOM per *property* of the real files (:data:`ROLES`): the tests run on it everywhere, and on the
real files too where ``../shared/data`` is present (:class:`DicomCorpus`).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid

from helpers import SAMPLES, SHARED_DATA


#: Patient name, ID and birth date of every synthetic DICOM unless a test sets its own.
PHI_VALUES = ("Doe^Jane", "PID-0042-SECRET", "19450101")

#: SOP classes the tests use (PS3.4 B.5).
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
CR_IMAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE = "1.2.840.10008.5.1.4.1.1.1.1"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"  # no pixels

REAL_DICOMS = (
    "dcmfx_fo-dicom_CR-MONO1-10-chest.dcm",
    "dcmfx_fo-dicom_CR-ModalitySequenceLUT.dcm",
    "nccid_nih_cxr14_gcp_dx.dcm",
    "pydicom-data_RG3_J2KR.dcm",
    "pydicom-data_mlut_18.dcm",
    "pydicom-data_vlut_04.dcm",
    "torchxrayvision_Fake_MONOHR1.dcm",
    "torchxrayvision_siim_cr_chest.dcm",
)

_COLOR = ("RGB", "YBR_FULL")


def lut_item(
    data: Sequence[int] | None,
    first_map: int = 0,
    bits: int = 16,
    *,
    descriptor: Sequence[int] | None = None,
) -> Dataset:
    """A LUT Sequence item: LUT Descriptor ``[entries, first_map, bits]`` and LUT Data (US).

    The descriptor is SS when ``first_map`` is negative (PS3.3 C.11.1.1); ``descriptor``
    replaces it as given (any length, for malformed items); ``data=None`` leaves LUT Data out.
    """
    item = Dataset()
    if descriptor is None:
        n = len(data) if data is not None else 0
        item.add_new(0x00283002, "SS" if first_map < 0 else "US", [n % 65536, first_map, bits])
    else:
        item.add_new(0x00283002, "US", list(descriptor))
    if data is not None:
        item.add_new(0x00283006, "US", list(data))
    return item


def dicom_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    signed: bool | None = None,
    rescale: tuple[float, float] | None = None,
    window: tuple[Any, Any] | None = None,
    voi_lut: Dataset | None = None,
    modality_lut: Dataset | None = None,
    transfer_syntax: str | None = None,
    pixel_data: bytes | None = None,
    sop_class: str = SECONDARY_CAPTURE,
    modality: str = "OT",
    **elements: Any,
) -> Dataset:
    """A data set (with file meta) holding ``pixels``: H×W, F×H×W, or H×W×3 for RGB/YBR_FULL.

    - The dtype of ``pixels`` sets Bits Allocated and Pixel Representation; ``signed`` casts the
      pixels to the signed (or unsigned) integer of the same size first. ``bits_stored``
      defaults to Bits Allocated; High Bit is Bits Stored − 1.
    - ``rescale`` = (slope, intercept), ``window`` = (center, width) (each may be a list for
      several windows), ``voi_lut`` / ``modality_lut`` = a :func:`lut_item`.
    - ``transfer_syntax`` defaults to Explicit VR Little Endian; ``pixel_data`` replaces the
      encoded pixels (encapsulated, or broken on purpose).
    - Extra keyword arguments become data elements by keyword; ``None`` deletes one (e.g.
      ``PixelData=None``, ``PhotometricInterpretation=None``).
    """
    arr = np.asarray(pixels)
    if signed is not None and np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(f"{'i' if signed else 'u'}{arr.dtype.itemsize}")
    color = photometric in _COLOR
    frames = arr.shape[0] if (arr.ndim == 3 and not color) or arr.ndim == 4 else 1
    rows, cols = arr.shape[-3:-1] if color else arr.shape[-2:]
    bits_allocated = arr.dtype.itemsize * 8

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI_VALUES
    ds.Modality = modality
    ds.Rows, ds.Columns = int(rows), int(cols)
    ds.SamplesPerPixel = 3 if color else 1
    if color:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored or bits_allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if np.issubdtype(arr.dtype, np.signedinteger) else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if pixel_data is not None:
        ds.PixelData = pixel_data
    else:
        ds.PixelData = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_lut is not None:
        ds.VOILUTSequence = [voi_lut]
    if modality_lut is not None:
        ds.ModalityLUTSequence = [modality_lut]
    for keyword, value in elements.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if pixel_data is not None and transfer_syntax is not None:
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
    return ds


def write_dicom(path: Path, ds: Dataset, *, preamble: bool = True) -> Path:
    """Write ``ds`` to ``path``: a Part 10 file, or (``preamble=False``) a bare data set with no
    preamble, no ``DICM`` and no file meta, in Implicit VR Little Endian."""
    if preamble:
        known = UID(str(ds.file_meta.TransferSyntaxUID)).is_transfer_syntax
        encoding = {} if known else {"implicit_vr": False, "little_endian": True}
        ds.save_as(path, enforce_file_format=True, **encoding)
    else:
        ds.file_meta = FileMetaDataset()
        ds.save_as(path, implicit_vr=True, little_endian=True)
    return path


def build_dicom(path: Path, pixels: np.ndarray, *, preamble: bool = True, **kwargs: Any) -> Path:
    """:func:`dicom_dataset` (``kwargs``) written by :func:`write_dicom` to ``path``."""
    return write_dicom(path, dicom_dataset(pixels, **kwargs), preamble=preamble)


def stored_array(path: Path) -> np.ndarray:
    """The raw stored values of a DICOM (first frame), straight from pydicom."""
    import pydicom
    from pydicom.pixels import pixel_array

    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return pixel_array(ds, index=0)


# --- The generated corpus: the real files' properties, made from real NIH sample films ---------

#: role: the real file of ``../shared/data/dicom`` whose property the generated file mirrors.
ROLES = {
    "j2k_mono1": "pydicom-data_RG3_J2KR.dcm",  # JPEG 2000 lossless, MONOCHROME1, 10 of 16 bits, window
    "no_preamble_chest": "dcmfx_fo-dicom_CR-MONO1-10-chest.dcm",  # no preamble, no file meta
    "jpeg_lossless_mlut": "dcmfx_fo-dicom_CR-ModalitySequenceLUT.dcm",  # JPEG Lossless SV1, Modality LUT Sequence
    "jpeg_baseline_chest": "torchxrayvision_siim_cr_chest.dcm",  # 8-bit JPEG baseline
    "fake_mono1": "torchxrayvision_Fake_MONOHR1.dcm",  # the same bytes tagged MONOCHROME1
    "nih_dx": "nccid_nih_cxr14_gcp_dx.dcm",  # an NIH film as an 8-bit DX
    "vlut": "pydicom-data_vlut_04.dcm",  # VOI LUT Sequence
    "mlut_signed": "pydicom-data_mlut_18.dcm",  # signed 12-bit, Modality LUT Sequence
}
#: Generated only (no real file has the property): signed 12-bit with a rescale; a 15-bit CR whose
#: stored window clips most of its range (#14).
EXTRA_ROLES = ("signed_rescale", "cr15_window")

#: The NIH sample each chest-like generated file is made from (``resources/samples/``).
CHEST_SAMPLE = "00000022_000.png"  # No Finding, PA
DX_SAMPLE = "00000103_000.png"  # its values span 0..255, so a min-max VOI is the PNG's own scale
CR15_WINDOW = (16384.0, 4096.0)  # an eighth of the 15-bit range

DCMCJPEG_MISSING = "dcmcjpeg is not installed (Debian package dcmtk); it makes the JPEG Lossless film"


def sample_gray(name: str, size: int | None = None) -> np.ndarray:
    """An NIH sample film as uint8, area-resized to ``size``×``size`` when given."""
    import cv2

    px = cv2.imread(str(SAMPLES / name), cv2.IMREAD_GRAYSCALE)
    if px is None:
        raise FileNotFoundError(SAMPLES / name)
    if size is not None and px.shape != (size, size):
        px = cv2.resize(px, (size, size), interpolation=cv2.INTER_AREA)
    return px


def _scaled(px8: np.ndarray, top: int) -> np.ndarray:
    return np.rint(px8.astype(np.float64) * (top / 255.0)).astype(np.uint16)


def _jpeg_baseline(px8: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", px8, [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


def _chest_ds(px: np.ndarray, **kwargs: Any) -> Dataset:
    kwargs.setdefault("sop_class", CR_IMAGE)
    kwargs.setdefault("modality", "CR")
    return dicom_dataset(px, **kwargs)


def make_generated_corpus(folder: Path) -> dict[str, Path]:
    """Write one DICOM per role of :data:`ROLES` and :data:`EXTRA_ROLES` into ``folder``.

    ``jpeg_lossless_mlut`` is left out when dcmtk's ``dcmcjpeg`` is missing (pydicom cannot
    encode JPEG Lossless); a test that needs it then skips with :data:`DCMCJPEG_MISSING`.
    """
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEG2000Lossless, JPEGBaseline8Bit

    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    chest = sample_gray(CHEST_SAMPLE, 512)

    # MONOCHROME1 stores dense as dark: the inverted chest, 10 of 16 bits, windowed, J2K lossless.
    ds = _chest_ds(_scaled(255 - chest, 1023), photometric="MONOCHROME1", bits_stored=10,
                   window=(550, 1024), ViewPosition="AP", PatientOrientation=["R", "F"],
                   ImageLaterality="R", CassetteOrientation="PORTRAIT")  # as RG3's header says
    ds.compress(JPEG2000Lossless, encoding_plugin="pylibjpeg")
    out["j2k_mono1"] = write_dicom(folder / "j2k_mono1.dcm", ds)

    small = sample_gray(CHEST_SAMPLE, 440)
    out["no_preamble_chest"] = build_dicom(
        folder / "no_preamble_chest.dcm", _scaled(255 - small, 1023), preamble=False, sop_class=CR_IMAGE,
        modality="CR", photometric="MONOCHROME1", bits_stored=10, window=(512, 1024), ViewPosition="PA")

    # A Modality LUT Sequence (PS3.3 C.11.1): 12-bit stored values through a gamma curve to 16 bits.
    table = np.rint(65535 * (np.arange(4096) / 4095.0) ** 0.7).astype(int)
    dcmcjpeg = shutil.which("dcmcjpeg")
    if dcmcjpeg:
        plain = build_dicom(folder / "jpeg_lossless_mlut.raw.dcm", _scaled(255 - chest, 4095),
                            sop_class=CR_IMAGE, modality="CR", photometric="MONOCHROME1", bits_stored=12,
                            modality_lut=lut_item(table.tolist(), 0, 16), PixelSpacing=[0.15, 0.15])
        target = folder / "jpeg_lossless_mlut.dcm"
        subprocess.run([dcmcjpeg, "+e1", str(plain), str(target)], check=True, capture_output=True)
        plain.unlink()
        out["jpeg_lossless_mlut"] = target

    full = sample_gray(CHEST_SAMPLE)  # 1024 px, as SIIM's film: measuring tests click far into it
    jpeg = _jpeg_baseline(full)
    for role, photometric in (("jpeg_baseline_chest", "MONOCHROME2"), ("fake_mono1", "MONOCHROME1")):
        ds = _chest_ds(full, photometric=photometric, transfer_syntax=JPEGBaseline8Bit,
                       pixel_data=encapsulate([jpeg]), PixelSpacing=[0.168, 0.168], ViewPosition="PA",
                       LossyImageCompression="01", PatientName="JANEDOE")  # one component, as SIIM's
        out[role] = write_dicom(folder / f"{role}.dcm", ds)

    out["nih_dx"] = build_dicom(folder / "nih_dx.dcm", sample_gray(DX_SAMPLE), sop_class=DX_IMAGE,
                                modality="DX", ViewPosition="PA")

    # A VOI LUT Sequence (PS3.3 C.11.2.1.1): 12-bit values through a sigmoid to 16 bits.
    x = np.arange(4096) / 4095.0
    sigmoid = 1.0 / (1.0 + np.exp(-8.0 * (x - 0.5)))
    voi = np.rint(65535 * (sigmoid - sigmoid[0]) / (sigmoid[-1] - sigmoid[0])).astype(int)
    out["vlut"] = build_dicom(folder / "vlut.dcm", _scaled(chest, 4095), bits_stored=12,
                              voi_lut=lut_item(voi.tolist(), 0, 16))

    signed = (_scaled(chest, 4095).astype(np.int16) - 2048).astype(np.int16)
    out["mlut_signed"] = build_dicom(folder / "mlut_signed.dcm", signed, bits_stored=12,
                                     modality_lut=lut_item(table.tolist(), -2048, 16))
    out["signed_rescale"] = build_dicom(folder / "signed_rescale.dcm", signed, bits_stored=12,
                                        rescale=(2.0, -1024.0), RescaleType="US")

    out["cr15_window"] = build_dicom(folder / "cr15_window.dcm", _scaled(chest, 32767), sop_class=CR_IMAGE,
                                     modality="CR", bits_stored=15, window=CR15_WINDOW, ViewPosition="PA")
    return out


@dataclass(frozen=True)
class DicomCorpus:
    """The DICOMs one test run uses, by role: the generated ones, or the real ones of
    ``../shared/data/dicom`` (:data:`ROLES`), which add cases where present."""

    kind: str  # "generated" or "shared"
    files: dict[str, Path]

    def __getitem__(self, role: str) -> Path:
        import pytest

        if role not in self.files:
            if role == "jpeg_lossless_mlut" and self.kind == "generated":
                pytest.skip(DCMCJPEG_MISSING)
            pytest.skip(f"{self.kind} corpus has no {role} film")
        return self.files[role]

    @property
    def real(self) -> bool:
        return self.kind == "shared"


def shared_corpus() -> DicomCorpus:
    return DicomCorpus("shared", {role: SHARED_DATA / "dicom" / name for role, name in ROLES.items()})


#: The corpora a test parametrized over them runs on: always the generated one.
CORPORA = ("generated", "shared") if (SHARED_DATA / "dicom").is_dir() else ("generated",)


def corpus_cases(*roles: str) -> list:
    """``(kind, role)`` parameters: every role on the generated corpus, and the roles that have a
    real file on the shared corpus where ``../shared/data`` is present."""
    import pytest

    return [pytest.param(kind, role, id=f"{kind}-{role}") for kind in CORPORA for role in roles
            if kind == "generated" or role in ROLES]


# --- A PACS's worth of studies (query/retrieve tests) -------------------------------------------

#: (patient ID, patient name) of the generated PACS patients; the IDs are long and unusual so a
#: test can look for them in log output.
PACS_PATIENTS = (("PACS-ALPHA-0001", "DOE^JOHN"), ("PACS-BRAVO-0002", "DOE^JANE"), ("PACS-CHARLIE-0003", "ROE^RICHARD"))


@dataclass(frozen=True)
class PacsFilm:
    """One generated instance of :func:`make_pacs_studies` and what it was made with."""

    path: Path
    patient_id: str
    patient_name: str
    study_uid: str
    series_uid: str
    sop_uid: str
    study_date: str
    accession: str
    modality: str
    view: str


def make_pacs_studies(folder: Path, today: str, size: int = 128) -> list[PacsFilm]:
    """Every patient of :data:`PACS_PATIENTS` with three chest studies (two dated in 2025, one
    ``today``), each a PA and a lateral film in a series of its own (CR for the first patient's,
    DX for the others'), real NIH pixels; the first patient's first study also holds a Basic Text
    SR series (not a film: never retrieved for CR/DX), and the second patient has a CT-only
    study (not a chest film study)."""
    folder.mkdir(parents=True, exist_ok=True)
    samples = sorted(p.name for p in SAMPLES.glob("*.png"))
    out: list[PacsFilm] = []
    k = 0
    for p, (pid, name) in enumerate(PACS_PATIENTS):
        modality, sop = ("CR", CR_IMAGE) if p == 0 else ("DX", DX_IMAGE)
        for s, date in enumerate(("20250115", f"2025{p + 3:02d}20", today)):
            study = generate_uid()
            accession = f"ACC{p}{s}"
            for view in ("PA", "LL"):
                px = sample_gray(samples[k % len(samples)], size)
                k += 1
                series = generate_uid()
                ds = dicom_dataset(px, sop_class=sop, modality=modality, PatientID=pid, PatientName=name,
                                   StudyInstanceUID=study, SeriesInstanceUID=series, StudyDate=date,
                                   StudyTime="101500", StudyDescription=f"CHEST PA LAT {s}",
                                   AccessionNumber=accession, ViewPosition=view, SeriesNumber=1 if view == "PA" else 2,
                                   InstanceNumber=1, SeriesDescription=f"{view} view", StudyID=str(s + 1))
                path = write_dicom(folder / f"{pid}-{s}-{view}.dcm", ds)
                out.append(PacsFilm(path, pid, name, study, series, str(ds.SOPInstanceUID), date, accession, modality, view))
            if p == 0 and s == 0:
                series = generate_uid()
                ds = dicom_dataset(np.zeros((8, 8), np.uint8), sop_class=BASIC_TEXT_SR, modality="SR", PatientID=pid,
                                   PatientName=name, StudyInstanceUID=study, SeriesInstanceUID=series, StudyDate=date,
                                   AccessionNumber=accession, PixelData=None, Rows=None, Columns=None,
                                   BitsAllocated=None, BitsStored=None, HighBit=None, PixelRepresentation=None,
                                   SamplesPerPixel=None, PhotometricInterpretation=None)
                path = write_dicom(folder / f"{pid}-{s}-SR.dcm", ds)
                out.append(PacsFilm(path, pid, name, study, series, str(ds.SOPInstanceUID), date, accession, "SR", ""))
        if p == 1:
            study, series = generate_uid(), generate_uid()
            ds = dicom_dataset(sample_gray(samples[0], 64), sop_class="1.2.840.10008.5.1.4.1.1.2", modality="CT",
                               PatientID=pid, PatientName=name, StudyInstanceUID=study, SeriesInstanceUID=series,
                               StudyDate="20250301", AccessionNumber=f"ACC{p}CT", StudyDescription="CT THORAX",
                               StudyID="9", StudyTime="090000", SeriesNumber=1, InstanceNumber=1)
            path = write_dicom(folder / f"{pid}-CT.dcm", ds)
            out.append(PacsFilm(path, pid, name, study, series, str(ds.SOPInstanceUID), "20250301", f"ACC{p}CT", "CT", ""))
    return out


def make_big_series(folder: Path, n: int, size: int = 512) -> list[Path]:
    """One patient (``PACS-BIG-0009``), one study, one DX series of ``n`` films: a retrieve long
    enough to cancel or to kill the PACS in the middle of."""
    folder.mkdir(parents=True, exist_ok=True)
    study, series = generate_uid(), generate_uid()
    px = sample_gray(CHEST_SAMPLE, size).astype(np.uint16) * 16
    return [write_dicom(folder / f"big-{i:03d}.dcm",
                        dicom_dataset(px, sop_class=DX_IMAGE, modality="DX", bits_stored=12, PatientID="PACS-BIG-0009",
                                      PatientName="BIG^SERIES", StudyInstanceUID=study, SeriesInstanceUID=series,
                                      StudyDate="20250505", InstanceNumber=i + 1, ViewPosition="PA"))
            for i in range(n)]
