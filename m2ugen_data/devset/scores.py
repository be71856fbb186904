"""Pieces with an exact beat grid from MIDI files and scores: what the ``scores`` dev set renders.

Two ways in, one result (``Piece``: the MIDI fluidsynth plays and every beat and downbeat in seconds):

- **MIDI files** (a game soundtrack, a MIDI compiler's examples): the tempo map and time signatures are in
  the file. Bars start at tick 0 and at every time-signature event (sequencers write them on bar lines);
  seconds come from integrating the tempo map, so a piece that changes tempo still has exact beats.
- **Scores** (ABC tune collections, MusicXML chorales), read by music21: measures, pickups and repeats come
  from the notation, so a tune that starts on an upbeat has its downbeats where the bar lines are. The
  tempo is the score's own metronome mark when it has one, else one drawn for the piece (see
  ``score_sources``), written as the MIDI's single tempo.

The beat is the metre's beat unit, as a musician counts it: the denominator's note in simple metres (2/4,
3/4, 4/4: quarters; 2/2, 3/2: halves) and the dotted note in compound ones (6/8, 9/8, 12/8: dotted
quarters). A tempo is beats per minute of that unit. Metres with one beat per bar or an unclear count (3/8,
6/4, free metre) are refused in scores: their tempo has no single convention.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import mido
import numpy as np

from m2ugen_data.devset.midi import DRUM_CHANNEL, absolute_messages
from m2ugen_data.devset.render import RenderError

DEFAULT_US_PER_QUARTER = 500_000  # MIDI's default tempo (120 quarters per minute)


@dataclass(frozen=True)
class Metre:
    numerator: int
    denominator: int

    @property
    def compound(self) -> bool:
        return self.numerator in (6, 9, 12) and self.denominator in (8, 16)

    @property
    def beats_per_bar(self) -> int:
        return self.numerator // 3 if self.compound else self.numerator

    @property
    def beat_quarters(self) -> float:
        """The beat's length in quarter notes."""
        return (12.0 if self.compound else 4.0) / self.denominator

    @property
    def bar_quarters(self) -> float:
        return self.numerator * 4.0 / self.denominator

    @property
    def countable(self) -> bool:
        """A metre whose beat has one convention (see the module docstring): simple metres over halves or
        quarters, compound ones over eighths or sixteenths; not 6/4 (dotted halves or quarters?) nor 3/8
        (often one beat per bar)."""
        if self.compound:
            return True
        return 2 <= self.beats_per_bar <= 7 and self.denominator in (2, 4) and self.numerator not in (6, 9, 12)

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True)
class Piece:
    """A renderable piece and its truth grid (seconds from the MIDI's start)."""

    midi: mido.MidiFile
    beats: np.ndarray
    downbeats: np.ndarray
    beats_per_bar: np.ndarray  # per beat: the bar length in beats of the metre in force
    metres: tuple[str, ...]  # per beat: the metre in force ("6/8")
    note_onsets: np.ndarray  # seconds of every note start (drums included), sorted
    end_s: float  # the last note's end


class TempoMap:
    """Tick -> seconds through a MIDI file's tempo changes."""

    def __init__(self, mid: mido.MidiFile) -> None:
        changes = sorted({t: m.tempo for t, m in absolute_messages(mid) if m.type == "set_tempo"}.items())
        if not changes or changes[0][0] != 0:
            changes.insert(0, (0, DEFAULT_US_PER_QUARTER))
        self.ticks = np.array([t for t, _ in changes], dtype=np.float64)
        self.us = np.array([u for _, u in changes], dtype=np.float64)
        per_tick = self.us / 1e6 / mid.ticks_per_beat
        self._per_tick = per_tick
        self._starts = np.concatenate([[0.0], np.cumsum(np.diff(self.ticks) * per_tick[:-1])])

    def ticks_at(self, seconds: float) -> float:
        """The tick sounding at ``seconds`` (the inverse of ``seconds``)."""
        i = max(int(np.searchsorted(self._starts, seconds, side="right")) - 1, 0)
        return float(self.ticks[i] + (seconds - self._starts[i]) / self._per_tick[i])

    def seconds(self, ticks: np.ndarray | float) -> np.ndarray:
        t = np.asarray(ticks, dtype=np.float64)
        i = np.clip(np.searchsorted(self.ticks, t, side="right") - 1, 0, self.ticks.size - 1)
        return self._starts[i] + (t - self.ticks[i]) * self._per_tick[i]


def note_spans(mid: mido.MidiFile) -> list[tuple[int, int, int]]:
    """(channel, on tick, off tick) of every note (an unterminated note ends at the last event)."""
    events = absolute_messages(mid)
    last = events[-1][0] if events else 0
    open_notes: dict[tuple[int, int], list[int]] = {}
    spans = []
    for tick, msg in events:
        if msg.type == "note_on" and msg.velocity > 0:
            open_notes.setdefault((msg.channel, msg.note), []).append(tick)
        elif msg.type in ("note_off", "note_on"):
            stack = open_notes.get((msg.channel, msg.note))
            if stack:
                spans.append((msg.channel, stack.pop(0), tick))
    spans += [(ch, on, last) for (ch, _), ons in open_notes.items() for on in ons]
    return sorted(spans, key=lambda s: (s[1], s[0]))


def _grid_piece(mid: mido.MidiFile, bars: list[tuple[float, Metre]], end_tick: float) -> Piece:
    """Beats and downbeats from bar starts (ticks) with their metres, up to the last note."""
    tpq = mid.ticks_per_beat
    tmap = TempoMap(mid)
    beats, downs, per_bar, metres = [], [], [], []
    for i, (start, metre) in enumerate(bars):
        stop = bars[i + 1][0] if i + 1 < len(bars) else start + metre.bar_quarters * tpq
        step = metre.beat_quarters * tpq
        k = np.arange(start, min(stop, end_tick) - 1e-6, step)
        if k.size == 0:
            continue
        if abs(stop - start - metre.bar_quarters * tpq) < 1e-6 or i + 1 == len(bars):
            downs.append(start)
        beats += k.tolist()
        per_bar += [metre.beats_per_bar] * k.size
        metres += [str(metre)] * k.size
    spans = note_spans(mid)
    onsets = np.sort(tmap.seconds(np.array([on for _, on, _ in spans], dtype=np.float64)))
    return Piece(
        midi=mid,
        beats=tmap.seconds(np.array(beats)),
        downbeats=tmap.seconds(np.array(downs)),
        beats_per_bar=np.array(per_bar, dtype=np.int64),
        metres=tuple(metres),
        note_onsets=onsets,
        end_s=float(tmap.seconds(end_tick)),
    )


def piece_from_midi(mid: mido.MidiFile) -> Piece:
    """A sequenced MIDI file: bars from tick 0 and from each time signature (4/4 until the first)."""
    tpq = mid.ticks_per_beat
    spans = note_spans(mid)
    if not spans:
        raise RenderError("the MIDI file has no notes")
    end = max(off for _, _, off in spans)
    sigs = sorted({t: Metre(m.numerator, m.denominator) for t, m in absolute_messages(mid) if m.type == "time_signature"}.items())
    if not sigs or sigs[0][0] != 0:
        sigs.insert(0, (0, Metre(4, 4)))
    bars: list[tuple[float, Metre]] = []
    for i, (tick, metre) in enumerate(sigs):
        stop = sigs[i + 1][0] if i + 1 < len(sigs) else end
        length = metre.bar_quarters * tpq
        bars += [(float(t), metre) for t in np.arange(tick, max(stop, tick + 1), length)]
    return _grid_piece(mid, bars, end)


def truncated(mid: mido.MidiFile, end_s: float) -> mido.MidiFile:
    """A copy without the events after ``end_s``, every note still sounding there released, so a 10 s
    excerpt of a long piece does not pay for rendering all of it. (fluidsynth's file rendering runs until
    every voice has died away: a held organ or string note without its note-off renders forever.)"""
    end_tick = TempoMap(mid).ticks_at(end_s)
    out = copy.deepcopy(mid)
    for track in out.tracks:
        tick, kept, sounding = 0, [], {}
        for msg in track:
            if tick + msg.time > end_tick:
                break
            tick += msg.time
            if msg.type == "end_of_track":
                continue
            kept.append(msg)
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[(msg.channel, msg.note)] = sounding.get((msg.channel, msg.note), 0) + 1
            elif msg.type in ("note_on", "note_off") and sounding.get((msg.channel, msg.note)):
                sounding[(msg.channel, msg.note)] -= 1
        gap = max(0, round(end_tick - tick))
        for ch, note in sorted(k for k, n in sounding.items() if n > 0):
            kept.append(mido.Message("note_off", channel=ch, note=note, velocity=0, time=gap))
            gap = 0
        kept.append(mido.MetaMessage("end_of_track", time=gap))
        track[:] = kept
    return out


def without(mid: mido.MidiFile, drop: Callable[[mido.Message], bool]) -> mido.MidiFile:
    """A copy without the messages ``drop`` selects; their delta times move onto the next message kept, so
    every other event keeps its tick."""
    out = copy.deepcopy(mid)
    for track in out.tracks:
        kept, carry = [], 0
        for msg in track:
            if drop(msg):
                carry += msg.time
                continue
            kept.append(msg.copy(time=msg.time + carry) if carry else msg)
            carry = 0
        track[:] = kept
    return out


def set_programs(mid: mido.MidiFile, programs: Mapping[int, int]) -> mido.MidiFile:
    """A copy where each listed channel plays ``programs[channel]`` from tick 0 (its own program changes are
    replaced, so a part keeps one instrument and the truth names it)."""
    out = without(mid, lambda m: m.type == "program_change" and m.channel in programs)
    for ch, prog in sorted(programs.items(), reverse=True):
        out.tracks[0].insert(0, mido.Message("program_change", channel=ch, program=prog, time=0))
    return out


def set_single_tempo(mid: mido.MidiFile, us_per_quarter: int) -> mido.MidiFile:
    """A copy whose only tempo is ``us_per_quarter`` (set at tick 0 in the first track)."""
    out = without(mid, lambda m: m.type == "set_tempo")
    out.tracks[0].insert(0, mido.MetaMessage("set_tempo", tempo=int(us_per_quarter), time=0))
    return out


# --------------------------------------------------------------------------- scores (music21)


def score_metre(score: object) -> Metre:
    """The score's one countable metre; RenderError for none, several, or one without a beat convention."""
    from music21 import meter

    sigs = {(ts.numerator, ts.denominator) for ts in score.recurse().getElementsByClass(meter.TimeSignature)}  # type: ignore[attr-defined]
    if len(sigs) != 1:
        raise RenderError(f"expected one time signature, found {sorted(sigs) or 'none'}")
    metre = Metre(*sigs.pop())
    if not metre.countable:
        raise RenderError(f"metre {metre} has no single beat convention")
    return metre


def score_tempo(score: object, metre: Metre) -> float | None:
    """The score's first metronome mark in beats (of ``metre``) per minute, or None without one."""
    from music21 import tempo

    for mark in score.recurse().getElementsByClass(tempo.MetronomeMark):  # type: ignore[attr-defined]
        qpm = mark.getQuarterBPM()
        if qpm:
            return float(qpm) / metre.beat_quarters
    return None


def piece_from_score(score: object, beat_bpm: float, programs: Mapping[int, int] | None = None) -> Piece:
    """A music21 score (one tune or movement) played at ``beat_bpm`` beats per minute, repeats expanded.

    ``programs``: part index -> GM program (default: music21's, usually a piano). Bar starts come from the
    measures of the first part (offsets in quarters; a pickup measure is shorter than a bar and is not a
    downbeat)."""
    from music21 import midi as m21midi
    from music21 import stream, tempo

    metre = score_metre(score)
    try:
        expanded = score.expandRepeats()  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - music21 raises many types on repeat marks it cannot expand
        expanded = score
    for mark in list(expanded.recurse().getElementsByClass(tempo.TempoIndication)):
        mark.activeSite.remove(mark)
    parts = list(expanded.parts) if isinstance(expanded, stream.Score) and expanded.parts else [expanded]
    measures = list(parts[0].getElementsByClass(stream.Measure))
    if len(measures) < 2:
        raise RenderError("the score has fewer than two measures")
    mf = m21midi.translate.streamToMidiFile(expanded)
    mid = mido.MidiFile(file=io.BytesIO(mf.writestr()))
    tpq = mid.ticks_per_beat
    us_per_quarter = round(60e6 / (beat_bpm * metre.beat_quarters))
    mid = set_single_tempo(mid, us_per_quarter)
    if programs:
        mid, channels = one_channel_per_track(mid)
        mid = set_programs(mid, {channels[i]: p for i, p in programs.items() if i < len(channels)})
    spans = note_spans(mid)
    if not spans:
        raise RenderError("the score has no notes")
    end = max(off for _, _, off in spans)
    anchor = _first_bar_line(measures, metre)
    bars = [(float(q * tpq), metre) for q in np.arange(anchor, end / tpq, metre.bar_quarters)]
    piece = _grid_piece(mid, bars, end)
    if anchor > 0:  # a pickup: its beats count back from the first bar line
        q = np.arange(anchor - metre.beat_quarters, -1e-6, -metre.beat_quarters)[::-1]
        pickup = TempoMap(mid).seconds(q * tpq)
        piece = Piece(
            midi=piece.midi,
            beats=np.concatenate([pickup, piece.beats]),
            downbeats=piece.downbeats,
            beats_per_bar=np.concatenate([np.full(pickup.size, metre.beats_per_bar), piece.beats_per_bar]),
            metres=(str(metre),) * pickup.size + piece.metres,
            note_onsets=piece.note_onsets,
            end_s=piece.end_s,
        )
    return piece


def _first_bar_line(measures: list, metre: Metre) -> float:
    """Offset (quarters) of the first full bar; every later full bar must sit a whole number of bars after
    it (a pickup and a short closing bar add up to one), else the grid is ambiguous: RenderError."""
    full = [float(m.offset) for m in measures if float(m.duration.quarterLength) >= metre.bar_quarters - 1e-6]
    if not full:
        raise RenderError("the score has no full bar")
    phase = (np.asarray(full) - full[0]) / metre.bar_quarters
    if np.abs(phase - np.round(phase)).max() > 1e-6:
        raise RenderError("bar lines drift off the metre's grid (irregular bars)")
    return full[0]


def one_channel_per_track(mid: mido.MidiFile) -> tuple[mido.MidiFile, list[int]]:
    """A copy where each track with notes (a score part) plays on its own channel (music21 writes parts of
    one instrument on one channel), and those channels in part order; the drum channel is skipped."""
    out = copy.deepcopy(mid)
    free = [c for c in range(16) if c != DRUM_CHANNEL]
    channels: list[int] = []
    for track in out.tracks:
        if not any(m.type == "note_on" for m in track):
            continue
        if len(channels) == len(free):
            raise RenderError("more parts than MIDI channels")
        ch = free[len(channels)]
        channels.append(ch)
        track[:] = [m.copy(channel=ch) if hasattr(m, "channel") else m for m in track]
    return out, channels
