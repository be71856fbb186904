"""Claims read from free text and checked against measurements: extraction, verdicts, policy, bad input."""

from __future__ import annotations

import itertools
import json

import pytest

from m2ugen_data.captions import CaptionItem
from m2ugen_data.facts.measured import MusicFacts
from m2ugen_data.captions.grounded import grounded_caption
from m2ugen_data.captions.writer import write_captions
from m2ugen_data.dialogues.samples import DialogueSample, EditDiff
from m2ugen_data.dialogues.template import gpt_turn, human_turn
from m2ugen_data.errors import M2UGenError
from m2ugen_data.factcheck.check import ABSENT_MAX, CONTRADICTED, SUPPORTED, UNVERIFIABLE, consistency
from m2ugen_data.factcheck.extract import extract_claims
from m2ugen_data.factcheck.heard import Heard, heard_from_facts, heard_from_rows
from m2ugen_data.factcheck.policy import FactPolicy, check_caption, check_text, screen
from m2ugen_data.factcheck.turns import check_turn


def labels(text: str, **kw) -> list[str]:
    return [c.label for c in extract_claims(text, **kw)]


# ---------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "text, expected",
    [
        ("There are no voices in this song, only a piano and an e-bass.", ["no voice", "piano", "bass"]),
        ("An instrumental track without drums or percussion.", ["no voice", "no drums", "no percussion"]),
        ("A female vocalist sings over an acoustic guitar.", ["female voice", "guitar"]),
        ("The male singer is backed by a synthesizer and a drum machine.", ["male voice", "synth", "drums"]),
        ("It doesn't have drums but it has a fiddle.", ["no drums", "violin"]),
        ("The tempo is slow.", ["tempo slow"]),
        ("A fast guitar riff over a medium tempo groove.", ["guitar", "tempo moderate"]),
        ("An uptempo pop song at 128 BPM.", ["tempo fast", "pop", "128 bpm"]),
        ("After the intro it settles into a slower tempo.", ["tempo slow"]),  # MusicCaps aspects say "slower tempo"
        ("An upbeat song.", ["upbeat"]),  # the cheerful sense: a mood, not a tempo
        ("It moves at an upbeat tempo in 3/4 time.", ["tempo upbeat", "meter 3/4"]),
        ("It is in Bb major; the main chords are Bb, F and C minor chords.", ["key Bb major"]),
        ("A sad, melancholic hip-hop beat in a minor key.", ["sad", "hip-hop", "mode minor"]),
        ("A waltz played by a string section.", ["meter 3/4", "strings"]),
    ],
)
def test_extraction_reads_words_synonyms_families_and_negation(text, expected):
    assert labels(text) == expected


def test_an_instrumental_break_says_nothing_about_the_voice():
    assert labels("After an instrumental break the singer returns.") == ["voice"]


def test_edit_requests_become_edit_claims():
    assert labels("Replace the piano with a violin, and transpose it to C major.", edit=True) == [
        "remove piano", "add violin", "transpose to C major"]
    assert labels("Add a flute and make it faster, around 120 BPM.", edit=True) == ["add flute", "faster", "120 bpm"]
    assert labels("Slow it down and take out the drums.", edit=True) == ["slower", "remove drums"]
    swap = extract_claims("Swap the female vocals for male vocals.", edit=True)
    assert [(c.kind, c.value) for c in swap] == [("remove", "female voice"), ("add", "male voice")]
    mood = extract_claims("Change the mood from happy to sad.", edit=True)
    assert [(c.value, c.about) for c in mood] == [("happy", "source"), ("sad", "target")]


# ---------------------------------------------------------------- verdicts

FACTS = MusicFacts("c", tempo_bpm=150.0, tempo_conf=0.9, meter=4, key="A minor", key_conf=0.9,
                   instruments=("synth", "drums"), genres=("electronic",), vocals="instrumental", speech_ratio=0.0)
EVIDENCE = {"piano": 0.004, "guitar": 0.3, "synth": 0.6, "drums": 0.5, "strings": 0.005, "violin": 0.001,
            "cello": 0.001, "flute": 0.001, "harpsichord": 0.001, "sitar": 0.001}


def verdicts(text: str, heard: Heard, **kw) -> dict[str, str]:
    return {v.claim.label: v.verdict for v in check_text(text, heard, **kw).verdicts}


def test_confident_measurements_contradict_and_support():
    h = Heard(FACTS, EVIDENCE)
    got = verdicts("A female vocalist sings over a slow piano ballad in C major at 96 BPM, in 3/4 time. "
                   "Synth and drums, electronic, no violin, and someone speaks.", h)
    assert got == {
        "key C major": CONTRADICTED, "meter 3/4": CONTRADICTED, "96 bpm": CONTRADICTED, "tempo slow": CONTRADICTED,
        "female voice": CONTRADICTED, "piano": CONTRADICTED, "synth": SUPPORTED, "drums": SUPPORTED,
        "electronic": SUPPORTED, "no violin": SUPPORTED, "speech": CONTRADICTED,
    }


def test_tempo_is_octave_aware_below_the_octave_confidence():
    unsure = heard_from_facts(MusicFacts("c", tempo_bpm=150.0, tempo_conf=0.5))
    assert verdicts("The tempo is slow, about 75 BPM.", unsure) == {"tempo slow": UNVERIFIABLE, "75 bpm": UNVERIFIABLE}
    assert verdicts("The tempo is fast, about 148 BPM.", unsure) == {"tempo fast": SUPPORTED, "148 bpm": SUPPORTED}
    assert verdicts("It runs at 190 BPM.", unsure) == {"190 bpm": CONTRADICTED}  # 1.27x: no octave explains it
    sure = heard_from_facts(MusicFacts("c", tempo_bpm=150.0, tempo_conf=0.9))
    assert verdicts("The tempo is slow, about 75 BPM.", sure) == {"tempo slow": CONTRADICTED, "75 bpm": CONTRADICTED}


def test_instruments_are_contradicted_only_by_a_confident_absence_of_their_family():
    ev = dict(EVIDENCE, strings=0.2)  # the strings tag fires: a violin may be in it
    h = Heard(FACTS, ev)
    assert verdicts("A violin and a guitar.", h) == {"violin": UNVERIFIABLE, "guitar": UNVERIFIABLE}
    assert verdicts("A violin.", Heard(FACTS, EVIDENCE)) == {"violin": CONTRADICTED}
    assert verdicts("A trumpet.", Heard(FACTS, EVIDENCE)) == {"trumpet": UNVERIFIABLE}  # no tagger word
    assert verdicts("A piano.", Heard(FACTS, None)) == {"piano": UNVERIFIABLE}  # no probabilities: no absence
    assert all(0 < t < 0.1 for t in ABSENT_MAX.values()) and "drums" not in ABSENT_MAX


def test_labels_speak_for_words_the_tagger_cannot_hear():
    facts = MusicFacts("c", instruments=("piano",), labelled_instruments=("trumpet", "electric guitar"))
    assert verdicts("A trumpet and a piano, no guitar.", heard_from_facts(facts)) == {
        "trumpet": SUPPORTED, "piano": SUPPORTED, "no guitar": CONTRADICTED}


def test_a_clip_without_measurements_supports_nothing():
    h = heard_from_rows("c", None, {"instruments": []}, str)
    result = check_text("A slow piano piece in A minor with a female singer.", h)
    assert {v.verdict for v in result.verdicts} == {UNVERIFIABLE} and result.reasons == []
    assert consistency(result.verdicts) is None
    failed = heard_from_rows("c", {"status": "failed", "tempo_bpm": 90.0, "tempo_conf": 0.9}, None, str)
    assert not failed.measured and verdicts("At 90 BPM.", failed) == {"90 bpm": UNVERIFIABLE}


def test_edit_requests_are_checked_against_the_pair():
    src = Heard(MusicFacts("s", tempo_bpm=100.0, tempo_conf=0.9, key="C major", key_conf=0.9, instruments=("guitar",)), EVIDENCE)
    tgt = Heard(MusicFacts("t", tempo_bpm=126.0, tempo_conf=0.9, key="A minor", key_conf=0.9, instruments=("piano",)), EVIDENCE)
    diff = EditDiff(added_instruments=("piano",), removed_instruments=("guitar",), tempo_src=100.0, tempo_tgt=126.0,
                    key_src="C major", key_tgt="A minor")
    sample = DialogueSample("muedit", "s__t", "s", "t", "a", "b", tgt.facts, diff, target_heard=tgt, source_heard=src)
    ok = check_turn(sample, "human", "Replace the guitar with a piano, make it faster and transpose it to A minor.")
    assert ok.reasons == [] and ok.consistency == 1.0
    bad = check_turn(sample, "human", "Add a violin, slow it down and transpose it to D major.")
    assert bad.reasons == ["contradicted:add violin", "contradicted:slower", "contradicted:transpose to D major"]
    assert {v.claim.label: v.verdict for v in check_turn(sample, "human", "Remove the violin.").verdicts} == {
        "remove violin": CONTRADICTED}  # the source confidently has none


# ---------------------------------------------------------------- the pipeline's own text passes


def _facts_grid() -> list[MusicFacts]:
    out = []
    for i, (tempo, conf, vocals, inst, key) in enumerate(itertools.product(
        (55.0, 72.0, 96.0, 118.0, 140.0, 170.0), (None, 0.4, 0.9), ("instrumental", "female vocal", "vocal", None),
        ((), ("piano",), ("strings", "drums"), ("synth", "guitar", "flute")), (None, "F# minor", "Bb major"),
    )):
        out.append(MusicFacts(f"abcdefghijk_{i}", tempo_bpm=tempo, tempo_conf=conf, meter=(3, 4)[i % 2], key=key,
                              key_conf=0.9 if key else None, instruments=inst, vocals=vocals, moods=("sad",)[: i % 2],
                              genres=("rock", "jazz")[: i % 3], labelled_instruments=("trumpet",)[: i % 2],
                              loudness_lufs=-14.0, onset_rate=3.0, speech_ratio=0.3 * (i % 2)))
    return out


def test_grounded_captions_and_template_dialogues_pass_their_own_check():
    for f in _facts_grid():
        h = heard_from_facts(f)
        result = check_caption(grounded_caption(f), h)
        assert result.reasons == [] and result.consistency in (1.0, None), (grounded_caption(f), result.to_json())
        other = MusicFacts("abcdefghijk_x", tempo_bpm=(f.tempo_bpm or 90) * 0.8, key=f.key, instruments=("harp",))
        diff = EditDiff(added_instruments=f.instruments or ("harp",), removed_instruments=("harp",),
                        tempo_src=other.tempo_bpm, tempo_tgt=f.tempo_bpm, key_src="C major", key_tgt=f.key)
        for sample in (DialogueSample("muedit", f"x__{f.clip_id}", "x", f.clip_id, "a", "b", f, diff),
                       DialogueSample("muimage", f.clip_id, f.clip_id, f.clip_id, "A drummer on a stage with a guitar.", "b", f)):
            for side, turn in (("human", human_turn(sample, 0)), ("gpt", gpt_turn(sample, 0))):
                assert check_turn(sample, side, turn).reasons == [], (turn, check_turn(sample, side, turn).to_json())


# ---------------------------------------------------------------- policy and bad input


def test_caption_policy_rejects_or_drops_the_contradicted_sentence():
    h = Heard(FACTS, EVIDENCE)
    text = "A synth and drums piece. A female vocalist sings along. It is in A minor."
    rejected = check_caption(text, h)
    assert rejected.text is None and rejected.reasons == ["contradicted:female voice"]
    dropped = check_caption(text, h, FactPolicy(caption_action="drop"))
    assert dropped.text == "A synth and drums piece. It is in A minor." and dropped.reasons == []
    assert dropped.dropped == ["A female vocalist sings along."]
    strict = FactPolicy(max_unverifiable=0.3)
    assert check_caption("A trumpet and a banjo with drums.", h, strict).reasons == ["unverifiable:0.67"]
    with pytest.raises(M2UGenError):
        FactPolicy(caption_action="rewrite")


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"), ("   ", "empty"), (None, "empty"), ("piano " * 2000, "too_long"),
        ("Eine langsame Gitarre spielt mit einer Frauenstimme und leisem Schlagzeug.", "not_english"),
        ("Une guitare lente joue avec une voix de femme et une batterie douce.", "not_english"),
        ("这是一首带有钢琴和女声的慢歌。", "not_english"), ("1234 5678 !!!", "not_english"),
    ],
)
def test_bad_text_is_a_recorded_rejection(text, reason):
    assert screen(text) == reason
    result = check_caption(text, Heard(FACTS, EVIDENCE))
    assert result.reasons == [reason] and result.text is None


def test_short_english_requests_are_not_mistaken_for_another_language():
    for text in ("Add harp.", "Raise tempo, add drums, remove piano.", "Transpose it to C major.", "Make it slower, around 90 BPM."):
        assert screen(text) is None


class _Hallucinating:
    backend, model = "free", "v1"

    def prompt_hash(self, item: CaptionItem) -> str:
        return "h-" + item.item_id

    def caption_batch(self, items):
        return ["A female vocalist sings over a slow acoustic guitar. Synth and drums drive it." if i.item_id.endswith("1")
                else "Ein langsames Lied mit einer Gitarre und einer Frauenstimme." if i.item_id.endswith("2") else "Synth and drums drive it." for i in items]

    def evidence(self, item):
        return None


def test_caption_writer_stores_verdicts_and_rejects_hallucinations(warehouse):
    items = [CaptionItem(f"abcdefghijk_{i}", FACTS, tag_evidence=EVIDENCE) for i in range(3)]
    summary = write_captions(warehouse, _Hallucinating(), items)
    assert (summary.written, summary.rejected) == (3, 2)
    rows = {r["item_id"]: r for r in warehouse.read("captions").to_pylist()}
    ok, bad, foreign = rows["abcdefghijk_0"], rows["abcdefghijk_1"], rows["abcdefghijk_2"]
    assert ok["status"] == "ok" and ok["text"] == "Synth and drums drive it." and ok["consistency"] == 1.0
    assert bad["status"] == "rejected" and bad["text"] is None
    assert bad["reasons"] == ["contradicted:female voice"]
    report = json.loads(bad["factcheck"])
    assert report["rejected_text"].startswith("A female vocalist") and report["text"]["contradicted"] == 1
    assert report["version"] == "factcheck-v2"
    assert {c["claim"]: c["verdict"] for c in report["text"]["claims"]}["female voice"] == CONTRADICTED
    assert foreign["reasons"] == ["not_english"] and foreign["text"] is None


def test_captions_written_before_claims_were_checked_still_read(warehouse):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from m2ugen_data.warehouse import utc_now

    old = pa.table({"item_id": ["abcdefghijk_0"], "modality": ["audio"], "backend": ["grounded"], "model": ["m"],
                    "prompt_hash": ["h"], "text": ["A piano piece."], "evidence": [None], "created_at": [utc_now()]})
    warehouse.manifest_dir("captions").mkdir(parents=True, exist_ok=True)
    pq.write_table(old, warehouse.manifest_dir("captions") / "old.parquet")
    (row,) = warehouse.read("captions").to_pylist()
    assert row["text"] == "A piano piece." and row["status"] is None and row["factcheck"] is None


def test_the_card_shows_consistency_and_the_most_frequent_contradicted_claims(warehouse, tmp_path):
    from rows import with_nulls

    from m2ugen_data.report import write_report
    from m2ugen_data.warehouse import utc_now

    now = utc_now()
    ids = [f"abcdefghijk_{i}" for i in range(3)]
    warehouse.write_batch("segments", [with_nulls("segments", {
        "clip_id": c, "ytid": "abcdefghijk", "start_s": 0.0, "end_s": 10.0, "pool": "mucaps", "source": "t",
        "updated_at": now}) for c in ids], "s")
    items = [CaptionItem(c, FACTS, tag_evidence=EVIDENCE) for c in ids]
    write_captions(warehouse, _Hallucinating(), items)
    page = (write_report(warehouse, tmp_path / "card").parent / "mucaps" / "index.html").read_text()
    claims = page.split('id="claims"')[1].split("<h2")[0]
    assert "<th>captions checked</th><td class=\"num\">3</td>" in claims and "<td class=\"num\">2</td>" in claims
    assert "female voice: 1" in claims
    readme = (tmp_path / "card" / "mucaps" / "README.md").read_text()
    assert "3 captions checked, 2 rejected" in readme and "consistency.png" in readme
