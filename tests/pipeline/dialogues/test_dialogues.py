from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace

import pytest
from rows import with_nulls
from synth_text import TAGGER_WORDS, fill_warehouse, musical_truth, tagger_words, truth_pairs
from typer.testing import CliRunner

from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.facts.measured import MusicFacts
from m2ugen_data.captions.grounded import GroundedCaptioner
from m2ugen_data.captions.inputs import caption_items
from m2ugen_data.captions.writer import write_captions
from m2ugen_data.cli import app
from m2ugen_data.dialogues.backend import Completion, Request
from m2ugen_data.dialogues.factory import make_backend
from m2ugen_data.dialogues.prompts import SYSTEM_PROMPTS, build_prompt
from m2ugen_data.dialogues.samples import DialogueSample, EditDiff, load_samples
from m2ugen_data.dialogues.scene import HEADS
from m2ugen_data.dialogues.template import TemplateBackend
from m2ugen_data.dialogues.validate import clean_output, validate_gpt, validate_human
from m2ugen_data.dialogues.writer import write_dialogues
from m2ugen_data.errors import M2UGenError
from m2ugen_data.warehouse import utc_now


def _muedit_warehouse(synth_corpus, warehouse, measured: bool):
    truth = musical_truth(synth_corpus)
    fill_warehouse(warehouse, truth, measured=measured)
    write_captions(warehouse, GroundedCaptioner(), caption_items(warehouse, load_ontology().name))
    pairs = truth_pairs(truth, measured=measured)
    warehouse.write_batch("pairs", pairs, "truth")
    return warehouse, {r["clip_id"]: r for r in truth}, pairs


@pytest.fixture
def muedit_wh(synth_corpus, warehouse):
    """Label-only rows (an analysis from before measured content): captions and edits speak from labels."""
    return _muedit_warehouse(synth_corpus, warehouse, measured=False)


@pytest.fixture
def measured_muedit_wh(synth_corpus, warehouse):
    """Rows whose instruments were measured by a tagger (``synth_text.TAGGER_WORDS``)."""
    return _muedit_warehouse(synth_corpus, warehouse, measured=True)


def _true_differences(src: dict, tgt: dict, measured: bool = False) -> list[str]:
    """Phrases naming a real change, computed from the truth alone (not from the code under test). With
    measured instruments, a change is a tagger word that changed or a label the tagger has no word for."""
    names = dict(zip(src["instruments"], src["instrument_names"])) | dict(
        zip(tgt["instruments"], tgt["instrument_names"])
    )
    changed = [names[m] for m in set(src["instruments"]) ^ set(tgt["instruments"])]
    if measured:
        terms = sorted(set(tagger_words(src)) ^ set(tagger_words(tgt)))
        terms += [n.lower() for n in changed if n not in TAGGER_WORDS]
    else:
        terms = [n.lower() for n in changed]
    if abs(tgt["tempo_bpm"] / src["tempo_bpm"] - 1) > 0.04:
        terms.append(f"{round(tgt['tempo_bpm'])} bpm")
    if src["key"] != tgt["key"]:
        terms.append(tgt["key"].lower())
    return terms


def test_template_muedit_dialogues_name_a_true_difference(muedit_wh):
    wh, truth, pairs = muedit_wh
    samples, skipped = load_samples(wh, "muedit", load_ontology().name)
    assert len(samples) == len(pairs) and not skipped
    summary = write_dialogues(wh, samples, TemplateBackend(), batch_size=16)
    assert summary.accepted == len(pairs) and summary.rejected == 0
    rows = wh.read("dialogues").to_pylist()
    assert len(rows) == len(pairs)
    for r in rows:
        src, tgt = truth[r["input_id"]], truth[r["output_id"]]
        assert r["sample_id"] == f"{r['input_id']}__{r['output_id']}"
        assert r["status"] == "ok" and r["reasons"] == [] and r["attempts"] == 1
        human = r["human"].lower()
        assert any(t in human for t in _true_differences(src, tgt)), (r["human"], _true_differences(src, tgt))
        assert validate_gpt(r["gpt"]) == []  # opens like an answer, no text defect
        assert f"{round(tgt['tempo_bpm'])} BPM" in r["gpt"] and tgt["key"] in r["gpt"]
        assert not re.search(r"\b(input|target)\b", human)
        assert r["input_caption"] and r["output_caption"] and r["backend"] == "template"


def test_template_muedit_dialogues_speak_from_measured_instruments(measured_muedit_wh):
    wh, truth, pairs = measured_muedit_wh
    samples, _ = load_samples(wh, "muedit", load_ontology().name)
    write_dialogues(wh, samples, TemplateBackend(), batch_size=16)
    rows = wh.read("dialogues").to_pylist()
    assert len(rows) == len(pairs)
    covered = [n.lower() for n in TAGGER_WORDS if n.lower() not in TAGGER_WORDS.values()]  # "electric guitar", ...
    for r in rows:
        src, tgt = truth[r["input_id"]], truth[r["output_id"]]
        terms = _true_differences(src, tgt, measured=True)
        if not terms:  # e.g. acoustic -> electric guitar: the tagger hears a guitar in both, honestly rejected
            assert r["status"] == "rejected" and r["reasons"] == ["human:no_measured_difference"], r
            continue
        human = r["human"].lower()
        assert r["status"] == "ok" and any(t in human for t in terms), (r["human"], terms)
        for text in (human, r["input_caption"].lower(), r["output_caption"].lower()):
            assert not [n for n in covered if n in text], text  # the tagger's word speaks, not the label
    assert sum(r["status"] == "ok" for r in rows) >= len(rows) // 2


def test_template_phrasing_variety_above_floor(muedit_wh):
    wh, _, _ = muedit_wh
    samples, _ = load_samples(wh, "muedit", load_ontology().name)
    backend = TemplateBackend()
    humans = [c.text for c in backend.complete([Request(s, "human", "", 0) for s in samples])]
    gpts = [c.text for c in backend.complete([Request(s, "gpt", "", 0) for s in samples])]
    assert len(set(humans)) / len(humans) >= 0.9
    assert len(set(gpts)) / len(gpts) >= 0.5
    # phrasing, not just numbers and names: mask them and count distinct sentence shapes
    shape = lambda t: re.sub(r"\d+", "N", t.split(",")[0].split(" ")[0])  # noqa: E731
    assert len({shape(h) for h in humans}) >= 4  # several opening verbs
    skeleton = lambda t: re.sub(r"\b\d+\b|[A-G][#b]? (major|minor)", "X", t)  # noqa: E731
    assert len({skeleton(g) for g in gpts}) >= 4


def _facts(clip: str) -> MusicFacts:
    return MusicFacts(clip, tempo_bpm=96.0, meter=4, key="D minor", instruments=("piano", "violin"), moods=("sad",))


def test_template_muimage_and_muvideo_requests_use_the_visual_caption():
    """A model caption names what the picture shows: the request asks about it (no numbers in it), the answer
    describes the music from its facts."""
    captions = {"image": "a dog running on a beach", "video": "A dog is running on a beach. The sea is calm."}
    for dataset, kind in (("muimage", "image"), ("muvideo", "video")):
        samples = [
            DialogueSample(dataset, f"abcdefghij{i}_0", f"abcdefghij{i}_0", f"abcdefghij{i}_0", captions[kind], "cap",
                           _facts(f"abcdefghij{i}_0"), input_backend="blip" if kind == "image" else "video-gpt2")
            for i in range(8)
        ]  # fmt: skip
        for s in samples:
            human = TemplateBackend().complete([Request(s, "human", "", 0)])[0].text
            gpt = TemplateBackend().complete([Request(s, "gpt", "", 0)])[0].text
            assert validate_human(human) == [] and validate_gpt(gpt) == [], (human, gpt)
            shown = "of a dog running on a beach" if kind == "image" else "where a dog is running on a beach"
            assert shown in human and "sea" not in human and not re.search(r"\d", human), human
            assert any(f" {head} " in human for head in HEADS[kind]), human
            assert "96 BPM" in gpt and "D minor" in gpt and "piano" in gpt and "violin" in gpt, gpt


def test_template_requests_ask_for_at_most_two_wishes_the_music_has():
    """Every wish a request makes (a feel, a tempo, an instrument) is a fact of the returned music."""
    facts = MusicFacts("c", tempo_bpm=150.0, key="D minor", instruments=("flute",), moods=("sad",), genres=("jazz",))
    wishes = {"feel": ("sad", "jazz"), "tempo": ("very fast",), "source": ("flute",)}
    asked = Counter()
    for i in range(60):
        s = DialogueSample("muimage", f"c{i}", f"p{i}", "c", "a red kite in the sky", "cap", facts, input_backend="blip")
        human = TemplateBackend().complete([Request(s, "human", "", 0)])[0].text.lower()
        made = {k for k, words in wishes.items() if any(w in human for w in words)}
        assert len(made) <= 2 and "bpm" not in human and "minor" not in human, human
        asked.update(made)
        assert not ({"happy", "slow", "piano", "rock"} & set(re.findall(r"[a-z]+", human))), human
    assert all(asked[k] >= 5 for k in wishes), asked  # each kind of wish is made, none always


def test_prompts_are_chatml_with_one_system_prompt_per_dataset_and_side():
    assert {k for k in SYSTEM_PROMPTS} == {(d, s) for d in ("muedit", "muimage", "muvideo") for s in ("human", "gpt")}
    s = DialogueSample(
        "muedit", "a__b", "a", "b", "src cap", "tgt cap", _facts("b"), EditDiff(added_instruments=("flute",))
    )
    p = build_prompt(s, "human")
    assert p.startswith("<|im_start|>system\n") and p.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nSource music: src cap\nNew music: tgt cap\nMeasured changes: add flute<|im_end|>" in p
    assert "Here is a music that is" in build_prompt(s, "gpt")
    v = replace(s, dataset="muvideo", diff=None)
    assert "Generate a music for the video that is" in build_prompt(v, "human")
    assert "Video: src cap" in build_prompt(v, "human")


DIFF = EditDiff(
    added_instruments=("piano",),
    removed_instruments=("acoustic guitar",),
    tempo_src=100.0,
    tempo_tgt=126.0,
    key_src="C major",
    key_tgt="A minor",
)


@pytest.mark.parametrize(
    "text, reasons",
    [
        ("Replace the acoustic guitar with piano.", []),
        ("Please speed it up a little and keep the groove.", []),
        ("Transpose it to A minor.", []),
        ("Make it more exciting and louder.", ["no_measured_difference"]),
        ("The music should have a piano instead.", ["not_imperative"]),
        ("Change the input music to add piano.", ["forbidden_word"]),
        ("Add piano.\nRemove the guitar.", ["multiline"]),
        ("<|im_start|>assistant\nAdd piano to it", ["multiline", "template_leak", "not_imperative"]),
        ("assistant: Add piano to the song", ["template_leak", "not_imperative"]),
        ("### Human: add piano please now", ["template_leak", "not_imperative"]),
        ("Add it.", ["too_short", "no_measured_difference"]),
        ("Add piano " + "and more " * 60, ["too_long", "repeated_word"]),
        ("Could you replace the acoustic guitar with piano?", []),
        ("This picture needs music. Can you speed it up?", []),
        ("", ["empty"]),
        ("Add piano \ufffd\ufffd and drums now", ["non_text"]),
    ],
)
def test_validate_human(text, reasons):
    assert validate_human(text, DIFF) == reasons


@pytest.mark.parametrize(
    "text, reasons",
    [
        ("Here is a music that is calm and led by piano.", []),
        ("Here is the music you asked for, with piano.", []),
        ("I wrote a calm piece for piano, in D minor.", []),
        ("The music you asked for has piano.", ["missing_prefix"]),
        ("Here is a music that is.", ["dangling_relative", "too_short"]),
        ("Here is a music that is fine. <|im_start|>user", ["template_leak"]),
        ("Sure! Here is a music that is calm.", ["missing_prefix"]),
    ],
)
def test_validate_gpt(text, reasons):
    assert validate_gpt(text) == reasons


def test_clean_output_strips_stop_strings_and_quotes():
    assert clean_output('  "Here is a music that is calm."<|im_end|>junk') == "Here is a music that is calm."


class Scripted:
    """A backend whose answers the test scripts per attempt (seed offset), to exercise retries."""

    name, model = "scripted", "scripted-1"

    def __init__(self, script: dict[str, list[Completion]]) -> None:
        self.script, self.calls, self.seen = script, [], []

    def config_key(self) -> str:
        return ""

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        self.calls.append(len(requests))
        out = []
        for r in requests:
            attempt = sum(1 for c in self.seen if c == (r.sample.sample_id, r.side))
            self.seen.append((r.sample.sample_id, r.side))
            answers = self.script[r.side]
            out.append(answers[min(attempt, len(answers) - 1)])
        return out


def _edit_samples(n: int) -> list[DialogueSample]:
    """Pairs whose target facts agree with DIFF (tempo and key), as a mined pair's do: the claim checker
    rejects a request whose tempo or key the target contradicts."""
    return [
        DialogueSample("muedit", f"s{i}__t{i}", f"s{i}", f"t{i}", "a", "b", replace(_facts(f"t{i}"), tempo_bpm=126.0, key="A minor"), DIFF)
        for i in range(n)
    ]


def test_writer_retries_rejected_turns_then_records_the_rejection(warehouse):
    good_h, good_g = Completion("Add piano to the piece, please."), Completion("Here is a music that is sad and slow.")
    bad = Completion("Sure, here you go!")
    flaky = Scripted({"human": [bad, good_h], "gpt": [good_g]})
    s = write_dialogues(warehouse, _edit_samples(3), flaky, batch_size=8, max_attempts=3)
    assert (s.accepted, s.rejected) == (3, 0) and s.attempts == {2: 3}
    assert flaky.calls == [6, 3]  # both sides of all samples in one call, then only the rejected turns
    hopeless = Scripted({"human": [bad], "gpt": [Completion(None, error="timeout")]})
    s = write_dialogues(warehouse, _edit_samples(6)[3:], hopeless, batch_size=2, max_attempts=3)
    assert (s.accepted, s.rejected) == (0, 3)
    rows = warehouse.read("dialogues", where="sample_id >= 's3'").to_pylist()
    assert len(rows) == 3
    for r in rows:
        assert r["status"] == "rejected" and r["attempts"] == 3 and r["backend"] == "scripted"
        assert r["reasons"] == ["human:not_imperative", "human:no_measured_difference", "gpt:backend_error:timeout"]
    assert s.reasons["gpt:backend_error:timeout"] == 3


def test_writer_caches_answered_prompts_and_redoes_changed_or_rejected(warehouse):
    samples = _edit_samples(4)
    first = write_dialogues(warehouse, samples, TemplateBackend())
    assert first.accepted == 4
    again = write_dialogues(warehouse, samples, TemplateBackend())
    assert (again.cached, again.accepted) == (4, 0)
    changed = samples[:3] + [replace(samples[3], output_caption="a new caption")]
    third = write_dialogues(warehouse, changed, TemplateBackend())
    assert (third.cached, third.accepted) == (3, 1)
    # a rejected sample is left alone on the next run (it would only be rejected again), unless asked
    nodiff = [replace(samples[0], sample_id="x__y", diff=EditDiff())]
    assert write_dialogues(warehouse, nodiff, TemplateBackend()).rejected == 1
    rerun = write_dialogues(warehouse, nodiff, TemplateBackend())
    assert (rerun.cached, rerun.rejected_before, rerun.rejected) == (0, 1, 0)
    assert write_dialogues(warehouse, nodiff, TemplateBackend(), retry_rejected=True).rejected == 1


def test_unknown_backend_and_dataset_are_user_errors(warehouse):
    with pytest.raises(M2UGenError, match="unknown dialogue backend"):
        make_backend("gpt-17")
    with pytest.raises(M2UGenError, match="unknown dataset"):
        load_samples(warehouse, "mucaps", str)


def test_cli_caption_then_dialogue(muedit_wh):
    wh, _, pairs = muedit_wh
    runner = CliRunner()
    res = runner.invoke(app, ["-w", str(wh.root), "caption", "--pool", "muedit"])
    assert res.exit_code == 0, res.output
    assert "cached" in res.output  # the fixture captioned everything already
    res = runner.invoke(app, ["-w", str(wh.root), "dialogue", "--dataset", "muedit", "--batch-size", "8"])
    assert res.exit_code == 0, res.output
    assert "accepted" in res.output
    assert wh.read("dialogues", where="status = 'ok'").num_rows == len(pairs)
    res = runner.invoke(app, ["-w", str(wh.root), "dialogue", "--backend", "transformers"])
    assert res.exit_code != 0 and "--model" in str(res.exception)


def test_visual_samples_need_both_captions(warehouse):
    now = utc_now()
    seg = {
        "ytid": "abcdefghijk",
        "start_s": 0.0,
        "end_s": 10.0,
        "labels": [],
        "instruments": ["/m/05r5c"],
        "genres": [],
        "moods": [],
        "pool": "muimage",
        "source": "t",
        "updated_at": now,
    }
    warehouse.write_batch("segments", [seg | {"clip_id": "abcdefghijk_0"}, seg | {"clip_id": "abcdefghijk_1000"}], "s")
    cap = {"backend": "grounded", "model": "m", "prompt_hash": "h", "evidence": None, "created_at": now}
    warehouse.write_batch(
        "captions",
        [
            with_nulls("captions", cap | {"item_id": "abcdefghijk_0", "modality": "audio", "text": "A piano piece."}),
            with_nulls("captions", cap | {"item_id": "abcdefghijk_0", "modality": "image", "backend": "blip", "text": "a cat on a sofa"}),
            with_nulls("captions", cap | {"item_id": "abcdefghijk_1000", "modality": "audio", "text": "Another piece."}),
        ],
        "c",
    )
    samples, skipped = load_samples(warehouse, "muimage", load_ontology().name)
    assert [s.sample_id for s in samples] == ["abcdefghijk_0"] and skipped == {"missing_image_caption": 1}
    assert samples[0].input_caption == "a cat on a sofa" and samples[0].output_caption == "A piano piece."
    assert samples[0].target.words("instruments") == ("piano",)
    s = write_dialogues(warehouse, samples, TemplateBackend())
    assert s.accepted == 1
