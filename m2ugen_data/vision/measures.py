"""Measurements of frames: brightness, contrast, sharpness, named dominant colours, motion and cuts.

All work on uint8 luma (H, W) or RGB (H, W, 3) arrays at a fixed working size chosen by the caller, so the
numbers compare across source resolutions. They feed frame selection, clip rejection and the grounded
captions, which is why colours are reported as words rather than RGB triples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

# Frames darker than this mean luma (0..1) count as black: video black is luma 16/255 in limited range.
BLACK_LUMA = 0.1
# Frames whose luma standard deviation is below this (0..1) are near-uniform (a fade, a blank title card).
UNIFORM_STD = 0.02
# Mean absolute luma change per 1/8 s below this is a still picture (compression noise stays well under).
STATIC_MOTION = 0.004
# A change of the luma histogram (half the L1 distance, 0..1) above this between neighbouring samples is a cut.
CUT_HIST = 0.5
# Colours covering less than this share of the pixels are not named.
MIN_COLOR_SHARE = 0.1


def brightness(luma: np.ndarray) -> float:
    return float(luma.mean() / 255.0)


def contrast(luma: np.ndarray) -> float:
    return float(luma.std() / 255.0)


def sharpness(luma: np.ndarray) -> float:
    """Variance of the Laplacian of luma (0..1 scale): high for in-focus detail, ~0 for blur or flat fields."""
    lap = ndimage.laplace(luma.astype(np.float32) / 255.0)
    return float(lap.var())


def is_black(luma: np.ndarray) -> bool:
    return brightness(luma) < BLACK_LUMA


def is_uniform(luma: np.ndarray) -> bool:
    return contrast(luma) < UNIFORM_STD


_HUE_BANDS = (  # (upper hue bound in degrees, name); red wraps around 360
    (15.0, "red"), (40.0, "orange"), (70.0, "yellow"), (165.0, "green"), (195.0, "cyan"),
    (255.0, "blue"), (290.0, "purple"), (340.0, "pink"), (360.0, "red"),
)


def color_names(rgb: np.ndarray) -> np.ndarray:
    """Name every pixel of an RGB uint8 array: black, white, gray, or a hue family (red, orange, brown,
    yellow, green, cyan, blue, purple, pink), by vectorised HSV thresholds."""
    x = rgb.reshape(-1, 3).astype(np.float32) / 255.0
    mx, mn = x.max(axis=1), x.min(axis=1)
    delta = mx - mn
    sat = np.where(mx > 0, delta / np.maximum(mx, 1e-6), 0.0)
    r, g, b = x[:, 0], x[:, 1], x[:, 2]
    d = np.maximum(delta, 1e-6)
    hue = np.select(
        [mx == r, mx == g],
        [((g - b) / d) % 6.0, (b - r) / d + 2.0],
        (r - g) / d + 4.0,
    ) * 60.0
    names = np.empty(len(x), dtype=object)
    chromatic = (mx >= 0.2) & (sat >= 0.25)
    names[~chromatic] = np.where(mx[~chromatic] < 0.2, "black", np.where(mx[~chromatic] > 0.8, "white", "gray"))
    lower = 0.0
    for upper, name in _HUE_BANDS:
        sel = chromatic & (hue >= lower) & (hue < upper)
        names[sel] = name
        lower = upper
    # Dark oranges and reds read as brown.
    names[chromatic & (hue < 40.0) & (hue >= 15.0) & (mx < 0.6)] = "brown"
    return names


def dominant_colors(frames: Sequence[np.ndarray], max_colors: int = 3) -> list[str]:
    """Colour names covering at least ``MIN_COLOR_SHARE`` of the pixels of ``frames``, largest share first."""
    if not frames:
        return []
    names = np.concatenate([color_names(f) for f in frames])
    values, counts = np.unique(names, return_counts=True)
    order = np.lexsort((values, -counts))  # by share, ties by name: deterministic
    share = counts / counts.sum()
    return [str(values[i]) for i in order if share[i] >= MIN_COLOR_SHARE][:max_colors]


def motion_energy(lumas: Sequence[np.ndarray]) -> float:
    """Mean absolute luma change between consecutive samples (0..1); frame spacing is the caller's."""
    if len(lumas) < 2:
        return 0.0
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(lumas, lumas[1:])]
    return float(np.mean(diffs) / 255.0)


def _hist(luma: np.ndarray) -> np.ndarray:
    h = np.bincount((luma >> 3).ravel(), minlength=32).astype(np.float64)
    return h / h.sum()


def scene_cuts(lumas: Sequence[np.ndarray]) -> int:
    """Count of neighbouring samples whose luma histograms differ by more than ``CUT_HIST``.

    Histograms ignore where things are, so a moving object is not a cut but a change of shot is.
    """
    hists = [_hist(x) for x in lumas]
    return int(sum(0.5 * np.abs(a - b).sum() > CUT_HIST for a, b in zip(hists, hists[1:])))
