"""Near-duplicate groups by sound: copies of a clip under other IDs (re-encoded, cut and re-levelled, byte
copies) are grouped, MUEdit siblings (same notes, other instruments) are not, a dataset keeps one member, the
run is incremental and equals a full one, and a clip too short to fingerprint is counted, never unique.
(Synthetic audio: this proves the plumbing; accuracy on real sounds is bench/bench_dedup.py.)"""

from __future__ import annotations

import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest
from dedup_warehouse import add_clip, add_features
from rows import with_nulls

from m2ugen_data.analysis import fingerprint as F
from m2ugen_data.audio_io import load_audio, write_flac
from m2ugen_data.audioset.synthetic_import import import_synthetic
from m2ugen_data.dedup.backfill import fingerprint_missing
from m2ugen_data.dedup.groups import find_duplicates
from m2ugen_data.dedup.match import compare
from m2ugen_data.ids import make_clip_id
from m2ugen_data.schemas import FEATURES
from m2ugen_data.warehouse import conform, utc_now


@pytest.fixture
def dup_warehouse(warehouse, synth_corpus, tmp_path):
    """The synthetic corpus (siblings included) plus three copies under new IDs."""
    import_synthetic(warehouse, synth_corpus, "muedit")
    truth = pq.read_table(synth_corpus / "truth.parquet").to_pylist()
    ids = [r["clip_id"] for r in truth]
    add_features(warehouse, ids)
    clean = [r["clip_id"] for r in truth if r["trouble"] == "none"]
    x, y, z = clean[0], clean[1], clean[2]
    audio = {c: synth_corpus / "audio" / f"{c}.flac" for c in ids}
    copies = {}
    mp3 = tmp_path / "x.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(audio[x]), "-b:a", "64k", str(mp3)], check=True)
    copies[make_clip_id("copyXXXXXXX", 0)] = (x, mp3)
    sig, sr = load_audio(audio[y])
    cut = write_flac(tmp_path / "y.flac", 0.5 * sig[int(2.3 * sr):], sr)  # cut at 2.3 s and 6 dB quieter
    copies[make_clip_id("copyYYYYYYY", 0)] = (y, cut)
    copies[make_clip_id("copyZZZZZZZ", 0)] = (z, audio[z])  # the same bytes
    for cid, (_, path) in copies.items():
        add_clip(warehouse, cid, path)
    fingerprint_missing(warehouse, workers=1)
    siblings = {}
    for r in truth:
        if r["group_id"] and r["trouble"] == "none":
            siblings.setdefault(r["group_id"], []).append(r["clip_id"])
    return warehouse, copies, [g for g in siblings.values() if len(g) > 1], truth


def test_copies_are_grouped_and_siblings_are_not(dup_warehouse):
    wh, copies, sibling_groups, truth = dup_warehouse
    summary = find_duplicates(wh)
    rows = {r["clip_id"]: r for r in wh.read("duplicates").to_pylist()}
    for copy_id, (original, _) in copies.items():
        assert rows[copy_id]["group_id"] == rows[original]["group_id"], copy_id
    assert rows[make_clip_id("copyZZZZZZZ", 0)]["match"] == "exact"
    groups = {}
    for r in rows.values():
        groups.setdefault(r["group_id"], set()).add(r["clip_id"])
    assert len(groups) == 3 and all(len(g) == 2 for g in groups.values())
    for sib in sibling_groups:  # MUEdit's pairs must survive deduplication
        assert len({rows[c]["group_id"] if c in rows else c for c in sib}) == len(sib)
    assert summary.groups == 3 and summary.dropped == 3
    assert all(sum(rows[c]["canonical"] for c in g) == 1 for g in groups.values())
    short = sum(r["trouble"] == "short" for r in truth)
    assert short and summary.not_fingerprinted == {"too_short": short}  # counted, never taken as unique
    assert summary.fingerprinted == summary.clips - short


def test_too_short_clip_is_recorded_not_unique(warehouse, tmp_path):
    sr = 22050
    t = np.arange(int(1.5 * sr)) / sr
    path = write_flac(tmp_path / "s.flac", 0.3 * np.sin(2 * np.pi * 440 * t), sr)
    cid = make_clip_id("shortAAAAAA", 0)
    add_clip(warehouse, cid, path)
    fingerprint_missing(warehouse, workers=1)
    row = warehouse.read("features").to_pylist()[0]
    assert row["fp_status"] == "too_short" and row["fp_landmarks"] is None
    summary = find_duplicates(warehouse)
    assert summary.not_fingerprinted == {"too_short": 1} and summary.fingerprinted == 0


def test_incremental_equals_full(dup_warehouse, tmp_path):
    wh, copies, _, _ = dup_warehouse
    first = find_duplicates(wh)
    assert not first.incremental
    # a new copy arrives: only it is searched
    x = next(iter(copies.values()))[0]
    src = wh.abspath(wh.read("clips", where=f"clip_id = '{x}'").column("audio_path")[0].as_py())
    sig, sr = load_audio(src)
    shifted = write_flac(tmp_path / "w.flac", np.concatenate([np.zeros(int(0.77 * sr), np.float32), sig]) * 0.8, sr)
    add_clip(wh, make_clip_id("copyWWWWWWW", 0), shifted)
    fingerprint_missing(wh, workers=1)
    inc = find_duplicates(wh)
    assert inc.incremental and inc.new == 1
    inc_rows = sorted((r["clip_id"], r["group_id"], r["canonical"], r["match"]) for r in wh.read("duplicates").to_pylist())
    full = find_duplicates(wh, full=True)
    full_rows = sorted((r["clip_id"], r["group_id"], r["canonical"], r["match"]) for r in wh.read("duplicates").to_pylist())
    assert inc_rows == full_rows and not full.incremental
    assert any(r[0] == make_clip_id("copyWWWWWWW", 0) for r in full_rows)


def test_old_warehouse_without_fingerprints_is_backfilled(warehouse, synth_corpus):
    import_synthetic(warehouse, synth_corpus, "muedit")
    ids = [r["clip_id"] for r in pq.read_table(synth_corpus / "truth.parquet").to_pylist()][:4]
    rows = [with_nulls("features", {"clip_id": c, "status": "ok", "analyser_version": "old", "beats": [],
                                    "downbeats": [], "music_reasons": [], "updated_at": utc_now()}) for c in ids]
    table = conform(FEATURES, rows)
    old = table.drop_columns([n for n in table.column_names if n.startswith("fp_")])  # a schema-2 batch
    old = old.replace_schema_metadata({b"m2ugen.manifest": b"features", b"m2ugen.schema_version": b"2"})
    warehouse.manifest_dir("features").mkdir(parents=True, exist_ok=True)
    pq.write_table(old, warehouse.manifest_dir("features") / "features-old.parquet")
    assert find_duplicates(warehouse).not_fingerprinted == {"missing": 4}
    assert fingerprint_missing(warehouse, workers=1).todo == 4
    assert find_duplicates(warehouse).fingerprinted == 4


def test_sibling_renders_are_not_duplicates_by_the_rule(synth_corpus):
    """The matcher itself: siblings share notes and timing (many landmarks) but not their sound."""
    truth = pq.read_table(synth_corpus / "truth.parquet").to_pylist()
    groups = {}
    for r in truth:
        if r["group_id"] and r["trouble"] == "none":
            groups.setdefault(r["group_id"], []).append(r["clip_id"])
    fps = {c: F.fingerprint_file(synth_corpus / "audio" / f"{c}.flac") for g in groups.values() for c in g}
    for g in groups.values():
        for i in range(len(g)):
            for j in range(i + 1, len(g)):
                assert not compare(fps[g[i]], fps[g[j]]).duplicate, (g[i], g[j])


def test_remaster_candidates_need_every_measurement_to_agree():
    """The re-master rule's blocking and tolerances (its landmark support is checked on real fingerprints
    by ``remaster_links``): same key, meter, tempo within 1 %, near-identical tags, chroma and chords."""
    import pyarrow as pa

    from m2ugen_data.dedup.remaster import RemasterRules, candidates

    tags = np.linspace(0.01, 0.5, 50).tolist()
    other = tags[::-1]
    chroma, harmony = [1.0] + [0.1] * 11, [1.0] + [0.0] * 23
    rows = [  # 0 and 1: a re-master pair; 2: its sibling (other instruments); 3: 3 % faster; 4: another key
        (120.0, "A minor", tags, chroma), (120.5, "A minor", tags, chroma), (120.2, "A minor", other, chroma),
        (123.6, "A minor", tags, chroma), (120.1, "C major", tags, chroma),
    ]
    t = pa.table({"tempo_bpm": [r[0] for r in rows], "key": [r[1] for r in rows], "meter": [4] * 5,
                  "tags_mtt": [r[2] for r in rows], "tags_msd": [r[2] for r in rows],
                  "chroma": [r[3] for r in rows], "harmony": [harmony] * 5})
    assert candidates(t, RemasterRules()) == [(0, 1)]
