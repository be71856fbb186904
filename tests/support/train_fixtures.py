"""Fixture shards for the trainer tests, written by the pipeline's real shard writer.

MUCaps: a short FLAC sine per clip + its JSON (the caption names the pitch, so captions are learnable from
the audio); MUEdit: input/output FLAC + the dialogue JSON. Everything is tiny so a test stays fast.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile as sf

from m2ugen_data.shards.samples import mucaps_sample, muedit_sample
from m2ugen_data.shards.tar_writer import Sample, ShardWriter

FEATS, TARGET = (3, 32), (8, 16)  # the tiny preset's audio feature and MusicGen-target shapes

NOTES = {220.0: "a low calm tone", 440.0: "a bright middle tone", 880.0: "a high sharp tone"}
RATE = 16000


def clip_id(i: int) -> str:
    return f"TESTclip{i:03d}_{1000 * i}"


def _flac(path: Path, freq: float, seconds: float = 0.5) -> Path:
    t = np.arange(int(RATE * seconds)) / RATE
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), RATE, format="FLAC")
    return path


def _clip_row(cid: str) -> dict:
    return {"clip_id": cid, "sha256": None, "sample_rate": RATE, "duration_s": 0.5}


def write_mucaps(root: Path, n: int, per_shard: int, dataset_dir: Path | None = None) -> list[Path]:
    """``n`` MUCaps samples in shards of ``per_shard`` under ``root/shards/mucaps``."""
    media = root / "media"
    freqs = list(NOTES)
    out = dataset_dir or root / "shards" / "mucaps"
    with ShardWriter(out, "mucaps", max_samples=per_shard) as w:
        for i in range(n):
            cid, f = clip_id(i), freqs[i % len(freqs)]
            w.write(mucaps_sample(audio=_flac(media / f"{cid}.flac", f), clip=_clip_row(cid), segment=None,
                                  features={"analyser_version": "test"},
                                  caption={"text": f"This is {NOTES[f]}.", "backend": "test"}))
    return sorted(out.glob("*.tar"))


def _npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a.astype(np.float32), allow_pickle=False)
    return buf.getvalue()


def _pattern(freq: float, shape: tuple[int, int]) -> np.ndarray:
    """A fixed array per pitch, standing in for encoder outputs / decoder embeddings the model can learn."""
    return np.random.default_rng(int(freq)).standard_normal(shape).astype(np.float32)


def write_muedit(root: Path, n: int, per_shard: int, feats: tuple[int, int] | None = None,
                 target: tuple[int, int] | None = None) -> list[Path]:
    """``n`` MUEdit samples; with ``feats``/``target`` shapes, precomputed ``input.feats.npy``/``target.npy``."""
    media = root / "media"
    freqs = list(NOTES)
    out = root / "shards" / "muedit"
    with ShardWriter(out, "muedit", max_samples=per_shard) as w:
        for i in range(n):
            src, tgt = clip_id(100 + i), clip_id(200 + i)
            fs, ft = freqs[i % 3], freqs[(i + 1) % 3]
            sample = muedit_sample(
                pair={"src_id": src, "tgt_id": tgt, "miner_version": "test"},
                dialogue={"status": "ok", "input_id": src, "output_id": tgt, "backend": "test",
                          "human": f"Change this music into {NOTES[ft]}.", "gpt": f"Here is a music that is {NOTES[ft]}.",
                          "input_caption": NOTES[fs], "output_caption": NOTES[ft]},
                src_audio=_flac(media / f"{src}.flac", fs), tgt_audio=_flac(media / f"{tgt}.flac", ft),
                src_clip=_clip_row(src), tgt_clip=_clip_row(tgt))
            extra = {}
            if feats:
                extra["input.feats.npy"] = _npy(_pattern(fs, feats))
            if target:
                extra["target.npy"] = _npy(0.1 * _pattern(ft, target))
            w.write(Sample(sample.key, {**sample.members, **extra}))
    return sorted(out.glob("*.tar"))


def tiny_tokenizer():
    """The tiny preset's tokenizer with the [AUD] tokens, without building a model (data tests)."""
    from m2ugen_model.presets import build_tiny_tokenizer

    tok = build_tiny_tokenizer()
    tok.add_tokens([f"[AUD{i}]" for i in range(8)])
    tok.pad_token = tok.unk_token
    return tok
