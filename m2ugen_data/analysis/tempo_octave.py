"""Tempo octave correction: keep, halve, double or take two-thirds of the DBN's beat grid, on evidence.

madmom's downbeat RNN + DBN (``rhythm.decode_rhythm``) gets the beat grid right up to its octave: on the
General-MIDI dev set its tempo is within 4 % for 81 % of clips but at x2, /2 or x1.5 of the truth for the
rest (slow ballads with running eighths decoded at double tempo, fast drumless tunes and fast waltzes at
half, a few triplet-grouped duple pieces at 3/2). Each candidate grid gets a score from evidence that costs
~3 ms on top of the activations the rhythm analyser already has:

- **beat**: the beat activations on the candidate grid. Doubling: the midpoints between decoded beats fire
  (ratio to the beats); halving: one phase of alternate beats is much weaker than the other.
- **bar**: the same read from the downbeat activations. Doubling: the middle of each decoded bar fires like
  a downbeat; halving: every other decoded downbeat is weak.
- **comb**: madmom's comb-filter tempo histogram of the same activations, a second estimator: its mass at
  the candidate tempo relative to the decoded one. This is what licenses two-thirds, which has no grid
  reading of its own (on the dev set the comb never preferred 2/3 of a correctly decoded tempo).
- **prior**: a broad log-normal tempo prior (centre 130 bpm, 1 octave).

Scores are linear in the evidence (``OctaveRule``); the winner's softmax probability scales the confidence.
Figures (bench/bench_rhythm_harmony.py; Acc1 within 4 %, Acc2 also at x2, x3, /2, /3; beat and downbeat
F-measure, mir_eval, 70 ms; rule tuned on the 106 dev clips only, the 94 test clips held out):

==============================  =====================  =====================
                                dev  Acc1  Acc2  beatF  test Acc1 Acc2  beatF
==============================  =====================  =====================
DBN as decoded (baseline)        0.811 0.943 0.921      0.787 1.000 0.877
this module (DEFAULT_RULE)       0.915 1.000 0.968      0.894 1.000 0.912
==============================  =====================  =====================

Downbeat F: 0.842 -> 0.860 (dev), 0.727 -> 0.738 (test). Tried and not kept, tuned the same way (dev Acc1):
the 2019 multi-task TCN's tempo classes alone (argmax: 0.311; it prefers 60-90 bpm and halves nearly every
fast piece) and as evidence (no gain over beat + bar + comb, 0.915, for +0.2-0.3 s per clip); the prior
alone (0.821); the MusiCNN "fast"/"slow" tags (0.877 with prior + beat vs 0.868 without; no gain on top
of the chosen evidence, weight tuned to 0). The ``tcn`` and ``tags`` inputs stay so that evidence can be
re-measured (``correct_tempo(models=load_tempo_models(tcn=True))``), but the default rule gives them no
weight, so analysis need not run the TCN.

Caveats: the dev set has ~45 pieces (siblings share a tempo), so each fixed error is a piece, not a clip;
the prior's centre reflects that set's tempo spread (55-190 bpm), higher than typical recorded pop; and
``TWO_THIRDS_METER`` is an assumption (all 3:2 errors seen were 4/4 pieces grouped in threes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from m2ugen_data.analysis.rhythm import FPS, MIN_BEATS, SAMPLE_RATE, Rhythm

VERSION = "octave1:beat+bar+comb"  # bump when the evidence, the rule or the bookkeeping changes
FACTORS = (0.5, 2 / 3, 1.0, 2.0)  # candidate grids relative to the decoded one
KEEP = 2  # index of the decoded grid in FACTORS
METHODS = ("octave:half", "octave:two-thirds", "dbn", "octave:double")  # tempo_method per candidate
MIN_BPM = 40.0
MAX_BPM = 250.0
PEAK_RADIUS = 2  # frames either side of a position where its activation peak is looked for
TEMPO_TOL = 0.04  # relative tempo window when reading a histogram at a candidate (mir_eval's Acc1 width)
EPS = 1e-3  # floor of a histogram strength before its log: "no support" is a finite penalty
CLEAR_P = 0.7  # a winner at least this probable keeps the rhythm's confidence (see decide)
TWO_THIRDS_METER = 4  # a 3:2 error groups a duple meter's beats in threes: two decoded 3-bars = one 4-bar


@dataclass(frozen=True)
class TempoDecision:
    tempo_bpm: float | None
    beats: np.ndarray  # seconds, on the chosen grid
    downbeats: np.ndarray  # seconds
    method: str  # one of METHODS; "none" without a tempo
    conf: float  # 0..1: the rhythm's confidence, lowered when the chosen grid did not win clearly
    meter: int | None  # beats per bar on the returned grid (what chord_change_rate and the meter column want)


@dataclass(frozen=True)
class TempoModels:
    tcn: object | None  # madmom TCNBeatProcessor (beat + tempo-class outputs); None: not used


@dataclass(frozen=True)
class OctaveRule:
    """How the evidence is weighed into each candidate's score. The defaults are the rule tuned on the GM dev
    split (bench/bench_rhythm_harmony.py --tune, variant prior+beat+bar+comb), an interior optimum: one grid
    step either way on any field costs 1-10 dev clips."""

    prior_bpm: float = 130.0  # centre of the log-normal tempo prior
    prior_octaves: float = 1.0  # its spread (standard deviation, in octaves)
    w_prior: float = 1.0
    w_beat: float = 4.0  # beat-level support (0..1) ...
    t_beat: float = 0.4  # ... counted above this level
    w_bar: float = 4.0  # downbeat-level support (0..1) ...
    t_bar: float = 0.7  # ... counted above this level
    w_comb: float = 1.0
    w_tcn: float = 0.0
    w_tags: float = 0.0
    bias_change: float = 0.0  # any other grid must beat the decoded one by this much ...
    bias_two_thirds: float = 0.0  # ... and two-thirds (no grid reading of its own) by this much more


DEFAULT_RULE = OctaveRule()


@dataclass(frozen=True)
class OctaveEvidence:
    """Per candidate (``FACTORS``); the KEEP entry of each relative array is 0.

    ``prior_z``: log2 of the candidate tempo (the prior is applied in ``scores`` so it can be tuned);
    ``beat``: how much the beat activations support the change (0..1: for doubling, how strongly the
    midpoints between beats fire relative to the beats; for halving, how much weaker one phase of the beats
    is than the other); ``bar``: the same read from the downbeat activations (doubling: the middle of each
    decoded bar fires like a downbeat; halving: every other decoded downbeat is weak); ``comb``: log
    strength in madmom's comb-filter tempo histogram of the same activations, relative to the decoded tempo;
    ``tcn``: likewise for the 2019 multi-task TCN's tempo classifier; ``tags``: the tagger's fast-minus-slow
    probability times log2(factor). None: that evidence was not available."""

    prior_z: np.ndarray
    beat: np.ndarray
    bar: np.ndarray
    comb: np.ndarray
    tcn: np.ndarray | None
    tags: np.ndarray | None

    def scores(self, rule: OctaveRule) -> np.ndarray:
        """Each candidate's score (-inf outside MIN_BPM..MAX_BPM). Works on stacked evidence too (arrays of
        shape (clips, candidates)), which is how the bench scores thousands of rules quickly."""
        change = np.arange(len(FACTORS)) != KEEP
        octave = np.isin(np.asarray(FACTORS), (0.5, 2.0))  # the candidates with beat and bar readings
        prior = -0.5 * ((self.prior_z - math.log2(rule.prior_bpm)) / rule.prior_octaves) ** 2
        s = rule.w_prior * (prior - prior[..., KEEP : KEEP + 1])
        s = s + rule.w_beat * (self.beat - rule.t_beat * octave) + rule.w_bar * (self.bar - rule.t_bar * octave)
        s = s + rule.w_comb * self.comb - rule.bias_change * change - rule.bias_two_thirds * (change & ~octave)
        if self.tcn is not None:
            s = s + rule.w_tcn * self.tcn
        if self.tags is not None:
            s = s + rule.w_tags * self.tags
        tempi = np.exp2(self.prior_z)
        return np.where((tempi >= MIN_BPM) & (tempi <= MAX_BPM), s, -np.inf)


def load_tempo_models(tcn: bool = True) -> TempoModels:
    """Load once per process (ONNX sessions pinned to one thread, as in ``rhythm.load_rhythm_models``).
    The default rule gives the TCN no weight: load it to re-measure its evidence, not to analyse."""
    if not tcn:
        return TempoModels(None)
    from madmom.features.beats import TCNBeatProcessor

    return TempoModels(TCNBeatProcessor(tasks=(0, 1), intra_op_num_threads=1))


def tcn_tempo_probs(y44: np.ndarray, models: TempoModels) -> np.ndarray | None:
    """The TCN's tempo-class probabilities (index = bpm, 0..299), or None without the model or audio."""
    from madmom.audio.signal import Signal

    y = np.asarray(y44, dtype=np.float32).reshape(-1)
    if models.tcn is None or y.size < SAMPLE_RATE or not np.isfinite(y).all():
        return None
    _, tempo = models.tcn(Signal(y, sample_rate=SAMPLE_RATE))
    probs = np.asarray(tempo, dtype=np.float64).reshape(-1)
    return probs if probs.size and np.isfinite(probs).all() else None


# --------------------------------------------------------------------------- evidence


def octave_evidence(
    act: np.ndarray,
    rhythm: Rhythm,
    tcn_probs: np.ndarray | None = None,
    tags: Mapping[str, float] | None = None,
) -> OctaveEvidence | None:
    """The evidence for each candidate grid; None when the rhythm has no tempo or the activations are bad."""
    act = np.asarray(act, dtype=np.float64)
    tempo = rhythm.tempo_bpm
    beats = np.asarray(rhythm.beats, dtype=np.float64)
    if (
        tempo is None
        or not math.isfinite(tempo)
        or tempo <= 0
        or beats.size < MIN_BEATS
        or act.ndim != 2
        or act.shape[1] != 2
        or act.shape[0] == 0
        or not np.isfinite(act).all()
    ):
        return None
    factors = np.asarray(FACTORS)
    tempi = tempo * factors
    return OctaveEvidence(
        prior_z=np.log2(tempi),
        beat=_beat_support(_peaks(act.sum(axis=1)), beats),
        bar=_bar_support(_peaks(act[:, 1]), np.asarray(rhythm.downbeats, dtype=np.float64)),
        comb=_comb_support(act.sum(axis=1), tempi),
        tcn=None if tcn_probs is None else _histogram_support(tcn_probs, np.arange(tcn_probs.size), tempi),
        tags=_tag_support(tags, factors),
    )


def _peaks(curve: np.ndarray) -> np.ndarray:
    """Running maximum over ±PEAK_RADIUS frames: a beat a frame or two off its peak still reads it."""
    from scipy.ndimage import maximum_filter1d

    return maximum_filter1d(curve, size=2 * PEAK_RADIUS + 1, mode="nearest")


def _at(peak: np.ndarray, times: np.ndarray) -> float:
    times = times[(times >= 0) & (times * FPS <= peak.size - 1)]
    if times.size == 0:
        return 0.0
    return float(peak[np.round(times * FPS).astype(np.int64)].mean())


def _ratio(num: float, den: float) -> float:
    return float(np.clip(num / den, 0.0, 1.0)) if den > 0 else 0.0


def _beat_support(peak: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Scale-free support for each candidate from the beat activations (the network fires on the beats it
    was trained on and stays low between them). Doubling: activation at the midpoints / at the beats.
    Halving: 1 - weaker phase / stronger phase of alternate beats. Two-thirds has no grid reading here."""
    on = _at(peak, beats)
    mids = _at(peak, (beats[:-1] + beats[1:]) / 2)
    even, odd = _at(peak, beats[0::2]), _at(peak, beats[1::2])
    half = 1.0 - _ratio(min(even, odd), max(even, odd))
    return np.array([half, 0.0, 0.0, _ratio(mids, on)])


def _bar_support(peak: np.ndarray, downbeats: np.ndarray) -> np.ndarray:
    """The same from the downbeat activations. Doubling: the middle of each decoded bar fires like a
    downbeat (the decoded bar holds two real ones). Halving: every other decoded downbeat is weak (a real
    bar spans two decoded ones). Zero without two downbeats."""
    if downbeats.size < 2:
        return np.zeros(len(FACTORS))
    on = _at(peak, downbeats)
    mid = _at(peak, downbeats + float(np.median(np.diff(downbeats))) / 2)
    even, odd = _at(peak, downbeats[0::2]), _at(peak, downbeats[1::2])
    half = 1.0 - _ratio(min(even, odd), max(even, odd))
    return np.array([half, 0.0, 0.0, _ratio(mid, on)])


def _comb_support(curve: np.ndarray, tempi: np.ndarray) -> np.ndarray:
    """Log strength of each candidate tempo in madmom's comb-filter tempo histogram (a second estimator
    reading the same activations: it agrees with the DBN's octave or favours another)."""
    from madmom.features.tempo import CombFilterTempoHistogramProcessor, smooth_histogram

    proc = CombFilterTempoHistogramProcessor(min_bpm=MIN_BPM / 1.1, max_bpm=MAX_BPM * 1.1, fps=FPS)
    strengths, intervals = smooth_histogram(proc(curve), 9)
    bpm = 60.0 * FPS / np.asarray(intervals, dtype=np.float64)
    return _histogram_support(np.asarray(strengths, dtype=np.float64), bpm, tempi)


def _histogram_support(strengths: np.ndarray, bpm: np.ndarray, tempi: np.ndarray) -> np.ndarray:
    """Log of the histogram's mass within ±TEMPO_TOL of each candidate tempo (normalised to sum 1),
    relative to the KEEP candidate."""
    total = float(strengths.sum())
    if total <= 0 or not np.isfinite(total):
        return np.zeros(len(tempi))
    norm = strengths / total
    mass = np.array([norm[np.abs(bpm / t - 1.0) <= TEMPO_TOL].sum() for t in tempi])
    logs = np.log(mass + EPS)
    return logs - logs[KEEP]


def _tag_support(tags: Mapping[str, float] | None, factors: np.ndarray) -> np.ndarray | None:
    """``log2(factor) x (P(fast) - P(slow))``: a tagger hearing "fast" pushes towards doubling and away
    from halving; None unless both tags are present and finite."""
    if tags is None:
        return None
    fast, slow = tags.get("fast"), tags.get("slow")
    if fast is None or slow is None or not (math.isfinite(fast) and math.isfinite(slow)):
        return None
    return np.log2(factors) * (float(fast) - float(slow))


# --------------------------------------------------------------------------- decision and bookkeeping


def decide(
    evidence: OctaveEvidence | None, rhythm: Rhythm, rule: OctaveRule = DEFAULT_RULE, act: np.ndarray | None = None
) -> TempoDecision:
    """Pick the candidate grid with the best score and rewrite beats, downbeats and meter onto it.

    The confidence is the rhythm's, scaled down when the winner's softmax probability among the allowed
    candidates is below CLEAR_P (on the dev split, decisions at p >= 0.7 were right 97 % of the time, at
    p < 0.5 only 64 %). ``act`` (the activations) picks the bar phase when halving; optional."""
    if evidence is None or rhythm.tempo_bpm is None:
        return TempoDecision(None, rhythm.beats, rhythm.downbeats, "none", 0.0, rhythm.meter)
    scores = evidence.scores(rule)
    best = int(np.argmax(scores))
    finite = scores[np.isfinite(scores)]
    p_best = float(1.0 / np.exp(finite - finite.max()).sum())
    grid = regrid(rhythm, FACTORS[best], act)
    conf = float(rhythm.tempo_conf) * min(1.0, p_best / CLEAR_P)
    return TempoDecision(grid.tempo_bpm, grid.beats, grid.downbeats, METHODS[best], conf, grid.meter)


def regrid(rhythm: Rhythm, factor: float, act: np.ndarray | None = None) -> Rhythm:
    """The decoded rhythm moved onto the grid at ``factor`` x its tempo (one of FACTORS).

    Doubling interpolates a beat between every two; halving keeps every other beat, on the phase that holds
    the decoded downbeats; two-thirds puts a beat every 1.5 decoded beats (interpolated), anchored on the
    first downbeat. Downbeats then fall every ``meter`` beats of the new grid, on the phase of the decoded
    downbeats: the meter stays (a decoded bar at half tempo holds two real bars, at double tempo half of
    one), except for two-thirds, whose meter is TWO_THIRDS_METER."""
    beats = np.asarray(rhythm.beats, dtype=np.float64)
    downbeats = np.asarray(rhythm.downbeats, dtype=np.float64)
    meter = rhythm.meter
    if factor == 2.0:
        beats = np.sort(np.concatenate([beats, (beats[:-1] + beats[1:]) / 2]))
    elif factor == 0.5:
        on_phase = [np.isin(beats[p::2], downbeats).sum() for p in (0, 1)]
        beats = beats[int(on_phase[1] > on_phase[0]) :: 2]
    elif factor != 1.0:
        beats = _stretch(beats, downbeats, 1.0 / factor)
        meter = TWO_THIRDS_METER
    if factor != 1.0:
        peak = None if act is None or np.ndim(act) != 2 or not np.isfinite(act).all() else _peaks(act[:, -1])
        downbeats = _bar_downbeats(beats, downbeats, meter, peak)
    tempo = 60.0 / float(np.median(np.diff(beats))) if beats.size >= 2 else None
    return Rhythm(tempo, rhythm.tempo_conf, beats, downbeats, meter)


def _stretch(beats: np.ndarray, downbeats: np.ndarray, step: float) -> np.ndarray:
    """A beat every ``step`` decoded beats, interpolated in time, on the lattice through the first
    downbeat (through the first beat when there is none)."""
    anchor = min(int(np.searchsorted(beats, downbeats[0])), beats.size - 1) if downbeats.size else 0
    first = anchor - step * np.floor(anchor / step)
    return np.interp(np.arange(first, beats.size - 1 + 1e-9, step), np.arange(beats.size), beats)


def _bar_downbeats(beats: np.ndarray, downbeats: np.ndarray, meter: int | None, peak: np.ndarray | None) -> np.ndarray:
    """Every ``meter``-th beat, on a phase that holds a decoded downbeat: the one where the downbeat
    activations are strongest (without them, the one holding most decoded downbeats)."""
    on = np.flatnonzero(np.isclose(beats[:, None], downbeats[None, :], atol=1e-6).any(axis=1))
    if not meter or on.size == 0:
        return downbeats[np.isclose(downbeats[:, None], beats[None, :], atol=1e-6).any(axis=1)]
    phases, counts = np.unique(on % meter, return_counts=True)
    if peak is not None and phases.size > 1:
        phase = phases[int(np.argmax([_at(peak, beats[p::meter]) for p in phases]))]
    else:
        phase = phases[int(np.argmax(counts))]
    return beats[phase::meter]


def correct_tempo(
    act: np.ndarray,
    rhythm: Rhythm,
    y44: np.ndarray | None = None,
    tags: Mapping[str, float] | None = None,
    models: TempoModels | None = None,
    rule: OctaveRule = DEFAULT_RULE,
) -> TempoDecision:
    """Decide the tempo octave for one clip: ``act`` and ``rhythm`` are ``rhythm.beat_activations`` and
    ``rhythm.decode_rhythm``; ``y44`` and ``models`` add the TCN tempo classifier; ``tags`` the tagger's
    ``fast``/``slow`` probabilities. Never raises on bad input: no tempo gives ``tempo_bpm=None``."""
    tcn = None
    if models is not None and y44 is not None and rhythm.tempo_bpm is not None:
        tcn = tcn_tempo_probs(y44, models)
    return decide(octave_evidence(act, rhythm, tcn, tags), rhythm, rule, act)
