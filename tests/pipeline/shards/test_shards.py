"""Shards written from a hand-made warehouse: contents, rolling, reproducibility, crash safety, manifest."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
import webdataset as wds
from shard_warehouse import SR, dominant_hz, make_tiny_warehouse

from m2ugen_data.shards import (
    Sample,
    ShardError,
    build_dataset_shards,
    iter_shard_samples,
    parse_sample_json,
    shard_paths,
    verify_shards,
    write_dataset_shards,
)
from m2ugen_data.shards.sample_schema import SampleSchemaError
from m2ugen_data.warehouse import open_warehouse
from paths import REPO



@pytest.fixture
def tiny(warehouse):
    return make_tiny_warehouse(warehouse)


def _wds_samples(paths: list[Path]) -> list[dict]:
    ds = wds.WebDataset([str(p) for p in paths], shardshuffle=False, empty_check=False)
    return list(ds)


def test_mucaps_shards_open_with_webdataset_and_match_manifest(tiny):
    build = build_dataset_shards(tiny.wh, "mucaps", max_samples=3, label_name=tiny.label_name)
    expected = sorted(c for i, c in enumerate(tiny.clip_ids) if i % 2 == 0)  # pool mucaps
    samples = _wds_samples(shard_paths(tiny.wh, "mucaps"))
    assert [s["__key__"] for s in samples] == expected
    for s in samples:
        assert set(s) - {"__key__", "__url__", "__local_path__"} == {"flac", "json"}
        y, sr = sf.read(io.BytesIO(s["flac"]))
        assert sr == SR and len(y) == SR
        assert abs(dominant_hz(y, sr) - tiny.freq[s["__key__"]]) < 2.0
        record = parse_sample_json(s["json"])
        assert record.key == s["__key__"] and record.members == {"audio": "flac"}
        assert record.caption.startswith(f"A {tiny.freq[s['__key__']]:.0f} Hz tone")
        assert record.labels[0].name == "Music" and record.features.speech_ratio is None  # NaN -> null
        assert record.provenance.ytid == s["__key__"][:11] and record.caption_source.backend == "grounded"
    con = tiny.wh.connect()
    n, shards = con.execute("SELECT sum(samples), count(*) FROM shards_latest WHERE dataset = 'mucaps'").fetchone()
    assert (n, shards) == (len(samples), 2) and build.samples == len(samples)
    assert verify_shards(tiny.wh, "mucaps").ok


def test_muedit_shards_have_both_audios_and_exclude_rejected_dialogues(tiny):
    build = build_dataset_shards(tiny.wh, "muedit")
    samples = _wds_samples(shard_paths(tiny.wh, "muedit"))
    keys = [s["__key__"] for s in samples]
    assert keys == sorted(f"{a}__{b}" for a, b in tiny.ok_pairs)
    assert not {f"{a}__{b}" for a, b in tiny.rejected_pairs} & set(keys)
    assert len(tiny.rejected_pairs) == 2 and not build.skipped
    for s in samples:
        assert set(s) - {"__key__", "__url__", "__local_path__"} == {"input.flac", "output.flac", "json"}
        src, tgt = s["__key__"].split("__")
        for member, clip in (("input.flac", src), ("output.flac", tgt)):
            y, sr = sf.read(io.BytesIO(s[member]))
            assert abs(dominant_hz(y, sr) - tiny.freq[clip]) < 2.0
        record = parse_sample_json(s["json"], "muedit")
        ref = record.reference_record()
        assert ref["input_file"] == f"{src}.flac" and ref["output_file"] == f"{tgt}.flac"
        human, gpt = ref["conversation"]
        assert human == {"from": "human", "value": f"Make {src} sound like {tgt}.", "input_modality": "audio",
                         "caption": f"caption of {src}"}
        assert gpt["from"] == "gpt" and gpt["output_modality"] == "audio" and gpt["caption"] == f"caption of {tgt}"
        assert record.pair.miner_version == "test-1" and record.input.clip_id == src
    n = tiny.wh.connect().execute("SELECT sum(samples) FROM shards_latest WHERE dataset='muedit'").fetchone()[0]
    assert n == len(samples)


def test_missing_audio_file_is_skipped_and_counted(tiny):
    gone = tiny.clip_ids[4]  # a mucaps clip
    tiny.wh.media_path("audio", gone, "flac").unlink()
    build = build_dataset_shards(tiny.wh, "mucaps", label_name=tiny.label_name)
    assert build.skipped == Counter(audio_missing=1) and build.samples == 3
    assert gone not in {s["__key__"] for p in shard_paths(tiny.wh, "mucaps") for s in iter_shard_samples(p)}


def _audio_samples(tiny, n: int | None = None) -> list[Sample]:
    ids = tiny.clip_ids[:n] if n else tiny.clip_ids
    return [Sample(c, {"flac": tiny.wh.media_path("audio", c, "flac"), "json": json.dumps({"k": c}).encode()})
            for c in ids]


def test_rolling_by_count_and_by_size(tiny):
    rows = write_dataset_shards(tiny.wh, "demo", _audio_samples(tiny), max_samples=3, max_bytes=None)
    assert [r["samples"] for r in rows] == [3, 3, 2]
    assert [Path(r["path"]).name for r in rows] == ["demo-000000.tar", "demo-000001.tar", "demo-000002.tar"]
    assert [r["first_key"] for r in rows] == tiny.clip_ids[0:8:3]
    member = max(tiny.wh.media_path("audio", c, "flac").stat().st_size for c in tiny.clip_ids)
    limit = 3 * member + 10240 * 2
    rows = write_dataset_shards(tiny.wh, "demo", _audio_samples(tiny), max_samples=None, max_bytes=limit)
    assert len(rows) > 1 and all(r["bytes"] <= limit for r in rows)
    assert sum(r["samples"] for r in rows) == 8
    assert sorted(p.name for p in (tiny.wh.root / "shards" / "demo").glob("*.tar")) == [
        Path(r["path"]).name for r in rows
    ]  # the 3-shard set of the first call was replaced, its extra file removed
    rows = write_dataset_shards(tiny.wh, "demo", _audio_samples(tiny), max_samples=None, max_bytes=10240)
    assert [r["samples"] for r in rows] == [1] * 8  # each sample alone is over the limit: one per shard
    assert verify_shards(tiny.wh, "demo").ok


def test_same_inputs_give_byte_identical_shards(tmp_path):
    shas = []
    for run, workers in (("a", 1), ("b", 2)):
        wh = open_warehouse(tmp_path / run / "warehouse")
        tiny = make_tiny_warehouse(wh)
        for i, c in enumerate(tiny.clip_ids):  # different file times in each run
            os.utime(wh.media_path("audio", c, "flac"), (1e9 + i * 7 + len(run), 1e9 + i * 13 * len(run)))
        time.sleep(0.01)
        rows = build_dataset_shards(wh, "muedit", max_samples=2, workers=workers).shards
        shas.append([(r["path"], r["sha256"], r["bytes"]) for r in rows])
    assert shas[0] == shas[1] and len(shas[0]) == 3


def test_dotted_or_unsafe_keys_and_fields_are_rejected(tiny):
    audio = tiny.wh.media_path("audio", tiny.clip_ids[0], "flac")
    for key in ("a.b", "../x", "a/b", "", "x" * 81):
        with pytest.raises(ShardError, match="invalid sample key"):
            write_dataset_shards(tiny.wh, "demo", [Sample(key, {"flac": audio})])
    with pytest.raises(ShardError, match="invalid member field"):
        write_dataset_shards(tiny.wh, "demo", [Sample("ok", {"../flac": audio})])
    with pytest.raises(ShardError, match="duplicate sample key"):
        write_dataset_shards(tiny.wh, "demo", [Sample("k", {"flac": audio}), Sample("k", {"flac": audio})])
    assert not list((tiny.wh.root / "shards" / "demo").glob("*.tar"))


def test_sample_json_schema_rejects_incomplete_records():
    good = {
        "dataset": "muedit", "key": "abcdefghijk_1000__abcdefghijk_2000", "input_file": "abcdefghijk_1000.flac",
        "output_file": "abcdefghijk_2000.flac",
        "conversation": [
            {"from": "human", "value": "Add drums", "input_modality": "audio", "caption": "a"},
            {"from": "gpt", "value": "Here is a music that is b", "caption": "b", "output_modality": "audio"},
        ],
        "members": {"input": "input.flac", "output": "output.flac"},
        "input": {"clip_id": "abcdefghijk_1000", "ytid": "abcdefghijk", "start_s": 1.0, "end_s": None,
                  "source": None, "pool": None, "audio_sha256": None, "sample_rate": None, "duration_s": None},
        "output": {"clip_id": "abcdefghijk_2000", "ytid": "abcdefghijk", "start_s": 2.0, "end_s": None,
                   "source": None, "pool": None, "audio_sha256": None, "sample_rate": None, "duration_s": None},
        "dialogue": {"backend": "template", "model": None, "prompt_hash": None, "attempts": 1},
        "pair": {"tempo_src": 1.0, "tempo_tgt": 1.0, "tempo_ratio": 1.0, "meter": 4, "key_src": None,
                 "key_tgt": None, "labels_added": [], "labels_removed": [], "label_jaccard": None,
                 "timbre_dist": None, "beat_sim": None, "score": None, "miner_version": "v"},
    }
    assert parse_sample_json(json.dumps(good)).key == good["key"]
    bad_turn = json.loads(json.dumps(good))
    bad_turn["conversation"][1]["value"] = ""
    missing = {k: v for k, v in good.items() if k != "pair"}
    extra = dict(good, surprise=1)
    dotted = dict(good, key="abcdefghijk_1000.x")
    for bad in (bad_turn, missing, extra, dotted):
        with pytest.raises(SampleSchemaError):
            parse_sample_json(bad)
    with pytest.raises(SampleSchemaError, match="not valid JSON"):
        parse_sample_json(b"{nope")


_KILL_CHILD = r"""
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from m2ugen_data.shards import build_dataset_shards, tar_writer
from m2ugen_data.warehouse import open_warehouse
marker = Path(sys.argv[3])
real_header, calls = tar_writer._header, [0]
def header(name, size):
    calls[0] += 1
    if calls[0] == 5:  # shard 0: 2 samples x 3 members; stop in the middle of its second sample
        marker.write_text("mid-shard")
        time.sleep(600)
    return real_header(name, size)
tar_writer._header = header
build_dataset_shards(open_warehouse(sys.argv[1]), "muedit", max_samples=2, workers=1, full=True)  # one in flight
"""


def test_writer_killed_mid_shard_leaves_no_partial_tar(tiny, tmp_path):
    before = build_dataset_shards(tiny.wh, "muedit", max_samples=2).shards
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, str(tiny.wh.root), str(REPO), str(marker)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "child never reached the middle of a shard"
            time.sleep(0.05)
        shard_dir = tiny.wh.root / "shards" / "muedit"
        temps = [p for p in shard_dir.iterdir() if p.name.endswith(".tmp")]
        assert len(temps) == 1 and temps[0].stat().st_size > 0  # really mid-shard
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert sorted(p.name for p in shard_dir.glob("*.tar")) == [Path(r["path"]).name for r in before]
    assert verify_shards(tiny.wh, "muedit").ok  # manifest and files still agree
    after = build_dataset_shards(tiny.wh, "muedit", max_samples=2).shards
    assert [(r["path"], r["sha256"]) for r in after] == [(r["path"], r["sha256"]) for r in before]
    assert not [p for p in shard_dir.iterdir() if p.name.endswith(".tmp")]  # the rerun cleaned up


def test_verify_reports_tampering(tiny):
    build_dataset_shards(tiny.wh, "muedit", max_samples=2)
    paths = shard_paths(tiny.wh, "muedit")
    data = bytearray(paths[0].read_bytes())
    data[600] ^= 0xFF
    paths[0].write_bytes(bytes(data))
    (paths[0].parent / "muedit-000099.tar").write_bytes(b"\0" * 10240)
    check = verify_shards(tiny.wh, "muedit")
    assert not check.ok and len(check.problems) == 2
    assert "sha256" in check.problems[0] and "not in the manifest" in check.problems[1]


def test_cli_write_verify_export(tiny, tmp_path):
    from typer.testing import CliRunner

    from m2ugen_data.cli import app

    runner = CliRunner()
    base = ["--warehouse", str(tiny.wh.root)]
    res = runner.invoke(app, [*base, "shards", "write", "--dataset", "muedit", "--max-samples", "2"])
    assert res.exit_code == 0, res.output
    assert "5 samples in 3 shards" in res.output
    res = runner.invoke(app, [*base, "shards", "verify", "--dataset", "muedit"])
    assert res.exit_code == 0 and "0 problems" in res.output
    res = runner.invoke(app, [*base, "export", "--format", "m2ugen-json", "--dataset", "muedit", "--out",
                              str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "out" / "MUEdit" / "MUEditInstructions.json").read_text())) == 5
