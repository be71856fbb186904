"""Sibling instrumentations: which parts of a piece change program, and to what, for each group member.

These are the true MUEdit re-orchestration pairs ("play the melody on a flute instead of the piano").
A ``one_part`` group changes the same single part in every member (only the melody instrument differs);
a ``multi_part`` group changes two or more parts per member (and may drop the drums). A change always
moves a part to another instrument family where the role allows it, preferring a family the clip does
not already contain, so a tagger has something to hear; bass parts and drum kits change within the role.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from m2ugen_data.devset.gm_programs import kit_name, program_family, program_name
from m2ugen_data.devset.midi import DRUM_CHANNEL, Part

# Programs a part of each role may be given (all sound idiomatic in that role with the FluidR3 bank).
MELODY_PALETTE = (0, 11, 21, 22, 24, 26, 40, 42, 53, 56, 60, 64, 65, 66, 68, 71, 73, 74, 80, 81)
HARMONY_PALETTE = (0, 1, 4, 5, 6, 11, 16, 19, 21, 24, 25, 26, 27, 29, 46, 48, 49, 52, 61, 89, 90)
BASS_PALETTE = (32, 33, 34, 35, 36, 38, 39)
KIT_PALETTE = (0, 8, 16, 24, 25, 32, 40)
PALETTES = {"melody": MELODY_PALETTE, "harmony": HARMONY_PALETTE, "bass": BASS_PALETTE, "drums": KIT_PALETTE}
MAX_TRIES = 50


@dataclass(frozen=True)
class Variant:
    programs: dict[int, int] = field(default_factory=dict)  # channel -> new program (kit on drums)
    mute: frozenset[int] = frozenset()  # channels silenced (the drum channel when drums are dropped)
    changes: tuple[str, ...] = ()  # human-readable, e.g. "melody: Flute -> Violin"

    @property
    def description(self) -> str:
        return "; ".join(self.changes) if self.changes else "original"

    def signature(self) -> tuple:
        return (tuple(sorted(self.programs.items())), tuple(sorted(self.mute)))


def _name(part: Part, program: int) -> str:
    return kit_name(program) if part.role == "drums" else program_name(program)


def _alternatives(part: Part, clip_families: set[str]) -> list[int]:
    palette = [p for p in PALETTES[part.role] if p != part.program]
    if part.role in ("bass", "drums"):
        return palette
    other = [p for p in palette if program_family(p) != part.family]
    fresh = [p for p in other if program_family(p) not in clip_families]
    return fresh or other


def plan_variants(parts: list[Part], kind: str, size: int, rng: np.random.Generator) -> tuple[str, list[Variant]]:
    """``size`` instrumentations (the first is the original) and the group kind actually realised.

    A ``multi_part`` request on a piece with a single changeable part becomes ``one_part``."""
    if size == 1:
        return "single", [Variant()]
    changeable = [p for p in parts if _alternatives(p, set())]
    if not changeable:
        raise ValueError("piece has no part that can change instrument")
    if kind == "multi_part" and len(changeable) < 2:
        kind = "one_part"
    families = {p.family for p in parts}
    if kind == "one_part":
        variants = _one_part(_one_part_target(changeable, rng), families, size, rng)
    else:
        variants = _multi_part(changeable, families, any(p.role == "drums" for p in parts), size, rng)
    if len(variants) < size:
        raise ValueError(f"could only find {len(variants)} distinct instrumentations for a group of {size}")
    return kind, variants


def _one_part_target(changeable: list[Part], rng: np.random.Generator) -> Part:
    """The melody more often than not (the classic "play it on a flute"), else a harmony part."""
    melodic = [p for p in changeable if p.role == "melody"]
    if melodic and rng.uniform() < 0.6:
        return melodic[0]
    harmonic = [p for p in changeable if p.role == "harmony"] or changeable
    return harmonic[int(rng.integers(len(harmonic)))]


def _one_part(target: Part, families: set[str], size: int, rng: np.random.Generator) -> list[Variant]:
    """Members that differ from the original and from each other in ``target``'s instrument family (its
    program, for bass and drums); families the clip lacks are used first."""
    order: list[int] = []
    for options in (_alternatives(target, families), _alternatives(target, set())):
        order += [options[int(i)] for i in rng.permutation(len(options))]
    variants = [Variant()]
    used = {target.family}
    for prog in order:
        if len(variants) == size:
            break
        fam = program_family(prog) if target.role not in ("bass", "drums") else str(prog)
        if fam not in used:
            used.add(fam)
            change = f"{target.key}: {_name(target, target.program)} -> {_name(target, prog)}"
            variants.append(Variant({target.channel: prog}, frozenset(), (change,)))
    return variants


def _multi_part(
    changeable: list[Part], families: set[str], has_drums: bool, size: int, rng: np.random.Generator
) -> list[Variant]:
    """Members that each change two or more parts (one of the changes may be dropping the drums)."""
    variants = [Variant()]
    seen = {Variant().signature()}
    for _ in range(MAX_TRIES * size):
        if len(variants) == size:
            break
        k = int(rng.integers(2, len(changeable) + 1))
        chosen = [changeable[int(i)] for i in sorted(rng.choice(len(changeable), size=k, replace=False))]
        drop = has_drums and rng.uniform() < 0.2
        programs, changes = {}, []
        for part in chosen:
            if drop and part.role == "drums":
                continue
            options = _alternatives(part, families)
            prog = options[int(rng.integers(len(options)))]
            programs[part.channel] = prog
            changes.append(f"{part.key}: {_name(part, part.program)} -> {_name(part, prog)}")
        if drop:
            changes.append("drums removed")
        v = Variant(programs, frozenset({DRUM_CHANNEL}) if drop else frozenset(), tuple(changes))
        if len(changes) >= 2 and v.signature() not in seen:
            variants.append(v)
            seen.add(v.signature())
    return variants
