"""Plain helpers for the film-reader tests: the real DICOMs in ../shared/data and a DICOM writer.

Synthetic DICOMs carry a fake patient name and ID (:data:`PHI_VALUES`) so tests can check that no
identifying value ever reaches a film's metadata, a log line or an error message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

SHARED_DATA_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "data"
PHI_VALUES = ("Doe^Jane", "PID-0042-SECRET", "19450101")

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



def stored_array(path: Path) -> np.ndarray:
    """The raw stored values of a DICOM (first frame), straight from pydicom."""
    import pydicom
    from pydicom.pixels import pixel_array

    ds = pydicom.dcmread(path, force=True)
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        from pydicom.dataset import FileMetaDataset

        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    return pixel_array(ds, index=0)


def build_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    preamble: bool = True,
    transfer_syntax: str | None = None,
    pixel_data: bytes | None = None,
    sop_class: str = "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
    **elements: Any,
) -> Path:
    """Write a DICOM file holding ``pixels`` (H×W, F×H×W, or H×W×3 for RGB).

    The dtype of ``pixels`` sets Bits Allocated and Pixel Representation; ``bits_stored``
    defaults to Bits Allocated. Extra keyword arguments become data elements (``None`` deletes).
    ``pixel_data`` replaces the encoded pixels (for encapsulated or broken data).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    arr = np.asarray(pixels)
    color = photometric in ("RGB", "YBR_FULL")
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
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = PHI_VALUES
    ds.Modality = "OT"
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
    ds.PixelData = pixel_data if pixel_data is not None else np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()
    for keyword, value in elements.items():
        if value is None:
            if keyword in ds:
                delattr(ds, keyword)
        else:
            setattr(ds, keyword, value)
    if pixel_data is not None and transfer_syntax is not None:
        ds["PixelData"].is_undefined_length = True
        ds["PixelData"].VR = "OB"
    if preamble:
        known = UID(str(ds.file_meta.TransferSyntaxUID)).is_transfer_syntax
        encoding = {} if known else {"implicit_vr": False, "little_endian": True}
        ds.save_as(path, enforce_file_format=True, **encoding)
    else:
        # A bare data set: no preamble, no "DICM", no file meta (like fo-dicom's CR-MONO1-10-chest).
        ds.file_meta = FileMetaDataset()
        ds.save_as(path, implicit_vr=True, little_endian=True)
    return path
