"""Tempo octave correction (m2ugen_data.analysis.tempo_octave) on hand-made activations and beat grids."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from m2ugen_data.analysis import tempo_octave as to
from m2ugen_data.analysis.rhythm import FPS, Rhythm

DURATION_S = 10.0


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


NO_WEIGHTS = dict(w_prior=0.0, w_beat=0.0, w_bar=0.0, w_comb=0.0, w_tcn=0.0, w_tags=0.0)
BEAT_ONLY = to.OctaveRule(**{**NO_WEIGHTS, "w_beat": 10.0, "t_beat": 0.4, "bias_two_thirds": 100.0})


def test_doubling_interpolates_beats_and_bars() -> None:
    act = _activations(0.5, downbeat_every=4)  # the music: 120 bpm, 4/4 (a downbeat every 2 s) ...
    rh = _rhythm(1.0)  # ... decoded at 60 bpm, "bars" of 4 s with downbeats at 0, 4, 8
    d = to.decide(to.octave_evidence(act, rh), rh, BEAT_ONLY, act)
    assert d.method == "octave:double"
    assert d.tempo_bpm == pytest.approx(120.0)
    np.testing.assert_allclose(d.beats, np.arange(0.0, 9.0 + 1e-9, 0.5))  # midpoints added, none past the end
    assert set(rh.downbeats) <= set(d.downbeats)  # the decoded downbeats stay ...
    np.testing.assert_allclose(d.downbeats, [0.0, 2.0, 4.0, 6.0, 8.0])  # ... and the mid-bar ones join them
    assert d.meter == 4
    assert 0.0 < d.conf <= rh.tempo_conf


def test_halving_keeps_the_phase_with_the_downbeats() -> None:
    act = _activations(1.0, downbeat_every=4)  # 60 bpm, a downbeat every 4 s (at 0, 4, 8)
    act[np.round(np.arange(0.5, DURATION_S, 1.0) * FPS).astype(int), 0] = 0.05  # weak off-beats
    rh = _rhythm(0.5, meter=4)  # decoded at 120 bpm; "bars" of 2 s, downbeats at 0, 2, 4, 6, 8
    d = to.decide(to.octave_evidence(act, rh), rh, BEAT_ONLY, act)
    assert d.method == "octave:half"
    assert d.tempo_bpm == pytest.approx(60.0)
    np.testing.assert_allclose(d.beats, rh.beats[0::2])
    np.testing.assert_allclose(d.downbeats, [0.0, 4.0, 8.0])  # every other decoded bar: the strong ones
    assert d.meter == 4


def test_halving_follows_the_downbeat_phase() -> None:
    beats = np.arange(0.5, 10.0, 0.5)
    rh = Rhythm(120.0, 0.8, beats, beats[1::4], 4)  # downbeats on the odd-indexed beats
    grid = to.regrid(rh, 0.5)
    np.testing.assert_allclose(grid.beats, beats[1::2])
    assert set(grid.downbeats) <= set(rh.downbeats) and grid.downbeats.size >= 2
    three = Rhythm(120.0, 0.8, beats, beats[::3], 3)  # 3-beat bars: decoded downbeats alternate phases
    grid3 = to.regrid(three, 0.5)
    assert np.isin(grid3.downbeats, grid3.beats).all()
    np.testing.assert_allclose(np.diff(grid3.downbeats), 3.0)  # every 3 new beats of 1 s


def test_two_thirds_puts_a_beat_every_one_and_a_half() -> None:
    beats = np.arange(0.0, 9.7, 0.64)  # decoded at 93.75 bpm in 3-beat bars; the music is at 62.5 bpm
    rh = Rhythm(93.75, 0.5, beats, beats[::3], 3)
    grid = to.regrid(rh, 2 / 3)
    np.testing.assert_allclose(np.diff(grid.beats), 0.96)
    assert grid.tempo_bpm == pytest.approx(62.5)
    assert grid.meter == to.TWO_THIRDS_METER and np.isin(grid.downbeats, grid.beats).all()


def test_keep_when_the_grid_is_right() -> None:
    act = _activations(0.5)
    rh = _rhythm(0.5)
    d = to.decide(to.octave_evidence(act, rh), rh, BEAT_ONLY, act)
    assert d.method == "dbn" and d.tempo_bpm == pytest.approx(120.0)
    np.testing.assert_array_equal(d.beats, rh.beats)
    np.testing.assert_array_equal(d.downbeats, rh.downbeats)


def test_prior_tcn_comb_and_tags_pull_the_octave() -> None:
    act = _activations(0.5)
    rh = _rhythm(0.5)  # 120 bpm; with the grid evidence off, only the evidence under test decides
    slow_prior = to.OctaveRule(**{**NO_WEIGHTS, "w_prior": 1.0, "prior_bpm": 60.0, "prior_octaves": 0.5})
    assert to.decide(to.octave_evidence(act, rh), rh, slow_prior).method == "octave:half"
    tags = to.OctaveRule(**{**NO_WEIGHTS, "w_tags": 2.0, "bias_two_thirds": 1.0})
    ev = to.octave_evidence(act, rh, tags={"fast": 0.9, "slow": 0.05})
    assert to.decide(ev, rh, tags).method == "octave:double"
    assert to.octave_evidence(act, rh, tags={"fast": 0.9}).tags is None  # both tags or none
    assert to.octave_evidence(act, rh, tags={"fast": float("nan"), "slow": 0.1}).tags is None
    probs = np.zeros(300)
    probs[60] = 1.0  # the TCN's tempo classes hear 60 bpm
    ev = to.octave_evidence(act, rh, tcn_probs=probs)
    assert to.decide(ev, rh, to.OctaveRule(**{**NO_WEIGHTS, "w_tcn": 1.0})).method == "octave:half"
    comb = to.octave_evidence(act, rh).comb  # a metronome at 120: the comb filter agrees with the decoder
    assert comb[to.KEEP] == 0.0 and (comb[[0, 1]] < 0).all()


def test_candidates_outside_the_tempo_range_are_never_chosen() -> None:
    act = _activations(0.25)
    rh = _rhythm(0.25)  # 240 bpm: doubling would leave the range
    ev = to.octave_evidence(act, rh)
    assert ev is not None and np.isneginf(ev.scores(BEAT_ONLY)[-1])


def test_ambiguity_lowers_the_confidence() -> None:
    act = _activations(0.5)
    rh = _rhythm(0.5)
    ev = to.octave_evidence(act, rh)
    clear = to.decide(ev, rh, to.OctaveRule(**{**NO_WEIGHTS, "w_prior": 1.0, "prior_bpm": 120.0, "prior_octaves": 0.2}))
    vague = to.decide(ev, rh, to.OctaveRule(**{**NO_WEIGHTS, "w_prior": 1.0, "prior_bpm": 120.0, "prior_octaves": 5.0}))
    assert clear.method == vague.method == "dbn"
    assert clear.conf == pytest.approx(rh.tempo_conf)
    assert vague.conf < 0.5 * rh.tempo_conf


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
    assert d.tempo_bpm is None and d.method == "none" and d.conf == 0.0
    assert d.beats.size == rh.beats.size  # the decoded beats are returned untouched, none invented


def test_default_rule_runs_without_models() -> None:
    act = _activations(0.5, downbeat_every=4)
    rh = _rhythm(0.5)
    d = to.correct_tempo(act, rh)
    assert d.method == "dbn" and d.tempo_bpm == pytest.approx(120.0) and d.meter == 4
    no_tcn = to.correct_tempo(act, rh, y44=np.zeros(44100 * 2, np.float32), models=to.TempoModels(None))
    assert no_tcn.tempo_bpm == d.tempo_bpm
