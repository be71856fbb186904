"""Which decoded frames of a video make the clip a video encoder sees.

The released M2UGen feeds ViViT 32 *consecutive* frames (``sample_frame_indices(clip_len=32,
frame_sample_rate=1)``: a window of 32 frames in a row, placed at random); ViViT-B 16x2 was trained on
such clips. ``consecutive`` (the default) takes the window in the middle of the video, so a run is
repeatable; ``even`` spreads the frames over the whole video instead (more of a long video, but not what the
released weights saw). A video shorter than the clip repeats its last frame.
"""

from __future__ import annotations

import numpy as np

SAMPLINGS = ("consecutive", "even")


def clip_indices(total: int, frames: int, sampling: str = "consecutive") -> np.ndarray:
    """`frames` indices into `total` decoded frames (int64, non-decreasing)."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"video frame sampling must be one of {SAMPLINGS}, not {sampling!r}")
    if total <= 0:
        raise ValueError("a video needs at least one frame")
    if sampling == "even":
        return np.linspace(0, total - 1, frames).round().astype(np.int64)
    start = max(0, (total - frames) // 2)
    return np.minimum(np.arange(start, start + frames), total - 1).astype(np.int64)
