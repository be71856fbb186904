"""``m2ugen-data check``: will the pipeline's models load here? One table, in seconds, before a GPU job.

Reads config files, tokenizer files, weight-file headers and package metadata only (no model is loaded, no
GPU is touched), so it runs on a login node. Exit status 1 when anything is wrong, so a job script can stop
before it queues.
"""

from __future__ import annotations

from typing import Annotated, Optional

import pyarrow as pa
import typer
from rich.table import Table
from rich.text import Text

from m2ugen_data import defaults as D
from m2ugen_data.cli.common import OutputFormat, console, print_arrow


def check_cmd(
    dialogue_backend: Annotated[Optional[str], typer.Option(
        help="transformers | vllm | openai: check the dialogue LLM as that backend would load it.")] = None,
    dialogue_model: Annotated[Optional[str], typer.Option(
        help="A preset (mpt-7b-chat, llama-3.1-8b-instruct, qwen2.5-7b-instruct), a directory or a served name.")] = None,
    base_url: Annotated[str, typer.Option(help="openai: the server to ask for its models.")] = D.OPENAI_BASE_URL,
    trust_remote_code: Annotated[bool, typer.Option(help="The dialogue LLM may run its repository's code.")] = False,
    vllm_version: Annotated[Optional[str], typer.Option(
        help="vllm: judge this vLLM release (the GPU job's) instead of the one installed here.")] = None,
    blip: Annotated[Optional[str], typer.Option(
        help="BLIP directory, or 'default' for Salesforce/blip-image-captioning-base in the local HF cache.")] = None,
    video_captioner: Annotated[Optional[str], typer.Option(
        help="Video captioner directory, or 'default' for Neleac/timesformer-gpt2-video-captioning in the HF cache.")] = None,
    processor_dir: Annotated[Optional[str], typer.Option(help="Video captioner: its image processor's directory.")] = None,
    tokenizer_dir: Annotated[Optional[str], typer.Option(help="Video captioner: its tokenizer's directory.")] = None,
    mu_llama: Annotated[Optional[str], typer.Option(help="MU-LLaMA model directory (caption --backend mu-llama).")] = None,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f")] = OutputFormat.table,
) -> None:
    """Check the models a pipeline run would load (layout, architecture, tokenizer, whole weight files, vLLM
    support) and the installed library versions; print one table of what is missing, each with its fix."""
    from m2ugen_data.errors import M2UGenError
    from m2ugen_data import model_checks as P

    if (dialogue_backend is None) != (dialogue_model is None):
        raise M2UGenError("pass --dialogue-backend and --dialogue-model together")
    if dialogue_backend not in (None, "transformers", "vllm", "openai"):
        raise M2UGenError(f"--dialogue-backend {dialogue_backend!r}: use transformers, vllm or openai")
    checks = P.check_versions()
    if dialogue_backend and dialogue_model:  # vLLM itself is judged here, against the model's architecture
        checks += P.check_dialogue(dialogue_backend, dialogue_model, base_url, trust_remote_code, vllm_version)
    if blip:
        checks.append(P.check_blip(blip))
    if video_captioner:
        checks += P.check_video_captioner(video_captioner, processor_dir, tokenizer_dir)
    if mu_llama:
        checks.append(P.check_mu_llama(mu_llama))
    rows = []
    for c in checks:
        if c.ok:
            rows.append({"check": c.what, "status": "ok", "path": c.path, "problem": "", "fix": ""})
        for f in c.findings:
            rows.append({"check": c.what, "status": "PROBLEM", "path": f.path, "problem": f.problem, "fix": f.fix})
    problems = sum(not c.ok for c in checks)
    title = f"preflight: {problems} problem(s)" if problems else "preflight: ok"
    if fmt is OutputFormat.table:  # wrapped, not cut: the fix is the point of a row
        table = Table(title=title, show_lines=True)
        for col in ("check", "status", "path", "problem", "fix"):
            table.add_column(col, overflow="fold", style="bold red" if col == "status" and problems else None)
        for r in rows:
            table.add_row(*(Text(v) for v in r.values()))  # Text: a "[gpu]" in a fix is not markup
        console.print(table)
    else:
        print_arrow(pa.Table.from_pylist(rows), fmt, title=title)
    if problems:
        raise typer.Exit(1)
