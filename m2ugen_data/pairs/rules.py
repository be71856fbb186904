"""What a MUEdit pair must satisfy (``PairRules``, the one definition of the defaults for the CLI, the flows and
the Python API) and what a mining run reports (``MiningResult``). Light on imports, so the CLI can read the
defaults without loading numba or DuckDB."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa

from m2ugen_data.errors import M2UGenError


MINER_VERSION = "2:snm-band-join+harmony-class-order+tag-content+chord-similarity+greedy-bmatch"
KEY_RULES = ("same", "relative", "any")


@dataclass(frozen=True)
class PairRules:
    tolerance: float = 0.04  # |tempo ratio - 1| (after half/double when allowed)
    # also pair clips at half or double tempo: the beats still coincide, and on the GM dev set 5 of 88 sibling
    # pairs were split across a tempo octave by the tracker (dev recall at k 0.88 -> 0.92 with it)
    allow_double: bool = True
    # both clips' beat confidence (tempo_conf: the tracker's clarity, not tempo_prob) at least this; at
    # 0.3 a third of the GM dev clips (tempo Acc1 0.82 among them) could not be paired, at 0.1 all but 1%.
    min_tempo_conf: float = 0.1
    max_loudness_diff: float = 6.0  # LU
    # Content differs: instrument tag vectors at least this cosine distance apart. A swapped lead (piano ->
    # flute) is ~0.8, one of two instruments swapped ~0.4, one of four ~0.2-0.3; on the bench's generated
    # tags 0.2 keeps 86% of re-orchestrations and passes 14% of same-instrumentation pairs (0.25: 77% and
    # 8%). Calibrate on real renders with pair_eval --sweep.
    min_content_dist: float = 0.2
    # ... or, for tagged clips, their timbre (MFCC statistics) farther apart than this. On the GM dev set
    # MusiCNN's instrument tags hardly move when one of three parts is re-orchestrated (siblings: median
    # content distance 0.22, a tenth below 0.04) and differ as much between two songs with the same
    # instruments, so the tags alone reject most true re-orchestrations. What "too similar" must catch is the
    # same audio twice (re-uploads, a clip and its re-encode): tags AND timbre both near zero.
    min_sound_dist: float = 2.0
    # Clips without tags (analysed before schema 2): AudioSet label Jaccard below this ...
    max_label_jaccard: float = 0.5
    min_timbre_dist: float = 8.0  # ... or timbre vectors farther apart than this (RMS dB per MFCC stat)
    # 0: harmony is a score term only, not a rule, because MUEdit also wants pairs of different music (the
    # paper's were random same-tempo clips); > 0 keeps only pairs sharing at least this fraction of chords.
    # Measured (bench generator, 400 clips half in sibling pairs, 5 seeds): the score term alone already
    # ranks siblings first (recall 0.85, all misses too_similar; without it 0.78); 0.5 as a rule keeps that
    # recall and lifts precision 0.24 -> 0.63 at k=2 (0.48 -> 0.83 at k=1) by dropping the stranger pairs;
    # 0.7 drops siblings too (recall 0.76). Use 0.5 for a same-music-only MUEdit.
    min_harmony_sim: float = 0.0
    # any: MUEdit pairs are defined by tempo and beat; "same" also matches keys, but a 10 s clip's key
    # estimate is wrong often enough (~1 in 10 on the synthetic corpus) to lose ~1 in 5 true pairs.
    key_rule: str = "any"  # same | relative | any
    k: int = 2  # pairs per clip at most
    require_music: bool = True  # only clips that passed the MUCaps music filter
    window: int = 8  # neighbours per clip per sort order (bench, 10k clips: 64 finds as many planted siblings
    # and 6% more total score for 6x the candidates; the exhaustive baseline 7% more)
    content_scale: float = 0.5  # content distance at which the content-difference bonus saturates
    timbre_scale: float = 20.0  # the same for timbre distance (clips without tags)
    # Tempo and beat are near their maximum for every candidate the band join brings, so harmony carries
    # the most weight: it is what separates the same music re-orchestrated from a same-tempo stranger.
    # The content bonus is small and saturates: strangers usually differ more in instrumentation than
    # siblings do, and a large uncapped term would prefer them.
    w_tempo: float = 0.25
    w_beat: float = 0.25
    w_harmony: float = 0.4
    w_content: float = 0.1

    def __post_init__(self) -> None:
        if self.key_rule not in KEY_RULES:
            raise M2UGenError(f"unknown key rule {self.key_rule!r}: expected one of {', '.join(KEY_RULES)}")
        if not 0 < self.tolerance < 0.3:
            raise M2UGenError(f"tempo tolerance {self.tolerance} out of range (0, 0.3)")
        if self.k < 1 or self.window < 1:
            raise M2UGenError("k and window must be at least 1")
        if not (0 <= self.min_content_dist <= 1 and 0 <= self.min_harmony_sim <= 1):
            raise M2UGenError("min_content_dist and min_harmony_sim are fractions in [0, 1]")
        if self.content_scale <= 0 or self.timbre_scale <= 0:
            raise M2UGenError("content_scale and timbre_scale must be positive")


@dataclass
class MiningResult:
    pairs: pa.Table  # the PAIRS manifest schema
    eligible: int = 0
    clips: int = 0
    candidates: int = 0  # candidate edges examined
    valid: int = 0  # candidate edges passing every rule
    clip_rejections: dict[str, int] = field(default_factory=dict)
    pair_rejections: dict[str, int] = field(default_factory=dict)
    degree_histogram: dict[int, int] = field(default_factory=dict)  # degree -> eligible clips
    timings: dict[str, float] = field(default_factory=dict)
    rejected: pa.Table | None = None  # (clip_id, why) of the rejected clips, for the incremental cache


# FEATURES columns read; the schema-2 ones (tags_mtt, instruments, beat_chords) read as NULL when a table
# predates them, which is how an old analysis falls back to labels and timbre.
FEATURE_COLUMNS = (
    *("clip_id", "status", "tempo_bpm", "tempo_conf", "beats", "meter", "key"),
    *("loudness_lufs", "timbre", "is_music", "tags_mtt", "instruments", "beat_chords"),
)
