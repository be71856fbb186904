"""Synth building blocks and determinism: plans, compositions, timbres, and byte-identical reruns."""

from __future__ import annotations

from pathlib import Path

import librosa
import numpy as np
import pyarrow.parquet as pq
import pytest

from m2ugen_data.errors import M2UGenError
from m2ugen_data.synth import load_truth, render_corpus
from m2ugen_data.synth.composition import SCALES, compose
from m2ugen_data.synth.corpus import plan_corpus
from m2ugen_data.synth.instruments import BASS_TIMBRES, TIMBRES
from m2ugen_data.synth.speech import speech_like


def _render(out: Path, seed: int) -> dict:
    return render_corpus(n=6, seed=seed, out_dir=out, sibling_fraction=0.5, trouble_fraction=0.34, duration_s=3.0)


def _snapshot(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    _render(tmp_path / "a", 3)
    _render(tmp_path / "b", 3)
    _render(tmp_path / "c", 4)
    a, b, c = (_snapshot(tmp_path / d) for d in "abc")
    assert a.keys() == b.keys()
    assert {k: v for k, v in a.items() if k != "truth.parquet"} == {k: v for k, v in b.items() if k != "truth.parquet"}
    assert load_truth(tmp_path / "a").equals(load_truth(tmp_path / "b"))
    assert not set(a) & set(c) - {"segments.csv", "truth.parquet"}
    assert a["segments.csv"] != c["segments.csv"]
    assert not load_truth(tmp_path / "a").equals(load_truth(tmp_path / "c"))


def test_rerun_into_same_dir_is_idempotent(tmp_path: Path) -> None:
    _render(tmp_path, 5)
    first = _snapshot(tmp_path)
    _render(tmp_path, 5)
    second = _snapshot(tmp_path)
    assert first.keys() == second.keys()
    assert not [p for p in tmp_path.rglob("*.tmp")]
    assert pq.read_table(tmp_path / "truth.parquet").num_rows == 6


def test_plan_counts_and_groups() -> None:
    plans = plan_corpus(40, seed=1, sibling_fraction=0.5, trouble_fraction=0.1)
    trouble = [p for p in plans if p.trouble != "none"]
    assert len(trouble) == 4 and {p.trouble for p in trouble} == {"silence", "clipping", "speech", "short"}
    assert all(p.group_id is None for p in trouble)
    groups: dict[str, list] = {}
    for p in plans:
        if p.group_id:
            groups.setdefault(p.group_id, []).append(p)
    assert sum(len(g) for g in groups.values()) == 18  # round(36 * 0.5)
    assert all(2 <= len(g) <= 3 and len({p.composition for p in g}) == 1 for g in groups.values())
    assert len({p.clip_id for p in plans}) == 40


@pytest.mark.parametrize("args", [(-1, 0.5, 0.1), (4, 1.5, 0.1), (4, 0.5, -0.1)])
def test_plan_rejects_bad_arguments(args: tuple) -> None:
    n, sib, trouble = args
    with pytest.raises(M2UGenError):
        plan_corpus(n, seed=0, sibling_fraction=sib, trouble_fraction=trouble)


def test_load_truth_of_missing_corpus_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(M2UGenError, match="no synthetic corpus truth"):
        load_truth(tmp_path)
    (tmp_path / "truth.parquet").write_bytes(b"not parquet")
    with pytest.raises(M2UGenError, match="unreadable"):
        load_truth(tmp_path)


@pytest.mark.parametrize("seed", range(8))
def test_composition_stays_in_key_and_changes_chords_on_downbeats(seed: int) -> None:
    comp = compose(np.random.default_rng(seed), 10.0)
    scale = {(comp.tonic + s) % 12 for s in SCALES[comp.mode]}
    allowed = scale | ({(comp.tonic + 11) % 12} if comp.mode == "minor" else set())  # harmonic-minor V
    pitches = np.concatenate([comp.bass.pitches, comp.lead.pitches, [p for c in comp.chords for p in c.pitches]])
    assert set(pitches % 12) <= allowed
    inside = [c.onset for c in comp.chords if c.onset > 0]
    assert np.allclose(inside, comp.downbeats[comp.downbeats > 0][: len(inside)])
    # The first full bar is the tonic chord: the harmony states the key.
    tonic_chord = next(c for c in comp.chords if np.isclose(c.onset, comp.downbeats[0]))
    assert comp.tonic in {p % 12 for p in tonic_chord.pitches}
    # Kick on every downbeat.
    assert set(np.round(comp.downbeats, 6)) <= set(np.round(comp.drums["kick"][0], 6))


@pytest.mark.parametrize("name", sorted(TIMBRES))
def test_timbre_plays_the_pitch_asked(name: str) -> None:
    sr = 22050
    freq = 110.0 if name in BASS_TIMBRES else 440.0
    y = TIMBRES[name].note(freq, sr, sr, np.random.default_rng(0))
    assert y.dtype == np.float32 and y.shape == (sr,) and np.abs(y).max() == pytest.approx(1.0)
    f0 = librosa.yin(y[: sr // 2], fmin=freq / 2.5, fmax=freq * 2.5, sr=sr, frame_length=2048)
    assert np.median(f0) == pytest.approx(freq, rel=0.015)


def test_silero_hears_the_synthetic_talker_as_speech() -> None:
    """The speech trouble clip must trip the music filter's speech rule, which reads silero-vad's ratio."""
    import soxr

    from m2ugen_data.analysis import speech
    from m2ugen_data.analysis.music_filter import MusicFilterConfig

    vad, sr = speech.load_vad(), 22050
    for seed in range(3):
        y = speech_like(6 * sr, sr, np.random.default_rng(seed))
        assert np.array_equal(y, speech_like(6 * sr, sr, np.random.default_rng(seed)))
        ratio = speech.speech_ratio(soxr.resample(y, sr, speech.SAMPLE_RATE), vad)
        assert ratio > MusicFilterConfig().max_speech_ratio, (seed, ratio)


def test_cli_synth_writes_a_corpus(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from m2ugen_data.cli import app

    out = tmp_path / "corpus"
    result = CliRunner().invoke(
        app, ["--warehouse", str(tmp_path / "wh"), "synth", "--n", "3", "--seed", "2", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert load_truth(out).num_rows == 3 and len(list((out / "audio").glob("*.flac"))) == 3
