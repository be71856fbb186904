"""A tiny hand-made warehouse for shard tests (and the trainer's): manifest rows + real FLAC sine tones.

Each clip is a 1 s sine whose frequency is known (``TinyWarehouse.freq``), so a test can check that the audio
in a shard belongs to the key it is filed under. Rows are written straight through ``Warehouse.write_batch``
so nothing depends on the download, analysis, caption or dialogue stages.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from rows import with_nulls

from m2ugen_data.audio_io import write_flac
from m2ugen_data.ids import make_clip_id
from m2ugen_data.warehouse import Warehouse

SR = 16000
T0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
LABEL_NAMES = {"/m/04rlf": "Music", "/m/042v_gx": "Acoustic guitar", "/m/05r5c": "Piano", "/m/064t9": "Pop music"}


@dataclass
class TinyWarehouse:
    wh: Warehouse
    clip_ids: list[str]
    freq: dict[str, float]
    ok_pairs: list[tuple[str, str]] = field(default_factory=list)
    rejected_pairs: list[tuple[str, str]] = field(default_factory=list)

    def label_name(self, mid: str) -> str:
        return LABEL_NAMES.get(mid, mid)


def dominant_hz(y: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * sr / len(y))


def make_tiny_warehouse(wh: Warehouse, n_clips: int = 8, seconds: float = 1.0) -> TinyWarehouse:
    """``n_clips`` clips in pool mucaps/muedit (alternating), all music, all captioned; MUEdit pairs with
    ok dialogues, one pair whose only dialogue is rejected and one whose newest dialogue is rejected."""
    clip_ids = [make_clip_id(f"yt{i:09d}", 30.0 + i) for i in range(n_clips)]
    freq = {c: 220.0 + 40.0 * i for i, c in enumerate(clip_ids)}
    t = np.arange(int(SR * seconds)) / SR
    segments, clips, features, captions = [], [], [], []
    for i, c in enumerate(clip_ids):
        path = write_flac(wh.media_path("audio", c, "flac"), 0.5 * np.sin(2 * np.pi * freq[c] * t), SR)
        labels = ["/m/04rlf", "/m/042v_gx" if i % 2 else "/m/05r5c"]
        segments.append(
            {"clip_id": c, "ytid": c[:11], "start_s": 30.0 + i, "end_s": 40.0 + i, "labels": labels,
             "instruments": labels[1:], "genres": [], "moods": [], "pool": "mucaps" if i % 2 == 0 else "muedit",
             "source": "balanced_train", "updated_at": T0}
        )
        clips.append(
            {"clip_id": c, "status": "ok", "error_class": None, "error": None, "attempts": 1,
             "audio_path": path.relative_to(wh.root).as_posix(), "video_path": None, "duration_s": seconds,
             "sample_rate": SR, "bytes": path.stat().st_size, "sha256": f"{i:064x}", "span": None, "span_start_s": None,
             "updated_at": T0}
        )
        features.append(
            with_nulls("features", {"clip_id": c, "status": "ok", "reason": None, "analyser_version": "test-1", "duration_s": seconds,
             "tempo_bpm": 100.0 + i, "tempo_conf": 0.9, "beats": [0.1, 0.7], "downbeats": [0.1], "meter": 4,
             "key": "A minor", "key_conf": 0.8, "loudness_lufs": -14.0, "peak_dbfs": -6.0, "clip_ratio": 0.0,
             "silence_ratio": 0.0, "speech_ratio": float("nan"), "onset_rate": 2.0, "centroid_hz": freq[c],
             "chroma": [0.1] * 12, "timbre": [0.0] * 4, "is_music": True, "music_reasons": [], "updated_at": T0})
        )
        captions.append(
            {"clip_id": c, "backend": "grounded", "text": f"A {freq[c]:.0f} Hz tone at {100 + i} BPM."}
        )
    wh.write_batch("segments", segments, "seg-0")
    wh.write_batch("clips", clips, "clips-0")
    wh.write_batch("features", features, "feat-0")
    wh.write_batch(
        "captions",
        [with_nulls("captions", {"item_id": r["clip_id"], "modality": "audio", "backend": r["backend"],
                                 "model": None, "prompt_hash": "p0", "text": r["text"], "created_at": T0})
         for r in captions],
        "cap-0",
    )
    tw = TinyWarehouse(wh, clip_ids, freq)
    pairs, dialogues = [], []
    for i in range(0, n_clips - 1):
        src, tgt = clip_ids[i], clip_ids[i + 1]
        pairs.append(
            with_nulls("pairs", {"src_id": src, "tgt_id": tgt, "tempo_src": 100.0 + i, "tempo_tgt": 101.0 + i,
             "tempo_ratio": (101.0 + i) / (100.0 + i), "meter": 4, "key_src": "A minor", "key_tgt": "A minor",
             "labels_added": ["/m/042v_gx"], "labels_removed": [], "label_jaccard": 0.5, "timbre_dist": 1.0,
             "beat_sim": 0.9, "score": 0.8, "miner_version": "test-1", "created_at": T0})
        )
        status = "rejected" if i == 2 else "ok"
        dialogues.append(_dialogue(src, tgt, status, T0))
        (tw.rejected_pairs if status == "rejected" else tw.ok_pairs).append((src, tgt))
    # the pair (0 -> 1) was accepted first and rejected by a later re-run: the newest row wins
    dialogues.append(_dialogue(clip_ids[0], clip_ids[1], "rejected", T0 + dt.timedelta(hours=1)))
    tw.ok_pairs.remove((clip_ids[0], clip_ids[1]))
    tw.rejected_pairs.append((clip_ids[0], clip_ids[1]))
    wh.write_batch("pairs", pairs, "pairs-0")
    wh.write_batch("dialogues", dialogues[:-1], "dlg-0")
    wh.write_batch("dialogues", dialogues[-1:], "dlg-1")
    return tw


def _dialogue(src: str, tgt: str, status: str, at: dt.datetime) -> dict:
    return with_nulls("dialogues", {
        "dataset": "muedit", "sample_id": f"{src}__{tgt}", "input_id": src, "output_id": tgt,
        "human": f"Make {src} sound like {tgt}.", "gpt": f"Here is a music that is {tgt}.",
        "input_caption": f"caption of {src}", "output_caption": f"caption of {tgt}", "backend": "template",
        "model": None, "prompt_hash": "h0", "status": status, "reasons": [] if status == "ok" else ["off_topic"],
        "attempts": 1, "created_at": at,
    })
