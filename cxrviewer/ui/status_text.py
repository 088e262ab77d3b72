"""The status bar's words for a film: its size and pixel spacing, its window/level."""

from __future__ import annotations

from ..types import Film
from .viewer_model import DEFAULT_WINDOW


def describe_window(film: Film | None, window: tuple[float, float] | None) -> str:
    """W/L for the status bar, in the film's own units where we know them."""
    center, width = window if window is not None else DEFAULT_WINDOW
    tag = " (file)" if window is None else ""
    if film is None:
        return ""
    stored = film.metadata.get("window") if film.metadata else None
    if stored:  # DICOM with a stored window: film [0, 1] spans that window, in modality units
        c0, w0 = stored
        lower = c0 - w0 / 2.0
        return f"W {width * w0:.0f}  L {lower + center * w0:.0f}{tag}"
    if film.metadata.get("format") == "dicom":
        return f"W {100 * width:.0f}%  L {100 * center:.0f}%{tag}"
    return f"W {255 * width:.0f}  L {255 * center:.0f}{tag}"


def describe_film(film: Film | None) -> str:
    if film is None:
        return ""
    text = f"{film.width} × {film.height} px"
    if film.pixel_spacing:
        r, c = film.pixel_spacing
        text += f" · pixel {c:.3f} × {r:.3f} mm"
    else:
        text += " · pixel size unknown"
    return text
