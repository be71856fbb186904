"""The default dialogue backend: both turns written from the measured facts, with varied phrasing.

Offline and deterministic: the phrasing of each clause is chosen from a digest of the sample id, the slot and
the request seed, so a corpus is not one sentence repeated, a retry (new seed) reads differently, and a rerun
writes the same text. MUEdit requests name real changes (instruments or a voice added, removed or swapped,
tempo, key, mood, style) because they are built from the pair's measured differences (``EditDiff``).
"""

from __future__ import annotations

from collections.abc import Sequence

from m2ugen_data.captions.facts import (
    VOICE_PHRASES,
    MusicFacts,
    article,
    choose,
    join_words,
    proper,
    tempo_word,
    with_article,
)
from m2ugen_data.captions.grounded import style_phrase
from m2ugen_data.dialogues.backend import Completion, Request
from m2ugen_data.dialogues.prompts import GPT_PREFIX
from m2ugen_data.dialogues.samples import DialogueSample, EditDiff, Words

VERSION = "template-v2"  # bump when phrasing changes: it is part of the prompt hash, so caches redo
MAX_CLAUSES = 3  # the reference prompt asks for at most three edit instructions


def _swap(added: Sequence[str], removed: Sequence[str], voice: bool) -> tuple[str, str] | None:
    """The first removed and the first added source of one kind (instruments, or voices): a request swaps
    like for like, never a piano for a voice."""
    r = next((x for x in removed if (x in VOICE_PHRASES) == voice), None)
    a = next((x for x in added if (x in VOICE_PHRASES) == voice), None)
    return (r, a) if r and a else None


def _source_clauses(d: EditDiff, key: tuple[object, ...]) -> list[str]:
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
                f"change the {r} to {a}",
                f"turn the {r} into {a}",
            ]
            clauses.append(choose(options, *key, "swap", voice))
    if added:
        a = join_words([with_article(x) for x in added])
        clauses.append(choose([f"add {a}", f"bring in {a}", f"introduce {a}", f"layer in {a}"], *key, "add"))
    if removed:
        r = join_words([f"the {x}" for x in removed])
        clauses.append(choose([f"remove {r}", f"take out {r}", f"drop {r}", f"leave out {r}"], *key, "remove"))
    return clauses


def _tempo_clause(d: EditDiff, key: tuple[object, ...]) -> str:
    bpm = round(d.tempo_tgt)
    options = (
        [f"make it faster, around {bpm} BPM", f"speed it up to about {bpm} BPM", f"raise the tempo to {bpm} BPM"]
        if d.tempo_change == "faster"
        else [f"slow it down to about {bpm} BPM", f"make it slower, around {bpm} BPM", f"lower the tempo to {bpm} BPM"]
    )
    return choose(options, *key, "tempo")


def _style_clause(slot: str, added: Words, removed: Words, key: tuple[object, ...]) -> str:
    """A mood or genre request; it names the old word too when one was measured ('from happy to sad')."""
    new, old = join_words([proper(w) for w in added]), join_words([proper(w) for w in removed])
    if slot == "mood":
        options = [f"make it sound {new}", f"give it {article(new)} mood", f"change the mood to {new}"]
        options += [f"change the mood from {old} to {new}", f"make it {new} rather than {old}"] if old else []
    else:
        options = [f"turn it into {article(new)} piece", f"give it {article(new)} style", f"change the style to {new}"]
        options += [f"change the style from {old} to {new}", f"turn it from {old} into {new}"] if old else []
    return choose(options, *key, slot)


def _edit_clauses(d: EditDiff, key: tuple[object, ...]) -> list[str]:
    """Imperative clauses (lowercase verb first), most salient change first."""
    clauses = _source_clauses(d, key)
    if d.tempo_change:
        clauses.append(_tempo_clause(d, key))
    if d.key_changed:
        k = d.key_tgt
        options = [f"transpose it to {k}", f"move it to {k}", f"change the key to {k}", f"shift it into {k}"]
        clauses.append(choose(options, *key, "key"))
    if d.added_moods:
        clauses.append(_style_clause("mood", d.added_moods, d.removed_moods, key))
    if d.added_genres:
        clauses.append(_style_clause("genre", d.added_genres, d.removed_genres, key))
    return clauses[:MAX_CLAUSES]


def join_phrases(phrases: Sequence[str]) -> str:
    """'a and b', 'a, b and c'; with a comma before the last "and" when an earlier phrase has its own comma
    or "and" ('add a flute and a harp, and make it slower'), so the reader sees where each one ends."""
    nested = any("," in p or " and " in p for p in phrases[:-1])
    return f"{', '.join(phrases[:-1])}, and {phrases[-1]}" if nested and len(phrases) > 1 else join_words(phrases)


def _sentence(clauses: Sequence[str], key: tuple[object, ...]) -> str:
    text = join_phrases(clauses)
    if choose((False, False, True), *key, "please"):
        return f"Please {text}."
    return f"{text[:1].upper()}{text[1:]}."


def _sources_fragment(f: MusicFacts, key: tuple[object, ...]) -> str | None:
    """'led by piano and drums with female vocals', 'with male vocals', None."""
    instruments, voice = f.words("instruments"), f.voice
    if instruments:
        inst = join_words(instruments)
        options = [f"played on {inst}", f"led by {inst}", f"built around {inst}", f"featuring {inst}"]
        frag = choose(options, *key, "inst")
        return frag + (f" with {voice}" if voice else "")
    return choose([f"with {voice}", f"featuring {voice}"], *key, "voice") if voice else None


def music_fragments(f: MusicFacts, key: tuple[object, ...]) -> list[str]:
    """Descriptive fragments that complete 'a music that is ...' ('upbeat at about 120 BPM', 'in A minor')."""
    frags: list[str] = []
    style = style_phrase(f.words("moods"), f.words("genres"), instrumental=f.vocals == "instrumental")
    if f.tempo_bpm is not None:
        bpm, tw = round(f.tempo_bpm), tempo_word(f.tempo_bpm)
        frags.append(
            choose(
                [f"{tw} at about {bpm} BPM", f"{tw}, around {bpm} BPM", f"{tw} with {article(str(bpm))} BPM pulse"],
                *key,
                "tempo",
            )
        )
    if style:
        frags.append(choose([f"{style} in feel", f"{style} in character", f"in {article(style)} style"], *key, "style"))
    sources = _sources_fragment(f, key)
    if sources:
        frags.append(sources)
    if f.key:
        frags.append(choose([f"in {f.key}", f"set in {f.key}", f"written in {f.key}"], *key, "key"))
    return frags or ["a piece of music"]


def _description(f: MusicFacts, key: tuple[object, ...]) -> str:
    return join_phrases(music_fragments(f, key))


def human_turn(s: DialogueSample, seed: int) -> str:
    key = (s.sample_id, seed)
    if s.diff is not None:
        clauses = _edit_clauses(s.diff, key)
        if not clauses:  # nothing measurable changed: the validator rejects this honestly
            return "Rework the music a little."
        return _sentence(clauses, key)
    scene = s.input_caption.strip().rstrip(".")
    scene = scene[:1].lower() + scene[1:]
    desc = _description(s.target, key)
    kind = s.visual
    options = [
        f"Generate a music for the {kind} that is {desc}, to match {scene}.",
        f"Generate a music for the {kind} that is {desc}; it shows {scene}.",
        f"Please generate a music for this {kind} of {scene} that is {desc}.",
        f"Compose a music for the {kind} of {scene} that is {desc}.",
        f"Create a music for the {kind} that is {desc}, fitting {scene}.",
    ]
    return choose(options, *key, "visual")


def gpt_turn(s: DialogueSample, seed: int) -> str:
    key = (s.sample_id, seed, "gpt")
    desc = _description(s.target, key)
    if s.visual is None:
        return f"{GPT_PREFIX} {desc}."
    scene = s.input_caption.strip().rstrip(".")
    scene = scene[:1].lower() + scene[1:]
    options = [
        f"{GPT_PREFIX} {desc}, matching {scene}.",
        f"{GPT_PREFIX} {desc}, to go with the {s.visual} of {scene}.",
        f"{GPT_PREFIX} {desc}.",
    ]
    return choose(options, *key, "visual")


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
