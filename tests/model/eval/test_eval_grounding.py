"""m2ugen-eval checks listening and adherence: grounding controls (the same requests with the audio replaced by
silence or another clip) show each metric's drop, and generated music is measured by the data pipeline's
analysers against what the request named."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from typer.testing import CliRunner

from m2ugen_model.eval.adherence import adherence, check, parse_prompt, target_of
from m2ugen_model.eval.grounding import write_controls
from m2ugen_model.eval.run import evaluate_generation, evaluate_understanding
from m2ugen_model.eval.cli import app

REFS = ["A slow piano ballad in A minor.", "Fast rock with distorted guitar and drums.",
        "A calm flute melody over strings.", "Electronic dance music with a heavy synth bass."]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_controls_replace_every_audio(tmp_path):
    rows = []
    for i in range(5):
        sf.write(tmp_path / f"a{i}.wav", np.full(8000 * (i + 1), 0.1, np.float32), 8000)
        rows.append({"id": f"r{i}", "task": "caption", "audio": f"a{i}.wav"})
    rows.append({"id": "music", "task": "text2music", "prompt": "jazz"})  # not an understanding request
    written = write_controls(_jsonl(tmp_path / "requests.jsonl", rows), tmp_path / "ctl", seed=3)
    silence = [json.loads(x) for x in written["silence"].read_text().splitlines()]
    swapped = [json.loads(x) for x in written["swapped"].read_text().splitlines()]
    assert [r["id"] for r in silence] == [r["id"] for r in swapped] == [f"r{i}" for i in range(5)]
    for i, (s, w) in enumerate(zip(silence, swapped)):
        y, sr = sf.read(s["audio"])
        assert not np.any(y) and abs(len(y) / sr - (i + 1)) < 0.1  # silence of the clip's own length
        assert w["audio"] != str((tmp_path / f"a{i}.wav").resolve())  # never its own clip
    assert sorted(w["audio"] for w in swapped) == sorted(str((tmp_path / f"a{i}.wav").resolve()) for i in range(5))


@pytest.mark.slow
def test_report_shows_each_metrics_drop(tmp_path):
    """Before: the eval could not tell a listening model from a fluent one that ignores the audio."""
    refs = _jsonl(tmp_path / "refs.jsonl", [{"id": f"r{i}", "reference": t} for i, t in enumerate(REFS)])
    listening = _jsonl(tmp_path / "real.jsonl", [{"id": f"r{i}", "answer": t} for i, t in enumerate(REFS)])
    generic = _jsonl(tmp_path / "silence.jsonl", [{"id": f"r{i}", "answer": "A piece of music with instruments."}
                                                  for i in range(4)])
    swapped = _jsonl(tmp_path / "swapped.jsonl", [{"id": f"r{i}", "answer": REFS[(i + 1) % 4]} for i in range(4)])
    rep = evaluate_understanding(listening, refs, controls={"silence": generic, "swapped": swapped})
    assert rep.grounding["bleu"]["silence"]["drop"] > 30 and rep.grounding["rougeL"]["swapped"]["drop"] > 0.3
    # a model that does not listen: the same answers whatever the audio -> no drop at all
    deaf = evaluate_understanding(generic, refs, controls={"silence": generic, "swapped": generic})
    assert all(row[c]["drop"] == 0 for row in deaf.grounding.values() for c in ("silence", "swapped"))
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["understanding", "--predictions", str(listening), "--references", str(refs),
                                   "--control", f"silence={generic}", "--control", f"swapped={swapped}",
                                   "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = (out / "results.md").read_text()
    assert "Grounding controls" in md and "silence (drop)" in md
    assert json.loads((out / "results.json").read_text())["grounding"]["bleu"]["real"] > 50


def test_no_controls_says_so(tmp_path):
    refs = _jsonl(tmp_path / "refs.jsonl", [{"id": "a", "reference": REFS[0]}])
    rep = evaluate_understanding(_jsonl(tmp_path / "p.jsonl", [{"id": "a", "answer": REFS[0]}]), refs)
    assert "grounding" in rep.skipped_metrics and not rep.grounding


@pytest.mark.parametrize(("prompt", "tempo", "key", "present", "absent"), [
    ("A calm piano piece at 90 BPM in A minor", 90.0, "A minor", ["piano"], []),
    ("Replace the piano with a violin", None, None, ["violin"], ["piano"]),
    ("Rock at 140 bpm in F# major, no drums, with guitars", 140.0, "F# major", ["guitar"], ["drums"]),
    ("An upbeat jazz tune with saxophone", None, None, [], []),
])
def test_prompt_targets(prompt, tempo, key, present, absent):
    t = parse_prompt(prompt)
    assert (t.tempo_bpm, t.key, t.present, t.absent) == (tempo, key, present, absent)


def test_adherence_checks_what_was_asked():
    asked = target_of({"tempo_bpm": 120, "key": "A minor", "instruments": ["piano"], "absent": ["drums"],
                       "chords": ["A:min", "F:maj"]}, None)
    good = check(asked, {"tempo_bpm": 122.0, "key": "A minor", "instruments": ["piano", "strings"],
                         "beat_chords": ["A:min", "A:min", "F:maj", "N"]})
    assert all(r["met"] for r in good.values())
    bad = check(asked, {"tempo_bpm": 60.5, "key": "C major", "instruments": ["drums"], "beat_chords": ["C:maj"]})
    assert not any(r["met"] for r in bad.values()) and bad["tempo"]["met_any_octave"]  # half tempo: an octave off


def test_adherence_metrics_with_stub_measurements(tmp_path):
    files = {"a": tmp_path / "a.wav", "b": tmp_path / "b.wav", "c": tmp_path / "c.wav"}
    rows = {"a": {"id": "a", "prompt": "piano at 100 BPM"}, "b": {"id": "b", "prompt": "violin at 100 BPM"},
            "c": {"id": "c", "prompt": "something nice"}}
    measured = {files["a"]: {"tempo_bpm": 101.0, "instruments": ["piano"]},
                files["b"]: {"tempo_bpm": 130.0, "instruments": ["piano"]}}
    metrics, counts, items, failed = adherence(files, rows, lambda r: r["prompt"], measure=measured.__getitem__)
    assert metrics == {"adherence_tempo": 0.5, "adherence_instruments_present": 0.5, "adherence_tempo_any_octave": 0.5}
    assert counts["adherence_tempo"] == 2 and [i["id"] for i in items] == ["a", "b"] and not failed


@pytest.mark.slow
def test_adherence_with_the_pipelines_analysers(tmp_path, synth_corpus):
    """Real analysers on rendered music with known tempo and key (plumbing: synthetic audio)."""
    truth = [r for r in pq.read_table(synth_corpus / "truth.parquet").to_pylist() if r["trouble"] == "none"][:2]
    gen = tmp_path / "gen"
    gen.mkdir()
    rows = []
    for i, r in enumerate(truth):
        (gen / f"g{i}.flac").write_bytes((synth_corpus / "audio" / f"{r['clip_id']}.flac").read_bytes())
        asked = r["tempo_bpm"] if i == 0 else r["tempo_bpm"] * 1.3  # the second asks for a tempo it does not have
        rows.append({"id": f"g{i}", "prompt": f"music at {asked:.0f} BPM", "key": r["key"]})
    rep = evaluate_generation(gen, prompts=_jsonl(tmp_path / "prompts.jsonl", rows))
    by_id = {i["id"]: i for i in rep.adherence}
    assert not by_id["g1"]["tempo"]["met"] and rep.counts["adherence_tempo"] == 2
    assert "adherence_key" in rep.metrics
