"""MUImage/MUVideo media and visual captions: throughput, each against a baseline measured in the same run.

- frames/s: our frame choice (16 evenly spaced candidates decoded, black/uniform skipped, sharpest kept,
  JPEG written) against the reference's way, one ffmpeg call per video that seeks to a random time and
  writes that frame.
- clips/s: our normalisation (measure luma at 8 Hz, reject black/still, then the H.264 re-encode) against
  the bare ffmpeg re-encode with the same settings: the ratio is the cost of the checks.
- captions/s: tiny random BLIP, VideoMAE+GPT-2 and VideoMAE-classifier models, batched against one item at
  a time (the reference's way); the ratio is what batching buys.
- with ``--model-dir DIR`` (a BLIP-base save_pretrained directory): BLIP captions/s at batch 1 and 32 on
  the device (CUDA when present).

Sources are ffmpeg ``testsrc2`` clips, 10 s, 640x360, 25 fps, H.264: about the size of a downloaded AudioSet
section, with detail in every frame.

    .venv/bin/python bench/bench_vision.py [--videos 24] [--workers 2] [--batch 16] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from m2ugen_data.system import require_ffmpeg
from m2ugen_data.vision.clips import encode_clip, normalise_clip
from m2ugen_data.vision.frames import extract_frame
from m2ugen_data.vision.models import VisualItem


def make_sources(root: Path, n: int) -> list[Path]:
    paths = []
    for i in range(n):
        out = root / f"src{i:04d}.mp4"
        graph = f"testsrc2=s=640x360:r=25:d=10,hue=h={i * 37 % 360}"
        subprocess.run(
            [require_ffmpeg(), "-v", "error", "-nostdin", "-y", "-filter_complex", graph, "-c:v", "libx264",
             "-preset", "veryfast", "-pix_fmt", "yuv420p", str(out)],
            check=True,
        )
        paths.append(out)
    return paths


def timed(fn, items, workers: int) -> float:
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as ex:
        list(ex.map(fn, items))
    return time.perf_counter() - t0


def random_frame(args: tuple[Path, Path]) -> None:
    """The reference's frame: one random time, one ffmpeg seek, one JPEG."""
    src, out = args
    t = random.Random(src.name).uniform(0, 9.5)
    subprocess.run(
        [require_ffmpeg(), "-v", "error", "-nostdin", "-y", "-ss", f"{t:.3f}", "-i", str(src), "-frames:v", "1",
         "-q:v", "2", str(out)],
        check=True,
    )


def caption_rates(captioner, items: list[VisualItem], batch: int) -> tuple[float, float]:
    captioner.caption(items[:2])  # warm-up: first-call allocations and lazy imports
    t0 = time.perf_counter()
    for i in range(0, len(items), batch):
        captioner.caption(items[i : i + batch])
    batched = len(items) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for it in items:
        captioner.caption([it])
    single = len(items) / (time.perf_counter() - t0)
    return batched, single


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--videos", type=int, default=24)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--model-dir", type=Path, default=None, help="BLIP-base save_pretrained directory")
    args = ap.parse_args()
    torch.set_num_threads(args.torch_threads)
    console = Console()
    from m2ugen_data.vision.blip import load_blip
    from m2ugen_data.testing.tiny_vision_models import save_tiny_blip, save_tiny_video_gpt2, save_tiny_videomae_classifier
    from m2ugen_data.vision.video_gpt2 import load_video_gpt2
    from m2ugen_data.vision.videomae_labels import load_videomae_labels

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        srcs = make_sources(root, args.videos)
        n, w = len(srcs), args.workers
        jobs = [(s, root / f"{s.stem}.jpg") for s in srcs]
        ours_f = timed(lambda j: extract_frame(*j), jobs, w)
        base_f = timed(random_frame, [(s, root / f"{s.stem}.rand.jpg") for s in srcs], w)
        ours_c = timed(lambda s: normalise_clip(s, root / f"{s.stem}.norm.mp4", threads=1), srcs, w)
        base_c = timed(lambda s: encode_clip(s, root / f"{s.stem}.bare.mp4", threads=1), srcs, w)
        t = Table(title=f"media: {n} videos (10 s, 640x360), {w} workers")
        for col in ("stage", "ours /s", "baseline /s", "baseline", "ours/baseline"):
            t.add_column(col)
        t.add_row("frames", f"{n / ours_f:.2f}", f"{n / base_f:.2f}", "ffmpeg random-time seek", f"{base_f / ours_f:.2f}")
        t.add_row("clips", f"{n / ours_c:.2f}", f"{n / base_c:.2f}", "re-encode without checks", f"{base_c / ours_c:.2f}")
        console.print(t)

        images = [VisualItem(s.stem + "_0", "image", j[1]) for s, j in zip(srcs, jobs)]
        videos = [VisualItem(s.stem + "_0", "video", root / f"{s.stem}.norm.mp4") for s in srcs]
        models = {
            "blip (tiny)": (load_blip(str(save_tiny_blip(root / "blip")), device="cpu", num_beams=3, max_new_tokens=20), images),
            "video-gpt2 (tiny)": (load_video_gpt2(str(save_tiny_video_gpt2(root / "vg")), device="cpu", num_beams=3, max_new_tokens=20), videos),
            "videomae-labels (tiny)": (load_videomae_labels(str(save_tiny_videomae_classifier(root / "vm")), device="cpu"), videos),
        }
        t = Table(title=f"captions: {n} items, batch {args.batch}, CPU, torch threads {args.torch_threads}")
        for col in ("backend", "batched /s", "one at a time /s", "batched/single"):
            t.add_column(col)
        for name, (captioner, items) in models.items():
            b, s = caption_rates(captioner, items, args.batch)
            t.add_row(name, f"{b:.2f}", f"{s:.2f}", f"{b / s:.2f}")
        if args.model_dir is not None:
            blip = load_blip(str(args.model_dir), num_beams=3, max_new_tokens=30)
            many = (images * (64 // max(1, len(images)) + 1))[:64]
            b, s = caption_rates(blip, many, 32)
            dev = "cuda" if torch.cuda.is_available() else "cpu"
            t.add_row(f"blip-base ({dev}, batch 32 vs 1)", f"{b:.2f}", f"{s:.2f}", f"{b / s:.2f}")
        console.print(t)


if __name__ == "__main__":
    main()
