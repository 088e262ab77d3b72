"""The DICOM display pipeline on plain arrays: stored values → modality values → VOI → [0, 1].

As pydicom keeps ``pixels/processing.py`` (``apply_modality_lut``, ``apply_voi_lut``, …) apart
from its decoders, this module holds only numpy: nothing here reads a file or a pydicom data set.
Every function takes an array and explicit parameters and returns a new array (its input is
never written to), so the same functions serve the reader (:mod:`cxrviewer.io.dicom`, which
extracts the parameters from the header) and a viewer that windows modality values at display
time. The order of operations is PS3.4 N.2.1 and PS3.3 C.11::

    stored values
      → Modality LUT (Modality LUT Sequence, else Rescale Slope/Intercept)   PS3.3 C.11.1
      → VOI LUT (VOI LUT Sequence, else Window Center/Width, else min/max)   PS3.3 C.11.2
      → scaled to [0, 1] by the output range of the VOI stage
      → inverted once if MONOCHROME1 (PS3.3 C.7.6.3.1.2) or Presentation LUT Shape INVERSE
        (PS3.3 C.11.6.1.2)

MONOCHROME1 is inverted *after* the VOI stage: the standard says its minimum is displayed white
"after any VOI gray scale transformations have been performed" (cornerstone3D PR #2215 fixed a
viewer that inverted before and so inverted twice). See docs/dicom.md for every decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..types import Lut  # a data object films carry; the readers take it from here

logger = logging.getLogger(__name__)

#: The VOI LUT Functions of PS3.3 C.11.2.1.3 that :func:`apply_window` implements.
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


# ------------------------------------------------------------------ what flows through
@dataclass(frozen=True, eq=False)
class GrayscaleParams:
    """Everything the grayscale pipeline needs, as plain values.

    The reader fills it from a data set (:func:`cxrviewer.io.dicom.grayscale_params`), after
    dropping unusable values: ``window`` is a valid pair for ``voi_function``, ``rescale`` has a
    non-zero finite slope.
    """

    photometric: str = "MONOCHROME2"
    rescale: tuple[float, float] | None = None  # (slope, intercept)
    modality_lut: Lut | None = None
    voi_lut: Lut | None = None
    window: tuple[float, float] | None = None  # (center, width), in modality units
    voi_function: str = "LINEAR"
    presentation_shape: str | None = None


@dataclass(frozen=True)
class DisplayFacts:
    """What :func:`display_pixels` did: the VOI stage used, the window applied, whether inverted.

    ``voi`` is ``"lut-sequence"``, ``"window"``, ``"minmax"`` (or ``"none"`` for colour films,
    which have no VOI stage).
    """

    voi: str
    window: tuple[float, float] | None
    inverted: bool


# ------------------------------------------------------------------ Modality LUT (C.11.1)
def modality_values(
    stored: np.ndarray, rescale: tuple[float, float] | None = None, lut: Lut | None = None
) -> np.ndarray:
    """Stored values → modality values as float32 (PS3.3 C.11.1).

    The Modality LUT if given (it replaces the rescale, C.11.1), else ``slope * stored +
    intercept``, else the stored values. A rescale that overflows float32 (an absurd slope from
    a damaged header) is logged and the stored values are used instead, so the result is always
    finite for finite input.
    """
    if lut is not None:
        return lut.lookup(stored).astype(np.float32)
    x = stored.astype(np.float32)
    if rescale is not None:
        slope, intercept = rescale
        with np.errstate(over="ignore", invalid="ignore"):  # overflow is checked just below
            if slope != 1.0:
                x *= np.float32(slope)
            if intercept != 0.0:
                x += np.float32(intercept)
        if not np.isfinite(x).all():
            logger.warning("the Rescale Slope/Intercept overflow; using the stored values")
            x = np.nan_to_num(stored.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    return x


# --------------------------------------------------------------------------- VOI (C.11.2)
def apply_window(x: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """The window of PS3.3 C.11.2.1.2 with output range [0, 1].

    LINEAR (C.11.2.1.2.1)::

        x <= c - 0.5 - (w - 1) / 2        → 0
        x >  c - 0.5 + (w - 1) / 2        → 1
        otherwise  ((x - (c - 0.5)) / (w - 1) + 0.5)

    LINEAR_EXACT (C.11.2.1.3.2) uses ``(x - c) / w + 0.5`` between ``c ± w/2``; SIGMOID
    (C.11.2.1.3.1) is ``1 / (1 + exp(-4 (x - c) / w))``. Callers check ``width`` (≥ 1 for LINEAR,
    > 0 otherwise); :func:`valid_window` says whether a pair is usable.
    """
    x = x.astype(np.float32, copy=False)
    if function == "LINEAR_EXACT":
        y = (x - np.float32(center)) / np.float32(width) + np.float32(0.5)
    elif function == "SIGMOID":
        z = np.clip(-4.0 * (x - np.float32(center)) / np.float32(width), -60.0, 60.0)
        return (1.0 / (1.0 + np.exp(z))).astype(np.float32)
    elif width > 1.0:
        y = (x - np.float32(center - 0.5)) / np.float32(width - 1.0) + np.float32(0.5)
    else:  # width == 1: a step at c - 0.5
        return (x > np.float32(center - 0.5)).astype(np.float32)
    # The clip is the two outer branches of the formula: y <= 0 exactly when x <= lower edge.
    return np.clip(y, 0.0, 1.0, out=y)


def valid_window(center: float, width: float, function: str = "LINEAR") -> bool:
    """Whether ``(center, width)`` is a window :func:`apply_window` can apply.

    PS3.3 C.11.2.1.2: width ≥ 1 for LINEAR, > 0 for LINEAR_EXACT and SIGMOID. The |v| < 1e30
    test also rejects inf and nan, and values float32 cannot hold.
    """
    if not (abs(center) < 1e30 and abs(width) < 1e30):
        return False
    return width >= 1.0 if function == "LINEAR" else width > 0.0


def apply_voi_lut(x: np.ndarray, lut: Lut) -> np.ndarray:
    """Modality values through a VOI LUT (PS3.3 C.11.2.1.1), scaled by its output range to [0, 1]."""
    return lut.lookup(x).astype(np.float32) / np.float32(lut.output_max)


def scale_min_max(x: np.ndarray) -> np.ndarray:
    """``x`` scaled linearly from its min … max to [0, 1] as float32; a constant array gives 0."""
    lo, hi = float(x.min()), float(x.max())
    if not hi > lo:
        return np.zeros(x.shape, dtype=np.float32)
    if hi - lo > 1e37:  # float32 would overflow: (only absurd float pixel data gets here)
        return ((x.astype(np.float64) - lo) / (hi - lo)).astype(np.float32)
    return ((x - np.float32(lo)) / np.float32(hi - lo)).astype(np.float32, copy=False)


def apply_voi(
    x: np.ndarray,
    lut: Lut | None = None,
    window: tuple[float, float] | None = None,
    function: str = "LINEAR",
) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    """Modality values → VOI output in [0, 1] (PS3.3 C.11.2), with what was applied.

    Returns ``(values, voi, window)``: the VOI LUT if given (it replaces the window,
    C.11.2.1.1), else the window ``(center, width)`` with ``function``, else min/max of ``x``.
    A LUT or window that maps every pixel to one value while ``x`` varies (a window far from the
    data, a constant table) is logged and replaced by min/max, so a film never comes out blank
    because of its header. ``voi`` is ``"lut-sequence"``, ``"window"`` or ``"minmax"``.
    """
    y: np.ndarray | None = None
    voi, applied = "minmax", None
    if lut is not None:
        y, voi = apply_voi_lut(x, lut), "lut-sequence"
    elif window is not None:
        center, width = window
        y, voi, applied = apply_window(x, center, width, function), "window", (center, width)
    if y is not None and _is_constant(y) and not _is_constant(x):
        logger.warning(
            "the %s maps every pixel to the same value; showing the min..max range instead",
            "VOI LUT" if voi == "lut-sequence" else f"window {applied}",
        )
        y, voi, applied = None, "minmax", None
    if y is None:
        y = scale_min_max(x)
    return y, voi, applied


# ------------------------------------------------------------------------- inversion
def is_inverted(photometric: str, presentation_shape: str | None = None) -> bool:
    """Whether the VOI output is inverted for display (once), from the image's own attributes.

    PS3.3 C.7.6.3.1.2: MONOCHROME1 shows its minimum as white *after* the VOI stage. In image
    objects, Presentation LUT Shape INVERSE "shall be used if Photometric Interpretation is
    MONOCHROME1" (C.11.6.1.2 and the General Image module): it states the same inversion, so it
    is not applied a second time. INVERSE on a MONOCHROME2 image still inverts it; IDENTITY on a
    MONOCHROME1 image contradicts it, and the Photometric Interpretation wins (logged).
    """
    mono1 = photometric == "MONOCHROME1"
    if mono1 and presentation_shape == "IDENTITY":
        logger.warning("MONOCHROME1 image with Presentation LUT Shape IDENTITY; following MONOCHROME1")
    return mono1 or presentation_shape == "INVERSE"


def to_display(y: np.ndarray, inverted: bool, *, out: np.ndarray | None = None) -> np.ndarray:
    """VOI output → display values: inverted if asked (``1 - y``), clipped to [0, 1], float32.

    A new array unless ``out`` is given (numpy's convention; ``out=y`` works in place on a
    float32 ``y`` the caller owns).
    """
    y = y.astype(np.float32, copy=False)
    if out is None:
        out = np.subtract(np.float32(1.0), y) if inverted else y.copy()
    elif inverted:
        np.subtract(np.float32(1.0), y, out=out)
    elif out is not y:
        np.copyto(out, y)
    return np.clip(out, 0.0, 1.0, out=out)


# ------------------------------------------------------------------- the whole pipeline
def display_pixels(stored: np.ndarray, params: GrayscaleParams) -> tuple[np.ndarray, DisplayFacts]:
    """Stored grayscale values → float32 display values in [0, 1], white = dense."""
    x = modality_values(stored, params.rescale, params.modality_lut)
    y, voi, window = apply_voi(x, params.voi_lut, params.window, params.voi_function)
    inverted = is_inverted(params.photometric, params.presentation_shape)
    y = to_display(y, inverted, out=y)  # y is apply_voi's own new float32 array: no copy
    return y, DisplayFacts(voi=voi, window=window, inverted=inverted)


def rgb_to_luma(rgb: np.ndarray, top: float) -> np.ndarray:
    """RGB samples (H×W×3+, ``top`` = the largest sample value) → BT.601 luma in [0, 1], float32.

    Colour images have no VOI stage (PS3.3 C.11.2 applies to grayscale), so they are scaled by
    their sample range; negative (signed) samples count as 0.
    """
    values = rgb[..., :3].astype(np.float32)
    if np.issubdtype(rgb.dtype, np.signedinteger):
        values = np.maximum(values, 0.0)
    luma = values @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(luma / np.float32(top), 0.0, 1.0).astype(np.float32)


def _is_constant(a: np.ndarray) -> bool:
    return a.size == 0 or float(a.max()) == float(a.min())
