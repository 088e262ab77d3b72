"""The status bar's words for a film: its size and pixel spacing, its window/level, the value under the cursor."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ...heatmap import strongest_at
from ...io.grayscale import value_at, value_range
from ...types import CALIBRATION_SOURCES, Calibration, Film, Prediction, Voi


def _number(v: float, span: float) -> str:
    """A modality value as precise as the film's range needs (12-bit CR: 550; a [0, 1] film: 0.55)."""
    return f"{v:.0f}" if span >= 50 else f"{v:.3g}"


def describe_window(film: Film | None, window: Voi | None) -> str:
    """W/L for the status bar in the film's modality units, with the VOI's name; "(file)" when
    it is the film's own default VOI."""
    if film is None:
        return ""
    voi = window if window is not None else film.gray.default
    tag = " (file)" if window is None else ""
    name = f" · {voi.name}" if voi.name else ""
    if voi.lut is not None:
        return f"VOI LUT{name}{tag}"
    lo, hi = value_range(film.gray)
    span = hi - lo
    units = f" {film.gray.units}" if film.gray.units and film.gray.units != "US" else ""
    return f"W {_number(voi.width, span)}  L {_number(voi.center, span)}{units}{name}{tag}"


def describe_value(film: Film | None, x: int, y: int) -> str:
    """The cursor's pixel and its modality value (the status bar's readout)."""
    if film is None or not (0 <= x < film.width and 0 <= y < film.height):
        return ""

    lo, hi = value_range(film.gray)
    value = value_at(film.gray, x, y)
    text = f"{value:.0f}" if hi - lo >= 50 and float(value).is_integer() else f"{value:.4g}"
    return f"x {x}  y {y}  value {text}"


def describe_finding(film: Film | None, prediction: Prediction | None, shown: Sequence[str], x: int, y: int) -> str:
    """The finding whose map is drawn strongest at film pixel (x, y), of those ``shown``:
    ``Edema (map 62%)``, the map's value on the film's common scale; "" where no map is drawn."""
    if film is None or prediction is None or not shown:
        return ""
    found = strongest_at(prediction, shown, (film.height, film.width), x, y)
    if found is None:
        return ""
    label, value = found
    return f"{label.replace('_', ' ')} (map {value:.0%})"


def describe_film(film: Film | None, calibration: Calibration | None = None) -> str:
    """The film's size and the pixel size lengths are measured with: ``calibration`` (the reader's
    manual one) when given, else the file's; its source is named unless it is Pixel Spacing."""
    if film is None:
        return ""
    text = f"{film.width} × {film.height} px"
    cal = calibration if calibration is not None else film.calibration
    if cal is not None:
        text += f" · pixel {cal.col_mm:.3f} × {cal.row_mm:.3f} mm"
        if cal.kind != "pixel spacing":
            text += f" ({CALIBRATION_SOURCES.get(cal.kind, cal.kind)})"
    elif film.pixel_spacing:
        r, c = film.pixel_spacing
        text += f" · pixel {c:.3f} × {r:.3f} mm"
    else:
        text += " · pixel size unknown"
    return text


def results_message(summary: str, out: Path | None) -> str:
    """The message after a folder run: the summary, then the CSV's name and the folder it is in
    (``~`` for the home folder), name first so that a cut message still names the file; never a
    bare path that, cut after its first folder, reads as if the results went to the home folder."""
    if out is None:
        return summary
    folder = str(out.parent)
    home = str(Path.home())
    if home not in ("", "/") and (folder == home or folder.startswith(home + "/")):
        folder = "~" + folder[len(home):]
    return f"{summary}; results in {out.name} (folder {folder})"
