"""The data objects that flow through the pipeline: ``Film``, ``Prediction``, ``ModelInfo``.

They are frozen dataclasses. Arrays inside them are treated as read-only by convention (and
flagged non-writeable where we create them), so a film or a prediction can be handed between
threads and front ends without copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np


def _frozen_array(a: np.ndarray, dtype: Any = np.float32) -> np.ndarray:
    arr = np.ascontiguousarray(a, dtype=dtype)
    if arr is a:
        arr = arr.view()
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Lut:
    """A Modality or VOI lookup table (PS3.3 C.11.1.1, C.11.2.1.1).

    ``first_map`` is the input value mapped to ``data[0]``; inputs below it take the first entry
    and inputs past the end take the last (the standard's rule), so a table whose input range is
    wider or narrower than the data never fails (Weasis #373).
    """

    data: np.ndarray = field(repr=False)
    first_map: int
    bits: int

    def lookup(self, x: np.ndarray) -> np.ndarray:
        """Map values ``x`` (integers, or floats rounded to the nearest entry) through the table."""
        n = self.data.shape[0]
        if np.issubdtype(x.dtype, np.integer):
            idx = np.clip(x.astype(np.int64) - self.first_map, 0, n - 1)
        else:
            idx = np.clip(np.rint(x) - self.first_map, 0, n - 1).astype(np.int64)
        return self.data[idx]

    @property
    def output_max(self) -> int:
        """The top of the table's output range, ``2**n - 1``, n = the bits its largest entry needs.

        For a table that uses its range, n is the LUT Descriptor's bit depth (``self.bits``).
        Some devices declare 16 bits for tables whose entries only reach 4095 (dicom-rs #825 on
        Agfa CRs; Horos and Cornerstone also look at the data): taking the declared range at its
        word would show those films nearly black.
        """
        top = int(self.data.max()) if self.data.size else 0
        return (1 << max(1, top.bit_length())) - 1


@dataclass(frozen=True)
class Voi:
    """One VOI transformation of a film (PS3.3 C.11.2): a window, or a VOI LUT.

    ``center``/``width`` are in modality units with ``function`` one of LINEAR, LINEAR_EXACT,
    SIGMOID (C.11.2.1.2/3); a VOI LUT (``lut``) replaces the window (C.11.2.1.1). ``name`` is the
    file's explanation (Window Center & Width Explanation, LUT Explanation) or ours ("full range").
    """

    name: str = ""
    center: float = 0.5
    width: float = 1.0
    function: str = "LINEAR"
    lut: Lut | None = field(default=None, compare=False)

    @property
    def is_lut(self) -> bool:
        return self.lut is not None


@dataclass(frozen=True, eq=False)
class Grayscale:
    """A film's modality-unit image: what the detector measured, kept for display-time windowing.

    ``stored`` is the decoded sample array in its own dtype (integers stay integers: a 16-bit film
    costs 2 bytes a pixel here, not 4); the modality values are ``stored`` through ``modality_lut``
    or ``rescale`` (slope, intercept) (PS3.3 C.11.1), computed when asked
    (:func:`cxrviewer.io.dicom_display.grayscale_values`). ``default`` is the VOI the model's view was
    made with, ``presets`` every VOI the file holds, ``inverted`` whether display inverts after the
    VOI (MONOCHROME1), ``units`` the Rescale Type when the file names one.
    """

    stored: np.ndarray
    default: Voi
    presets: tuple[Voi, ...] = ()
    rescale: tuple[float, float] | None = None
    modality_lut: Lut | None = None
    inverted: bool = False
    voi_function: str = "LINEAR"
    units: str = ""
    #: True when the film was known only by its [0, 1] pixels: they are its values
    from_pixels: bool = False

    def __post_init__(self) -> None:
        st = self.stored
        dtype = st.dtype if (np.issubdtype(st.dtype, np.integer) or st.dtype == np.float32) else np.float32
        object.__setattr__(self, "stored", _frozen_array(st, dtype))
        object.__setattr__(self, "presets", tuple(self.presets))


def unit_grayscale(pixels: np.ndarray) -> Grayscale:
    """The grayscale of a film known only by its [0, 1] pixels: its own values, the identity window."""
    return Grayscale(pixels, default=Voi("film", 0.5, 1.0, "LINEAR_EXACT"), voi_function="LINEAR_EXACT", from_pixels=True)


#: where a :class:`Calibration` comes from, and the words the panel, the labels and the SR use
CALIBRATION_SOURCES = {
    "pixel spacing": "Pixel Spacing",
    "magnification corrected": "Imager Pixel Spacing ÷ Estimated Radiographic Magnification Factor",
    "detector": "Imager Pixel Spacing (at the detector)",
    "manual": "manual calibration",
}


@dataclass(frozen=True)
class Calibration:
    """The size of a pixel for measuring, and where it comes from (PS3.3 10.7.1.3, C.8.11.4).

    ``kind`` is the source: ``"pixel spacing"`` (Pixel Spacing: in the patient, as is),
    ``"magnification corrected"`` (Imager Pixel Spacing ÷ Estimated Radiographic Magnification
    Factor), ``"detector"`` (Imager Pixel Spacing alone: lengths at the detector plane, larger than
    in the patient by the unknown magnification) or ``"manual"`` (the user drew a line of known
    length: :meth:`manual`). ``row_mm``/``col_mm`` are the distances between the centres of
    adjacent rows / columns.
    """

    row_mm: float
    col_mm: float
    kind: str = "pixel spacing"

    def __post_init__(self) -> None:
        if self.kind not in CALIBRATION_SOURCES:
            raise ValueError(f"unknown calibration {self.kind!r}; choose one of {tuple(CALIBRATION_SOURCES)}")
        if not (self.row_mm > 0 and self.col_mm > 0):  # NaN fails too
            raise ValueError(f"a pixel must have a positive size, not {self.row_mm} × {self.col_mm} mm")

    @property
    def unit(self) -> str:
        """What lengths are labelled with: ``"mm"``, ``"mm at detector"`` or ``"mm, manual calibration"``."""
        return {"detector": "mm at detector", "manual": "mm, manual calibration"}.get(self.kind, "mm")

    @property
    def source(self) -> str:
        """Where the pixel size comes from, in words (for the panel, exports and the SR)."""
        return CALIBRATION_SOURCES[self.kind]

    @classmethod
    def manual(cls, a: tuple[float, float], b: tuple[float, float], length_mm: float,
               base: Calibration | None = None) -> Calibration:
        """The calibration that makes the line from ``a`` to ``b`` (film coordinates) ``length_mm``
        long. The pixels keep the aspect of ``base`` (the file's own calibration, when it has
        one: non-square pixels stay non-square), else they are square."""
        if not (np.isfinite(length_mm) and length_mm > 0):
            raise ValueError(f"a known length must be positive, not {length_mm} mm")
        row, col = (base.row_mm, base.col_mm) if base is not None else (1.0, 1.0)
        drawn = float(np.hypot((b[0] - a[0]) * col, (b[1] - a[1]) * row))
        if drawn <= 0:
            raise ValueError("the calibration line has no length: draw it over something of known size")
        k = float(length_mm) / drawn
        return cls(row * k, col * k, "manual")


#: the points each kind of measurement takes
MEASUREMENT_POINTS = {"distance": 2, "angle": 3, "ctr": 4}


@dataclass(frozen=True)
class Measurement:
    """A distance (two points), an angle (three points, the vertex in the middle) or a
    cardiothoracic ratio (four points: the heart's widest width, then the thorax's widest inner
    width, each a horizontal segment on the film) on a film.

    Points are the film's own continuous coordinates (x right, y down, pixel centres at +0.5),
    so a measurement stays put when the display turns, mirrors or zooms. A ratio's segments are
    kept horizontal in film coordinates (each segment's second point takes the first's row).
    """

    kind: str  # "distance" | "angle" | "ctr"
    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        need = MEASUREMENT_POINTS.get(self.kind)
        if need is None:
            raise ValueError(f"unknown measurement {self.kind!r}; choose one of {tuple(MEASUREMENT_POINTS)}")
        pts = [(float(x), float(y)) for x, y in self.points]
        if len(pts) != need:
            raise ValueError(f"a {self.kind} takes {need} points, not {len(pts)}")
        if self.kind == "ctr":
            pts[1] = (pts[1][0], pts[0][1])
            pts[3] = (pts[3][0], pts[2][1])
        object.__setattr__(self, "points", tuple(pts))

    def moved(self, index: int, point: tuple[float, float]) -> Measurement:
        """This measurement with point ``index`` at ``point`` (a ratio's segment moves up or down
        as a whole, staying horizontal)."""
        pts = list(self.points)
        pts[index] = (float(point[0]), float(point[1]))
        if self.kind == "ctr":
            partner = index ^ 1  # 0↔1, 2↔3: the other end of the same segment
            pts[partner] = (pts[partner][0], pts[index][1])
        return Measurement(self.kind, tuple(pts))

    def widths(self, calibration: Calibration | None) -> tuple[float, float]:
        """A ratio's (cardiac, thoracic) widths: mm, or pixels without calibration."""
        if self.kind != "ctr":
            raise ValueError(f"a {self.kind} has no widths")
        sx = calibration.col_mm if calibration is not None else 1.0
        p = self.points
        return abs(p[1][0] - p[0][0]) * sx, abs(p[3][0] - p[2][0]) * sx

    def value(self, calibration: Calibration | None) -> float:
        """The length (mm, or pixels without calibration), the angle in degrees (measured in
        millimetres when calibrated, so non-square pixels do not skew it) or the cardiothoracic
        ratio (cardiac ÷ thoracic width: no unit, the same with or without calibration; 0 when
        the thorax has no width)."""
        if self.kind == "ctr":
            cardiac, thoracic = self.widths(calibration)
            return cardiac / thoracic if thoracic > 0 else 0.0
        sx, sy = (calibration.col_mm, calibration.row_mm) if calibration is not None else (1.0, 1.0)
        p = [(x * sx, y * sy) for x, y in self.points]
        if self.kind == "distance":
            return float(np.hypot(p[1][0] - p[0][0], p[1][1] - p[0][1]))
        a = np.subtract(p[0], p[1])
        b = np.subtract(p[2], p[1])
        norm = float(np.hypot(*a) * np.hypot(*b))
        if norm == 0.0:
            return 0.0
        return float(np.degrees(np.arccos(np.clip(np.dot(a, b) / norm, -1.0, 1.0))))

    def label(self, calibration: Calibration | None) -> str:
        """``"52.3 mm"``, ``"52.3 mm at detector"``, ``"52.3 mm, manual calibration"``, ``"210 px"``,
        ``"34.5°"`` or ``"CTR 0.52 (heart 130.0 / thorax 250.0 mm)"``."""
        v = self.value(calibration)
        if self.kind == "angle":
            return f"{v:.1f}°"
        if self.kind == "ctr":
            cardiac, thoracic = self.widths(calibration)
            if calibration is None:
                return f"CTR {v:.2f} (heart {cardiac:.0f} / thorax {thoracic:.0f} px)"
            return f"CTR {v:.2f} (heart {cardiac:.1f} / thorax {thoracic:.1f} {calibration.unit})"
        return f"{v:.1f} {calibration.unit}" if calibration is not None else f"{v:.0f} px"


@dataclass(frozen=True, eq=False)
class Film:
    """A radiograph ready for display and inference.

    ``pixels`` is float32 H×W in [0, 1] with white = dense (MONOCHROME1 already inverted, the
    modality and VOI transforms already applied for DICOM): the model's view, made with the
    default VOI. ``gray`` keeps the modality-unit image with the file's default VOI and presets,
    so that display can window over the full range (a film made from pixels alone gets its own
    values with the identity window). ``pixel_spacing`` is (row, column) in mm when the file says
    so. ``metadata`` is a small mapping of non-identifying facts (format, modality, photometric
    interpretation, bits stored, ...): never patient names or IDs.
    """

    pixels: np.ndarray
    source: Path | None = None
    pixel_spacing: tuple[float, float] | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    gray: Grayscale | None = None
    #: how lengths on the film are measured (``None``: in pixels)
    calibration: Calibration | None = None

    def __post_init__(self) -> None:
        px = _frozen_array(self.pixels)
        if px.ndim != 2:
            raise ValueError(f"Film pixels must be 2-D (H, W), got shape {px.shape}")
        object.__setattr__(self, "pixels", px)
        if self.gray is None or self.gray.stored.shape != px.shape:
            # no modality image, or one that no longer matches (``replace`` with new pixels)
            object.__setattr__(self, "gray", unit_grayscale(px))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        if self.source is not None:
            object.__setattr__(self, "source", Path(self.source))

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def name(self) -> str:
        return self.source.name if self.source is not None else "<film>"


@dataclass(frozen=True)
class OodStats:
    """Statistics of the pooled features on the training films (out-of-distribution guard).

    A probabilistic-PCA summary: the feature mean, the top ``r`` principal directions
    (``components``, r×K, orthonormal rows) with their variances, and the mean variance left
    in the other directions. ``threshold`` is the score above which a film is flagged; it was
    set at ``percentile`` of the validation films' scores.
    """

    mean: tuple[float, ...]
    components: tuple[tuple[float, ...], ...]
    variances: tuple[float, ...]
    residual_variance: float
    threshold: float
    percentile: float


#: A rule value meaning "not checked": every value passes (``cxr.applicable``, docs/model-format.md).
ANY = "any"
#: ``cxr.applicable``'s keys, the fields of :class:`Applicability`
APPLICABLE_KEYS = ("modalities", "body_parts", "view_positions", "lateralities")


@dataclass(frozen=True)
class Applicability:
    """Which DICOM films a model reads, by their header (``cxr.applicable`` in the model card;
    docs/model-format.md, :mod:`cxrviewer.applicability`). Each field lists the values accepted
    (upper case), or is :data:`ANY` (not checked). A film that does not record an attribute
    passes its check, except Modality (Type 1, PS3.3 C.7.3.1). The default is the frontal chest
    radiograph: CR/DX/DR (or a secondary capture of one), CHEST, PA/AP (Patient Orientation,
    when present, consistent with those views); Image Laterality is not checked unless a card
    narrows it (it names the side of a paired body part, not the projection)."""

    modalities: tuple[str, ...] | str = ("CR", "DX", "DR")
    body_parts: tuple[str, ...] | str = ("CHEST",)
    view_positions: tuple[str, ...] | str = ("PA", "AP")
    #: Image Laterality / Laterality (PS3.3 C.7.6.2, C.7.3.1): R, L, B (both), U (unpaired)
    lateralities: tuple[str, ...] | str = ANY

    def __post_init__(self) -> None:
        for name in ("modalities", "body_parts", "view_positions", "lateralities"):
            value = getattr(self, name)
            if value != ANY:
                object.__setattr__(self, name, tuple(str(v).strip().upper() for v in value))

    def accepts(self, name: str, value: str) -> bool:
        allowed = getattr(self, name)
        return allowed == ANY or value in allowed

    def as_dict(self) -> dict[str, list[str] | str]:
        """``cxr.applicable``'s JSON value: each key a list of accepted values, or ``"any"``."""
        return {k: v if v == ANY else list(v) for k in APPLICABLE_KEYS for v in [getattr(self, k)]}


#: ``cxr.crop``: which part of the film the model reads. ``"none"`` (the default when the key is
#: absent): the whole film, squashed to S×S. ``"center"``: the largest centred square, then resized
#: to S×S (torchxrayvision's ``XRayCenterCrop``); its maps cover that square only.
CROPS = ("none", "center")


def crop_box(height: int, width: int, crop: str = "none") -> tuple[int, int, int, int]:
    """The part of a ``height``×``width`` film that a model with ``cxr.crop`` = ``crop`` reads, as
    ``(x, y, width, height)`` in film pixels: the whole film, or its largest centred square.

    The square starts at ``n // 2 − side // 2`` on the long side ``n`` (as torchxrayvision's
    ``XRayCenterCrop``), so an odd surplus leaves the extra pixel after the square.
    """
    h, w = int(height), int(width)
    if crop == "none":
        return 0, 0, w, h
    if crop == "center":
        side = min(h, w)
        return w // 2 - side // 2, h // 2 - side // 2, side, side
    raise ValueError(f"unknown crop {crop!r}; choose one of {', '.join(CROPS)}")


@dataclass(frozen=True)
class ModelInfo:
    """What a model file says about itself (its ONNX ``metadata_props``); see docs/model-format.md."""

    labels: tuple[str, ...]
    input_size: int
    mean: float
    std: float
    thresholds: Mapping[str, float]
    model_version: str
    demo: bool
    trained_on: Mapping[str, Any]
    metrics: Mapping[str, float]
    layout: str = "NHWC"
    #: ``cxr.format_version``: 2 (the newest) when the class maps are Grad-CAM of the class score
    #: (the logit), 1 for files whose maps are of the probability (docs/model-format.md).
    format_version: int = 2
    ood: OodStats | None = None
    #: ``"fp32"``, or ``"int8"`` for a static-quantized copy (``cxr.precision``; absent = fp32).
    precision: str = "fp32"
    #: which films the model reads (``cxr.applicable``; absent = the frontal chest default)
    applicable: Applicability = field(default_factory=Applicability)
    #: which part of the film the model reads (``cxr.crop``, :data:`CROPS`; absent = ``"none"``)
    crop: str = "none"
    #: precisions the model must never run at (``cxr.forbid_precisions``; e.g. ``("bf16",)``)
    forbid_precisions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"unknown crop {self.crop!r}; choose one of {', '.join(CROPS)}")
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "forbid_precisions", tuple(self.forbid_precisions))
        object.__setattr__(self, "thresholds", MappingProxyType(dict(self.thresholds)))
        object.__setattr__(self, "trained_on", MappingProxyType(dict(self.trained_on)))
        object.__setattr__(self, "metrics", MappingProxyType(dict(self.metrics)))

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def maps_of(self) -> str:
        """What the class maps are Grad-CAM maps of: ``"class score"`` (format version ≥ 2) or
        ``"probability"`` (version 1 files, whose maps carry a factor p(1 − p))."""
        return "class score" if self.format_version >= 2 else "probability"

    def threshold(self, label: str) -> float:
        return float(self.thresholds[label])


@dataclass(frozen=True, eq=False)
class Prediction:
    """The model's answer for one film.

    ``probabilities`` is (C,) in the order of ``labels``; ``class_maps`` is (C, h, w): the
    non-negative Grad-CAM map of each class at the model's feature resolution (upsample with
    :mod:`cxrviewer.heatmap`). ``features`` is the pooled feature vector when the model gives
    one; ``ood_score`` / ``ood_flag`` are set when the model carries OOD statistics. ``crop`` is
    the model's ``cxr.crop``: the maps cover :func:`crop_box` of the film (all of it for
    ``"none"``, its centred square for ``"center"``).
    """

    labels: tuple[str, ...]
    probabilities: np.ndarray
    class_maps: np.ndarray
    thresholds: tuple[float, ...]
    model_version: str
    features: np.ndarray | None = None
    ood_score: float | None = None
    ood_flag: bool = False
    crop: str = "none"

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ValueError(f"unknown crop {self.crop!r}; choose one of {', '.join(CROPS)}")
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "probabilities", _frozen_array(self.probabilities))
        object.__setattr__(self, "class_maps", _frozen_array(self.class_maps))
        object.__setattr__(self, "thresholds", tuple(float(t) for t in self.thresholds))
        if self.features is not None:
            object.__setattr__(self, "features", _frozen_array(self.features))
        n = len(self.labels)
        if self.probabilities.shape != (n,) or self.class_maps.ndim != 3 or self.class_maps.shape[0] != n:
            raise ValueError(
                f"Prediction shapes disagree with {n} labels: probabilities {self.probabilities.shape}, "
                f"class_maps {self.class_maps.shape}"
            )

    def probability(self, label: str) -> float:
        return float(self.probabilities[self.labels.index(label)])

    def class_map(self, label: str) -> np.ndarray:
        return self.class_maps[self.labels.index(label)]

    @property
    def positives(self) -> tuple[str, ...]:
        """Labels at or above their threshold, most probable first."""
        idx = [i for i, (p, t) in enumerate(zip(self.probabilities, self.thresholds)) if p >= t]
        idx.sort(key=lambda i: -float(self.probabilities[i]))
        return tuple(self.labels[i] for i in idx)

    def ranked(self) -> list[tuple[str, float, float]]:
        """(label, probability, threshold) sorted by probability, highest first."""
        order = np.argsort(-self.probabilities, kind="stable")
        return [(self.labels[i], float(self.probabilities[i]), self.thresholds[i]) for i in order]


_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "H": "F", "F": "H"}


def opposite_direction(label: str) -> str:
    """The opposite of a Patient Orientation direction (PS3.3 C.7.6.1.1.1): ``"LF"`` → ``"RH"``."""
    return "".join(_OPPOSITE.get(ch, ch) for ch in label)


@dataclass(frozen=True)
class Orientation:
    """How a film is turned for display (never for the model): ``rotate`` quarter turns clockwise,
    then mirrored left-right if ``flip``. Every rotation and flip of a rectangle is one of these
    eight; :meth:`rotated` and :meth:`flipped` compose a turn or flip of what is on screen.
    """

    rotate: int = 0  # quarter turns clockwise, 0..3
    flip: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "rotate", int(self.rotate) % 4)
        object.__setattr__(self, "flip", bool(self.flip))

    def rotated(self, quarter_turns: int = 1) -> Orientation:
        """Turn what is on screen ``quarter_turns`` clockwise (F R = R⁻¹ F: a mirrored picture's
        turn runs the other way in film terms)."""
        return Orientation(self.rotate - quarter_turns if self.flip else self.rotate + quarter_turns, self.flip)

    def flipped(self, vertical: bool = False) -> Orientation:
        """Mirror what is on screen left-right, or top-bottom (``vertical``: a half turn and a mirror)."""
        return Orientation(self.rotate + (2 if vertical else 0), not self.flip)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """``image`` (H×W or H×W×C) as shown: a view, no copy."""
        out = np.rot90(image, -self.rotate) if self.rotate else image
        return out[:, ::-1] if self.flip else out

    def shape(self, height: int, width: int) -> tuple[int, int]:
        """(rows, columns) on screen of a ``height`` × ``width`` film."""
        return (width, height) if self.rotate % 2 else (height, width)

    def to_film(self, x: float, y: float, height: int, width: int) -> tuple[float, float]:
        """A point on screen (x right, y down, in film pixels of the turned picture) → the film's (x, y).

        Points are continuous coordinates (pixel centres at +0.5), so the mapping is exact for
        both pixel indices (use ``x + 0.5``) and measurement points.
        """
        h, w = self.shape(height, width)
        if self.flip:
            x = w - x
        for _ in range(self.rotate):  # undo one clockwise turn: screen (x, y) ← film (y, H - x)
            h, w = w, h  # the picture before this turn
            x, y = y, h - x
        return x, y

    def to_screen(self, x: float, y: float, height: int, width: int) -> tuple[float, float]:
        """The film's point (x, y) → where it is on screen (the inverse of :meth:`to_film`)."""
        h, w = height, width
        for _ in range(self.rotate):  # one clockwise turn: film (x, y) → (h - y, x)
            x, y = h - y, x
            h, w = w, h
        if self.flip:
            x = w - x
        return x, y

    def edge_labels(self, row_direction: str, column_direction: str) -> tuple[str, str, str, str]:
        """(left, right, top, bottom) markers on screen from Patient Orientation, whose two values
        are the directions of the film's rows (left → right) and columns (top → bottom),
        PS3.3 C.7.6.1.1.1."""
        right, bottom = row_direction, column_direction
        for _ in range(self.rotate):  # a clockwise turn: what was at the left is now at the top
            right, bottom = opposite_direction(bottom), right
        if self.flip:
            right = opposite_direction(right)
        return opposite_direction(right), right, opposite_direction(bottom), bottom
