"""Class maps for display: upsample, normalise, colour; and regions (contours, boxes) from them.

A :class:`~cxrviewer.types.Prediction` holds each class's Grad-CAM map at the model's feature
resolution (e.g. 10×10 for a 320 px DenseNet121). Here they become film-sized maps in [0, 1].

What is drawn (:func:`combined_map`, :func:`opacity`) is on one scale for every finding of a
film: each map is divided by the film's *common reference*, the highest value of any of its class
maps (:func:`reference`), not by its own peak. A map whose peak is a few per cent of the strongest
map's then looks nearly empty, as it is, instead of as a saturated blob (docs/heatmaps.md). Values
under :data:`VISIBLE_LEVEL` of the reference are not drawn at all, and a finding whose whole map
stays under it has "no activation" (:func:`is_empty`).

Regions (:func:`regions`) and :func:`display_map` still scale each map by its own peak: they
answer *where* the model looked for one finding, whatever its strength.

Where a map lies on the film (:func:`map_frame`, :func:`on_film`): over the whole film, or, for a
model that reads the film's centred square (``cxr.crop`` = ``"center"``), over that square only,
with zero (no heat, no region) outside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .types import Prediction, crop_box

COLORMAPS: dict[str, int] = {
    "jet": cv2.COLORMAP_JET,
    "turbo": cv2.COLORMAP_TURBO,
    "inferno": cv2.COLORMAP_INFERNO,
    "viridis": cv2.COLORMAP_VIRIDIS,
    "magma": cv2.COLORMAP_MAGMA,
    "hot": cv2.COLORMAP_HOT,
}
DEFAULT_COLORMAP = "jet"

#: Region defaults: keep the part of a map at or above this fraction of its peak ...
REGION_LEVEL = 0.5
#: ... in connected pieces of at least this fraction of the film's area.
REGION_MIN_AREA = 0.005
#: Regions are traced on a grid of at most this many pixels on the film's long side and scaled
#: to film pixels. The maps are 10×10 cells (320 px model): at 512 a cell still spans ~50 grid
#: pixels, so outlines move by at most a grid pixel (0.2% of the film, less than the line drawn
#: over them), and it runs for every positive finding of every film (cost: bench/RESULTS.md).
REGION_GRID = 512


def upsample(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (h, w) class map resized to ``shape`` = (H, W) with bilinear interpolation, ≥ 0."""
    h, w = shape
    up = cv2.resize(np.asarray(cam, dtype=np.float32), (int(w), int(h)), interpolation=cv2.INTER_LINEAR)
    # max(up, 0) in place: OpenCV's threshold is ~15x faster than np.maximum on a film-sized map
    cv2.threshold(up, 0.0, 0.0, cv2.THRESH_TOZERO, dst=up)
    return up


def map_frame(prediction: Prediction, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The part of a film of ``shape`` = (H, W) that ``prediction``'s maps cover, as ``(x, y,
    width, height)`` in film pixels: the part the model read (``cxr.crop``,
    :func:`cxrviewer.types.crop_box`), the whole film unless the model reads its centred square."""
    return crop_box(int(shape[0]), int(shape[1]), prediction.crop)


def on_film(cam: np.ndarray, prediction: Prediction, shape: tuple[int, int]) -> np.ndarray:
    """A (h, w) map of ``prediction`` (its frame's grid) upsampled (:func:`upsample`) onto a film of
    ``shape``: over :func:`map_frame`, zero outside it."""
    x, y, w, h = map_frame(prediction, shape)
    if (h, w) == (int(shape[0]), int(shape[1])):
        return upsample(cam, shape)
    out = np.zeros((int(shape[0]), int(shape[1])), dtype=np.float32)
    out[y : y + h, x : x + w] = upsample(cam, (h, w))
    return out


def normalize(cam: np.ndarray) -> np.ndarray:
    """Scale a non-negative map to [0, 1] by its peak; an all-zero map stays zero."""
    cam = np.maximum(np.asarray(cam, dtype=np.float32), 0.0)
    peak = float(cam.max()) if cam.size else 0.0
    if peak <= 0.0 or not np.isfinite(peak):
        return np.zeros_like(cam)
    return cam / peak


def display_map(prediction: Prediction, label: str, shape: tuple[int, int]) -> np.ndarray:
    """The film-sized [0, 1] map of one class, scaled by its own peak (where, not how strong)."""
    return on_film(normalize(prediction.class_map(label)), prediction, shape)


#: Map values under this fraction of the common reference are not drawn (fully transparent), and
#: a map that stays under it everywhere has no activation. One step of an 8-bit colour scale is
#: 0.4%; 10% is where a blend at the default opacity starts to be told from the bare film, and a
#: map that weak next to the film's strongest is noise (Hernia's lone cell of 0.0003 against
#: Pneumonia's 0.0044 on 00000103_000.png is 6%).
VISIBLE_LEVEL = 0.1


def reference(prediction: Prediction) -> float:
    """The common scale of a film's maps: the highest value of any class map (0 if all are 0).

    Taken over every class of the prediction, not only those shown, so that switching one
    finding on or off never changes how another looks.
    """
    maps = np.asarray(prediction.class_maps, dtype=np.float32)
    peak = float(maps.max()) if maps.size else 0.0
    return peak if np.isfinite(peak) and peak > 0.0 else 0.0


def strengths(prediction: Prediction) -> np.ndarray:
    """Each class's map peak as a fraction of :func:`reference`, (C,) in the labels' order."""
    ref = reference(prediction)
    n = len(prediction.labels)
    if ref <= 0.0:
        return np.zeros(n, dtype=np.float32)
    peaks = np.asarray(prediction.class_maps, dtype=np.float32).reshape(n, -1).max(axis=1)
    return np.clip(np.nan_to_num(peaks / ref, nan=0.0), 0.0, 1.0)


def is_empty(prediction: Prediction, label: str) -> bool:
    """True when nothing of ``label``'s map would be drawn: "no activation"."""
    return bool(strengths(prediction)[prediction.labels.index(label)] < VISIBLE_LEVEL)


def active(prediction: Prediction, labels: Sequence[str]) -> tuple[str, ...]:
    """``labels`` less those whose map is empty (:func:`is_empty`), in the same order."""
    s = strengths(prediction)
    return tuple(label for label in labels if s[prediction.labels.index(label)] >= VISIBLE_LEVEL)


def combined_map(prediction: Prediction, labels: Sequence[str], shape: tuple[int, int]) -> np.ndarray:
    """Per-pixel maximum of several classes' maps on the common scale (:func:`reference`),
    film-sized, in [0, 1]; zeros when ``labels`` is empty or every map is."""
    ref = reference(prediction)
    if not labels or ref <= 0.0:
        return np.zeros(shape, dtype=np.float32)
    small = np.max([np.asarray(prediction.class_map(label), dtype=np.float32) for label in labels], axis=0)
    small = np.clip(np.nan_to_num(small / ref, nan=0.0), 0.0, 1.0)
    return on_film(small, prediction, shape)


def strongest_map(prediction: Prediction, labels: Sequence[str], shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(heat, which): the per-pixel maximum of ``labels``' maps on the common scale, as
    :func:`combined_map` gives it, and the index into ``labels`` of the map that holds it there
    (uint8, film-sized). With several findings drawn in their own hues, ``which`` picks each
    pixel's colour: every pixel shows the finding whose map is strongest there."""
    ref = reference(prediction)
    heat = np.zeros(shape, dtype=np.float32)
    which = np.zeros(shape, dtype=np.uint8)
    if not labels or ref <= 0.0:
        return heat, which
    for i, label in enumerate(labels):
        small = np.clip(np.nan_to_num(np.asarray(prediction.class_map(label), dtype=np.float32) / ref, nan=0.0), 0.0, 1.0)
        up = upsample(small, shape)
        if i == 0:
            heat = up
            continue
        np.copyto(which, np.uint8(i), where=up > heat)
        np.maximum(heat, up, out=heat)
    return heat, which


def sample(cam: np.ndarray, shape: tuple[int, int], x: float, y: float) -> float:
    """The value at film pixel (``x``, ``y``) of ``cam`` upsampled to ``shape`` (as :func:`upsample`
    computes it: OpenCV's bilinear resize, pixel centres aligned), without upsampling the map."""
    cam = np.asarray(cam, dtype=np.float32)
    h, w = cam.shape
    fy = min(max((y + 0.5) * h / shape[0] - 0.5, 0.0), h - 1.0)
    fx = min(max((x + 0.5) * w / shape[1] - 0.5, 0.0), w - 1.0)
    y0, x0 = int(fy), int(fx)
    y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
    dy, dx = fy - y0, fx - x0
    top = cam[y0, x0] * (1 - dx) + cam[y0, x1] * dx
    bottom = cam[y1, x0] * (1 - dx) + cam[y1, x1] * dx
    return max(0.0, float(top * (1 - dy) + bottom * dy))


def strongest_at(prediction: Prediction, labels: Sequence[str], shape: tuple[int, int], x: float, y: float) -> tuple[str, float] | None:
    """(label, value on the common scale) of the strongest of ``labels``' maps at film pixel
    (``x``, ``y``) of a film of ``shape``; ``None`` where none reaches :data:`VISIBLE_LEVEL`
    (nothing is drawn there). The hover readout names this finding."""
    ref = reference(prediction)
    if ref <= 0.0:
        return None
    best: tuple[str, float] | None = None
    for label in labels:
        v = sample(prediction.class_map(label), shape, x, y) / ref
        if v >= VISIBLE_LEVEL and (best is None or v > best[1]):
            best = (label, min(v, 1.0))
    return best


def opacity(heat: np.ndarray, alpha: float) -> np.ndarray:
    """Blend weight of a common-scale map: 0 up to :data:`VISIBLE_LEVEL`, then rising as the
    square of the value's place between it and the reference, to ``alpha`` at the reference.

    Weak activation leaves the film untouched instead of tinting it with the colormap's low end;
    the square keeps a broad, middling map (a third of the reference over the whole chest is
    common) a faint wash, and lets the hot spots stand out.
    """
    t = (np.asarray(heat, dtype=np.float32) - VISIBLE_LEVEL) * np.float32(1.0 / (1.0 - VISIBLE_LEVEL))
    np.clip(t, 0.0, 1.0, out=t)
    t *= t
    t *= np.float32(alpha)
    return t


def colorize(heat: np.ndarray, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """RGB uint8 image of a [0, 1] map under a named colormap."""
    if colormap not in COLORMAPS:
        raise ValueError(f"unknown colormap {colormap!r}; choose one of {', '.join(COLORMAPS)}")
    u8 = np.clip(np.rint(heat * 255.0), 0, 255).astype(np.uint8)
    bgr = cv2.applyColorMap(u8, COLORMAPS[colormap])
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


@dataclass(frozen=True)
class Region:
    """A connected hot area of one class's map, in film pixel coordinates."""

    label: str
    box: tuple[int, int, int, int]  # x, y, width, height
    contour: tuple[tuple[int, int], ...]  # (x, y) points of the outer outline
    area: int  # pixels
    peak: float  # the map's highest value inside, in [0, 1]
    probability: float

    def as_dict(self) -> dict:
        x, y, w, h = self.box
        return {
            "label": self.label,
            "probability": round(self.probability, 6),
            "box": {"x": x, "y": y, "width": w, "height": h},
            "area": self.area,
            "peak": round(self.peak, 6),
            "contour": [list(p) for p in self.contour],
        }


def region_grid(shape: tuple[int, int]) -> tuple[int, int]:
    """The (rows, columns) grid on which :func:`regions` traces a film of ``shape``.

    The film itself when its long side is at most :data:`REGION_GRID`, else the film scaled down
    to that (same aspect ratio).
    """
    h, w = int(shape[0]), int(shape[1])
    long_side = max(h, w)
    if long_side <= REGION_GRID:
        return h, w
    f = REGION_GRID / long_side
    return max(1, round(h * f)), max(1, round(w * f))


def regions(
    prediction: Prediction,
    label: str,
    shape: tuple[int, int],
    level: float = REGION_LEVEL,
    min_area: float = REGION_MIN_AREA,
) -> list[Region]:
    """Outlines and boxes of the parts of ``label``'s map at or above ``level`` × its peak.

    Pieces smaller than ``min_area`` × the film's area are dropped. Largest first. Coordinates,
    boxes and areas are in film pixels; films longer than :data:`REGION_GRID` pixels are traced
    on a grid of that size (:func:`region_grid`) and scaled up. The regions lie inside the part
    of the film the maps cover (:func:`map_frame`): the whole film, or its centred square.
    """
    small = normalize(prediction.class_map(label))
    if level > 0 and not small.any():
        return []  # an all-zero map (common: the maps are ReLU'd) has nothing above any level
    # Traced on the maps' frame as if it were the film, then moved to its place on the film.
    fx, fy, film_w, film_h = map_frame(prediction, shape)
    grid = region_grid((film_h, film_w))
    heat = upsample(small, grid)
    mask = (heat >= level).view(np.uint8)  # 0/1 without a second pass
    if not cv2.countNonZero(mask):
        return []
    # Trace the outlines only in the box around the hot pixels (one pixel wider, inside the grid):
    # the same contours, in the same order, as on the whole grid, for a fraction of the work.
    bx, by, bw, bh = cv2.boundingRect(mask)
    x0, y0 = max(bx - 1, 0), max(by - 1, 0)
    x1, y1 = min(bx + bw + 1, mask.shape[1]), min(by + bh + 1, mask.shape[0])
    contours, _ = cv2.findContours(
        mask[y0:y1, x0:x1], cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE, offset=(x0, y0)
    )
    # a fraction of the film is the same fraction of the grid (times film / frame when cropped)
    limit = min_area * grid[0] * grid[1]
    if (film_h, film_w) != (int(shape[0]), int(shape[1])):
        limit *= int(shape[0]) * int(shape[1]) / (film_h * film_w)
    sy, sx = film_h / grid[0], film_w / grid[1]  # film pixels per grid pixel (1 unless scaled)
    scaled = (sy, sx) != (1.0, 1.0)
    out: list[Region] = []
    prob = prediction.probability(label)
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        # Fill the outline inside its bounding box only: the same pixels as on the whole grid,
        # without touching (and summing) a grid-sized mask for every piece.
        piece = np.zeros((h, w), dtype=np.uint8)
        cv2.drawContours(piece, [c], -1, 1, thickness=cv2.FILLED, offset=(-x, -y))
        area = int(cv2.countNonZero(piece))
        if area < limit:
            continue
        peak = cv2.minMaxLoc(heat[y : y + h, x : x + w], mask=piece)[1]
        # The map is a smooth upsampling of a coarse grid: its outline is a staircase of
        # one-pixel steps. Simplify it to within 0.1% of the grid (at least one pixel: ~1-2 film
        # pixels), which no one can see and which makes the JSON about ten times shorter.
        c = cv2.approxPolyDP(c, max(1.0, 0.001 * max(grid)), True).reshape(-1, 2)
        if scaled:
            # grid pixel centres to film pixel centres; the box covers the film pixels under
            # the grid pixels it holds
            pts = np.rint((c + 0.5) * (sx, sy) - 0.5).astype(np.int64)
            # an outline along the grid's edge runs along the film's edge
            pts[:, 0] = np.where(c[:, 0] == 0, 0, np.where(c[:, 0] >= grid[1] - 1, film_w - 1, pts[:, 0]))
            pts[:, 1] = np.where(c[:, 1] == 0, 0, np.where(c[:, 1] >= grid[0] - 1, film_h - 1, pts[:, 1]))
            fx0, fy0 = int(np.floor(x * sx)), int(np.floor(y * sy))
            fx1, fy1 = min(film_w, int(np.ceil((x + w) * sx))), min(film_h, int(np.ceil((y + h) * sy)))
            box = (fx0, fy0, fx1 - fx0, fy1 - fy0)
            area = int(round(area * sx * sy))
        else:
            pts, box = c, (int(x), int(y), int(w), int(h))
        if fx or fy:  # from the frame's pixels to the film's
            pts = pts + (fx, fy)
            box = (box[0] + fx, box[1] + fy, box[2], box[3])
        out.append(
            Region(
                label=label,
                box=box,
                contour=tuple((int(px), int(py)) for px, py in pts),
                area=area,
                peak=float(peak),
                probability=prob,
            )
        )
    out.sort(key=lambda r: -r.area)
    return out
