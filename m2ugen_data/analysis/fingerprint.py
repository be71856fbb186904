"""Audio fingerprints: spectral-peak landmarks that survive re-encoding, gain, EQ, cutting and small tempo
changes, so the same recording is found by its sound whatever its ID or file.

Why our own and not Chromaprint: measured on real-sound copies (``bench/bench_dedup.py``, docs/BENCHMARKS.md),
landmarks find copies at another offset, partial overlaps and time-stretched copies that Chromaprint's
fixed-grid chroma codes lose, cost a few milliseconds per 10 s clip in numpy/scipy (no Debian package, no
binding) and index by hash, which is what grouping a million clips needs.

Two parts, from one STFT (11,025 Hz, 512-point window, hop 256: 43 frames/s):

- **Landmarks** (finding): the constellation scheme of Wang (2003). Local maxima that stand out from their
  neighbourhood (ranked by how far they rise above the local mean, so gain cancels), at most ``PEAKS_PER_S``
  a second, each paired with the next few peaks of a target zone ahead of it. A landmark is ``(hash, t)``:
  the hash packs the anchor's frequency bin, the frequency step and the time step to the target (20 bits),
  ``t`` is the anchor's frame. Time steps are short (at most ``MAX_DT`` frames, 0.7 s), so a few percent of
  time-stretch moves most of them by at most a frame, which matching tolerates.
- **Sketch** (deciding): log energy in ``SKETCH_BANDS`` log-spaced bands, 10.8 frames/s, quantised to
  0.5 dB. Landmarks alone cannot tell a copy from a re-orchestration that keeps the drums and every note's
  timing (the dev sets' MUEdit siblings share up to two thirds of their landmarks); the sketch, compared at
  the offset the landmarks found, says whether the whole sound follows (``m2ugen_data.dedup.match``).

Long files are fingerprinted whole, in chunks with an overlap that covers the peak neighbourhood and the
target zone, so memory stays bounded and the landmarks equal those of the whole signal except at chunk
edges. A clip too short or too quiet for enough landmarks is a recorded status (``too_short``,
``too_few_landmarks``), never an empty fingerprint passed as unique.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
from scipy import ndimage

VERSION = "lm2"
SAMPLE_RATE = 11025
N_FFT = 512
HOP = 256
FRAMES_PER_S = SAMPLE_RATE / HOP
MIN_BIN, MAX_BIN = 4, 255  # 86 Hz .. 5.5 kHz: codecs cut above, rumble below
PEAK_F, PEAK_T = 9, 7  # local-maximum neighbourhood half-sizes (bins, frames)
PEAKS_PER_S = 18.0
FAN_OUT = 4  # targets per anchor
MAX_DT = 31  # frames (0.72 s)
MAX_DF = 31  # bins
MIN_DURATION_S = 2.0
MIN_LANDMARKS = 20
TOKEN_RATE = 0.25  # share of the three-peak tokens kept for the candidate index (chosen by value: copy-consistent)
SKETCH_BANDS = 24
SKETCH_HOP = 4  # STFT frames per sketch frame
SKETCH_DB_STEP = 0.5
_BAND_EDGES = np.unique(np.round(np.geomspace(MIN_BIN, MAX_BIN + 1, SKETCH_BANDS + 1)).astype(np.int64))
CHUNK_FRAMES = 2440  # long files: ~57 s at a time (a multiple of SKETCH_HOP); with its lead and margin a read
# stays under the analysis' 60 s decode cap (Thresholds.max_decode_s), which tests/pipeline/audioset/test_media_strict.py checks
_MARGIN = PEAK_T + MAX_DT + N_FFT // HOP + 2  # frames a chunk reads past its end


@dataclass(frozen=True)
class Fingerprint:
    status: str  # ok | too_short | too_few_landmarks | failed
    hashes: np.ndarray  # uint32, in (time, hash) order
    times: np.ndarray  # uint32 anchor frame
    sketch: np.ndarray  # uint8 (frames, SKETCH_BANDS): band energy in SKETCH_DB_STEP dB above the floor
    seconds: float  # audio covered
    reason: str | None = None

    def tokens(self) -> np.ndarray:
        """``candidate_tokens`` of the landmarks."""
        return candidate_tokens(self.hashes, self.times)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def pack_landmarks(self) -> bytes:
        """Little-endian uint32 pairs (hash, frame): ``features.fp_landmarks``."""
        return np.stack([self.hashes, self.times], axis=1).astype("<u4").tobytes()


def unpack_landmarks(blob: bytes | None) -> tuple[np.ndarray, np.ndarray]:
    """(hashes, frames) from ``features.fp_landmarks``; empty arrays for None."""
    if not blob:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    a = np.frombuffer(blob, dtype="<u4").reshape(-1, 2)
    return a[:, 0].copy(), a[:, 1].copy()


def pack_tokens(tokens: np.ndarray) -> bytes:
    """Little-endian uint64 tokens: ``features.fp_tokens``."""
    return tokens.astype("<u8").tobytes()


def unpack_tokens(blob: bytes | None) -> np.ndarray:
    return np.frombuffer(blob or b"", dtype="<u8").astype(np.uint64)


def _mix64(x: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (splitmix64): well-spread token values, so sampling by value is unbiased."""
    x = x.astype(np.uint64)
    x = (x ^ (x >> np.uint64(31))) * np.uint64(0x7FB5D329728EA185)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x81DADEF4BC2DD44D)
    return x ^ (x >> np.uint64(33))


def candidate_tokens(hashes: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The distinct tokens for the candidate index: two landmarks of one anchor (three peaks, ~32 bits,
    time steps halved so a frame of jitter or a few percent of stretch often keeps them), mixed to 64 bits and
    kept when the value falls in the lowest ``TOKEN_RATE`` of the range. Single landmarks (20 bits) are
    shared by too many of a million clips to index; a kept token of one clip is kept in every copy holding
    the same peaks, whatever the copy's length (sampling by value, not by position)."""
    h = hashes.astype(np.uint64)
    t = times.astype(np.uint64)
    f1, df, dt = h >> np.uint64(12), (h >> np.uint64(6)) & np.uint64(63), (h & np.uint64(63)) >> np.uint64(1)
    anchor = (t << np.uint64(8)) | (f1 & np.uint64(0xFF))
    order = np.lexsort((dt, df, anchor))
    anchor, f1, df, dt = anchor[order], f1[order], df[order], dt[order]
    tokens = [np.zeros(0, np.uint64)]
    for step in (1, 2, 3):
        a = np.flatnonzero(anchor[step:] == anchor[:-step])
        b = a + step
        raw = (f1[a] << np.uint64(24)) | (df[a] << np.uint64(18)) | (dt[a] << np.uint64(12)) | (df[b] << np.uint64(6)) | dt[b]
        tokens.append(_mix64(raw))
    tok = np.concatenate(tokens)
    return np.unique(tok[tok < np.uint64(int(TOKEN_RATE * 2**64))])


def failed(reason: str, seconds: float = 0.0) -> Fingerprint:
    """No fingerprint, and why (undecodable audio, non-finite samples, a damaged shard)."""
    empty = np.zeros(0, np.uint32)
    return Fingerprint("failed", empty, empty, np.zeros((0, SKETCH_BANDS), np.uint8), seconds, reason)


def from_columns(landmarks: bytes | None, sketch: bytes | None, seconds: float | None) -> Fingerprint:
    """A stored fingerprint (``features.fp_landmarks``, ``fp_sketch``, ``fp_seconds``) back as a ``Fingerprint``."""
    h, t = unpack_landmarks(landmarks)
    sk = np.frombuffer(sketch or b"", np.uint8).reshape(-1, SKETCH_BANDS)
    return Fingerprint("ok", h, t, sk, float(seconds or 0.0))


def unpack_sketch(blob: bytes | None) -> np.ndarray:
    """(frames, SKETCH_BANDS) float32 dB from ``features.fp_sketch``."""
    if not blob:
        return np.zeros((0, SKETCH_BANDS), np.float32)
    return np.frombuffer(blob, dtype=np.uint8).reshape(-1, SKETCH_BANDS).astype(np.float32) * SKETCH_DB_STEP


def _spectrum(y: np.ndarray) -> np.ndarray:
    """Magnitude STFT frames (frames, bins) of a signal at ``SAMPLE_RATE``; float32 throughout."""
    import scipy.fft

    n_frames = 1 + (y.size - N_FFT) // HOP
    if n_frames < 1:
        return np.zeros((0, N_FFT // 2 + 1), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(y, N_FFT)[::HOP][:n_frames]
    return np.abs(scipy.fft.rfft(frames * _WINDOW, axis=1))


_WINDOW = np.hanning(N_FFT).astype(np.float32)


def _peaks(spec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(time, bin, prominence) of the spectral peaks; time and bin refined to a fraction of a frame/bin by a
    parabola through the log magnitudes around the peak, so two encodings whose frames fall at different
    sub-frame offsets give the same time steps (whole frames made a third of the landmarks differ)."""
    if spec.shape[0] < 2 * PEAK_T + 1:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.float32)
    logs = np.log(spec[:, MIN_BIN : MAX_BIN + 1] + 1e-6)
    size = (2 * PEAK_T + 1, 2 * PEAK_F + 1)
    local_max = ndimage.maximum_filter(logs, size=size, mode="nearest")
    prominence = logs - ndimage.uniform_filter(logs, size=size, mode="nearest")
    floor = float(logs.max()) - 9.0  # ~78 dB under the loudest bin: not silence, dither or codec noise
    t, f = np.nonzero((logs == local_max) & (prominence > 0.5) & (logs > floor))
    last_t, last_f = logs.shape[0] - 1, logs.shape[1] - 1
    peak = logs[t, f]
    dt = _vertex(logs[np.maximum(t - 1, 0), f], peak, logs[np.minimum(t + 1, last_t), f])
    df = _vertex(logs[t, np.maximum(f - 1, 0)], peak, logs[t, np.minimum(f + 1, last_f)])
    return t + dt, f + df + MIN_BIN, prominence[t, f]


def _vertex(before: np.ndarray, at: np.ndarray, after: np.ndarray) -> np.ndarray:
    """Where a parabola through three neighbouring log magnitudes peaks, relative to the middle one."""
    curve = before - 2 * at + after
    with np.errstate(divide="ignore", invalid="ignore"):
        off = np.where(curve < 0, 0.5 * (before - after) / curve, 0.0)
    return np.clip(off, -0.5, 0.5)


def _thin(t: np.ndarray, f: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep a peak when fewer than ``PEAKS_PER_S`` peaks within half a second either side of it are more
    prominent, in (time, bin) order. The window moves with the peak, so a copy cut at another point keeps the
    same peaks (a quota per clock second kept different ones)."""
    order = np.lexsort((f, t))
    t, f, p = t[order], f[order], p[order]
    n = t.size
    beaten = np.zeros(n, np.int64)
    half = FRAMES_PER_S / 2
    for step in range(1, n):
        a = np.arange(n - step)
        near = (t[a + step] - t[a]) <= half
        if not near.any():
            break
        a = a[near]
        beaten[a] += p[a + step] > p[a]
        beaten[a + step] += p[a] >= p[a + step]
    keep = beaten < PEAKS_PER_S
    return t[keep], f[keep]


def _landmarks(t: np.ndarray, f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pair every peak with the next ``FAN_OUT`` peaks within ``MAX_DT`` frames and ``MAX_DF`` bins; steps
    are rounded from the refined peak positions, the anchor's time to its frame."""
    hashes, times = [], []
    n = t.size
    count = np.zeros(n, np.int64)
    for step in range(1, min(8 * FAN_OUT, n)):  # a bounded look ahead: peaks are in time order
        a = np.arange(n - step)
        dt, df = np.rint(t[a + step] - t[a]).astype(np.int64), np.rint(f[a + step] - f[a]).astype(np.int64)
        ok = (dt > 0) & (dt <= MAX_DT) & (np.abs(df) <= MAX_DF)
        a, dt, df = a[ok], dt[ok], df[ok]
        free = count[a] < FAN_OUT
        a, dt, df = a[free], dt[free], df[free]
        count[a] += 1
        f1 = np.rint(f[a]).astype(np.uint32) & 0xFF
        hashes.append(f1 << 12 | (df + 32).astype(np.uint32) << 6 | dt.astype(np.uint32))
        times.append(np.rint(t[a]).astype(np.uint32))
    if not hashes:
        return np.zeros(0, np.uint32), np.zeros(0, np.uint32)
    h, tt = np.concatenate(hashes), np.concatenate(times)
    order = np.lexsort((h, tt))
    return h[order], tt[order]


def _sketch(spec: np.ndarray) -> np.ndarray:
    """Band energies in dB, ``SKETCH_HOP`` frames averaged (float32, frames x bands)."""
    power = spec.astype(np.float64) ** 2
    cums = np.cumsum(power, axis=1)
    lo, hi = _BAND_EDGES[:-1], _BAND_EDGES[1:]
    bands = (cums[:, hi - 1] - np.where(lo > 0, cums[:, lo - 1], 0.0)) / (hi - lo)
    m = bands.shape[0] // SKETCH_HOP
    bands = bands[: m * SKETCH_HOP].reshape(m, SKETCH_HOP, -1).mean(axis=1)
    return (10.0 * np.log10(bands + 1e-12)).astype(np.float32)


def _quantise(sketch_db: np.ndarray, top_db: float) -> np.ndarray:
    """0.5 dB steps above ``top_db`` - 127 dB (the file's loudest band), clamped to uint8."""
    q = np.round((sketch_db - (top_db - 255 * SKETCH_DB_STEP)) / SKETCH_DB_STEP)
    return np.clip(q, 0, 255).astype(np.uint8)


def _analyse(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(hashes, frames, sketch dB, spectrum's frame count) of a signal at ``SAMPLE_RATE``; frames relative."""
    spec = _spectrum(np.ascontiguousarray(y, dtype=np.float32))
    t, f, p = _peaks(spec)
    t, f = _thin(t, f, p)
    h, tt = _landmarks(t, f)
    return h, tt, _sketch(spec), spec.shape[0]




def _result(hashes: np.ndarray, times: np.ndarray, sketch_db: np.ndarray, seconds: float) -> Fingerprint:
    empty_sketch = np.zeros((0, SKETCH_BANDS), np.uint8)
    if seconds < MIN_DURATION_S:
        return Fingerprint("too_short", hashes[:0], times[:0], empty_sketch, seconds,
                           f"{seconds:.2f} s < {MIN_DURATION_S:g} s")
    if hashes.size < MIN_LANDMARKS:
        return Fingerprint("too_few_landmarks", hashes[:0], times[:0], empty_sketch, seconds,
                           f"{hashes.size} landmarks < {MIN_LANDMARKS} (near silence or a steady tone)")
    top = float(sketch_db.max()) if sketch_db.size else 0.0
    return Fingerprint("ok", hashes, times, _quantise(sketch_db, top), seconds)


def fingerprint_signal(y: np.ndarray, sr: int) -> Fingerprint:
    """The fingerprint of a mono signal held in memory (a clip the analysis decoded)."""
    if not np.isfinite(y).all():
        return failed("non-finite samples", y.size / sr)
    y11 = y if sr == SAMPLE_RATE else soxr.resample(y, sr, SAMPLE_RATE)
    h, t, sk, _ = _analyse(y11)
    return _result(h, t, sk, y.size / sr)


def fingerprint_chunks(read: Callable[[float, float], np.ndarray], duration_s: float) -> Fingerprint:
    """The fingerprint of a long signal read by ``read(offset_s, seconds)`` (mono, ``SAMPLE_RATE``) in
    ``CHUNK_FRAMES`` chunks. A chunk is read with a lead and a margin, so the peaks and targets near its edges
    are those the whole signal has, and keeps the landmarks anchored (and the sketch frames) in its own span."""
    hashes, times, sketches = [], [], []
    total = int(duration_s * FRAMES_PER_S)
    for start in range(0, max(total, 1), CHUNK_FRAMES):
        lead = min(start, 4 * SKETCH_HOP)  # >= PEAK_T, and sketch frames stay aligned
        first = start - lead
        offset_s = first * HOP / SAMPLE_RATE
        seconds = min(((lead + CHUNK_FRAMES + _MARGIN) * HOP + N_FFT) / SAMPLE_RATE, duration_s - offset_s)
        h, t, sk, _ = _analyse(read(offset_s, seconds))
        t = t.astype(np.int64) + first
        own = (t >= start) & (t < start + CHUNK_FRAMES)
        hashes.append(h[own])
        times.append(t[own].astype(np.uint32))
        sketches.append(sk[lead // SKETCH_HOP : (lead + CHUNK_FRAMES) // SKETCH_HOP])
    return _result(np.concatenate(hashes), np.concatenate(times), np.concatenate(sketches), duration_s)


def fingerprint_file(path: str | Path, duration_s: float | None = None) -> Fingerprint:
    """The fingerprint of a whole file, read in windows (``audio_io.load_audio``) when it is longer than a
    chunk, so memory stays bounded whatever its length; a decoder error is a ``failed`` fingerprint."""
    from m2ugen_data.audio_io import AudioDecodeError, load_audio, probe_audio

    try:
        if duration_s is None:
            duration_s = probe_audio(path).duration_s
        if duration_s is None or duration_s * FRAMES_PER_S <= CHUNK_FRAMES:
            y, sr = load_audio(path, sr=SAMPLE_RATE)
            return fingerprint_signal(y, sr)

        def read(offset_s: float, seconds: float) -> np.ndarray:
            return load_audio(path, sr=SAMPLE_RATE, offset_s=offset_s, duration_s=seconds)[0]

        return fingerprint_chunks(read, duration_s)
    except (AudioDecodeError, ValueError) as e:
        return failed(str(e).splitlines()[0][:200])


def feature_columns(fp: Fingerprint) -> dict[str, object]:
    """The ``features`` columns of a fingerprint (landmarks and sketch only when ok)."""
    return {
        "fp_version": VERSION,
        "fp_status": fp.status,
        "fp_landmarks": fp.pack_landmarks() if fp.ok else None,
        "fp_sketch": fp.sketch.tobytes() if fp.ok else None,
        "fp_tokens": pack_tokens(fp.tokens()) if fp.ok else None,
        "fp_seconds": fp.seconds,
    }


__all__ = ["FRAMES_PER_S", "Fingerprint", "SKETCH_BANDS", "VERSION", "candidate_tokens", "failed", "feature_columns",
           "from_columns",
           "fingerprint_chunks", "fingerprint_file", "fingerprint_signal", "unpack_landmarks", "unpack_sketch",
           "unpack_tokens"]
