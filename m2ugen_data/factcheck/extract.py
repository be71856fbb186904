"""Claims read from free text: what a caption or a dialogue turn says was heard, one ``Claim`` per statement.

Rules over a phrase table (``vocabulary``), not a parser: the statements that matter here are noun
phrases from a closed vocabulary ("e-bass", "a female vocalist", "uptempo", "in A minor") plus a short
negation scope ("no drums", "without vocals", "there are no voices"). The reasons, measured by
``bench/bench_factcheck.py`` on MusicCaps (see docs/BENCHMARKS.md): these rules meet the precision and
recall targets on the held-out half; spaCy's parser would bring ~200 MB of dependencies, ~15 ms per caption
and an English model that PyPI only carries as third-party re-uploads, to decide a negation scope that a
clause boundary decides as well for this vocabulary.

Edit requests (MUEdit human turns) are read with ``edit=True``: "add X", "remove X", "replace X with Y",
"make it faster", "transpose it to A minor" become edit claims checked against the pair, words after
"from" ("change the mood from happy to sad") describe the source, everything else the target.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from dataclasses import dataclass, field
from functools import cache

from m2ugen_data.factcheck import vocabulary as V

# claim kinds
INSTRUMENT, VOICE, SPEECH, TEMPO, BPM, KEY, MODE, METER, GENRE, MOOD = (
    "instrument", "voice", "speech", "tempo", "bpm", "key", "mode", "meter", "genre", "mood")
ADD, REMOVE, TEMPO_CHANGE, TRANSPOSE = "add", "remove", "tempo_change", "transpose"
EDIT_KINDS = frozenset({ADD, REMOVE, TEMPO_CHANGE, TRANSPOSE})
NEGATABLE = frozenset({INSTRUMENT, VOICE, SPEECH})


@dataclass(frozen=True)
class Claim:
    """One statement: ``kind`` and canonical ``value`` (see ``vocabulary``), negated ("no drums") or not.

    ``about`` is which clip it describes: "target" (the clip a caption or answer describes, or the result
    of an edit) or "source" (an edit request's "from ..." words). ``sentence`` indexes the text's sentences,
    ``text`` is the phrase it was read from."""

    kind: str
    value: str
    negated: bool = False
    text: str = ""
    sentence: int = 0
    about: str = "target"
    at: int = field(default=-1, compare=False)  # where ``text`` starts in the normalised sentence

    @property
    def label(self) -> str:
        """How a reason names it: 'drums', 'no drums', 'tempo fast', '120 bpm', 'add piano', 'key A minor'."""
        if self.kind in (INSTRUMENT, VOICE, SPEECH, GENRE, MOOD):
            return f"no {self.value}" if self.negated else self.value
        if self.kind == BPM:
            return f"{self.value} bpm"
        if self.kind == TEMPO_CHANGE:
            return self.value
        if self.kind == TRANSPOSE:
            return f"transpose to {self.value}" if self.value else "transpose"
        return f"{self.kind} {self.value}"

    def key(self) -> tuple[str, str, bool]:
        return (self.kind, self.value, self.negated)


# ---- text pieces

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_CLAUSE_BREAK = frozenset(
    {",", ";", ":", "(", ")", "but", "while", "whereas", "although", "though", "yet", "only", "instead", "except",
     "whilst", "however", "which", "who", "then"}
)
_NEGATORS = frozenset({"no", "not", "without", "none", "never", "nor", "lacks", "lacking", "absent", "absence", "free", "devoid", "minus"})
_NEGATION_REACH = 6  # tokens between a negator and the phrase it negates
_TOKEN = re.compile(r"[a-z0-9&']+|[,;:()]")


def sentences(text: str) -> list[str]:
    """The text's sentences (a period, ! or ? before a capital letter or digit, or a line break)."""
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def normalise(text: str) -> str:
    """Lowercase, hyphens and slashes between words read as spaces, "n't" as " not", one space."""
    low = text.lower().replace("n't", " not").replace("’", "'")
    low = re.sub(r"(?<=[a-z])[-_/](?=[a-z])", " ", low)
    low = re.sub(r"(?<=[a-z])-(?=\d)|(?<=\d)-(?=[a-z])", " ", low)
    return re.sub(r"\s+", " ", low)


@dataclass(frozen=True)
class _Tok:
    text: str
    start: int
    end: int


def _tokens(low: str) -> list[_Tok]:
    return [_Tok(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(low)]


def _index_at(starts: list[int], pos: int) -> int:
    """Index of the first token starting at or after ``pos`` (``starts``: the tokens' start offsets)."""
    return bisect_left(starts, pos)


def _negated(toks: list[_Tok], first: int) -> bool:
    """A negator earlier in the same clause, at most _NEGATION_REACH tokens before the phrase."""
    for j in range(first - 1, max(-1, first - 1 - _NEGATION_REACH), -1):
        word = toks[j].text
        if word in _CLAUSE_BREAK:
            return False
        if word in _NEGATORS:
            return True
    return False


# ---- the phrase matcher


@cache
def _phrase_table() -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for kind, words in ((GENRE, V.GENRES), (MOOD, V.MOODS), (INSTRUMENT, V.INSTRUMENTS)):
        for phrase, canon in V.surface_table(words).items():
            table[phrase] = (kind, canon)  # later tables win: "electric guitar" is an instrument
    for phrase, canon in V.surface_table(V.TEMPO_WORDS).items():
        table.setdefault(phrase, (TEMPO, canon))  # "upbeat" stays a mood unless beside a tempo noun
    table.update({w: (VOICE, "voice") for w in V.VOICE_WORDS})
    table.update({w: (SPEECH, "speech") for w in V.SPEECH_WORDS})
    table.update({w.replace("-", " "): (VOICE, "no voice") for w in V.NO_VOICE_PHRASES})
    return table


@cache
def _phrase_re() -> re.Pattern[str]:
    phrases = sorted(_phrase_table(), key=len, reverse=True)
    alternation = "|".join(re.escape(p) for p in phrases)
    return re.compile(rf"(?<![a-z0-9&'])(?:{alternation})(?:s|es)?(?![a-z0-9&])")


def _lookup(surface: str) -> tuple[str, str] | None:
    table = _phrase_table()
    for cand in (surface, surface[:-1], surface[:-2]):
        if cand in table:
            return table[cand]
    return None


# tempo words that name a tempo anywhere; the rest ("fast", "slow", "medium") only beside a tempo noun
_STRONG_TEMPO = frozenset(
    p for canon, ps in V.TEMPO_WORDS.items() for p in (canon, *ps)
    if " " in p or p in ("slowly", "downtempo", "uptempo", "largo", "adagio", "lento", "andante", "moderato", "allegro", "presto")
) - {"medium", "moderate", "very slow", "very fast"}
_TEMPO_WORDS = frozenset(w for canon, ps in V.TEMPO_WORDS.items() for p in (canon, *ps) for w in p.split())
_TEMPO_NOUNS = frozenset(V.TEMPO_NOUNS) | {"song", "songs", "track", "piece", "tune", "ballad", "music", "paced", "rhythmic"}
_TEMPO_VERBS = frozenset({"is", "are", "was", "feels", "feel", "seems", "remains", "stays", "sounds", "sound", "becomes"})
_QUALIFIERS = frozenset({"quite", "very", "rather", "fairly", "pretty", "relatively", "somewhat", "a", "bit", "little", "and",
                         "medium", "moderately", "slightly", "mid", "kind", "of", "really", "mostly", "in", "at"})
_SUBJECTS = frozenset(V.TEMPO_NOUNS) | {"song", "music", "track", "piece", "tune", "it", "recording"}
_NOT_A_PIECE = frozenset({"break", "breaks", "section", "sections", "part", "parts", "intro", "outro", "interlude",
                          "passage", "bridge", "solo", "version", "segment", "melody", "backing", "riff", "hook"})


def _tempo_context(toks: list[_Tok], first: int, last: int, *, strict: bool = False) -> bool:
    """A tempo word names the tempo when a tempo noun follows within two words ("slow tempo", "fast paced
    song", "medium to uptempo") or the tempo is its subject ("the tempo is fast", "the tempo of the piece is
    slow", "the song is medium fast"). ``strict``: only "tempo", "pace", "pulse", ... count, not "song" (an
    "upbeat song" is a cheerful one)."""
    after = [t.text for t in toks[last + 1 : last + 4]]
    nouns = V.TEMPO_NOUNS if strict else _TEMPO_NOUNS
    if any(w in nouns or w in _STRONG_TEMPO for w in after[: 3 if after[:1] == ["to"] else 2]):
        return True
    j = first - 1
    while j >= 0 and (toks[j].text in _QUALIFIERS or toks[j].text in _TEMPO_WORDS):
        j -= 1
    if j < 1 or toks[j].text not in _TEMPO_VERBS:
        return False
    subjects = V.TEMPO_NOUNS if strict else _SUBJECTS
    for k in range(j - 1, max(-1, j - 5), -1):
        if toks[k].text in _CLAUSE_BREAK:
            return False
        if toks[k].text in subjects:
            return True
    return False


def _voice_value(toks: list[_Tok], first: int, last: int) -> str:
    """'female voice' / 'male voice' when a gender word is within three words before (or right after) the
    voice word, else 'voice'."""
    near = [t.text for t in toks[max(0, first - 3) : first]] + [t.text for t in toks[last + 1 : last + 2]]
    female = any(w in V.FEMALE_WORDS for w in near)
    male = any(w in V.MALE_WORDS for w in near)
    if female and not male:
        return "female voice"
    if male and not female:
        return "male voice"
    return "voice"


_BPM = re.compile(r"(?<![\d.])(\d{2,3}(?:\.\d+)?)\s?(?:bpm|beats per minute|beats a minute)\b")
_KEY = re.compile(
    r"(?<![A-Za-z])([A-G])(#|♯|b|♭|\s?sharp|\s?flat)?[\s-]+(major|minor)\b(?!\s+(?:chord|chords|triad|seventh|7th|scale|sixth|ninth))"
)
_KEY_ROOT = re.compile(r"\bkey of ([A-G])(#|♯|b|♭)?(?![A-Za-z#♯♭])(?!\s+(?:major|minor))")
_MODE = re.compile(r"\b(?:in an? |in )?(major|minor)[\s-]+(?:key|tonality|mode)\b|\bin (major|minor)\b")
_METER = re.compile(r"(?<![\d/])(2/4|3/4|4/4|6/8|12/8|5/4|7/8|9/8|6/4)(?![\d/])")
_METER_WORDS = {"waltz": "3/4", "common time": "4/4", "triple meter": "3/4", "triple time": "3/4", "duple meter": "2/4",
                "three four time": "3/4", "four four time": "4/4"}
_SHARP_FLAT = {"#": "#", "♯": "#", "sharp": "#", "b": "b", "♭": "b", "flat": "b"}


def _key_name(root: str, accidental: str | None) -> str:
    return root + _SHARP_FLAT.get((accidental or "").strip(), "")


def _harmony_claims(sentence: str, low: str, i: int) -> list[Claim]:
    out = [Claim(KEY, f"{_key_name(m.group(1), m.group(2))} {m.group(3)}", text=m.group(), sentence=i, at=low.find(m.group().lower()))
           for m in _KEY.finditer(sentence)]
    out += [Claim(KEY, _key_name(m.group(1), m.group(2)), text=m.group(), sentence=i, at=m.start())
            for m in _KEY_ROOT.finditer(sentence)]
    if not out:
        out += [Claim(MODE, m.group(1) or m.group(2), text=m.group(), sentence=i, at=m.start()) for m in _MODE.finditer(low)]
    out += [Claim(METER, m.group(1), text=m.group(), sentence=i, at=m.start()) for m in _METER.finditer(low)]
    for phrase, meter in _METER_WORDS.items():
        for m in re.finditer(rf"\b{phrase}", low):
            out.append(Claim(METER, meter, text=phrase, sentence=i, at=m.start()))
    return out


def _phrase_claims(low: str, toks: list[_Tok], i: int, bare_tempo: bool = False) -> list[Claim]:
    out: list[Claim] = []
    starts = [t.start for t in toks]
    for m in _phrase_re().finditer(low):
        hit = _lookup(m.group())
        if hit is None:
            continue
        kind, value = hit
        first, last = _index_at(starts, m.start()), _index_at(starts, m.end()) - 1
        if value == "upbeat":  # a tempo beside "tempo", "pace", ...; else the cheerful sense ("an upbeat song")
            kind = TEMPO if _tempo_context(toks, first, last, strict=True) else MOOD
        elif kind == TEMPO and not (bare_tempo or m.group() in _STRONG_TEMPO or _tempo_context(toks, first, last)):
            continue
        negated = _negated(toks, first)
        if value == "no voice":
            if m.group().startswith("instrumental") and any(t.text in _NOT_A_PIECE for t in toks[last + 1 : last + 3]):
                continue  # "an instrumental break" says nothing about the whole piece
            value, negated = "voice", True
        elif kind == VOICE:
            value = _voice_value(toks, first, last)
        if negated and kind not in NEGATABLE:
            continue  # "not too fast", "not a rock song": no statement we can check
        out.append(Claim(kind, value, negated, m.group(), i, at=m.start()))
    return out


def _dedupe(claims: list[Claim]) -> list[Claim]:
    """One claim per (kind, value, negation, clip); a generic voice is dropped beside a gendered one."""
    gendered = {(c.negated, c.about) for c in claims if c.kind == VOICE and c.value != "voice"}
    seen: set[tuple] = set()
    out = []
    for c in claims:
        if c.kind == VOICE and c.value == "voice" and (c.negated, c.about) in gendered:
            continue
        k = (*c.key(), c.about)
        if k not in seen:
            seen.add(k)
            out.append(c)
    return out


def extract_claims(text: str, *, edit: bool = False, bare_tempo: bool = False) -> list[Claim]:
    """Every checkable statement of ``text`` in reading order (duplicates merged). ``edit``: the text is an
    edit request, so verbs like "add", "remove", "replace ... with", "faster" make edit claims.
    ``bare_tempo``: a tempo word alone is a tempo claim (a tag list such as MusicCaps' aspects: "fast")."""
    claims: list[Claim] = []
    for i, sentence in enumerate(sentences(text)):
        low = normalise(sentence)
        toks = _tokens(low)
        found = _harmony_claims(sentence, low, i) + [
            Claim(BPM, str(round(float(m.group(1)))), text=m.group(), sentence=i, at=m.start()) for m in _BPM.finditer(low)
        ] + _phrase_claims(low, toks, i, bare_tempo)
        found = _edit_claims(low, found, i) if edit else found
        claims += sorted(found, key=lambda c: c.at)
    return _dedupe(claims)


# ---- edit requests

_ADD_VERBS = ("add", "adding", "bring in", "introduce", "layer in", "layer", "include", "put in", "insert", "feature")
_REMOVE_VERBS = ("remove", "removing", "take out", "drop", "leave out", "strip out", "strip", "cut out", "mute",
                 "get rid of", "eliminate", "lose", "without")
_SWAP_VERBS = ("replace", "swap", "change", "turn", "switch", "substitute", "exchange", "trade")
_SWAP_PREPS = frozenset({"with", "for", "to", "into", "by"})
_FASTER = re.compile(r"\b(faster|speed (?:it |things |this )?up|quicken|(?:raise|increase|up|lift|push) the (?:tempo|pace|speed)|"
                     r"more up ?tempo|pick up the pace|accelerate|quicker|higher tempo)\b")
_SLOWER = re.compile(r"\b(slower|slow (?:it |things |this )?down|(?:lower|decrease|reduce|drop|bring down) the (?:tempo|pace|speed)|"
                     r"decelerate|lower tempo|more laid back)\b")
_TRANSPOSE = re.compile(r"\b(transpose|transposed|modulate|key change|(?:change|move|shift|switch) (?:it |the key |the music )?(?:in)?to|"
                        r"(?:change|switch) the key|into the key of|to the key of)\b")


@cache
def _verb_re() -> re.Pattern[str]:
    verbs = sorted((*_ADD_VERBS, *_REMOVE_VERBS, *_SWAP_VERBS, "make", "give", "transpose", "move", "shift",
                    "slow", "speed", "raise", "lower", "keep", "use", "set"), key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(v) for v in verbs) + r")\b")


def _scopes(low: str) -> list[tuple[int, int, str]]:
    """(start, end, verb) spans: each edit verb reaches to the next verb or the end of the sentence."""
    hits = list(_verb_re().finditer(low))
    return [(m.start(), hits[k + 1].start() if k + 1 < len(hits) else len(low), m.group(1)) for k, m in enumerate(hits)]


def _edit_claims(low: str, found: list[Claim], i: int) -> list[Claim]:
    """Rewrite the plain claims of request sentence ``i`` into edit claims by the verb whose scope holds them."""
    out: list[Claim] = []
    for m in _FASTER.finditer(low):
        out.append(Claim(TEMPO_CHANGE, "faster", text=m.group(), sentence=i, at=m.start()))
    for m in _SLOWER.finditer(low):
        out.append(Claim(TEMPO_CHANGE, "slower", text=m.group(), sentence=i, at=m.start()))
    scopes = _scopes(low)
    transposing = [(a, b) for a, b, _ in scopes if _TRANSPOSE.search(low[a:b])]
    if _TRANSPOSE.search(low) and not transposing:
        transposing = [(0, len(low))]
    for c in found:
        pos = c.at if c.at >= 0 else low.find(normalise(c.text))
        scope = next(((a, b, v) for a, b, v in scopes if a <= pos < b), None)
        verb = scope[2] if scope else ""
        if c.kind in (KEY, MODE) and any(a <= pos < b for a, b in transposing):
            out.append(Claim(TRANSPOSE, c.value, text=c.text, sentence=i, at=pos))
            continue
        if c.kind in (INSTRUMENT, VOICE) and not c.negated and scope:
            if verb in _ADD_VERBS:
                out.append(Claim(ADD, c.value, text=c.text, sentence=i, at=pos))
                continue
            if verb in _REMOVE_VERBS:
                out.append(Claim(REMOVE, c.value, text=c.text, sentence=i, at=pos))
                continue
            if verb in _SWAP_VERBS:
                prep = next((t for t in _tokens(low[scope[0] : pos]) if t.text in _SWAP_PREPS), None)
                out.append(Claim(ADD if prep else REMOVE, c.value, text=c.text, sentence=i, at=pos))
                continue
        if c.kind in (INSTRUMENT, VOICE) and c.negated:
            out.append(Claim(REMOVE, c.value, text=c.text, sentence=i, at=pos))  # "make it without drums"
            continue
        if c.kind == TEMPO and any(m.start() <= pos < m.end() for m in (*_FASTER.finditer(low), *_SLOWER.finditer(low))):
            continue  # "more uptempo" was read as a change
        before = low[scope[0] : pos] if scope else ""
        from_source = re.search(r"\bfrom\b", before) and not re.search(r"\b(to|into)\b", before.split("from")[-1])
        out.append(Claim(c.kind, c.value, c.negated, c.text, i, "source" if from_source else "target", at=pos))
    if transposing and not any(c.kind == TRANSPOSE for c in out):
        out.append(Claim(TRANSPOSE, "", text="transpose", sentence=i, at=transposing[0][0]))
    return out
