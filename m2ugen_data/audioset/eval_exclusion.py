"""Which selected segments an evaluation list rules out, by ID and time.

A segment is dropped when the audio that will be kept of its video could hold an evaluation segment: for a
pool that keeps the whole audio (MUCaps under ``span=auto``, every pool under ``span=full``) any evaluation
segment of the same video; otherwise an evaluation segment overlapping the kept range (the 10 s segment, or
the window around it). The kept range is planned as the download will plan it (``ytdlp_fetch.plan_section``);
a ``full`` span counts as the whole video whatever its cap, since the video's length is not known here.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

from m2ugen_data import defaults
from m2ugen_data.audioset.ytdlp_fetch import PAPER_SPANS, SPANS, Span, plan_section
from m2ugen_data.audioset.evallists import EvalList, load_eval_lists
from m2ugen_data.atomic import write_bytes_atomic
from m2ugen_data.errors import M2UGenError
from m2ugen_data.warehouse import Warehouse


@dataclass(frozen=True)
class EvalExclusion:
    lists: tuple[EvalList, ...]
    span: str = defaults.DOWNLOAD_SPAN  # the span the downloads will use: auto | segment | window | full
    window_s: float = defaults.SPAN_WINDOW_S

    def __post_init__(self) -> None:
        if self.span not in ("auto", *SPANS) or self.window_s <= 0:
            raise M2UGenError(f"unknown span {self.span!r} or window {self.window_s:g} s; expected auto, "
                              f"{', '.join(SPANS)} and a positive window")

    @functools.cached_property
    def _by_video(self) -> dict[str, list[tuple[float, float, str]]]:
        out: dict[str, list[tuple[float, float, str]]] = {}
        for lst in self.lists:
            for s in lst.segments:
                out.setdefault(s.ytid, []).append((s.start_s, s.end_s, lst.name))
        return out

    @property
    def videos(self) -> frozenset[str]:
        return frozenset(self._by_video)

    def kept_range(self, pool: str, start_s: float, end_s: float) -> tuple[float, float]:
        """Seconds of the video a download will keep for this segment; (0, inf) for the whole audio."""
        kind = PAPER_SPANS.get(pool, "segment") if self.span == "auto" else self.span
        if kind == "full":
            return 0.0, math.inf
        section = plan_section(Span(kind, self.window_s), start_s, end_s, None)
        return section.start_s, section.end_s if section.end_s is not None else math.inf

    def match(self, ytid: str, start_s: float, end_s: float, pool: str) -> tuple[str, str] | None:
        """(list name, why) for the first evaluation segment the kept audio could hold, else None."""
        hits = self._by_video.get(ytid)
        if not hits:
            return None
        lo, hi = self.kept_range(pool, start_s, end_s)
        for e_start, e_end, name in hits:
            if math.isnan(e_start):
                return name, "the whole video is an evaluation item"
            if hi == math.inf:
                return name, f"whole audio kept; the video holds evaluation segment {e_start:g}-{e_end:g} s"
            if e_start < hi and lo < e_end:
                return name, f"kept {lo:g}-{hi:g} s overlaps evaluation segment {e_start:g}-{e_end:g} s"
        return None

    def match_many(
        self, ytids: Sequence[str], starts: Sequence[float], ends: Sequence[float], pools: Sequence[str]
    ) -> list[tuple[str, str] | None]:
        """``match`` per row; rows of videos no list names cost one set lookup."""
        by_video = self._by_video
        return [self.match(y, s, e, p) if y in by_video else None for y, s, e, p in zip(ytids, starts, ends, pools)]


LISTS_FILE = "contamination/lists.json"  # under the warehouse root: every evaluation list selection applied


def record_lists(wh: Warehouse, exclusion: EvalExclusion) -> None:
    """Remember which lists a selection applied (the card's "lists used"), merged with earlier ones by name."""
    path = wh.root / LISTS_FILE
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    for lst in exclusion.lists:
        known[lst.name] = {"source": lst.source, "segments": len(lst.segments), "videos": len(lst.videos),
                           "span": exclusion.span}
    write_bytes_atomic(path, json.dumps(known, indent=1, sort_keys=True).encode())


def used_lists(wh: Warehouse) -> dict[str, dict]:
    try:
        return json.loads((wh.root / LISTS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def make_exclusion(
    extra: Sequence[str] = (), *, default_lists: bool = True, span: str = defaults.DOWNLOAD_SPAN,
    window_s: float = defaults.SPAN_WINDOW_S,
) -> EvalExclusion:
    """The bundled lists (``defaults.EVAL_LISTS``, unless ``default_lists`` is off) plus ``extra`` files."""
    bundled = defaults.EVAL_LISTS if default_lists else ()
    return EvalExclusion(tuple(load_eval_lists(extra, bundled=bundled)), span, window_s)


def default_exclusion() -> EvalExclusion:
    return make_exclusion()


__all__ = ["EvalExclusion", "default_exclusion", "make_exclusion", "record_lists", "used_lists"]
