"""The incremental miner's merges, mostly compiled: id lookups between sorted clip lists, new elements merged
into the cached sort orders, the band pairs around changed positions, cached and new valid edges merged in
best-first order with the band check, and the cached and new clips' kernel arrays merged row by row."""

from __future__ import annotations

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from m2ugen_data.pairs.band import element_key
from m2ugen_data.pairs.clips import ClipArrays, combined


def index_in(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    """Position of each value in ``value_set`` (int64), -1 where absent."""
    return pc.fill_null(pc.index_in(values, value_set=value_set), -1).to_numpy(zero_copy_only=False).astype(np.int64)


def sorted_index_in(values: pa.Array, value_set: pa.Array) -> np.ndarray:
    """``index_in`` for two id lists that are usually both sorted (clip ids always are here): a linear
    merge over the string bytes, no hashing of a million ids; hashing when either is not strictly sorted."""
    if values.type == value_set.type == pa.string() and values.null_count == value_set.null_count == 0:
        out = _merge_index(*_string_buffers(values), *_string_buffers(value_set))
        if out is not None:
            return out
    return index_in(values, value_set)


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, bytes) of a string array, as numpy views."""
    _, offsets, data = arr.buffers()
    offsets = np.frombuffer(offsets, np.int32)[arr.offset : arr.offset + len(arr) + 1]
    return offsets, np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)


@numba.njit(cache=True)
def _compare(oa: np.ndarray, da: np.ndarray, i: int, ob: np.ndarray, db: np.ndarray, j: int) -> int:
    """Byte-wise order of string i of a and string j of b: -1, 0 or 1."""
    a0, a1, b0, b1 = oa[i], oa[i + 1], ob[j], ob[j + 1]
    for k in range(min(a1 - a0, b1 - b0)):
        if da[a0 + k] != db[b0 + k]:
            return -1 if da[a0 + k] < db[b0 + k] else 1
    return -1 if a1 - a0 < b1 - b0 else (1 if a1 - a0 > b1 - b0 else 0)


@numba.njit(cache=True)
def _merge_index(oa: np.ndarray, da: np.ndarray, ob: np.ndarray, db: np.ndarray) -> np.ndarray | None:
    """Position of each string of a in b (-1 if absent) by merging; None when either is not strictly sorted."""
    n, m = oa.shape[0] - 1, ob.shape[0] - 1
    for i in range(1, n):
        if _compare(oa, da, i - 1, oa, da, i) >= 0:
            return None
    for j in range(1, m):
        if _compare(ob, db, j - 1, ob, db, j) >= 0:
            return None
    out = np.full(n, -1, dtype=np.int64)
    j = 0
    for i in range(n):
        while j < m and _compare(ob, db, j, oa, da, i) < 0:
            j += 1
        if j < m and _compare(ob, db, j, oa, da, i) == 0:
            out[i] = j
    return out


def calm_elements(orders: np.ndarray, touched: list[np.ndarray], w: int) -> np.ndarray:
    """Per element, whether no touched position (a new element, or the element after removed ones) is
    within ``w`` of it in any order. A cached edge with a calm end is still in the band without looking:
    every element that entered or left between its ends would be within ``w`` of that end."""
    size = orders.shape[1]
    disturbed = np.zeros(size, bool)
    for r, t in enumerate(touched):
        mark = np.bincount(np.maximum(t - w, 0), minlength=size + 1)
        mark -= np.bincount(np.minimum(t + w + 1, size), minlength=size + 1)
        disturbed[orders[r][np.cumsum(mark[:size]) > 0]] = True
    return ~disturbed


def window_pairs(orders: np.ndarray, touched: list[np.ndarray], w: int) -> tuple[np.ndarray, np.ndarray]:
    """Element pairs (a, b) at positions i < i + o (o <= w) of an order with i <= t <= i + o for a touched
    position t: every band pair that involves a new element or spans a gap."""
    d, o = np.meshgrid(np.arange(w + 1), np.arange(1, w + 1), indexing="ij")
    d, o = d[d <= o], o[d <= o]
    out_a, out_b = [], []
    size = orders.shape[1]
    for r, t in enumerate(touched):
        t = np.unique(t)
        i = (t[:, None] - d[None, :]).ravel()
        j = i + np.tile(o, len(t))
        ok = (i >= 0) & (j < size)
        out_a.append(orders[r][i[ok]])
        out_b.append(orders[r][j[ok]])
    return np.concatenate(out_a), np.concatenate(out_b)


@numba.njit(cache=True)
def merge_edges(
    lo: np.ndarray, hi: np.ndarray, rel: np.ndarray, score: np.ndarray, harm: np.ndarray, chosen: np.ndarray,
    old_to_new: np.ndarray, calm: np.ndarray, positions: np.ndarray, c: int, w: int, f_lo: np.ndarray, f_hi: np.ndarray,
    f_rel: np.ndarray, f_score: np.ndarray, f_harm: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One pass over the cached valid edges (best first): keep those between unchanged clips whose ends
    are still at most ``w`` apart in some sort order (new clips can push an edge out of the band; a full
    re-mine would not see it either), renumbered to the new row ids, and merge the new valid edges
    (``f_*``, best first) in: score descending, ties by (lo, hi), the order ``select.best_first`` gives
    the union. Returns lo, hi, rel, score, harm and, per edge, its row in the cached pairs table when the
    cached run chose it (-1 otherwise and for new edges). Positions are looked up only for edges with no
    ``calm`` end; row ids are int32 (half the memory traffic of this, the pass over every edge)."""
    m, f = lo.shape[0], f_lo.shape[0]
    o_lo = np.empty(m + f, dtype=np.int32)
    o_hi = np.empty(m + f, dtype=np.int32)
    o_rel = np.empty(m + f, dtype=np.int8)
    o_score = np.empty(m + f, dtype=np.float64)
    o_harm = np.empty(m + f, dtype=np.float32)
    o_row = np.empty(m + f, dtype=np.int32)
    k, j, row = 0, 0, -1
    for i in range(m + 1):
        if i < m:
            if chosen[i]:
                row += 1
            a, b = old_to_new[lo[i]], old_to_new[hi[i]]
            if a < 0 or b < 0:
                continue
            ea = a * c + (1 if rel[i] == 1 else 0)
            eb = b * c + (1 if rel[i] == -1 else 0)
            inside = calm[ea] or calm[eb]
            for r in range(0 if inside else positions.shape[0]):
                d = positions[r, ea] - positions[r, eb]
                if -w <= d <= w:
                    inside = True
                    break
            if not inside:
                continue
            s = score[i]
        while j < f and (
            i == m or not (s > f_score[j] or (s == f_score[j] and (a < f_lo[j] or (a == f_lo[j] and b < f_hi[j]))))
        ):
            o_lo[k], o_hi[k], o_rel[k], o_score[k], o_harm[k] = f_lo[j], f_hi[j], f_rel[j], f_score[j], f_harm[j]
            o_row[k] = -1
            j += 1
            k += 1
        if i < m:
            o_lo[k], o_hi[k], o_rel[k], o_score[k], o_harm[k] = a, b, rel[i], s, harm[i]
            o_row[k] = row if chosen[i] else -1
            k += 1
    return o_lo[:k], o_hi[:k], o_rel[:k], o_score[:k], o_harm[:k], o_row[:k]


@numba.njit(cache=True)
def merge_sorted(
    r: int, c: int, block: np.ndarray, lt: np.ndarray, ibi: np.ndarray, phase: np.ndarray, hc: np.ndarray,
    fine: float, a: np.ndarray, b: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """Merge two element lists, each sorted in order ``r`` (no two elements have equal keys), computing
    each element's keys once, as it comes up (no key matrix over the whole set)."""
    na, nb = a.shape[0], b.shape[0]
    out = np.empty(na + nb, dtype=np.int64)
    ka, kb = np.empty(7), np.empty(7)
    width = 7
    if na and nb:
        width = element_key(r, a[0], c, block, lt, ibi, phase, hc, fine, ka)
        element_key(r, b[0], c, block, lt, ibi, phase, hc, fine, kb)
    i, j, k = 0, 0, 0
    while i < na and j < nb:
        first = True
        for q in range(width):
            if ka[q] != kb[q]:
                first = ka[q] < kb[q]
                break
        if first:
            out[k] = a[i]
            i += 1
            if i < na:
                element_key(r, a[i], c, block, lt, ibi, phase, hc, fine, ka)
        else:
            out[k] = b[j]
            j += 1
            if j < nb:
                element_key(r, b[j], c, block, lt, ibi, phase, hc, fine, kb)
        k += 1
    out[k : k + na - i] = a[i:]
    k += na - i
    out[k : k + nb - j] = b[j:]
    return out


def stack(old: np.ndarray, new: np.ndarray | None) -> np.ndarray:
    """Rows of ``old`` then of ``new`` (absent: none)."""
    return old if new is None else np.concatenate([old, new])


def stack_arrow(old: pa.Array | pa.ChunkedArray, new: pa.Array | pa.ChunkedArray | None) -> pa.Array:
    """``stack`` for Arrow columns (the new ones cast to the old type)."""
    old = combined(old)
    return old if new is None else pa.concat_arrays([old, combined(new).cast(old.type)])


def merge_clips(
    old: ClipArrays, new: ClipArrays | None, src: np.ndarray, eligible: pa.Table
) -> ClipArrays:
    """The kernel arrays of the merged eligible rows: row i is row ``src[i]`` of (``old``'s rows, then
    ``new``'s). Set vocabularies are united (both alphabetical, so remapped ids stay sorted in each set)."""
    n_old = len(old.loud)
    n_new = 0 if new is None else len(new.loud)
    from_old = np.flatnonzero(src < n_old)
    fields = {}
    for k in ("loud", "words_measured", "timbre", "content", "chords_measured", "timbre_len", "video"):
        a = getattr(old, k)
        out = np.empty((len(src), *a.shape[1:]), a.dtype)
        out[from_old] = a[src[from_old]]
        if new is not None:
            out[src >= n_old] = getattr(new, k)[src[src >= n_old] - n_old]
        fields[k] = out
    # chord CSR rows: q * n + row for octave copy q (0: every beat, 1: every other beat)
    copies = (len(old.chord_offsets) - 1) // n_old
    rows = np.concatenate([np.where(src < n_old, q * n_old + src, copies * n_old + q * n_new + src - n_old)
                           for q in range(copies)])  # fmt: skip
    values, offsets = old.chord_values, old.chord_offsets
    if new is not None:
        values, offsets = csr_cat(values, offsets, new.chord_values, new.chord_offsets)
    fields["chord_values"], fields["chord_offsets"] = csr_take(values, offsets, rows)
    for name in ("labels", "words"):
        ov, oo, names = getattr(old, name)
        if new is not None:
            nv, no, nn = getattr(new, name)
            names = pc.unique(pa.concat_arrays([names, nn.cast(names.type)]))
            names = names.take(pc.array_sort_indices(names))
            ov = index_in(getattr(old, name)[2], names).astype(np.int32)[ov]
            ov, oo = csr_cat(ov, oo, index_in(nn.cast(names.type), names).astype(np.int32)[nv], no)
        fields[f"{name}_values"], fields[f"{name}_offsets"] = csr_take(ov, oo, src)
        fields[f"{name}_names"] = names
    label_names, word_names = fields.pop("labels_names"), fields.pop("words_names")
    return ClipArrays.from_fields(fields, eligible, label_names, word_names)


def video_codes(videos: pa.Array, ytids: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """(the video dictionary with unseen videos appended, the code of each of ``ytids``). The few new ids
    are hashed and the dictionary probed against them, not the other way round."""
    uniq = pc.unique(ytids)
    hit = index_in(videos, uniq)  # per known video, its index in uniq or -1
    code = np.full(len(uniq), -1, np.int64)
    code[hit[hit >= 0]] = np.flatnonzero(hit >= 0)
    unseen = code < 0
    code[unseen] = len(videos) + np.arange(np.count_nonzero(unseen))
    videos = pa.concat_arrays([videos, uniq.filter(pa.array(unseen)).cast(videos.type)])
    return videos, code[index_in(ytids, uniq)]


def csr_cat(va: np.ndarray, oa: np.ndarray, vb: np.ndarray, ob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of CSR a then of CSR b."""
    return np.concatenate([va, vb]), np.concatenate([oa[:-1], oa[-1] + ob.astype(np.int64)])


@numba.njit(cache=True)
def csr_take(values: np.ndarray, offsets: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR of the given rows, in that order."""
    out_offsets = np.zeros(rows.shape[0] + 1, dtype=np.int64)
    for i in range(rows.shape[0]):
        out_offsets[i + 1] = out_offsets[i] + offsets[rows[i] + 1] - offsets[rows[i]]
    out = np.empty(out_offsets[-1], dtype=values.dtype)
    for i in range(rows.shape[0]):
        out[out_offsets[i] : out_offsets[i + 1]] = values[offsets[rows[i]] : offsets[rows[i] + 1]]
    return out, out_offsets
