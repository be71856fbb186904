"""Captions and edit requests speak from measurements: what was measured confidently is said, nothing else is,
a label never contradicts a measurement, and every phrase names the column behind it. No audio needed."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from rows import with_nulls

from m2ugen_data.analysis.tag_words import GENRE_TAGS, INSTRUMENT_TAGS, MOOD_TAGS
from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.captions import CaptionItem
from m2ugen_data.facts.measured import _TEMPO_WORDS, MusicFacts, facts_from_rows, label_names, tempo_word
from m2ugen_data.captions.grounded import GroundedCaptioner, grounded_caption, grounded_evidence
from m2ugen_data.facts.rules import CHORD_COVERAGE_MIN, KEY_CONF_MIN, TEMPO_CONF_MIN, TEMPO_PROB_MIN, labels_allowed
from m2ugen_data.captions.writer import write_captions
from m2ugen_data.dialogues.samples import DialogueSample, edit_diff, load_samples, voice_change
from m2ugen_data.dialogues.template import gpt_turn, human_turn
from m2ugen_data.dialogues.validate import validate_human
from m2ugen_data.warehouse import utc_now

ONT = load_ontology()
NAME = ONT.name
IDS = [f"clip{i:03d}xyzab_{i}" for i in range(60)]  # many ids: every phrasing gets exercised

# Words the brief and the tagger may measure, plus every AudioSet instrument, genre and mood name.
VOICE_WORDS = {"vocal", "vocals", "voice", "singing", "sung", "singer", "female", "male", "instrumental", "choir"}
VOCABULARY = (
    set(INSTRUMENT_TAGS)
    | set(GENRE_TAGS)
    | set(MOOD_TAGS)
    | {"quiet", "loud", "dark", "soft", "mellow", "sad", "happy", "chill", "beautiful", "techno", "hip-hop"}
    | VOICE_WORDS
    | {
        n.lower()
        for root, drop in (("/m/04szw", False), ("/m/0kpv1t", True), ("/t/dd00030", True))
        for n in label_names(sorted(ONT.descendants(root)), NAME, drop_music=drop)
    }
)


def said(word: str, text: str) -> bool:
    return re.search(rf"(?<![a-z]){re.escape(word.lower())}(?![a-z])", text.lower()) is not None


def features(**measured) -> dict:
    """A confident schema-2 features row; keyword arguments override it."""
    row = {
        "status": "ok",
        "tempo_bpm": 118.0,
        "tempo_conf": 0.9,
        "tempo_prob": 0.95,
        "tempo_alt_bpm": 59.0,
        "meter": 4,
        "key": "D minor",
        "key_conf": 0.9,
        "loudness_lufs": -12.0,
        "onset_rate": 3.0,
        "speech_ratio": 0.0,
        "instruments": [],
        "genres": [],
        "moods": [],
        "vocals": None,
    }
    return row | measured


def labels(instruments=(), genres=(), moods=()) -> dict:
    """A segment row from AudioSet label names."""
    return {k: [ONT.mid(n) for n in v] for k, v in (("instruments", instruments), ("genres", genres), ("moods", moods))}


def caption(row: dict, seg: dict | None = None, clip_id: str = IDS[0]) -> tuple[str, dict]:
    f = facts_from_rows(clip_id, row, seg, NAME)
    return grounded_caption(f), grounded_evidence(f)


def test_captions_name_the_measured_instruments_genre_mood_and_voice():
    row = features(instruments=["piano", "strings"], genres=["indian"], moods=["mellow"], vocals="female vocal")
    for clip_id in IDS[:20]:
        text, ev = caption(row, clip_id=clip_id)
        for word in ("piano", "strings", "indian", "mellow", "female vocals", "118 BPM", "D minor"):
            assert said(word, text), (word, text)
        assert "Indian" in text  # a proper adjective keeps its capital
    assert ev["instruments"] == {"source": "features.instruments", "value": ["piano", "strings"]}
    assert ev["genres"]["source"] == "features.genres" and ev["moods"]["source"] == "features.moods"
    assert ev["vocals"] == {"source": "features.vocals", "value": "female vocal"}
    assert ev["tempo"] == {"source": "features.tempo_bpm", "value": 118.0, "conf": 0.95}
    assert ev["key"] == {"source": "features.key", "value": "D minor", "conf": 0.9}
    instrumental, _ = caption(features(instruments=["guitar"], vocals="instrumental"))
    assert said("instrumental", instrumental) and not said("vocals", instrumental)


@pytest.mark.parametrize("measured", [True, False], ids=["measured-none", "not-measured"])
def test_no_instrument_genre_mood_or_voice_word_unless_measured(measured):
    row = features() if measured else features(instruments=None, genres=None, moods=None)
    for clip_id in IDS:
        text, ev = caption(row, labels(), clip_id)
        assert not [w for w in VOCABULARY if said(w, text)], text
        assert not {"instruments", "genres", "moods", "vocals"} & ev.keys()
        assert "118 BPM" in text and "D minor" in text  # the confident measurements still speak


def test_low_confidence_tempo_and_key_are_not_said():
    shaky = features(tempo_conf=TEMPO_CONF_MIN - 0.01, key_conf=KEY_CONF_MIN - 0.01)
    for clip_id in IDS[:20]:
        text, ev = caption(shaky, clip_id=clip_id)
        assert "BPM" not in text and "/4 time" not in text and "D minor" not in text, text
        assert not {"tempo", "pace", "meter", "key"} & ev.keys()
    missing_conf, _ = caption(features(tempo_conf=None, key_conf=None))
    assert "BPM" not in missing_conf and "D minor" not in missing_conf  # no recorded confidence: not trusted
    sure, ev = caption(features(tempo_conf=TEMPO_CONF_MIN, tempo_prob=TEMPO_PROB_MIN, key_conf=KEY_CONF_MIN))
    assert "118 BPM" in sure and "4/4 time" in sure and "D minor" in sure
    assert ev["meter"] == {"source": "features.meter", "value": 4}


TEMPO_WORDS = [w for _, w in _TEMPO_WORDS]
BPM_NUMBER = re.compile(r"\d+\s*(?:BPM|bpm|beats per minute)")


@pytest.mark.parametrize("prob", [None, 0.0, 0.3, 0.6, TEMPO_PROB_MIN - 0.001])
@pytest.mark.parametrize("tempo, alt", [(118.0, 59.0), (62.0, 124.0), (150.0, 100.0), (90.0, None), (130.0, 128.0)])
def test_captions_never_state_an_unconfident_tempo_number(prob, tempo, alt):
    """Below the calibrated threshold no BPM number (nor the metre read on the same grid) is said, in any
    phrasing; a tempo word only when it is true at the measured tempo and at its runner-up."""
    row = features(tempo_bpm=tempo, tempo_prob=prob, tempo_alt_bpm=alt)
    f = facts_from_rows(IDS[0], row, None, NAME)
    assert f.tempo_bpm is None and f.meter is None
    both = alt is not None and tempo_word(tempo) == tempo_word(alt)
    assert f.pace_word == (tempo_word(tempo) if both else None)
    for clip_id in IDS:
        text, ev = caption(row, clip_id=clip_id)
        assert not BPM_NUMBER.search(text) and str(round(tempo)) not in text and "/4 time" not in text, text
        assert "tempo" not in ev and "meter" not in ev
        if not both:
            assert "pace" not in ev and not [w for w in TEMPO_WORDS if said(w, text)], text
        else:
            assert said(f.pace_word, text) and ev["pace"]["source"] == "features.tempo_bpm"
        for seed in range(3):
            sample = DialogueSample("muimage", clip_id, clip_id, clip_id, "a photo", text, f)
            turns = human_turn(sample, seed) + " " + gpt_turn(sample, seed)
            assert not BPM_NUMBER.search(turns) and str(round(tempo)) not in turns, turns


def test_edit_requests_state_no_tempo_unless_both_clips_are_confident():
    for src_prob, tgt_prob in ((0.95, 0.5), (0.5, 0.95), (None, 0.95), (0.6, 0.6)):
        _, d = _edit(features(tempo_bpm=90.0, tempo_prob=src_prob), features(tempo_bpm=150.0, tempo_prob=tgt_prob), {})
        assert d.tempo_change is None and (d.tempo_tgt is None or d.tempo_src is None)
        tgt = facts_from_rows("tgtaaaaaaaa_0", features(tempo_bpm=150.0, tempo_prob=tgt_prob), None, NAME)
        for seed in range(8):
            h = human_turn(DialogueSample("muedit", f"s__t{seed}", "s", "t", "a", "b", tgt, d), seed)
            assert "faster" not in h and "slower" not in h and not BPM_NUMBER.search(h), h
    _, sure = _edit(features(tempo_bpm=90.0), features(tempo_bpm=150.0), {})
    assert sure.tempo_change == "faster" and sure.tempo_tgt == 150.0


def test_chords_are_said_only_when_most_beats_have_one():
    bars = ["A:min"] * 4 + ["F:maj"] * 4 + ["C:maj/3"] * 4 + ["G:7"] * 4
    text, ev = caption(features(beat_chords=bars * 2, chord_change_rate=1.0))
    assert "Am, F, C and G7" in text and "about once a bar" in text, text
    assert ev["chords"] == {"source": "features.beat_chords", "value": ["Am", "F", "C", "G7"], "conf": 1.0}
    assert ev["chord_changes"] == {"source": "features.chord_change_rate", "value": 1.0}
    n_none = int(len(bars) * (1 - CHORD_COVERAGE_MIN)) + 1
    sparse = ["N"] * n_none + bars[n_none:]
    text, ev = caption(features(beat_chords=sparse, chord_change_rate=1.0))
    assert "chord" not in text and "Am" not in text and "chords" not in ev, text
    drone, ev = caption(features(beat_chords=["E:min"] * 30 + ["B:maj"] * 2, chord_change_rate=0.1))
    assert "Em" in drone and ev["chords"]["value"] == ["Em"] and "chord_changes" not in ev  # B only passes by


def test_labels_add_only_where_the_tagger_has_no_opinion():
    seg = labels(
        instruments=["Electric guitar", "Drum kit", "Trumpet", "Choir"],
        genres=["Rock music", "Reggae"],
        moods=["Sad music", "Scary music"],
    )
    row = features(instruments=["piano"], genres=["jazz"], moods=[], vocals="instrumental")
    for clip_id in IDS[:20]:
        text, ev = caption(row, seg, clip_id)
        assert said("piano", text) and said("trumpet", text) and said("jazz", text) and said("scary", text)
        for contradicted in ("guitar", "drum", "choir", "rock", "reggae", "sad"):
            assert not said(contradicted, text), (contradicted, text)
    assert ev["labelled_instruments"] == {"source": "segments.instruments", "value": ["trumpet"]}
    assert ev["labelled_moods"] == {"source": "segments.moods", "value": ["scary"]}
    assert "labelled_genres" not in ev  # a genre was measured: the clip has its genre
    # a measured guitar is said once, from the measurement; the label that agrees adds nothing
    f = facts_from_rows("abcdefghijk_0", features(instruments=["guitar"]), labels(["Electric guitar"]), NAME)
    assert f.words("instruments") == ("guitar",)
    assert labels_allowed("instruments", ["choir"], None, "female vocal") == ("choir",)


def test_old_style_rows_caption_from_labels_as_before():
    old = {"tempo_bpm": 100.0, "tempo_conf": 0.8, "meter": 3, "key": "G major", "key_conf": 0.7}  # no schema-2 columns
    seg = labels(instruments=["Piano", "Electric guitar"], genres=["Rock music"], moods=["Happy music"])
    f = facts_from_rows("abcdefghijk_0", old, seg, NAME)
    assert f.instruments is None and f.words("instruments") == ("piano", "electric guitar")
    text, ev = caption(old, seg)
    for word in ("piano", "electric guitar", "rock", "happy", "G major"):
        assert said(word, text), (word, text)
    # a row analysed before tempos were calibrated has no tempo_prob: its tempo may be an octave off, so no
    # number (and no metre) is said until it is analysed again
    assert "100 BPM" not in text and "3/4 time" not in text and f.tempo_bpm is None
    assert {ev[k]["source"] for k in ("labelled_instruments", "labelled_genres", "labelled_moods")} == {
        "segments.instruments",
        "segments.genres",
        "segments.moods",
    }


def _fact_combinations() -> list[MusicFacts]:
    """Facts across every slot's presence, for the evidence and fluency checks."""
    out = []
    combos = itertools.product(
        [None, (), ("piano",), ("drums", "synth"), ("harp", "flute", "cello")],
        [None, "instrumental", "vocal", "male vocal"],
        [(), ("rock",), ("hip-hop", "indian")],
        [(), ("sad",), ("mellow", "beautiful")],
        [(), ("Am",), ("C", "F", "G")],
    )
    for i, (inst, voice, genres, moods, chords) in enumerate(combos):
        out.append(
            MusicFacts(
                f"c{i:05d}abcdef_0",
                tempo_bpm=[None, 84.0, 128.0][i % 3],
                meter=[None, 3, 4][i % 3],
                key=[None, "E minor"][i % 2],
                loudness_lufs=[None, -25.0][i % 2],
                onset_rate=[None, 5.0][(i // 2) % 2],
                speech_ratio=[0.0, 0.5][(i // 3) % 2],
                instruments=inst,
                genres=genres,
                moods=moods,
                vocals=voice,
                chords=chords,
                chord_change_rate=0.5 if len(chords) > 1 else None,
                labelled_instruments=("organ",) if i % 5 == 0 else (),
            )
        )
    return out


def _evidence_visible(slot: str, value, text: str) -> bool:
    if slot in ("tempo", "meter"):
        return f"{round(value)} BPM" in text if slot == "tempo" else f"{value}/4 time" in text
    if slot == "vocals":
        return said("instrumental" if value == "instrumental" else "vocals", text)
    if slot == "chords":
        return all(re.search(rf"\b{re.escape(c)}\b", text) for c in value)
    if slot in ("chord_changes", "loudness", "density", "speech"):
        return any(said(w, text) for w in {"chord_changes": ["changing"], "loudness": ["level", "loudness"],
                   "density": ["onsets", "texture"], "speech": ["speech", "spoken", "speaking"]}[slot])
    values = value if isinstance(value, list) else [value]
    return all(said(v, text) for v in values)


def test_every_slot_said_has_evidence_and_every_evidence_slot_is_said():
    for f in _fact_combinations():
        text, ev = grounded_caption(f), grounded_evidence(f)
        for slot, claim in ev.items():
            assert claim["source"].startswith(("features.", "segments.")), claim
            assert _evidence_visible(slot, claim["value"], text), (slot, claim, text)
        named = {w for w in VOCABULARY if said(w, text)} - {"instrumental"} - VOICE_WORDS
        backed = {w for k in ("instruments", "labelled_instruments", "genres", "moods") for w in ev.get(k, {}).get("value", [])}
        assert named <= backed, (named - backed, text)


def test_captions_read_fluently_across_fact_combinations():
    for f in _fact_combinations():
        text = grounded_caption(f)
        low = text.lower()
        assert not re.search(r"\b(\w+) \1\b", low), text  # no repeated word
        assert not re.search(r"\ba (?!u(?:ni|se|k))[aeiou]|\ban [^aeiou8\W]", low), text  # articles
        assert not re.search(r"\ban? (drums|strings|vocals|female vocals|male vocals)\b", low), text
        assert not re.search(r"\b(drums|strings|vocals) carries\b", low), text
        assert text.endswith(".") and "  " not in text and ". ." not in text
        first_words = [s.split(" ", 1)[0] for s in text.split(". ")]
        assert all(a != b for a, b in itertools.pairwise(first_words)), text  # no two sentences open alike


def test_writer_stores_the_evidence_json(warehouse):
    f = facts_from_rows("abcdefghijk_0", features(instruments=["flute"]), labels(["Organ"]), NAME)
    write_captions(warehouse, GroundedCaptioner(), [CaptionItem("abcdefghijk_0", f)])
    row = warehouse.read("captions").to_pylist()[0]
    ev = json.loads(row["evidence"])
    assert ev["instruments"]["value"] == ["flute"] and ev["labelled_instruments"]["source"] == "segments.instruments"
    assert ev == grounded_evidence(f)


# ---- edit requests


def _edit(src_row: dict, tgt_row: dict, pair: dict, src_seg: dict | None = None, tgt_seg: dict | None = None):
    src = facts_from_rows("srcaaaaaaaa_0", src_row, src_seg, NAME)
    tgt = facts_from_rows("tgtaaaaaaaa_0", tgt_row, tgt_seg, NAME)
    return tgt, edit_diff(pair, src, tgt, src_seg or {}, tgt_seg or {}, NAME)


def test_edit_requests_name_the_measured_instrument_differences():
    guitar = ONT.mid("Electric guitar")
    tgt, d = _edit(
        features(instruments=["piano", "drums"]),
        features(instruments=["flute", "drums"], tempo_conf=0.1, tempo_bpm=160.0),
        {"instruments_added": ["flute"], "instruments_removed": ["piano"], "labels_added": [guitar]},
        tgt_seg=labels(["Electric guitar"]),
    )
    # the guitar label disagrees with the target's measurement; the shaky target tempo is no change
    assert (d.added_instruments, d.removed_instruments, d.tempo_change) == (("flute",), ("piano",), None)
    for seed in range(12):
        h = human_turn(DialogueSample("muedit", f"s__t{seed}", "s", "t", "a", "b", tgt, d), seed)
        assert said("flute", h) and validate_human(h, d) == [], h
        assert not said("guitar", h) and "BPM" not in h


def test_edit_requests_name_voice_mood_and_genre_changes():
    _, d = _edit(
        features(vocals="male vocal", moods=["happy"], genres=["rock"]),
        features(vocals="female vocal", moods=["sad"], genres=["jazz"]),
        {"instruments_added": [], "instruments_removed": []},
    )
    assert (d.added_instruments, d.removed_instruments) == (("female vocals",), ("male vocals",))
    assert (d.added_moods, d.removed_moods, d.added_genres) == (("sad",), ("happy",), ("jazz",))
    texts = [human_turn(DialogueSample("muedit", f"s{i}__t", "s", "t", "a", "b", MusicFacts("t"), d), 0) for i in range(30)]
    assert all(validate_human(t, d) == [] for t in texts)
    assert any("with female vocals" in t for t in texts) and any("sad" in t for t in texts)
    assert voice_change("instrumental", "vocal") == (("vocals",), ())
    assert voice_change("vocal", "female vocal") == ((), ())  # vaguer vs gendered is no measured change
    assert voice_change(None, "female vocal") == ((), ())


def test_muedit_samples_use_the_pairs_measured_columns(warehouse):
    now = utc_now()
    ids = ("abcdefghijk_0", "abcdefghijk_10000")
    seg = {"ytid": "abcdefghijk", "start_s": 0.0, "end_s": 10.0, "labels": [], "genres": [], "moods": [],
           "pool": "muedit", "source": "t", "updated_at": now}
    warehouse.write_batch(
        "segments", [seg | {"clip_id": ids[0], "instruments": [ONT.mid("Piano")]}, seg | {"clip_id": ids[1], "instruments": []}], "s"
    )
    feats = [features(instruments=["piano"], vocals="instrumental"), features(instruments=["harp"], vocals="female vocal")]
    warehouse.write_batch(
        "features",
        [with_nulls("features", r | {"clip_id": c, "analyser_version": "t", "updated_at": now}) for c, r in zip(ids, feats)],
        "f",
    )
    cap = {"modality": "audio", "backend": "grounded", "model": "m", "prompt_hash": "h", "evidence": None, "created_at": now}
    warehouse.write_batch("captions", [with_nulls("captions", cap | {"item_id": i, "text": "A piece."}) for i in ids], "c")
    pair = {"src_id": ids[0], "tgt_id": ids[1], "instruments_added": ["harp"], "instruments_removed": ["piano"],
            "labels_added": [], "labels_removed": [ONT.mid("Piano")], "miner_version": "t", "created_at": now}
    warehouse.write_batch("pairs", [with_nulls("pairs", pair)], "p")
    (sample,), _ = load_samples(warehouse, "muedit", NAME)
    assert sample.diff.added_instruments == ("harp", "female vocals")
    assert sample.diff.removed_instruments == ("piano",)  # measured once; the agreeing label adds nothing
    assert sample.target.words("instruments") == ("harp",)


def test_chord_roots_are_spelled_for_the_measured_key() -> None:
    from m2ugen_data.facts.rules import summarise_chords

    beats = ["A#:maj"] * 4 + ["D#:maj"] * 4 + ["F:maj"] * 4
    assert summarise_chords(beats, "Bb major").chords == ("Bb", "Eb", "F")
    assert summarise_chords(["F#:maj"] * 4 + ["C#:min"] * 4, "E major").chords == ("F#", "C#m")
    assert summarise_chords(["A#:maj"] * 4, None).chords == ("Bb",)
