"""Warehouse rows built from the synthetic corpus truth, for the caption and dialogue tests.

Features and segments copy the truth (tempo, meter, key, instruments), so every caption and dialogue can be
checked against numbers and names the test knows independently of the code under test.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.synth.corpus import load_truth
from m2ugen_data.warehouse import Warehouse, utc_now

GENRE_ROOT, MOOD_ROOT = "/m/0kpv1t", "/t/dd00030"


def musical_truth(corpus: Path) -> list[dict]:
    """Truth rows of clips rendered without trouble (the ones whose features would be measured)."""
    return [r for r in load_truth(corpus).to_pylist() if r["trouble"] == "none" and r["tempo_bpm"]]


def fill_warehouse(wh: Warehouse, truth: list[dict], pool: str = "muedit") -> None:
    ont = load_ontology()
    now = utc_now()
    segments, features = [], []
    for r in truth:
        segments.append(
            {
                "clip_id": r["clip_id"],
                "ytid": r["ytid"],
                "start_s": 0.0,
                "end_s": 10.0,
                "labels": r["labels"],
                "instruments": r["instruments"],
                "genres": [m for m in r["labels"] if ont.is_under(m, GENRE_ROOT)],
                "moods": [m for m in r["labels"] if ont.is_under(m, MOOD_ROOT)],
                "pool": pool,
                "source": "synthetic",
                "updated_at": now,
            }
        )
        features.append(
            {
                "clip_id": r["clip_id"],
                "status": "ok",
                "reason": None,
                "analyser_version": "truth",
                "duration_s": r["duration_s"],
                "tempo_bpm": r["tempo_bpm"],
                "tempo_conf": 1.0,
                "beats": r["beats"],
                "downbeats": r["downbeats"],
                "meter": r["meter"],
                "key": r["key"],
                "key_conf": 1.0,
                "loudness_lufs": -14.5,
                "peak_dbfs": -1.0,
                "clip_ratio": 0.0,
                "silence_ratio": 0.0,
                "speech_ratio": 0.0,
                "onset_rate": 3.0,
                "centroid_hz": 1500.0,
                "chroma": None,
                "timbre": None,
                "is_music": True,
                "music_reasons": [],
                "updated_at": now,
            }
        )
    wh.write_batch("segments", segments, "synth")
    wh.write_batch("features", features, "synth")


def truth_pairs(truth: list[dict]) -> list[dict]:
    """Sibling pairs (same composition, other instruments) plus pairs across groups (tempo and key change)."""
    now = utc_now()
    grouped = [r for r in truth if r["group_id"]]
    pairs = [(a, b) for a, b in itertools.permutations(grouped, 2) if a["group_id"] == b["group_id"]]
    pairs += list(zip(truth, truth[1:]))
    rows = []
    for a, b in {(a["clip_id"], b["clip_id"]): (a, b) for a, b in pairs}.values():
        ia, ib = set(a["instruments"]), set(b["instruments"])
        rows.append(
            {
                "src_id": a["clip_id"],
                "tgt_id": b["clip_id"],
                "tempo_src": a["tempo_bpm"],
                "tempo_tgt": b["tempo_bpm"],
                "tempo_ratio": b["tempo_bpm"] / a["tempo_bpm"],
                "meter": a["meter"],
                "key_src": a["key"],
                "key_tgt": b["key"],
                "labels_added": sorted(ib - ia),
                "labels_removed": sorted(ia - ib),
                "label_jaccard": len(ia & ib) / len(ia | ib),
                "timbre_dist": 0.0,
                "beat_sim": 1.0,
                "score": 1.0,
                "miner_version": "truth",
                "created_at": now,
            }
        )
    return rows
