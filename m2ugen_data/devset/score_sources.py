"""Where the scores dev set's music comes from: MIDI files and score collections, one ``ScoreSource`` each.

Every source is a separate origin of music (a game soundtrack, a MIDI compiler's examples, an ABC tool's
examples, three folk-tune collections, Bach's chorales), so leave-one-source-out figures say how well the
analysers do on music whose origin they were never tuned on. None is among the packages reserved for the
held-out evaluation (``rec_sources.RESERVED``). Licences allow building audio from them by code; the audio
is never committed.

- Debian packages: ``openttd-openmsx`` (OpenMSX, the open MIDI soundtrack of OpenTTD, GPL-2: sequenced
  multi-instrument pieces with drums, 64-200 BPM, some with tempo changes), ``midge`` (the text-to-MIDI
  compiler's example songs, GPL-2), ``abcmidi`` (the ABC tools' example tunes, GPL-2).
- The music21 corpus (PyPI ``music21``, BSD; encodings of public-domain collections): Ryan's Mammoth
  Collection (1883) and O'Neill's Music of Ireland (1850) (reels, jigs, hornpipes, airs), the Essen folk
  song collection (songs without tempo marks), Aird's Airs (with metronome marks) and J.S. Bach's chorales
  (four-part MusicXML, slow).

Tempo: a MIDI file's own tempo map; a score's metronome mark when it has one; otherwise a tempo drawn
log-uniformly from the source's ``drawn_bpm`` range (beats per minute of the metre's beat), wide enough to
put each collection at slow and fast tempi alike.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

MUSIC21_PACKAGE = "music21"


@dataclass(frozen=True)
class ScoreSource:
    name: str  # written into truth rows as ``source``; the unit of leave-one-source-out
    origin: str  # "deb:<package>" or "pypi:music21"
    directory: str  # absolute, or relative to the music21 corpus for pypi:music21
    patterns: tuple[str, ...]
    kind: str  # midi | midge | abc | musicxml
    licence: str
    max_items: int  # pieces (files, or tunes of ABC files) sampled
    excerpts: int = 1  # 10 s windows per piece
    drawn_bpm: tuple[float, float] = (60.0, 150.0)  # scores without a metronome mark
    ensemble: str = "melody"  # scores: melody (one program) | choir (one program per part)

    @property
    def package(self) -> str:
        return self.origin.split(":", 1)[1]

    def root(self) -> Path | None:
        """The directory holding the files, or None when the package is not installed."""
        if self.origin.startswith("deb:"):
            path = Path(self.directory)
        else:
            spec = importlib.util.find_spec(self.package)
            if spec is None or not spec.submodule_search_locations:
                return None
            path = Path(next(iter(spec.submodule_search_locations))) / "corpus" / self.directory
        return path if path.is_dir() else None

    def files(self) -> list[Path]:
        root = self.root()
        if root is None:
            return []
        return sorted(
            p
            for p in root.rglob("*")
            if p.is_file() and any(fnmatch.fnmatch(p.relative_to(root).as_posix(), pat) for pat in self.patterns)
        )

    def items(self) -> list[tuple[Path, int | None]]:
        """(file, tune number) per piece: ABC files hold many tunes (``X:`` fields), other files one piece."""
        out: list[tuple[Path, int | None]] = []
        for f in self.files():
            if self.kind == "abc":
                numbers = re.findall(r"^X:\s*(\d+)", f.read_text(errors="replace"), re.M)
                out += [(f, int(x)) for x in dict.fromkeys(numbers)]
            else:
                out.append((f, None))
        return out


SOURCES: tuple[ScoreSource, ...] = (
    ScoreSource(
        "openmsx", "deb:openttd-openmsx", "/usr/share/games/openttd/baseset/openmsx", ("*.mid",), "midi", "GPL-2",
        max_items=40, excerpts=3,
    ),
    ScoreSource(
        "midge-examples", "deb:midge", "/usr/share/doc/midge/examples", ("*.mg", "*.mg.gz"), "midge", "GPL-2",
        max_items=40, excerpts=2,
    ),
    ScoreSource(
        "abcmidi-examples", "deb:abcmidi", "/usr/share/doc/abcmidi/examples", ("*.abc",), "abc", "GPL-2",
        max_items=40, drawn_bpm=(60.0, 140.0),
    ),
    ScoreSource(
        "ryans-mammoth", "pypi:music21", "ryansMammoth", ("*.abc",), "abc", "public domain (1883), BSD encoding",
        max_items=60, drawn_bpm=(70.0, 150.0),
    ),
    ScoreSource(
        "oneills-1850", "pypi:music21", "oneills1850", ("*.abc",), "abc", "public domain (1850), BSD encoding",
        max_items=60, drawn_bpm=(60.0, 140.0),
    ),
    ScoreSource(
        "essen-folksongs", "pypi:music21", "essenFolksong", ("[!t]*.abc",), "abc", "Essen collection (research use)",
        max_items=60, drawn_bpm=(50.0, 130.0),
    ),
    ScoreSource(
        "airds-airs", "pypi:music21", "airdsAirs", ("*.abc",), "abc", "public domain (1782-97), BSD encoding",
        max_items=50,
    ),
    ScoreSource(
        "bach-chorales", "pypi:music21", "bach", ("bwv*.mxl",), "musicxml", "public domain, BSD encoding",
        max_items=60, drawn_bpm=(50.0, 100.0), ensemble="choir",
    ),
)  # fmt: skip


def by_name(name: str) -> ScoreSource:
    for s in SOURCES:
        if s.name == name:
            return s
    raise KeyError(f"unknown score source {name!r}; known: {', '.join(s.name for s in SOURCES)}")


def apt_packages() -> tuple[str, ...]:
    return tuple(sorted({s.package for s in SOURCES if s.origin.startswith("deb:")}))
