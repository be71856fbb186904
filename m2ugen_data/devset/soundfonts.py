"""The General-MIDI soundfonts the dev sets render with, so no measurement can learn one soundfont's timbres.

Each is a Debian package whose licence lets us build audio from it by code (we commit the code, never the
audio). They differ in where their samples come from: FluidR3 (Frank Wen's multi-sampled bank), MuseScore
General (S. Christian Collins' adaptation, partly of FluidR3 Mono, with many instruments replaced), TimGM6mb
(Tim Brechbill's 6 MB bank: small, bright, few samples per instrument) and csound's sf_GMbank (a 4 MB bank
of unrelated origin). Instrument heads are validated leave-one-soundfont-out over this list.

A clip's soundfont is chosen by a stable hash of what the clip is (``pick``), among the soundfonts
installed, so a machine with fewer soundfonts builds a smaller variety rather than failing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Soundfont:
    name: str  # short, stable: written into truth rows and used for leave-one-soundfont-out
    package: str  # the Debian package that installs it
    path: Path
    licence: str


SOUNDFONTS: tuple[Soundfont, ...] = (
    Soundfont("fluidr3", "fluid-soundfont-gm", Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "MIT"),
    Soundfont(
        "musescore", "musescore-general-soundfont-small", Path("/usr/share/sounds/sf3/MuseScore_General_Lite.sf3"), "MIT"
    ),
    Soundfont("timgm6mb", "timgm6mb-soundfont", Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), "GPL-2"),
    Soundfont("csound", "csound-soundfont", Path("/usr/share/sounds/sf2/sf_GMbank.sf2"), "LGPL-2.1+"),
)
DEFAULT = SOUNDFONTS[0]


def by_name(name: str) -> Soundfont:
    for sf in SOUNDFONTS:
        if sf.name == name:
            return sf
    raise KeyError(f"unknown soundfont {name!r}; known: {', '.join(s.name for s in SOUNDFONTS)}")


def name_of(path: Path) -> str:
    """The catalogue name of a soundfont file, or its file stem for one outside the catalogue."""
    for sf in SOUNDFONTS:
        if sf.path == Path(path):
            return sf.name
    return Path(path).stem


def available(names: tuple[str, ...] | None = None) -> tuple[Soundfont, ...]:
    """The catalogue's soundfonts that are installed (optionally only those named), in catalogue order."""
    wanted = SOUNDFONTS if names is None else tuple(by_name(n) for n in names)
    return tuple(sf for sf in wanted if sf.path.is_file())


def pick(choices: tuple[Soundfont, ...], *key: object) -> Soundfont:
    """One soundfont for ``key`` (a piece, an excerpt), stable across runs and machines with the same list."""
    if not choices:
        raise ValueError("no soundfont to choose from")
    digest = hashlib.sha256("/".join(map(str, ("m2ugen-soundfont", *key))).encode()).digest()
    return choices[int.from_bytes(digest[:4], "little") % len(choices)]


def apt_packages() -> tuple[str, ...]:
    return tuple(sorted({sf.package for sf in SOUNDFONTS}))
