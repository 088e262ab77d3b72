"""The one preprocessing path from a film to the model's input tensor.

Every caller goes through here: the GUI, the batch scorer, the exporter and ``training``
(which computes the mean/std on :func:`resize` output and feeds :func:`standardize`). If two
places preprocessed, one of them would be wrong.

Steps: film pixels (float32 [0, 1], white = dense) → :func:`crop` to the part of the film the
model reads (``cxr.crop``: the whole film by default; ``"center"``, the largest centred square,
as torchxrayvision's ``XRayCenterCrop``) → :func:`resize` to S×S with area interpolation (the
whole film is squashed, not padded, as in ChestX-ray14 training) → :func:`standardize` with the
model's stored mean/std → repeated to 3 channels (NHWC). The class maps then cover the cropped
part only (:func:`cxrviewer.heatmap.map_frame` places them back on the film).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from .types import Film, ModelInfo, crop_box


def crop(pixels: np.ndarray, how: str = "none") -> np.ndarray:
    """The part of a 2-D film the model reads (:func:`cxrviewer.types.crop_box`): the film itself
    for ``"none"``, a view of its largest centred square for ``"center"``."""
    if how == "none":
        return pixels
    px = np.asarray(pixels)
    if px.ndim != 2:
        raise ValueError(f"expected a 2-D film, got shape {px.shape}")
    x, y, w, h = crop_box(px.shape[0], px.shape[1], how)
    return px[y : y + h, x : x + w]


def resize(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize a 2-D film to ``size``×``size`` float32 with area interpolation."""
    px = np.asarray(pixels, dtype=np.float32)
    if px.ndim != 2:
        raise ValueError(f"expected a 2-D film, got shape {px.shape}")
    if px.shape == (size, size):
        return px.copy()
    return cv2.resize(px, (size, size), interpolation=cv2.INTER_AREA)


def standardize(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    """(x − mean) / std as float32, then repeated to 3 channels on a new last axis."""
    z = (np.asarray(x, dtype=np.float32) - np.float32(mean)) / np.float32(std)
    return np.repeat(z[..., np.newaxis], 3, axis=-1)


def model_input(pixels: np.ndarray, size: int, mean: float, std: float, how: str = "none") -> np.ndarray:
    """One film's (size, size, 3) float32 input tensor; ``how`` is the model's ``cxr.crop``."""
    return standardize(resize(crop(pixels, how), size), mean, std)


def preprocess(film: Film, info: ModelInfo) -> np.ndarray:
    """The (S, S, 3) input for ``film`` under the model described by ``info``."""
    return model_input(film.pixels, info.input_size, info.mean, info.std, info.crop)


def preprocess_batch(films: Sequence[Film], info: ModelInfo) -> np.ndarray:
    """An (N, S, S, 3) float32 batch."""
    s = info.input_size
    out = np.empty((len(films), s, s, 3), dtype=np.float32)
    for i, film in enumerate(films):
        out[i] = preprocess(film, info)
    return out
