"""Converters: small files written in the exact public layouts of MusicQA (MU-LLaMA JSON and a Parquet export),
Alpaca (``alpaca_data.json``) and COCO captions (``captions_train2014.json`` + images) -> shards the trainer
takes by name; every bad record is rejected with a reason and the run goes on."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from m2ugen_data.cli import app
from m2ugen_data.shards.read import iter_shard_samples
from m2ugen_data.shards.sample_schema import parse_sample_json
from m2ugen_model.train.data import discover_shards, stage_mixture
from m2ugen_model.train.examples import PROMPT_TEMPLATE, to_example
from m2ugen_model.train.media import MediaSpec

SPEC = MediaSpec(audio_rate=16000, audio_seconds=0.5, image_size=32)


def _wav(path: Path, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    return path


def _convert(wh: Path, *args: str) -> dict:
    res = CliRunner().invoke(app, ["--warehouse", str(wh), "convert", *args], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    name = next((args[i + 1] for i, a in enumerate(args) if a == "--name"), args[0])
    return json.loads((wh / "shards" / name / "conversion.json").read_text())


def _samples(wh: Path, name: str) -> list[dict]:
    return [s for p in sorted((wh / "shards" / name).glob("*.tar")) for s in iter_shard_samples(p)]


def test_musicqa_json_layout(tmp_path):
    audios = tmp_path / "MusicQA" / "audios"
    _wav(audios / "012542.wav", 220.0)
    _wav(audios / "012543.wav", 880.0)
    (audios / "012544.wav").write_bytes(b"RIFF not really a wav")
    qa = lambda q, a: [{"from": "human", "value": q}, {"from": "gpt", "value": a}]  # noqa: E731
    records = [
        {"audio_name": "012542.wav", "conversation": qa("Describe the audio", "A low calm tone.")},
        {"audio_name": "012543.wav", "conversation": qa("What is the tempo?", "It is fast.") + qa("Is it loud?", "No.")},
        {"audio_name": "missing.wav", "conversation": qa("Q", "A")},
        {"audio_name": "../../etc/passwd.wav", "conversation": qa("Q", "A")},
        {"audio_name": "012544.wav", "conversation": qa("Q", "A")},
        {"audio_name": "012542.wav", "conversation": [{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q"}]},
        {"audio_name": "012542.wav", "conversation": qa("Describe the audio", "")},
    ]
    src = tmp_path / "MusicQA" / "FinetuneMusicQA.json"
    src.write_text(json.dumps(records, indent=2))
    wh = tmp_path / "wh"
    report = _convert(wh, "musicqa", str(src), "--audio-dir", str(audios))
    assert report["samples"] == 3 and report["rejected"] == 5
    assert report["rejected_by_reason"] == {"audio_missing": 1, "bad_audio_name": 1, "audio_unreadable": 1,
                                            "bad_conversation": 2}
    samples = _samples(wh, "musicqa")
    assert [s["__key__"] for s in samples] == ["FinetuneMusicQA-0000000-0", "FinetuneMusicQA-0000001-0",
                                               "FinetuneMusicQA-0000001-1"]
    assert samples[0]["input.wav"] == (audios / "012542.wav").read_bytes()
    # what the trainer makes of it: a stage-3 question about the audio with a text answer (no [AUD])
    ex = to_example(samples[2], "musicqa", 3, SPEC)
    assert ex.prompt == PROMPT_TEMPLATE.format(instruction="Is it loud?") and ex.answer == "No."
    assert ex.modality == "audio" and ex.media.shape == (SPEC.audio_samples,) and ex.target_caption is None
    # taken by name from --extra-shards
    found = discover_shards([], [f"musicqa={wh / 'shards' / 'musicqa'}"])
    assert [s.name for s in stage_mixture(3, found, None, ("musicqa",))] == ["musicqa"]


def test_musicqa_parquet_layout_with_embedded_audio(tmp_path):
    buf = io.BytesIO()
    sf.write(buf, np.zeros(4000, np.float32) + 0.1, 16000, format="WAV")
    table = pa.table({
        "Music": [{"bytes": buf.getvalue(), "path": "a.wav"}, {"bytes": b"garbage", "path": "b.xyz"},
                  {"bytes": buf.getvalue(), "path": "c.wav"}],
        "Question": ["What instrument plays?", "Q", "  "],
        "Answer": ["A synth.", "A", "A"],
    })
    src = tmp_path / "musicqa-train.parquet"
    pq.write_table(table, src)
    wh = tmp_path / "wh"
    report = _convert(wh, "musicqa", str(src), "--name", "musicqa_hf")
    assert (report["samples"], report["rejected_by_reason"]) == (1, {"audio_unreadable": 1, "bad_conversation": 1})
    (s,) = _samples(wh, "musicqa_hf")
    meta = parse_sample_json(s["json"])
    assert meta.input_file == "a.wav" and meta.conversation[0].value == "What instrument plays?"
    assert to_example(s, "musicqa_hf", 3, SPEC).answer == "A synth."


def test_alpaca_layout(tmp_path):
    src = tmp_path / "alpaca_data.json"
    src.write_text(json.dumps([
        {"instruction": "Give three tips for staying healthy.", "input": "", "output": "1. Eat well."},
        {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
        {"instruction": "Say nothing.", "input": "", "output": ""},
        ["not", "an", "object"],
        {"instruction": "Sum.", "input": 3, "output": "3"},
    ], indent=4))
    wh = tmp_path / "wh"
    report = _convert(wh, "alpaca", str(src))
    assert report["samples"] == 2
    assert report["rejected_by_reason"] == {"bad_input_field": 1, "empty_instruction_or_output": 1, "not_an_object": 1}
    a, b = _samples(wh, "alpaca")
    assert to_example(b, "alpaca", 3, SPEC).prompt == PROMPT_TEMPLATE.format(instruction="Translate to French.\n\nGood morning")
    assert to_example(a, "alpaca", 3, SPEC).answer == "1. Eat well." and to_example(a, "alpaca", 3, SPEC).media is None
    with pytest.raises(Exception, match="no_caption"):  # text-only: nothing for stage 1
        to_example(a, "alpaca", 1, SPEC)


def test_coco_captions_layout(tmp_path):
    images = tmp_path / "train2014"
    images.mkdir()
    for image_id, color in ((9, "red"), (25, "blue")):
        Image.new("RGB", (48, 40), color).save(images / f"COCO_train2014_{image_id:012d}.jpg")
    (images / "COCO_train2014_000000000030.jpg").write_bytes(b"\xff\xd8 truncated")
    captions = {
        "info": {"description": "COCO 2014 Dataset"}, "licenses": [],
        "images": [{"id": i, "file_name": f"COCO_train2014_{i:012d}.jpg", "width": 48, "height": 40}
                   for i in (9, 25, 30, 42)],
        "annotations": [
            {"id": 661611, "image_id": 9, "caption": "A red square on a table. "},
            {"id": 661612, "image_id": 9, "caption": "Something red."},
            {"id": 1001, "image_id": 25, "caption": "A blue\nsky."},
            {"id": 1002, "image_id": 25, "caption": " "},
            {"id": 2001, "image_id": 30, "caption": "Broken image."},
            {"id": 3001, "image_id": 42, "caption": "Image file not on disk."},
            {"id": 4001, "image_id": 77, "caption": "Image not listed."},
        ],
    }
    src = tmp_path / "annotations" / "captions_train2014.json"
    src.parent.mkdir()
    src.write_text(json.dumps(captions))
    wh = tmp_path / "wh"
    report = _convert(wh, "coco", str(src), "--images-dir", str(images))
    assert report["samples"] == 3
    assert report["rejected_by_reason"] == {"empty_caption": 1, "image_unreadable": 1, "image_missing": 1,
                                            "image_not_listed": 1}
    samples = _samples(wh, "coco")
    assert [s["__key__"] for s in samples] == ["coco000000000009_661611", "coco000000000009_661612",
                                               "coco000000000025_1001"]
    ex = to_example(samples[2], "coco", 1, SPEC)  # stage 1: image captioning
    assert ex.modality == "image" and ex.answer == "A blue sky." and ex.media.shape == (32, 32, 3)
    assert ex.media[..., 2].mean() > 200 and ex.media[..., 0].mean() < 50  # the blue image
    assert _convert(wh, "coco", str(src), "--images-dir", str(images), "--captions-per-image", "1")["samples"] == 2


def test_unreadable_source_is_one_line(tmp_path):
    src = tmp_path / "alpaca_data.json"
    src.write_text("{not json")
    from m2ugen_data.convert.alpaca import iter_alpaca
    from m2ugen_data.convert.common import ConvertError, Rejects

    with pytest.raises(ConvertError, match="alpaca_data.json: not valid JSON"):
        list(iter_alpaca(src, Rejects()))
