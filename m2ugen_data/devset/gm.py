"""Build the General-MIDI dev set: MMA accompaniment + a composed melody, rendered by fluidsynth.

Per piece (one worker job): write the chord chart, let MMA play it (timing humanisation off, so notes sit
on the grid the truth describes), add the melody, derive the sibling instrumentations, and render each
one. An excerpt is cut ``offset + renderer latency`` into the render, loudness-normalised and written as
44.1 kHz mono FLAC. A clip whose render key (MIDI bytes, window, loudness, renderer identity) matches the
previous build's truth and whose file exists is not rendered again, so reruns take seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import mido
import numpy as np

from m2ugen_data.audio_io import write_flac
from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.devset import midi, soundfonts
from m2ugen_data.devset.gm_plan import CLIP_S, PiecePlan, plan_gm
from m2ugen_data.devset.gm_programs import DRUM_LABEL, kit_name, program_label, program_name
from m2ugen_data.devset.harmony import ChordSlot, chord_slots, compose_melody, mma_chart_lines
from m2ugen_data.devset.orchestration import Variant, plan_variants
from m2ugen_data.devset.render import (
    SAMPLE_RATE,
    SOUNDFONT_ENV,
    RenderError,
    Tools,
    content_key,
    find_tools,
    midi_bytes,
    render_latency_s,
    render_midi,
    run_mma,
)
from m2ugen_data.devset.truth import (
    GM_TRUTH,
    audio_relpath,
    previous_keys,
    remove_stale_audio,
    write_readme,
    write_truth,
)
from m2ugen_data.synth.render import normalise_loudness

RENDER_VERSION = "gm-2"  # bump when rendering or cutting changes what a render key produces
SOURCE = "mma"  # the truth's source column: MMA's groove library plays every piece of this set
MUSIC_LABEL = "Music"
LOUDNESS_LUFS = (-20.0, -16.0)  # per clip, uniform: a 4 LU spread keeps siblings within the miner's rule
ALIGN_TOLERANCE_MS = 20.0  # a truth beat and its rendered drum onset may differ by this much


def build_gm(out_dir: Path, n: int = 200, seed: int = 0, workers: int | None = None) -> dict[str, Any]:
    """Render ``n`` clips into ``out_dir`` (audio/, truth.parquet, README.md) and summarise the build."""
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    plans = plan_gm(n, seed)
    piece_tools = tools_per_piece(plans, seed)
    previous = previous_keys(out_dir)
    jobs = [
        (p, seed, piece_tools[p.index], render_latency_s(piece_tools[p.index]), out_dir,
         {c: previous[c] for c in p.clip_ids if c in previous})
        for p in plans
    ]  # fmt: skip
    n_workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    rows: list[dict[str, Any]] = []
    rendered = 0
    with contextlib.ExitStack() as stack:
        if n_workers > 1:  # spawn: workers start clean, no copied locks or thread pools
            ctx = multiprocessing.get_context("spawn")
            results = stack.enter_context(ProcessPoolExecutor(n_workers, mp_context=ctx)).map(_render_job, jobs)
        else:
            results = map(_render_job, jobs)
        for piece_rows, fresh in results:
            rows += piece_rows
            rendered += fresh
    alignment = verify_alignment(plans, seed, piece_tools)
    write_truth(out_dir, rows, GM_TRUTH)
    removed = remove_stale_audio(out_dir, [r["clip_id"] for r in rows])
    summary = _summary(rows, seed, piece_tools[0], rendered, removed, time.perf_counter() - t0)
    summary["alignment_check"] = alignment
    write_readme(out_dir, gm_readme(summary))
    return summary


def tools_per_piece(plans: list[PiecePlan], seed: int) -> dict[int, Tools]:
    """Piece index -> the tools rendering it: each piece (all its siblings) through one soundfont picked by
    a stable hash among those installed, so instrument and tempo figures cannot learn one soundfont's
    timbres. ``$M2UGEN_SOUNDFONT`` pins every piece to that file."""
    tools = find_tools()
    fonts = () if os.environ.get(SOUNDFONT_ENV) else soundfonts.available()
    if not fonts:
        return {p.index: tools for p in plans}
    return {p.index: dataclasses.replace(tools, soundfont=soundfonts.pick(fonts, "gm", seed, p.group_id).path) for p in plans}


def _render_job(job: tuple) -> tuple[list[dict[str, Any]], int]:
    plan, seed, tools, latency, out_dir, previous = job
    try:
        return render_piece(plan, seed, tools, latency, out_dir, previous)
    except (RenderError, ValueError) as e:
        raise RenderError(f"piece {plan.group_id} ({plan.groove.name} at {plan.tempo_bpm} BPM): {e}") from e


def piece_chart(plan: PiecePlan, seed: int, slots: list[ChordSlot]) -> str:
    """The MMA chart: a fixed random seed (MMA's own variations), tempo, groove, no timing jitter."""
    mma_seed = (seed * 1_000_003 + plan.index) % 2**31
    head = [f"RndSeed {mma_seed}", f"Tempo {plan.tempo_bpm}", f"Groove {plan.groove.name}", "AllTracks RTime 0"]
    return "\n".join(head + mma_chart_lines(slots, plan.meter, plan.n_bars)) + "\n"


def piece_midi(plan: PiecePlan, seed: int, tools: Tools) -> tuple[mido.MidiFile, list[ChordSlot]]:
    """The piece in its original instrumentation (accompaniment + melody) and its chord slots."""
    slots = chord_slots(
        plan.key,
        plan.progression,
        plan.meter,
        plan.n_bars,
        plan.tempo_bpm,
        np.random.default_rng([seed, 2, plan.index]),
    )
    mid = run_mma(tools, piece_chart(plan, seed, slots))
    midi.set_meter(mid, plan.meter)
    midi.check_meter(mid, plan.meter, plan.n_bars)
    if plan.drop_drums:
        mid = midi.orchestrate(mid, {}, mute={midi.DRUM_CHANNEL})
    if plan.melody_program is not None:
        notes = compose_melody(
            plan.key, slots, plan.meter, plan.n_bars, plan.tempo_bpm, np.random.default_rng([seed, 3, plan.index])
        )
        mid = midi.add_melody(mid, notes, plan.melody_program)
    return mid, slots


def render_piece(
    plan: PiecePlan, seed: int, tools: Tools, latency: float, out_dir: Path, previous: dict[str, str]
) -> tuple[list[dict[str, Any]], int]:
    """Truth rows for every member of the piece's group; renders the members whose cache is stale."""
    mid, slots = piece_midi(plan, seed, tools)
    us_per_beat, _ = midi.tempo_and_meter(mid)
    kind, variants = plan_variants(
        midi.parts_of(mid), plan.group_kind, len(plan.clip_ids), np.random.default_rng([seed, 4, plan.index])
    )
    rows, fresh = [], 0
    for member, (clip_id, variant) in enumerate(zip(plan.clip_ids, variants)):
        vmid = midi.orchestrate(mid, variant.programs, variant.mute)
        data = midi_bytes(vmid)
        lufs = float(np.random.default_rng([seed, 5, plan.index, member]).uniform(*LOUDNESS_LUFS))
        key = content_key(data, f"{plan.offset_s:.3f}|{latency:.5f}|{lufs:.4f}", tools.identity, RENDER_VERSION)
        rel = audio_relpath(clip_id)
        if previous.get(clip_id) != key or not (out_dir / rel).is_file():
            write_flac(out_dir / rel, cut_excerpt(render_midi(tools, data), plan.offset_s + latency, lufs), SAMPLE_RATE)
            fresh += 1
        font = soundfonts.name_of(tools.soundfont)
        rows.append(truth_row(plan, seed, vmid, us_per_beat, slots, variant, kind, clip_id, rel, key, font))
    return rows, fresh


def onset_errors_ms(plan: PiecePlan, seed: int, tools: Tools, latency: float) -> np.ndarray:
    """Check the truth's timing on audio: render the piece's drum part alone (a percussive render), detect
    onsets (librosa, 2.9 ms hops, backtracked to the energy rise), and return the signed distance (ms) from
    each truth beat on which the drums play to the nearest detected onset."""
    import librosa

    mid, _ = piece_midi(plan, seed, tools)
    us_per_beat, _ = midi.tempo_and_meter(mid)
    others = {p.channel for p in midi.parts_of(mid) if p.role != "drums"}
    y = cut_excerpt(
        render_midi(tools, midi_bytes(midi.orchestrate(mid, {}, mute=others))), plan.offset_s + latency, -18.0
    )
    env = librosa.onset.onset_strength(y=y, sr=SAMPLE_RATE, hop_length=128)
    onsets = librosa.onset.onset_detect(
        onset_envelope=env, sr=SAMPLE_RATE, hop_length=128, units="time", backtrack=True
    )
    hits = midi.note_on_ticks(mid, midi.DRUM_CHANNEL)
    beat_s = us_per_beat / 1e6
    errors = []
    for t in grid(plan, us_per_beat)[0]:
        k = round((t + plan.offset_s) / beat_s)
        if k * mid.ticks_per_beat in hits and t > 0.05 and onsets.size:
            errors.append(float(onsets[np.abs(onsets - t).argmin()] - t))
    return np.array(errors) * 1000.0


def verify_alignment(plans: list[PiecePlan], seed: int, piece_tools: dict[int, Tools]) -> dict[str, float]:
    """Run ``onset_errors_ms`` on the first drummed piece; fail the build if beats and onsets disagree
    (a renderer whose latency changed, a groove that shifts its notes)."""
    plan = next((p for p in plans if p.groove.drums and not p.drop_drums), None)
    if plan is None:
        return {}
    tools = piece_tools[plan.index]
    err = onset_errors_ms(plan, seed, tools, render_latency_s(tools))
    if err.size < 4:
        raise RenderError(f"too few drum onsets on beats to check the timing of {plan.group_id} ({err.size})")
    within = float(np.mean(np.abs(err) <= ALIGN_TOLERANCE_MS))
    report = {
        "beats": int(err.size),
        "median_ms": round(float(np.median(err)), 2),
        "max_abs_ms": round(float(np.abs(err).max()), 2),
        "within_20ms": within,
    }
    if within < 0.9:
        raise RenderError(f"rendered onsets do not match the truth beats of {plan.group_id}: {report}")
    return report


def cut_excerpt(y: np.ndarray, start_s: float, lufs: float) -> np.ndarray:
    """``CLIP_S`` seconds from ``start_s`` (zero-padded if the render is short), at ``lufs`` loudness."""
    n = round(CLIP_S * SAMPLE_RATE)
    a = round(start_s * SAMPLE_RATE)
    seg = np.zeros(n, dtype=np.float32)
    part = y[a : a + n]
    seg[: part.size] = part
    return normalise_loudness(seg, SAMPLE_RATE, lufs)


def grid(plan: PiecePlan, us_per_beat: int) -> tuple[list[float], list[float]]:
    """Beat and downbeat times inside the clip, from the exact MIDI tempo."""
    beat_s = us_per_beat / 1e6
    k0 = int(np.ceil(plan.offset_s / beat_s - 1e-9))
    beats, downbeats = [], []
    k = k0
    while (t := k * beat_s - plan.offset_s) < CLIP_S - 1e-9:
        beats.append(round(t, 6))
        if k % plan.meter == 0:
            downbeats.append(round(t, 6))
        k += 1
    return beats, downbeats


def chord_intervals(plan: PiecePlan, us_per_beat: int, slots: list[ChordSlot]) -> list[dict[str, Any]]:
    """Chord slots mapped into the clip and cut to [0, CLIP_S]; together they cover the whole clip."""
    beat_s = us_per_beat / 1e6
    out = []
    for s in slots:
        a = max(0.0, s.start_beat * beat_s - plan.offset_s)
        b = min(CLIP_S, (s.start_beat + s.beats) * beat_s - plan.offset_s)
        if b > a + 1e-9:
            out.append({"start": round(a, 6), "end": round(b, 6), "label": s.label})
    return out


def truth_row(
    plan: PiecePlan,
    seed: int,
    vmid: mido.MidiFile,
    us_per_beat: int,
    slots: list[ChordSlot],
    variant: Variant,
    kind: str,
    clip_id: str,
    rel: str,
    render_key: str,
    soundfont: str,
) -> dict[str, Any]:
    onto = load_ontology()
    heard = midi.sounding_channels(vmid, plan.offset_s, plan.offset_s + CLIP_S, us_per_beat)
    parts = [p for p in midi.parts_of(vmid) if p.channel in heard]
    pitched = [p for p in parts if p.role != "drums"]
    names = [kit_name(p.program) if p.role == "drums" else program_name(p.program) for p in parts]
    labels = [onto.mid(MUSIC_LABEL)] + sorted(
        {onto.mid(DRUM_LABEL if p.role == "drums" else program_label(p.program)) for p in parts}
    )
    beats, downbeats = grid(plan, us_per_beat)
    return {
        "clip_id": clip_id,
        "path": rel,
        "split": plan.split,
        "duration_s": CLIP_S,
        "sample_rate": SAMPLE_RATE,
        "tempo_bpm": round(60e6 / us_per_beat, 4),
        "meter": plan.meter,
        "key": plan.key.name,
        "beats": beats,
        "downbeats": downbeats,
        "chords": chord_intervals(plan, us_per_beat, slots),
        "programs": sorted({p.program for p in pitched}),
        "instrument_names": names,
        "families": sorted({p.family for p in parts}),
        "labels": labels,
        "parts": [f"{p.role}:{p.key}:{p.program}:{n}" for p, n in zip(parts, names)],
        "has_drums": any(p.role == "drums" for p in parts),
        "has_melody": any(p.role == "melody" for p in parts),
        "group_id": plan.group_id,
        "group_kind": kind,
        "variant": variant.description,
        "twin_id": plan.twin_id,
        "groove": plan.groove.name,
        "style": plan.groove.style,
        "offset_s": plan.offset_s,
        "render_key": render_key,
        "seed": seed,
        "source": SOURCE,
        "soundfont": soundfont,
    }


def _summary(
    rows: list[dict[str, Any]], seed: int, tools: Tools, rendered: int, removed: int, wall_s: float
) -> dict[str, Any]:
    tempi = np.array([r["tempo_bpm"] for r in rows])
    groups = Counter(r["group_id"] for r in rows)
    return {
        "kind": "gm",
        "clips": len(rows),
        "rendered": rendered,
        "removed_stale": removed,
        "seed": seed,
        "splits": dict(sorted(Counter(r["split"] for r in rows).items())),
        "groups": len(groups),
        "group_sizes": dict(sorted(Counter(groups.values()).items())),
        "group_kinds": dict(sorted(Counter(r["group_kind"] for r in rows).items())),
        "twin_pieces": len({r["group_id"] for r in rows if r["twin_id"]}),
        "meters": dict(sorted(Counter(r["meter"] for r in rows).items())),
        "modes": dict(sorted(Counter(r["key"].split()[1] for r in rows).items())),
        "with_drums": sum(r["has_drums"] for r in rows),
        "with_melody": sum(r["has_melody"] for r in rows),
        "tempo_range": [float(tempi.min()), float(tempi.max())] if len(rows) else [],
        "tempo_below_80": int((tempi < 80).sum()),
        "tempo_above_160": int((tempi > 160).sum()),
        "styles": len({r["style"] for r in rows}),
        "renderer": tools.identity,
        "soundfonts": dict(sorted(Counter(r["soundfont"] for r in rows).items())),
        "build_seconds": round(wall_s, 1),
    }


def gm_readme(s: dict[str, Any]) -> str:
    """How the set was made, for whoever finds the directory without this code at hand."""
    return f"""# m2ugen General-MIDI dev set (seed {s["seed"]})

{s["clips"]} clips of 10 s, 44.1 kHz mono FLAC in `audio/`, truth in `truth.parquet` (one row per clip).
Built by `m2ugen-data devset build --kind gm --n {s["clips"]} --seed {s["seed"]}` in {s["build_seconds"]} s
({s["rendered"]} clips rendered this run, the rest reused from the render cache).

## How it was made
- **Accompaniment**: Debian's `mma` (Musical MIDI Accompaniment) plays a chord chart in one of its library
  grooves ({s["styles"]} styles: rock, ballads, swing, latin, waltzes, ...) with timing humanisation off
  (`AllTracks RTime 0`) and a fixed `RndSeed`. Some drummed grooves are played without their drums.
- **Harmony**: keys and progressions are drawn from common functional patterns; the chart's chord slots
  are the chord truth (`chords`: start, end, mir_eval label such as `Bb:min7`), covering the whole clip.
- **Melody**: composed here (chord tones on beats, scale steps between, D4-A5), on its own channel.
- **Rendering**: `fluidsynth` (reverb and chorus on, one synthesis thread) through one General-MIDI
  soundfont per piece, picked by a stable hash among those installed (`soundfont`: {s["soundfonts"]};
  `m2ugen_data/devset/soundfonts.py`). Renderer: `{s["renderer"]}`.
- **Excerpt**: cut at `offset_s` (somewhere in bar 2) plus the soundfont's measured renderer latency
  (MIDI time to first sample of a side-stick click), so `beats` and
  `downbeats` (seconds in the clip, from the exact MIDI tempo) are where the rendered onsets are; each clip is
  loudness-normalised to a random -20..-16 LUFS. Checked at build time on a drums-only render of one
  piece (onsets detected with librosa vs truth beats on which the drums play): {s.get("alignment_check")}.
- **Siblings** (`group_id`): the same notes and timing with other General-MIDI programs: `one_part` groups
  change one part (usually the melody instrument), `multi_part` groups change several (possibly dropping the
  drums); `variant` says what changed. Every pair inside a group is a true MUEdit re-orchestration pair.
- **Tempo twins** (`twin_id`): two different songs (new key, chords, melody) with the same groove, tempo,
  meter and instruments: hard negatives for pair mining.
- **Instruments**: `programs`, `instrument_names`, coarse `families` and AudioSet `labels` of the parts
  that sound in the excerpt.
- **Splits**: `split` is `dev` or `test` by a stable hash of the group id (a twin pair shares its first
  piece's split): tune on dev, report on test.
- **Ids**: `clip_id` = `<11-char YTID>_<start_ms>` with YTID `gm` + a hash of (seed, piece, member) and
  start = the excerpt's offset in the piece, so every pipeline stage accepts the clips.

## Counts
- splits: {s["splits"]}; groups: {s["groups"]} (sizes {s["group_sizes"]}); group kinds (clips): {s["group_kinds"]}
- twin pieces: {s["twin_pieces"]}; meters: {s["meters"]}; modes: {s["modes"]}
- with drums: {s["with_drums"]}; with melody: {s["with_melody"]}
- tempo: {s["tempo_range"]} BPM; below 80 BPM: {s["tempo_below_80"]}; above 160 BPM: {s["tempo_above_160"]}
"""
