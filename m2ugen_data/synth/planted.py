"""Planted contamination for the demo corpus, labelled as such in the truth (``trouble``), so the evaluation
exclusion and the near-duplicate groups have something real to find on synthetic data:

- ``planted_eval``: an ordinary rendered clip filed under the first MusicCaps evaluation segment's YouTube ID
  and time (the bundled list): selection must reject it as ``eval:musiccaps``;
- ``planted_copy``: the first plain clip (no trouble, no siblings) again under a new ID, 0.61 s later and
  4 dB quieter (its truth names the original in ``copy_of``): dedup must group the two and keep one.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from m2ugen_data.ids import make_clip_id
from m2ugen_data.synth.corpus import ClipPlan, _render_clip, synthetic_ytid

SHIFT_S = 0.61
GAIN_DB = -4.0


def plant(plans: list[ClipPlan], rendered: list[tuple[np.ndarray, dict[str, Any]]], seed: int, sr: int,
          duration_s: float) -> tuple[list[ClipPlan], list[tuple[np.ndarray, dict[str, Any]]]]:
    """The two planted clips' plans and (samples, truth row), after the ``plans`` already rendered."""
    from m2ugen_data.contamination.evallists import load_eval_list

    n = len(plans)
    first = load_eval_list("musiccaps").segments[0]
    ytid, start = synthetic_ytid(seed, n)
    eval_plan = ClipPlan(n, make_clip_id(first.ytid, first.start_s), first.ytid, first.start_s, n, None, "none")
    y_eval, row_eval = _render_clip(eval_plan, seed, sr, duration_s)
    eval_plan = replace(eval_plan, trouble="planted_eval")
    row_eval.update(trouble="planted_eval")

    source = next(i for i, p in enumerate(plans) if p.trouble == "none" and p.group_id is None)
    y_src, row_src = rendered[source]
    ytid, start = synthetic_ytid(seed, n + 1)
    copy_plan = ClipPlan(n + 1, make_clip_id(ytid, start), ytid, start, plans[source].composition, None, "planted_copy")
    shift = int(SHIFT_S * sr)
    y_copy = np.concatenate([y_src[shift:], np.zeros(shift, y_src.dtype)]) * np.float32(10 ** (GAIN_DB / 20))
    row_copy = {**row_src, "clip_id": copy_plan.clip_id, "ytid": ytid, "trouble": "planted_copy",
                "copy_of": plans[source].clip_id,
                "beats": [b - SHIFT_S for b in row_src["beats"] if b >= SHIFT_S],
                "downbeats": [b - SHIFT_S for b in row_src["downbeats"] if b >= SHIFT_S]}
    return [eval_plan, copy_plan], [(y_eval, row_eval), (y_copy, row_copy)]


__all__ = ["plant"]
