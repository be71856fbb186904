"""Candidate pairs for duplicate checks: clips that share at least ``min_shared`` candidate tokens.

Never all pairs. Every clip contributes its sampled three-peak tokens (``fingerprint.candidate_tokens``,
about 15 a second, each ~32 bits of peak geometry mixed to 64). Each token is packed with its clip's index
into one 64-bit key (the token's top 40 bits, the clip's 24), the keys are sorted once (two halves on two
threads, then merged), and each run of equal tokens (at most ``MAX_RUN`` clips: a token that common
identifies nothing) emits its clip pairs; pairs emitted ``min_shared`` times are candidates, and
``match.compare`` decides. Forty bits of token keep chance collisions between a million clips' tokens to a
few thousand, each of which would need a second one to make a candidate.

No time offsets here: a pair's tokens at inconsistent offsets cost only a verification, and sorting one
array of packed keys (instead of an argsort carrying clip and time) is what makes a million clips fit in a
minute. ``new`` restricts the output to pairs with at least one new clip (the incremental run).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numba
import numpy as np

MAX_RUN = 64
CLIP_BITS = 24  # clips per search: up to 16.7 M
_CLIP_MASK = np.uint64((1 << CLIP_BITS) - 1)


@numba.njit(cache=True)
def _merge(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    out = np.empty(a.size + b.size, a.dtype)
    i = j = k = 0
    while i < a.size and j < b.size:
        if a[i] <= b[j]:
            out[k] = a[i]
            i += 1
        else:
            out[k] = b[j]
            j += 1
        k += 1
    while i < a.size:
        out[k] = a[i]
        i += 1
        k += 1
    while j < b.size:
        out[k] = b[j]
        j += 1
        k += 1
    return out


def sort_two_threads(keys: np.ndarray) -> np.ndarray:
    """``np.sort`` of two halves at once (numpy releases the GIL while sorting), then one linear merge."""
    if keys.size < 1 << 20:
        return np.sort(keys)
    half = keys.size // 2
    parts = [keys[:half].copy(), keys[half:].copy()]
    threads = [threading.Thread(target=p.sort) for p in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return _merge(parts[0], parts[1])


@numba.njit(cache=True)
def _emit(keys: np.ndarray, is_new: np.ndarray, max_run: int, only_new: bool,
          clip_bits: int) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    n = keys.size
    mask = np.uint64((1 << clip_bits) - 1)
    cap = 1 << 16
    a = np.empty(cap, np.int64)
    b = np.empty(cap, np.int64)
    k = 0
    i = 0
    while i < n:
        tok = keys[i] >> np.uint64(clip_bits)
        j = i + 1
        while j < n and (keys[j] >> np.uint64(clip_bits)) == tok:
            j += 1
        if 1 < j - i <= max_run:
            for x in range(i, j):
                cx = np.int64(keys[x] & mask)
                for y in range(x + 1, j):
                    cy = np.int64(keys[y] & mask)
                    if cx == cy or (only_new and not (is_new[cx] or is_new[cy])):
                        continue
                    if k == a.size:
                        a = np.concatenate((a, np.empty(a.size, np.int64)))
                        b = np.concatenate((b, np.empty(b.size, np.int64)))
                    a[k], b[k] = (cx, cy) if cx < cy else (cy, cx)
                    k += 1
        i = j
    return a[:k], b[:k]


def candidate_pairs(
    tokens: np.ndarray, clips: np.ndarray, n_clips: int, *, min_shared: int = 2, new: np.ndarray | None = None,
    max_run: int = MAX_RUN,
) -> tuple[np.ndarray, np.ndarray]:
    """(a, b) clip indices (a < b) of the candidate pairs; ``tokens``/``clips`` are one entry per token (any
    order; a clip's repeated token counts once). ``new``: a boolean per clip; only pairs touching one."""
    if n_clips >= 1 << CLIP_BITS:
        raise ValueError(f"at most {1 << CLIP_BITS} clips per candidate search, got {n_clips}")
    if tokens.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    keys = (tokens.astype(np.uint64) & ~_CLIP_MASK) | clips.astype(np.uint64)
    keys = _dedupe_sorted(sort_two_threads(keys))
    is_new = np.ones(n_clips, np.bool_) if new is None else np.asarray(new, np.bool_)
    a, b = _emit(keys, is_new, max_run, new is not None, CLIP_BITS)
    if a.size == 0:
        return a, b
    pair, counts = np.unique(a * np.int64(n_clips) + b, return_counts=True)
    pair = pair[counts >= min_shared]
    return pair // n_clips, pair % n_clips


def _dedupe_sorted(keys: np.ndarray) -> np.ndarray:
    """A sorted array without repeats (a clip's token repeated at two times counts once)."""
    keep = np.empty(keys.size, np.bool_)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


def token_arrays(fingerprints: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, clip index) of in-memory fingerprints (index = position in the sequence; clips without an
    ok fingerprint contribute nothing): ``candidate_pairs``' input."""
    toks, idx = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)]
    for i, fp in enumerate(fingerprints):
        if fp.ok:
            t = fp.tokens()
            toks.append(t)
            idx.append(np.full(t.size, i, np.int64))
    return np.concatenate(toks), np.concatenate(idx)


__all__ = ["MAX_RUN", "candidate_pairs", "sort_two_threads", "token_arrays"]
