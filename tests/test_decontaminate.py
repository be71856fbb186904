"""``m2ugen-data decontaminate``: evaluation audio found in the warehouse by sound (renamed files no ID list
finds, as MusicQA's), by ID (file names, lists), unreadable evaluation files recorded while the run goes on,
and every training sample kept clear of the matched clips."""

from __future__ import annotations

import subprocess

import pyarrow.parquet as pq
import pytest
from dedup_warehouse import add_features
from typer.testing import CliRunner

from m2ugen_data.audioset.synthetic_import import import_synthetic
from m2ugen_data.cli import app
from m2ugen_data.contamination.decontaminate import decontaminate
from m2ugen_data.contamination.gate import load_gate


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
