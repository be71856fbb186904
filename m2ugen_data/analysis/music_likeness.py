"""Is this recording music? A score from what the analysers measured, not from the AudioSet labels.

AudioSet's labels are noisy: sound effects, ambience, applause and speech arrive labelled "Music". The
analysers already measure what tells them apart: music has a steady beat the beat network is sure of
(``tempo_conf``), pitched content concentrated on few pitch classes (chroma peakiness, key confidence, a
chord on most beats), a spectrum that is not noise-like (spectral flatness), and a texture the music
tagger recognises (its strongest instrument/genre probability). A logistic model over these descriptors
gives ``music_score`` in 0..1.

The model's weights live in ``data/music_likeness.json`` with their provenance (which dev set split, how
many clips, when). They are fitted by ``bench/fit_hearing.py`` (``analysis.fitting.fit_logistic``) on the
dev sets, and measured leave-one-source-out by ``bench/bench_hearing.py`` (figures in docs/BENCHMARKS.md). The descriptors are stored per clip
(``music_descriptors``), so a new model re-scores a warehouse without decoding audio.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from m2ugen_data.errors import M2UGenError

# Order matters: it is the layout of the stored ``music_descriptors`` vector.
DESCRIPTORS: tuple[str, ...] = (
    "beat_conf",  # tempo_conf of the beat tracker (0 when no tempo was decoded)
    "key_conf",  # the key CNN's probability of its key
    "chroma_peak",  # 1 - normalised entropy of the mean chroma: 0 flat (noise), 1 one pitch class
    "chord_coverage",  # fraction of beats with a chord (not N)
    "flatness",  # mean spectral flatness (log10): near 0 noise-like, very negative tonal
    "tag_max",  # strongest MusiCNN instrument/genre probability
    "onset_rate_log",  # log1p(onsets per second)
    "speech_ratio",  # silero's speech fraction
)
VERSION = "likeness-v1"  # bump when DESCRIPTORS change meaning; the fitted weights carry their own version
MODEL_FILE = Path(__file__).with_name("data") / "music_likeness.json"


@dataclass(frozen=True)
class LikenessModel:
    weights: np.ndarray  # (len(DESCRIPTORS),), applied to standardised descriptors
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    threshold: float  # music when score >= threshold
    version: str

    def score(self, x: np.ndarray) -> float:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return float(1.0 / (1.0 + math.exp(-float(np.dot(self.weights, z) + self.bias))))


def chroma_peakiness(chroma: Sequence[float] | np.ndarray | None) -> float:
    """1 - entropy(chroma)/log(12): how concentrated the mean chroma is on few pitch classes."""
    if chroma is None:
        return 0.0
    c = np.clip(np.asarray(chroma, dtype=np.float64), 0.0, None)
    if c.size == 0 or not np.isfinite(c).all() or c.sum() <= 0:
        return 0.0
    p = c / c.sum()
    h = -float(np.sum(p[p > 0] * np.log(p[p > 0])))
    return float(1.0 - h / math.log(c.size))


def descriptors(row: Mapping[str, object], flatness_log10: float | None, tag_max: float | None) -> np.ndarray:
    """The descriptor vector of one analysed clip (a features row plus two audio-only measurements)."""
    chords = row.get("beat_chords") or []
    coverage = (sum(1 for c in chords if c != "N") / len(chords)) if chords else 0.0
    return np.array(
        [
            float(row.get("tempo_conf") or 0.0),
            float(row.get("key_conf") or 0.0),
            chroma_peakiness(row.get("chroma")),  # type: ignore[arg-type]
            coverage,
            float(flatness_log10) if flatness_log10 is not None else 0.0,
            float(tag_max or 0.0),
            math.log1p(float(row.get("onset_rate") or 0.0)),
            float(row.get("speech_ratio") or 0.0),
        ],
        dtype=np.float64,
    )


@lru_cache(maxsize=4)
def load_model(path: Path = MODEL_FILE) -> LikenessModel:
    """The calibrated model; one clear error naming the file when it is missing or malformed."""
    try:
        spec = json.loads(Path(path).read_text())
        names = tuple(spec["descriptors"])
        if names != DESCRIPTORS:
            raise ValueError(f"descriptors {names} differ from this code's {DESCRIPTORS}")
        return LikenessModel(
            weights=np.asarray(spec["weights"], dtype=np.float64),
            bias=float(spec["bias"]),
            mean=np.asarray(spec["mean"], dtype=np.float64),
            scale=np.asarray(spec["scale"], dtype=np.float64),
            threshold=float(spec["threshold"]),
            version=str(spec["version"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise M2UGenError(f"music-likeness model {path} is unusable: {e}") from e


MUSIC_KEPT = 0.97  # the threshold keeps at least this share of the fitting music (see fit_model)


def fit_model(x: np.ndarray, y: np.ndarray, version: str) -> LikenessModel:
    """Logistic weights on the descriptors, each class weighing as much as the other (the dev sets hold
    three music clips per non-music one; unweighted, leave-one-package-out rejection was 0.867 against 0.925
    balanced, music kept 0.950 against 0.933), and the music threshold: the highest score that still keeps
    ``MUSIC_KEPT`` of the fitting music, at most 0.5 (a missed piece of music costs a MUCaps clip; a passed
    sound effect costs a wrong caption, which is worse, so the threshold is pushed up to that bound)."""
    from m2ugen_data.analysis.fitting import fit_logistic

    y = np.asarray(y, dtype=np.float64)
    share = float(y.mean()) if y.size else 0.5
    balance = np.where(y == 1, 0.5 / max(share, 1e-9), 0.5 / max(1 - share, 1e-9))
    w, b, mean, scale = fit_logistic(x, y, weight=balance)
    model = LikenessModel(w, b, mean, scale, 0.5, version)
    music = np.sort([model.score(v) for v, label in zip(x, y) if label == 1])
    threshold = float(music[int(math.floor((1 - MUSIC_KEPT) * len(music)))]) if len(music) else 0.5
    return LikenessModel(w, b, mean, scale, min(threshold, 0.5), version)


def model_to_json(model: LikenessModel, fitted_on: Mapping | None = None) -> dict:
    return {
        "version": model.version,
        "descriptors": list(DESCRIPTORS),
        "weights": model.weights.tolist(),
        "bias": model.bias,
        "mean": model.mean.tolist(),
        "scale": model.scale.tolist(),
        "threshold": model.threshold,
        "fitted_on": dict(fitted_on or {}),
    }
