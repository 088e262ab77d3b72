"""Pictures of a film and its findings: the one renderer behind the GUI, the CLI and exports.

- :func:`film_rgb`: the film alone (optionally windowed / inverted) as RGB uint8.
- :func:`overlay`: the film with the chosen classes' heatmaps blended in, or outlined.
- :func:`annotate`: overlay plus a side panel: every finding's probability with its threshold
  mark, the legend, the model, and a "DEMO MODEL - not for diagnosis" mark for demo models.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
import unicodedata
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2
import numpy as np

from . import applicability, heatmap
from .classes import ClassChoice
from .errors import ExportError
from .io import grayscale
from .types import Calibration, Film, Measurement, ModelInfo, Orientation, Prediction, Voi

DEMO_MARK = "DEMO MODEL - not for diagnosis"
OOD_MARK = "Unusual film for this model - findings unreliable"
#: The banner of a film the model does not read by its header (cxrviewer.applicability), drawn
#: when it is scored anyway (`export` by name, `score --score-all`): with the reason's first part
OUTSIDE_USE_MARK = "Outside the model's use"

#: The findings' colours (RGB), assigned by the label's index in the model: 14 colours chosen by
#: Glasbey et al.'s max-min method under CIEDE2000 in normal vision and in simulated colour-vision
#: deficiency (Machado et al. 2009), all saturated enough to show on a grey film.
#: scripts/make_palette.py makes them and prints their distances; docs/heatmaps.md quotes them.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (34, 153, 119), (255, 170, 204), (119, 68, 255), (221, 0, 0), (204, 221, 0),
    (102, 187, 255), (204, 17, 136), (0, 238, 170), (187, 136, 68), (170, 119, 187),
    (85, 119, 34), (238, 102, 136), (153, 187, 119), (0, 136, 238),
)
MODES = ("heatmap", "contour")
#: Heatmap opacity when none is chosen.
DEFAULT_ALPHA = 0.4


@dataclass(frozen=True)
class RenderOptions:
    classes: tuple[str, ...] = ()
    alpha: float = DEFAULT_ALPHA
    colormap: str = heatmap.DEFAULT_COLORMAP
    mode: str = "heatmap"
    #: the VOI the film is drawn with: ``None`` for the film's default (the model's view), a
    #: :class:`~cxrviewer.types.Voi` (a preset, full range, ...) or (center, width) in modality units
    window: Voi | tuple[float, float] | None = None
    invert: bool = False
    #: display only: the heatmaps, outlines and measurements turn with the film
    orientation: Orientation = Orientation()
    #: orientation and laterality markers (Patient Orientation, Image Laterality, View Position)
    markers: bool = True
    #: distances and angles drawn on the film, labelled in the film's calibration
    measurements: tuple[Measurement, ...] = ()
    #: what the measurements are labelled in when not the film's own (a manual calibration)
    calibration: Calibration | None = None


def select_classes(prediction: Prediction, spec: str | Sequence[str] | ClassChoice) -> tuple[str, ...]:
    """The model's labels drawn for ``spec`` (``all`` / ``none`` / ``positives`` / ``A,B``, a list,
    or a :class:`~cxrviewer.classes.ClassChoice`); see :mod:`cxrviewer.classes`."""
    choice = spec if isinstance(spec, ClassChoice) else ClassChoice.parse(spec)
    return choice.labels(prediction.labels, prediction.positives)


def class_color(prediction: Prediction, label: str) -> tuple[int, int, int]:
    return PALETTE[prediction.labels.index(label) % len(PALETTE)]


def film_rgb(film: Film | np.ndarray, window: Voi | tuple[float, float] | None = None, invert: bool = False) -> np.ndarray:
    """The film as RGB uint8 under ``window`` (see :attr:`RenderOptions.window`)."""
    film = film if isinstance(film, Film) else Film(np.asarray(film, dtype=np.float32))
    shade = film_shader(film, window, invert)
    out = np.empty((film.height, film.width, 3), dtype=np.uint8)

    def rows_rgb(rows: slice) -> None:
        gray = shade(rows)
        out[rows] = cv2.merge((gray, gray, gray))

    _by_rows(rows_rgb, film.height, film.width)
    return out


def film_voi(film: Film, window: Voi | tuple[float, float] | None) -> Voi | None:
    """``window`` as a :class:`~cxrviewer.types.Voi` of ``film`` (``None``: the film's default)."""
    if window is None or isinstance(window, Voi):
        return window
    center, width = window
    return grayscale.user_window(film.gray, center, width)


def film_shader(film: Film, window: Voi | tuple[float, float] | None, invert: bool) -> Callable[[slice], np.ndarray]:
    """``shade(rows)`` → those rows of the film as uint8 gray under ``window``.

    The default (``None``) draws the model's own [0, 1] view; any other VOI windows the film's
    modality values (:mod:`cxrviewer.io.grayscale`), through one table made here for all rows.
    """
    if window is None or (film.gray.from_pixels and not isinstance(window, Voi)):
        # the model's view, or a film whose [0, 1] pixels are its values: windowed as always
        return lambda rows: _gray(film.pixels[rows], window, invert)
    voi = film_voi(film, window)
    table = grayscale.display_table(film.gray, voi, invert)
    return lambda rows: grayscale.display_gray(film.gray, voi, invert, rows, table)


def _gray(px: np.ndarray, window, invert: bool) -> np.ndarray:
    """The film's pixels as uint8 gray under ``window``, inverted or not."""
    if window is not None:
        center, width = window
        width = max(float(width), 1e-6)
        px = (px - (center - width / 2.0)) / width
    gray = np.clip(np.rint(np.clip(px, 0.0, 1.0) * 255.0), 0, 255).astype(np.uint8)
    if invert:
        gray = 255 - gray
    return gray


@functools.cache
def _colormap_planes(name: str) -> tuple[np.ndarray, ...]:
    """The R, G and B look-up tables (256 entries each) of an OpenCV colormap."""
    bgr = cv2.applyColorMap(np.arange(256, dtype=np.uint8).reshape(1, 256), heatmap.COLORMAPS[name])
    return tuple(np.ascontiguousarray(bgr[0, :, c]) for c in (2, 1, 0))


#: Pixels per piece when a film-sized picture is computed piece by piece: every step is per
#: pixel, so pieces give exactly the whole-film result, with temporaries that stay in cache.
_PIECE_PIXELS = 1 << 18
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _by_rows(fn: Callable[[slice], None], height: int, width: int) -> None:
    """Call ``fn(rows)`` for bands of rows covering ``height``; on all cores for big pictures.

    Bands on all cores are what makes a class toggle on a big film feel instant
    (bench/bench_gui.py; figures in bench/RESULTS.md).
    """
    global _pool
    step = max(1, _PIECE_PIXELS // max(1, width))
    bands = [slice(y, min(height, y + step)) for y in range(0, height, step)]
    cores = os.cpu_count() or 1
    if len(bands) < 4 or cores == 1:
        for rows in bands:
            fn(rows)
        return
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="cxr-render")
    for f in [_pool.submit(fn, rows) for rows in bands]:
        f.result()


def overlay(
    film: Film,
    prediction: Prediction | None,
    classes: Sequence[str] = (),
    alpha: float = DEFAULT_ALPHA,
    colormap: str = heatmap.DEFAULT_COLORMAP,
    mode: str = "heatmap",
    window: Voi | tuple[float, float] | None = None,
    invert: bool = False,
) -> np.ndarray:
    """The film with heatmaps (or outlines, ``mode="contour"``) of ``classes``; RGB uint8 H×W×3.

    In heatmap mode the maps are on one scale for all findings (:func:`cxrviewer.heatmap.combined_map`)
    and each pixel's blend weight is :func:`cxrviewer.heatmap.opacity` of the value there: weak
    activation leaves the film untouched, the film's strongest spot shows the colour at
    ``alpha``. With two or more findings drawn, each is in its own colour (:func:`finding_hues`):
    the colormap is for a single finding. In contour mode each class's regions (:func:`cxrviewer.heatmap.regions`) are
    outlined in the class's colour and labelled with its name and probability
    (:func:`draw_outlines`). Either way, classes whose map is empty draw nothing.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose {' or '.join(MODES)}")
    if prediction is None or not classes or alpha <= 0:
        return film_rgb(film, window, invert)
    shape = (film.height, film.width)
    if mode == "heatmap" and colormap not in heatmap.COLORMAPS:
        heatmap.colorize(np.zeros((1, 1), np.float32), colormap)  # raises the one clear error
    hues = finding_hues(prediction, classes, mode)
    if hues:
        return _hue_overlay(film, prediction, hues, alpha, window, invert)
    if mode == "heatmap":
        heat = heatmap.combined_map(prediction, classes, shape)
        a = np.clip(alpha, 0.0, 1.0)
        planes = _colormap_planes(colormap)
        shade = film_shader(film, window, invert)
        out = np.empty((*shape, 3), dtype=np.uint8)

        def blend(rows: slice) -> None:
            # out = rint(film · (1 − w) + colour · w) with w = alpha · heat, exactly as one
            # whole-film expression would give it, but per band of rows and per colour plane
            # (contiguous arrays, in cache); the film's term is the same for the three channels.
            h = heat[rows]
            w = heatmap.opacity(h, a)
            u8 = np.clip(np.rint(h * 255.0), 0, 255).astype(np.uint8)  # as heatmap.colorize
            film_term = shade(rows) * (1.0 - w)
            channels = []
            for table in planes:
                mixed = cv2.LUT(u8, table) * w
                mixed += film_term
                np.rint(mixed, out=mixed)
                channel = np.empty(u8.shape, dtype=np.uint8)
                np.clip(mixed, 0, 255, out=channel, casting="unsafe")
                channels.append(channel)
            out[rows] = cv2.merge(channels)

        _by_rows(blend, shape[0], shape[1])
        return out
    out = film_rgb(film, window, invert)
    draw_outlines(out, prediction, classes)
    return out


def finding_hues(prediction: Prediction | None, classes: Sequence[str], mode: str = "heatmap") -> tuple[tuple[str, tuple[int, int, int]], ...]:
    """(label, colour) of each finding drawn in a hue of its own, else ``()``.

    In heatmap mode with two or more findings that draw something, one colormap cannot say which
    colour is which finding: each is drawn in its :data:`PALETTE` colour (the contour mode's,
    colour-blind checked) and a legend names them (:func:`draw_legend`). One finding keeps the
    chosen colormap (jet, turbo, inferno ...), whose colour then says how strong the map is.
    """
    if prediction is None or mode != "heatmap":
        return ()
    drawn = heatmap.active(prediction, classes)
    return legend_entries(prediction, drawn) if len(drawn) >= 2 else ()


def _hue_overlay(film: Film, prediction: Prediction, hues, alpha: float, window, invert: bool) -> np.ndarray:
    """The film with each finding of ``hues`` in its own colour: each pixel takes the colour of
    the finding whose map is strongest there (:func:`cxrviewer.heatmap.strongest_map`), blended
    with :func:`cxrviewer.heatmap.opacity` of that map's value, as the colormap overlay is."""
    shape = (film.height, film.width)
    heat, which = heatmap.strongest_map(prediction, [label for label, _ in hues], shape)
    # per channel, a 256-entry table from the finding's index to its colour (cv2.LUT: fast on uint8)
    tables = [np.zeros(256, np.uint8) for _ in range(3)]
    for k, (_, color) in enumerate(hues):
        for c in range(3):
            tables[c][k] = color[c]
    a = float(np.clip(alpha, 0.0, 1.0))
    shade = film_shader(film, window, invert)
    out = np.empty((*shape, 3), dtype=np.uint8)

    def blend(rows: slice) -> None:
        w = heatmap.opacity(heat[rows], a)
        film_term = shade(rows) * (1.0 - w)
        idx = which[rows]
        channels = []
        for c in range(3):
            mixed = cv2.LUT(idx, tables[c]) * w
            mixed += film_term
            np.rint(mixed, out=mixed)
            channel = np.empty(idx.shape, dtype=np.uint8)
            np.clip(mixed, 0, 255, out=channel, casting="unsafe")
            channels.append(channel)
        out[rows] = cv2.merge(channels)

    _by_rows(blend, shape[0], shape[1])
    return out


def draw_legend(rgb: np.ndarray, hues: Sequence[tuple[str, tuple[int, int, int]]]) -> None:
    """Name the findings' colours on the picture (in place): a swatch and the finding's name a
    row, on a dark plate in the bottom-left corner (the markers use the edges' middles and the
    top-left corner). Drawn by :func:`picture`, so the app and every export show the same."""
    if not hues:
        return
    h, w = rgb.shape[:2]
    scale = max(0.4, min(h, w) / 1400.0)
    thick = max(1, round(scale * 1.6))
    font = cv2.FONT_HERSHEY_SIMPLEX
    texts = [drawable_text(label.replace("_", " ")) for label, _ in hues]
    sizes = [cv2.getTextSize(t, font, scale, thick) for t in texts]
    th = max(s[0][1] for s in sizes)
    base = max(s[1] for s in sizes)
    pad = max(3, round(8 * scale))
    sw = th + base  # the swatch: a square as tall as a line of text
    row = sw + pad
    plate_w = min(w, 3 * pad + sw + max(s[0][0] for s in sizes))
    plate_h = min(h, pad + row * len(hues))
    x0, y0 = max(0, round(12 * scale)), max(0, h - plate_h - round(12 * scale))
    x1, y1 = min(w, x0 + plate_w), min(h, y0 + plate_h)
    rgb[y0:y1, x0:x1] = (rgb[y0:y1, x0:x1].astype(np.uint16) * 2 // 7).astype(rgb.dtype)
    y = y0 + pad
    for text, (_, color) in zip(texts, hues):
        cv2.rectangle(rgb, (x0 + pad, y), (x0 + pad + sw, y + sw), color, -1)
        cv2.putText(rgb, text, (x0 + 2 * pad + sw, y + th), font, scale, (255, 255, 255), thick, cv2.LINE_AA)
        y += row


def draw_outlines(out: np.ndarray, prediction: Prediction, classes: Sequence[str]) -> None:
    """Outline ``classes``' regions on ``out`` (RGB, the film's size), each labelled once.

    A dark edge under each coloured line keeps it visible on bright bone and dark lung alike;
    the label (name and probability, on a dark plate) sits above the class's largest region,
    inside the picture. Classes with an empty map (:func:`cxrviewer.heatmap.is_empty`) are
    left out: they have nothing to outline.
    """
    shape = out.shape[:2]
    thickness = max(1, round(max(shape) / 400))
    u = max(shape) / 1000.0
    placed: list[tuple[int, int, int, int]] = []  # label plates drawn so far: none overlaps another
    labels = []
    for label in heatmap.active(prediction, classes):
        found = heatmap.regions(prediction, label, shape)
        color = class_color(prediction, label)
        for region in found:
            pts = np.array(region.contour, dtype=np.int32).reshape(-1, 1, 2)
            cv2.polylines(out, [pts], True, (0, 0, 0), thickness + 2, cv2.LINE_AA)
            cv2.polylines(out, [pts], True, color, thickness, cv2.LINE_AA)
        if found:
            labels.append((found[0], outline_label(prediction, label), color))
    for region, text, color in labels:  # after every outline: no line crosses a label
        _outline_label(out, region, text, color, u, placed)


def outline_label(prediction: Prediction, label: str) -> str:
    """The text beside a finding's outline: ``Pleural Thickening 0.62``."""
    return f"{label.replace('_', ' ')} {prediction.probability(label):.2f}"


def _outline_label(out: np.ndarray, region: heatmap.Region, text: str, color, u: float, placed: list) -> None:
    text = drawable_text(text)
    scale, weight = max(0.35, 0.6 * u), max(1, int(round(1.4 * u)))
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, weight)
    pad = max(2, int(4 * u))
    h, w = out.shape[:2]
    pw, ph = tw + 2 * pad, th + base + 2 * pad
    x, y, _bw, _bh = region.box
    x = int(min(max(0, x), max(0, w - pw)))
    top = y - ph - 2  # above the box; inside it when the box touches the top
    top = int(min(max(0, top if top >= 0 else y + 2), max(0, h - ph)))

    def overlaps(t: int) -> bool:
        return any(x < px + pw_ and px < x + pw and t < py + ph_ and py < t + ph for px, py, pw_, ph_ in placed)

    for _ in range(len(placed) + 1):  # step below a plate already there (two outlines often start alike)
        if not overlaps(top):
            break
        top = min(top + ph + 1, max(0, h - ph))
    placed.append((x, top, pw, ph))
    cv2.rectangle(out, (x, top), (x + pw, top + ph), (20, 20, 20), -1)
    cv2.putText(out, text, (x + pad, top + pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, color, weight, cv2.LINE_AA)


def legend_entries(prediction: Prediction, classes: Sequence[str]) -> tuple[tuple[str, tuple[int, int, int]], ...]:
    """(label, colour) of each of ``classes`` that draws something; empty maps are left out."""
    return tuple((label, class_color(prediction, label)) for label in heatmap.active(prediction, classes))


def silent_classes(prediction: Prediction, classes: Sequence[str]) -> tuple[str, ...]:
    """Those of ``classes`` whose map is empty: shown as "no activation", never in a legend."""
    drawn = set(heatmap.active(prediction, classes))
    return tuple(label for label in classes if label not in drawn)


# --------------------------------------------------------------------------- annotate
#: The film's picture in :func:`annotate` is at most this many pixels on its long side ...
MAX_SIDE = 2048
#: ... and at least this tall (small films are enlarged, short wide ones padded), so that the
#: findings panel beside it, laid out in units of this height, has room for readable text.
MIN_HEIGHT = 640
#: Films more than this many times longer than wide (or wider than long) are not drawn: at
#: :data:`MAX_SIDE` on the long side the short side would be under ~200 pixels, a strip rather
#: than a radiograph (stitched full-spine and long-leg films reach about 1:4). Without this
#: bound a 2 × 30000 pixel PNG asked for an 18 GB picture.
MAX_ASPECT = 10.0


def picture_size(height: int, width: int) -> tuple[int, int]:
    """(rows, columns) of a ``height`` × ``width`` film's picture in :func:`annotate`.

    Scaled so that neither side exceeds :data:`MAX_SIDE`, and enlarged towards
    :data:`MIN_HEIGHT` as far as that allows. Raises :class:`~cxrviewer.errors.ExportError`
    for films whose aspect ratio exceeds :data:`MAX_ASPECT`. Only arithmetic: it is asked
    before any picture is allocated.
    """
    h, w = int(height), int(width)
    if h < 1 or w < 1 or max(h, w) > MAX_ASPECT * min(h, w):
        raise ExportError(
            f"The film is {w} × {h} pixels: its long side is more than {MAX_ASPECT:g} times its short "
            "side, too thin a strip to draw as a readable annotated picture. Scoring it is not "
            "affected; to export a picture, crop the film to a radiograph's proportions."
        )
    scale = min(1.0, MAX_SIDE / max(h, w))
    if h * scale < MIN_HEIGHT:  # small films get room for readable text
        scale = min(MIN_HEIGHT / h, MAX_SIDE / w)
    return min(MAX_SIDE, max(1, round(h * scale))), min(MAX_SIDE, max(1, round(w * scale)))


def canvas_size(height: int, width: int) -> tuple[int, int]:
    """(rows, columns) of :func:`annotate`'s whole picture (banner strips, film and panel) for
    such a film: at most 1.09 ``MAX_SIDE`` × (``MAX_SIDE`` + 1.04 ``MAX_SIDE``), about 21 MB of RGB."""
    ph, pw = picture_size(height, width)
    rows = max(ph, MIN_HEIGHT)
    return rows + 2 * _band_height(rows / 1000.0), pw + _panel_width(rows / 1000.0)


def film_box(height: int, width: int) -> tuple[int, int, int, int]:
    """(x, y, columns, rows) of the film's picture inside :func:`annotate`'s canvas.

    Nothing but the film (and its heatmaps or outlines) is drawn there: the demo and OOD
    banners have strips of their own above and below it, the legend is in the side panel.
    """
    ph, pw = picture_size(height, width)
    rows = max(ph, MIN_HEIGHT)
    return 0, _band_height(rows / 1000.0) + (rows - ph) // 2, pw, ph


def _band_height(u: float) -> int:
    """Rows of the strips above and below the film that carry the demo and OOD banners."""
    return max(int(44 * u), 28)


def _panel_width(u: float) -> int:
    return max(int(520 * u), 320)


def resized_film(film: Film, width: int, height: int, interp: int) -> Film:
    """``film`` at ``width`` × ``height``: its model view and its modality values alike, so that a
    VOI in modality units draws the same at any size."""
    gray = film.gray
    stored = gray.stored
    if stored.dtype not in (np.uint8, np.uint16, np.int16, np.float32):  # what cv2.resize takes
        stored = stored.astype(np.float32)
    gray = dataclasses.replace(gray, stored=cv2.resize(stored, (width, height), interpolation=interp))
    pixels = cv2.resize(film.pixels, (width, height), interpolation=interp)
    return dataclasses.replace(film, pixels=pixels, gray=gray)


def annotate(film: Film, prediction: Prediction, info: ModelInfo, options: RenderOptions = RenderOptions()) -> np.ndarray:
    """Overlay + findings panel + legend + model/demo marks, as one RGB uint8 picture.

    Its size comes from the film's alone (:func:`canvas_size`), checked before anything is drawn.
    """
    ph, pw = picture_size(film.height, film.width)
    if (ph, pw) != (film.height, film.width):
        # Draw at the picture's size, not the film's: every intermediate of the overlay (the
        # film-sized heatmap, the blend) stays within MAX_SIDE², ~16 MB a plane, where a 50 MP
        # film would take ~200 MB each. The maps are upsampled from their coarse grid straight
        # to this size, as smooth as before.
        interp = cv2.INTER_AREA if ph < film.height else cv2.INTER_LINEAR
        film = resized_film(film, pw, ph, interp)
    img = picture(film, prediction, options)
    ph, pw = img.shape[:2]  # turned a quarter, the picture's sides swap
    h = max(ph, MIN_HEIGHT)
    u = h / 1000.0  # layout unit: text and bars scale with the picture
    panel_w = _panel_width(u)
    band = _band_height(u)
    # The banners get strips of their own above and below the film, never rows of the film:
    # a banner over the film hid the apices (demo, top) or the costophrenic angles (OOD, bottom).
    canvas = np.full((h + 2 * band, pw + panel_w, 3), 24, np.uint8)
    top = band + (h - ph) // 2  # as film_box(); a short, wide film sits mid-column
    canvas[top : top + ph, :pw] = img
    if info.demo:
        _banner(canvas, 0, canvas.shape[1], DEMO_MARK, u, (200, 30, 30), band)
    outside = outside_use_mark(film, info)
    if outside is not None:  # the film is not one the model reads: that says more than "unusual"
        _banner(canvas, band + h, canvas.shape[1], outside, u, (150, 40, 160), band)
    elif prediction.ood_flag:
        _banner(canvas, band + h, canvas.shape[1], OOD_MARK, u, (200, 120, 0), band)
    body = canvas[band : band + h]  # a view: the panel is laid out as before, beside the film
    _panel(body, pw, panel_w, prediction, info, options, u, film.name)
    return canvas


def outside_use_mark(film: Film, info: ModelInfo) -> str | None:
    """``"Outside the model's use: lateral view (View Position LL)"`` for a film the model does not
    read by its header (:func:`cxrviewer.applicability.check`), else None."""
    verdict = applicability.check(film, info)
    return None if verdict.applicable else f"{OUTSIDE_USE_MARK}: {verdict.reason.split(': ')[0]}"


def legend_ramp(width: int, height: int, colormap: str, alpha: float, backdrop: int = 128) -> np.ndarray:
    """The heatmap scale as drawn: the colormap blended over a grey ``backdrop`` with the
    overlay's own weights, so its faint end shows as transparent as on the film."""
    heat = np.tile(np.linspace(0, 1, max(2, width), dtype=np.float32), (max(1, height), 1))
    w = heatmap.opacity(heat, float(np.clip(alpha, 0.0, 1.0)))[..., None]
    rgb = heatmap.colorize(heat, colormap).astype(np.float32) * w + backdrop * (1.0 - w)
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def drawable_text(text: str) -> str:
    """``text`` as the printable ASCII that OpenCV's Hershey fonts can draw.

    OpenCV's Python binding converts the string to UTF-8 and crashes the process (a segfault,
    not an exception) when that fails, as it does for the lone surrogates with which Python
    carries the undecodable bytes of a file name: ``b"M\\xfcller.png"`` from a Latin-1 disk is
    ``"M\\udcfcller.png"`` (PEP 383). Such a byte is read as the Latin-1 character it would be
    (any byte is one); then accents are dropped (``Müller`` → ``Muller``, by NFKD decomposition)
    and whatever has no ASCII form, control characters included, becomes ``?``. OpenCV 4's
    Hershey fonts have glyphs for printable ASCII only (OpenCV 5 draws more, but 4.x is
    supported), so ASCII is what every supported OpenCV draws the same way.
    """
    text = "".join(_unescape(ch) if "\ud800" <= ch <= "\udfff" else ch for ch in str(text))
    out = []
    for ch in unicodedata.normalize("NFKD", text):
        if " " <= ch <= "~":
            out.append(ch)
        elif not unicodedata.combining(ch):
            out.append("?")
    return "".join(out)


def _unescape(ch: str) -> str:
    """A ``surrogateescape`` character (U+DC80..U+DCFF) as the Latin-1 character of its byte;
    any other lone surrogate as ``?``."""
    return chr(ord(ch) - 0xDC00) if "\udc80" <= ch <= "\udcff" else "?"


def _text(img, text, org, u, color=(235, 235, 235), size=0.8, bold=False) -> None:
    cv2.putText(
        img, drawable_text(text), (int(org[0]), int(org[1])), cv2.FONT_HERSHEY_SIMPLEX, size * u,
        color, max(1, int(round((2.2 if bold else 1.4) * u))), cv2.LINE_AA,
    )


def _banner(canvas, y, width, text, u, color, bh) -> None:
    canvas[y : y + bh, :width] = color
    _text(canvas, text, (12 * u, y + (bh + 22 * u) / 2), u, (255, 255, 255), 0.95, bold=True)


def _panel(canvas, x0, pw, prediction: Prediction, info: ModelInfo, options: RenderOptions, u, name) -> None:
    pad = int(18 * u)
    x = x0 + pad
    y = int(44 * u)
    _text(canvas, name[:40], (x, y), u, size=0.75, bold=True)
    y += int(34 * u)
    _text(canvas, f"model {info.model_version}"[:44], (x, y), u, (180, 180, 180), 0.6)
    if info.demo:
        y += int(30 * u)
        _text(canvas, DEMO_MARK, (x, y), u, (255, 90, 90), 0.6, bold=True)
    y += int(46 * u)
    bar_x = x + int(250 * u)
    bar_w = pw - (bar_x - x0) - int(92 * u)
    row = int(40 * u)
    drawn = dict(legend_entries(prediction, options.classes))  # empty maps have no swatch
    hued = bool(finding_hues(prediction, options.classes, options.mode))
    for label, p, t in prediction.ranked():
        positive = p >= t
        color = (255, 210, 80) if positive else (220, 220, 220)
        if label in drawn:
            sw = int(14 * u)
            c = drawn[label] if options.mode == "contour" or hued else (255, 255, 255)
            cv2.rectangle(canvas, (x, y - sw), (x + sw, y), c, -1)
        _text(canvas, label.replace("_", " ")[:20], (x + int(22 * u), y), u, color, 0.6, bold=positive)
        top, bh = y - int(16 * u), int(18 * u)
        cv2.rectangle(canvas, (bar_x, top), (bar_x + bar_w, top + bh), (70, 70, 70), -1)
        cv2.rectangle(canvas, (bar_x, top), (bar_x + int(bar_w * p), top + bh), (240, 170, 40) if positive else (110, 150, 200), -1)
        tx = bar_x + int(bar_w * t)
        cv2.line(canvas, (tx, top - int(4 * u)), (tx, top + bh + int(4 * u)), (255, 255, 255), max(1, int(2 * u)))
        _text(canvas, f"{p:.2f}", (bar_x + bar_w + int(10 * u), y), u, color, 0.55)
        y += row
    y += int(16 * u)
    _text(canvas, "| = threshold   highlighted = above", (x, y), u, (170, 170, 170), 0.5)
    silent = silent_classes(prediction, options.classes)
    if silent:
        line = "No activation:"
        for name in (label.replace("_", " ") for label in silent):
            if len(line) + len(name) + 2 > 52:
                y += int(28 * u)
                _text(canvas, line, (x, y), u, (170, 170, 170), 0.5)
                line = " "
            line += f" {name},"
        y += int(28 * u)
        _text(canvas, line.rstrip(","), (x, y), u, (170, 170, 170), 0.5)
    if hued:
        y += int(44 * u)
        _text(canvas, "Grad-CAM, one scale: colour = finding,", (x, y), u, (200, 200, 200), 0.55)
        y += int(28 * u)
        _text(canvas, "opacity = strength (faint -> strong)", (x, y), u, (200, 200, 200), 0.55)
    elif drawn and options.mode == "heatmap":
        y += int(44 * u)
        _text(canvas, f"Grad-CAM ({options.colormap}), one scale: faint -> strong", (x, y), u, (200, 200, 200), 0.55)
        y += int(14 * u)
        canvas[y : y + int(18 * u), x : x + max(2, pw - 2 * pad)] = legend_ramp(max(2, pw - 2 * pad), int(18 * u), options.colormap, options.alpha)
    if prediction.ood_score is not None:
        y += int(56 * u)
        msg = f"OOD score {prediction.ood_score:.2f}" + ("  UNUSUAL FILM" if prediction.ood_flag else "")
        _text(canvas, msg, (x, y), u, (255, 170, 60) if prediction.ood_flag else (170, 170, 170), 0.55)


# ------------------------------------------------------------ orientation and markers
def picture(film: Film, prediction: Prediction | None, options: RenderOptions) -> np.ndarray:
    """What the app's film view shows and every export draws: :func:`overlay`, turned and
    mirrored by ``options.orientation``, with the orientation and laterality markers."""
    o = options
    rgb = overlay(film, prediction, o.classes, o.alpha, o.colormap, o.mode, o.window, o.invert)
    if o.orientation != Orientation():
        rgb = np.ascontiguousarray(o.orientation.apply(rgb))
    if o.markers:
        draw_markers(rgb, film, o.orientation)
    draw_legend(rgb, finding_hues(prediction, o.classes, o.mode))
    if o.measurements:
        draw_measurements(rgb, film, o.measurements, o.orientation, o.calibration or film.calibration)
    return rgb


def marker_texts(film: Film, orientation: Orientation) -> tuple[tuple[str, str, str, str] | None, str]:
    """((left, right, top, bottom) edge markers or ``None``, the corner text) for ``film`` as turned.

    The edges come from Patient Orientation (PS3.3 C.7.6.1.1.1), turned with the picture; the
    corner names the View Position and the Image Laterality (C.8.11.7, C.7.6.2). Nothing is
    guessed: a film without these attributes gets no markers.
    """
    md = film.metadata
    po = md.get("patient_orientation")
    edges = orientation.edge_labels(po[0], po[1]) if po and len(po) == 2 and all(po) else None
    corner = " ".join(v for v in (md.get("view_position"), md.get("laterality")) if v)
    return edges, corner


def draw_markers(rgb: np.ndarray, film: Film, orientation: Orientation) -> None:
    """Draw :func:`marker_texts` on ``rgb`` (the turned picture), in place: edge letters at the
    middle of each side, the view and laterality in the top-left corner; white on a dark halo."""
    edges, corner = marker_texts(film, orientation)
    if edges is None and not corner:
        return
    h, w = rgb.shape[:2]
    scale = max(0.4, min(h, w) / 700.0)
    thick = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX

    def put(text: str, x: int, y: int) -> None:
        text = drawable_text(text)
        # a dark box under the letters: a halo alone vanishes on a white abdomen or a bright collimator edge
        (tw, th), base = cv2.getTextSize(text, font, scale, thick)
        m = max(2, thick + 1)
        y0, y1 = max(0, y - th - m), min(h, y + base + m)
        x0, x1 = max(0, x - m), min(w, x + tw + m)
        if y1 > y0 and x1 > x0:
            rgb[y0:y1, x0:x1] = (rgb[y0:y1, x0:x1].astype(np.uint16) * 2 // 7).astype(rgb.dtype)
        cv2.putText(rgb, text, (x, y), font, scale, (0, 0, 0), thick + 2 * max(1, thick // 2), cv2.LINE_AA)
        cv2.putText(rgb, text, (x, y), font, scale, (255, 255, 255), thick, cv2.LINE_AA)

    pad = max(4, round(10 * scale))
    if edges is not None:
        left, right, top, bottom = edges
        for text, where in ((left, "left"), (right, "right"), (top, "top"), (bottom, "bottom")):
            (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
            x = {"left": pad, "right": w - tw - pad}.get(where, (w - tw) // 2)
            y = {"top": th + pad, "bottom": h - pad}.get(where, (h + th) // 2)
            put(text, x, y)
    if corner:
        (_, th), _ = cv2.getTextSize(corner, font, scale, thick)
        put(corner, pad, th + pad)


MEASURE_COLOR = (255, 215, 0)


def draw_measurements(rgb: np.ndarray, film: Film, measurements: Sequence[Measurement], orientation: Orientation,
                      calibration: Calibration | None = None) -> None:
    """Draw each measurement on ``rgb`` (the turned picture, which may be smaller than the film:
    points are scaled to it), in place: its lines (a ratio's two widths apart), its points and
    its label (the value in ``calibration``, else the film's own), upright whatever the turn."""
    calibration = calibration or film.calibration
    h, w = rgb.shape[:2]
    fh, fw = orientation.shape(film.height, film.width)
    sx, sy = w / fw, h / fh
    scale = max(0.4, min(h, w) / 900.0)
    thick = max(1, round(scale * 2))
    font = cv2.FONT_HERSHEY_SIMPLEX
    for m in measurements:
        pts = []
        for x, y in m.points:
            px, py = orientation.to_screen(x, y, film.height, film.width)
            pts.append((int(round(px * sx)), int(round(py * sy))))
        lines = [pts[:2], pts[2:]] if m.kind == "ctr" else [pts]
        for line in lines:
            cv2.polylines(rgb, [np.array(line, np.int32).reshape(-1, 1, 2)], False, MEASURE_COLOR, thick, cv2.LINE_AA)
        for p in pts:
            cv2.circle(rgb, p, thick + 2, MEASURE_COLOR, -1, cv2.LINE_AA)
        # OpenCV's fonts have no degree sign
        text = f"{m.value(calibration):.1f} deg" if m.kind == "angle" else m.label(calibration)
        (tw, th), _ = cv2.getTextSize(text, font, scale, thick)
        if m.kind == "ctr":  # a long label: under the thorax's width, from its left end
            x0 = min(max(0, min(pts[2][0], pts[3][0])), max(0, w - tw - 2))
            y0 = min(max(th + 2, max(pts[2][1], pts[3][1]) + th + 12), h - 2)
        else:
            anchor = pts[1] if m.kind == "angle" else pts[-1]
            x0 = min(max(0, anchor[0] + 8), max(0, w - tw - 2))
            y0 = min(max(th + 2, anchor[1] - 8), h - 2)
        cv2.putText(rgb, text, (x0, y0), font, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
        cv2.putText(rgb, text, (x0, y0), font, scale, MEASURE_COLOR, thick, cv2.LINE_AA)
