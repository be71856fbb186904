"""Timbres of the synthetic corpus: one function per instrument that renders one note as samples.

Each timbre is a cheap physical or additive model chosen so that the instrument families sound distinct
to both ears and feature extractors (plucked strings decay with a darkening tone, a piano has inharmonic
partials, an organ sustains, brass brightens with loudness, a flute breathes, a distorted guitar is
saturated). Every note function has the same signature so the renderer can treat timbres as data.
All are vectorised numpy except the Karplus-Strong string, whose feedback loop is compiled with numba.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
from scipy import signal

NoteFn = Callable[[float, int, int, np.random.Generator], np.ndarray]
"""``(freq_hz, n_samples, sample_rate, rng) -> float32 samples``; ``n_samples`` includes the release."""


@dataclass(frozen=True)
class Timbre:
    name: str
    label_id: str  # the most specific fitting AudioSet label (ontology mid)
    label_name: str
    note: NoteFn
    percussive: bool  # struck/plucked: harmony re-strikes on beats instead of sustaining the bar
    release_s: float  # how long a note rings after its nominal end


@functools.lru_cache(maxsize=4096)
def butter_sos(order: int, cutoff: float | tuple[float, float], btype: str, sr: int) -> np.ndarray:
    """Butterworth sections, cached: a corpus designs the same few filters thousands of times."""
    return signal.butter(order, cutoff, btype, fs=sr, output="sos")


def _t(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _adsr(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack to 1, hold, linear release over the last ``release`` seconds."""
    env = np.ones(n)
    a = min(n, max(1, int(attack * sr)))
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    r = min(n - a, int(release * sr))
    if r > 0:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def _harmonics(freq: float, sr: int, k_max: int) -> np.ndarray:
    """Harmonic numbers 1..k_max that stay below Nyquist (no aliasing in additive voices)."""
    k = np.arange(1, k_max + 1, dtype=np.float64)
    return k[k * freq < 0.45 * sr]


@numba.njit(cache=True)
def _karplus_strong(excitation: np.ndarray, n: int, period: float, damping: float) -> np.ndarray:
    """Karplus-Strong with a linearly interpolated fractional delay, so pitch is exact at any rate."""
    y = np.zeros(n)
    d = int(period)
    frac = period - d
    for i in range(n):
        x = excitation[i] if i < excitation.shape[0] else 0.0
        j = i - d
        fb = 0.0
        if j - 1 >= 0:
            a = (1.0 - frac) * y[j] + frac * y[j - 1]
            b = (1.0 - frac) * y[j - 1] + (frac * y[j - 2] if j - 2 >= 0 else 0.0)
            fb = damping * 0.5 * (a + b)
        y[i] = x + fb
    return y


def plucked(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    period = sr / freq - 0.5  # the two-point average adds half a sample of delay
    burst = rng.uniform(-1.0, 1.0, int(period) + 1)
    burst = signal.lfilter([0.6, 0.4], [1.0], burst)  # softer pick: less fizz
    damping = 0.996 ** (freq / 220.0) if freq > 220 else 0.998
    y = _karplus_strong(burst, n, period, damping)
    y *= _adsr(n, sr, 0.001, 0.05)
    return _unit(y)


def piano(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(n, sr)
    k = _harmonics(freq, sr, 12)
    b = 4e-4 * (freq / 440.0)  # stiffness: stretched partials, larger for shorter upper strings
    fk = freq * k * np.sqrt(1.0 + b * k * k)
    fk = fk[fk < 0.45 * sr]
    k = k[: fk.size]
    amp = 1.0 / k**1.5
    decay = (1.2 + 0.7 * k) * (freq / 262.0) ** 0.4
    phases = rng.uniform(0, 2 * np.pi, k.size)
    y = (amp[:, None] * np.exp(-decay[:, None] * t) * np.sin(2 * np.pi * fk[:, None] * t + phases[:, None])).sum(0)
    hammer = rng.normal(0, 0.3, min(n, int(0.004 * sr)))
    y[: hammer.size] += hammer
    return _unit(y * _adsr(n, sr, 0.002, 0.12))


def organ(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(n, sr)
    # Drawbars 8', 4', 2 2/3', 2', 1'. The quint (2 2/3') is kept low: loud fifths pull key estimates to
    # the dominant.
    ratios = np.array([1.0, 2.0, 3.0, 4.0, 8.0])
    amps = np.array([1.0, 0.7, 0.12, 0.35, 0.15])
    keep = ratios * freq < 0.45 * sr
    tremolo = 1.0 + 0.08 * np.sin(2 * np.pi * 6.2 * t)
    y = (amps[keep, None] * np.sin(2 * np.pi * freq * ratios[keep, None] * t)).sum(0)
    return _unit(y * tremolo * _adsr(n, sr, 0.01, 0.06))


def pad(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Detuned sawtooth pair, low-passed, with a slow swell: the classic synthesizer pad."""
    t = _t(n, sr)
    y = np.zeros(n)
    for detune in (0.996, 1.004):
        phase = (freq * detune * t + rng.uniform()) % 1.0
        y += 2.0 * phase - 1.0
    sos = butter_sos(2, min(0.45 * sr, 6.0 * freq + 400.0), "low", sr)
    y = signal.sosfilt(sos, y)
    return _unit(y * _adsr(n, sr, 0.12, 0.3))


def brass(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Harmonic k rises as env**(1+0.5k): louder means brighter, the signature of lip-reed brass."""
    t = _t(n, sr)
    env = _adsr(n, sr, 0.05, 0.08) * (1.0 - 0.15 * np.minimum(t / 0.3, 1.0))
    k = _harmonics(freq, sr, 14)
    vib = 1.0 + 0.004 * np.sin(2 * np.pi * 5.0 * t) * np.minimum(t / 0.4, 1.0)
    phase = 2 * np.pi * freq * np.cumsum(vib) / sr
    y = ((env[None, :] ** (1.0 + 0.5 * k[:, None])) / k[:, None] ** 0.6 * np.sin(k[:, None] * phase)).sum(0)
    return _unit(y)


def flute(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(n, sr)
    vib = 1.0 + 0.005 * np.sin(2 * np.pi * 5.2 * t) * np.minimum(t / 0.3, 1.0)
    phase = 2 * np.pi * freq * np.cumsum(vib) / sr
    y = np.sin(phase) + 0.18 * np.sin(2 * phase) + 0.05 * np.sin(3 * phase)
    lo, hi = 0.8 * freq, min(0.45 * sr, 2.5 * freq)
    breath = signal.sosfilt(butter_sos(2, (lo, hi), "band", sr), rng.normal(0, 1, n))
    y = y + 0.35 * breath / (np.abs(breath).max() + 1e-9)
    return _unit(y * _adsr(n, sr, 0.06, 0.08))


def distorted_guitar(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A plucked string driven into a soft clipper and a cabinet-like low-pass."""
    y = plucked(freq, n, sr, rng)
    y = np.tanh(8.0 * y)
    y = signal.sosfilt(butter_sos(2, min(0.45 * sr, 4500.0), "low", sr), y)
    return _unit(y * _adsr(n, sr, 0.002, 0.05))


def bass_guitar(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(n, sr)
    k = _harmonics(freq, sr, 6)
    amp = 1.0 / k**1.5
    decay = 1.5 + 1.2 * k
    y = (amp[:, None] * np.exp(-decay[:, None] * t) * np.sin(2 * np.pi * freq * k[:, None] * t)).sum(0)
    return _unit(y * _adsr(n, sr, 0.004, 0.06))


def synth_bass(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(n, sr)
    phase = (freq * t) % 1.0
    y = (2.0 * phase - 1.0) + np.sin(2 * np.pi * freq * t)  # saw plus sub: no square-wave fifths
    y = signal.sosfilt(butter_sos(2, min(0.45 * sr, 4.0 * freq), "low", sr), y)
    return _unit(y * _adsr(n, sr, 0.005, 0.05))


def synth_lead(freq: float, n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    t = _t(n, sr)
    phase = (freq * t) % 1.0
    y = (2.0 * phase - 1.0) + 0.6 * np.where(((freq * 1.003 * t) % 1.0) < 0.5, 1.0, -1.0)
    y = signal.sosfilt(butter_sos(2, min(0.45 * sr, 3500.0), "low", sr), y)
    return _unit(y * _adsr(n, sr, 0.01, 0.06))


def _unit(y: np.ndarray) -> np.ndarray:
    peak = np.abs(y).max()
    return (y / peak if peak > 0 else y).astype(np.float32)


TIMBRES: dict[str, Timbre] = {
    t.name: t
    for t in (
        Timbre("acoustic_guitar", "/m/042v_gx", "Acoustic guitar", plucked, True, 0.6),
        Timbre("piano", "/m/05r5c", "Piano", piano, True, 0.5),
        Timbre("organ", "/m/013y1f", "Organ", organ, False, 0.06),
        Timbre("synth_pad", "/m/0l14qv", "Synthesizer", pad, False, 0.3),
        Timbre("brass", "/m/01kcd", "Brass instrument", brass, False, 0.08),
        Timbre("flute", "/m/0l14j_", "Flute", flute, False, 0.08),
        Timbre("electric_guitar", "/m/02sgy", "Electric guitar", distorted_guitar, True, 0.3),
        Timbre("bass_guitar", "/m/018vs", "Bass guitar", bass_guitar, True, 0.1),
        Timbre("synth_bass", "/m/0l14qv", "Synthesizer", synth_bass, True, 0.05),
        Timbre("synth_lead", "/m/0l14qv", "Synthesizer", synth_lead, False, 0.06),
    )
}
BASS_TIMBRES = ("bass_guitar", "synth_bass")
HARMONY_TIMBRES = ("piano", "organ", "synth_pad", "acoustic_guitar", "electric_guitar")
LEAD_TIMBRES = ("flute", "brass", "piano", "acoustic_guitar", "electric_guitar", "synth_lead", "organ")

DRUM_KIT = ("/m/02hnl", "Drum kit")


@dataclass(frozen=True)
class DrumKit:
    """Tuning of one kit: siblings may get a different kit, like a different drummer."""

    kick_hz: float
    snare_hz: float
    hat_cutoff_hz: float


def drum_kit(rng: np.random.Generator) -> DrumKit:
    return DrumKit(float(rng.uniform(45, 60)), float(rng.uniform(170, 230)), float(rng.uniform(6000, 8000)))


def drum_sounds(kit: DrumKit, sr: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """One sample per drum voice; hits are copies of these, scaled by velocity."""
    t = _t(int(0.5 * sr), sr)
    sweep = kit.kick_hz + 110.0 * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / 0.12)
    kick[: int(0.002 * sr)] += rng.normal(0, 0.4, int(0.002 * sr))

    ts = t[: int(0.25 * sr)]
    noise = signal.sosfilt(butter_sos(2, (1500, min(0.45 * sr, 9000)), "band", sr), rng.normal(0, 1, ts.size))
    snare = 0.8 * noise / np.abs(noise).max() * np.exp(-ts / 0.06) + 0.6 * np.sin(
        2 * np.pi * kit.snare_hz * ts
    ) * np.exp(-ts / 0.04)

    th = t[: int(0.12 * sr)]
    hp = butter_sos(4, min(kit.hat_cutoff_hz, 0.45 * sr), "high", sr)
    hat = signal.sosfilt(hp, rng.normal(0, 1, th.size)) * np.exp(-th / 0.02)

    tc = _t(int(1.5 * sr), sr)
    crash = signal.sosfilt(butter_sos(2, 4000, "high", sr), rng.normal(0, 1, tc.size)) * np.exp(-tc / 0.5)
    return {name: _unit(x) for name, x in (("kick", kick), ("snare", snare), ("hat", hat), ("crash", crash))}
