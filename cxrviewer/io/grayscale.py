"""Windowing a film's modality-unit image at display time (the viewer's half of PS3.4 N.2.1).

A :class:`~cxrviewer.types.Film` keeps its stored samples (:class:`~cxrviewer.types.Grayscale`)
next to the model's view. Here they become display values under any VOI: the file's default, one
of its presets, a window the user drags, the full range or an automatic (percentile) window.
Every step is the one of :mod:`cxrviewer.io.dicom_display` (Modality LUT → VOI → MONOCHROME1
inversion), so a preset shows what the file's author meant and the default VOI shows what the
model saw.

Speed: for integer samples of up to 16 bits the whole pipeline is evaluated once per VOI on every
possible stored value (65,536 entries, well under a millisecond) and the film is drawn by one table
look-up per pixel, as Weasis and cornerstone do; a window drag therefore costs one ``np.take`` of
the film, not a float pass (bench/bench_gui.py).
"""

from __future__ import annotations

import logging
import weakref

import numpy as np

from ..types import Grayscale, Voi
from .dicom_display import apply_voi_lut, apply_window, modality_values, to_display

logger = logging.getLogger(__name__)

#: Integer samples whose stored range spans more values than this are windowed pixel by pixel.
_MAX_TABLE = 1 << 20
#: The automatic window's percentiles of the modality values.
AUTO_PERCENTILES = (1.0, 99.0)
#: At most about this many pixels are looked at for the automatic window.
_AUTO_SAMPLE = 1 << 20

_ranges: weakref.WeakKeyDictionary[Grayscale, tuple[float, float]] = weakref.WeakKeyDictionary()
_autos: weakref.WeakKeyDictionary[Grayscale, tuple[float, float]] = weakref.WeakKeyDictionary()


def values(gray: Grayscale, rows: slice = slice(None)) -> np.ndarray:
    """The modality values of ``rows`` of the film as float32 (PS3.3 C.11.1)."""
    return modality_values(gray.stored[rows], gray.rescale, gray.modality_lut)


def value_at(gray: Grayscale, x: int, y: int) -> float:
    """The modality value of the pixel at column ``x``, row ``y``."""
    return float(modality_values(gray.stored[y : y + 1, x : x + 1], gray.rescale, gray.modality_lut)[0, 0])


def _table_inputs(gray: Grayscale) -> np.ndarray | None:
    """Every stored value a table must cover, in the order a look-up indexes it; ``None`` when
    the samples are not integers or span too many values for a table."""
    dt = gray.stored.dtype
    if dt in (np.uint8, np.uint16):
        return np.arange(1 << (8 * dt.itemsize), dtype=np.int64)
    if dt in (np.int8, np.int16):
        # indexed through the unsigned view of the same bits: entry u holds the value int(u) wraps to
        unsigned = np.uint8 if dt == np.int8 else np.uint16
        return np.arange(1 << (8 * dt.itemsize), dtype=np.int64).astype(unsigned).view(dt).astype(np.int64)
    return None


def _modality_of_table(gray: Grayscale) -> np.ndarray | None:
    xs = _table_inputs(gray)
    if xs is None:
        return None
    return modality_values(xs, gray.rescale, gray.modality_lut)


def value_range(gray: Grayscale) -> tuple[float, float]:
    """(lowest, highest) modality value in the film."""
    cached = _ranges.get(gray)
    if cached is not None:
        return cached
    st = gray.stored
    if np.issubdtype(st.dtype, np.integer) and st.size:
        lo_s, hi_s = int(st.min()), int(st.max())
        if hi_s - lo_s <= _MAX_TABLE:
            m = modality_values(np.arange(lo_s, hi_s + 1, dtype=np.int64), gray.rescale, gray.modality_lut)
        else:
            m = values(gray)
    else:
        m = values(gray) if st.size else np.zeros(1, np.float32)
    out = (float(m.min()), float(m.max()))
    _ranges[gray] = out
    return out


def full_range(gray: Grayscale) -> Voi:
    """The window from the lowest to the highest modality value: nothing clipped."""
    lo, hi = value_range(gray)
    return Voi("full range", (lo + hi) / 2.0, max(hi - lo, 1e-6), "LINEAR_EXACT")


def auto_window(gray: Grayscale) -> Voi:
    """The window from the 1st to the 99th percentile of the modality values (a few outliers,
    collimator edges and markers, do not decide the contrast)."""
    cached = _autos.get(gray)
    if cached is None:
        st = gray.stored
        step = max(1, int(np.sqrt(st.size / _AUTO_SAMPLE)))
        sample = modality_values(st[::step, ::step], gray.rescale, gray.modality_lut)
        lo, hi = (float(v) for v in np.percentile(sample, AUTO_PERCENTILES))
        if not hi > lo:
            lo, hi = value_range(gray)
        cached = (lo, hi)
        _autos[gray] = cached
    lo, hi = cached
    return Voi("automatic", (lo + hi) / 2.0, max(hi - lo, 1e-6), "LINEAR_EXACT")


def user_window(gray: Grayscale, center: float, width: float, function: str | None = None) -> Voi:
    """A window the user chose, in modality units, with the film's VOI LUT Function by default."""
    function = function or gray.voi_function
    floor = 1.0 if function == "LINEAR" else 1e-6
    return Voi("", float(center), float(max(width, floor)), function)


def _voi_output(m: np.ndarray, voi: Voi) -> np.ndarray:
    if voi.lut is not None:
        return apply_voi_lut(m, voi.lut)
    if voi.function == "LINEAR_EXACT":
        # C.11.2.1.3.2, written as the viewer always wrote its [0, 1] window, so that a window on
        # a film known only by its pixels draws to the same 8-bit value as before (float rounding)
        lower = np.float32(voi.center - voi.width / 2.0)
        y = (m.astype(np.float32, copy=False) - lower) / np.float32(voi.width)
        return np.clip(y, 0.0, 1.0, out=y)
    if voi.function == "LINEAR" and voi.width < 1.0:
        return apply_window(m, voi.center, 1.0, "LINEAR")
    return apply_window(m, voi.center, voi.width, voi.function)


def _to_u8(y: np.ndarray) -> np.ndarray:
    """[0, 1] values as uint8, rounded as :func:`cxrviewer.render.film_rgb` rounds the model view."""
    return np.clip(np.rint(np.clip(y, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)


def display_table(gray: Grayscale, voi: Voi, invert: bool = False) -> np.ndarray | None:
    """The uint8 display value of every stored value under ``voi`` (indexed by the stored value's
    unsigned bits), or ``None`` when the film is windowed pixel by pixel instead."""
    m = _modality_of_table(gray)
    if m is None:
        return None
    return _shown(_voi_output(m, voi), gray.inverted, invert)


def _shown(y: np.ndarray, inverted: bool, invert: bool) -> np.ndarray:
    """VOI output → uint8: MONOCHROME1 inverted before rounding (as the model's view is), the
    user's negative after it (as :func:`cxrviewer.render.film_rgb` always inverted)."""
    u8 = _to_u8(to_display(y, inverted, out=y if y.dtype == np.float32 else None))
    return np.subtract(np.uint8(255), u8, out=u8) if invert else u8


def display_gray(
    gray: Grayscale, voi: Voi, invert: bool = False, rows: slice = slice(None), table: np.ndarray | None = None
) -> np.ndarray:
    """``rows`` of the film under ``voi`` as uint8 gray (white = dense once MONOCHROME1 is
    inverted; ``invert`` inverts once more). ``table`` is :func:`display_table`'s for the same
    ``voi`` and ``invert`` (made here when not given)."""
    st = gray.stored[rows]
    if table is None:
        table = display_table(gray, voi, invert)
    if table is not None:
        dt = st.dtype
        if dt in (np.int8, np.int16):
            st = st.view(np.uint8 if dt == np.int8 else np.uint16)
        return np.take(table, st)
    return _shown(_voi_output(modality_values(st, gray.rescale, gray.modality_lut), voi), gray.inverted, invert)


#: The windows known by name: the film's default, every value, the 1st–99th percentile.
NAMED_WINDOWS = ("file", "full", "auto")


def named_window(gray: Grayscale, name: str) -> Voi | None:
    """``"file"`` → ``None`` (the film's default VOI, the model's view), ``"full"`` →
    :func:`full_range`, ``"auto"`` → :func:`auto_window`."""
    if name == "file":
        return None
    if name == "full":
        return full_range(gray)
    if name == "auto":
        return auto_window(gray)
    raise ValueError(f"unknown window {name!r}; choose one of {NAMED_WINDOWS}")
