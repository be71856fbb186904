"""Where the recordings dev set's sounds come from: Debian packages, the files in them, what each file is.

Truth is the packagers' and game authors' own filing (a ``music/`` directory holds music, a ``sounds/``
directory effects), refined by name where a directory mixes kinds (lincity-ng's city sounds are mostly
scene ambiences, some are one-shot effects). Files that break their directory's kind were found by looking
at spectrograms and are excluded by name, with the reason. None of the packages reserved for held-out
evaluation is used (see ``RESERVED``), nor frozen-bubble's other packages (the same music, lower quality).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path

# Reserved for held-out evaluation: never read, whatever is installed.
RESERVED = ("planetblupi-music-midi", "singularity-music", "hyperrogue-music", "asc-music", "fb-music-high")
RESERVED_PREFIXES = ("planetblupi", "singularity", "hyperrogue", "asc-", "fb-", "frozen-bubble")

CATEGORIES = ("music", "speech", "ambience", "sfx", "crowd")
# default share of clips per category (music half, so a filter is measured on balanced classes)
CATEGORY_SHARE = {"music": 0.5, "speech": 0.15, "sfx": 0.15, "ambience": 0.12, "crowd": 0.08}


@dataclass(frozen=True)
class Source:
    """A set of files in one package that are all one category.

    Files of at least ``EXCERPT_MIN_S`` are cut into excerpts; shorter ones are joined: ``gaps`` puts
    silence (room tone) between them as a real recording of separate events would have, ``crossfade``
    blends them into one continuous scene (loops of the same ambience or crowd), ``none`` drops them (a
    music jingle of a few seconds is not a 10 s music clip)."""

    package: str
    directory: str
    patterns: tuple[str, ...]  # fnmatch patterns of paths relative to ``directory``
    category: str
    joiner: str = "gaps"  # gaps | crossfade | none
    group_by: str = "dir"  # files joined into one clip share: dir (a speaker, a scene folder) | stem
    exclude: tuple[str, ...] = ()  # fnmatch patterns of file names left out (reasons beside each source)

    def files(self) -> list[Path]:
        """The matching regular files (links to the same data are skipped), sorted."""
        root = Path(self.directory)
        if not root.is_dir():
            return []
        out = []
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).as_posix()
            if p.is_symlink() or not p.is_file():
                continue
            if any(fnmatch.fnmatch(rel, pat) for pat in self.patterns) and not any(
                fnmatch.fnmatch(p.name, pat) for pat in self.exclude
            ):
                out.append(p)
        return out

    def group_of(self, path: Path) -> str:
        """Files joined into one clip come from one group (one speaker's folder, one city scene)."""
        if self.group_by == "stem":
            return path.stem.rstrip("0123456789")
        return Path(path).parent.relative_to(self.directory).as_posix()


_LINCITY = "/usr/share/games/lincity-ng/sounds"
_LINCITY_SFX = ("Click*", "Build*", "Raze*", "Rocket*", "Fire*", "Monument*", "Window*")
_LINCITY_CROWD = ("SportsCroud*",)
# University: a sustained chord-like drone; ResidentialLow3: two steady tones; Commune: a voice
_LINCITY_UNSURE = ("University*", "ResidentialLow3.wav", "Commune*")

SOURCES: tuple[Source, ...] = (
    # ---- music: game soundtracks (orchestral, electronic, rock, jazz, adventure) and music on hold
    Source("warzone2100-music", "/usr/share/games/warzone2100/music", ("*.opus",), "music", joiner="none"),
    Source("extremetuxracer-data", "/usr/share/games/etr/music", ("*.ogg",), "music", joiner="none"),
    Source("drascula-music", "/usr/share/scummvm/drascula/audio", ("*.ogg",), "music", joiner="none"),
    Source("colobot-common-sounds", "/usr/share/games/colobot/music", ("*.ogg",), "music", joiner="none"),
    Source("lincity-ng-data", "/usr/share/games/lincity-ng/music/default", ("*.ogg",), "music", joiner="none"),
    Source(
        "asterisk-moh-opsound-wav", "/usr/share/asterisk/moh", ("*.wav",), "music", joiner="none"
    ),  # 8 kHz telephone band
    # ---- speech: telephone prompts (one speaker, 8 kHz) and spoken words in ~20 languages (many speakers)
    Source(
        "asterisk-core-sounds-en-wav",
        "/usr/share/asterisk/sounds/en_US_f_Allison",
        ("*.wav", "dictate/*.wav", "followme/*.wav", "digits/*.wav", "letters/*.wav"),
        "speech",
        exclude=("beep*", "*-tone*"),  # beeps and tones are not speech
    ),
    Source("ktuberling-data", "/usr/share/ktuberling/sounds", ("*/*",), "speech"),
    # ---- ambience: city scenes made of 4-5 s loops, blended
    Source(
        "lincity-ng-data",
        _LINCITY,
        ("*.wav",),
        "ambience",
        joiner="crossfade",
        group_by="stem",
        exclude=_LINCITY_SFX + _LINCITY_CROWD + _LINCITY_UNSURE,
    ),
    # ---- crowd: stadium crowds and city sports crowds (blended), applause and cheering (with gaps)
    Source("etw-data", "/usr/share/games/etw/crowd", ("*.wav",), "crowd", joiner="crossfade"),
    Source("etw-data", "/usr/share/games/etw/snd", ("crowd.wav", "fondo.wav"), "crowd", joiner="crossfade"),
    Source("lincity-ng-data", _LINCITY, _LINCITY_CROWD, "crowd", joiner="crossfade"),
    Source("circuslinux-data", "/usr/share/games/circuslinux/data/sounds", ("applause.wav", "cheering.wav"), "crowd"),
    # ---- sound effects: game one-shots
    Source("colobot-common-sounds", "/usr/share/games/colobot/sounds", ("*.wav",), "sfx"),
    Source("extremetuxracer-data", "/usr/share/games/etr/sounds", ("*.wav",), "sfx"),
    Source("lincity-ng-data", _LINCITY, _LINCITY_SFX, "sfx"),
    Source(
        "etw-data",
        "/usr/share/games/etw/snd",
        ("*.wav",),
        "sfx",
        # replay: a musical jingle; hallelujah: a choir; letsgo/ouch: voices; crowd/fondo: crowds (above)
        exclude=("replay.wav", "hallelujah.wav", "letsgo.wav", "ouch*.wav", "crowd.wav", "fondo.wav"),
    ),
    Source(
        "circuslinux-data",
        "/usr/share/games/circuslinux/data/sounds",
        ("*.wav",),
        "sfx",
        exclude=("applause.wav", "cheering.wav", "wahoo.wav"),  # crowds (above) and a voice
    ),
)


def apt_packages() -> tuple[str, ...]:
    """Every Debian package the recordings set reads, sorted (what scripts/devset-deps.sh installs)."""
    return tuple(sorted({s.package for s in SOURCES}))
