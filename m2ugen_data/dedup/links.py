"""A link: two clips found to hold the same recorded audio, how, and how much of the shorter one."""

from __future__ import annotations

from dataclasses import dataclass

MATCH_STRENGTH = {"exact": 0, "fingerprint": 1, "remaster": 2}  # the strongest kind a row reports
FULL_COVERAGE = 0.8  # a link whose shared audio covers this much of the shorter clip joins groups


@dataclass
class Link:
    a: str
    b: str
    match: str
    frac: float | None = None
    corr: float | None = None
    offset_s: float | None = None  # where b's audio starts in a's
    stretch: float | None = None
    coverage: float = 1.0  # shared audio / the shorter clip's length


def coverage(shared_s: float, a_s: float, b_s: float) -> float:
    return round(min(1.0, shared_s / max(min(a_s, b_s), 1e-9)), 4)


__all__ = ["FULL_COVERAGE", "Link", "MATCH_STRENGTH", "coverage"]
