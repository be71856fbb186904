"""Trainer throughput: is data loading the bottleneck?

CPU: the tiny preset, stage 3, on MUEdit fixture shards written by the real shard writer; samples/s and
tokens/s with the shard stream feeding the loop (2 data workers) versus the same batches pre-loaded in
memory; ratio = streamed / in-memory (aim >= 0.9). GPU (when CUDA exists): the 7B-shaped model with random
weights in bf16, stage 3 trainable set, random token batches: step time, tokens/s, peak memory, MFU.

    .venv/bin/python bench/bench_train.py [--steps 20] [--gpu-only]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _step(model, optimizer, inputs) -> None:
    out = model(**inputs)
    out["loss"].backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def cpu_bench(steps: int) -> list[tuple[str, float, float]]:
    from m2ugen_model.presets import write_tiny_weights
    from m2ugen_model.train.model_bridge import from_preset
    from m2ugen_model.train.config import TrainConfig
    from m2ugen_model.train.data import ShardStream, make_loader
    from m2ugen_model.train.loop import Dist, build_sources, model_inputs, stream_spec
    from train_fixtures import write_muedit

    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    write_muedit(tmp, 64, 16, feats=(3, 32), target=(8, 16))
    bundle = from_preset("tiny", str(write_tiny_weights(tmp / "tiny")), stage=3)
    cfg = TrainConfig(shards=[str(tmp)], stage=3, batch_size=8, num_workers=2, max_len=256, shuffle_buffer=64,
                      bucket_batches=4, audio_seconds=0.5)
    d = Dist()
    params = bundle.set_stage(3)
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    stream = ShardStream(build_sources(cfg), stream_spec(cfg, bundle, d), bundle.tokenizer)
    rows = []

    def run(batches) -> tuple[float, float]:
        it = iter(batches)
        for _ in range(2):  # warm-up (worker start, allocator)
            _step(bundle.model, optimizer, model_inputs(next(it), bundle, d.device))
        n_samples = n_tokens = 0
        t0 = time.perf_counter()
        for _ in range(steps):
            batch = next(it)
            _step(bundle.model, optimizer, model_inputs(batch, bundle, d.device))
            n_samples += batch["input_ids"].shape[0]
            n_tokens += int(batch["attention_mask"].sum())
        dt = time.perf_counter() - t0
        return n_samples / dt, n_tokens / dt

    in_memory = []
    for b in make_loader(stream):
        in_memory.append(b)
        if len(in_memory) == steps + 2:
            break
    mem = run(in_memory)
    streamed = run(make_loader(stream))
    rows.append(("tiny, CPU, batches pre-loaded in memory", *mem))
    rows.append(("tiny, CPU, streamed from shards (2 workers)", *streamed))
    print(f"\nCPU tiny preset, stage 3, batch 8, {steps} steps, torch threads {torch.get_num_threads()}")
    print(f"{'case':48s} {'samples/s':>10s} {'tokens/s':>10s}")
    for name, s, t in rows:
        print(f"{name:48s} {s:10.1f} {t:10.0f}")
    print(f"{'ratio streamed / in-memory':48s} {streamed[0] / mem[0]:10.2f} {streamed[1] / mem[1]:10.2f}")
    return rows


def gpu_bench(steps: int, seq: int = 512, batch: int = 4) -> None:
    from m2ugen_model import presets
    from m2ugen_model.stages import set_stage

    cfg = presets.seven_b()
    dev = torch.device("cuda")
    model = presets.init_model(cfg, dev, torch.bfloat16)
    model.llm.gradient_checkpointing = True
    names = set(set_stage(model, 3))
    params = [p for n, p in model.named_parameters() if n in names]
    for p in params:  # trainable weights and AdamW state in fp32; the frozen base stays bf16
        p.data = p.data.float()
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=True)
    total = sum(p.numel() for p in model.parameters())
    g = torch.Generator(device=dev).manual_seed(0)
    ids = torch.randint(0, cfg.vocab_size, (batch, seq), device=dev, generator=g)
    ids[:, -9:-1] = torch.arange(cfg.vocab_size, cfg.vocab_size + 8, device=dev)
    labels = ids.clone()
    labels[:, : seq // 2] = -100
    inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels,
                  audio_feats=torch.randn(batch, *cfg.audio_feat_shape, device=dev, dtype=torch.bfloat16),
                  target_embeds=torch.randn(batch, cfg.decoder_tokens, cfg.decoder_dim, device=dev))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(2):
            _step(model, optimizer, inputs)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(steps):
            _step(model, optimizer, inputs)
        torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / steps
    tokens = batch * seq
    # Frozen base: forward 2N + activation gradients 2N per token (no weight gradients for frozen weights),
    # + recomputation 2N with gradient checkpointing.
    flops = 6 * total * tokens
    peak = {"H100": 989e12, "H200": 989e12}.get(next((k for k in ("H100", "H200") if k in torch.cuda.get_device_name()), ""), None)
    print(f"\nGPU {torch.cuda.get_device_name()}: 7B-shaped M2UGen (random bf16 weights, {total / 1e9:.2f} B params), "
          f"stage 3, batch {batch} x {seq} tokens, gradient checkpointing")
    print(f"step time {dt * 1000:.0f} ms   tokens/s {tokens / dt:,.0f}   peak memory "
          f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB   "
          + (f"MFU {flops / dt / peak:.1%} (6N FLOPs/token vs {peak / 1e12:.0f} TFLOP/s dense bf16)" if peak else ""))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--gpu-only", action="store_true")
    args = ap.parse_args()
    if not args.gpu_only:
        cpu_bench(args.steps)
    if torch.cuda.is_available():
        gpu_bench(max(5, args.steps // 2))
    else:
        print("\nno CUDA device: GPU benchmark skipped")


if __name__ == "__main__":
    main()
