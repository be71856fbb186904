"""Peak memory of the model's front doors (m2ugen-infer, m2ugen-eval) on long user media, before the bounds
(a git revision) and now, each case in a fresh process.

An hour of 44.1 kHz stereo FLAC is ~600 KB on disk; m2ugen-infer once decoded it whole (2 GB peak) and
m2ugen-eval generation held every clip at once. Now the audio length is judged from the header (refused past
--max-audio-seconds, 10 min by default; read as mono blocks when the cap is raised), a Matroska video's frames
are counted from its packets with only the clip's frames kept, and evaluation streams clips a batch at a time.

    .venv/bin/python bench/bench_media_bounds.py [--before c44910e] [--clips 8,24] [--frames 2000]

Peak is the child's VmHWM (ru_maxrss would inherit the parent's peak across exec); "added" is the peak less
the RSS after imports and set-up, i.e. what the case itself cost.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from at_revision import REPO, tree_at  # noqa: E402

SR = 44100
CHILD = """
import json, sys
from pathlib import Path

def status(key):
    return int(next(ln.split()[1] for ln in open("/proc/self/status") if ln.startswith(key + ":")))

case, path, cap = sys.argv[1], sys.argv[2], (float(sys.argv[3]) if sys.argv[3] != "-" else None)
kw = {} if cap is None else {"max_seconds": cap}
if case == "infer_audio":
    from m2ugen_model.infer.media_io import read_audio as run
    call = lambda: run(path, **kw)[0].size
elif case == "eval_audio":
    from m2ugen_model.eval.audio import load_audio as run
    call = lambda: run(path, 16000, *([cap] if cap else [])).size
elif case == "infer_video":
    from m2ugen_model.infer.media_io import read_video as run
    call = lambda: run(path, frames=32).shape[0]
else:  # eval_generation: FAD over path/gen vs path/ref with the tiny AST in path/ast
    from m2ugen_model.eval.run import evaluate_generation as run
    call = lambda: run(Path(path) / "gen", Path(path) / "ref", fad_model=Path(path) / "ast").counts["fad"]
import numpy, soundfile, av, torch, transformers  # imports counted in the baseline, not the case
base = status("VmRSS")
try:
    outcome = f"ok ({call()})"
except ValueError as exc:
    outcome = "refused"
    print(str(exc), file=sys.stderr)
print(json.dumps({"base_kb": base, "peak_kb": status("VmHWM"), "outcome": outcome}))
"""


def _silence_flac(path: Path, seconds: float, channels: int = 2) -> Path:
    import soundfile as sf

    block = np.zeros((SR * 60, channels), np.float32)
    with sf.SoundFile(path, "w", samplerate=SR, channels=channels, format="FLAC") as f:
        left = int(seconds * SR)
        while left > 0:
            f.write(block[:left])
            left -= len(block)
    return path


def _mkv(path: Path, frames: int) -> Path:
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(frames):
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i % 250, np.uint8), format="rgb24")))
        c.mux(s.encode(None))
    return path


def _clip_sets(d: Path, n: int) -> Path:
    sys.path.insert(0, str(REPO / "tests" / "support"))
    from eval_models import write_tiny_ast

    for side in ("gen", "ref"):
        (d / side).mkdir(parents=True)
        for i in range(n):
            _silence_flac(d / side / f"c{i}.flac", 60)
    write_tiny_ast(d / "ast")
    return d


def _measure(code_root: Path, case: str, path: Path, cap: float | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    done = subprocess.run([sys.executable, "-c", CHILD, case, str(path), "-" if cap is None else str(cap)], env=env,
                          cwd=code_root, check=True, capture_output=True, text=True)
    return {**json.loads(done.stdout.strip().splitlines()[-1]), "message": done.stderr.strip().splitlines()[-1:]}


def _cell(r: dict) -> str:
    return f"{r['peak_kb'] / 1024:,.0f} / {(r['peak_kb'] - r['base_kb']) / 1024:,.0f} ({r['outcome']})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="c44910e", help="revision whose readers are the 'before'")
    ap.add_argument("--clips", default="8,24", help="one-minute clips per set in the generation cases")
    ap.add_argument("--frames", type=int, default=2000, help="frames of the Matroska video")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        before = tree_at(args.before, "m2ugen_model", d)
        hour = _silence_flac(d / "hour.flac", 3600)
        cases = [
            (f"m2ugen-infer audio: 1 h stereo FLAC ({hour.stat().st_size // 1024} KB)", "infer_audio", hour, 3600.0),
            ("m2ugen-eval audio: the same hour at 16 kHz", "eval_audio", hour, 3600.0),
            (f"m2ugen-infer video: MKV, {args.frames} frames, no frame count", "infer_video",
             _mkv(d / "v.mkv", args.frames), None),
        ] + [(f"m2ugen-eval generation FAD: {n} + {n} one-minute clips", "eval_generation",
               _clip_sets(d / f"sets{n}", n), None) for n in map(int, args.clips.split(","))]
        print(f"before = {args.before}; peak / added MB (VmHWM; added = peak less the RSS after imports)\n")
        print("| case | before | now, default cap | now, cap raised to the input |")
        print("|---|---|---|---|")
        refusals: list[str] = []
        for title, case, path, raised in cases:
            runs = [(before, None), (REPO, None)] + ([(REPO, raised)] if raised is not None else [])
            results = [_measure(root, case, path, cap) for root, cap in runs]
            cells = [_cell(r) for r in results]
            refusals += [m for r in results if r["outcome"] == "refused" for m in r["message"]]
            print(f"| {title} | " + " | ".join(cells + ["-"] * (3 - len(cells))) + " |")
        for message in dict.fromkeys(refusals):
            print(f"\nrefused: {Path(message.split(': ', 1)[0]).name}: {message.split(': ', 1)[-1]}")


if __name__ == "__main__":
    main()
