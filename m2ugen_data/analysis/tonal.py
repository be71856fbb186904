"""Global key (madmom's CNN key classifier) and a chroma summary (librosa).

Key names use madmom's vocabulary ("A minor", "Bb major", "C# minor"); ``parse_key`` maps any spelling to a
(pitch class, mode) so comparisons (same key, relative key) never depend on enharmonic spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_KEY_RE = re.compile(r"^([A-Ga-g])([#b]?)\s+(major|minor)$")


@dataclass(frozen=True)
class Key:
    name: str
    confidence: float  # softmax probability of the winning class (1/24 = chance)


def load_key_model() -> object:
    from madmom.features.key import CNNKeyRecognitionProcessor

    return CNNKeyRecognitionProcessor()


def analyse_key(y44: np.ndarray, model: object) -> Key:
    from madmom.audio.signal import Signal
    from madmom.features.key import KEY_LABELS

    probs = np.asarray(model(Signal(y44, sample_rate=44100)), dtype=np.float64).reshape(-1)
    if probs.size != len(KEY_LABELS) or not np.isfinite(probs).all():
        raise ValueError(f"key model returned {probs.size} values, expected {len(KEY_LABELS)}")
    best = int(probs.argmax())
    return Key(KEY_LABELS[best], float(probs[best]))


def parse_key(name: str) -> tuple[int, str]:
    """``"Bb major"`` -> ``(10, "major")``; raises ValueError on anything else."""
    m = _KEY_RE.match(name.strip())
    if not m:
        raise ValueError(f"not a key name: {name!r}")
    letter, accidental, mode = m.groups()
    pc = _PC[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]
    return pc % 12, mode


def key_class(name: str, rule: str) -> str:
    """The block a key falls in for a pairing rule: keys in one block satisfy the rule pairwise.

    ``same``: the key itself; ``relative``: a major key and its relative minor share the block (the minor
    tonic is 3 semitones below its relative major); ``any``: one block.
    """
    if rule == "any":
        return "*"
    pc, mode = parse_key(name)
    if rule == "same":
        return f"{pc}:{mode}"
    if rule == "relative":
        return str(pc if mode == "major" else (pc + 3) % 12)
    raise ValueError(f"unknown key rule {rule!r}: expected same, relative or any")


def chroma_summary(y22: np.ndarray, sr: int) -> np.ndarray:
    """Mean chroma over the clip, scaled so the strongest pitch class is 1 (level independent)."""
    import librosa

    chroma = librosa.feature.chroma_stft(y=y22, sr=sr, n_fft=4096, hop_length=2048)
    mean = chroma.mean(axis=1)
    top = float(mean.max())
    return (mean / top if top > 0 else mean).astype(np.float32)
