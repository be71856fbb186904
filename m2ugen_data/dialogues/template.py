"""The default dialogue backend: both turns written from the measured facts, with varied phrasing.

Offline and deterministic: the phrasing of each clause is chosen from a digest of the sample id, the slot and
the request seed, so a corpus is not one sentence repeated, a retry (new seed) reads differently, and a rerun
writes the same text. MUEdit requests name real changes (instruments added or removed, tempo, key, mood,
style) because they are built from them.
"""

from __future__ import annotations

from collections.abc import Sequence

from m2ugen_data.captions.facts import MusicFacts, choose, join_words, tempo_word
from m2ugen_data.captions.grounded import style_phrase
from m2ugen_data.dialogues.backend import Completion, Request
from m2ugen_data.dialogues.prompts import GPT_PREFIX
from m2ugen_data.dialogues.samples import DialogueSample, EditDiff

VERSION = "template-v1"  # bump when phrasing changes: it is part of the prompt hash, so caches redo
MAX_CLAUSES = 3  # the reference prompt asks for at most three edit instructions


def _a(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


_MASS_NOUNS = frozenset(
    {"percussion", "mallet percussion", "scratching", "tapping", "strum", "pizzicato", "timpani", "change ringing"}
)


def _a_noun(name: str) -> str:
    """'a piano', 'an organ'; plural and mass nouns stay bare ('bagpipes', 'percussion')."""
    return name if name in _MASS_NOUNS or name.endswith("s") else _a(name)


def _edit_clauses(d: EditDiff, key: tuple[object, ...]) -> list[str]:
    """Imperative clauses (lowercase verb first), most salient change first."""
    clauses: list[str] = []
    added, removed = list(d.added_instruments), list(d.removed_instruments)
    if added and removed:
        a, r = _a_noun(added.pop(0)), removed.pop(0)
        clauses.append(
            choose(
                [
                    f"replace the {r} with {a}",
                    f"swap the {r} for {a}",
                    f"change the {r} to {a}",
                    f"turn the {r} into {a}",
                ],
                *key,
                "swap",
            )
        )
    if added:
        a = join_words([_a_noun(x) for x in added])
        clauses.append(choose([f"add {a}", f"bring in {a}", f"introduce {a}", f"layer in {a}"], *key, "add"))
    if removed:
        r = join_words([f"the {x}" for x in removed])
        clauses.append(choose([f"remove {r}", f"take out {r}", f"drop {r}", f"leave out {r}"], *key, "remove"))
    if d.tempo_change:
        bpm = round(d.tempo_tgt)
        options = (
            [f"make it faster, around {bpm} BPM", f"speed it up to about {bpm} BPM", f"raise the tempo to {bpm} BPM"]
            if d.tempo_change == "faster"
            else [
                f"slow it down to about {bpm} BPM",
                f"make it slower, around {bpm} BPM",
                f"lower the tempo to {bpm} BPM",
            ]
        )
        clauses.append(choose(options, *key, "tempo"))
    if d.key_changed:
        k = d.key_tgt
        clauses.append(
            choose(
                [f"transpose it to {k}", f"move it to {k}", f"change the key to {k}", f"shift it into {k}"], *key, "key"
            )
        )
    if d.added_moods:
        m = join_words(d.added_moods)
        clauses.append(choose([f"make it sound {m}", f"give it {_a(m)} mood", f"change the mood to {m}"], *key, "mood"))
    if d.added_genres:
        g = join_words(d.added_genres)
        clauses.append(
            choose([f"turn it into {_a(g)} piece", f"give it {_a(g)} style", f"change the style to {g}"], *key, "genre")
        )
    return clauses[:MAX_CLAUSES]


def _sentence(clauses: Sequence[str], key: tuple[object, ...]) -> str:
    text = join_words(clauses)
    if choose((False, False, True), *key, "please"):
        return f"Please {text}."
    return f"{text[:1].upper()}{text[1:]}."


def music_fragments(f: MusicFacts, key: tuple[object, ...]) -> list[str]:
    """Descriptive fragments that complete 'a music that is ...' ('upbeat at about 120 BPM', 'in A minor')."""
    frags: list[str] = []
    style = style_phrase(f)
    if f.tempo_bpm is not None:
        bpm, tw = round(f.tempo_bpm), tempo_word(f.tempo_bpm)
        frags.append(
            choose(
                [f"{tw} at about {bpm} BPM", f"{tw}, around {bpm} BPM", f"{tw} with {_a(str(bpm))} BPM pulse"],
                *key,
                "tempo",
            )
        )
    if style:
        frags.append(choose([f"{style} in feel", f"{style} in character", f"in {_a(style)} style"], *key, "style"))
    if f.instruments:
        inst = join_words(f.instruments)
        frags.append(
            choose([f"played on {inst}", f"led by {inst}", f"built around {inst}", f"featuring {inst}"], *key, "inst")
        )
    if f.key:
        frags.append(choose([f"in {f.key}", f"set in {f.key}", f"written in {f.key}"], *key, "key"))
    return frags or ["a piece of music"]


def _description(f: MusicFacts, key: tuple[object, ...]) -> str:
    frags = music_fragments(f, key)
    return ", ".join(frags[:-1]) + (" and " if len(frags) > 1 else "") + frags[-1]


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
