"""Peak memory of analysing one long file against one 10 s clip, each in a fresh process (models loaded
first, so the difference is the file's), for the current code and optionally a git revision ("before").

An hour of silence once peaked at 4.9 GB in analysis: the whole file was decoded at 44.1 kHz
and copied by every analyser. Now its length is read from the header and it is analysed as windows.

    .venv/bin/python bench/bench_long_audio.py [--hours 1] [--before 8529835]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SR = 44100
CHILD = """
import json, resource, sys, time
from m2ugen_data.analysis.analyze import analyse_file, init_worker
init_worker()
models = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
row, _ = analyse_file("benchAAAAAA_0", sys.argv[1])
print(json.dumps({"status": row["status"], "reason": row["reason"], "models_kb": models,
                  "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "s": time.perf_counter() - t}))
"""


def _render(d: Path, hours: float) -> dict[str, Path]:
    import soundfile as sf

    from m2ugen_data.system import require_ffmpeg

    t = np.arange(10 * SR) / SR
    y = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(t.size)
    clip = d / "clip10s.flac"
    sf.write(clip, y.astype(np.float32), SR, format="FLAC", subtype="PCM_16")
    long = d / f"silence{hours:g}h.flac"
    subprocess.run([require_ffmpeg(), "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", f"anullsrc=r={SR}:cl=mono",
                    "-t", str(hours * 3600), "-c:a", "flac", str(long)], check=True)
    return {"10 s clip": clip, f"{hours:g} h of silence": long}


def _measure(code_root: Path, path: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    out = subprocess.run([sys.executable, "-c", CHILD, str(path)], env=env, cwd=code_root, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--before", help="also measure the code at this git revision")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        files = _render(d, args.hours)
        roots = {"current": REPO}
        if args.before:
            old = d / "before"
            old.mkdir()
            tar = subprocess.run(["git", "archive", args.before, "m2ugen_data"], cwd=REPO, check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", str(old)], input=tar, check=True)
            roots = {f"before ({args.before})": old, **roots}
        print(f"{'code':22} {'input':18} {'result':18} {'models MB':>9} {'peak MB':>8} {'file MB':>8} {'vs 10 s':>8} {'s':>6}")
        for name, root in roots.items():
            base = None
            for label, path in files.items():
                r = _measure(root, path)
                extra = (r["peak_kb"] - r["models_kb"]) / 1024
                base = base if base is not None else r["peak_kb"]
                result = f"{r['status']}:{r['reason']}" if r["reason"] else r["status"]
                print(f"{name:22} {label:18} {result:18} {r['models_kb'] / 1024:9.0f} {r['peak_kb'] / 1024:8.0f} "
                      f"{extra:8.0f} {r['peak_kb'] / base:8.2f} {r['s']:6.1f}")


if __name__ == "__main__":
    main()
