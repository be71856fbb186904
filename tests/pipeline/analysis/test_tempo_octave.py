"""Tempo grid decision (m2ugen_data.analysis.tempo_octave) on hand-made activations, beat grids and evidence:
the evidence reads what it claims to, regridding moves beats and bars exactly, the fitted logit learns a rule
from evidence and its calibration means what it says, and bad input gives no tempo."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from m2ugen_data.analysis import tempo_octave as to
from m2ugen_data.analysis.rhythm import FPS, Rhythm

DURATION_S = 10.0
F = {f: i for i, f in enumerate(to.FACTORS)}


def _activations(beat_period_s: float, strength: float = 0.9, downbeat_every: int = 0) -> np.ndarray:
    """(frames, 2) beat/downbeat probabilities: a spike every ``beat_period_s``; every ``downbeat_every``-th
    spike is a downbeat (column 1) instead of a beat (column 0)."""
    act = np.zeros((int(DURATION_S * FPS), 2), dtype=np.float32)
    frames = np.round(np.arange(0, DURATION_S, beat_period_s) * FPS).astype(int)
    frames = frames[frames < len(act)]
    column = np.zeros(frames.size, dtype=int)
    if downbeat_every:
        column[::downbeat_every] = 1
    act[frames, column] = strength
    return act


def _rhythm(period_s: float, meter: int = 4, start: float = 0.0) -> Rhythm:
    beats = np.arange(start, DURATION_S - 1e-9, period_s)
    return Rhythm(60.0 / period_s, 0.8, beats, beats[::meter], meter)


def test_grid_evidence_reads_subdivisions_and_weak_phases() -> None:
    # the music pulses at 120 bpm; the tracker decoded 60: the midpoints fire as strongly as the beats
    inp = to.octave_inputs(_activations(0.5, downbeat_every=4), _rhythm(1.0))
    assert inp is not None
    assert inp.grid[F[2.0]] == pytest.approx(1.0) and inp.grid[F[3.0]] < 0.1
    assert inp.grid[F[0.5]] == pytest.approx(0.0)  # every beat equally strong: no weak phase
    # the music pulses at 60; decoded at 120: every other decoded beat is silent
    act = _activations(1.0, downbeat_every=4)
    inp = to.octave_inputs(act, _rhythm(0.5))
    assert inp.grid[F[0.5]] == pytest.approx(1.0) and inp.grid[F[2.0]] == pytest.approx(0.0)
    # the comb histogram prefers the candidate the activations pulse at
    assert inp.comb[F[0.5]] > 0.0 > inp.comb[F[2.0]]


def test_density_features_follow_the_candidate_tempo() -> None:
    inp = to.octave_inputs(_activations(0.5), _rhythm(0.5), onset_rate=4.0, chord_rate=0.5)
    x, allowed = to.candidate_features(inp)
    opb = x[:, to.FEATURES.index("onsets_per_beat")]
    # 4 onsets/s at 120 bpm is 2 per beat (log2 = 1); at 60 bpm 4 per beat; at 240 one
    assert opb[F[1.0]] == pytest.approx(1.0) and opb[F[0.5]] == pytest.approx(2.0) and opb[F[2.0]] == pytest.approx(0.0)
    assert allowed[F[1.0]] and not allowed[F[3.0]]  # 360 bpm is out of range
    assert x.shape == (len(to.FACTORS), len(to.FEATURES))


def test_doubling_interpolates_beats_and_keeps_bars() -> None:
    act = _activations(0.5, downbeat_every=4)  # 120 bpm, a downbeat every 2 s ...
    rh = _rhythm(1.0)  # ... decoded at 60 bpm, downbeats at 0, 4, 8
    g = to.regrid(rh, 2.0, act)
    assert g.tempo_bpm == pytest.approx(120.0)
    np.testing.assert_allclose(g.beats, np.arange(0.0, 9.0 + 1e-9, 0.5))
    np.testing.assert_allclose(g.downbeats, [0.0, 2.0, 4.0, 6.0, 8.0])
    assert g.meter == 4


def test_halving_and_thirds_keep_the_phase_with_the_downbeats() -> None:
    rh = Rhythm(120.0, 0.8, np.arange(0.5, 10.0, 0.5), np.arange(1.0, 10.0, 2.0), 4)
    half = to.regrid(rh, 0.5)
    np.testing.assert_allclose(half.beats, np.arange(1.0, 10.0, 1.0))  # the phase holding the downbeats
    third = to.regrid(rh, 1 / 3)
    assert third.tempo_bpm == pytest.approx(40.0) and 1.0 in third.beats
    triple = to.regrid(rh, 3.0)
    assert triple.tempo_bpm == pytest.approx(360.0) and triple.beats.size == 3 * rh.beats.size - 2


def test_two_thirds_groups_in_fours() -> None:
    rh = _rhythm(0.4, meter=3)  # 150 bpm decoded in threes
    g = to.regrid(rh, 2 / 3)
    assert g.tempo_bpm == pytest.approx(100.0, rel=1e-6) and g.meter == 4


def _synthetic_inputs(rng: np.random.Generator, n: int) -> tuple[list[to.OctaveInputs], list[float]]:
    """Clips whose decoded tempo is right, doubled or halved; the only telling evidence is onsets per beat
    (two per true beat) and the grid support of the true candidate."""
    inputs, truth = [], []
    for _ in range(n):
        true = float(np.exp(rng.uniform(np.log(60), np.log(170))))
        factor = rng.choice([1.0, 2.0, 0.5], p=[0.6, 0.25, 0.15])
        decoded = true * factor
        if not to.MIN_BPM <= decoded <= to.MAX_BPM:
            decoded, factor = true, 1.0
        fix = 1 / factor  # the candidate that recovers the truth
        grid = np.zeros(len(to.FACTORS))
        if fix in F and fix != 1.0:
            grid[F[fix]] = rng.uniform(0.4, 0.9)
        grid += rng.uniform(0, 0.2, size=grid.size) * (np.array(to.FACTORS) != 1.0)
        inputs.append(
            to.OctaveInputs(
                tempo=decoded, meter=4, beat_conf=float(rng.uniform(0.3, 0.9)), grid=grid, bar=np.zeros(len(to.FACTORS)),
                comb=np.zeros(len(to.FACTORS)), bar_comb=np.zeros(len(to.FACTORS)),
                onset_rate=2 * true / 60 * float(rng.uniform(0.8, 1.25)), chord_rate=None, fast_slow=None,
            )  # fmt: skip
        )
        truth.append(true)
    return inputs, truth


def test_fitted_model_learns_the_rule_and_its_confidence_is_calibrated() -> None:
    rng = np.random.default_rng(0)
    train, truth = _synthetic_inputs(rng, 600)
    groups = [f"source{i % 4}" for i in range(len(train))]
    model = to.fit_model(train, truth, groups, "test")
    test, test_truth = _synthetic_inputs(rng, 400)
    right, probs = [], []
    for inp, t in zip(test, test_truth):
        rh = Rhythm(inp.tempo, inp.beat_conf, np.arange(0, 10, 60 / inp.tempo), np.arange(0, 10, 240 / inp.tempo), 4)
        d = to.decide(inp, rh, model)
        right.append(abs(d.tempo_bpm / t - 1) <= 0.04)
        probs.append(d.prob)
    right, probs = np.array(right), np.array(probs)
    assert right.mean() > 0.9  # the DBN alone is right 60 % of the time here
    sure = probs >= 0.8
    assert sure.mean() > 0.5 and right[sure].mean() >= 0.8  # "at least c of the time" where it says c
    assert abs(probs.mean() - right.mean()) < 0.08


def test_model_json_round_trip_and_stale_files_are_refused(tmp_path) -> None:
    rng = np.random.default_rng(1)
    inputs, truth = _synthetic_inputs(rng, 200)
    model = to.fit_model(inputs, truth, ["a"] * 100 + ["b"] * 100, "rt")
    spec = model.to_json({"clips": 200})
    back = to.model_from_json(json.loads(json.dumps(spec)))
    x, allowed = to.candidate_features(inputs[0])
    np.testing.assert_allclose(back.probabilities(x, allowed), model.probabilities(x, allowed))
    with pytest.raises(ValueError, match="refit"):
        to.model_from_json(spec | {"features": spec["features"][:-1]})
    with pytest.raises(FileNotFoundError, match="fit_hearing"):
        to.load_model.__wrapped__(tmp_path / "missing.json")


def test_the_shipped_model_loads_and_decides() -> None:
    act = _activations(0.5, downbeat_every=4)
    rh = _rhythm(0.5)
    d = to.correct_tempo(act, rh, onset_rate=4.0, chord_rate=0.25)
    assert d.tempo_bpm is not None and 0.0 <= d.prob <= 1.0 and d.method in to.METHODS
    assert d.alt_bpm is None or d.alt_bpm != pytest.approx(d.tempo_bpm)


@pytest.mark.parametrize(
    "act, rh",
    [
        (np.full((1000, 2), np.nan, dtype=np.float32), _rhythm(0.5)),
        (np.zeros((0, 2), dtype=np.float32), _rhythm(0.5)),
        (np.zeros(1000, dtype=np.float32), _rhythm(0.5)),
        (_activations(0.5), Rhythm(None, 0.0, np.zeros(0), np.zeros(0), None)),
        (_activations(0.5), Rhythm(None, 0.0, np.array([1.0, 2.0]), np.zeros(0), None)),
        (_activations(0.5), Rhythm(float("nan"), 0.0, np.arange(0, 5, 0.5), np.zeros(0), 4)),
    ],
)
def test_bad_input_gives_no_tempo(act: np.ndarray, rh: Rhythm) -> None:
    d = to.correct_tempo(act, rh, tags={"fast": 0.5, "slow": 0.5})
    assert d.tempo_bpm is None and d.method == "none" and d.prob == 0.0 and d.alt_bpm is None
    assert d.beats.size == rh.beats.size  # the decoded beats are returned untouched, none invented


def test_chord_rate_counts_changes_between_chords() -> None:
    segs = [(0.0, 2.0, "C:maj"), (2.0, 3.0, "N"), (3.0, 5.0, "C:maj"), (5.0, 10.0, "G:maj")]
    assert to.chord_change_rate_per_s(segs, 10.0) == pytest.approx(0.1)
    assert to.chord_change_rate_per_s([(0.0, 10.0, "N")], 10.0) is None


def test_inputs_survive_json() -> None:
    inp = to.octave_inputs(_activations(0.5), _rhythm(0.5), onset_rate=3.0, tags={"fast": 0.6, "slow": 0.1})
    back = to.OctaveInputs.from_json(json.loads(json.dumps(inp.to_json())))
    assert dataclasses.asdict(back).keys() == dataclasses.asdict(inp).keys()
    np.testing.assert_allclose(to.candidate_features(back)[0], to.candidate_features(inp)[0])
    assert back.fast_slow == pytest.approx(0.5)
