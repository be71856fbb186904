"""``m2ugen-data decontaminate``: evaluation audio found in the warehouse by sound (renamed files no ID list
finds, as MusicQA's), by ID (file names, lists), unreadable evaluation files recorded while the run goes on,
and every training sample kept clear of the matched clips."""

from __future__ import annotations

import json
import subprocess

import pyarrow.parquet as pq
import pytest
from dedup_warehouse import add_features
from typer.testing import CliRunner

from m2ugen_data.audioset.synthetic_import import import_synthetic
from m2ugen_data.cli import app
from m2ugen_data.contamination.decontaminate import decontaminate
from m2ugen_data.clean.gate import load_gate


@pytest.fixture
def corpus_warehouse(warehouse, synth_corpus):
    import_synthetic(warehouse, synth_corpus, "mucaps")
    truth = pq.read_table(synth_corpus / "truth.parquet").to_pylist()
    add_features(warehouse, [r["clip_id"] for r in truth])
    clean = [r["clip_id"] for r in truth if r["trouble"] == "none"]
    return warehouse, synth_corpus, clean


def test_renamed_eval_audio_is_found_by_sound_and_unreadable_files_recorded(corpus_warehouse, tmp_path):
    """Before: MusicQA-style renamed evaluation audio (000000.wav) passed into training; no ID list finds it."""
    wh, corpus, clean = corpus_warehouse
    x, y = clean[0], clean[3]
    evald = tmp_path / "MusicQA-eval"
    evald.mkdir()
    # a re-encoded copy of x's last 6 s, renamed as MusicQA renames its audio
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", "4", "-i", str(corpus / "audio" / f"{x}.flac"),
                    "-ar", "16000", "-c:a", "pcm_s16le", str(evald / "000000.wav")], check=True)
    (evald / "000001.wav").write_bytes(b"RIFF....not audio at all")  # unreadable: recorded, the run goes on
    (evald / f"{y}.flac").write_bytes((corpus / "audio" / f"{y}.flac").read_bytes())  # named by its clip id
    (report,) = decontaminate(wh, [f"musicqa={evald}"])
    assert report.items == 3 and [u[0] for u in report.unreadable] == ["000001.wav"]
    rows = {r["clip_id"]: r for r in wh.read("contamination").to_pylist()}
    assert rows[x]["matched_by"] == "sound" and rows[x]["eval_item"] == "000000.wav"
    assert rows[y]["matched_by"] == "id"
    assert set(rows) == {x, y} and report.by_sound == 1 and report.by_id == 1
    assert 3.5 < rows[x]["offset_s"] < 4.5  # where the evaluation clip starts in the training clip
    gate = load_gate(wh, "mucaps")
    assert gate.reason([x]) == "contaminated" and gate.reason([clean[1]]) is None


def test_an_eval_list_matches_by_id_and_cli_reports(corpus_warehouse, tmp_path):
    wh, _, clean = corpus_warehouse
    lst = tmp_path / "mybench.csv"
    lst.write_text(f"ytid,start_s,end_s\n{clean[2][:11]},,\n")
    report_path = tmp_path / "report.json"
    result = CliRunner().invoke(app, ["-w", str(wh.root), "decontaminate", "--against", str(lst),
                                      "--report", str(report_path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "mybench" in result.output and report_path.is_file()
    assert wh.read("contamination").column("clip_id").to_pylist() == [clean[2]]
    # a rerun replaces the benchmark's batch instead of adding to it
    CliRunner().invoke(app, ["-w", str(wh.root), "decontaminate", "--against", str(lst)])
    assert wh.read("contamination").num_rows == 1


def test_musicqa_converter_drops_eval_audio_and_held_out_clips(corpus_warehouse, tmp_path):
    """Before: MusicQA's renamed MusicCaps audio and audio of the warehouse's held-out split passed through."""
    from m2ugen_data.clean.split import Split, record_split
    from m2ugen_data.dedup.backfill import fingerprint_missing

    wh, corpus, clean = corpus_warehouse
    fingerprint_missing(wh, workers=1)
    fraction = 0.5
    held = next(c for c in clean if Split("mucaps", fraction).held_out(c[:11]))
    free = [c for c in clean if not Split("mucaps", fraction).held_out(c[:11])]
    record_split(wh, "mucaps", fraction)
    musiccaps = tmp_path / "musiccaps"
    musiccaps.mkdir()
    (musiccaps / "AAAAAAAAAAA.flac").write_bytes((corpus / "audio" / f"{free[0]}.flac").read_bytes())
    audios = tmp_path / "MusicQA" / "audios"
    audios.mkdir(parents=True)
    for name, clip in (("000000.wav", free[0]), ("000001.wav", held), ("000002.wav", free[1])):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(corpus / "audio" / f"{clip}.flac"), "-ar", "16000",
                        str(audios / name)], check=True)
    qa = [{"from": "human", "value": "Describe the music."}, {"from": "gpt", "value": "Music."}]
    src = tmp_path / "MusicQA" / "PretrainMusicQA.json"
    src.write_text(json.dumps([{"audio_name": f"00000{i}.wav", "conversation": qa} for i in range(3)]))
    res = CliRunner().invoke(app, ["-w", str(wh.root), "convert", "musicqa", str(src), "--audio-dir", str(audios),
                                   "--decontaminate-against", f"musiccaps={musiccaps}"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads((wh.root / "shards" / "musicqa" / "conversion.json").read_text())
    assert report["samples"] == 1
    assert report["rejected_by_reason"] == {"eval:musiccaps": 1, "eval:held_out:mucaps": 1}


def test_eval_shards_match_by_key_and_short_audio_is_recorded(warehouse, tmp_path):
    """Our own eval splits as an evaluation set: their keys name the clips; their 1 s tones are too short to
    fingerprint, which the report lists (never a silent pass)."""
    from shard_warehouse import make_tiny_warehouse

    from m2ugen_data.eval_splits import write_eval_splits

    tiny = make_tiny_warehouse(warehouse, n_clips=16)
    (res,) = write_eval_splits(warehouse, ["mucaps"], fraction=0.3, export_dir=tmp_path / "eval",
                               source_options={"mucaps": {"label_name": tiny.label_name}})
    (report,) = decontaminate(warehouse, [f"ours={warehouse.root / 'shards' / 'mucaps_eval'}"], rewrite_shards=False)
    assert report.by_id == res.counts["eval"] > 0
    assert len(report.unreadable) == report.items and all("too_short" in why for _, why in report.unreadable)
