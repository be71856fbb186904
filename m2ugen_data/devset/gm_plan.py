"""Plan the General-MIDI dev set: pieces, sibling groups, tempo twins, excerpt windows, ids and splits.

Everything a clip is comes from ``(seed, piece index)`` random streams, so a piece never changes when the
set grows (``--n``) and a rebuild with one seed is identical. A group's members share one excerpt window;
a tempo twin copies its partner's groove, tempo, meter and melody instrument but draws new harmony and
melody, and joins its partner's split (hard negatives must be in the split they are measured in).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from m2ugen_data.devset.grooves import Groove, grooves_with_meter
from m2ugen_data.devset.harmony import PROGRESSIONS, Key, draw_key
from m2ugen_data.devset.orchestration import MELODY_PALETTE
from m2ugen_data.devset.truth import devset_ytid, split_of
from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import make_clip_id

CLIP_S = 10.0
GROUP_SIZES = (1, 2, 3, 4)
GROUP_SIZE_P = (0.15, 0.35, 0.30, 0.20)
P_TWIN = 0.25  # a piece is a tempo twin of the previous one
P_WALTZ = 0.3  # share of 3/4 pieces
P_NO_MELODY = 0.2
P_DROP_DRUMS = 0.15  # a drummed groove played without its drums (more drumless styles)
P_ONE_PART = 0.5  # of groups with siblings: only one part changes (else several)


@dataclass(frozen=True)
class PiecePlan:
    index: int
    group_id: str
    twin_id: str | None  # group id of the first piece of the twin pair
    split: str
    groove: Groove
    tempo_bpm: int  # what MMA is asked for; the truth reads the exact tempo back from its MIDI
    key: Key
    progression: int
    melody_program: int | None
    drop_drums: bool
    group_kind: str  # single | one_part | multi_part (as requested)
    clip_ids: tuple[str, ...]  # member 0 plays the original instrumentation
    offset_s: float  # excerpt start in the rendered piece (whole milliseconds)
    n_bars: int

    @property
    def meter(self) -> int:
        return self.groove.meter


def group_sizes(n: int, seed: int) -> list[int]:
    """Group sizes summing to ``n`` (the last group is cut to fit)."""
    if n < 1:
        raise M2UGenError(f"--n must be at least 1, got {n}")
    rng = np.random.default_rng([seed, 0x6D])
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(min(int(rng.choice(GROUP_SIZES, p=GROUP_SIZE_P)), n - sum(sizes)))
    return sizes


def plan_gm(n: int, seed: int) -> list[PiecePlan]:
    plans: list[PiecePlan] = []
    for index, size in enumerate(group_sizes(n, seed)):
        rng = np.random.default_rng([seed, 1, index])
        prev = plans[-1] if plans else None
        twin_of = prev if prev is not None and prev.twin_id is None and rng.uniform() < P_TWIN else None
        if twin_of is not None:
            groove, tempo = twin_of.groove, twin_of.tempo_bpm
            melody_program, drop_drums = twin_of.melody_program, twin_of.drop_drums
            key, progression = twin_of.key, twin_of.progression
            while (key, progression) == (twin_of.key, twin_of.progression):
                key = draw_key(rng)
                progression = int(rng.integers(len(PROGRESSIONS[key.mode])))
        else:
            meter = 3 if rng.uniform() < P_WALTZ else 4
            choices = grooves_with_meter(meter)
            groove = choices[int(rng.integers(len(choices)))]
            tempo = int(rng.integers(groove.tempo_lo, groove.tempo_hi + 1))
            melody_program = None if rng.uniform() < P_NO_MELODY else int(rng.choice(MELODY_PALETTE))
            drop_drums = groove.drums and rng.uniform() < P_DROP_DRUMS
            key = draw_key(rng)
            progression = int(rng.integers(len(PROGRESSIONS[key.mode])))
        group_id = f"gm{seed}-{index:04d}"
        twin_id = twin_of.group_id if twin_of is not None else None
        kind = "single" if size == 1 else "one_part" if rng.uniform() < P_ONE_PART else "multi_part"
        bar_s = groove.meter * 60.0 / tempo
        offset_s = round(bar_s * (1.0 + rng.uniform()), 3)  # somewhere in bar 2: AudioSet cuts mid-song
        n_bars = math.ceil((offset_s + CLIP_S) / bar_s) + 1  # one spare bar, so no ending is heard
        ids = tuple(make_clip_id(devset_ytid("gm", seed, index, m), offset_s) for m in range(size))
        plans.append(
            PiecePlan(
                index=index,
                group_id=group_id,
                twin_id=twin_id,
                split=split_of(twin_id or group_id),
                groove=groove,
                tempo_bpm=tempo,
                key=key,
                progression=progression,
                melody_program=melody_program,
                drop_drums=drop_drums,
                group_kind=kind,
                clip_ids=ids,
                offset_s=offset_s,
                n_bars=n_bars,
            )
        )
    # the first piece of a twin pair carries the pair id too, so "same twin_id" finds both ends
    roots = {p.twin_id for p in plans if p.twin_id}
    return [dataclasses.replace(p, twin_id=p.group_id) if p.group_id in roots else p for p in plans]
