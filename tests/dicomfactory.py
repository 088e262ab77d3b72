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
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian, generate_uid


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
