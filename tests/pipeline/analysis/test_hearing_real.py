"""The analysis hears real sounds: General-MIDI renders through a real soundfont and recordings from Debian
packages, built by the dev-set code (small sets; the full tables are bench/bench_hearing.py's).

Each test asserts one behaviour the pipeline promises on audio nobody synthesised here: sound effects,
ambience, crowds and speech are rejected while music is kept; tempo and chords are heard; re-orchestrations
of the same excerpt are paired with every rule kept; captions name measured instruments and nothing the
measurements did not find. Skipped (with the reason) when fluidsynth/mma or the Debian sound packages are
missing: `make setup` installs them (scripts/devset-deps.sh).
"""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pyarrow as pa
import pytest

from m2ugen_data.analysis.music_filter import ClipLabels
from m2ugen_data.analysis.tag_words import GENRE_TAGS, INSTRUMENT_TAGS, MOOD_TAGS
from m2ugen_data.errors import M2UGenError, MissingDependencyError

pytestmark = pytest.mark.slow
MUSIC = ClipLabels(labels=("/m/04rlf",))  # every clip labelled Music, as AudioSet's noisy labels may say


def _analyse(job: tuple[str, str]) -> dict:
    from m2ugen_data.analysis.analyze import analyse_file

    return analyse_file(job[0], job[1], labels=MUSIC)[0]


def _analyse_all(root: Path, truth: list[dict]) -> dict[str, dict]:
    from m2ugen_data.analysis.analyze import init_worker

    jobs = [(t["clip_id"], str(root / t["path"])) for t in truth]
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=ctx, initializer=init_worker) as pool:
        return {r["clip_id"]: r for r in pool.map(_analyse, jobs)}


@pytest.fixture(scope="module")
def gm(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict[str, dict]]:
    from m2ugen_data.devset.gm import build_gm
    from m2ugen_data.devset.truth import read_truth

    out = tmp_path_factory.mktemp("gm")
    try:
        build_gm(out, n=24, seed=1)
    except MissingDependencyError as e:
        pytest.skip(f"GM dev-set tools not installed: {e}")
    truth = read_truth(out).to_pylist()
    return truth, _analyse_all(out, truth)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict], dict[str, dict]]:
    from m2ugen_data.devset.recordings import build_recordings
    from m2ugen_data.devset.truth import read_truth

    out = tmp_path_factory.mktemp("recordings")
    try:
        build_recordings(out, n=40, seed=1)
    except (MissingDependencyError, M2UGenError) as e:
        pytest.skip(f"recordings dev-set packages not installed: {e}")
    truth = read_truth(out).to_pylist()
    return truth, _analyse_all(out, truth)


def test_sound_effects_ambience_crowds_and_speech_are_rejected_and_music_kept(recordings) -> None:
    truth, rows = recordings
    music = [t for t in truth if t["is_music"]]
    other = [t for t in truth if not t["is_music"]]
    assert music and other and {t["category"] for t in other} >= {"sfx", "speech"}
    kept = sum(bool(rows[t["clip_id"]]["is_music"]) for t in music) / len(music)
    rejected = [t for t in other if not rows[t["clip_id"]]["is_music"]]
    assert kept >= 0.85, f"music kept {kept:.2f}"
    assert len(rejected) / len(other) >= 0.85, f"non-music rejected {len(rejected)}/{len(other)}"
    for t in rejected:  # a recorded, stable reason; and the score that backs it
        r = rows[t["clip_id"]]
        assert set(r["music_reasons"]) & {"not_music_like", "speech", "silent", "too_quiet"}, r["music_reasons"]
        assert r["music_score"] is not None


def test_tempo_beats_and_chords_are_heard_on_gm_renders(gm) -> None:
    from m2ugen_data.devset import metrics

    truth, rows = gm
    tempo = metrics.tempo_scores([t["tempo_bpm"] for t in truth], [rows[t["clip_id"]]["tempo_bpm"] for t in truth])
    assert tempo["acc2"] >= 0.9 and tempo["acc1"] >= 0.7, tempo
    refs = [metrics.chord_segments(t["chords"]) for t in truth]
    ests = []
    for t in truth:
        r = rows[t["clip_id"]]
        b, c = r["beats"], r["beat_chords"]
        ests.append(metrics.chord_segments([{"start": b[i], "end": b[i + 1], "label": x} for i, x in enumerate(c[: len(b) - 1])]))
    assert metrics.chord_scores(refs, ests, rules=("majmin",))["majmin"] >= 0.7


def test_reorchestrated_siblings_are_paired_and_every_pair_keeps_every_rule(gm) -> None:
    from m2ugen_data.pairs.evaluation import evaluate
    from m2ugen_data.schemas import FEATURES
    from m2ugen_data.warehouse import utc_now

    truth, rows = gm
    now = utc_now()
    features = pa.Table.from_pylist([rows[t["clip_id"]] | {"updated_at": now} for t in truth], schema=FEATURES.schema)
    report = evaluate(features, pa.Table.from_pylist(truth))
    assert report.true_pairs > 0
    assert report.violations == []
    assert report.recall_at_k >= 0.6, report


def test_captions_name_measured_instruments_and_nothing_unmeasured(gm) -> None:
    from m2ugen_data.facts.measured import facts_from_rows
    from m2ugen_data.captions.grounded import grounded_caption

    truth, rows = gm
    vocabulary = set(INSTRUMENT_TAGS) | set(GENRE_TAGS) | set(MOOD_TAGS)
    named = 0
    for t in truth:
        row = rows[t["clip_id"]]
        text = grounded_caption(facts_from_rows(t["clip_id"], row, None, lambda mid: mid)).lower()
        measured = set(row["instruments"] or ()) | set(row["genres"] or ()) | set(row["moods"] or ())
        said = {w for w in vocabulary if re.search(rf"\b{re.escape(w)}\b", text)}
        assert said <= measured, (text, measured)
        named += bool(set(row["instruments"] or ()) & said)
    assert named >= len(truth) // 3, f"only {named} of {len(truth)} captions name a measured instrument"
