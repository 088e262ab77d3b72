"""What the export dialog's answer means: the file to write, its format, anonymized or not."""

from __future__ import annotations

from pathlib import Path

# Export dialog file types → (format, anonymize); the first is the default.
EXPORT_FILTERS = {
    "PNG image (*.png)": ("png", False),
    "DICOM Secondary Capture, same patient and study (*.dcm)": ("dicom-sc", False),
    "DICOM Secondary Capture, anonymized (*.dcm)": ("dicom-sc", True),
}


def export_target(name: str, chosen_filter: str) -> tuple[Path, str, bool]:
    """``(path, format, anonymize)`` for the name typed and the file type picked."""
    fmt, anonymize = EXPORT_FILTERS.get(chosen_filter, ("png", False))
    if fmt == "png" and Path(name).suffix.lower() in (".dcm", ".dicom"):
        fmt = "dicom-sc"  # a .dcm name typed under the PNG filter: the user wants DICOM
    if Path(name).suffix.lower() not in ((".png",) if fmt == "png" else (".dcm", ".dicom")):
        name += ".png" if fmt == "png" else ".dcm"
    return Path(name), fmt, anonymize
