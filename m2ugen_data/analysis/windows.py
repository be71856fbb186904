"""Long audio (a MUCaps video's whole soundtrack) as a few standard-length windows, and one row from them.

The analysers are built and calibrated for the 10 s AudioSet segment, and a whole file of an hour decoded at
44.1 kHz is 635 MB before any analyser copies it. So a long file is analysed as ``n`` windows of ``window_s``
spread evenly over it (each read on its own, so memory does not grow with the file), and their measurements
are aggregated into one features row that describes the whole:

- the status: ok when at least half the windows are ok, else rejected with the windows' most common reason;
- tempo: a confidence-weighted vote between windows (tempi within 4 % agree), the agreeing windows' weighted
  mean; its confidence is the agreeing confidence per analysed window, so disagreement lowers it;
- meter and key: confidence-weighted votes (key confidence likewise shared over all windows);
- tags (then the instrument/genre/mood/voice words), chroma, timbre, music descriptors: means; levels: the
  energy mean of loudness, the largest peak; beats, downbeats and beat chords: every ok window's, in file
  time, with an ``X`` chord (unknown) over each gap between windows, so captions name the chords of the whole.

Pure functions of the per-window rows: ``analyze`` runs the analysers, this module only aggregates.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from m2ugen_data.analysis import derived, harmony

TEMPO_AGREEMENT = math.log(1.04)  # two windows agree on tempo within 4 %
GAP_CHORD = "X"  # the interval between two analysed windows: not measured


def window_starts(duration_s: float, window_s: float, n: int) -> list[float]:
    """Starts of at most ``n`` non-overlapping windows of ``window_s`` centred on ``n`` equal parts of the file."""
    if duration_s <= window_s:
        return [0.0]
    n = max(1, min(n, int(duration_s // window_s)))
    starts = []
    for k in range(n):
        centre = (k + 0.5) * duration_s / n
        starts.append(round(min(max(centre - window_s / 2, 0.0), duration_s - window_s), 3))
    return starts


def aggregate(
    rows: Sequence[Mapping[str, Any]],
    starts: Sequence[float],
    duration_s: float,
    score: Callable[[np.ndarray], float],
) -> dict[str, Any]:
    """One features row (the analysers' columns) from the rows of the windows at ``starts``."""
    out: dict[str, Any] = {
        "duration_s": duration_s, "windows": len(rows), "window_starts_s": [float(s) for s in starts], **_levels(rows),
    }
    ok = [(s, r) for s, r in zip(starts, rows) if r.get("status") == "ok"]
    if 2 * len(ok) < len(rows):
        reasons = Counter(r.get("reason") or "rejected" for r in rows if r.get("status") != "ok")
        out.update(status="rejected", reason=min(reasons, key=lambda k: (-reasons[k], k)))
        return out
    oks = [r for _, r in ok]
    tempo, tempo_conf, rep, group = _tempo_vote(oks)
    meter, _ = _vote([(r.get("meter"), r.get("tempo_conf")) for r in oks])
    key, key_support = _vote([(r.get("key"), r.get("key_conf")) for r in oks])
    beats, downbeats, chords = _timeline(ok)
    tags = {name: _mean(oks, f"tags_{name}") for name in ("mtt", "msd")}
    descriptors = _mean(oks, "music_descriptors")
    out.update(
        status="ok",
        reason=None,
        tempo_bpm=tempo,
        tempo_conf=tempo_conf,
        # the agreeing windows' calibrated probabilities per analysed window: disagreement lowers it too
        tempo_prob=sum(float(r.get("tempo_prob") or 0.0) for r in group) / len(oks) if tempo is not None else None,
        tempo_alt_bpm=rep.get("tempo_alt_bpm"),
        tempo_raw_bpm=rep.get("tempo_raw_bpm"),
        tempo_method=rep.get("tempo_method"),
        beats=beats,
        downbeats=downbeats,
        meter=meter,
        key=key,
        key_conf=key_support / len(oks) if key is not None else None,
        speech_ratio=_nanmean(oks, "speech_ratio"),
        onset_rate=_nanmean(oks, "onset_rate"),
        centroid_hz=_nanmean(oks, "centroid_hz"),
        chroma=_list(_mean(oks, "chroma")),
        timbre=_list(_mean(oks, "timbre")),
        beat_chords=chords,
        chord_change_rate=_nanmean(oks, "chord_change_rate"),
        harmony=harmony.harmony_descriptor(chords).tolist(),
        model_versions=oks[0].get("model_versions"),
        music_descriptors=_list(descriptors),
        music_score=score(descriptors) if descriptors is not None else None,
    )
    out.update(derived.tag_columns(tags if all(v is not None for v in tags.values()) else None, timbre=out["timbre"]))
    return out


def _levels(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Loudness as the energy mean of the windows' (the level of the whole), the largest peak, mean ratios."""
    lufs = [r["loudness_lufs"] for r in rows if r.get("loudness_lufs") is not None]
    peaks = [r["peak_dbfs"] for r in rows if r.get("peak_dbfs") is not None]
    return {
        "loudness_lufs": 10 * math.log10(float(np.mean([10 ** (v / 10) for v in lufs]))) if lufs else None,
        "peak_dbfs": max(peaks) if peaks else None,
        "clip_ratio": _nanmean(rows, "clip_ratio"),
        "silence_ratio": _nanmean(rows, "silence_ratio"),
    }


def _tempo_vote(
    rows: Sequence[Mapping[str, Any]],
) -> tuple[float | None, float | None, Mapping[str, Any], list[Mapping[str, Any]]]:
    """(tempo, confidence, the most confident agreeing window, the agreeing windows) by a confidence-weighted
    vote."""
    voters = [r for r in rows if r.get("tempo_bpm")]
    if not voters:
        return None, _nanmean(rows, "tempo_conf"), rows[0], []
    w = [max(float(r.get("tempo_conf") or 0.0), 1e-6) for r in voters]
    logs = [math.log(float(r["tempo_bpm"])) for r in voters]
    support = [sum(wj for lj, wj in zip(logs, w) if abs(lj - li) <= TEMPO_AGREEMENT) for li in logs]
    best = max(range(len(voters)), key=lambda i: (support[i], -i))
    group = [i for i in range(len(voters)) if abs(logs[i] - logs[best]) <= TEMPO_AGREEMENT]
    tempo = math.exp(sum(w[i] * logs[i] for i in group) / sum(w[i] for i in group))
    conf = sum(float(voters[i].get("tempo_conf") or 0.0) for i in group) / len(rows)
    rep = voters[max(group, key=lambda i: (w[i], -i))]
    return tempo, conf, rep, [voters[i] for i in group]


def _vote(pairs: Sequence[tuple[Any, float | None]]) -> tuple[Any, float]:
    """The value with the largest summed confidence (ties: the value first seen) and that sum."""
    totals: dict[Any, float] = {}
    for value, conf in pairs:
        if value is not None:
            totals[value] = totals.get(value, 0.0) + max(float(conf or 0.0), 1e-6)
    if not totals:
        return None, 0.0
    value = max(totals, key=lambda v: totals[v])
    return value, totals[value]


def _timeline(ok: Sequence[tuple[float, Mapping[str, Any]]]) -> tuple[list[float], list[float], list[str]]:
    """Every window's beats, downbeats and beat chords in file time, an unknown chord over each gap."""
    beats: list[float] = []
    downbeats: list[float] = []
    chords: list[str] = []
    for start, r in sorted(ok, key=lambda x: x[0]):
        b = [start + float(t) for t in r.get("beats") or []]
        if not b:
            continue
        if beats:
            chords.append(GAP_CHORD)  # the interval from the last beat of the previous window to this one
        window_chords = list(r.get("beat_chords") or [])
        chords.extend(window_chords if len(window_chords) == len(b) - 1 else [GAP_CHORD] * (len(b) - 1))
        beats.extend(b)
        downbeats.extend(start + float(t) for t in r.get("downbeats") or [])
    return beats, downbeats, chords


def _mean(rows: Sequence[Mapping[str, Any]], column: str) -> np.ndarray | None:
    vectors = [np.asarray(r[column], dtype=np.float64) for r in rows if r.get(column) is not None]
    if not vectors or len({v.shape for v in vectors}) != 1:
        return None
    return np.mean(vectors, axis=0)


def _nanmean(rows: Sequence[Mapping[str, Any]], column: str) -> float | None:
    values = [float(r[column]) for r in rows if r.get(column) is not None and math.isfinite(float(r[column]))]
    return float(np.mean(values)) if values else None


def _list(x: np.ndarray | None) -> list[float] | None:
    return x.astype(np.float32).tolist() if x is not None else None
