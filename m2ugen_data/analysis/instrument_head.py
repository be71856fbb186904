"""Instrument words from a small calibrated head over what analysis already measures, precision first.

MusiCNN's instrument tags alone name instruments poorly on music outside MagnaTagATune (on the General-MIDI
dev set the thresholded tags reached precision 0.51 / recall 0.31): a "violin" tag fires on any sustained
lead, "strings" on pads. The head is one logistic regression per instrument word over the clip's stored
measurements: the logits of all 100 MusiCNN tag probabilities (the tagger's whole opinion, not one tag per
word) and the 24-number timbre vector (MFCC statistics). It is trained on the exact instrument truth of
General-MIDI renders (programs through several soundfonts, many sources) and validated
leave-one-soundfont-out and leave-one-source-out (``bench/bench_hearing.py``).

Each word has its own threshold, chosen for precision first: the lowest probability at which words said on
clips the fitting did not see were right at least ``TARGET_PRECISION`` of the time; a word that never gets
there is never said (a caption that names a wrong instrument is worse than one that names fewer). The
inputs are stored per clip, so a refitted head re-derives a warehouse's words without audio
(``derived.rederive``, ``m2ugen-data analyze filter``). Parameters: ``data/instrument_head.json``, refitted
by ``bench/fit_hearing.py``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_FILE = Path(__file__).with_name("data") / "instrument_head.json"
# word -> the General-MIDI families that make it right (a "strings" word is right for a violin or a cello
# part too; a "violin" word for a violin or a string section)
WORD_FAMILIES: dict[str, tuple[str, ...]] = {
    "piano": ("piano",),
    "guitar": ("guitar",),
    "strings": ("strings", "violin", "cello"),
    "violin": ("violin", "strings"),
    "cello": ("cello", "strings"),
    "harp": ("harp",),
    "harpsichord": ("harpsichord",),
    "flute": ("flute",),
    "synth": ("synth",),
    "drums": ("drums",),
}
WORDS = tuple(WORD_FAMILIES)
TARGET_PRECISION = 0.85  # a word is said from the probability where held-out words were this often right
MIN_SAID = 8  # ... measured on at least this many held-out clips where the word would be said
L2 = 1.0  # on standardised inputs; 1, 3, 10, 30 compared leave-one-soundfont-out on the dev sets: 1 kept most recall
LOGIT_EPS = 1e-4


def features(tags: Mapping[str, np.ndarray], timbre: Sequence[float]) -> np.ndarray:
    """The head's input: logits of the MTT and MSD probabilities, then the timbre vector."""
    p = np.clip(np.concatenate([np.asarray(tags["mtt"], np.float64), np.asarray(tags["msd"], np.float64)]), LOGIT_EPS, 1 - LOGIT_EPS)
    return np.concatenate([np.log(p / (1 - p)), np.asarray(timbre, dtype=np.float64)])


@dataclass(frozen=True)
class InstrumentHead:
    words: tuple[str, ...]
    weights: np.ndarray  # (words, inputs), on standardised inputs
    bias: np.ndarray  # (words,)
    mean: np.ndarray  # (inputs,)
    scale: np.ndarray
    thresholds: np.ndarray  # (words,); inf: never said
    version: str

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(..., words) probabilities for inputs (..., n_inputs)."""
        z = ((np.asarray(x, np.float64) - self.mean) / self.scale) @ self.weights.T + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -500, 500)))

    def words_for(self, x: np.ndarray, limit: int) -> list[str]:
        """The words said for one clip, likeliest first, at most ``limit``."""
        p = self.probabilities(x)
        said = [(float(p[i]), w) for i, w in enumerate(self.words) if p[i] >= self.thresholds[i]]
        said.sort(key=lambda pw: (-pw[0], pw[1]))
        return [w for _, w in said[:limit]]

    def to_json(self, fitted_on: Mapping | None = None) -> dict:
        return {
            "version": self.version,
            "words": list(self.words),
            "inputs": "logit(tags_mtt) + logit(tags_msd) + timbre",
            "weights": self.weights.tolist(),
            "bias": self.bias.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "thresholds": [t if np.isfinite(t) else None for t in self.thresholds.tolist()],
            "target_precision": TARGET_PRECISION,
            "fitted_on": dict(fitted_on or {}),
        }


def head_from_json(spec: Mapping) -> InstrumentHead:
    return InstrumentHead(
        words=tuple(spec["words"]),
        weights=np.asarray(spec["weights"], np.float64),
        bias=np.asarray(spec["bias"], np.float64),
        mean=np.asarray(spec["mean"], np.float64),
        scale=np.asarray(spec["scale"], np.float64),
        thresholds=np.array([np.inf if t is None else float(t) for t in spec["thresholds"]]),
        version=str(spec["version"]),
    )


@functools.cache
def load_head(path: Path = MODEL_FILE) -> InstrumentHead | None:
    """The shipped head, or None when the package carries none (words then come from the tag thresholds)."""
    try:
        return head_from_json(json.loads(Path(path).read_text()))
    except FileNotFoundError:
        return None


# --------------------------------------------------------------------------- fitting (bench/fit_hearing.py)


def word_targets(families: Sequence[Sequence[str]]) -> np.ndarray:
    """(clips, words) bool: the word is right for the clip's instrument families."""
    return np.array([[any(f in fams for f in WORD_FAMILIES[w]) for w in WORDS] for fams in families], dtype=bool)


def _fit_weights(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from m2ugen_data.analysis.fitting import fit_logistic, standardise

    mean, scale = standardise(x)
    ws, bs = [], []
    for j in range(y.shape[1]):
        if y[:, j].all() or not y[:, j].any():  # nothing to learn: a constant probability
            rate = float(np.clip(y[:, j].mean(), 1e-3, 1 - 1e-3))
            ws.append(np.zeros(x.shape[1]))
            bs.append(float(np.log(rate / (1 - rate))))
            continue
        w, b, m, s = fit_logistic(x, y[:, j].astype(np.float64), l2=L2)
        # fit_logistic standardised with the same mean/scale (same x): keep its weights as they are
        assert np.allclose(m, mean) and np.allclose(s, scale)
        ws.append(w)
        bs.append(b)
    return np.array(ws), np.array(bs), mean, scale


def choose_threshold(p: np.ndarray, right: np.ndarray, target: float = TARGET_PRECISION, min_said: int = MIN_SAID) -> float:
    """The lowest probability at which saying the word (p >= it) is right at least ``target`` of the time on
    at least ``min_said`` clips; inf when no threshold gets there."""
    order = np.argsort(-p, kind="stable")
    hits = np.cumsum(right[order])
    said = np.arange(1, p.size + 1)
    ok = (hits / said >= target) & (said >= min_said)
    if not ok.any():
        return float("inf")
    k = int(np.flatnonzero(ok)[-1])
    return float(p[order][k])


def fit_head(x: np.ndarray, families: Sequence[Sequence[str]], groups: Sequence[str], version: str) -> InstrumentHead:
    """Weights on every clip; thresholds from out-of-group predictions (each group, a soundfont, predicted by
    weights fitted on the others), so a threshold is set by how the head does on timbres it has not seen."""
    y = word_targets(families)
    w, b, mean, scale = _fit_weights(x, y)
    g = np.asarray(groups)
    oof = np.zeros(y.shape)
    names = np.unique(g)
    for name in names if names.size > 1 else []:
        held = g == name
        fw, fb, fm, fs = _fit_weights(x[~held], y[~held])
        oof[held] = InstrumentHead(WORDS, fw, fb, fm, fs, np.zeros(len(WORDS)), "fold").probabilities(x[held])
    if names.size <= 1:
        oof = InstrumentHead(WORDS, w, b, mean, scale, np.zeros(len(WORDS)), "fold").probabilities(x)
    thresholds = np.array([choose_threshold(oof[:, j], y[:, j]) for j in range(len(WORDS))])
    return InstrumentHead(WORDS, w, b, mean, scale, thresholds, version)
