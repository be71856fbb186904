"""Write a synthetic corpus: FLAC clips, an AudioSet-format segments CSV and a ground-truth Parquet.

Every clip draws its randomness from ``(seed, clip index)`` and every composition from
``(seed, composition index)``, so a corpus is byte-identical per seed and a clip does not change when
another clip's plan does. Files are written through temporary names, so an interrupted run never leaves a
half-written FLAC, CSV or Parquet behind, and a rerun simply rewrites the same bytes.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data import defaults
from m2ugen_data.atomic import atomic_path, write_bytes_atomic
from m2ugen_data.audio_io import write_flac
from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import make_clip_id
from m2ugen_data.schemas import SYNTH_TRUTH
from m2ugen_data.synth.composition import Composition, compose
from m2ugen_data.synth.instruments import TIMBRES
from m2ugen_data.synth.render import (
    choose_instrumentation,
    hard_clip,
    near_silence,
    normalise_loudness,
    render,
)
from m2ugen_data.synth.speech import speech_like
from m2ugen_data.warehouse import conform

MUSIC = "/m/04rlf"
SPEECH = "/m/09x0r"
ROCK = "/m/06by7"  # Rock music: the one genre an instrumentation implies (a distorted guitar)
TROUBLES = ("silence", "clipping", "speech", "short")
SHORT_S = 1.5
SEGMENTS_CSV = "segments.csv"
TRUTH_PARQUET = "truth.parquet"


@dataclass(frozen=True)
class ClipPlan:
    index: int
    clip_id: str
    ytid: str
    start_s: float
    composition: int  # index of the composition rendered (shared by siblings)
    group_id: str | None
    trouble: str  # none | silence | clipping | speech | short


def synthetic_ytid(seed: int, index: int) -> tuple[str, float]:
    """A valid 11-character ID and a segment start (a multiple of 10 s) from a hash of seed and index."""
    digest = hashlib.sha256(f"m2ugen-synth/{seed}/{index}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:11], float(digest[-1] % 30) * 10.0


def plan_corpus(n: int, seed: int, sibling_fraction: float, trouble_fraction: float) -> list[ClipPlan]:
    """Decide which clips carry trouble and which clean clips form sibling groups of 2 or 3."""
    if n < 0 or not 0.0 <= sibling_fraction <= 1.0 or not 0.0 <= trouble_fraction <= 1.0:
        raise M2UGenError(
            f"invalid corpus plan: n={n}, sibling_fraction={sibling_fraction}, trouble_fraction={trouble_fraction}"
        )
    rng = np.random.default_rng([seed, 0xC0])
    order = rng.permutation(n)
    n_trouble = round(n * trouble_fraction)
    trouble = {int(i): TROUBLES[k % len(TROUBLES)] for k, i in enumerate(order[:n_trouble])}
    clean = sorted(int(i) for i in order[n_trouble:])
    n_sib = round(len(clean) * sibling_fraction)
    groups: list[list[int]] = []
    pool = clean[:n_sib]
    while len(pool) >= 2:
        # Pairs twice as often as triples; never strand a single clip at the end.
        size = len(pool) if len(pool) <= 3 else 2 if len(pool) == 4 or rng.uniform() >= 1 / 3 else 3
        groups.append(pool[:size])
        pool = pool[size:]
    member = {i: g for g, members in enumerate(groups) for i in members}

    plans: list[ClipPlan] = []
    comp_of_group: dict[int, int] = {}
    for i in range(n):
        ytid, start = synthetic_ytid(seed, i)
        g = member.get(i)
        comp = comp_of_group.setdefault(g, i) if g is not None else i
        plans.append(
            ClipPlan(
                index=i,
                clip_id=make_clip_id(ytid, start),
                ytid=ytid,
                start_s=start,
                composition=comp,
                group_id=f"s{seed}g{g:04d}" if g is not None else None,
                trouble=trouble.get(i, "none"),
            )
        )
    return plans


def _render_clip(plan: ClipPlan, seed: int, sr: int, duration_s: float) -> tuple[np.ndarray, dict[str, Any]]:
    """Samples and the truth row (without path fields) for one planned clip."""
    rng = np.random.default_rng([seed, 1, plan.index])
    comp_rng = np.random.default_rng([seed, 2, plan.composition])
    length = SHORT_S if plan.trouble == "short" else duration_s
    comp: Composition | None = compose(comp_rng, length)
    siblings = []
    if plan.group_id is not None:
        # Earlier members of the group take their instrumentations first; this one must differ from them.
        for j in range(plan.composition, plan.index):
            siblings.append(choose_instrumentation(np.random.default_rng([seed, 3, j]), siblings))
    inst = choose_instrumentation(np.random.default_rng([seed, 3, plan.index]), siblings)
    n = round(length * sr)
    if plan.trouble == "silence":
        y, comp = near_silence(n, rng), None
    elif plan.trouble == "speech":
        y, comp = normalise_loudness(speech_like(n, sr, rng), sr, float(rng.uniform(-24, -18))), None
    else:
        y = normalise_loudness(render(comp, inst, sr, rng), sr, float(rng.uniform(-20, -14)))
        if plan.trouble == "clipping":
            y = hard_clip(y, rng)

    instruments = inst.labels() if comp is not None else []
    claimed = inst.labels()  # what the uploader's labels say, even when the audio failed them
    labels = [MUSIC] + [mid for mid, _ in claimed]
    if plan.trouble == "speech":
        labels = [MUSIC, SPEECH]
    elif TIMBRES["electric_guitar"].label_id in labels:
        labels.append(ROCK)
    row = {
        "clip_id": plan.clip_id,
        "ytid": plan.ytid,
        "duration_s": n / sr,
        "sample_rate": sr,
        "tempo_bpm": comp.tempo_bpm if comp else None,
        "meter": comp.meter if comp else None,
        "key": comp.key if comp else None,
        "beats": comp.beats.tolist() if comp else [],
        "downbeats": comp.downbeats.tolist() if comp else [],
        "instruments": [mid for mid, _ in instruments],
        "instrument_names": [name for _, name in instruments],
        "labels": labels,
        "group_id": plan.group_id,
        "trouble": plan.trouble,
        "seed": seed,
        "copy_of": None,
    }
    return y, row


# Planted contamination (the demo corpus; labelled as such in the truth's ``trouble``), so the evaluation
# exclusion and the near-duplicate groups have something real to find on synthetic data:
# - planted_eval: an ordinary rendered clip filed under the first MusicCaps evaluation segment's YouTube ID
#   and time (the bundled list): selection must reject it as ``eval:musiccaps``;
# - planted_copy: the first plain clip (no trouble, no siblings) again under a new ID, 0.61 s later and 4 dB
#   quieter (its truth names the original in ``copy_of``): dedup must group the two and keep one.
SHIFT_S = 0.61
GAIN_DB = -4.0


def plant_contamination_clips(
    plans: list[ClipPlan], rendered: list[tuple[np.ndarray, dict[str, Any]]], seed: int, sr: int, duration_s: float
) -> tuple[list[ClipPlan], list[tuple[np.ndarray, dict[str, Any]]]]:
    """The two planted clips' plans and (samples, truth row), after the ``plans`` already rendered."""
    from m2ugen_data.audioset.evallists import load_eval_list

    n = len(plans)
    first = load_eval_list("musiccaps").segments[0]
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



def segments_csv(plans: list[ClipPlan], rows: list[dict[str, Any]], seed: int) -> str:
    """The official AudioSet layout: three '#' lines, then ', '-separated rows with quoted labels."""
    n_labels = sum(len(r["labels"]) for r in rows)
    unique = len({lab for r in rows for lab in r["labels"]})
    lines = [
        f"# Segments csv created by m2ugen-data synth, seed={seed}",
        f"# num_ytids={len({p.ytid for p in plans})}, num_segs={len(plans)}, num_unique_labels={unique}, num_positive_labels={n_labels}",
        "# YTID, start_seconds, end_seconds, positive_labels",
    ]
    for p, r in zip(plans, rows):
        lines.append(f'{p.ytid}, {p.start_s:.3f}, {p.start_s + 10.0:.3f}, "{",".join(r["labels"])}"')
    return "\n".join(lines) + "\n"


def render_corpus(
    n: int,
    seed: int,
    out_dir: Path,
    sibling_fraction: float = defaults.SYNTH_SIBLING_FRACTION,
    trouble_fraction: float = defaults.SYNTH_TROUBLE_FRACTION,
    sample_rate: int = 22050,
    duration_s: float = 10.0,
    plant_contamination: bool = False,
) -> dict[str, Any]:
    """Render ``n`` clips into ``out_dir`` (audio/, segments.csv, truth.parquet) and summarise them.
    ``plant_contamination`` adds two labelled clips (``plant_contamination_clips``): one filed under a MusicCaps
    evaluation segment's ID, one a shifted, quieter copy of another clip under a new ID."""
    out_dir = Path(out_dir)
    t0 = time.perf_counter()
    plans = plan_corpus(n, seed, sibling_fraction, trouble_fraction)
    rendered = [_render_clip(plan, seed, sample_rate, duration_s) for plan in plans]
    if plant_contamination:
        extra_plans, extra = plant_contamination_clips(plans, rendered, seed, sample_rate, duration_s)
        plans, rendered = plans + extra_plans, rendered + extra
    rows = []
    for plan, (y, row) in zip(plans, rendered):
        rel = Path("audio") / f"{plan.clip_id}.flac"
        write_flac(out_dir / rel, y, sample_rate)
        rows.append({**row, "audio_path": rel.as_posix()})
    table = conform(SYNTH_TRUTH, rows)
    write_bytes_atomic(out_dir / SEGMENTS_CSV, segments_csv(plans, rows, seed).encode())
    with atomic_path(out_dir / TRUTH_PARQUET) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    troubles = [p.trouble for p in plans]
    return {
        "clips": len(plans),
        "sibling_groups": len({p.group_id for p in plans if p.group_id}),
        "sibling_clips": sum(p.group_id is not None for p in plans),
        "trouble": {k: troubles.count(k) for k in (*TROUBLES, "planted_eval", "planted_copy") if k in troubles or k in TROUBLES},
        "audio_seconds": round(sum(r["duration_s"] for r in rows), 3),
        "render_seconds": round(time.perf_counter() - t0, 3),
        "out_dir": str(out_dir),
        "segments_csv": str(out_dir / SEGMENTS_CSV),
        "truth": str(out_dir / TRUTH_PARQUET),
    }


def load_truth(out_dir: Path) -> pa.Table:
    """The corpus ground truth, checked against the SYNTH_TRUTH schema."""
    path = Path(out_dir) / TRUTH_PARQUET
    if not path.is_file():
        raise M2UGenError(f"{path}: no synthetic corpus truth (run `m2ugen-data synth --out {out_dir}` first)")
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as e:
        raise M2UGenError(f"{path}: unreadable truth Parquet ({e})") from e
    return conform(SYNTH_TRUTH, table)
