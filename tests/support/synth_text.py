"""Warehouse rows built from the synthetic corpus truth, for the caption and dialogue tests.

Features and segments copy the truth (tempo, meter, key, instruments), so every caption and dialogue can be
checked against numbers and names the test knows independently of the code under test. By default the
columns the truth has nothing for (the measured tags, chords, ...) are null: these rows read like an analysis
from before measured content, whose captions speak from the segment labels. With ``measured=True`` the
instrument sets are what a tagger would report (``TAGGER_WORDS``: no word for organ or brass, "guitar" for
every guitar), as the integrated analysis writes them.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.synth.corpus import load_truth
from m2ugen_data.warehouse import Warehouse, utc_now
from rows import with_nulls

GENRE_ROOT, MOOD_ROOT = "/m/0kpv1t", "/t/dd00030"
# Truth instrument name -> the tagger word that hears it (names absent here have no tagger word).
TAGGER_WORDS = {
    "Acoustic guitar": "guitar",
    "Electric guitar": "guitar",
    "Bass guitar": "guitar",
    "Piano": "piano",
    "Synthesizer": "synth",
    "Flute": "flute",
    "Drum kit": "drums",
}


def tagger_words(truth_row: dict) -> list[str]:
    """The measured instrument set of a truth row, in tagger words."""
    return sorted({TAGGER_WORDS[n] for n in truth_row["instrument_names"] if n in TAGGER_WORDS})


def musical_truth(corpus: Path) -> list[dict]:
    """Truth rows of clips rendered without trouble (the ones whose features would be measured)."""
    return [r for r in load_truth(corpus).to_pylist() if r["trouble"] == "none" and r["tempo_bpm"]]


def fill_warehouse(wh: Warehouse, truth: list[dict], pool: str = "muedit", *, measured: bool = False) -> None:
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
            with_nulls("features", {
                "clip_id": r["clip_id"],
                "status": "ok",
                "reason": None,
                "analyser_version": "truth",
                "duration_s": r["duration_s"],
                "tempo_bpm": r["tempo_bpm"],
                "tempo_conf": 1.0,
                "tempo_prob": 1.0,  # the truth: right by construction
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
            } | (_measured_columns(r) if measured else {}))
        )
    wh.write_batch("segments", segments, "synth")
    wh.write_batch("features", features, "synth")


def _measured_columns(r: dict) -> dict:
    return {
        "instruments": tagger_words(r),
        "genres": ["rock"] if "/m/06by7" in r["labels"] else [],
        "moods": [],
        "vocals": "instrumental",
    }


def truth_pairs(truth: list[dict], *, measured: bool = False) -> list[dict]:
    """Sibling pairs (same composition, other instruments) plus pairs across groups (tempo and key change)."""
    now = utc_now()
    grouped = [r for r in truth if r["group_id"]]
    pairs = [(a, b) for a, b in itertools.permutations(grouped, 2) if a["group_id"] == b["group_id"]]
    pairs += list(zip(truth, truth[1:]))
    rows = []
    for a, b in {(a["clip_id"], b["clip_id"]): (a, b) for a, b in pairs}.values():
        ia, ib = set(a["instruments"]), set(b["instruments"])
        rows.append(
            with_nulls("pairs", {
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
            } | (_measured_change(a, b) if measured else {}))
        )
    return rows


def _measured_change(a: dict, b: dict) -> dict:
    wa, wb = tagger_words(a), tagger_words(b)
    return {"instruments_added": [w for w in wb if w not in wa], "instruments_removed": [w for w in wa if w not in wb]}
