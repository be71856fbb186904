"""The compiled per-edge work of pair mining (numba): rules and score of candidate edges, the measurements
stored with each chosen pair, set differences of their label and word sets, and the greedy degree cap.

Kernels take dense per-clip arrays (``clips.ClipArrays``) and edge lists (row ids ``lo < hi``, octave
relation ``rel``), never Arrow tables, so they compile once and run without the interpreter."""

from __future__ import annotations

import math

import numba
import numpy as np

from m2ugen_data.pairs.rules import PairRules


# Pair rules evaluated by the kernel; tempo is checked in the join and harmony after the kernel.
RULE_BITS = {"loudness": 2, "same_video": 4, "too_similar": 8}


LN2 = math.log(2)  # a plain global: numba freezes it at compile time


@numba.njit(cache=True)
def _label_jaccard(values: np.ndarray, offsets: np.ndarray, a: int, b: int) -> float:
    """Jaccard of two sorted label runs; NaN when both are empty (no labels: unknown, not equal)."""
    i, i1, j, j1 = offsets[a], offsets[a + 1], offsets[b], offsets[b + 1]
    union = (i1 - i) + (j1 - j)
    if union == 0:
        return np.nan
    inter = 0
    while i < i1 and j < j1:
        if values[i] == values[j]:
            inter += 1
            i += 1
            j += 1
        elif values[i] < values[j]:
            i += 1
        else:
            j += 1
    return inter / (union - inter)


@numba.njit(cache=True)
def _rms_distance(m: np.ndarray, a: int, b: int) -> float:
    """Euclidean distance / sqrt(dimensions): the RMS difference per timbre dimension (NaN if unknown)."""
    s = 0.0
    for j in range(m.shape[1]):
        d = np.float64(m[a, j]) - np.float64(m[b, j])
        s += d * d
    return math.sqrt(s / m.shape[1])


@numba.njit(cache=True)
def _cosine_distance(m: np.ndarray, a: int, b: int) -> float:
    """1 - cosine similarity of two tag vectors; NaN when either is missing or all zero."""
    dot, na, nb = 0.0, 0.0, 0.0
    for j in range(m.shape[1]):
        x, y = np.float64(m[a, j]), np.float64(m[b, j])
        dot += x * y
        na += x * x
        nb += y * y
    if not (na > 0 and nb > 0):  # also false for NaN
        return np.nan
    return max(0.0, 1.0 - dot / math.sqrt(na * nb))


@numba.njit(cache=True)
def _geometry(a: int, b: int, rel: int, lt: np.ndarray, ibi: np.ndarray, phase: np.ndarray) -> tuple[float, float]:
    """Log-tempo difference and beat-grid alignment (1: beats coincide, 0: half a beat apart) of clips a
    and b; ``rel`` 1 compares a at double its tempo (its grid halved), -1 does so for b."""
    la, pa_, fa = lt[a], ibi[a], phase[a]
    lb, pb, fb = lt[b], ibi[b], phase[b]
    if rel == 1:
        la, pa_ = la + LN2, pa_ / 2
        fa = np.fmod(fa, pa_)
    elif rel == -1:
        lb, pb = lb + LN2, pb / 2
        fb = np.fmod(fb, pb)
    grid = min(pa_, pb)
    dph = abs(np.fmod(fa, grid) - np.fmod(fb, grid))
    return abs(la - lb), 1 - 2 * min(dph, grid - dph) / grid


@numba.njit(cache=True)
def score_kernel(
    lo: np.ndarray,
    hi: np.ndarray,
    rel: np.ndarray,
    lt: np.ndarray,
    ibi: np.ndarray,
    phase: np.ndarray,
    loud: np.ndarray,
    video: np.ndarray,
    label_values: np.ndarray,
    label_offsets: np.ndarray,
    timbre: np.ndarray,
    content: np.ndarray,
    params: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Failed-rule bits (``RULE_BITS`` but harmony) and the score without its harmony term, per edge.
    ``params`` is ``kernel_params``' vector. Label Jaccard and timbre are computed only for clips without
    tags, where they decide; failed edges get no score (never selected)."""
    tol, max_loud, max_jac, min_timbre = params[0], params[1], params[2], params[3]
    min_content, content_scale, timbre_scale = params[4], params[5], params[6]
    w_tempo, w_beat, w_content, min_sound = params[7], params[8], params[9], params[10]
    m = lo.shape[0]
    failed = np.zeros(m, dtype=np.uint8)
    score = np.zeros(m, dtype=np.float64)
    for k in range(m):
        a, b = lo[k], hi[k]
        bits = 0
        if abs(loud[a] - loud[b]) > max_loud:
            bits |= 2
        if video[a] == video[b]:
            bits |= 4
        cd = _cosine_distance(content, a, b)
        if cd == cd:  # measured content decides: instrumentation or sound must differ
            td = _rms_distance(timbre, a, b)
            differs = cd >= min_content or (td == td and td > min_sound)
            bonus = min(1.0, cd / content_scale)
        else:  # no tags: the schema-1 rule and timbre bonus
            jac = _label_jaccard(label_values, label_offsets, a, b)
            td = _rms_distance(timbre, a, b)
            differs = (jac == jac and jac < max_jac) or (td == td and td > min_timbre)
            bonus = min(1.0, td / timbre_scale) if td == td else 0.0
        if not differs:
            bits |= 8
        failed[k] = bits
        if bits == 0:
            dlt, beat_sim = _geometry(a, b, rel[k], lt, ibi, phase)
            score[k] = w_tempo * max(0.0, 1 - dlt / tol) + w_beat * beat_sim + w_content * bonus
    return failed, score


def kernel_params(rules: PairRules) -> np.ndarray:
    return np.array(
        [
            *(math.log1p(rules.tolerance), rules.max_loudness_diff, rules.max_label_jaccard, rules.min_timbre_dist),
            *(rules.min_content_dist, rules.content_scale, rules.timbre_scale),
            *(rules.w_tempo, rules.w_beat, rules.w_content, rules.min_sound_dist),
        ],
        dtype=np.float64,
    )


@numba.njit(cache=True)
def measure_kernel(
    lo: np.ndarray, hi: np.ndarray, rel: np.ndarray, clip_scalars: np.ndarray, label_values: np.ndarray,
    label_offsets: np.ndarray, timbre: np.ndarray, content: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """(pairs, 4): label Jaccard, timbre distance, content distance, beat alignment of the chosen pairs
    (NaN = not measurable). ``clip_scalars`` rows: log tempo, beat period, beat phase."""
    out = np.empty((lo.shape[0], 4))
    for k in range(lo.shape[0]):
        a, b = lo[k], hi[k]
        out[k, 0] = _label_jaccard(label_values, label_offsets, a, b)
        out[k, 1] = _rms_distance(timbre, a, b)
        out[k, 2] = _cosine_distance(content, a, b)
        out[k, 3] = _geometry(a, b, rel[k], clip_scalars[0], clip_scalars[1], clip_scalars[2])[1]
    return out


@numba.njit(cache=True)
def greedy_bmatch(lo: np.ndarray, hi: np.ndarray, n: int, k: int) -> np.ndarray:
    """Edges arrive best first; take one when both ends still have room. Linear, exact greedy."""
    degree = np.zeros(n, dtype=np.int64)
    take = np.zeros(lo.shape[0], dtype=np.bool_)
    for i in range(lo.shape[0]):
        a, b = lo[i], hi[i]
        if degree[a] < k and degree[b] < k:
            take[i] = True
            degree[a] += 1
            degree[b] += 1
    return take


@numba.njit(cache=True)
def set_difference(
    values: np.ndarray, offsets: np.ndarray, keep: np.ndarray, minus: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per pair k, the ids of set ``keep[k]`` that are not in set ``minus[k]`` (CSR in, CSR out)."""
    m = keep.shape[0]
    total = 0
    for k in range(m):
        total += offsets[keep[k] + 1] - offsets[keep[k]]
    out = np.empty(total, dtype=np.int32)
    out_offsets = np.zeros(m + 1, dtype=np.int32)
    w = 0
    for k in range(m):
        j, j1 = offsets[minus[k]], offsets[minus[k] + 1]
        for i in range(offsets[keep[k]], offsets[keep[k] + 1]):
            while j < j1 and values[j] < values[i]:
                j += 1
            if j == j1 or values[j] != values[i]:
                out[w] = values[i]
                w += 1
        out_offsets[k + 1] = w
    return out[:w], out_offsets
