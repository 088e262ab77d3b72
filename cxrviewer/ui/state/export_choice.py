"""What the export dialog offers for a film and what its answer means: the file, format, anonymized.

A Structured Report and a Presentation State point at a DICOM image (PS3.3 A.35.13, A.33.1), so
for a PNG or JPEG film their entries are marked unavailable, saying why; picked anyway (a
platform's file dialog cannot grey out one of its file types), the export is refused with the
full reason before any work is done (:func:`unavailable_reason`).
"""

from __future__ import annotations

from pathlib import Path

from ...types import Film

# Export dialog file types → (format, anonymize); the first is the default.
EXPORT_FILTERS = {
    "PNG image (*.png)": ("png", False),
    "DICOM Secondary Capture, same patient and study (*.dcm)": ("dicom-sc", False),
    "DICOM Secondary Capture, anonymized (*.dcm)": ("dicom-sc", True),
    "DICOM Structured Report of the findings, in the film's study (*.dcm)": ("dicom-sr", False),
    "DICOM Presentation State, the outlines as toggleable layers (*.dcm)": ("dicom-gsps", False),
}
#: The formats that need a DICOM film, and what each is called in a message.
NEEDS_DICOM = {"dicom-sr": "Structured Report", "dicom-gsps": "Presentation State"}
_UNAVAILABLE = " [unavailable: needs a DICOM film]"


def unavailable_reason(fmt: str, film: Film) -> str | None:
    """Why ``film`` cannot be exported as ``fmt``, or ``None`` when it can."""
    if fmt not in NEEDS_DICOM:
        return None
    from ...dicom.source import source_kind

    if source_kind(film) == "dicom":
        return None
    return (
        f"{film.name} is not a DICOM image, so a DICOM {NEEDS_DICOM[fmt]} would have no image to "
        "point at. Export a DICOM Secondary Capture instead (it carries the annotated picture), "
        "or open the film's DICOM file."
    )


def export_filters(film: Film) -> dict[str, tuple[str, bool]]:
    """The dialog's file types for ``film``: :data:`EXPORT_FILTERS`, those a PNG or JPEG film
    cannot have marked unavailable in their names."""
    out = {}
    for name, (fmt, anonymize) in EXPORT_FILTERS.items():
        if unavailable_reason(fmt, film) is not None:
            head, _, pattern = name.rpartition(" (")
            name = f"{head}{_UNAVAILABLE} ({pattern}"
        out[name] = (fmt, anonymize)
    return out


def export_target(name: str, chosen_filter: str) -> tuple[Path, str, bool]:
    """``(path, format, anonymize)`` for the name typed and the file type picked."""
    fmt, anonymize = EXPORT_FILTERS.get(chosen_filter.replace(_UNAVAILABLE, ""), ("png", False))
    if fmt == "png" and Path(name).suffix.lower() in (".dcm", ".dicom"):
        fmt = "dicom-sc"  # a .dcm name typed under the PNG filter: the user wants DICOM
    if Path(name).suffix.lower() not in ((".png",) if fmt == "png" else (".dcm", ".dicom")):
        name += ".png" if fmt == "png" else ".dcm"
    return Path(name), fmt, anonymize
