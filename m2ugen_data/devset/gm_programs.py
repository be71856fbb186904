"""General MIDI programs as instruments: names, a coarse family per program and the AudioSet label it is.

Why coarse families: instrument taggers (AudioSet, MagnaTagATune-style vocabularies) do not tell "Electric
Bass (finger)" from "Electric Bass (pick)", so precision/recall is measured on families (piano, guitar,
strings, violin, cello, flute, harp, organ, synth, drums, bass, brass, sax, voice, ...). The AudioSet label
(a display name resolved through the bundled ontology) lets a tagger that speaks AudioSet be scored too.
"""

from __future__ import annotations

import functools

GM_NAMES: tuple[str, ...] = (
    "Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano", "Honky-tonk Piano",
    "Electric Piano 1", "Electric Piano 2", "Harpsichord", "Clavinet",
    "Celesta", "Glockenspiel", "Music Box", "Vibraphone", "Marimba", "Xylophone", "Tubular Bells", "Dulcimer",
    "Drawbar Organ", "Percussive Organ", "Rock Organ", "Church Organ", "Reed Organ", "Accordion", "Harmonica",
    "Tango Accordion",
    "Acoustic Guitar (nylon)", "Acoustic Guitar (steel)", "Electric Guitar (jazz)", "Electric Guitar (clean)",
    "Electric Guitar (muted)", "Overdriven Guitar", "Distortion Guitar", "Guitar Harmonics",
    "Acoustic Bass", "Electric Bass (finger)", "Electric Bass (pick)", "Fretless Bass", "Slap Bass 1",
    "Slap Bass 2", "Synth Bass 1", "Synth Bass 2",
    "Violin", "Viola", "Cello", "Contrabass", "Tremolo Strings", "Pizzicato Strings", "Orchestral Harp", "Timpani",
    "String Ensemble 1", "String Ensemble 2", "Synth Strings 1", "Synth Strings 2", "Choir Aahs", "Voice Oohs",
    "Synth Voice", "Orchestra Hit",
    "Trumpet", "Trombone", "Tuba", "Muted Trumpet", "French Horn", "Brass Section", "Synth Brass 1", "Synth Brass 2",
    "Soprano Sax", "Alto Sax", "Tenor Sax", "Baritone Sax", "Oboe", "English Horn", "Bassoon", "Clarinet",
    "Piccolo", "Flute", "Recorder", "Pan Flute", "Blown Bottle", "Shakuhachi", "Whistle", "Ocarina",
    "Lead 1 (square)", "Lead 2 (sawtooth)", "Lead 3 (calliope)", "Lead 4 (chiff)", "Lead 5 (charang)",
    "Lead 6 (voice)", "Lead 7 (fifths)", "Lead 8 (bass + lead)",
    "Pad 1 (new age)", "Pad 2 (warm)", "Pad 3 (polysynth)", "Pad 4 (choir)", "Pad 5 (bowed)", "Pad 6 (metallic)",
    "Pad 7 (halo)", "Pad 8 (sweep)",
    "FX 1 (rain)", "FX 2 (soundtrack)", "FX 3 (crystal)", "FX 4 (atmosphere)", "FX 5 (brightness)",
    "FX 6 (goblins)", "FX 7 (echoes)", "FX 8 (sci-fi)",
    "Sitar", "Banjo", "Shamisen", "Koto", "Kalimba", "Bagpipe", "Fiddle", "Shanai",
    "Tinkle Bell", "Agogo", "Steel Drums", "Woodblock", "Taiko Drum", "Melodic Tom", "Synth Drum", "Reverse Cymbal",
    "Guitar Fret Noise", "Breath Noise", "Seashore", "Bird Tweet", "Telephone Ring", "Helicopter", "Applause",
    "Gunshot",
)  # fmt: skip

# (first program, last program, family, AudioSet label name); later rows override earlier ones.
_RANGES: tuple[tuple[int, int, str, str], ...] = (
    (0, 3, "piano", "Piano"),
    (4, 5, "piano", "Electric piano"),
    (6, 6, "harpsichord", "Harpsichord"),
    (7, 7, "keyboard", "Keyboard (musical)"),
    (8, 15, "mallets", "Mallet percussion"),
    (9, 9, "mallets", "Glockenspiel"),
    (11, 11, "mallets", "Vibraphone"),
    (12, 13, "mallets", "Marimba, xylophone"),
    (14, 14, "mallets", "Tubular bells"),
    (16, 18, "organ", "Hammond organ"),
    (19, 20, "organ", "Organ"),
    (21, 21, "accordion", "Accordion"),
    (22, 22, "harmonica", "Harmonica"),
    (23, 23, "accordion", "Accordion"),
    (24, 25, "guitar", "Acoustic guitar"),
    (26, 31, "guitar", "Electric guitar"),
    (32, 32, "bass", "Double bass"),
    (33, 37, "bass", "Bass guitar"),
    (38, 39, "bass", "Synthesizer"),
    (40, 40, "violin", "Violin, fiddle"),
    (41, 41, "strings", "Bowed string instrument"),
    (42, 42, "cello", "Cello"),
    (43, 43, "bass", "Double bass"),
    (44, 45, "strings", "String section"),
    (46, 46, "harp", "Harp"),
    (47, 47, "percussion", "Timpani"),
    (48, 49, "strings", "String section"),
    (50, 51, "synth", "Synthesizer"),
    (52, 53, "voice", "Choir"),
    (54, 55, "synth", "Synthesizer"),
    (56, 56, "brass", "Trumpet"),
    (57, 57, "brass", "Trombone"),
    (58, 58, "brass", "Brass instrument"),
    (59, 59, "brass", "Trumpet"),
    (60, 60, "brass", "French horn"),
    (61, 61, "brass", "Brass instrument"),
    (62, 63, "synth", "Synthesizer"),
    (64, 67, "sax", "Saxophone"),
    (68, 69, "woodwind", "Oboe"),
    (70, 70, "woodwind", "Bassoon"),
    (71, 71, "woodwind", "Clarinet"),
    (72, 79, "flute", "Flute"),
    (76, 76, "woodwind", "Wind instrument, woodwind instrument"),
    (80, 103, "synth", "Synthesizer"),
    (104, 104, "sitar", "Sitar"),
    (105, 105, "banjo", "Banjo"),
    (106, 107, "plucked", "Plucked string instrument"),
    (108, 108, "mallets", "Mallet percussion"),
    (109, 109, "bagpipes", "Bagpipes"),
    (110, 110, "violin", "Violin, fiddle"),
    (111, 111, "woodwind", "Wind instrument, woodwind instrument"),
    (112, 119, "percussion", "Percussion"),
    (114, 114, "percussion", "Steelpan"),
    (120, 127, "sfx", "Sound effect"),
)

DRUM_FAMILY = "drums"
DRUM_LABEL = "Drum kit"
# GM2/GS drum kits on the percussion channel (FluidR3_GM has all of them in bank 128).
DRUM_KITS: dict[int, str] = {
    0: "Standard Kit",
    8: "Room Kit",
    16: "Power Kit",
    24: "Electronic Kit",
    25: "TR-808 Kit",
    32: "Jazz Kit",
    40: "Brush Kit",
    48: "Orchestra Kit",
}


@functools.cache
def _table() -> tuple[tuple[str, str], ...]:
    rows = [("", "")] * 128
    for lo, hi, family, label in _RANGES:
        for p in range(lo, hi + 1):
            rows[p] = (family, label)
    return tuple(rows)


def _check(program: int) -> int:
    if not isinstance(program, int) or not 0 <= program <= 127:
        raise ValueError(f"GM program must be 0..127, got {program!r}")
    return program


def program_name(program: int) -> str:
    return GM_NAMES[_check(program)]


def program_family(program: int) -> str:
    return _table()[_check(program)][0]


def program_label(program: int) -> str:
    """AudioSet display name of the instrument this program sounds like."""
    return _table()[_check(program)][1]


def kit_name(kit: int) -> str:
    """Name of a drum kit program; unknown kit numbers fall back (as synthesizers do) to the standard kit."""
    return DRUM_KITS.get(kit, DRUM_KITS[0])


def families() -> tuple[str, ...]:
    """Every family a dev-set clip can carry (the tag vocabulary to score against)."""
    return tuple(sorted({f for f, _ in _table()} | {DRUM_FAMILY}))
