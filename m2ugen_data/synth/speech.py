"""Synthetic talk for the "speech" trouble clip: a source-filter voice that a voice-activity detector hears.

The clip exists to exercise the music filter's speech rule, so what matters is that silero-vad (the
analyser's VAD) hears speech in it. The earlier babble (an impulse train through fixed band-passes, one
isolated syllable at a time) got a speech ratio under 0.15; this talker gets 0.9 or more. It is built from
phones: Rosenberg glottal pulses with jitter/shimmer and an F0 contour (declination over each phrase, a
pitch accent on stressed syllables); a cascade of five formant resonances whose F1-F3 glide between vowel
targets (Peterson & Barney) and consonant loci; stop closures with bursts and aspiration, fricative noise,
nasals and glides; syllables at about 4-5 a second in phrases separated by 200-400 ms pauses; a small room.
Levels are held per phone, formants move along straight lines between breakpoints, and the time-varying
vocal tract is applied in the STFT domain (one spectral envelope per hop) instead of as a per-sample
recursive filter, which keeps a 10 s clip at about 70 ms to render, a few music clips' worth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import signal

# Peterson & Barney (1952) adult-male averages, F1-F3 in Hz: i I E ae A O U u V 3r.
VOWELS = np.array(
    [
        (270, 2290, 3010),
        (390, 1990, 2550),
        (530, 1840, 2480),
        (660, 1720, 2410),
        (730, 1090, 2440),
        (570, 840, 2410),
        (440, 1020, 2240),
        (300, 870, 2240),
        (640, 1190, 2390),
        (490, 1350, 1690),
    ],
    dtype=np.float64,
)

# Consonants: (manner, F1-F3 locus, voiced, noise centre Hz, noise width in octaves).
CONSONANTS = {
    "p": ("stop", (250, 800, 2200), False, 900.0, 1.5),
    "t": ("stop", (250, 1800, 2700), False, 4500.0, 1.2),
    "k": ("stop", (250, 2000, 2500), False, 2200.0, 0.8),
    "b": ("stop", (250, 800, 2200), True, 900.0, 1.5),
    "d": ("stop", (250, 1800, 2700), True, 4000.0, 1.2),
    "g": ("stop", (250, 2000, 2500), True, 2000.0, 0.8),
    "s": ("fricative", (300, 1700, 2600), False, 6000.0, 0.5),
    "sh": ("fricative", (300, 1900, 2400), False, 3200.0, 0.6),
    "f": ("fricative", (300, 1100, 2300), False, 5000.0, 1.6),
    "z": ("fricative", (300, 1700, 2600), True, 6000.0, 0.5),
    "v": ("fricative", (300, 1100, 2300), True, 5000.0, 1.6),
    "h": ("aspirate", (0, 0, 0), False, 0.0, 0.0),  # takes the next vowel's formants
    "m": ("nasal", (280, 1000, 2200), True, 0.0, 0.0),
    "n": ("nasal", (280, 1600, 2600), True, 0.0, 0.0),
    "l": ("glide", (360, 1300, 2700), True, 0.0, 0.0),
    "r": ("glide", (420, 1300, 1600), True, 0.0, 0.0),
    "w": ("glide", (300, 700, 2200), True, 0.0, 0.0),
    "j": ("glide", (280, 2200, 3000), True, 0.0, 0.0),
}
ONSETS = tuple(CONSONANTS)
CODAS = ("t", "d", "k", "s", "z", "n", "m", "l", "r")
HOP = 256  # STFT hop (50 % overlap, Hann): the tract's spectral envelope changes every ~12 ms


@dataclass
class _Script:
    """The phone script as control tracks. Levels (voicing, noise, nasality) are held per phone and switch
    at phone edges; glides (formants, noise colour) are breakpoints joined by straight lines, which is how
    formants move from a consonant's locus to the next vowel's target."""

    levels: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    glides: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    phrases: list[tuple[float, float]] = field(default_factory=list)  # (start, end) s
    nuclei: list[tuple[float, float, float]] = field(default_factory=list)  # (start, end, pitch accent)

    def hold(self, name: str, t0: float, t1: float, value: float) -> None:
        self.levels.setdefault(name, []).append((t0, t1, value))

    def glide(self, name: str, t: float, value: float) -> None:
        self.glides.setdefault(name, []).append((t, value))

    def formants(self, t: float, f: np.ndarray) -> None:
        for k in range(3):
            self.glide(f"F{k + 1}", t, float(f[k]))

    def level(self, name: str, n: int, sr: int, ramp_s: float = 0.004) -> np.ndarray:
        """Per-sample level; a ``ramp_s`` moving average turns the steps into short ramps (no clicks)."""
        x = np.zeros(n)
        for t0, t1, value in self.levels.get(name, []):
            x[round(t0 * sr) : round(t1 * sr)] = value
        w = max(1, round(ramp_s * sr))
        c = np.cumsum(np.concatenate([np.zeros(w), x]))
        return (c[w:] - c[:-w]) / w

    def track(self, name: str, t: np.ndarray, default: float) -> np.ndarray:
        pts = sorted(self.glides.get(name, []))
        if not pts:
            return np.full(t.shape, default)
        times, values = zip(*pts)
        return np.interp(t, times, values)


def _vowel(rng: np.random.Generator, scale: float) -> np.ndarray:
    return VOWELS[int(rng.integers(len(VOWELS)))] * scale * rng.uniform(0.95, 1.05, 3)


def _consonant(sc: _Script, name: str, t: float, vowel: np.ndarray, scale: float, rng: np.random.Generator) -> float:
    """Write one consonant starting at ``t`` (next to ``vowel``) into the script; returns its end time."""
    manner, locus, voiced, fc, width = CONSONANTS[name]
    if manner == "stop":  # closure (silent, or a voice bar), burst, then aspiration if voiceless
        closure, burst = rng.uniform(0.04, 0.07), rng.uniform(0.008, 0.015)
        release = t + closure
        end = release + burst + (0.0 if voiced else rng.uniform(0.03, 0.06))
        if voiced:
            sc.hold("voice", t, release, 0.12)
        sc.hold("fric", release, release + burst, 0.5)
        sc.hold("asp", release + burst, end, 0.25)
        sc.glide("fc", release, fc)
        sc.glide("fw", release, width)
        sc.formants(release, np.asarray(locus) * scale)
        return end
    if manner == "aspirate":  # h: breath through the next vowel's tract
        end = t + rng.uniform(0.05, 0.09)
        sc.hold("asp", t, end, 0.3)
        sc.formants(t, vowel)
        return end
    end = t + (rng.uniform(0.07, 0.12) if manner == "fricative" else rng.uniform(0.05, 0.08))
    mid = 0.5 * (t + end)
    sc.formants(mid, np.asarray(locus) * scale)
    if manner == "fricative":
        sc.hold("fric", t, end, 0.2 if voiced else 0.35)
        sc.glide("fc", mid, fc)
        sc.glide("fw", mid, width)
        if voiced:
            sc.hold("voice", t, end, 0.25)
    else:
        sc.hold("voice", t, end, 0.35 if manner == "nasal" else 0.6)
        if manner == "nasal":
            sc.hold("nasal", t, end, 1.0)
    return end


def _script(duration: float, scale: float, rng: np.random.Generator) -> _Script:
    """Phrases of 5-13 syllables ((C)(C)V(C), about 4-5 a second, a third stressed) with 200-400 ms pauses."""
    sc = _Script()
    t = rng.uniform(0.05, 0.3)
    while t < duration:
        start = t
        for _ in range(int(rng.integers(5, 14))):
            vowel = _vowel(rng, scale)
            for _ in range(int(rng.choice(3, p=[0.15, 0.7, 0.15]))):
                t = _consonant(sc, str(rng.choice(ONSETS)), t, vowel, scale, rng)
            stressed = rng.uniform() < 0.35
            dur = rng.uniform(0.09, 0.16) * (1.4 if stressed else 1.0)
            glide_to = vowel if rng.uniform() < 0.7 else _vowel(rng, scale)  # the rest are diphthongs
            sc.formants(t + 0.3 * dur, vowel)
            sc.formants(t + 0.7 * dur, 0.5 * (vowel + glide_to))
            sc.hold("voice", t, t + dur, 1.0 if stressed else 0.75)
            sc.nuclei.append((t, t + dur, rng.uniform(0.08, 0.22) if stressed else rng.uniform(-0.03, 0.05)))
            t += dur
            if rng.uniform() < 0.35:
                t = _consonant(sc, str(rng.choice(CODAS)), t, vowel, scale, rng)
        sc.phrases.append((start, t))
        t += rng.uniform(0.2, 0.4)
    return sc


def _f0(t: np.ndarray, base: float, sc: _Script, rng: np.random.Generator) -> np.ndarray:
    """Declination over each phrase, a pitch accent on stressed syllables, slow drift; built at a 200 Hz
    control rate and interpolated to samples."""
    tc = np.arange(0.0, t[-1] + 0.01, 0.005)
    contour = np.zeros_like(tc)
    for a, b in sc.phrases:
        inside = (tc >= a - 0.1) & (tc < b + 0.45)
        contour[inside] = 0.12 - 0.25 * np.clip((tc[inside] - a) / (b - a), 0, 1)
    for a, b, accent in sc.nuclei:
        contour += accent * np.exp(-0.5 * ((tc - 0.5 * (a + b)) / 0.07) ** 2)
    drift = signal.sosfiltfilt(signal.butter(2, 3.0, fs=200, output="sos"), rng.normal(0, 1, tc.size + 20))[: tc.size]
    contour += 0.04 * drift / (np.std(drift) + 1e-9)
    return base * np.exp(np.interp(t, tc, contour))


def _glottal_source(f0: np.ndarray, sr: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Rosenberg flow pulses (derivative: the flow's closure is the excitation) and the open-phase mask,
    with cycle-to-cycle jitter (~1 %) and shimmer (~6 %)."""
    cycles = int(np.sum(f0) / sr) + 2
    jitter = 1 + 0.01 * rng.normal(0, 1, cycles)
    shimmer = 1 + 0.06 * rng.normal(0, 1, cycles)
    phase0 = np.cumsum(f0) / sr
    phase = np.cumsum(f0 * jitter[phase0.astype(np.int64)]) / sr
    k = phase.astype(np.int64)
    x = phase - k
    open_q = rng.uniform(0.55, 0.7)
    tp, tn = 0.7 * open_q, 0.3 * open_q
    closing = np.where(x < tp + tn, np.cos(0.5 * np.pi * (x - tp) / tn), 0.0)
    flow = np.where(x < tp, 0.5 * (1 - np.cos(np.pi * x / tp)), closing)
    flow *= shimmer[np.minimum(k, cycles - 1)]
    return np.diff(flow, prepend=0.0) * (sr / 100.0), (x < tp + tn).astype(np.float64)


def _formant_envelope(freqs: np.ndarray, formants: np.ndarray, bandwidths: np.ndarray) -> np.ndarray:
    """Magnitude of a cascade of second-order resonators (unit gain at DC, as in a Klatt cascade), per frame.

    ``formants`` and ``bandwidths`` are (frames, K); returns (bins, frames)."""
    f = freqs.astype(np.float32)[:, None, None]
    fk, bk = formants.astype(np.float32)[None], 0.5 * bandwidths.astype(np.float32)[None]
    mag = (fk**2 + bk**2) / np.sqrt(((f - fk) ** 2 + bk**2) * ((f + fk) ** 2 + bk**2))
    return np.prod(mag, axis=2)


def speech_like(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of one synthetic talker: phrases of syllables with pauses, in a small room."""
    n_out, n = n, max(n, 2 * HOP)  # the STFT needs one whole frame; a shorter clip is cut from a longer one
    female = rng.uniform() < 0.5
    base = rng.uniform(170, 220) if female else rng.uniform(100, 135)
    scale = rng.uniform(1.12, 1.2) if female else rng.uniform(0.95, 1.05)  # shorter vocal tract
    sc = _script(n / sr, scale, rng)
    t = np.arange(n) / sr

    pulses, open_phase = _glottal_source(_f0(t, base, sc, rng), sr, rng)
    breath = rng.normal(0, 1, n) * open_phase * 0.04
    tract_in = (pulses + breath) * sc.level("voice", n, sr) + rng.normal(0, 0.5, n) * sc.level("asp", n, sr)
    fric_in = rng.normal(0, 1, n) * sc.level("fric", n, sr)

    freqs, frames, tract_spec = signal.stft(tract_in, sr, nperseg=2 * HOP, noverlap=HOP)
    fric_spec = signal.stft(fric_in, sr, nperseg=2 * HOP, noverlap=HOP)[2]
    formants = np.column_stack(
        [sc.track(f"F{k + 1}", frames, d * scale) for k, d in enumerate((500.0, 1500.0, 2500.0))]
        + [np.full(frames.size, f * scale) for f in (3500.0, 4500.0)]
    )
    formants = np.minimum(formants, 0.48 * sr)
    bandwidths = np.column_stack([50 + 0.06 * formants[:, 0], 60 + 0.05 * formants[:, 1], 100 + 0.04 * formants[:, 2]])
    bandwidths = np.column_stack([bandwidths, np.full((frames.size, 2), (250.0, 300.0))])
    tract = _formant_envelope(freqs, formants, bandwidths)
    nasal = sc.level("nasal", n, sr)[np.minimum((frames * sr).astype(np.int64), n - 1)]
    tract /= np.sqrt(1.0 + nasal[None, :] * (freqs[:, None] / 350.0) ** 4)  # nasal murmur: lows only
    fc = np.minimum(sc.track("fc", frames, 4000.0), 0.45 * sr)
    octaves = np.log2(np.maximum(freqs, 50.0)[:, None] / fc[None, :])
    fric_shape = np.exp(-0.5 * (octaves / sc.track("fw", frames, 1.0)[None, :]) ** 2)
    y = signal.istft(tract_spec * tract + fric_spec * fric_shape, sr, nperseg=2 * HOP, noverlap=HOP)[1][:n]

    m = int(rng.uniform(0.2, 0.4) * sr)  # room: exponentially decaying noise, RT60 200-400 ms, 14 dB down
    ir = rng.normal(0, 1, m) * np.exp(-6.9 * np.arange(m) / m)
    wet = signal.fftconvolve(y, ir)[:n]
    y = y + wet * (0.2 * np.std(y) / (np.std(wet) + 1e-12))
    return y[:n_out].astype(np.float32)
