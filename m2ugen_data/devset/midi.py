"""MIDI surgery on MMA's output (mido): find the parts, add a melody, re-orchestrate, read back the notes.

Re-orchestration only rewrites program changes (and can mute parts), never moves a note or a tick, so
siblings rendered from one piece share every onset, beat and chord by construction.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass

import mido

from m2ugen_data.devset.gm_programs import program_family
from m2ugen_data.devset.harmony import Note
from m2ugen_data.devset.render import RenderError

DRUM_CHANNEL = 9
MELODY_TRACK = "Melody"
BASS_PROGRAMS = frozenset(range(32, 40)) | {43}


@dataclass(frozen=True)
class Part:
    """One sounding part: a MIDI channel with its program (the kit number on the drum channel)."""

    key: str  # stable name within a piece: "drums", "melody" or "ch<channel>"
    track_name: str
    channel: int
    program: int
    role: str  # drums | bass | harmony | melody

    @property
    def family(self) -> str:
        return "drums" if self.role == "drums" else program_family(self.program)


def parts_of(mid: mido.MidiFile) -> list[Part]:
    """The parts that play notes, in channel order; a part's program is its first program change."""
    programs: dict[int, int] = {}
    names: dict[int, str] = {}
    sounding: set[int] = set()
    for track in mid.tracks:
        for msg in track:
            if msg.type == "program_change":
                programs.setdefault(msg.channel, msg.program)
            elif msg.type == "note_on" and msg.velocity > 0:
                sounding.add(msg.channel)
                names.setdefault(msg.channel, track.name)
    parts = []
    for ch in sorted(sounding):
        prog = programs.get(ch, 0)
        name = names[ch]
        if ch == DRUM_CHANNEL:
            parts.append(Part("drums", name, ch, prog, "drums"))
        elif name == MELODY_TRACK:
            parts.append(Part("melody", name, ch, prog, "melody"))
        else:
            parts.append(Part(f"ch{ch}", name, ch, prog, "bass" if prog in BASS_PROGRAMS else "harmony"))
    return parts


def tempo_and_meter(mid: mido.MidiFile) -> tuple[int, int]:
    """(microseconds per beat, beats per bar) of a file with one tempo; several tempi are refused."""
    tempi = {msg.tempo for track in mid.tracks for msg in track if msg.type == "set_tempo"}
    if len(tempi) != 1:
        raise RenderError(f"expected one tempo in the MIDI file, found {sorted(tempi)}")
    sigs = [msg for track in mid.tracks for msg in track if msg.type == "time_signature"]
    return tempi.pop(), sigs[0].numerator if sigs else 4


def set_meter(mid: mido.MidiFile, meter: int) -> None:
    """Write the bar length into the conductor track (some MMA grooves leave a 4/4 signature on 3/4)."""
    for msg in mid.tracks[0]:
        if msg.type == "time_signature":
            msg.numerator, msg.denominator = meter, 4


def check_meter(mid: mido.MidiFile, meter: int, n_bars: int) -> None:
    """Fail if the music does not fill exactly ``n_bars`` bars of ``meter`` beats (a wrong groove row)."""
    tpb = mid.ticks_per_beat
    last_on = max((t for t, msg in absolute_messages(mid) if msg.type == "note_on" and msg.velocity > 0), default=-1)
    if not (n_bars - 1) * meter * tpb <= last_on < n_bars * meter * tpb:
        raise RenderError(
            f"MMA output does not fill {n_bars} bars of {meter} beats (last note at beat {last_on / tpb:.2f})"
        )


def absolute_messages(mid: mido.MidiFile) -> list[tuple[int, mido.Message]]:
    """Every message with its absolute tick, all tracks merged, in time order."""
    out: list[tuple[int, mido.Message]] = []
    for track in mid.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            out.append((tick, msg))
    out.sort(key=lambda x: x[0])
    return out


def free_channel(mid: mido.MidiFile) -> int:
    used = {msg.channel for track in mid.tracks for msg in track if hasattr(msg, "channel")}
    for ch in range(16):
        if ch != DRUM_CHANNEL and ch not in used:
            return ch
    raise RenderError("no free MIDI channel for the melody")


def add_melody(mid: mido.MidiFile, notes: list[Note], program: int) -> mido.MidiFile:
    """A copy of ``mid`` with the melody on its own track and channel, on the exact beat grid."""
    out = copy.deepcopy(mid)
    ch = free_channel(out)
    tpb = out.ticks_per_beat
    events: list[tuple[int, int, mido.Message]] = []
    for n in notes:
        on, off = round(n.start_beat * tpb), round((n.start_beat + n.beats) * tpb)
        events.append((on, 1, mido.Message("note_on", channel=ch, note=n.pitch, velocity=min(n.velocity, 127))))
        events.append((off, 0, mido.Message("note_off", channel=ch, note=n.pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))  # a note-off before a note-on at the same tick
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name=MELODY_TRACK, time=0))
    track.append(mido.Message("program_change", channel=ch, program=program, time=0))
    last = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - last))
        last = tick
    out.tracks.append(track)
    return out


def orchestrate(mid: mido.MidiFile, programs: Mapping[int, int], mute: Collection[int] = ()) -> mido.MidiFile:
    """A copy with new programs per channel (the kit on the drum channel) and no notes on ``mute``."""
    out = copy.deepcopy(mid)
    for track in out.tracks:
        kept = []
        carry = 0  # delta time of dropped messages moves onto the next kept one, so timing is unchanged
        for msg in track:
            if msg.type in ("note_on", "note_off") and msg.channel in mute:
                carry += msg.time
                continue
            if msg.type == "program_change" and msg.channel in programs:
                msg = msg.copy(program=programs[msg.channel])
            kept.append(msg.copy(time=msg.time + carry) if carry else msg)
            carry = 0
        track[:] = kept
    return out


def note_on_ticks(mid: mido.MidiFile, channel: int) -> set[int]:
    """Absolute ticks at which ``channel`` starts a note."""
    return {
        t for t, msg in absolute_messages(mid) if msg.type == "note_on" and msg.velocity > 0 and msg.channel == channel
    }


def sounding_channels(mid: mido.MidiFile, start_s: float, end_s: float, us_per_beat: int) -> set[int]:
    """Channels with a note overlapping [start_s, end_s) (tempo is constant, so ticks map linearly)."""
    per_tick = us_per_beat / 1e6 / mid.ticks_per_beat
    open_notes: dict[tuple[int, int], int] = {}
    found: set[int] = set()
    for tick, msg in absolute_messages(mid):
        if msg.type == "note_on" and msg.velocity > 0:
            open_notes[(msg.channel, msg.note)] = tick
        elif msg.type in ("note_off", "note_on"):
            on = open_notes.pop((msg.channel, msg.note), None)
            if on is not None and on * per_tick < end_s and tick * per_tick > start_s:
                found.add(msg.channel)
    return found
