"""Dialogue generation throughput: template writer, batched vs one-at-a-time transformers, optional server.

    .venv/bin/python bench/bench_dialogues.py                       # template + tiny transformers model
    .venv/bin/python bench/bench_dialogues.py --base-url http://gpu-host:8000/v1 --model mosaicml/mpt-7b-chat

The transformers comparison uses greedy decoding, so both modes generate exactly the same tokens (left
padding makes a prompt's continuation independent of its batch) and the ratio is a pure batching gain.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from m2ugen_data.facts.measured import MusicFacts
from m2ugen_data.dialogues.backend import Completion, GenerationParams, Request
from m2ugen_data.dialogues.prompts import SIDES, build_prompt
from m2ugen_data.dialogues.samples import DialogueSample, EditDiff
from m2ugen_data.dialogues.template import TemplateBackend
from m2ugen_data.dialogues.writer import write_dialogues
from m2ugen_data.warehouse import open_warehouse

INSTRUMENTS = ("piano", "acoustic guitar", "drum kit", "violin", "flute", "synthesizer", "bass guitar", "organ")
KEYS = ("C major", "A minor", "G major", "E minor", "F major", "D minor")


def samples(n: int) -> list[DialogueSample]:
    out = []
    for i in range(n):
        a, b = INSTRUMENTS[i % 8], INSTRUMENTS[(i * 3 + 1) % 8]
        src_bpm, tgt_bpm = 80.0 + i % 60, 80.0 + (i * 7) % 80
        diff = EditDiff(
            added_instruments=(b,),
            removed_instruments=(a,),
            tempo_src=src_bpm,
            tempo_tgt=tgt_bpm,
            key_src=KEYS[i % 6],
            key_tgt=KEYS[(i + i // 6) % 6],
        )
        facts = MusicFacts(
            f"t{i}", tempo_bpm=tgt_bpm, meter=4, key=KEYS[(i + i // 6) % 6], instruments=(b, INSTRUMENTS[(i + 5) % 8])
        )
        out.append(
            DialogueSample(
                "muedit", f"s{i:07d}__t{i:07d}", f"s{i}", f"t{i}", f"A {a} piece.", f"A {b} piece.", facts, diff
            )
        )
    return out


def bench_template(n: int) -> list[tuple[str, str, str]]:
    data = samples(n)
    with tempfile.TemporaryDirectory() as d:
        wh = open_warehouse(Path(d) / "wh")
        t0, c0 = time.perf_counter(), time.process_time()
        s = write_dialogues(wh, data, TemplateBackend(), batch_size=4096)
        full, full_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0 = time.perf_counter()
        cached = write_dialogues(wh, data, TemplateBackend(), batch_size=4096)
        rerun = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        unchecked = write_dialogues(open_warehouse(Path(d) / "wh2"), data, TemplateBackend(), batch_size=4096, policy=None)
        plain, plain_cpu = time.perf_counter() - t0, time.process_time() - c0
    assert s.accepted == n and cached.cached == n and unchecked.accepted == n, (s, cached)
    reqs = [Request(x, side, "", 0) for x in data for side in SIDES]
    t0 = time.perf_counter()
    TemplateBackend().complete(reqs)
    turns = time.perf_counter() - t0
    return [
        (
            "template writer (prompts, generate, validate, write Parquet)",
            f"{n / full:,.0f} dialogues/s",
            f"{n} samples in {full:.2f} s wall",
        ),
        ("template writer, per CPU second (one core)", f"{n / full_cpu:,.0f} dialogues/s", f"{full_cpu:.2f} s CPU"),
        ("template writer rerun (all cached)", f"{n / rerun:,.0f} dialogues/s", f"{rerun:.2f} s"),
        ("template writer without the claim check (--no-check-claims)", f"{n / plain:,.0f} dialogues/s", f"{plain:.2f} s wall, {n / plain_cpu:,.0f}/CPU s"),
        ("template turns only (no I/O)", f"{n / turns:,.0f} dialogues/s", f"{2 * n} turns in {turns:.2f} s"),
    ]


def _rate(backend, reqs: list[Request]) -> tuple[float, float, list[Completion]]:
    t0 = time.perf_counter()
    out = backend.complete(reqs)
    dt = time.perf_counter() - t0
    return len(reqs) / dt, sum(c.tokens for c in out) / dt, out


def bench_transformers(
    n: int, batch_size: int, max_new_tokens: int, hidden: int, layers: int
) -> list[tuple[str, str, str]]:
    from m2ugen_data.testing.tiny_lm import build_tiny_chat_lm
    from m2ugen_data.dialogues.transformers_backend import TransformersBackend

    with tempfile.TemporaryDirectory() as d:
        model = str(build_tiny_chat_lm(Path(d) / "tiny", hidden_size=hidden, num_layers=layers))
        params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
        reqs = [Request(s, side, build_prompt(s, side), 0) for s in samples(n // 2) for side in SIDES]
        batched = TransformersBackend(model, device="cpu", batch_size=batch_size, params=params)  # a CPU bench
        single = TransformersBackend(model, device="cpu", batch_size=1, params=params)
        batched.complete(reqs[:2])  # load + warm up both
        single.complete(reqs[:1])
        b_ps, b_ts, b_out = _rate(batched, reqs)
        s_ps, s_ts, s_out = _rate(single, reqs)
    same = [c.text for c in b_out] == [c.text for c in s_out]
    return [
        (f"transformers batched (batch {batch_size})", f"{b_ps:,.1f} prompts/s", f"{b_ts:,.0f} generated tokens/s"),
        ("transformers one prompt at a time", f"{s_ps:,.1f} prompts/s", f"{s_ts:,.0f} generated tokens/s"),
        (
            "batched / one-at-a-time",
            f"{b_ps / s_ps:.1f}x",
            f"same outputs: {same}; {len(reqs)} prompts, tiny LM h={hidden} L={layers}",
        ),
    ]


def bench_server(
    base_url: str, model: str, n: int, concurrency: int, max_new_tokens: int
) -> list[tuple[str, str, str]]:
    from m2ugen_data.dialogues.openai_backend import OpenAIBackend

    reqs = [Request(s, side, build_prompt(s, side), 0) for s in samples(n // 2) for side in SIDES]
    params = GenerationParams(max_new_tokens=max_new_tokens)
    rows = []
    for c in (1, concurrency):
        backend = OpenAIBackend(model, base_url=base_url, concurrency=c, params=params)
        ps, ts, out = _rate(backend, reqs)
        errors = sum(1 for x in out if x.error)
        rows.append((f"openai server, concurrency {c}", f"{ps:,.1f} prompts/s", f"{ts:,.0f} tokens/s, {errors} errors"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--template-n", type=int, default=20000)
    ap.add_argument("--lm-prompts", type=int, default=64)
    ap.add_argument("--lm-batch", type=int, default=32)
    ap.add_argument("--lm-new-tokens", type=int, default=32)
    ap.add_argument("--lm-hidden", type=int, default=64)
    ap.add_argument("--lm-layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: fair on a shared box)")
    ap.add_argument("--base-url", help="an OpenAI-compatible server (e.g. vllm serve on a GPU host)")
    ap.add_argument("--model", default="mosaicml/mpt-7b-chat", help="model name on that server")
    ap.add_argument("--server-prompts", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=64)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)

    rows = bench_template(args.template_n)
    rows += bench_transformers(args.lm_prompts, args.lm_batch, args.lm_new_tokens, args.lm_hidden, args.lm_layers)
    if args.base_url:
        rows += bench_server(args.base_url, args.model, args.server_prompts, args.concurrency, 96)

    from rich.console import Console
    from rich.table import Table

    t = Table(title="dialogue generation")
    for col in ("what", "rate", "detail"):
        t.add_column(col)
    for r in rows:
        t.add_row(*r)
    Console().print(t)


if __name__ == "__main__":
    main()
