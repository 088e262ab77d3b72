"""Make the 14 finding colours of :data:`cxrviewer.render.PALETTE`, and measure them.

Method: Glasbey et al.'s greedy max-min selection ("Colour displays for categorical images",
Color Research & Application 32(4), 2007): from a grid of sRGB candidates, keep adding the
colour farthest (CIEDE2000) from every colour chosen so far. The distance is taken in normal
vision and in simulated colour vision deficiency (Machado, Oliveira & Fernandes, "A
physiologically-based model for simulation of color vision deficiency", IEEE TVCG 15(6), 2009;
protan, deutan and tritan at severity 0.5 and 1.0, the latter weighted double so that it counts
as much as normal vision when the distances halve), so that a pair that collapses for a
colour-blind viewer is avoided like a pair that is close for everyone. Candidates are limited to
CIELAB lightness 45-85 and chroma >= 35: outlines drawn on a grey film, dark lung or bright
bone, need a saturated colour that is neither black nor white.

Run ``python scripts/make_palette.py`` to print the palette and its minimum pairwise distances
(docs/heatmaps.md quotes them); tests/test_palette.py recomputes them. Only numpy and OpenCV.
"""

from __future__ import annotations

import numpy as np

import cv2

#: Machado et al. 2009, Table 1 at severity 1.0, for linear RGB.
MACHADO = {
    "protan": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]]),
    "deutan": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]]),
    "tritan": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]]),
}


def _linear(rgb: np.ndarray) -> np.ndarray:
    c = np.asarray(rgb, np.float64) / 255.0
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb(lin: np.ndarray) -> np.ndarray:
    c = np.clip(lin, 0.0, 1.0)
    return 255.0 * np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def simulate(rgb: np.ndarray, kind: str | None, severity: float = 1.0) -> np.ndarray:
    """``rgb`` (N×3, 0-255) as a viewer with ``kind`` deficiency at ``severity`` sees it."""
    rgb = np.asarray(rgb, np.float64)
    if kind is None:
        return rgb
    m = severity * MACHADO[kind] + (1.0 - severity) * np.eye(3)  # Machado's interpolation
    return _srgb(_linear(rgb) @ m.T)


def lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of sRGB colours, N×3."""
    f = (np.asarray(rgb, np.float32) / 255.0).reshape(-1, 1, 3)
    return cv2.cvtColor(f, cv2.COLOR_RGB2Lab).reshape(-1, 3).astype(np.float64)


def de2000(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """CIEDE2000 colour difference of CIELAB rows (Sharma, Wu & Dalal 2005, eqs. 1-17)."""
    l1, a1, b1 = np.asarray(a, np.float64).T
    l2, a2, b2 = np.asarray(b, np.float64).T
    cbar = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(cbar**7 / (cbar**7 + 25.0**7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = np.hypot(a1p, b1), np.hypot(a2p, b2)
    h1p = np.degrees(np.arctan2(b1, a1p)) % 360
    h2p = np.degrees(np.arctan2(b2, a2p)) % 360
    dlp, dcp = l2 - l1, c2p - c1p
    dh = h2p - h1p
    dh = np.where(dh > 180, dh - 360, np.where(dh < -180, dh + 360, dh))
    dh = np.where(c1p * c2p == 0, 0, dh)
    dhp = 2 * np.sqrt(c1p * c2p) * np.sin(np.radians(dh / 2))
    lbp, cbp = (l1 + l2) / 2, (c1p + c2p) / 2
    hsum = h1p + h2p
    hbp = np.where(np.abs(h1p - h2p) > 180, np.where(hsum < 360, hsum + 360, hsum - 360) / 2, hsum / 2)
    hbp = np.where(c1p * c2p == 0, hsum, hbp)
    t = (1 - 0.17 * np.cos(np.radians(hbp - 30)) + 0.24 * np.cos(np.radians(2 * hbp))
         + 0.32 * np.cos(np.radians(3 * hbp + 6)) - 0.20 * np.cos(np.radians(4 * hbp - 63)))
    dtheta = 30 * np.exp(-(((hbp - 275) / 25) ** 2))
    rc = 2 * np.sqrt(cbp**7 / (cbp**7 + 25.0**7))
    sl = 1 + 0.015 * (lbp - 50) ** 2 / np.sqrt(20 + (lbp - 50) ** 2)
    sc, sh = 1 + 0.045 * cbp, 1 + 0.015 * cbp * t
    rt = -np.sin(np.radians(2 * dtheta)) * rc
    return np.sqrt((dlp / sl) ** 2 + (dcp / sc) ** 2 + (dhp / sh) ** 2 + rt * (dcp / sc) * (dhp / sh))


def min_distance(rgb, kind: str | None = None, severity: float = 1.0) -> tuple[float, tuple[int, int]]:
    """The smallest pairwise CIEDE2000 of a palette (as seen with ``kind`` at ``severity``)."""
    points = lab(simulate(np.asarray(rgb, np.float64), kind, severity))
    i, j = np.triu_indices(len(points), 1)
    d = de2000(points[i], points[j])
    k = int(np.argmin(d))
    return float(d[k]), (int(i[k]), int(j[k]))


VIEWS = [(None, 1.0, 1.0)] + [(k, s, w) for k in MACHADO for s, w in ((0.5, 1.0), (1.0, 2.0))]


def make_palette(n: int = 14, starts: int = 6, seed: int = 0) -> list[tuple[int, int, int]]:
    steps = np.arange(0, 256, 17)
    cand = np.array(np.meshgrid(steps, steps, steps)).reshape(3, -1).T.astype(np.float64)
    c = lab(cand)
    keep = (c[:, 0] >= 45) & (c[:, 0] <= 85) & (np.hypot(c[:, 1], c[:, 2]) >= 35)
    cand = cand[keep]
    views = [(lab(simulate(cand, k, s)), w) for k, s, w in VIEWS]
    every = np.arange(len(cand))

    def farthest(chosen: list[int]) -> int:
        d = np.full(len(cand), np.inf)
        for points, w in views:
            for i in chosen:
                d = np.minimum(d, w * de2000(np.repeat(points[i][None], len(cand), 0), points[every]))
        d[chosen] = -1
        return int(np.argmax(d))

    best: tuple[float, list[int]] | None = None
    for start in np.random.default_rng(seed).choice(len(cand), starts, replace=False):
        chosen = [int(start)]
        while len(chosen) < n:
            chosen.append(farthest(chosen))
        score = min(min_distance(cand[chosen])[0], *(2 * min_distance(cand[chosen], k)[0] for k in MACHADO))
        if best is None or score > best[0]:
            best = (score, chosen)
    return [tuple(int(v) for v in cand[i]) for i in best[1]]


def main() -> None:
    palette = make_palette()
    print("PALETTE = (")
    for rgb in palette:
        print(f"    {rgb},  # #{rgb[0]:02X}{rgb[1]:02X}{rgb[2]:02X}")
    print(")")
    for kind, severity, _w in VIEWS:
        d, pair = min_distance(palette, kind, severity)
        print(f"min CIEDE2000 {kind or 'normal':>7} {severity:.1f}: {d:5.1f} (colours {pair})")


if __name__ == "__main__":
    main()
