"""The 7B-shaped model (random weights, bf16) for one stage-3 training step on a GPU."""

from __future__ import annotations

import time

import pytest
import torch

from m2ugen_model.presets import init_model, seven_b
from m2ugen_model.stages import parameter_counts, set_stage

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_7b_bf16_forward_backward_step():
    cfg = seven_b()
    model = init_model(cfg, device="cuda", dtype=torch.bfloat16)
    set_stage(model, 3)
    model.llm.gradient_checkpointing = True
    model.train()
    b, t = 2, 512
    ids = torch.randint(3, cfg.vocab_size, (b, t), device="cuda")
    ids[:, 100:108] = torch.arange(cfg.vocab_size, cfg.full_vocab_size, device="cuda")
    feats = {f"{m}_feats": torch.randn(b, *cfg.feat_shape(m), device="cuda", dtype=torch.bfloat16)
             for m in cfg.modalities}
    target = torch.randn(b, cfg.decoder_tokens, cfg.decoder_dim, device="cuda")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    times = []
    torch.cuda.reset_peak_memory_stats()
    for _ in range(3):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = model(ids, labels=ids, target_embeds=target, **feats)
        out["loss"].backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    assert torch.isfinite(out["loss"])
    counts = parameter_counts(model)
    print(f"\n7B bf16 stage 3, batch {b}x{t}, grad checkpointing: step {min(times[1:]):.3f} s, "
          f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB, params {counts}")
