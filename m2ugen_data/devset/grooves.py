"""The MMA grooves the General-MIDI dev set plays, each with its meter and a tempo range it sounds right at.

Why MMA grooves: they are accompaniment patterns written by musicians for dozens of styles (drum kit,
walking and pattern basses, strummed and arpeggiated chords, swing and latin feels), so the rhythm a beat
tracker hears is real-style rhythm, while the chord chart that drives them keeps the harmony exactly known.
Tempo ranges deliberately reach 55 and 190 BPM, where trackers make octave errors. Meters are checked
against MMA's output when a piece is rendered (``midi.check_meter``), so a wrong row here fails loudly.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Groove:
    name: str  # MMA groove name
    meter: int  # beats per bar
    tempo_lo: int
    tempo_hi: int
    style: str
    drums: bool  # the groove has a drum part


def _g(name: str, meter: int, lo: int, hi: int, style: str, drums: bool = True) -> Groove:
    return Groove(name, meter, lo, hi, style, drums)


GROOVES: tuple[Groove, ...] = (
    # 4/4 with drums
    _g("8Beat", 4, 85, 140, "pop"),
    _g("50sRock", 4, 140, 190, "rock and roll"),
    _g("60sRock", 4, 110, 160, "rock"),
    _g("BasicRock", 4, 95, 150, "rock"),
    _g("SoftRock", 4, 70, 110, "soft rock"),
    _g("FolkRock", 4, 95, 145, "folk rock"),
    _g("Ballad", 4, 58, 84, "ballad"),
    _g("PianoBallad", 4, 55, 80, "piano ballad"),
    _g("PopBallad", 4, 55, 80, "pop ballad"),
    _g("GuitarBallad", 4, 60, 85, "guitar ballad"),
    _g("SlowCountry", 4, 60, 85, "country ballad"),
    _g("CountrySwing", 4, 110, 160, "country"),
    _g("Bluegrass", 4, 150, 190, "bluegrass"),
    _g("SlowBlues", 4, 55, 80, "blues"),
    _g("Blues", 4, 80, 120, "blues"),
    _g("ShuffleBoggie", 4, 110, 150, "boogie"),
    _g("Swing", 4, 120, 190, "swing"),
    _g("EasySwing", 4, 100, 140, "swing"),
    _g("SlowJazz", 4, 55, 80, "jazz"),
    _g("JazzCombo", 4, 110, 170, "jazz"),
    _g("BigBand", 4, 120, 170, "big band"),
    _g("Dixie", 4, 150, 190, "dixieland"),
    _g("JazzRock", 4, 100, 140, "jazz rock"),
    _g("BVFunk", 4, 90, 120, "funk"),
    _g("Strut", 4, 85, 115, "funk"),
    _g("DSoul", 4, 80, 110, "soul"),
    _g("Boneym", 4, 115, 135, "disco"),
    _g("Trance", 4, 126, 140, "trance"),
    _g("Ska", 4, 140, 180, "ska"),
    _g("Twist", 4, 150, 175, "twist"),
    _g("Jive", 4, 150, 180, "jive"),
    _g("Quickstep", 4, 170, 190, "quickstep"),
    _g("Foxtrot", 4, 110, 140, "foxtrot"),
    _g("March", 4, 100, 125, "march"),
    _g("Bossanova", 4, 110, 150, "bossa nova"),
    _g("Rhumba", 4, 100, 130, "rhumba"),
    _g("ChaCha", 4, 110, 130, "cha-cha"),
    _g("Bolero", 4, 60, 90, "bolero"),
    _g("Tango", 4, 110, 130, "tango"),
    _g("Calypso", 4, 100, 130, "calypso"),
    _g("Merengue", 4, 120, 160, "merengue"),
    _g("LFusion", 4, 90, 125, "latin fusion"),
    _g("Zydeco", 4, 110, 150, "zydeco"),
    # 4/4 without drums
    _g("StringBallad", 4, 55, 80, "string ballad", drums=False),
    _g("Hymn", 4, 60, 90, "hymn", drums=False),
    _g("Lullaby", 4, 55, 80, "lullaby", drums=False),
    _g("FolkBallad", 4, 60, 90, "folk ballad", drums=False),
    _g("JazzGuitar", 4, 90, 140, "jazz guitar", drums=False),
    _g("BoggieWoggie", 4, 110, 150, "boogie-woogie", drums=False),
    _g("Ragtime", 4, 90, 120, "ragtime", drums=False),
    _g("ShowTune", 4, 80, 120, "show tune", drums=False),
    # 3/4
    _g("Waltz", 3, 85, 160, "waltz"),
    _g("CountryWaltz", 3, 90, 150, "country waltz"),
    _g("JazzWaltz", 3, 110, 180, "jazz waltz"),
    _g("ModernJazzWaltz", 3, 100, 170, "jazz waltz"),
    _g("FastWaltz", 3, 160, 190, "waltz"),
    _g("VieneseWaltz", 3, 165, 190, "viennese waltz"),
    _g("RockWaltz", 3, 80, 140, "rock waltz"),
    _g("LatinWaltz", 3, 90, 150, "latin waltz"),
    _g("BroadwayWaltz", 3, 90, 150, "broadway waltz"),
    _g("FrenchWaltz", 3, 100, 160, "musette waltz"),
    _g("ArpeggioWaltz", 3, 60, 140, "arpeggio waltz", drums=False),
)


def grooves_with_meter(meter: int) -> tuple[Groove, ...]:
    return tuple(g for g in GROOVES if g.meter == meter)
