"""Converters stay inside their input folders and bound their input: symlinks that leave the folder, image
headers that promise a decompression bomb, duplicate COCO image ids, deeply nested or oversized JSON, and a
conversion that would overwrite another dataset's shards are each refused with one line or a recorded
rejection."""

from __future__ import annotations

import hashlib
import io
import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PIL import Image
from typer.testing import CliRunner

from m2ugen_data.cli import app
from m2ugen_data.convert.alpaca import iter_alpaca
from m2ugen_data.convert.common import ConvertError, Rejects
from m2ugen_data.shards.build import build_dataset_shards
from m2ugen_data.shards.read import iter_shard_samples, shard_paths, verify_shards
from m2ugen_data.warehouse import open_warehouse
from shard_warehouse import make_tiny_warehouse


def _wav(path: Path, freq: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(4000) / 16000
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 16000)
    return path


def _jpeg(path: Path, color: str = "red") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), color).save(path)
    return path


def _invoke(wh: Path, *args: str):
    return CliRunner().invoke(app, ["--warehouse", str(wh), "convert", *args])


def _convert(wh: Path, *args: str) -> dict:
    res = _invoke(wh, *args)
    assert res.exit_code == 0, res.output
    name = next((args[i + 1] for i, a in enumerate(args) if a == "--name"), args[0])
    return json.loads((wh / "shards" / name / "conversion.json").read_text())


def _member_hashes(wh: Path, name: str) -> set[str]:
    return {hashlib.sha256(v).hexdigest() for p in sorted((wh / "shards" / name).glob("*.tar"))
            for s in iter_shard_samples(p) for k, v in s.items() if k not in ("__key__", "json")}


def _one_line_error(res) -> str:
    assert res.exit_code != 0 and res.exception is not None
    assert "Traceback" not in res.output
    return str(res.exception)


def test_musicqa_symlinks_out_of_the_audio_folder_are_rejected(tmp_path):
    outside = _wav(tmp_path / "private" / "secret.wav", 300.0)
    audios = tmp_path / "MusicQA" / "audios"
    _wav(audios / "real.wav", 500.0)
    (audios / "escape.wav").symlink_to(outside)  # a file link leaving the folder
    (audios / "root").symlink_to(tmp_path / "private")  # a folder link leaving it (as audios/root -> /)
    (audios / "inside.wav").symlink_to(audios / "real.wav")  # a link that stays inside is fine
    qa = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]
    src = tmp_path / "MusicQA" / "FinetuneMusicQA.json"
    src.write_text(json.dumps([{"audio_name": n, "conversation": qa}
                               for n in ("real.wav", "escape.wav", "root/secret.wav", "inside.wav")]))
    wh = tmp_path / "wh"
    report = _convert(wh, "musicqa", str(src), "--audio-dir", str(audios))
    assert report["samples"] == 2
    assert report["rejected_by_reason"] == {"outside_input_folder": 2}
    assert {r["detail"] for r in report["rejects"]} == {"escape.wav", "root/secret.wav"}
    assert hashlib.sha256(outside.read_bytes()).hexdigest() not in _member_hashes(wh, "musicqa")


def test_coco_symlink_out_of_the_image_folder_is_rejected(tmp_path):
    outside = _jpeg(tmp_path / "private" / "secret.jpg", "green")
    images = tmp_path / "train2014"
    _jpeg(images / "a.jpg")
    (images / "b.jpg").symlink_to(outside)
    src = tmp_path / "captions.json"
    src.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"id": 10, "image_id": 1, "caption": "Red."}, {"id": 20, "image_id": 2, "caption": "Green."}],
    }))
    wh = tmp_path / "wh"
    report = _convert(wh, "coco", str(src), "--images-dir", str(images))
    assert (report["samples"], report["rejected_by_reason"]) == (1, {"outside_input_folder": 1})
    assert report["rejects"][0]["detail"] == "b.jpg"
    assert hashlib.sha256(outside.read_bytes()).hexdigest() not in _member_hashes(wh, "coco")


def _bomb(path: Path, width: int, height: int) -> Path:
    """A valid tiny JPEG whose frame header claims ``width`` x ``height`` pixels."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(data))
    return path


def test_coco_decompression_bombs_are_rejected_from_the_header(tmp_path):
    images = tmp_path / "train2014"
    _jpeg(images / "ok.jpg")
    assert _bomb(images / "huge.jpg", 60000, 60000).stat().st_size < 1000  # Pillow raises on open
    _bomb(images / "big.jpg", 10000, 10000)  # over Pillow's warning limit only: it would decode 300 MB
    src = tmp_path / "captions.json"
    src.write_text(json.dumps({
        "images": [{"id": i, "file_name": n} for i, n in ((1, "ok.jpg"), (2, "huge.jpg"), (3, "big.jpg"))],
        "annotations": [{"id": 10 * i, "image_id": i, "caption": "An image."} for i in (1, 2, 3)],
    }))
    wh = tmp_path / "wh"
    report = _convert(wh, "coco", str(src), "--images-dir", str(images))
    assert (report["samples"], report["rejected_by_reason"]) == (1, {"image_too_large": 2})
    # the cap is the user's to raise
    report = _convert(wh, "coco", str(src), "--images-dir", str(images), "--max-image-pixels", "200000000")
    assert (report["samples"], report["rejected_by_reason"]) == (2, {"image_too_large": 1})


def test_coco_duplicate_image_id_is_refused_naming_both_entries(tmp_path):
    images = tmp_path / "train2014"
    _jpeg(images / "cat.jpg")
    _jpeg(images / "dog.jpg", "blue")
    src = tmp_path / "captions.json"
    src.write_text(json.dumps({
        "images": [{"id": 7, "file_name": "cat.jpg"}, {"id": 7, "file_name": "dog.jpg"}],
        "annotations": [{"id": 1, "image_id": 7, "caption": "A dog."}],
    }))
    wh = tmp_path / "wh"
    message = _one_line_error(_invoke(wh, "coco", str(src), "--images-dir", str(images)))
    assert "\n" not in message and "captions.json" in message
    assert "image id 7" in message and "cat.jpg" in message and "dog.jpg" in message
    assert not list((wh / "shards").glob("coco/*.tar"))
    # the same entry listed twice names one image: nothing is ambiguous
    src.write_text(json.dumps({
        "images": [{"id": 7, "file_name": "cat.jpg"}, {"id": 7, "file_name": "cat.jpg"}],
        "annotations": [{"id": 1, "image_id": 7, "caption": "A cat."}],
    }))
    assert _convert(wh, "coco", str(src), "--images-dir", str(images))["samples"] == 1


def test_deeply_nested_json_is_one_line(tmp_path):
    src = tmp_path / "alpaca_data.json"
    src.write_text("[" * 200_000)
    with pytest.raises(ConvertError) as err:
        list(iter_alpaca(src, Rejects()))
    assert "alpaca_data.json" in str(err.value) and "64 levels" in str(err.value)
    res = _invoke(tmp_path / "wh", "alpaca", str(src))
    assert "64 levels" in _one_line_error(res)


def test_json_over_the_size_cap_is_refused_and_the_cap_can_be_raised(tmp_path):
    src = tmp_path / "alpaca_data.json"
    src.write_text(json.dumps([{"instruction": f"Say {i}.", "input": "", "output": "x" * 200} for i in range(6000)]))
    assert 1 << 20 < src.stat().st_size < 2 << 20
    message = _one_line_error(_invoke(tmp_path / "wh", "alpaca", str(src), "--max-json-mb", "1"))
    assert "alpaca_data.json" in message and "1 MB" in message and "--max-json-mb" in message
    assert _convert(tmp_path / "wh", "alpaca", str(src), "--max-json-mb", "2")["samples"] == 6000


def test_json_records_are_streamed_not_loaded_whole(tmp_path):
    """``json.load`` holds the whole file as Python objects (~15x its size); the converters read one record at a
    time, so the peak stays well under the file's own size."""
    src = tmp_path / "alpaca_data.json"
    src.write_text(json.dumps([{"instruction": f"Tell me about {i}.", "input": "", "output": "y" * 100}
                               for i in range(10000)]))
    size = src.stat().st_size
    tracemalloc.start()
    try:
        n = sum(1 for _ in iter_alpaca(src, Rejects()))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert n == 10000 and peak < size / 2, (peak, size)


def _alpaca_file(path: Path, n: int = 1) -> Path:
    path.write_text(json.dumps([{"instruction": f"Say {i}.", "input": "", "output": "Ok."} for i in range(n)]))
    return path


def test_converter_never_overwrites_a_pipeline_dataset_without_replace(tmp_path):
    wh = open_warehouse(tmp_path / "wh")
    make_tiny_warehouse(wh)
    build_dataset_shards(wh, "muedit", max_samples=1)
    before = {p.name: p.read_bytes() for p in shard_paths(wh, "muedit")}
    assert len(before) == 5 and verify_shards(wh, "muedit").ok
    al = _alpaca_file(tmp_path / "al.json")
    message = _one_line_error(_invoke(wh.root, "alpaca", str(al), "--name", "muedit"))
    assert "\n" not in message and "muedit" in message and "--replace" in message
    assert {p.name: p.read_bytes() for p in shard_paths(wh, "muedit")} == before
    # with --replace the user asked for it; verify then says the shards are not what the pipeline wrote
    assert _convert(wh.root, "alpaca", str(al), "--name", "muedit", "--replace")["samples"] == 1
    check = verify_shards(wh, "muedit")
    assert not check.ok and any("alpaca" in p for p in check.problems), check.problems


def test_converter_never_overwrites_another_conversion_without_replace(tmp_path):
    wh = tmp_path / "wh"
    al = _alpaca_file(tmp_path / "alpaca_data.json", 3)
    assert _convert(wh, "alpaca", str(al), "--name", "mix")["samples"] == 3
    assert _convert(wh, "alpaca", str(al), "--name", "mix")["samples"] == 3  # a rerun of the same source
    other = _alpaca_file(tmp_path / "alpaca_cleaned.json", 1)
    message = _one_line_error(_invoke(wh, "alpaca", str(other), "--name", "mix"))
    assert "mix" in message and "alpaca_data.json" in message and "--replace" in message
    assert _convert(wh, "alpaca", str(al), "--name", "mix")["samples"] == 3  # untouched
    assert _convert(wh, "alpaca", str(other), "--name", "mix", "--replace")["samples"] == 1


def test_verify_notices_shards_of_another_source_than_the_conversion_report(tmp_path):
    wh = tmp_path / "wh"
    _convert(wh, "alpaca", str(_alpaca_file(tmp_path / "alpaca_data.json", 2)))
    report = wh / "shards" / "alpaca" / "conversion.json"
    data = json.loads(report.read_text())
    report.write_text(json.dumps({**data, "source": {"kind": "musicqa", "file": "FinetuneMusicQA.json"}}))
    check = verify_shards(open_warehouse(wh), "alpaca")
    assert not check.ok and any("musicqa" in p for p in check.problems), check.problems



def test_files_over_the_shard_member_limit_are_rejected(tmp_path, monkeypatch):
    """The shard reader refuses a member over ``MAX_MEMBER_BYTES`` (2 GiB), which would make the whole shard
    unreadable; the converter rejects such a file instead (the limit is lowered here to keep the test small)."""
    import m2ugen_data.convert.common as common

    monkeypatch.setattr(common, "MAX_MEMBER_BYTES", 20_000)
    audios = tmp_path / "audios"
    _wav(audios / "short.wav", 300.0)
    long = _wav(audios / "long.wav", 400.0)
    sf.write(long, np.zeros(16000, np.float32), 16000)  # 32 KB
    qa = [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]
    src = tmp_path / "FinetuneMusicQA.json"
    src.write_text(json.dumps([{"audio_name": n, "conversation": qa} for n in ("short.wav", "long.wav")]))
    report = _convert(tmp_path / "wh", "musicqa", str(src), "--audio-dir", str(audios))
    assert (report["samples"], report["rejected_by_reason"]) == (1, {"file_too_large": 1})
