"""AudioSet ingestion throughput: clip downloads against a loopback server, and segment-list parsing.

Downloads: 10 s sections of 60 s AAC sources served by the Range-capable loopback server, through the real
yt-dlp + ffmpeg, end to end (plan, fetch, verify, rename, manifest rows), at concurrency 1, 4 and 8. Compared in
the same run with the reference scripts' approach: one `yt-dlp` command (a new Python interpreter) per clip,
with `--download-sections` and `-x --audio-format flac`. CPU seconds per clip come from getrusage (this process,
including the server threads, plus every child process), so they do not depend on how busy the machine is.

Parsing: a synthetic 2,041,789-row list in the official layout (the unbalanced list's size), read by our
parser, against a plain per-row Python validator, then selected into pools.

    .venv/bin/python bench/bench_download.py [--clips 32] [--skip-parse]
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import shutil
import string
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa

from m2ugen_data.audioset.download import DownloadConfig, download_clips
from m2ugen_data.testing.loopback_server import MediaServer
from m2ugen_data.audioset.ontology import load_ontology
from m2ugen_data.audioset.segments_csv import LABEL_RE, YTID_RE, read_segments_csv
from m2ugen_data.audioset.selection import SelectionPolicy, select_music
from m2ugen_data.audioset.ytdlp_fetch import FetchOptions, fast_ffmpeg
from m2ugen_data.system import require_ffmpeg
from m2ugen_data.warehouse import open_warehouse, utc_now


def cpu() -> float:
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def render_sources(d: Path, n: int) -> list[str]:
    src = d / "source.m4a"
    subprocess.run([require_ffmpeg(), "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "aevalsrc=0.3*sin(2*PI*(220+20*floor(t))*t)|0.3*sin(2*PI*330*t):s=44100:d=60",
                    "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(src)], check=True)
    served = d / "served"
    served.mkdir()
    ytids = [f"bench{i:06d}"for i in range(n)]
    for y in ytids:
        shutil.copyfile(src, served / f"{y}.m4a")
    return ytids


def run_ours(d: Path, srv: MediaServer, ytids: list[str], concurrency: int, ffmpeg: str | None) -> tuple[float, float, int]:
    wh_root = d / f"wh-{concurrency}-{time.monotonic_ns()}"
    wh = open_warehouse(wh_root)
    rng = random.Random(0)
    rows = []
    for y in ytids:
        s = float(rng.randrange(0, 50))
        rows.append({"clip_id": f"{y}_{int(s * 1000)}", "ytid": y, "start_s": s, "end_s": s + 10.0, "labels": ["/m/04rlf"],
                     "instruments": [], "genres": [], "moods": [], "pool": "mucaps", "source": "bench", "updated_at": utc_now()})
    wh.write_batch("segments", rows, "bench")
    config = DownloadConfig(url_template=srv.url_template(), concurrency=concurrency, requests_per_s=None,
                            fetch=FetchOptions(ffmpeg=ffmpeg), flush_every=50)
    c0, t0 = cpu(), time.perf_counter()
    summary = download_clips(wh, config)
    wall, used = time.perf_counter() - t0, cpu() - c0
    shutil.rmtree(wh_root)
    return wall, used, summary.ok


def run_baseline(d: Path, srv: MediaServer, ytids: list[str], concurrency: int) -> tuple[float, float, int]:
    """One yt-dlp process per clip, as the reference scripts do."""
    out = d / f"baseline-{concurrency}"
    out.mkdir()
    rng = random.Random(0)

    def one(y: str) -> bool:
        s = rng.randrange(0, 50)
        cmd = [sys.executable, "-m", "yt_dlp", "-q", "--no-warnings", "--download-sections", f"*{s}-{s + 10}",
               "--force-keyframes-at-cuts", "-x", "--audio-format", "flac", "--postprocessor-args",
               "ExtractAudio:-ac 1 -ar 44100", "--ffmpeg-location", require_ffmpeg(), "-o", str(out / f"{y}.%(ext)s"),
               srv.url_template().replace("{ytid}", y)]
        return subprocess.run(cmd, capture_output=True, check=False).returncode == 0

    c0, t0 = cpu(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        ok = sum(pool.map(one, ytids))
    return time.perf_counter() - t0, cpu() - c0, ok


def bench_downloads(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        ytids = render_sources(d, n)
        rows = []
        with MediaServer(d / "served") as srv:
            run_ours(d, srv, ytids[:2], 1, None)  # warm-up: imports, extractor lookup
            for conc in (1, 4, 8):
                rows.append(("ours (static ffmpeg)", conc, *run_ours(d, srv, ytids, conc, None)))
            rows.append(("ours (system ffmpeg)", 8, *run_ours(d, srv, ytids, 8, require_ffmpeg())))
            base_n = ytids[: max(n // 4, 8)]  # ~1.5 CPU s a clip: a few suffice for the ratio
            for conc in (1, 8):
                rows.append(("baseline: yt-dlp process per clip", conc, *run_baseline(d, srv, base_n, conc)))
    base8 = next(r for r in rows if r[0].startswith("baseline") and r[1] == 8)
    base_rate = base8[4] / base8[2]
    print(f"\nDownloads: 10 s sections of 60 s AAC sources over loopback; static ffmpeg = {fast_ffmpeg()}")
    print(f"{'variant':36} {'conc':>4} {'clips':>5} {'wall s':>7} {'clips/s':>8} {'CPU s/clip':>10} {'vs baseline c=8':>16}")
    for name, conc, wall, used, ok in rows:
        rate = ok / wall
        print(f"{name:36} {conc:>4} {ok:>5} {wall:>7.2f} {rate:>8.2f} {used / max(ok, 1):>10.3f} {rate / base_rate:>15.2f}x")


def write_big_list(path: Path, n: int) -> None:
    rng = random.Random(0)
    alphabet = string.ascii_letters + string.digits + "_-"
    labels = ["/m/04rlf", "/m/09x0r", "/t/dd00003", "/m/042v_gx", "/m/0mkg", "/m/06j6l", "/m/07yv9", "/m/0jbk"]
    with open(path, "w") as fh:
        fh.write("# Segments csv created Sun Mar  5 10:54:25 2017\n# num_ytids=2041789, num_segs=2041789\n"
                 "# YTID, start_seconds, end_seconds, positive_labels\n")
        for _ in range(n):
            y = "".join(rng.choices(alphabet, k=11))
            s = rng.randrange(0, 50) * 10
            fh.write(f'{y}, {s:.3f}, {s + 10:.3f}, "{",".join(rng.sample(labels, rng.randint(1, 3)))}"\n')


def per_row_python(path: Path) -> pa.Table:
    """The straightforward parser: csv + a Python check and append per row, then one Arrow table (the same
    output as ours, rejects aside), which is what the columnar version replaced."""
    ytids, starts, ends, labels, lines = [], [], [], [], []
    with open(path, newline="") as fh:
        reader = csv.reader(fh, skipinitialspace=True)
        for row in reader:
            if not row or row[0].startswith("#") or len(row) != 4 or not YTID_RE.fullmatch(row[0]):
                continue
            try:
                s, e = float(row[1]), float(row[2])
            except ValueError:
                continue
            labs = [x.strip() for x in row[3].split(",") if x.strip()]
            if not (0 <= s < e <= s + 60) or not labs or not all(LABEL_RE.fullmatch(x) for x in labs):
                continue
            ytids.append(row[0]); starts.append(s); ends.append(e); labels.append(labs); lines.append(reader.line_num)
    return pa.table({"ytid": ytids, "start_s": starts, "end_s": ends, "labels": labels, "line": lines})


def bench_parse(n: int = 2_041_789) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "unbalanced_train_segments.csv"
        write_big_list(path, n)
        t0 = time.perf_counter()
        seg = read_segments_csv(path)
        t_ours = time.perf_counter() - t0
        t0 = time.perf_counter()
        base = per_row_python(path)
        t_base = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, report = select_music(seg, load_ontology(), SelectionPolicy())
        t_select = time.perf_counter() - t0
    assert all(base.column(c).equals(seg.table.column(c)) for c in ("ytid", "start_s", "end_s", "labels", "line"))
    print(f"\nSegment list: {n:,} rows in the official layout ({path.name})")
    print(f"{'step':44} {'seconds':>8} {'rows/s':>12}")
    print(f"{'parse + validate (ours: csv + Arrow compute)':44} {t_ours:>8.2f} {n / t_ours:>12,.0f}")
    print(f"{'parse + validate (per-row Python baseline)':44} {t_base:>8.2f} {n / t_base:>12,.0f}   ours {t_base / t_ours:.1f}x faster")
    print(f"{f'select music + pools ({report.selected:,} selected)':44} {t_select:>8.2f} {n / t_select:>12,.0f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=32, help="clips per download run")
    ap.add_argument("--skip-parse", action="store_true")
    ap.add_argument("--skip-download", action="store_true")
    args = ap.parse_args()
    if not args.skip_download:
        bench_downloads(args.clips)
    if not args.skip_parse:
        bench_parse()


if __name__ == "__main__":
    main()
