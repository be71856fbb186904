"""Rule-based defects a dialogue turn must not have, whichever backend wrote it, and the sentence skeleton
the text bench counts.

Each rule returns its name when it finds its defect, and the validator rejects a turn with that name as its
reason, so an LLM that writes "a upbeat piece" or "the image of a dim image" is asked again exactly like a
template that would:

- ``article_agreement``: "a"/"an" against the sound of the next word ("a organ", "an ukulele", "a 80"):
  vowel letters, with the exceptions English has (a silent h, "uni"/"eu"/"one" read with a consonant,
  letters spelled out in "an MP3", numerals read aloud in "an 8", "an 18", note names in "an F# minor").
  ``inflect`` knows the same exceptions, but importing it costs ~2 s of CPU (typeguard instruments every
  function at import), more than validating a corpus, and it does not read numerals.
- ``duplicated_noun``: one noun twice in the same phrase ("music for the image of a dim image"): the same
  noun, singular or plural, at most ``DUPLICATE_WINDOW`` words apart with nothing between them that opens
  a new phrase (a comma, "and", "or", "with", "to", "from" ...), so "electric guitar and bass guitar" and
  "replace the guitar with a bass guitar" pass. Nouns come from a closed list (``NOUNS``: what the
  texts name: pictures, music, instruments, AudioSet's instrument names), so adjectives repeated for
  emphasis are not taken for nouns.
- ``dangling_relative``: a relative clause with nothing to hold on to: "that is" with no complement
  ("a piece that is."), a singular verb after a bare list ("Drum kit, Electric guitar and Flute that is
  upbeat"), "that" after a comma (", that sounds"), a relative clause on a number or unit
  ("120 BPM that is"), or a sentence opening "Which is".
- ``repeated_word``: a word or a two-word phrase twice in a row ("the the", "in the in the").

Why rules, not a parser: spaCy's English models are not on PyPI from their authors (only third-party
re-uploads), a parse costs milliseconds per turn and the validator runs on every turn of every backend,
while these four defects are visible in the word sequence itself; each rule has a test with its planted
defect and clean text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from functools import cache

DUPLICATE_WINDOW = 6  # words: "image of a dim image" is 4 apart; two clauses of a sentence are further

_TOKEN = re.compile(r"[A-Za-z][A-Za-z'#-]*|\d+(?:[.,/]\d+)*|[.,;:!?]")
_SENTENCE_END = frozenset(".!?")
_PUNCT = frozenset(".,;:!?")

# ---- the sentence skeleton (function words are the frame, everything else a slot)

FUNCTION_WORDS = frozenset(
    """a an the this that these those some any each every no my your our its their his her it they them we
    us i you me he she him what which who whom whose where when while how why whether if so as than then
    there here and or nor but yet either neither both not to of in on at by for with without from into onto
    over under about around through across along between among after before during until up down out off
    like near per via is are was were be been being am do does did have has had having can could will would
    shall should may might must let let's i'd i'm i've it's that's there's here's what's don't can't won't
    please just also too very really quite rather more most less least much many few little only even still
    again now one""".split()
)


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def sentences(text: str) -> list[list[str]]:
    """Tokens of each sentence (split after . ! ?)."""
    out: list[list[str]] = [[]]
    for t in tokens(text):
        out[-1].append(t)
        if t in _SENTENCE_END:
            out.append([])
    return [s for s in out if s]


def skeleton(sentence: Sequence[str]) -> str:
    """The frame of a sentence: function words and punctuation kept, numbers as ``#``, every run of other
    words as one ``_``. 'Add a flute and a harp.' and 'Bring in a piano and a cello.' differ ('_ a _ and a
    _ .' / '_ in a _ and a _ .'), while 'Generate/Compose/Create a music for the image' is one skeleton:
    swapping synonyms is not variety."""
    out: list[str] = []
    for t in sentence:
        low = t.lower()
        if low in FUNCTION_WORDS or t in _PUNCT:
            out.append(low)
        elif t[0].isdigit():
            out.append("#")
        elif not out or out[-1] != "_":
            out.append("_")
    return " ".join(out)


# ---- article agreement


def _numeral_takes_an(numeral: str) -> bool:
    """'an 8', 'an 80', 'an 800', 'an 11', 'an 18', 'an 18,000'; every other numeral takes 'a'."""
    digits = numeral.replace(",", "").split(".")[0].split("/")[0]
    if digits.startswith("8"):
        return True
    # eleven and eighteen (and their thousands, millions ...): 11, 18, 11000, 18500000
    return digits[:2] in ("11", "18") and len(digits) % 3 == 2


_NOTE_NAME = re.compile(r"^[A-G](?:#|b)?(?:m|maj|min|dim|aug|sus)?\d*$")
# letters whose spoken name starts with a vowel sound ("an F", "an MP3", "an FBI agent")
_VOWEL_LETTERS = frozenset("AEFHILMNORSX")
# vowel letters read as a consonant sound ("a unicorn", "a ukulele", "a European", "a one-off")
_CONSONANT_SOUND = ("uni", "use", "usu", "uti", "uto", "ure", "uk", "eu", "ewe", "one", "once")
# a silent h ("an hour", "an honest take")
_SILENT_H = ("hour", "honest", "honor", "honour", "heir")


@cache
def takes_an(word: str) -> bool:
    """Whether "an" goes before ``word``, by its sound: 'an hour', 'a unicorn', 'an MP3', 'an 8', 'an F#'."""
    if word[0].isdigit():
        return _numeral_takes_an(word)
    if _NOTE_NAME.match(word):
        return word[0] in "AEF"  # "an F# minor piece", "a Bb major one", "an Am chord"
    letters = word.replace("-", "")
    if len(letters) > 1 and letters.isupper() and (len(letters) <= 3 or not set(letters) & set("AEIOU")):
        return letters[0] in _VOWEL_LETTERS  # spelled out: "an EDM track", "a BPM", "an MP3"
    low = word.lower()
    if low.startswith(_SILENT_H):
        return True
    return low[0] in "aeiou" and not low.startswith(_CONSONANT_SOUND)


_MODES = frozenset({"major", "minor", "flat", "sharp"})


def _article_agreement(toks: Sequence[str], low: Sequence[str]) -> bool:
    for i in range(len(toks) - 1):
        if low[i] not in ("a", "an") or toks[i + 1] in _PUNCT:
            continue
        if toks[i] == "A" and (low[i + 1] in _MODES or (i > 0 and low[i - 1] in ("in", "of"))):
            continue  # the note A ("in A minor", "the key of A"), not the article
        if takes_an(toks[i + 1]) != (low[i] == "an"):
            return True
    return False


# ---- duplicated nouns

_MODALITY_NOUNS = "image picture photo photograph shot still frame scene video clip footage film movie"
_MUSIC_NOUNS = """music piece track tune song melody soundtrack score tempo pace beat rhythm groove pulse key mood
    feel style genre sound vibe texture harmony chord instrument vocal voice singer"""
_INSTRUMENT_NOUNS = """piano guitar bass drum violin viola cello harp harpsichord flute sitar synth synthesizer
    saxophone sax trumpet trombone horn clarinet oboe bassoon organ keyboard banjo mandolin ukulele accordion
    harmonica percussion string brass choir orchestra marimba xylophone vibraphone tabla bell cymbal"""
# words that open a new phrase: a noun after one of them starts again ("guitar and bass guitar",
# "replace the guitar with a bass guitar", "from piano to piano" is another rule's business)
_PHRASE_BREAKS = frozenset(
    """and or nor but than with without for to into from instead rather versus vs like plus while whereas
    then""".split()
)


@cache
def nouns() -> frozenset[str]:
    """The closed noun list (singular): pictures, music, instruments, AudioSet instrument head nouns."""
    return frozenset(_singular(w) for w in _base_nouns())


@cache
def _base_nouns() -> frozenset[str]:
    """The nouns as listed: the words above and the head noun of every AudioSet instrument name (bundled
    ontology)."""
    words = set(" ".join((_MODALITY_NOUNS, _MUSIC_NOUNS, _INSTRUMENT_NOUNS)).split())
    try:
        from m2ugen_data.audioset.ontology import INSTRUMENT, load_ontology

        onto = load_ontology()
        for mid in onto.descendants(INSTRUMENT):
            name = onto.name(mid).split(" (", 1)[0].split(", ", 1)[0].lower()
            if name:
                words.add(name.split()[-1])
    except Exception:  # noqa: BLE001 - the closed list above still works without the ontology file
        pass
    return frozenset(words)


@cache
def _singular(word: str) -> str:
    """'drums' -> 'drum', 'pictures' -> 'picture', 'brushes' -> 'brush' when the singular is a known noun."""
    low = word.lower()
    for cut in (1, 2):
        if low.endswith("s"[:cut] if cut == 1 else "es") and low[:-cut] in _base_nouns():
            return low[:-cut]
    return low


def _duplicated_noun(toks: Sequence[str], low: Sequence[str]) -> bool:
    known = nouns()
    last_seen: dict[str, int] = {}
    for i, word in enumerate(low):
        if word in _PUNCT or word in _PHRASE_BREAKS:
            last_seen.clear()
            continue
        noun = _singular(word)
        if noun not in known:
            continue
        j = last_seen.get(noun)
        if j is not None and i - j <= DUPLICATE_WINDOW:
            return True
        last_seen[noun] = i
    return False


# ---- dangling relative clauses

_RELATIVES = frozenset({"that", "which", "who"})
_SINGULAR_VERBS = frozenset(
    "is was has sounds feels fits matches plays features moves sits runs carries suits goes keeps stays".split()
)
_VERBS = _SINGULAR_VERBS | frozenset("are were have sound feel fit match play feature move sit run carry".split())
# where a noun phrase starts, looking back from a relative pronoun (the list of nouns before it is the span)
_NP_STARTS = frozenset(
    """a an the this that these those some any each every no my your our its their his her of in on at by for
    with from into over under about to is are was were be has have had""".split()
)
_SINGULAR_DETERMINERS = frozenset({"a", "an", "this", "that", "each", "every"})
_COPULAS = frozenset({"is", "are", "was", "were", "has", "have"})
_UNITS = frozenset({"bpm", "hz", "khz", "db", "lufs", "seconds", "second", "minutes", "minute", "bars", "bar"})


def _plural_span(low: Sequence[str], rel: int) -> bool:
    """Whether the words right before a relative pronoun are a bare coordinated list ('guitar and Flute',
    'Drum kit, Electric guitar and Flute'), not one noun phrase ('a jazz and blues track')."""
    j, span = rel - 1, []
    while j >= 0 and low[j] not in _NP_STARTS and low[j] not in _SENTENCE_END and low[j] not in ";:":
        span.append(low[j])
        j -= 1
    opener = low[j] if j >= 0 else ""
    return ("and" in span or "or" in span) and opener not in _SINGULAR_DETERMINERS


def _dangling_relative(toks: Sequence[str], low: Sequence[str]) -> bool:
    n = len(toks)
    for i, word in enumerate(low):
        if word not in _RELATIVES:
            continue
        verb = low[i + 1] if i + 1 < n else ""
        after = toks[i + 2] if i + 2 < n else "."
        prev = low[i - 1] if i > 0 else "."
        if verb not in _VERBS:
            continue
        if prev == "," and word == "that" and not (verb == "is" and after == ","):
            return True  # ", that sounds ...": 'that' never opens a clause after a comma
        if prev in _SENTENCE_END and word == "which" and toks[-1] != "?":
            return True  # "Which is upbeat." as a sentence of its own
        if verb in _COPULAS and after in _PUNCT and prev != ",":
            return True  # "a piece that is." : the clause says nothing
        if prev in _UNITS or prev[:1].isdigit():
            return True  # "at 120 BPM that is upbeat": a number holds no clause
        if verb in _SINGULAR_VERBS and prev != "," and _plural_span(low, i):
            return True
    return False


# ---- repeated words

_ALLOWED_REPEATS = frozenset({"that", "had"})  # "that that", "had had" can be grammatical


def _repeated_word(toks: Sequence[str], words: Sequence[str]) -> bool:
    for i in range(1, len(words)):
        w = words[i]
        if w == words[i - 1] and w not in _PUNCT and w not in _ALLOWED_REPEATS:
            return True  # "the the"
        if i >= 3 and w == words[i - 2] and words[i - 1] == words[i - 3] and not {w, words[i - 1]} & _PUNCT:
            return True  # "in the in the"
    return False


# each rule reads one sentence: its tokens and the same tokens lowercased
RULES: dict[str, Callable[[Sequence[str], Sequence[str]], bool]] = {
    "article_agreement": _article_agreement,
    "duplicated_noun": _duplicated_noun,
    "dangling_relative": _dangling_relative,
    "repeated_word": _repeated_word,
}


def defects(text: str) -> list[str]:
    """Names of the rules ``text`` breaks, in ``RULES`` order (empty for clean text). Each rule reads one
    sentence at a time, so nothing spans a full stop."""
    found: list[str] = []
    for sentence in sentences(text):
        low = [t.lower() for t in sentence]
        for name, rule in RULES.items():
            if name not in found and rule(sentence, low):
                found.append(name)
    return [name for name in RULES if name in found]
