"""The text-defect rules: each catches its planted defect and passes clean text, and the validator rejects
any backend's turn that breaks one, with the rule's name as the reason."""

from __future__ import annotations

import pytest

from m2ugen_data.dialogues.text_quality import RULES, defects, sentences, skeleton, takes_an
from m2ugen_data.dialogues.validate import validate_gpt, validate_human

# (rule, text with the defect planted, the same text written correctly)
PLANTED = [
    ("article_agreement", "Here's a upbeat piece for a organ.", "Here's an upbeat piece for an organ."),
    ("article_agreement", "It moves at a 80 BPM pulse.", "It moves at an 80 BPM pulse."),
    ("article_agreement", "Write an ukulele tune in a F# minor key.", "Write a ukulele tune in an F# minor key."),
    ("article_agreement", "I need a hour of music.", "I need an hour of music."),
    ("duplicated_noun", "Compose a music for the image of a dim image dominated by red.",
     "Compose some music for this dim image dominated by red."),
    ("duplicated_noun", "Here is a music that is upbeat music in F major.",
     "Here is some music that is upbeat, in F major."),
    ("duplicated_noun", "Write a guitar piece on guitars.", "Write a piece on guitars."),
    ("dangling_relative",
     "The source video is labelled Drum kit, Electric guitar and Flute that is upbeat at about 118 BPM.",
     "The source video is labelled Drum kit, Electric guitar and Flute, and the music is upbeat at about 118 BPM."),
    ("dangling_relative", "Here is a piece that is.", "Here is a piece that is calm."),
    ("dangling_relative", "I wrote a piece at 120 BPM that is in D minor.", "I wrote a piece in D minor at 120 BPM."),
    ("dangling_relative", "Try this tune, that sounds bright.", "Try this tune that sounds bright."),
    ("dangling_relative", "Here is a track for guitar and piano that is calm.",
     "Here is a calm track for guitar and piano."),
    ("repeated_word", "Add a a flute.", "Add a flute."),
    ("repeated_word", "Put it in the in the key of D minor.", "Put it in the key of D minor."),
    ("repeated_word", "Make it very very slow.", "Make it very slow."),
]  # fmt: skip


@pytest.mark.parametrize(("rule", "bad", "good"), PLANTED)
def test_each_rule_catches_its_planted_defect_and_passes_clean_text(rule, bad, good):
    assert rule in defects(bad), bad
    assert defects(good) == [], good


def test_every_rule_has_a_planted_case():
    assert {rule for rule, _, _ in PLANTED} == set(RULES)


@pytest.mark.parametrize(
    "text",
    [
        "Replace the electric guitar with an acoustic guitar.",  # a noun again after "with": a new phrase
        "Add a guitar and a bass guitar, and make it sound happy.",
        "Change the mood from happy to sad.",
        "Here's a jazz and blues track that is calm, in A minor.",  # one noun phrase before "that"
        "It is in A minor, an 18-bar form at an 80 BPM pulse.",  # the note A; numerals read aloud
        "Could you write an upbeat song with female vocals for this footage?",
        "Which is better, the piano or the harp?",
        "Here is a piece for piano and strings, which is what the picture needs.",
        "Try this: a mellow piece that moves at a slow tempo, for piano and guitar.",
    ],
)
def test_clean_text_has_no_defects(text):
    assert defects(text) == []


def test_rules_read_one_sentence_at_a_time():
    # "image" ends one sentence and starts the next: not one phrase
    assert defects("Write music for this image. Image two comes later.") == []


def test_articles_follow_the_sound_of_the_next_word():
    assert [takes_an(w) for w in ("organ", "ukulele", "hour", "unicorn", "MP3", "8", "11", "18", "80", "120")] == [
        True, False, True, False, True, True, True, True, True, False
    ]  # fmt: skip
    notes = ("A", "Ab", "Bb", "C#", "E", "F#", "Am", "G7")
    assert [takes_an(w) for w in notes] == [True, True, False, False, True, True, True, False]


def test_skeleton_keeps_function_words_and_collapses_the_rest():
    one, two = (skeleton(sentences(t)[0]) for t in ("Compose a music for the image.", "Generate a song for the video."))
    assert one == two == "_ a _ for the _ ."
    assert skeleton(sentences("Speed it up to 120 BPM.")[0]) == "_ it up to # _ ."
    assert skeleton(sentences("Add a flute and a harp.")[0]) != skeleton(sentences("Bring in a flute.")[0])


def test_validator_rejects_any_backends_defect_with_the_rules_name():
    assert validate_human("Add a organ and make it faster.") == ["article_agreement"]
    assert validate_human("Compose a music for the image of a dim image.") == ["duplicated_noun"]
    assert validate_gpt("Here is a music that is calm calm and slow.") == ["repeated_word"]
    assert validate_gpt("Here is a track for guitar and piano that is calm.") == ["dangling_relative"]
    assert validate_gpt("Here is a music that is calm and slow.") == []
