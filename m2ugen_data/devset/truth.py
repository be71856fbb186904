"""Truth tables of the dev sets (one ``truth.parquet`` beside the audio) and the helpers both sets share.

Ids look like AudioSet segment ids (``<11-char YTID>_<start_ms>``) so every pipeline stage accepts the clips
unchanged; the YTID is a hash of what the clip is, with a readable two-letter prefix ("gm", "rc"), and the
start is the excerpt's offset in its source. Splits come from a stable hash of the unit that must not
straddle them (a sibling group, a source recording): tune on ``dev``, report on ``test``.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.atomic import atomic_path, write_bytes_atomic
from m2ugen_data.errors import M2UGenError
from m2ugen_data.ids import CLIP_ID_RE, validate_ytid

TRUTH_FILE = "truth.parquet"
README_FILE = "README.md"
AUDIO_DIR = "audio"
SPLITS = ("dev", "test")

_f64s = pa.list_(pa.float64())
_strs = pa.list_(pa.string())
CHORD = pa.struct([("start", pa.float64()), ("end", pa.float64()), ("label", pa.string())])

GM_TRUTH = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),  # relative to the set directory
        pa.field("split", pa.string(), nullable=False),  # dev | test
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("tempo_bpm", pa.float64(), nullable=False),
        pa.field("meter", pa.int32(), nullable=False),  # beats per bar
        pa.field("key", pa.string(), nullable=False),  # madmom spelling, e.g. "Bb major"
        pa.field("beats", _f64s, nullable=False),  # seconds in the clip
        pa.field("downbeats", _f64s, nullable=False),
        pa.field("chords", pa.list_(CHORD), nullable=False),  # mir_eval labels, intervals cover the clip
        pa.field("programs", pa.list_(pa.int32()), nullable=False),  # GM programs of the pitched parts heard
        pa.field("instrument_names", _strs, nullable=False),  # GM names (drum kit name included)
        pa.field("families", _strs, nullable=False),  # coarse instrument families heard (sorted)
        pa.field("labels", _strs, nullable=False),  # AudioSet ids: Music + the instruments heard
        pa.field("parts", _strs, nullable=False),  # "<role>:<part>:<program>:<name>" per sounding part
        pa.field("has_drums", pa.bool_(), nullable=False),
        pa.field("has_melody", pa.bool_(), nullable=False),
        pa.field("group_id", pa.string(), nullable=False),  # siblings: same notes, other instruments
        pa.field("group_kind", pa.string(), nullable=False),  # single | one_part | multi_part
        pa.field("variant", pa.string(), nullable=False),  # "original" or the parts changed from it
        pa.field("twin_id", pa.string()),  # same tempo/meter/groove, different song: hard negatives
        pa.field("groove", pa.string(), nullable=False),  # MMA groove
        pa.field("style", pa.string(), nullable=False),
        pa.field("offset_s", pa.float64(), nullable=False),  # excerpt start in the rendered piece
        pa.field("render_key", pa.string(), nullable=False),  # cache key: MIDI + window + renderer
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("source", pa.string(), nullable=False),  # "mma": where the music comes from (leave-one-source-out)
        pa.field("soundfont", pa.string(), nullable=False),  # devset.soundfonts name the clip was rendered with
    ]
)

SCORES_TRUTH = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),  # dev | test, by piece
        pa.field("source", pa.string(), nullable=False),  # score_sources name: the unit of leave-one-source-out
        pa.field("soundfont", pa.string(), nullable=False),  # devset.soundfonts name
        pa.field("item", pa.string(), nullable=False),  # the piece within its source: file path [#tune]
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("tempo_bpm", pa.float64(), nullable=False),  # beats (of the metre's beat unit) per minute
        pa.field("tempo_origin", pa.string(), nullable=False),  # file | score | drawn
        pa.field("meter", pa.int32(), nullable=False),  # beats per bar
        pa.field("time_signature", pa.string(), nullable=False),  # "6/8"
        pa.field("beats", _f64s, nullable=False),
        pa.field("downbeats", _f64s, nullable=False),
        pa.field("programs", pa.list_(pa.int32()), nullable=False),
        pa.field("instrument_names", _strs, nullable=False),
        pa.field("families", _strs, nullable=False),
        pa.field("labels", _strs, nullable=False),
        pa.field("parts", _strs, nullable=False),
        pa.field("has_drums", pa.bool_(), nullable=False),
        pa.field("offset_s", pa.float64(), nullable=False),
        pa.field("render_key", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
    ]
)

RECORDINGS_TRUTH = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("duration_s", pa.float64(), nullable=False),
        pa.field("sample_rate", pa.int32(), nullable=False),
        pa.field("is_music", pa.bool_(), nullable=False),
        pa.field("category", pa.string(), nullable=False),  # music | sfx | ambience | speech | applause
        pa.field("construction", pa.string(), nullable=False),  # excerpt | loop | sequence (see README)
        pa.field("package", pa.string(), nullable=False),  # Debian package of the source file(s)
        pa.field("sources", _strs, nullable=False),  # installed path(s) the clip was cut from
        pa.field("source_offset_s", pa.float64(), nullable=False),  # excerpt start in the first source
        pa.field("render_key", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
    ]
)


def devset_ytid(prefix: str, *parts: object) -> str:
    """An 11-character YouTube-style id: a 2-character prefix and 9 characters of a hash of ``parts``."""
    if len(prefix) != 2:
        raise ValueError(f"prefix must be 2 characters, got {prefix!r}")
    digest = hashlib.sha256("/".join(str(p) for p in ("m2ugen-devset", prefix, *parts)).encode()).digest()
    return validate_ytid(prefix + base64.urlsafe_b64encode(digest).decode()[:9])


def split_of(unit: str) -> str:
    """``dev`` or ``test`` from a stable hash of the unit (about half each)."""
    return SPLITS[hashlib.sha256(f"m2ugen-devset-split/{unit}".encode()).digest()[0] & 1]


def audio_relpath(clip_id: str) -> str:
    """``audio/<clip_id>.flac``; the id is validated before it becomes a path."""
    if not isinstance(clip_id, str) or not CLIP_ID_RE.fullmatch(clip_id):
        raise M2UGenError(f"invalid dev-set clip id {clip_id!r}")
    return f"{AUDIO_DIR}/{clip_id}.flac"


def write_truth(out_dir: Path, rows: list[dict[str, Any]], schema: pa.Schema) -> Path:
    """Rows sorted by clip id into ``truth.parquet`` (atomic), so a rebuild with one seed is byte-stable."""
    rows = sorted(rows, key=lambda r: r["clip_id"])
    table = pa.Table.from_pylist(rows, schema=schema)
    target = out_dir / TRUTH_FILE
    with atomic_path(target) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return target


def read_truth(set_dir: Path) -> pa.Table:
    path = Path(set_dir) / TRUTH_FILE
    if not path.is_file():
        raise M2UGenError(
            f"no dev set at {set_dir}: {TRUTH_FILE} is missing (build it with 'm2ugen-data devset build')"
        )
    return pq.read_table(path)


def previous_keys(set_dir: Path) -> dict[str, str]:
    """clip_id -> render_key of the last build in ``set_dir`` (the render cache index); empty if none."""
    path = Path(set_dir) / TRUTH_FILE
    if not path.is_file():
        return {}
    t = pq.read_table(path, columns=["clip_id", "render_key"])
    return dict(zip(t.column("clip_id").to_pylist(), t.column("render_key").to_pylist()))


def remove_stale_audio(set_dir: Path, keep: Iterable[str]) -> int:
    """Delete ``audio/*.flac`` clips that the new truth no longer lists (a smaller --n, another seed)."""
    wanted = {f"{c}.flac" for c in keep}
    removed = 0
    audio = Path(set_dir) / AUDIO_DIR
    for p in audio.glob("*.flac") if audio.is_dir() else ():
        if p.name not in wanted and CLIP_ID_RE.fullmatch(p.stem):
            p.unlink()
            removed += 1
    return removed


def write_readme(set_dir: Path, text: str) -> Path:
    return write_bytes_atomic(Path(set_dir) / README_FILE, text.encode())
