"""Re-masters: the same recording with new EQ, compression and level, which can move enough spectral peaks and
band energies that the fingerprint rule (``match.compare``) declines. The analysis has already measured what
a re-master keeps: tempo, key, meter, the MusiCNN tag probabilities, chroma and the chord-root histogram.

A pair is a re-master when all of that agrees to a strict tolerance (``RemasterRules``) *and* the landmarks
still give some support at one alignment (``min_frac``, well under the fingerprint rule's): two different
recordings of one style, key and tempo can measure alike, but they do not share spectral peaks.

Never all pairs: clips are blocked by (key, meter), sorted by log-tempo, and each is compared with the next
``window`` clips within ``tempo_tol`` (as pair mining does).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from m2ugen_data.dedup.links import Link, coverage
from m2ugen_data.dedup.match import DupRules, align
from m2ugen_data.warehouse import Warehouse


@dataclass(frozen=True)
class RemasterRules:
    tempo_tol: float = 0.01  # |log tempo ratio| <= log(1 + tol)
    min_tag_cos: float = 0.985  # cosine of the MTT + MSD tag probability vectors
    min_chroma_cos: float = 0.98
    max_harmony_l1: float = 0.25  # chord-root histograms (each sums to 1)
    min_frac: float = 0.06  # landmark support at one alignment
    min_matches: int = 8
    window: int = 32


_COLUMNS = ("clip_id", "tempo_bpm", "key", "meter", "tags_mtt", "tags_msd", "chroma", "harmony", "fp_landmarks",
            "fp_seconds")


def _unit(rows: list[list[float] | None], width: int) -> np.ndarray:
    m = np.zeros((len(rows), width), np.float64)
    for i, r in enumerate(rows):
        if r is not None and len(r) == width:
            m[i] = r
    norm = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norm, out=np.zeros_like(m), where=norm > 0)


def candidates(t: pa.Table, rules: RemasterRules) -> list[tuple[int, int]]:
    """Row pairs of ``t`` whose measurements agree (the landmark support is checked afterwards)."""
    n = t.num_rows
    if n < 2:
        return []
    tempo = np.array([x or 0.0 for x in t.column("tempo_bpm").to_pylist()], np.float64)
    block = [f"{k}|{m}" for k, m in zip(t.column("key").to_pylist(), t.column("meter").to_pylist())]
    tags = _unit([(a or []) + (b or []) for a, b in zip(t.column("tags_mtt").to_pylist(),
                                                        t.column("tags_msd").to_pylist())], 100)
    chroma = _unit(t.column("chroma").to_pylist(), 12)
    harmony = np.array([h if h is not None and len(h) == 24 else [0.0] * 24 for h in t.column("harmony").to_pylist()])
    usable = (tempo > 0) & (np.linalg.norm(tags, axis=1) > 0) & (np.linalg.norm(chroma, axis=1) > 0)
    log_t = np.log(np.where(tempo > 0, tempo, 1.0))
    order = sorted((i for i in range(n) if usable[i]), key=lambda i: (block[i], log_t[i]))
    tol = math.log1p(rules.tempo_tol)
    out = []
    for pos, i in enumerate(order):
        for j in order[pos + 1 : pos + 1 + rules.window]:
            if block[j] != block[i] or log_t[j] - log_t[i] > tol:
                break
            if (tags[i] @ tags[j] >= rules.min_tag_cos and chroma[i] @ chroma[j] >= rules.min_chroma_cos
                    and np.abs(harmony[i] - harmony[j]).sum() <= rules.max_harmony_l1):
                out.append((min(i, j), max(i, j)))
    return out


def remaster_links(wh: Warehouse, ids: Sequence[str], found: Sequence[Link], dup_rules: DupRules,
                   rules: RemasterRules = RemasterRules()) -> list[Link]:
    """Re-master links among ``ids`` (clips with an ok fingerprint) not already linked by ``found``."""
    from m2ugen_data.analysis import fingerprint as fp_mod

    if len(ids) < 2:
        return []
    con = wh.connect()
    con.register("wanted", pa.table({"clip_id": pa.array(list(ids), pa.string())}))
    t = con.sql(f"SELECT {', '.join(_COLUMNS)} FROM features_latest JOIN wanted USING (clip_id) ORDER BY clip_id"
                ).to_arrow_table()
    linked = {(lk.a, lk.b) for lk in found} | {(lk.b, lk.a) for lk in found}
    clip_ids = t.column("clip_id").to_pylist()
    blobs = t.column("fp_landmarks")
    seconds = t.column("fp_seconds").to_pylist()
    links = []
    for i, j in candidates(t, rules):
        a, b = clip_ids[i], clip_ids[j]
        if (a, b) in linked:
            continue
        fa, fb = (fp_mod.from_columns(blobs[k].as_py(), None, seconds[k]) for k in (i, j))
        al = align(fa, fb, max_stretch=dup_rules.max_stretch)
        if al is not None and al.frac >= rules.min_frac and al.matches >= rules.min_matches:
            links.append(Link(a, b, "remaster", round(al.frac, 4), None, round(al.offset / fp_mod.FRAMES_PER_S, 3),
                              round(al.ratio, 4), coverage(al.overlap_s, fa.seconds, fb.seconds)))
    return links


__all__ = ["RemasterRules", "candidates", "remaster_links"]
