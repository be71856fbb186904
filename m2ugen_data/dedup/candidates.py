"""Candidate pairs for duplicate checks: clips that share candidate tokens at a consistent time offset.

Never all pairs. Every clip contributes its sampled three-peak tokens (``fingerprint.candidate_tokens``, ~17 a
second); one sort by token brings equal tokens together, and each run of equal tokens (at most ``MAX_RUN``
clips: a token that common identifies nothing) emits its clip pairs with their time offset. Pairs that share
at least ``min_shared`` tokens within one offset window are candidates; ``match.compare`` decides.

``new`` restricts the search to pairs with at least one new clip (the incremental run): the tokens of the old
clips are still sorted in, but a run only emits the pairs it has not checked before.
"""

from __future__ import annotations

import numba
import numpy as np

MAX_RUN = 64
OFFSET_BIN = 32  # frames: offsets are binned, and a pair's count is the best of two staggered binnings
_BIN_HALF = 1 << 13  # offset bins kept either side of 0 (+-6 hours of audio): key = pair * 2**14 + bin


@numba.njit(cache=True)
def _emit(tokens: np.ndarray, clips: np.ndarray, frames: np.ndarray, is_new: np.ndarray, max_run: int,
          only_new: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    n = tokens.size
    cap = 1 << 16
    a = np.empty(cap, np.int64)
    b = np.empty(cap, np.int64)
    d = np.empty(cap, np.int64)
    k = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and tokens[j] == tokens[i]:
            j += 1
        if 1 < j - i <= max_run:
            for x in range(i, j):
                for y in range(x + 1, j):
                    cx, cy = clips[x], clips[y]
                    if cx == cy or (only_new and not (is_new[cx] or is_new[cy])):
                        continue
                    if k == a.size:
                        a = np.concatenate((a, np.empty(a.size, np.int64)))
                        b = np.concatenate((b, np.empty(b.size, np.int64)))
                        d = np.concatenate((d, np.empty(d.size, np.int64)))
                    if cx < cy:
                        a[k], b[k], d[k] = cx, cy, frames[x] - frames[y]
                    else:
                        a[k], b[k], d[k] = cy, cx, frames[y] - frames[x]
                    k += 1
        i = j
    return a[:k], b[:k], d[:k]


def candidate_pairs(
    tokens: np.ndarray, clips: np.ndarray, frames: np.ndarray, n_clips: int, *, min_shared: int = 2,
    new: np.ndarray | None = None, max_run: int = MAX_RUN,
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) clip indices (a < b) of the candidate pairs; ``tokens``/``clips``/``frames`` are one entry per
    token (any order). ``new``: a boolean per clip; only pairs touching a new clip are returned."""
    if tokens.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    order = np.argsort(tokens, kind="stable")
    is_new = np.ones(n_clips, np.bool_) if new is None else np.asarray(new, np.bool_)
    a, b, d = _emit(tokens[order], clips[order].astype(np.int64), frames[order].astype(np.int64), is_new,
                    max_run, new is not None)
    if a.size == 0:
        return a, b
    pair = a * np.int64(n_clips) + b
    found = []
    for shift in (0, OFFSET_BIN // 2):  # two staggered binnings: an offset near a bin edge is whole in one
        key_bin = np.clip((d + shift) // OFFSET_BIN + _BIN_HALF, 0, 2 * _BIN_HALF - 1)
        keys, counts = np.unique(pair * (2 * _BIN_HALF) + key_bin, return_counts=True)
        found.append(keys[counts >= min_shared] // (2 * _BIN_HALF))
    best = np.unique(np.concatenate(found))
    return best // n_clips, best % n_clips


def token_arrays(fingerprints) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tokens, clip index, frames) of in-memory fingerprints (index = position in the sequence; clips
    without an ok fingerprint contribute nothing): ``candidate_pairs``' input."""
    toks, idx, frames = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for i, fp in enumerate(fingerprints):
        if fp.ok:
            t, f = fp.tokens()
            toks.append(t)
            frames.append(f.astype(np.int64))
            idx.append(np.full(t.size, i, np.int64))
    return np.concatenate(toks), np.concatenate(idx), np.concatenate(frames)


__all__ = ["MAX_RUN", "candidate_pairs", "token_arrays"]
