"""``export --format m2ugen-json`` writes the reference trainer's JSON files and media layout."""

from __future__ import annotations

import json

import soundfile as sf
from shard_warehouse import dominant_hz, make_tiny_warehouse

from m2ugen_data.export import MediaMode, export_reference


def test_export_writes_reference_json_and_media(warehouse, tmp_path):
    tiny = make_tiny_warehouse(warehouse)
    out = tmp_path / "Datasets"
    results = export_reference(
        warehouse, out, media=MediaMode.copy, source_options={"mucaps": {"label_name": tiny.label_name}}
    )
    assert [(r.dataset, r.records) for r in results] == [
        ("mucaps", 4), ("muedit", len(tiny.ok_pairs)), ("muimage", 0), ("muvideo", 0)  # no visual data here
    ]
    assert json.loads((out / "MUImage" / "MUImageInstructions.json").read_text()) == []

    captions = json.loads((out / "MUCaps" / "MUCapsCaptions.json").read_text())
    mucaps_clips = [c for i, c in enumerate(tiny.clip_ids) if i % 2 == 0]
    assert captions == {f"{c}.flac": f"A {tiny.freq[c]:.0f} Hz tone at {100 + tiny.clip_ids.index(c)} BPM."
                        for c in mucaps_clips}
    for name in captions:  # reference: os.path.join("MUCaps/audios", file)
        y, sr = sf.read(out / "MUCaps" / "audios" / name)
        assert abs(dominant_hz(y, sr) - tiny.freq[name[:-5]]) < 2.0

    records = json.loads((out / "MUEdit" / "MUEditInstructions.json").read_text())
    assert [(r["input_file"], r["output_file"]) for r in records] == [(f"{a}.flac", f"{b}.flac")
                                                                     for a, b in sorted(tiny.ok_pairs)]
    for r in records:
        assert set(r) == {"input_file", "output_file", "conversation"}
        human, gpt = r["conversation"]
        assert set(human) == {"from", "value", "input_modality", "caption"} and human["from"] == "human"
        assert set(gpt) == {"from", "value", "caption", "output_modality"} and gpt["value"].startswith("Here is")
        for f in (r["input_file"], r["output_file"]):
            assert (out / "MUEdit" / "audioset" / f).is_file()


def test_export_symlinks_and_reruns_without_rewriting(warehouse, tmp_path):
    tiny = make_tiny_warehouse(warehouse)
    out = tmp_path / "out"
    first = export_reference(warehouse, out, datasets=["muedit"], media=MediaMode.symlink)[0]
    files = sorted((out / "MUEdit" / "audioset").iterdir())
    assert first.media_written == len(files) and all(p.is_symlink() for p in files)
    assert all(p.resolve() == warehouse.media_path("audio", p.stem, "flac") for p in files)
    again = export_reference(warehouse, out, datasets=["muedit"], media=MediaMode.symlink)[0]
    assert again.media_written == 0 and again.media_kept == 2 * len(tiny.ok_pairs)
