"""Model benchmark: tiny-preset training step time per stage on CPU versus a plain transformers
LlamaForCausalLM of the same size (the ratio is what to compare across machines), parameter counts of
the tiny, 7B and MU-LLaMA shapes per stage (meta device, nothing allocated), and, with CUDA, the 7B
shape in bf16.

    .venv/bin/python bench/bench_model.py
"""

from __future__ import annotations

import statistics
import time

import torch
from rich.console import Console
from rich.table import Table

from m2ugen_model.presets import init_model, mu_llama_7b, seven_b, tiny
from m2ugen_model.stages import parameter_counts, set_stage

console = Console()


def batch(cfg, b: int, t: int, device="cpu", dtype=torch.float32):
    ids = torch.randint(3, cfg.vocab_size, (b, t), device=device)
    if cfg.n_aud_tokens:
        ids[:, t // 2: t // 2 + cfg.n_aud_tokens] = torch.arange(cfg.vocab_size, cfg.full_vocab_size, device=device)
    feats = {f"{m}_feats": torch.randn(b, *cfg.feat_shape(m), device=device, dtype=dtype) for m in cfg.modalities}
    target = torch.randn(b, cfg.decoder_tokens, cfg.decoder_dim, device=device)
    return ids, feats, target


def timed(step, repeats: int) -> float:
    step()  # warm-up
    out = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def cpu_steps(repeats: int = 20) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(max(1, torch.get_num_threads()))
    cfg = tiny()
    b, t = 4, 64
    ids, feats, target = batch(cfg, b, t)
    hf = LlamaForCausalLM(LlamaConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.ffn_dim,
                                      num_hidden_layers=cfg.n_layers, num_attention_heads=cfg.n_heads,
                                      num_key_value_heads=cfg.n_kv_heads, attn_implementation="sdpa"))
    hf_ids = ids.clamp(max=cfg.vocab_size - 1)

    def hf_step():
        hf.zero_grad(set_to_none=True)
        hf(hf_ids, labels=hf_ids).loss.backward()

    base = timed(hf_step, repeats)
    table = Table(title=f"tiny preset, CPU fwd+bwd, batch {b}x{t}, {torch.get_num_threads()} threads (median of {repeats})")
    for col in ("model", "step ms", "ratio vs HF Llama full fine-tune"):
        table.add_column(col)
    table.add_row("HF LlamaForCausalLM (all params train)", f"{base * 1e3:.1f}", "1.00")
    model = init_model(cfg)
    for stage in (1, 2, 3):
        set_stage(model, stage)

        def step():
            model.zero_grad(set_to_none=True)
            model(ids, labels=ids, target_embeds=target, **feats)["loss"].backward()

        s = timed(step, repeats)
        table.add_row(f"M2UGen tiny stage {stage} (+3 adapters, projector)", f"{s * 1e3:.1f}", f"{s / base:.2f}")
    console.print(table)


def counts() -> None:
    table = Table(title="parameters (total / trainable per stage)")
    for col in ("shape", "total", "stage 1", "stage 2", "stage 3"):
        table.add_column(col)
    for name, cfg in (("tiny", tiny()), ("7b (MusicGen)", seven_b()), ("7b (AudioLDM2)", seven_b(decoder="audioldm2")),
                      ("MU-LLaMA 7b", mu_llama_7b())):
        model = init_model(cfg, device="meta", seed=None)
        row = [name, f"{parameter_counts(model)['total']:,}"]
        for stage in (1, 2, 3):
            set_stage(model, stage)
            row.append(f"{parameter_counts(model)['trainable']:,}")
        table.add_row(*row)
    console.print(table)


def gpu_step() -> None:
    cfg = seven_b()
    model = init_model(cfg, device="cuda", dtype=torch.bfloat16)
    set_stage(model, 3)
    model.train()
    table = Table(title=f"7B shape, bf16, stage 3, {torch.cuda.get_device_name()}")
    for col in ("batch", "grad ckpt", "step s", "tokens/s", "peak GiB"):
        table.add_column(col)
    for b, t, ckpt in ((1, 512, False), (2, 1024, True)):
        ids, feats, target = batch(cfg, b, t, "cuda", torch.bfloat16)
        model.llm.gradient_checkpointing = ckpt

        def step(ids=ids, feats=feats, target=target):
            model.zero_grad(set_to_none=True)
            model(ids, labels=ids, target_embeds=target, **feats)["loss"].backward()

        torch.cuda.reset_peak_memory_stats()
        s = timed(step, 3)
        table.add_row(f"{b}x{t}", str(ckpt), f"{s:.3f}", f"{b * t / s:,.0f}",
                      f"{torch.cuda.max_memory_allocated() / 2**30:.1f}")
    console.print(table)


if __name__ == "__main__":
    cpu_steps()
    counts()
    if torch.cuda.is_available():
        gpu_step()
    else:
        console.print("no CUDA device: GPU figures skipped")
