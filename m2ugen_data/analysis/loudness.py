"""Level measurements: integrated loudness (ITU-R BS.1770 via pyloudnorm), peak, clipping and silence.

These decide whether a clip is worth analysing further (silent or clipped clips are rejected) and feed
the MUCaps filter and the pair miner's "similar loudness" rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLIP_LEVEL = 0.999  # |sample| at or above this counts as full scale (16-bit max is 0.99997)
SILENCE_DBFS = -60.0  # a 50 ms frame quieter than this (RMS) is silent
FRAME_S = 0.05


@dataclass(frozen=True)
class Levels:
    loudness_lufs: float | None  # None when the clip is too short or gated away entirely (silence)
    peak_dbfs: float | None  # None for digital silence
    clip_ratio: float  # fraction of samples at full scale
    silence_ratio: float  # fraction of 50 ms frames below -60 dBFS RMS


def measure_levels(y: np.ndarray, sr: int) -> Levels:
    import pyloudnorm

    peak = float(np.max(np.abs(y))) if y.size else 0.0
    clip_ratio = float(np.mean(np.abs(y) >= CLIP_LEVEL)) if y.size else 0.0
    hop = max(1, int(FRAME_S * sr))
    n = y.size // hop
    if n:
        rms = np.sqrt(np.mean(np.square(y[: n * hop].reshape(n, hop), dtype=np.float64), axis=1))
        silence_ratio = float(np.mean(rms < 10 ** (SILENCE_DBFS / 20)))
    else:
        silence_ratio = 1.0
    lufs: float | None = None
    if y.size > int(0.4 * sr):  # BS.1770 gating blocks are 400 ms
        value = float(pyloudnorm.Meter(sr).integrated_loudness(y.astype(np.float64)))
        lufs = value if np.isfinite(value) else None
    return Levels(
        loudness_lufs=lufs,
        peak_dbfs=20 * float(np.log10(peak)) if peak > 0 else None,
        clip_ratio=clip_ratio,
        silence_ratio=silence_ratio,
    )
