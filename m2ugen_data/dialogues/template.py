"""The default dialogue backend: both turns written from the measured facts, as a person asks and answers.

- A MUImage/MUVideo request names the picture or clip (``scene``: from its caption, or from the
  measurements a grounded caption was written from) and at most ``MAX_WISHES`` wishes for the music (a
  feel, a tempo word, an instrument or voice), each one true of the music returned; never numbers, never
  the source video's AudioSet labels. A MUEdit request names at most ``MAX_CLAUSES`` measured changes
  (``EditDiff``): instruments or a voice added, removed or swapped, tempo, key, mood, style.
- The answer describes the music it returns from its facts: style, instruments and voice, tempo, key.
  A tempo is said through ``facts.tempo_fact`` (a word, and a number only when the rules allow one).

Sentences are composed from typed pieces (``phrases.NounPhrase``), so a modifier attaches to the noun it
was given to and articles agree; ``text_quality`` checks the result like any backend's. Offline and
deterministic: each choice is a digest of the sample id, the slot and the request seed, so a corpus is not
one sentence repeated, a retry (new seed) reads differently, and a rerun writes the same text.
``bench/bench_text.py`` measures the variety (distinct words, sentence skeletons) and counts defects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from m2ugen_data.facts.measured import (
    VOICE_PHRASES,
    MusicFacts,
    TempoFact,
    article,
    choose,
    join_words,
    meter_phrase,
    proper,
    tempo_fact,
    with_article,
)
from m2ugen_data.dialogues.backend import Completion, Request
from m2ugen_data.dialogues.phrases import NounPhrase, capital, first_fit, join_phrases, pick_head
from m2ugen_data.dialogues.samples import DialogueSample, EditDiff, Words
from m2ugen_data.dialogues.scene import scene_phrase

VERSION = "template-v3"  # bump when phrasing changes: it is part of the prompt hash, so caches redo
MAX_CLAUSES = 3  # the reference prompt asks for at most three edit instructions
MAX_WISHES = 2  # a request asks for a feel, a tempo or an instrument, at most two of them
MAX_SOURCES = 4  # instruments an answer names; more reads as a tag list
# AudioSet genre names that are not adjectives ("a Music of Africa piece"), as a person says them
_GENRE_WORDS = {
    "Music of Africa": "African",
    "Music of Asia": "Asian",
    "Music of Latin America": "Latin American",
    "Music of Bollywood": "Bollywood",
    "Music for children": "children's",
    "middle Eastern": "Middle Eastern",
}
Key = tuple[object, ...]


# ---------------------------------------------------------------- words of the music


def genre_word(genre: str) -> str:
    return proper(_GENRE_WORDS.get(genre, genre))


def _style_words(f: MusicFacts) -> tuple[str, ...]:
    """Premodifiers of the music's noun: 'mellow, sad', 'instrumental', 'jazz and blues'."""
    moods, genres = f.words("moods"), [genre_word(g) for g in f.words("genres")]
    pre = [", ".join(moods)] if moods else []
    if f.vocals == "instrumental":
        pre.append("instrumental")
    if genres:
        pre.append(join_words(genres))
    return tuple(pre)


def _music_heads(f: MusicFacts) -> tuple[str, ...]:
    return ("piece", "track", "tune", "song") if f.voice else ("piece", "track", "tune")


def _tempo_phrase(t: TempoFact, key: Key) -> str:
    """A prepositional phrase: 'at a slow tempo of about 70 BPM', 'at an upbeat pace'."""
    tw = article(t.word)
    if t.bpm is None:
        return choose([f"at {tw} tempo", f"at {tw} pace"], *key, "tempo")
    bpm = t.bpm
    return choose(
        [f"at {tw} tempo of about {bpm} BPM", f"at about {bpm} BPM", f"at {tw} pace of around {bpm} BPM"],
        *key,
        "tempo",
    )


def tempo_adjective(t: TempoFact) -> str | None:
    """The tempo word as an adjective of the music ('a slow piece', 'something mid-tempo'), or None for a
    word that reads as a mood without 'tempo' after it ('upbeat')."""
    return {"moderate": "mid-tempo"}.get(t.word, t.word if t.word.endswith(("slow", "fast")) else None)


def _sources(f: MusicFacts, key: Key) -> tuple[str, ...]:
    """Post-modifiers naming what plays: ('for piano and drums', 'with female vocals')."""
    instruments, voice = f.words("instruments")[:MAX_SOURCES], f.voice
    out = []
    if instruments:
        listed = join_words(instruments)
        options = [f"for {listed}", f"on {listed}", f"built on {listed}", f"led by {listed}", f"featuring {listed}"]
        out.append(choose(options if voice else [*options, f"with {listed}"], *key, "sources"))
    if voice:
        out.append(f"with {voice}")
    return tuple(out)


def _details(f: MusicFacts, key: Key) -> list[str]:
    """Prepositional phrases that may follow the music's noun or 'It's': tempo, key, metre."""
    out = []
    tempo = tempo_fact(f)
    if tempo is not None:
        out.append(_tempo_phrase(tempo, key))
        if f.meter and f.meter != 4 and choose((True, False), *key, "meter"):
            out.append(meter_phrase(f.meter))
    if f.key:
        out.append(choose([f"in {f.key}", f"in the key of {f.key}"], *key, "key"))
    order = choose((0, 1), *key, "order")
    return out if order == 0 else out[::-1]


def music_phrase(f: MusicFacts, key: Key) -> NounPhrase:
    """The returned music as a noun phrase: 'mellow jazz piece for guitar and piano, with female vocals'."""
    pre = _style_words(f)
    head = pick_head(_music_heads(f), {w for p in pre for w in p.split()}, *key, "head")
    return NounPhrase(head, pre, _sources(f, key))


# ---------------------------------------------------------------- answers (the model side)

Frame = Callable[[NounPhrase, list[str], str], "str | None"]


def _tail(m: NounPhrase, details: list[str], tie: str) -> str:
    """' at about 90 BPM and in D minor, to go with the picture' after a bare noun phrase, ', at about ...'
    after one with its own modifiers (or '')."""
    parts = [join_phrases(details)] if details else []
    if tie:
        parts.append(tie)
    text = ", ".join(parts)
    return "" if not text else f", {text}" if m.post else f" {text}"


def _it_is(details: list[str], key: Key) -> str | None:
    if not details:
        return None
    return choose(["It's", "It is"], *key, "it") + f" {join_phrases(details)}"


# openings followed by the music and its details ("Here's a slow piece for piano, in D minor.")
_OPENINGS = ("Here's", "Here you go:", "I wrote", "I came up with", "Try this:")
_EDIT_OPENINGS = ("Here's the new version:", "I reworked it into", "Here it is, changed:")


def _opened(opening: str) -> Frame:
    return lambda m, d, tie: f"{opening} {m.indefinite()}{_tail(m, d, tie)}."


_ANSWERS: tuple[Frame, ...] = (
    *map(_opened, _OPENINGS),
    lambda m, d, tie: f"This is {m.indefinite()}{_tail(m, d, tie)}." if d else None,
    lambda m, d, tie: f"Here is {m.indefinite()}{_tail(m, [], tie)}. {_it_is(d, (m.head, tie))}." if d else None,
    lambda m, d, tie: f"How about {m.indefinite()}{_tail(m, [], tie)}? {_it_is(d, (m.bare(),))}." if d else None,
    lambda m, d, tie: f"I made {m.that('moves', 'move', d[0]).indefinite()}{_tail(m, d[1:], tie)}."
    if d and d[0].startswith("at ")
    else None,
    lambda m, d, tie: f"I went with {m.indefinite()}{_tail(m, [], tie)}; it's {join_phrases(d)}." if d else None,
    _opened("I composed"),
)
_EDIT_ANSWERS: tuple[Frame, ...] = tuple(map(_opened, _EDIT_OPENINGS))


def _answer(m: NounPhrase, details: list[str], tie: str, key: Key, edit: bool = False) -> str:
    return first_fit((*_ANSWERS, *_EDIT_ANSWERS) if edit else _ANSWERS, (*key, "answer"), m, details, tie)


def _visual_tie(s: DialogueSample, key: Key) -> str:
    """A short back-reference to the picture ('to go with the photo'), or nothing."""
    head = _scene(s, key).head
    return choose(["", f"to go with the {head}", f"to match the {head}", f"for your {head}", ""], *key, "tie")


def gpt_turn(s: DialogueSample, seed: int) -> str:
    key = (s.sample_id, seed, "gpt")
    m, details = music_phrase(s.target, key), _details(s.target, key)
    tie = _visual_tie(s, (s.sample_id, seed)) if s.visual else ""
    return _answer(m, details, tie, key, edit=s.diff is not None)


# ---------------------------------------------------------------- MUImage / MUVideo requests


def _scene(s: DialogueSample, key: Key) -> NounPhrase:
    return scene_phrase(s.visual or "image", s.input_caption, s.input_backend, s.media, (*key, "scene"))


def _wish_kinds(f: MusicFacts) -> list[str]:
    kinds = []
    if f.words("moods") or f.words("genres"):
        kinds.append("feel")
    if tempo_fact(f) is not None:
        kinds.append("tempo")
    if f.words("instruments") or f.voice:
        kinds.append("source")
    return kinds


def _wishes(f: MusicFacts, key: Key) -> list[str]:
    """Which wishes a request makes (at most MAX_WISHES), chosen per sample; a third of requests make none."""
    kinds = _wish_kinds(f)
    n = min(len(kinds), choose((0, 1, 1, 2, 2, 2), *key, "n_wishes"), MAX_WISHES)
    ranked = sorted(kinds, key=lambda k: choose(range(1000), *key, "wish", k))
    return ranked[:n]


def request_phrase(f: MusicFacts, key: Key) -> tuple[NounPhrase | None, str]:
    """The music a request asks for: its noun phrase and its text, or (None, 'something mellow with a
    flute') when the request says 'something'; with the chosen wishes and nothing else."""
    wishes = _wishes(f, key)
    mood = genre = adjective = None
    posts: list[str] = []
    if "feel" in wishes:
        moods, genres = f.words("moods"), f.words("genres")
        if moods and (not genres or choose((True, False), *key, "feel")):
            mood = moods[0]
        else:
            genre = genre_word(genres[0])
    if "source" in wishes:
        instruments = f.words("instruments")
        posts.append(f"with {with_article(instruments[0]) if instruments else f.voice}")
    if "tempo" in wishes:
        tempo = tempo_fact(f)
        assert tempo is not None
        adjective = tempo_adjective(tempo) if choose((True, False), *key, "tempo_adj") else None
        if adjective is None:
            posts.insert(0, _tempo_phrase(TempoFact(tempo.word, None), key))
    adjectives = [w for w in (adjective, mood) if w]
    if genre is None and choose((False, False, True), *key, "something"):
        return None, " ".join(w for w in ("something", join_words(adjectives), *posts) if w)
    pre = tuple(w for w in (", ".join(adjectives), genre) if w)
    voice_only = "source" in wishes and not f.words("instruments")
    heads = ("piece", "track", "tune", "song") if voice_only else ("piece", "track", "tune", "music", "soundtrack")
    head = pick_head(heads, {w for p in (*pre, *posts) for w in p.split()}, *key, "rhead")
    np = NounPhrase(head, pre, (" ".join(posts),) if posts else (), mass=head == "music")
    return np, np.indefinite()


# request frames: the music asked for ({r}) and the picture as "this ..." ({p})
_REQUESTS = (
    "Can you write {r} for {p}?",
    "Could you compose {r} to go with {p}?",
    "I'd like {r} for {p}, please.",
    "Please make {r} to fit {p}.",
    "Write me {r} to play {near} {p}.",
    "I need {r} for {p}.",
)
_MORE_REQUESTS = (
    "Any chance you could write {r} for {p}?",
    "I'm looking for {r} to suit {p}.",
    "Could I get {r} for {p}?",
    "Write {r} for {p}.",
)
RequestFrame = Callable[[str, str, NounPhrase | None], "str | None"]


def _formatted(frame: str, near: str) -> RequestFrame:
    return lambda r, p, np: frame.format(r=r, p=p, near=near)


def _visual_requests(kind: str) -> tuple[RequestFrame, ...]:
    """Request frames: (music asked for, the picture as 'this ...', the music's noun phrase) -> text."""
    near = "under" if kind == "video" else "alongside"
    return (
        *(_formatted(f, near) for f in _REQUESTS),
        # a subject with its own commas would need a closing one: only short pictures are subjects
        lambda r, p, np: f"{capital(p)} is missing a soundtrack. Can you write {r}?"
        if "soundtrack" not in r and "," not in p
        else None,
        _formatted("Give me {r} to match {p}.", near),
        (lambda r, p, np: f"Let's put {r} under {p}.")
        if kind == "video"
        else (lambda r, p, np: f"Let's pair {p} with {r}." if " with " not in r else None),
        *(_formatted(f, near) for f in _MORE_REQUESTS),
        lambda r, p, np: f"Please come up with {np.that('suits', 'suit', p).indefinite()}." if np else None,
        _formatted("Create {r} to go along with {p}.", near),
        lambda r, p, np: f"Let {p} inspire {r}." if "," not in p else None,
        lambda r, p, np: f"What would fit {p}? I'm after {r}." if np is None or np.pre or np.post else None,
    )


_VISUAL_REQUESTS = {kind: _visual_requests(kind) for kind in ("image", "video")}


def _visual_request(s: DialogueSample, key: Key) -> str:
    scene = _scene(s, key[:2])
    p = scene.this() if choose((True, True, False), *key, "this") else scene.definite()
    np, r = request_phrase(s.target, key)
    return first_fit(_VISUAL_REQUESTS[s.visual or "image"], (*key, "request"), r, p, np)


# ---------------------------------------------------------------- MUEdit requests


def _swap(added: Sequence[str], removed: Sequence[str], voice: bool) -> tuple[str, str] | None:
    """The first removed and the first added source of one kind (instruments, or voices): a request swaps
    like for like, never a piano for a voice."""
    r = next((x for x in removed if (x in VOICE_PHRASES) == voice), None)
    a = next((x for x in added if (x in VOICE_PHRASES) == voice), None)
    return (r, a) if r and a else None


def _source_clauses(d: EditDiff, key: Key) -> list[str]:
    """Replace / add / remove clauses for the instruments and voices that changed (one swap per kind)."""
    clauses: list[str] = []
    added, removed = list(d.added_instruments), list(d.removed_instruments)
    for voice in (False, True):
        swap = _swap(added, removed, voice)
        if swap:
            r, a = swap
            added.remove(a)
            removed.remove(r)
            a = with_article(a)
            options = [
                f"replace the {r} with {a}",
                f"swap the {r} for {a}",
                f"use {a} instead of the {r}",
                f"change the {r} to {a}",
                f"trade the {r} for {a}",
            ]
            clauses.append(choose(options, *key, "swap", voice))
    if added:
        a = join_words([with_article(x) for x in added])
        options = [f"add {a}", f"bring in {a}", f"put {a} in", f"work in {a}", f"layer in {a}"]
        clauses.append(choose(options, *key, "add"))
    if removed:
        r = join_words([f"the {x}" for x in removed])
        options = [f"remove {r}", f"take out {r}", f"drop {r}", f"get rid of {r}", f"leave out {r}"]
        clauses.append(choose(options, *key, "remove"))
    return clauses


def _tempo_clause(d: EditDiff, target: MusicFacts, key: Key) -> str:
    """Faster or slower in words; the target's number only now and then, and only when it may be said."""
    tempo = tempo_fact(target)
    if tempo is not None and tempo.bpm is not None and choose((False,) * 5 + (True,), *key, "bpm"):
        verb = "speed it up" if d.tempo_change == "faster" else "slow it down"
        return f"{verb} to about {tempo.bpm} BPM"
    options = (
        ["speed it up", "make it faster", "make it a bit faster", "take the tempo up", "raise the tempo"]
        if d.tempo_change == "faster"
        else ["slow it down", "make it slower", "make it a little slower", "bring the tempo down", "lower the tempo"]
    )
    return choose(options, *key, "tempo")


def _style_clause(slot: str, added: Words, removed: Words, key: Key) -> str:
    """A mood or genre request; it names the old word too when one was measured ('from happy to sad')."""
    new = join_words([genre_word(w) for w in added])
    old = join_words([genre_word(w) for w in removed])
    if slot == "mood":
        options = [f"make it sound {new}", f"give it {article(new)} mood", f"change the mood to {new}"]
        options += [f"change the mood from {old} to {new}", f"make it {new} rather than {old}"] if old else []
    else:
        options = [f"turn it into {article(new)} piece", f"give it {article(new)} style", f"change the style to {new}"]
        options += [f"change the style from {old} to {new}", f"turn it from {old} into {new}"] if old else []
    return choose(options, *key, slot)


def _edit_clauses(d: EditDiff, target: MusicFacts, key: Key) -> list[str]:
    """Imperative clauses (lowercase verb first), most salient change first."""
    clauses = _source_clauses(d, key)
    if d.tempo_change:
        clauses.append(_tempo_clause(d, target, key))
    if d.key_changed:
        k = d.key_tgt
        options = [f"transpose it to {k}", f"move it to {k}", f"put it in {k}", f"change the key to {k}"]
        clauses.append(choose(options, *key, "key"))
    if d.added_moods:
        clauses.append(_style_clause("mood", d.added_moods, d.removed_moods, key))
    if d.added_genres:
        clauses.append(_style_clause("genre", d.added_genres, d.removed_genres, key))
    return clauses[:MAX_CLAUSES]


_EDIT_WRAPPERS: tuple[Callable[[str], str], ...] = (
    lambda c: f"{capital(c)}.",
    lambda c: f"Please {c}.",
    lambda c: f"{capital(c)}, please.",
    lambda c: f"Could you {c}?",
    lambda c: f"Can you {c}?",
    lambda c: f"I'd like you to {c}.",
    lambda c: f"Let's {c}.",
    lambda c: f"Would you {c}?",
    lambda c: f"Keep the rest, but {c}.",
    lambda c: f"Go ahead and {c}.",
    lambda c: f"I want a new version: {c}.",
)


def _edit_request(s: DialogueSample, key: Key) -> str:
    assert s.diff is not None
    clauses = _edit_clauses(s.diff, s.target, key)
    if not clauses:  # nothing measurable changed: the validator rejects this honestly
        return "Rework the music a little."
    return choose(_EDIT_WRAPPERS, *key, "wrap")(join_phrases(clauses))


def human_turn(s: DialogueSample, seed: int) -> str:
    key = (s.sample_id, seed)
    return _edit_request(s, key) if s.diff is not None else _visual_request(s, key)


class TemplateBackend:
    name = "template"
    model = VERSION

    def config_key(self) -> str:
        return VERSION

    def complete(self, requests: Sequence[Request]) -> list[Completion]:
        return [
            Completion(text=human_turn(r.sample, r.seed) if r.side == "human" else gpt_turn(r.sample, r.seed))
            for r in requests
        ]
