"""Copies with known truth, made from the real-sound dev sets, to measure duplicate finding.

Every music clip of the GM and recordings sets (``m2ugen-data devset build``) is copied as an uploader,
a re-encoder or a re-master would: re-encodes at several bitrates and codecs, gain changes, a cut at
another point, the clip inside a longer recording at an offset, time-stretch by a few percent, a partial
overlap with another recording, and a re-master (EQ + compression + level). Each copy's truth names its
original, how it was made and how much audio they share; a copy keeps its original's dev/test split, so
thresholds are tuned on dev copies and reported on test copies (``bench/bench_dedup.py``).

Copies are made by ffmpeg (Debian's, which has the lossy encoders), written through temporary names and
reused when their inputs did not change (a content key per copy), so a rebuild only makes what is new.
"""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from m2ugen_data.atomic import atomic_path
from m2ugen_data.devset.render import content_key
from m2ugen_data.errors import M2UGenError
from m2ugen_data.system import require_ffmpeg

COPIES_TRUTH = pa.schema(
    [
        pa.field("copy_id", pa.string(), nullable=False),
        pa.field("path", pa.string(), nullable=False),  # relative to the copies directory
        pa.field("original_id", pa.string(), nullable=False),
        pa.field("original_set", pa.string(), nullable=False),  # gm | recordings
        pa.field("split", pa.string(), nullable=False),  # the original's
        pa.field("variant", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),  # codec | gain | offset | stretch | partial | remaster
        pa.field("shared_s", pa.float64(), nullable=False),  # seconds of the original's audio the copy holds
        pa.field("filler_id", pa.string()),  # partial/pad: the other recording the copy also holds
        pa.field("filler_shared_s", pa.float64()),
        pa.field("key", pa.string(), nullable=False),  # content key: inputs + recipe
    ]
)

CLIP_S = 10.0
PAD_S = 2.5  # the copy inside another recording: this much of it first (under the 3 s a duplicate needs)


@dataclass(frozen=True)
class Variant:
    name: str
    kind: str
    ext: str
    args: tuple[str, ...]  # ffmpeg output options (filters, codec)
    shared_s: float = CLIP_S
    filler_s: float = 0.0  # seconds of a filler recording joined before (pad) or after (partial)
    trim_s: float = 0.0  # seconds of the original dropped from its start

    def recipe(self) -> str:
        return f"{self.name}|{self.ext}|{' '.join(self.args)}|{self.filler_s}|{self.trim_s}"


VARIANTS = (
    Variant("mp3_128k", "codec", "mp3", ("-c:a", "libmp3lame", "-b:a", "128k")),
    Variant("mp3_48k", "codec", "mp3", ("-c:a", "libmp3lame", "-b:a", "48k")),
    Variant("aac_64k", "codec", "m4a", ("-c:a", "aac", "-b:a", "64k")),
    Variant("vorbis_q0", "codec", "ogg", ("-c:a", "libvorbis", "-q:a", "0")),
    Variant("opus_32k", "codec", "opus", ("-c:a", "libopus", "-b:a", "32k")),
    Variant("gain_-9db", "gain", "flac", ("-af", "volume=-9dB")),
    Variant("gain_+5db_limited", "gain", "flac", ("-af", "volume=5dB,alimiter=limit=0.9:level=disabled")),
    Variant("cut_2.37s", "offset", "flac", (), shared_s=CLIP_S - 2.37, trim_s=2.37),
    Variant("inside_at_2.5s", "offset", "mp3", ("-c:a", "libmp3lame", "-b:a", "128k"), filler_s=-PAD_S),
    Variant("stretch_+3pct", "stretch", "flac", ("-af", "atempo=1.03")),
    Variant("stretch_-4pct", "stretch", "mp3", ("-af", "atempo=0.96", "-c:a", "libmp3lame", "-b:a", "96k")),
    Variant("partial_half", "partial", "flac", (), shared_s=CLIP_S / 2, filler_s=CLIP_S / 2, trim_s=CLIP_S / 2),
    Variant("remaster", "remaster", "mp3", (
        "-af", "bass=g=4:f=110,treble=g=3:f=6000,acompressor=threshold=-18dB:ratio=3:attack=10:release=120,volume=3dB,"
        "alimiter=limit=0.95:level=disabled", "-c:a", "libmp3lame", "-b:a", "160k")),
)


def _music_clips(devsets: Path) -> list[dict[str, Any]]:
    """The music clips of both dev sets: (clip_id, absolute path, set, split)."""
    clips = []
    for name in ("gm", "recordings"):
        truth = devsets / name / "truth.parquet"
        if not truth.is_file():
            raise M2UGenError(f"{truth}: no dev set (build it with `m2ugen-data devset build --out {devsets}`)")
        for row in pq.read_table(truth).to_pylist():
            if name == "gm" or row.get("is_music"):
                clips.append({"clip_id": row["clip_id"], "path": devsets / name / row["path"], "set": name,
                              "split": row["split"]})
    return clips


def _filler_for(clips: list[dict[str, Any]], i: int) -> dict[str, Any]:
    """Another recording of the same split (a fixed choice, so rebuilds agree): the next one round the list."""
    same = [c for c in clips if c["split"] == clips[i]["split"] and c["set"] == clips[i]["set"]]
    j = same.index(clips[i])
    return same[(j + 7) % len(same)]


def _command(v: Variant, src: Path, filler: Path, out: Path) -> list[str]:
    ff = [require_ffmpeg(), "-v", "error", "-nostdin", "-y"]
    if v.filler_s < 0:  # the copy inside another recording, PAD_S into it
        graph = (f"[1:a]atrim=0:{-v.filler_s},asetpts=N/SR/TB,aresample=44100[p];"
                 f"[0:a]aresample=44100[o];[p][o]concat=n=2:v=0:a=1[out]")
        return [*ff, "-i", str(src), "-i", str(filler), "-filter_complex", graph, "-map", "[out]", *v.args, str(out)]
    if v.filler_s > 0:  # the original's second half, then the filler's first half
        graph = (f"[0:a]atrim={v.trim_s}:{CLIP_S},asetpts=N/SR/TB,aresample=44100[o];"
                 f"[1:a]atrim=0:{v.filler_s},asetpts=N/SR/TB,aresample=44100[f];[o][f]concat=n=2:v=0:a=1[out]")
        return [*ff, "-i", str(src), "-i", str(filler), "-filter_complex", graph, "-map", "[out]", *v.args, str(out)]
    trim = ["-ss", f"{v.trim_s}"] if v.trim_s else []
    return [*ff, *trim, "-i", str(src), *v.args, str(out)]


def plan_copies(devsets: Path, out_dir: Path) -> Iterator[tuple[dict[str, Any], list[str] | None]]:
    """(truth row, ffmpeg command or None when the copy exists with the same key) for every copy."""
    clips = _music_clips(devsets)
    for i, clip in enumerate(clips):
        filler = _filler_for(clips, i)
        for v in VARIANTS:
            copy_id = f"{clip['clip_id']}--{v.name}"
            rel = Path("audio") / f"{copy_id}.{v.ext}"
            key = content_key(Path(clip["path"]).read_bytes(), Path(filler["path"]).read_bytes() if v.filler_s else b"",
                              v.recipe())
            row = {
                "copy_id": copy_id, "path": rel.as_posix(), "original_id": clip["clip_id"], "original_set": clip["set"],
                "split": clip["split"], "variant": v.name, "kind": v.kind, "shared_s": v.shared_s,
                "filler_id": filler["clip_id"] if v.filler_s else None,
                "filler_shared_s": abs(v.filler_s) if v.filler_s else None, "key": key,
            }
            yield row, _command(v, Path(clip["path"]), Path(filler["path"]), out_dir / rel)


def build_copies(devsets: Path, out_dir: Path | None = None, *, workers: int = 2) -> dict[str, Any]:
    """Make every copy not made yet (or made from other inputs) and write ``truth.parquet``."""
    out_dir = out_dir or devsets / "copies"
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    old = {}
    if (out_dir / "truth.parquet").is_file():
        old = {r["copy_id"]: r["key"] for r in pq.read_table(out_dir / "truth.parquet").to_pylist()}
    rows, todo = [], []
    for row, cmd in plan_copies(devsets, out_dir):
        rows.append(row)
        if old.get(row["copy_id"]) != row["key"] or not (out_dir / row["path"]).is_file():
            todo.append((out_dir / row["path"], cmd))

    def make(job: tuple[Path, list[str]]) -> None:
        target, cmd = job
        with atomic_path(target) as tmp:
            tmp_out = tmp.with_suffix(target.suffix)  # ffmpeg picks the container from the extension
            try:
                proc = subprocess.run([*cmd[:-1], str(tmp_out)], capture_output=True, check=False)
                if proc.returncode != 0:
                    raise M2UGenError(f"{target.name}: ffmpeg failed "
                                      f"({proc.stderr.decode(errors='replace').strip()[-200:]})")
                tmp_out.replace(tmp)
            finally:
                tmp_out.unlink(missing_ok=True)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(make, todo))
    with atomic_path(out_dir / "truth.parquet") as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=COPIES_TRUTH), tmp)
    kinds = dict(sorted(Counter(r["kind"] for r in rows).items()))
    return {"copies": len(rows), "made": len(todo), "kinds": kinds, "out_dir": str(out_dir)}


__all__ = ["COPIES_TRUTH", "VARIANTS", "build_copies", "plan_copies"]
