"""Speech presence with silero-vad (its model ships inside the PyPI wheel; no download, no network).

The "sequence" ONNX export scores a whole clip in one call per 16 s instead of one Python step per 32 ms
frame, and needs no torch at inference time.
"""

from __future__ import annotations

import numpy as np

SAMPLE_RATE = 16000


def load_vad() -> object:
    from silero_vad import load_silero_vad

    return load_silero_vad(sequence=True)


def speech_ratio(y16: np.ndarray, model: object, threshold: float = 0.5) -> float:
    """Fraction of the clip inside detected speech segments (silero's own hysteresis and minimum
    durations, so a single sung syllable does not count as speech)."""
    from silero_vad import get_speech_timestamps_sequence

    if y16.size == 0:
        return 0.0
    segments = get_speech_timestamps_sequence(y16, model, threshold=threshold, sampling_rate=SAMPLE_RATE)
    voiced = sum(s["end"] - s["start"] for s in segments)
    return float(min(1.0, voiced / y16.size))
