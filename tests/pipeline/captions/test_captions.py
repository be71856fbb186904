from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
from synth_text import fill_warehouse, musical_truth

from m2ugen_data.audio_io import write_flac
from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.captions import CaptionItem
from m2ugen_data.captions.factory import make_captioner
from m2ugen_data.facts.measured import MusicFacts, facts_from_rows, tempo_word
from m2ugen_data.captions.grounded import GroundedCaptioner, grounded_caption
from m2ugen_data.captions.inputs import caption_items
from m2ugen_data.captions.mu_llama import QUESTION, MuLlamaCaptioner
from m2ugen_data.captions.writer import write_captions
from m2ugen_data.errors import M2UGenError, MissingDependencyError


def test_grounded_captions_name_true_instruments_tempo_key_and_meter(synth_corpus, warehouse):
    truth = musical_truth(synth_corpus)
    assert len(truth) >= 10
    fill_warehouse(warehouse, truth)
    summary = write_captions(warehouse, GroundedCaptioner(), caption_items(warehouse, load_ontology().name))
    assert summary.written == len(truth) and not summary.failed
    captions = {r["item_id"]: r for r in warehouse.read("captions").to_pylist()}
    for r in truth:
        row = captions[r["clip_id"]]
        text = row["text"]
        assert row["backend"] == "grounded" and row["modality"] == "audio" and row["prompt_hash"]
        for name in r["instrument_names"]:
            assert name.lower() in text.lower(), (name, text)
        assert f"{round(r['tempo_bpm'])} BPM" in text
        assert tempo_word(r["tempo_bpm"]) in text
        assert r["key"] in text
        assert f"in {r['meter']}/4 time" in text
        assert ("rock" in text) == ("/m/06by7" in r["labels"])  # the genre label, named
        # no measured tags (an analysis from before them): the labels speak, and the evidence says so
        evidence = json.loads(row["evidence"])
        assert evidence["labelled_instruments"]["source"] == "segments.instruments"
        assert "instruments" not in evidence
        assert evidence["tempo"] == {"source": "features.tempo_bpm", "value": round(r["tempo_bpm"], 3), "conf": 1.0}


def test_grounded_phrasing_varies_by_clip_and_is_deterministic():
    facts = [
        MusicFacts(
            f"clip{i:04d}abc_0",
            tempo_bpm=120.0,
            meter=4,
            key="C major",
            loudness_lufs=-15.0,
            onset_rate=3.0,
            instruments=("piano", "bass guitar"),
            moods=("happy",),
        )
        for i in range(200)
    ]
    texts = [grounded_caption(f) for f in facts]
    # identical measurements: only the phrasing differs, and it must differ a lot
    assert len(set(texts)) / len(texts) >= 0.5
    assert len({t.split(". ")[0] for t in texts}) >= 4  # several opening sentences
    assert texts == [grounded_caption(f) for f in facts]


def test_grounded_caption_mentions_speech_and_omits_what_was_not_measured():
    spoken = grounded_caption(MusicFacts("abcdefghijk_0", tempo_bpm=90.0, speech_ratio=0.6, instruments=("organ",)))
    assert any(w in spoken.lower() for w in ("speaking voice", "spoken words", "speech"))
    bare = grounded_caption(MusicFacts("abcdefghijk_0", instruments=("organ",)))
    assert "BPM" not in bare and "key" not in bare and "speech" not in bare.lower()
    assert "organ" in bare.lower()


def test_unknown_label_ids_are_never_printed_as_names():
    ont = load_ontology()
    f = facts_from_rows(
        "abcdefghijk_0", {"tempo_bpm": 100.0}, {"instruments": ["/m/05r5c", "/m/not_a_label"]}, ont.name
    )
    assert f.instruments is None and f.labelled_instruments == ("piano",)  # not measured: the labels speak


def test_caption_cache_skips_done_items_and_redoes_changed_ones(warehouse):
    items = [CaptionItem(f"abcdefghij{i}_0", MusicFacts(f"abcdefghij{i}_0", tempo_bpm=100.0 + i)) for i in range(5)]
    first = write_captions(warehouse, GroundedCaptioner(), items, batch_size=2)
    assert (first.written, first.cached) == (5, 0)
    again = write_captions(warehouse, GroundedCaptioner(), items)
    assert (again.written, again.cached) == (0, 5)
    changed = items[:4] + [CaptionItem(items[4].item_id, MusicFacts(items[4].item_id, tempo_bpm=150.0))]
    third = write_captions(warehouse, GroundedCaptioner(), changed)
    assert (third.written, third.cached) == (1, 4)
    latest = {r["item_id"]: r["text"] for r in warehouse.read("captions").to_pylist()}
    assert "150 BPM" in latest[items[4].item_id]


def test_unknown_caption_backend_is_a_user_error():
    with pytest.raises(M2UGenError, match="unknown caption backend"):
        make_captioner("nope")


def _item_with_audio(tmp_path) -> CaptionItem:
    path = write_flac(tmp_path / "a.flac", np.zeros(16000, dtype=np.float32), 16000)
    return CaptionItem("abcdefghijk_0", MusicFacts("abcdefghijk_0"), audio_path=path)


def test_mu_llama_needs_a_model_dir(tmp_path):
    with pytest.raises(M2UGenError, match="--model-dir"):
        make_captioner("mu-llama")
    with pytest.raises(M2UGenError, match="does not exist"):
        MuLlamaCaptioner(model_dir=tmp_path / "missing")


def _fake_model_package(monkeypatch, **attrs) -> None:
    """Stand-in for ``m2ugen_model`` whose ``mu_llama`` module has exactly ``attrs``."""
    pkg, mod = types.ModuleType("m2ugen_model"), types.ModuleType("m2ugen_model.mu_llama")
    for k, v in attrs.items():
        setattr(mod, k, v)
    pkg.mu_llama = mod
    monkeypatch.setitem(sys.modules, "m2ugen_model", pkg)
    monkeypatch.setitem(sys.modules, "m2ugen_model.mu_llama", mod)


def test_mu_llama_without_the_model_api_names_the_missing_package(tmp_path, monkeypatch):
    cap = MuLlamaCaptioner(model_dir=tmp_path)
    monkeypatch.setitem(sys.modules, "m2ugen_model", None)  # import fails
    with pytest.raises(MissingDependencyError, match="needs the m2ugen_model package"):
        cap.caption_batch([_item_with_audio(tmp_path)])
    _fake_model_package(monkeypatch)  # an older model package without the captioner API
    with pytest.raises(MissingDependencyError, match="load_captioner"):
        cap.caption_batch([_item_with_audio(tmp_path)])


def test_mu_llama_asks_the_reference_question_with_decoded_audio(tmp_path, monkeypatch):
    seen = {}

    def load_captioner(model_dir, device, question, max_new_tokens):
        seen.update(dir=model_dir, q=question, device=device)

        def captioner(audios, sr):
            seen.update(n=[len(a) for a in audios], sr=sr)
            return [" A calm piano piece. "] * len(audios)

        return captioner

    _fake_model_package(monkeypatch, load_captioner=load_captioner)
    cap = MuLlamaCaptioner(model_dir=tmp_path)
    assert cap.caption_batch([_item_with_audio(tmp_path)] * 2) == ["A calm piano piece."] * 2
    # 1 s resampled to MERT's rate; device "auto" (the default) resolved to the GPU when there is one
    import torch

    assert cap.device == "auto" and seen.pop("device") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert seen == {"dir": tmp_path, "q": QUESTION, "n": [24000, 24000], "sr": 24000}
    assert QUESTION.startswith("Describe the music in detail")


def test_caption_writer_records_a_bad_clip_and_keeps_the_rest(tmp_path, warehouse, monkeypatch):
    _fake_model_package(monkeypatch, load_captioner=lambda *a, **k: lambda audios, sr: ["music"] * len(audios))
    good = _item_with_audio(tmp_path)
    bad_path = tmp_path / "bad.flac"
    bad_path.write_bytes(b"not audio at all")
    bad = CaptionItem("bbcdefghijk_0", MusicFacts("bbcdefghijk_0"), audio_path=bad_path)
    summary = write_captions(warehouse, MuLlamaCaptioner(model_dir=tmp_path), [good, bad])
    assert summary.written == 1 and list(summary.failed) == ["bbcdefghijk_0"]
    assert warehouse.read("captions").column("item_id").to_pylist() == ["abcdefghijk_0"]
    assert warehouse.read("captions").column("evidence").to_pylist() == [None]  # a listening model cannot know


@pytest.mark.slow
def test_mu_llama_end_to_end_with_a_tiny_model_package_checkpoint(tmp_path, warehouse):
    """The real m2ugen_model loader on tiny random weights written in the released on-disk layout."""
    import torch

    presets = pytest.importorskip("m2ugen_model.presets")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model_dir = presets.write_tiny_weights(tmp_path / "mu_llama", variant="mu_llama")
        summary = write_captions(
            warehouse, MuLlamaCaptioner(model_dir=model_dir, max_new_tokens=4), [_item_with_audio(tmp_path)]
        )
    finally:
        torch.set_num_threads(threads)
    assert summary.written == 1 and not summary.failed
    row = warehouse.read("captions").to_pylist()[0]
    assert row["backend"] == "mu-llama" and row["model"] == "mu-llama:mu_llama" and isinstance(row["text"], str)
