"""Tempo octave decision: which multiple of the beat tracker's grid is the beat, and how sure we are.

madmom's downbeat RNN + DBN (``rhythm.decode_rhythm``) gets the beat grid right up to its level: slow
pieces with running eighths come out at double tempo, fast drumless tunes and fast waltzes at half, some
pieces in threes at 2/3 or 3/2. Each candidate grid (``FACTORS`` x the decoded tempo) is described by
evidence that costs a few milliseconds on top of what analysis already computed:

- **grid**: the beat activations on the candidate grid: for x2 / x3 how strongly the points between
  decoded beats fire (relative to the beats); for /2 / /3 how much weaker the other phases are than the
  strongest one. **bar**: the same read from the downbeat activations (bar-level evidence).
- **comb**: madmom's comb-filter tempo histogram of the beat activations, a second estimator, at each
  candidate tempo (log mass relative to the decoded one); **bar comb**: the histogram of the downbeat
  activations at the candidate's bar rate (candidate tempo / metre).
- **density**: onsets per beat and chord changes per beat at the candidate tempo (a slow piece with running
  eighths has ~2-4 onsets per beat at its true tempo and ~1 at double; chords change every 2-4 beats at the
  true tempo and every 4-8 at double).
- **metre**: the decoded metre (3 or 4) with each candidate; **position**: log tempo and its square (a
  learned prior, one term among many rather than a rule that wins by default); **tags**: MusiCNN's
  fast-minus-slow times log2(factor).

A conditional logit (``OctaveModel``: one weight vector, a softmax over the candidates a clip has) turns the
evidence into a probability per candidate; the winner is the tempo, the runner-up the alternative
(``tempo_alt_bpm``) that a text may not rule out. A second, logistic map (``Calibration``) turns the winner's
probability and the beat clarity into ``tempo_prob``: the probability that the tempo is right (within 4 %),
calibrated so that over all sources a clip with ``tempo_prob >= c`` is right at least c of the time. Both are
fitted leave-one-source-out on the dev sets (``bench/fit_hearing.py``; figures in ``docs/BENCHMARKS.md``) and
ship as ``data/tempo_octave.json``.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from m2ugen_data.analysis.rhythm import FPS, MIN_BEATS, Rhythm

VERSION = "octave2:clogit"  # bump when the evidence or the decision changes (the fitted model has its own)
FACTORS = (1 / 3, 1 / 2, 2 / 3, 1.0, 3 / 2, 2.0, 3.0)  # candidate grids relative to the decoded one
KEEP = FACTORS.index(1.0)
METHODS = ("octave:third", "octave:half", "octave:two-thirds", "dbn", "octave:three-halves", "octave:double",
           "octave:triple")  # fmt: skip
MIN_BPM = 35.0
MAX_BPM = 260.0
TEMPO_CENTRE_BPM = 110.0  # log-tempo features are read relative to this (a scale, not a prior)
PEAK_RADIUS = 2  # frames either side of a position where its activation peak is looked for
TEMPO_TOL = 0.04  # relative tempo window when reading a histogram at a candidate (mir_eval's Acc1 width)
EPS = 1e-3  # floor of a histogram strength before its log: "no support" is a finite penalty
CHORD_FLOOR = 1 / 16  # chord changes per beat added before the log (a clip with one chord is not -inf)
# Metre after moving to a non-octave grid: a 3:2 error groups a duple metre's beats in threes (two decoded
# 3-beat bars are one 4-beat bar), and the other way round.
REGRID_METER = {2 / 3: 4, 3 / 2: 3}
FEATURES = (
    "log2_tempo", "log2_tempo_sq", "grid_sub", "grid_super", "bar_sub", "bar_super", "comb", "bar_comb",
    "onsets_per_beat", "onsets_per_beat_sq", "chords_per_beat", "chords_per_beat_sq", "tags",
    "unclear_beat_change",
    *(f"is_{m.split(':')[-1]}" for i, m in enumerate(METHODS) if i != KEEP),
    *(f"meter3_{m.split(':')[-1]}" for i, m in enumerate(METHODS) if i != KEEP),
)  # fmt: skip
MODEL_FILE = Path(__file__).with_name("data") / "tempo_octave.json"


@dataclass(frozen=True)
class TempoDecision:
    tempo_bpm: float | None
    beats: np.ndarray  # seconds, on the chosen grid
    downbeats: np.ndarray  # seconds
    method: str  # one of METHODS; "none" without a tempo
    prob: float  # calibrated probability that tempo_bpm is right (0 without a tempo)
    alt_bpm: float | None  # the runner-up candidate's tempo (what the text must not rule out)
    meter: int | None  # beats per bar on the returned grid


@dataclass(frozen=True)
class OctaveInputs:
    """What the decision reads for one clip, all measured before it (and cheap): kept apart from the
    features so a bench can cache them and re-fit the model without the networks."""

    tempo: float  # the DBN's tempo
    meter: int | None
    beat_conf: float  # rhythm.tempo_confidence: activation strength x regularity
    grid: np.ndarray  # per candidate: sub/super support from the beat activations (0 where none)
    bar: np.ndarray  # the same from the downbeat activations
    comb: np.ndarray  # per candidate: log mass in the beat-activation comb histogram, relative to KEEP
    bar_comb: np.ndarray  # per candidate: the same in the downbeat-activation histogram at the bar rate
    onset_rate: float | None  # onsets per second (spectral)
    chord_rate: float | None  # chord changes per second (harmony segments)
    fast_slow: float | None  # MusiCNN P(fast) - P(slow)

    def to_json(self) -> dict:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in self.__dict__.items()}

    @classmethod
    def from_json(cls, d: Mapping) -> OctaveInputs:
        arrays = ("grid", "bar", "comb", "bar_comb")
        return cls(**{k: (np.asarray(v, dtype=np.float64) if k in arrays else v) for k, v in d.items()})


@dataclass(frozen=True)
class Calibration:
    """``tempo_prob = sigmoid(w . [logit(p_best), beat_conf] + b)``."""

    weights: tuple[float, float]
    bias: float

    def prob(self, p_best: float, beat_conf: float) -> float:
        p = min(max(p_best, 1e-6), 1 - 1e-6)
        z = self.weights[0] * math.log(p / (1 - p)) + self.weights[1] * beat_conf + self.bias
        return 1.0 / (1.0 + math.exp(-z))


@dataclass(frozen=True)
class OctaveModel:
    """Conditional logit over the candidates: score = weights . (features - mean) / scale."""

    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    calibration: Calibration
    version: str
    margin: float = 0.0  # another grid replaces the decoded one only when it is this much more probable

    def choose(self, p: np.ndarray) -> int:
        """The chosen candidate: the likeliest, unless it beats the decoded grid by no more than ``margin``."""
        best = int(np.argmax(p))
        return best if best == KEEP or p[best] - p[KEEP] > self.margin else KEEP

    def probabilities(self, x: np.ndarray, allowed: np.ndarray) -> np.ndarray:
        """Per candidate (0 where not allowed); ``x`` is (candidates, features) or (clips, candidates, features)."""
        s = ((x - self.mean) / self.scale) @ self.weights
        s = np.where(allowed, s, -np.inf)
        s = s - s.max(axis=-1, keepdims=True)
        e = np.exp(s)
        return e / e.sum(axis=-1, keepdims=True)

    def to_json(self, fitted_on: Mapping | None = None) -> dict:
        return {
            "version": self.version,
            "factors": list(FACTORS),
            "features": list(FEATURES),
            "weights": self.weights.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "margin": self.margin,
            "calibration": {"inputs": ["logit_p_best", "beat_conf"], "weights": list(self.calibration.weights),
                            "bias": self.calibration.bias},  # fmt: skip
            "fitted_on": dict(fitted_on or {}),
        }


def model_from_json(spec: Mapping) -> OctaveModel:
    if list(spec["features"]) != list(FEATURES) or not np.allclose(spec["factors"], FACTORS):
        raise ValueError("tempo octave model was fitted on other features or candidates; refit it (bench/fit_hearing.py)")
    cal = spec["calibration"]
    return OctaveModel(
        np.asarray(spec["weights"], dtype=np.float64),
        np.asarray(spec["mean"], dtype=np.float64),
        np.asarray(spec["scale"], dtype=np.float64),
        Calibration((float(cal["weights"][0]), float(cal["weights"][1])), float(cal["bias"])),
        str(spec["version"]),
        float(spec.get("margin", 0.0)),
    )


@functools.cache
def load_model(path: Path = MODEL_FILE) -> OctaveModel:
    """The shipped model (package data); a missing or stale file is a clear error, never a silent default."""
    try:
        spec = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing: reinstall the package or refit it with bench/fit_hearing.py") from None
    return model_from_json(spec)


# --------------------------------------------------------------------------- evidence


def octave_inputs(
    act: np.ndarray,
    rhythm: Rhythm,
    onset_rate: float | None = None,
    chord_rate: float | None = None,
    tags: Mapping[str, float] | None = None,
) -> OctaveInputs | None:
    """Everything the decision reads; None when the rhythm has no tempo or the activations are bad."""
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
    tempi = tempo * np.asarray(FACTORS)
    downbeats = np.asarray(rhythm.downbeats, dtype=np.float64)
    both = act.sum(axis=1)
    meter = rhythm.meter or 4
    return OctaveInputs(
        tempo=float(tempo),
        meter=rhythm.meter,
        beat_conf=float(rhythm.tempo_conf),
        grid=_grid_support(_peaks(both), beats),
        bar=_grid_support(_peaks(act[:, 1]), downbeats) if downbeats.size >= 2 else np.zeros(len(FACTORS)),
        comb=_comb_support(both, tempi),
        bar_comb=_comb_support(act[:, 1], tempi / meter),
        onset_rate=_finite_or_none(onset_rate),
        chord_rate=_finite_or_none(chord_rate),
        fast_slow=_fast_slow(tags),
    )


def _finite_or_none(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) and x >= 0 else None


def _fast_slow(tags: Mapping[str, float] | None) -> float | None:
    if tags is None:
        return None
    fast, slow = tags.get("fast"), tags.get("slow")
    if fast is None or slow is None or not (math.isfinite(fast) and math.isfinite(slow)):
        return None
    return float(fast) - float(slow)


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


def _grid_support(peak: np.ndarray, marks: np.ndarray) -> np.ndarray:
    """Scale-free support per candidate from activations at grid marks (beats, or downbeats). x k (k = 2,
    3): activation at the points dividing each interval in k, relative to the marks. / k: 1 - the weakest
    phase of every k-th mark relative to the strongest. Candidates 2/3 and 3/2 have no grid reading (0)."""
    out = np.zeros(len(FACTORS))
    if marks.size < 2:
        return out
    on = _at(peak, marks)
    for k in (2, 3):
        between = np.concatenate([marks[:-1] + (marks[1:] - marks[:-1]) * j / k for j in range(1, k)])
        out[FACTORS.index(float(k))] = _ratio(_at(peak, between), on)
        phases = [_at(peak, marks[p::k]) for p in range(k)]
        out[FACTORS.index(1 / k)] = 1.0 - _ratio(min(phases), max(phases))
    return out


def _comb_support(curve: np.ndarray, tempi: np.ndarray) -> np.ndarray:
    """Log strength of each tempo in madmom's comb-filter tempo histogram of ``curve``, relative to KEEP."""
    from madmom.features.tempo import CombFilterTempoHistogramProcessor, smooth_histogram

    lo = float(min(tempi.min(), MIN_BPM)) / 1.1
    hi = float(max(tempi.max(), MAX_BPM)) * 1.1
    lo, hi = max(lo, 60.0 * FPS / max(curve.size - 1, 2)), min(hi, 60.0 * FPS / 2)
    if curve.size < 4 or hi <= lo:
        return np.zeros(len(tempi))
    proc = CombFilterTempoHistogramProcessor(min_bpm=lo, max_bpm=hi, fps=FPS)
    strengths, intervals = smooth_histogram(proc(curve), 9)
    bpm = 60.0 * FPS / np.asarray(intervals, dtype=np.float64)
    s = np.asarray(strengths, dtype=np.float64)
    total = float(s.sum())
    if total <= 0 or not np.isfinite(total):
        return np.zeros(len(tempi))
    norm = s / total
    mass = np.array([norm[np.abs(bpm / t - 1.0) <= TEMPO_TOL].sum() for t in tempi])
    logs = np.log(mass + EPS)
    return logs - logs[KEEP]


def candidate_features(inp: OctaveInputs) -> tuple[np.ndarray, np.ndarray]:
    """(features, allowed): a (candidates, len(FEATURES)) matrix and which candidates are in range."""
    f = np.asarray(FACTORS)
    tempi = inp.tempo * f
    z = np.log2(tempi / TEMPO_CENTRE_BPM)
    n = len(FACTORS)
    change = (np.arange(n) != KEEP).astype(np.float64)
    integer = np.isin(f, (2.0, 3.0))
    inverse = np.isin(np.round(1 / f, 6), (2.0, 3.0))
    cols = [z, z**2, inp.grid * integer, inp.grid * inverse, inp.bar * integer, inp.bar * inverse, inp.comb, inp.bar_comb]
    if inp.onset_rate is not None and inp.onset_rate > 0:
        opb = np.log2(inp.onset_rate * 60.0 / tempi)
    else:
        opb = np.zeros(n)
    cols += [opb, opb**2]
    if inp.chord_rate is not None:
        cpb = np.log2(inp.chord_rate * 60.0 / tempi + CHORD_FLOOR)
    else:
        cpb = np.zeros(n)
    cols += [cpb, cpb**2]
    cols.append(np.log2(f) * (inp.fast_slow or 0.0))
    cols.append(change * (1.0 - inp.beat_conf))
    onehot = np.eye(n)[:, [i for i in range(n) if i != KEEP]]
    cols += list(onehot.T)
    meter3 = 1.0 if inp.meter == 3 else 0.0
    cols += list(onehot.T * meter3)
    x = np.stack(cols, axis=1)
    allowed = (tempi >= MIN_BPM) & (tempi <= MAX_BPM)
    allowed[KEEP] = True  # the decoded tempo always stays a candidate
    return x, allowed


# --------------------------------------------------------------------------- decision and bookkeeping


def decide(inp: OctaveInputs | None, rhythm: Rhythm, model: OctaveModel | None = None, act: np.ndarray | None = None) -> TempoDecision:
    """Pick the likeliest candidate grid, rewrite beats, downbeats and meter onto it, and calibrate.

    ``act`` (the activations) picks the bar phase when the grid thins out; optional."""
    if inp is None or rhythm.tempo_bpm is None:
        return TempoDecision(None, rhythm.beats, rhythm.downbeats, "none", 0.0, None, rhythm.meter)
    model = model or load_model()
    x, allowed = candidate_features(inp)
    p = model.probabilities(x, allowed)
    best = model.choose(p)
    alt = int(np.argmax(np.where(np.arange(p.size) == best, -1.0, p)))
    grid = regrid(rhythm, FACTORS[best], act)
    prob = model.calibration.prob(float(p[best]), inp.beat_conf)
    alt_bpm = inp.tempo * FACTORS[alt] if allowed[alt] else None
    return TempoDecision(grid.tempo_bpm, grid.beats, grid.downbeats, METHODS[best], prob, alt_bpm, grid.meter)


def regrid(rhythm: Rhythm, factor: float, act: np.ndarray | None = None) -> Rhythm:
    """The decoded rhythm moved onto the grid at ``factor`` x its tempo (one of FACTORS).

    x k interpolates k-1 beats between every two; / k keeps every k-th beat, on the phase that holds most
    decoded downbeats; 2/3 and 3/2 put a beat every 1.5 (2/3) decoded beats, interpolated, anchored on the
    first downbeat. Downbeats then fall every ``meter`` beats of the new grid, on the phase where the
    downbeat activations are strongest: the meter stays, except for 2/3 and 3/2 (``REGRID_METER``)."""
    beats = np.asarray(rhythm.beats, dtype=np.float64)
    downbeats = np.asarray(rhythm.downbeats, dtype=np.float64)
    meter = rhythm.meter
    k_up, k_down = round(factor), round(1 / factor)
    if factor > 1 and abs(factor - k_up) < 1e-9:
        fill = [beats[:-1] + (beats[1:] - beats[:-1]) * j / k_up for j in range(1, k_up)]
        beats = np.sort(np.concatenate([beats, *fill]))
    elif factor < 1 and abs(1 / factor - k_down) < 1e-9:
        on_phase = [np.isin(beats[p::k_down], downbeats).sum() for p in range(k_down)]
        beats = beats[int(np.argmax(on_phase)) :: k_down]
    elif factor != 1.0:
        beats = _stretch(beats, downbeats, 1.0 / factor)
        meter = REGRID_METER.get(factor, meter)
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


def chord_change_rate_per_s(segments: Sequence[tuple[float, float, str]], duration_s: float) -> float | None:
    """Chord changes per second from time segments (no-chord segments are not chords); None when the clip
    is shorter than a second or has no chord at all."""
    labels = [lab for _, _, lab in segments if lab not in ("N", "X")]
    if duration_s < 1.0 or not labels:
        return None
    changes = sum(1 for a, b in zip(labels, labels[1:]) if a != b)
    return changes / duration_s


def correct_tempo(
    act: np.ndarray,
    rhythm: Rhythm,
    onset_rate: float | None = None,
    chord_rate: float | None = None,
    tags: Mapping[str, float] | None = None,
    model: OctaveModel | None = None,
) -> TempoDecision:
    """Decide the tempo grid of one clip: ``act`` and ``rhythm`` are ``rhythm.beat_activations`` and
    ``rhythm.decode_rhythm``; ``onset_rate`` onsets per second; ``chord_rate`` chord changes per second;
    ``tags`` the tagger's ``fast``/``slow`` probabilities. Never raises on bad input: no tempo gives
    ``tempo_bpm=None``."""
    return decide(octave_inputs(act, rhythm, onset_rate, chord_rate, tags), rhythm, model, act)


# --------------------------------------------------------------------------- fitting (bench/fit_hearing.py)

L2_GRID = (0.3, 1.0, 3.0, 10.0)  # the logit's penalty on standardised features, chosen per fit (see fit_model)
MARGIN_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)  # how much likelier another grid must be, chosen per fit


def target_candidate(inp: OctaveInputs, truth_bpm: float) -> int | None:
    """The candidate within TEMPO_TOL of the true tempo (the closest if several), or None: no grid is right."""
    ratio = inp.tempo * np.asarray(FACTORS) / truth_bpm
    err = np.abs(ratio - 1.0)
    best = int(np.argmin(err))
    return best if err[best] <= TEMPO_TOL else None


def _stack(inputs: Sequence[OctaveInputs]) -> tuple[np.ndarray, np.ndarray]:
    pairs = [candidate_features(i) for i in inputs]
    return np.stack([x for x, _ in pairs]), np.stack([a for _, a in pairs])


def _fit_logit(
    x: np.ndarray, allowed: np.ndarray, targets: Sequence[int | None], l2: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from m2ugen_data.analysis.fitting import fit_conditional_logit

    keep = np.array([t is not None and allowed[i, t] for i, t in enumerate(targets)])
    y = np.array([t if t is not None else 0 for t in targets])
    return fit_conditional_logit(x[keep], allowed[keep], y[keep], l2=l2)


def _out_of_group(
    x: np.ndarray, allowed: np.ndarray, targets: list[int | None], groups: np.ndarray, l2: float
) -> np.ndarray:
    """Candidate probabilities of every clip from a logit fitted on the other groups (in-sample with one)."""
    out = np.zeros(allowed.shape)
    names = np.unique(groups)
    for g in names if names.size > 1 else [None]:
        held = groups == g if g is not None else np.ones(len(targets), bool)
        train = ~held if g is not None else held
        w, mean, scale = _fit_logit(x[train], allowed[train], [t for t, k in zip(targets, train) if k], l2)
        out[held] = OctaveModel(w, mean, scale, Calibration((1.0, 0.0), 0.0), "fold").probabilities(x[held], allowed[held])
    return out


def fit_model(
    inputs: Sequence[OctaveInputs], truth_bpm: Sequence[float], groups: Sequence[str], version: str
) -> OctaveModel:
    """Fit the decision on every clip whose right tempo is a candidate, with everything chosen out of group:
    each group (a source) is predicted by logits fitted on the other groups; the penalty (``L2_GRID``) is the
    one whose out-of-group predictions give the right candidate the highest likelihood, the margin
    (``MARGIN_GRID``) the one with which those predictions are most often right, and the calibration maps
    the chosen candidates' probability and the beat clarity to how often they were right. So ``tempo_prob``
    is calibrated for music from a source the logit has not seen."""
    from m2ugen_data.analysis.fitting import fit_logistic

    x, allowed = _stack(inputs)
    targets = [target_candidate(i, t) for i, t in zip(inputs, truth_bpm)]
    g = np.asarray(groups)
    has = np.array([t is not None for t in targets])
    idx = np.array([t if t is not None else 0 for t in targets])
    best_ll, best_l2, best_p = -np.inf, L2_GRID[0], None
    for l2 in L2_GRID:
        p = _out_of_group(x, allowed, targets, g, l2)
        ll = float(np.log(np.clip(p[np.arange(len(idx)), idx][has], 1e-9, 1)).mean()) if has.any() else 0.0
        if ll > best_ll:
            best_ll, best_l2, best_p = ll, l2, p
    assert best_p is not None
    w, mean, scale = _fit_logit(x, allowed, targets, best_l2)
    margin = max(MARGIN_GRID, key=lambda m: (_accuracy(best_p, idx, has, m), -m))  # ties: the smaller margin
    probe = OctaveModel(w, mean, scale, Calibration((1.0, 0.0), 0.0), "probe", margin)
    choice = np.array([probe.choose(p) for p in best_p])
    p_best = best_p[np.arange(len(choice)), choice]
    right = (choice == idx) & has
    logit = np.log(np.clip(p_best, 1e-6, 1 - 1e-6) / np.clip(1 - p_best, 1e-6, 1))
    conf = np.array([i.beat_conf for i in inputs])
    cw, cb, cmean, cscale = fit_logistic(np.stack([logit, conf], axis=1), right.astype(np.float64), l2=1e-2)
    # fold the standardisation into the two weights: Calibration reads raw logit and beat_conf
    weights = (float(cw[0] / cscale[0]), float(cw[1] / cscale[1]))
    bias = float(cb - cw[0] * cmean[0] / cscale[0] - cw[1] * cmean[1] / cscale[1])
    return OctaveModel(w, mean, scale, Calibration(weights, bias), f"{version}:l2={best_l2:g}:margin={margin:g}", margin)


def _accuracy(p: np.ndarray, idx: np.ndarray, has: np.ndarray, margin: float) -> float:
    probe = OctaveModel(np.zeros(0), np.zeros(0), np.ones(0), Calibration((1.0, 0.0), 0.0), "probe", margin)
    return float(np.mean([h and probe.choose(pi) == t for pi, t, h in zip(p, idx, has)]))
