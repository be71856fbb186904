"""Every GPU measurement of the project, one section per process (driven by ``bench/gpu/run.sh``).

Sections (each writes one JSON row; ``table`` prints them as one table):

- ``train7b``:  a random-initialised 7B-shaped M2UGen, stage-3 trainable set, one bf16 training step
  (autocast, gradient checkpointing): tokens/s, peak memory, MFU;
- ``fsdp7b``:   the same wrapped with FSDP2 (``fully_shard`` per LLaMA block, bf16 params, fp32 reduce, as
  ``m2ugen-train --fsdp`` does) in a one-rank process group;
- ``infer``:    ``m2ugen-infer batch`` of text->music requests on the tiny weights: per-request latency
  (from the JSON records, model load excluded) and the command's wall time;
- ``vllm``:     offline dialogue generation on a small random LLaMA-architecture chat model saved locally:
  vLLM's ``LLM.generate`` versus the transformers backend (same prompts, greedy), generated tokens/s;
- ``caption``:  MU-LLaMA-style captioning (7B-shaped MU-LLaMA, random weights, precomputed MERT-shaped
  features) with ``inference.caption``: batch 1 versus batch 16, captions/s and tokens/s;
- ``infer7b``:  the LLM side of 7B inference: peak memory and decode tokens/s in bf16, with int8 LLaMA
  weights (bitsandbytes) and with half the LLaMA blocks offloaded to CPU memory (accelerate).

Weights are random and written locally; nothing is downloaded. With ``--cpu-safe`` the CUDA-only sections
record "skipped" (vLLM) and the rest run on the CPU at toy sizes, the training steps with the tiny shape
(what the test exercises: the code runs; the numbers are not measurements).

    python bench/gpu/gpu_bench.py SECTION --out row.json [--cpu-safe]
    python bench/gpu/gpu_bench.py table DIR
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
# Dense bf16 tensor-core peaks (TFLOP/s) for MFU; M2UGEN_PEAK_TFLOPS overrides (e.g. for other cards).
PEAKS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L40": 181.0, "A10G": 125.0, "L4": 121.0,
         "RTX 4090": 165.0, "A6000": 155.0}


def _cuda() -> torch.device:
    if not torch.cuda.is_available():
        raise SkipSection("needs CUDA")
    return torch.device("cuda")


class SkipSection(Exception):
    """A section that cannot run here (no CUDA, missing optional package); its row says why."""


def _peak_tflops() -> float | None:
    if os.environ.get("M2UGEN_PEAK_TFLOPS"):
        return float(os.environ["M2UGEN_PEAK_TFLOPS"])
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAKS.items() if k in name), None)


# ---------------------------------------------------------------- training
def _train_rows(fsdp: bool, cpu_safe: bool) -> dict:
    """One stage-3 step; with cpu_safe the tiny shape in fp32 on the CPU (gloo) runs the same code as a check
    that it works, not as a measurement."""
    from m2ugen_model import presets
    from m2ugen_model.stages import set_stage

    dev = torch.device("cpu") if cpu_safe else _cuda()
    cuda = dev.type == "cuda"
    steps, warmup, batch, seq = (5, 2, 4, 512) if cuda else (1, 1, 2, 32)
    if fsdp:
        import torch.distributed as dist
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(29500 + os.getpid() % 1000))
        dist.init_process_group("nccl" if cuda else "gloo", rank=0, world_size=1,
                                device_id=torch.device("cuda", torch.cuda.current_device()) if cuda else None)
    cfg = presets.seven_b() if cuda else presets.tiny()
    model = presets.init_model(cfg, dev, torch.bfloat16 if cuda else torch.float32)
    model.llm.gradient_checkpointing = True
    names = set(set_stage(model, 3))
    for n, p in model.named_parameters():  # trainable weights and AdamW state in fp32, frozen base bf16
        if n in names:
            p.data = p.data.float()
    total = sum(p.numel() for p in model.parameters())
    if fsdp:  # as m2ugen-train --fsdp wraps it (train/loop.py)
        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if cuda else MixedPrecisionPolicy()
        for block in model.llm.layers:
            fully_shard(block, mp_policy=mp)
        model = fully_shard(model, mp_policy=mp)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4, fused=cuda and not fsdp)
    g = torch.Generator(device=dev).manual_seed(0)
    ids = torch.randint(3, cfg.vocab_size, (batch, seq), device=dev, generator=g)
    ids[:, -9:-1] = torch.arange(cfg.vocab_size, cfg.vocab_size + cfg.n_aud_tokens, device=dev)
    labels = ids.clone()
    labels[:, : seq // 2] = -100
    feat_dtype = torch.bfloat16 if cuda else torch.float32
    inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels,
                  audio_feats=torch.randn(batch, *cfg.audio_feat_shape, device=dev, dtype=feat_dtype),
                  target_embeds=torch.randn(batch, cfg.decoder_tokens, cfg.decoder_dim, device=dev))
    losses = []

    def step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            out = model(**inputs)
        out["loss"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(out["loss"]))

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    dt = (time.perf_counter() - t0) / steps
    if fsdp:
        torch.distributed.destroy_process_group()
    if not all(map(lambda x: x == x and abs(x) < float("inf"), losses)):
        raise RuntimeError(f"non-finite loss: {losses}")
    tokens = batch * seq
    if not cuda:
        return {"value": f"{tokens / dt:,.0f} tokens/s", "detail": (
            f"tiny shape on CPU (--cpu-safe: checks the code runs, not a measurement), batch {batch}x{seq}, "
            f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")}
    # Frozen base: forward 2N + input gradients 2N FLOPs per token (model FLOPs; the recomputation of
    # gradient checkpointing is not counted, so this is MFU, not hardware utilisation).
    peak = _peak_tflops()
    mfu = 4 * total * tokens / dt / (peak * 1e12) if peak else None
    return {"value": f"{tokens / dt:,.0f} tokens/s", "detail": (
        f"step {dt * 1000:.0f} ms, batch {batch}x{seq}, peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, "
        + (f"MFU {mfu:.1%} (4N FLOPs/token, {peak:.0f} TFLOP/s peak)" if mfu else "MFU n/a (unknown peak: set M2UGEN_PEAK_TFLOPS)")
        + f", {total / 1e9:.2f} B params, grad checkpointing")}


def section_train7b(cpu_safe: bool) -> dict:
    return _train_rows(fsdp=False, cpu_safe=cpu_safe)


def section_fsdp7b(cpu_safe: bool) -> dict:
    return _train_rows(fsdp=True, cpu_safe=cpu_safe)


# ---------------------------------------------------------------- m2ugen-infer latency
def _needs(*modules: str) -> None:
    """A section run in a subprocess cannot report its missing import itself: check first."""
    import importlib.util

    for m in modules:
        if importlib.util.find_spec(m) is None:
            raise SkipSection(f"needs {m}")


def section_infer(cpu_safe: bool) -> dict:
    from m2ugen_model.presets import write_tiny_weights

    _needs("pydantic", "soundfile", "typer", "rich")

    device = "cpu" if cpu_safe or not torch.cuda.is_available() else "cuda"
    # The tiny Encodec runs at 500 frames/s (real MusicGen: 50), so 1 s of audio is 500 decoder steps.
    n, seconds, new_tokens = (2, 0.02, 8) if cpu_safe else (4, 1.0, 32)
    with tempfile.TemporaryDirectory() as d:
        weights = write_tiny_weights(Path(d) / "tiny")
        reqs = Path(d) / "requests.jsonl"
        reqs.write_text("".join(json.dumps({"id": f"r{i}", "task": "text2music", "prompt": f"An upbeat jazz tune {i}"})
                                + "\n" for i in range(n)))
        python = [sys.executable, *(["-S"] if sys.flags.no_site else [])]  # the same interpreter setup as this one
        cmd = [*python, "-m", "m2ugen_model.infer.cli", "--weights-dir", str(weights), "--device", device,
               "--max-new-tokens", str(new_tokens),
               "--seconds", str(seconds), "batch", str(reqs), "--out-dir", str(Path(d) / "out")]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"m2ugen-infer failed: {proc.stderr.strip().splitlines()[-1:]}")
        recs = [json.loads(x) for x in (Path(d) / "out" / "results.jsonl").read_text().splitlines()]
    lat = [r["elapsed_s"] for r in recs if r["status"] == "ok"]
    if len(lat) != n:
        raise RuntimeError(f"{n - len(lat)} of {n} requests failed")
    frames = int(seconds * 500)
    return {"value": f"{statistics.median(lat):.2f} s/request (median)",
            "detail": f"{device}, {n} requests, {seconds} s of audio ({frames} decoder steps) each, "
                      f"{new_tokens} new tokens, CFG 3; "
                      f"command wall {wall:.1f} s incl. model load"}


# ---------------------------------------------------------------- vLLM vs transformers
def section_vllm(cpu_safe: bool) -> dict:
    _cuda()
    try:
        import vllm  # noqa: F401
    except ImportError:
        raise SkipSection("vllm not installed (pip install 'm2ugen[gpu]')") from None
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_dialogues import samples

    from m2ugen_data.dialogues.backend import GenerationParams, Request
    from m2ugen_data.dialogues.prompts import SIDES, build_prompt
    from m2ugen_data.testing.tiny_lm import build_tiny_chat_lm
    from m2ugen_data.dialogues.transformers_backend import TransformersBackend
    from m2ugen_data.dialogues.vllm_backend import VllmBackend

    with tempfile.TemporaryDirectory() as d:
        model = str(build_tiny_chat_lm(Path(d) / "lm", hidden_size=512, num_layers=4, num_heads=8))
        params = GenerationParams(max_new_tokens=128, temperature=0.0)
        reqs = [Request(s, side, build_prompt(s, side), 0) for s in samples(256) for side in SIDES]
        rates = {}
        for name, backend in (
            ("transformers", TransformersBackend(model, device="cuda", dtype="bfloat16", batch_size=64, params=params)),
            ("vllm", VllmBackend(model, params=params, max_model_len=1024, gpu_memory_utilization=0.3,
                                 dtype="bfloat16")),
        ):
            backend.complete(reqs[:4])  # load and warm up
            t0 = time.perf_counter()
            out = backend.complete(reqs)
            dt = time.perf_counter() - t0
            rates[name] = sum(c.tokens for c in out) / dt
    return {"value": f"{rates['vllm']:,.0f} tokens/s vLLM vs {rates['transformers']:,.0f} transformers",
            "detail": f"{rates['vllm'] / rates['transformers']:.1f}x; {len(reqs)} prompts, greedy, <=128 new tokens, "
                      "random LLaMA h512 L4 (bf16, transformers batch 64)"}


# ---------------------------------------------------------------- 7B inference memory
class _StubTokenizer:
    """The full 32000-token vocabulary without a tokenizer file: prompts become fixed pseudo-random ids and
    decoding prints ids (no stop string can match), enough for timing and memory with random weights."""

    pad_token_id, bos_token_id, eos_token_id = 0, 1, 2

    def __init__(self, vocab: int, prompt_tokens: int = 64):
        self.vocab, self.prompt_tokens = vocab, prompt_tokens

    def __call__(self, text: str):
        g = torch.Generator().manual_seed(len(text))
        ids = [1] + torch.randint(3, self.vocab, (self.prompt_tokens - 1,), generator=g).tolist()
        return type("Encoding", (), {"input_ids": ids})()

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return " ".join(map(str, ids))


def _generate_peak(model, tok, device: torch.device, new: int) -> tuple[float, float]:
    """(decode tokens/s, peak GiB) of one music request: prompt, `new` tokens with [AUD] forced, projector."""
    from m2ugen_model.infer import inference

    def no_eos(step, ids, logits):
        logits[:, tok.eos_token_id] = -float("inf")
        return logits

    feats = {"audio": torch.randn(1, *model.cfg.audio_feat_shape, device=device)}
    inference.generate_batch(model, tok, ["warm up"], feats, max_new_tokens=4, stop=(), logits_processor=no_eos)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    res = inference.generate_batch(model, tok, ["compose"], feats, max_new_tokens=new, stop=(), force_aud=True,
                                   logits_processor=no_eos)[0]
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    if res.music_embeds is None:
        raise RuntimeError("no [AUD] conditioning was produced")
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return len(res.token_ids) / dt, peak


def section_infer7b(cpu_safe: bool) -> dict:
    """The LLM side of 7B inference (adapters, LLaMA, projector; no encoders/decoder) in bf16, with the
    first 16 LLaMA blocks offloaded to CPU memory (accelerate), and with int8 LLaMA weights (bitsandbytes)."""
    from m2ugen_model import presets
    from m2ugen_model.errors import InferenceError
    from m2ugen_model.infer.lowmem import offload_llm_layers, quantize_llm_8bit

    dev = torch.device("cpu") if cpu_safe else _cuda()
    cfg = presets.tiny() if cpu_safe else presets.seven_b()
    dtype = torch.float32 if cpu_safe else torch.bfloat16
    tok, new = _StubTokenizer(cfg.vocab_size, 16 if cpu_safe else 64), 12 if cpu_safe else 64
    parts = []
    model = presets.init_model(cfg, dev, dtype).eval()
    rate, peak = _generate_peak(model, tok, dev, new)
    parts.append(f"bf16 {peak:.1f} GiB {rate:.0f} tok/s" if not cpu_safe else f"fp32 {rate:.0f} tok/s")
    try:
        quantize_llm_8bit(model, str(dev))
        rate, peak = _generate_peak(model, tok, dev, new)
        parts.append(f"int8 {peak:.1f} GiB {rate:.0f} tok/s")
    except InferenceError as exc:
        parts.append(f"int8 skipped ({exc})")
    del model
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    model = presets.init_model(cfg, dev, dtype).eval()
    n_off = cfg.n_layers // 2
    offload_llm_layers(model, n_off, str(dev))
    rate, peak = _generate_peak(model, tok, dev, new)
    parts.append(f"{n_off} blocks offloaded {peak:.1f} GiB {rate:.1f} tok/s" if not cpu_safe
                 else f"{n_off} blocks offloaded {rate:.0f} tok/s")
    shape = "tiny shape on CPU (--cpu-safe: checks the code runs)" if cpu_safe else "7B, random weights"
    return {"value": parts[0], "detail": "; ".join(parts[1:]) + f"; {shape}, {tok.prompt_tokens}-token prompt + "
            f"{new} new incl. 8 [AUD]; add ~1 GB for MERT/ViT/ViViT and 3 GB for MusicGen-medium (bf16)"}


# ---------------------------------------------------------------- MU-LLaMA-style captioning
class _FixedFeatureEncoders:
    """Stands in for MERT: the captioner's cost under test is the LLM's; MERT-shaped random features."""

    def __init__(self, shape: tuple[int, int], device: torch.device, dtype: torch.dtype):
        self.shape, self.device, self.dtype = shape, device, dtype

    def encode_audio(self, audios, sr):
        return torch.randn(len(audios), *self.shape, device=self.device, dtype=self.dtype)


def section_caption(cpu_safe: bool) -> dict:
    from m2ugen_model import presets
    from m2ugen_model.infer import inference

    device = torch.device("cpu") if cpu_safe else _cuda()
    dtype = torch.float32 if cpu_safe else torch.bfloat16
    if cpu_safe:
        cfg = presets.tiny(modalities=("audio",), adapter_layers=3, adapter_ffn_mult=4, n_aud_tokens=0, decoder=None)
        n, big, new = 4, 4, 8
    else:
        cfg = presets.mu_llama_7b()
        n, big, new = 32, 16, 64
    tok = _StubTokenizer(cfg.vocab_size, 48)
    model = presets.init_model(cfg, device, dtype).eval()
    model.encoders = _FixedFeatureEncoders(cfg.audio_feat_shape, device, dtype)
    clips = [torch.zeros(16000).numpy()] * n

    def no_eos(step, ids, logits):  # fixed-length captions: a throughput comparison, not a quality one
        logits[:, tok.eos_token_id] = -float("inf")
        return logits

    rows = {}
    for bs in (1, big):
        inference.caption(model, tok, clips[:bs], 16000, batch_size=bs, max_new_tokens=new, logits_processor=no_eos,
                          stop=())
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        inference.caption(model, tok, clips, 16000, batch_size=bs, max_new_tokens=new, logits_processor=no_eos,
                          stop=())  # fixed-length answers; the stub tokenizer has no stop strings
        if device.type == "cuda":
            torch.cuda.synchronize()
        rows[bs] = n / (time.perf_counter() - t0)
    shape = "tiny MU-LLaMA (CPU)" if cpu_safe else "7B-shaped MU-LLaMA bf16"
    return {"value": f"{rows[big]:.2f} captions/s at batch {big} vs {rows[1]:.2f} at batch 1",
            "detail": f"{rows[big] / rows[1]:.1f}x; {shape}, {n} clips, {new} tokens each, "
                      f"{rows[big] * new:,.0f} tokens/s batched; random weights, MERT-shaped features"}


SECTIONS = {
    "train7b": ("7B M2UGen stage-3 train step, bf16", section_train7b),
    "fsdp7b": ("7B M2UGen stage-3 train step, FSDP2 1 rank", section_fsdp7b),
    "infer": ("m2ugen-infer text->music latency, tiny", section_infer),
    "vllm": ("dialogues: vLLM vs transformers", section_vllm),
    "caption": ("MU-LLaMA-style captioning, batched", section_caption),
    "infer7b": ("7B inference memory: bf16 / int8 / offload", section_infer7b),
}

CUDA_ONLY = ("vllm",)  # the training sections run a tiny-shaped step on the CPU instead


def run_section(name: str, out: Path, cpu_safe: bool) -> int:
    title, fn = SECTIONS[name]
    if cpu_safe:
        torch.set_num_threads(1)  # toy sizes: one thread avoids spin-waiting on a shared CPU box
    t0 = time.perf_counter()
    try:
        if cpu_safe and name in CUDA_ONLY:
            raise SkipSection("needs CUDA (--cpu-safe)")
        row = {"status": "ok", **fn(cpu_safe)}
    except SkipSection as exc:
        row = {"status": "skipped", "value": "-", "detail": str(exc)}
    except ModuleNotFoundError as exc:  # an optional dependency this machine lacks: say which, do not fail
        row = {"status": "skipped", "value": "-", "detail": f"needs {(exc.name or str(exc)).split('.')[0]}"}
    except Exception as exc:  # the table must still be printed; the row carries the failure
        row = {"status": "failed", "value": "-", "detail": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}
    if row["status"] == "skipped":
        print(f"{name}: skipped: {row['detail']}", file=sys.stderr)
    row.update(section=name, what=title, seconds=round(time.perf_counter() - t0, 1))
    out.write_text(json.dumps(row))
    return 0 if row["status"] != "failed" else 1


def print_table(d: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device"
    t = Table(title=f"M2UGen GPU checks ({gpu}, torch {torch.__version__})")
    for col in ("measurement", "status", "result", "detail", "s"):
        t.add_column(col)
    for name, (title, _) in SECTIONS.items():
        f = d / f"{name}.json"
        row = json.loads(f.read_text()) if f.is_file() else {"status": "timed out", "value": "-", "detail": "no result"}
        t.add_row(title, row["status"], row["value"], row["detail"], str(row.get("seconds", "-")))
    Console(width=200).print(t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("section", choices=[*SECTIONS, "table"])
    ap.add_argument("path", nargs="?", help="table: the directory of rows")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--cpu-safe", action="store_true", help="skip what needs CUDA; run the rest on the CPU, small")
    args = ap.parse_args()
    if args.section == "table":
        print_table(Path(args.path))
        return
    sys.exit(run_section(args.section, args.out, args.cpu_safe))


if __name__ == "__main__":
    main()
