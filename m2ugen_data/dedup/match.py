"""Is clip B the same recording as clip A (or a part of it)? Landmarks find the alignment, the sketch decides.

1. **Align** (``align``): A's landmarks are looked up among B's by hash, each also with its time step one frame
   shorter and longer (frame jitter between two encodings, a few percent of time-stretch); every hit votes for
   an offset ``t_A - t_B``; the best window of ``OFFSET_WINDOW`` frames is the alignment, and a line fitted
   through its hits gives the time-stretch ratio. ``frac`` is the share of the landmarks inside the overlap
   (of whichever clip has fewer there) that matched: it handles partial overlaps and a 10 s clip inside a long file.
2. **Decide** (``compare``): the two sketches are compared at that alignment. ``corr`` is the mean per-band
   correlation of the band-energy envelopes after removing each band's mean (gain and EQ cancel); ``resid``
   is how far the mean band-energy difference strays from a smooth curve (a smooth difference is EQ or a
   codec's roll-off, a jagged one another instrument). Landmarks alone would merge MUEdit's siblings (the
   same notes and drums, other instruments): they share up to two thirds of their landmarks.

The thresholds (``DupRules``) are fitted on the dev split of the real-sound dev sets and measured on the test
split by ``bench/bench_dedup.py`` (docs/BENCHMARKS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from m2ugen_data.analysis.fingerprint import FRAMES_PER_S, MAX_DT, SKETCH_DB_STEP, SKETCH_HOP, Fingerprint

OFFSET_WINDOW = 24  # frames (0.56 s): hits within it vote for one alignment (drift of a stretched copy included)
MAX_HITS_PER_HASH = 64  # a hash this common in B says little about where A is


@dataclass(frozen=True)
class DupRules:
    """When two aligned clips are one recording. ``version`` goes into every duplicate row."""

    # set on the dev split of the real-sound copies (bench/bench_dedup.py --part tune): 0.80 found the most
    # copies before distinct recordings merged (what merges are GM siblings differing in one quiet part);
    # 0.85 keeps every sibling pair of the synthetic demo corpora apart (MUEdit's pairs) for ~1 point of recall
    min_matches: int = 12  # landmark hits at the alignment
    min_frac: float = 0.10  # of the landmarks in the overlap
    min_corr: float = 0.85  # band-envelope correlation at the alignment
    max_resid_db: float = 1.0  # mean band difference's departure from a smooth curve
    min_overlap_s: float = 3.0  # shorter shared audio (the matching landmarks' span) is not called a copy
    max_stretch: float = 0.06  # |ratio - 1|

    @property
    def version(self) -> str:
        return (f"dup1:m{self.min_matches}:f{self.min_frac:g}:c{self.min_corr:g}:r{self.max_resid_db:g}"
                f":o{self.min_overlap_s:g}")


@dataclass(frozen=True)
class Alignment:
    matches: int
    frac: float
    offset: float  # frames: t_A ~ ratio * t_B + offset
    ratio: float
    overlap_s: float  # seconds of audio the matching landmarks span


@dataclass(frozen=True)
class Verdict:
    duplicate: bool
    alignment: Alignment | None
    corr: float
    resid_db: float

    @property
    def score(self) -> float:
        return self.alignment.frac if self.alignment else 0.0


def _expanded(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each hash with its time step (low 6 bits) as is, one shorter and one longer: (hashes, source index)."""
    h = hashes.astype(np.int64)
    dt = h & 0x3F
    out, idx = [h], [np.arange(h.size)]
    for step in (-1, 1):
        ok = (dt + step >= 1) & (dt + step <= MAX_DT)
        out.append(h[ok] + step)
        idx.append(np.flatnonzero(ok))
    return np.concatenate(out), np.concatenate(idx)


def _hits(a: Fingerprint, b: Fingerprint) -> tuple[np.ndarray, np.ndarray]:
    """(A landmark index, B landmark index) of every hash hit, common hashes of B capped."""
    hb_order = np.argsort(b.hashes, kind="stable")
    hb = b.hashes[hb_order].astype(np.int64)
    qh, qi = _expanded(a.hashes)
    lo, hi = np.searchsorted(hb, qh, "left"), np.searchsorted(hb, qh, "right")
    n = np.minimum(hi - lo, MAX_HITS_PER_HASH) * ((hi - lo) <= MAX_HITS_PER_HASH)
    if not n.sum():
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ia = np.repeat(qi, n)
    starts = np.repeat(lo, n)
    within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    return ia, hb_order[starts + within]


def align(a: Fingerprint, b: Fingerprint, *, max_stretch: float = 0.06) -> Alignment | None:
    """The best alignment of B within A (or A within B), or None when no landmark matches."""
    ia, ib = _hits(a, b)
    if not ia.size:
        return None
    ta, tb = a.times[ia].astype(np.int64), b.times[ib].astype(np.int64)
    d = ta - tb
    ds = np.sort(d)
    counts = np.searchsorted(ds, ds + OFFSET_WINDOW, "left") - np.arange(ds.size)
    start = ds[int(np.argmax(counts))]
    sel = (d >= start) & (d < start + OFFSET_WINDOW)
    ia, ib, ta, tb = ia[sel], ib[sel], ta[sel], tb[sel]
    ratio, offset = 1.0, float(np.median(ta - tb))
    if ia.size >= 8 and np.ptp(tb) > 2 * FRAMES_PER_S:
        # a line through the hits, fitted again on those within two frames of it (chance hits in the window
        # would tilt it); kept only when it is a real stretch, else the median offset is more exact
        r, c = np.polyfit(tb, ta, 1)
        inliers = np.abs(ta - (r * tb + c)) <= 2.0
        if inliers.sum() >= 8 and np.ptp(tb[inliers]) > 2 * FRAMES_PER_S:
            r, c = np.polyfit(tb[inliers], ta[inliers], 1)
        on_line = np.count_nonzero(np.abs(ta - (r * tb + c)) <= 1.5)
        on_shift = np.count_nonzero(np.abs(ta - tb - offset) <= 1.5)
        if abs(r - 1.0) <= max_stretch and on_line > 1.2 * on_shift:  # repetitive music tilts fits: demand it
            ratio, offset = float(r), float(c)
    # the overlap, in A's frames: B's landmarks span [0, b_end) mapped by ratio/offset
    a_end = a.seconds * FRAMES_PER_S
    b_end = b.seconds * FRAMES_PER_S
    lo, hi = max(0.0, offset), min(a_end, offset + ratio * b_end)
    if hi <= lo:
        return None
    in_a = int(np.count_nonzero((a.times >= lo) & (a.times < hi)))
    a_of_b = b.times * ratio + offset
    in_b = int(np.count_nonzero((a_of_b >= lo) & (a_of_b < hi)))
    matches = int(np.unique(ia).size)
    frac = matches / max(1, min(in_a, in_b))
    # the audio actually shared: from the first to the last matching landmark (not the clips' whole overlap,
    # which would credit 2 s of shared audio at the start of two 10 s clips with 8 s)
    on = np.abs(ta - (ratio * tb + offset)) <= 2.0
    shared = (np.ptp(ta[on]) + MAX_DT) / FRAMES_PER_S if on.any() else 0.0
    return Alignment(matches, min(frac, 1.0), offset, ratio, min(shared, (hi - lo) / FRAMES_PER_S))


def sketch_agreement(a: Fingerprint, b: Fingerprint, al: Alignment) -> tuple[float, float]:
    """(corr, resid_db) of the two sketches over the aligned overlap; (nan, nan) when it is too short."""
    sa = a.sketch.astype(np.float32) * SKETCH_DB_STEP
    sb = b.sketch.astype(np.float32) * SKETCH_DB_STEP
    if sa.shape[0] < 4 or sb.shape[0] < 4:
        return float("nan"), float("nan")
    frames_a = np.arange(sa.shape[0]) * SKETCH_HOP + SKETCH_HOP / 2  # sketch frame centres, in STFT frames
    pos_b = (frames_a - al.offset) / al.ratio / SKETCH_HOP - 0.5  # where they fall in B's sketch, fractional
    ok = (pos_b >= 0) & (pos_b <= sb.shape[0] - 1)
    if np.count_nonzero(ok) < 8:
        return float("nan"), float("nan")
    lo = np.floor(pos_b[ok]).astype(np.int64)
    hi = np.minimum(lo + 1, sb.shape[0] - 1)
    w = (pos_b[ok] - lo)[:, None].astype(np.float32)
    x, y = sa[ok], (1 - w) * sb[lo] + w * sb[hi]  # B interpolated between its frames: no half-frame shifts
    diff = x.mean(axis=0) - y.mean(axis=0)
    bands = np.arange(diff.size)
    resid = diff - np.polyval(np.polyfit(bands, diff, 2), bands)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    var = np.sqrt((x * x).sum(axis=0) * (y * y).sum(axis=0))
    live = var > 1e-6
    corr = float(((x * y).sum(axis=0)[live] / var[live]).mean()) if live.any() else 0.0
    return corr, float(np.sqrt(np.mean(resid**2)))


def compare(a: Fingerprint, b: Fingerprint, rules: DupRules = DupRules()) -> Verdict:
    """Whether A and B are one recording (re-encoded, cut, shifted, re-levelled, slightly stretched)."""
    if not (a.ok and b.ok):
        return Verdict(False, None, float("nan"), float("nan"))
    al = align(a, b, max_stretch=rules.max_stretch)
    if al is None or al.matches < rules.min_matches or al.frac < rules.min_frac or al.overlap_s < rules.min_overlap_s:
        return Verdict(False, al, float("nan"), float("nan"))
    corr, resid = sketch_agreement(a, b, al)
    dup = corr >= rules.min_corr and resid <= rules.max_resid_db
    return Verdict(bool(dup), al, corr, resid)


__all__ = ["Alignment", "DupRules", "Verdict", "align", "compare", "sketch_agreement"]
