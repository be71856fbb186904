"""``m2ugen-data caption`` and ``m2ugen-data dialogue``: the text stages of the pipeline."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from m2ugen_data import defaults as D
from m2ugen_data.dialogues.backend import GenerationParams

app = typer.Typer(no_args_is_help=True)
_GENERATION = GenerationParams()  # the sampling defaults are GenerationParams' own


class CaptionBackend(str, Enum):
    grounded = "grounded"
    mu_llama = "mu-llama"


class DialogueBackend(str, Enum):
    template = "template"
    transformers = "transformers"
    openai = "openai"
    vllm = "vllm"


class PromptFormat(str, Enum):
    auto = "auto"
    chatml = "chatml"
    chat_template = "chat-template"


class Dataset(str, Enum):
    muedit = "muedit"
    muimage = "muimage"
    muvideo = "muvideo"


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
    )


def _summary(title: str, rows: dict[str, Any]) -> Table:
    t = Table(title=title)
    for k in rows:
        t.add_column(k, justify="right")
    t.add_row(*(f"{v:.1f}" if isinstance(v, float) else str(v) for v in rows.values()))
    return t


@app.command()
def caption(
    ctx: typer.Context,
    backend: Annotated[
        CaptionBackend, typer.Option(help="grounded (offline, from measurements) or mu-llama.")
    ] = CaptionBackend(D.CAPTION_BACKEND),
    pool: Annotated[
        str | None, typer.Option(help="Only clips of this pool (mucaps, muedit, muimage, muvideo).")
    ] = None,
    model_dir: Annotated[Path | None, typer.Option(help="mu-llama: local directory with the model weights.")] = None,
    device: Annotated[str, typer.Option(help="mu-llama: torch device.")] = D.TEXT_DEVICE,
    batch_size: Annotated[int, typer.Option(min=1)] = D.CAPTION_BATCH_SIZE,
) -> None:
    """Caption analysed clips (features + segments) into the captions manifest; already-captioned clips are skipped."""
    from m2ugen_data.audioset.ontology import load_ontology
    from m2ugen_data.captions import get_captioner
    from m2ugen_data.captions.inputs import caption_items
    from m2ugen_data.captions.writer import write_captions
    from m2ugen_data.cli_common import console, get_warehouse

    wh = get_warehouse(ctx)
    opts = {"model_dir": model_dir, "device": device} if backend is CaptionBackend.mu_llama else {}
    captioner = get_captioner(backend.value, **opts)
    items = caption_items(wh, load_ontology().name, pool)
    with _progress() as progress:
        task = progress.add_task(f"caption {backend.value}", total=len(items), info="")
        summary = write_captions(
            wh, captioner, items, batch_size=batch_size, on_progress=lambda n: progress.advance(task, n)
        )
    rate = summary.written / summary.seconds if summary.seconds else 0.0
    console.print(
        _summary(
            "captions",
            {
                "clips": summary.total,
                "cached": summary.cached,
                "written": summary.written,
                "failed": len(summary.failed),
                "seconds": summary.seconds,
                "captions/s": rate,
            },
        )
    )
    for item_id, err in list(summary.failed.items())[:20]:
        console.print(f"[red]failed[/] {item_id}: {err}", highlight=False)


def backend_options(
    backend: DialogueBackend,
    *,
    model: str | None,
    base_url: str,
    device: str,
    dtype: str,
    batch_size: int,
    concurrency: int,
    timeout: float,
    vllm_extras: bool,
    tensor_parallel_size: int,
    max_model_len: int,
    params: Any,
    prompt_format: str = "auto",
    tokenizer: str | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Constructor options of the chosen backend from the CLI flags (each backend takes only its own).

    ``model`` may be a preset name (``dialogues.presets``): in-process backends get its local snapshot; the
    OpenAI backend requests the preset name (``--served-model-name``) and, for the prompt template, uses the
    snapshot's tokenizer when one is on this machine."""
    from m2ugen_data.dialogues.presets import PRESETS, resolve_model
    from m2ugen_data.errors import M2UGenError

    if backend is DialogueBackend.template:
        return {}
    if not model:
        raise M2UGenError(f"the {backend.value} backend needs --model (a preset, a local directory or a served model name)")
    common = {"params": params, "prompt_format_name": prompt_format}
    if backend is DialogueBackend.openai:
        name, local = resolve_model(model, in_process=False)
        tokenizer = tokenizer or (str(local) if local else None)
        preset = PRESETS.get(model)
        if preset and preset.prompt == "chat-template" and tokenizer is None and prompt_format != "chatml":
            raise M2UGenError(
                f"{model} is prompted with its tokenizer's chat template, and no copy of its tokenizer is on this "
                f"machine: `hf download {preset.hub_id} --include 'tokenizer*'` or pass --tokenizer DIR"
            )
        return {
            "model": name,
            "base_url": base_url,
            "concurrency": concurrency,
            "timeout_s": timeout,
            "vllm_extras": vllm_extras,
            "tokenizer": tokenizer,
            **common,
        }
    path, _ = resolve_model(model, in_process=True)
    if backend is DialogueBackend.transformers:
        return {"model": path, "device": device, "dtype": dtype, "batch_size": batch_size,
                "trust_remote_code": trust_remote_code, **common}
    return {
        "model": path,
        "dtype": dtype,
        "tensor_parallel_size": tensor_parallel_size,
        "max_model_len": max_model_len,
        "trust_remote_code": trust_remote_code,
        **common,
    }


@app.command()
def dialogue(
    ctx: typer.Context,
    dataset: Annotated[Dataset, typer.Option(help="Which dataset's dialogues to write.")] = Dataset.muedit,
    backend: Annotated[
        DialogueBackend, typer.Option(help="template (offline) or an LLM backend.")
    ] = DialogueBackend(D.DIALOGUE_BACKEND),
    model: Annotated[
        str | None,
        typer.Option(help="A preset (mpt-7b-chat, llama-3.1-8b-instruct, qwen2.5-7b-instruct), a model directory "
                     "(transformers, vllm) or a served model name (openai)."),
    ] = None,
    base_url: Annotated[
        str, typer.Option(help="openai: server base URL; key from $M2UGEN_OPENAI_API_KEY or $OPENAI_API_KEY.")
    ] = D.OPENAI_BASE_URL,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per batch (two prompts each).")] = D.DIALOGUE_BATCH_SIZE,
    max_attempts: Annotated[
        int, typer.Option(min=1, help="Tries per turn before a sample is recorded as rejected.")
    ] = D.DIALOGUE_MAX_ATTEMPTS,
    retry_rejected: Annotated[bool, typer.Option(
        help="Ask again for samples rejected before under the same prompt (default: only backend failures).")] = False,
    caption_backend: Annotated[str, typer.Option(help="Which music captions to write from.")] = D.CAPTION_BACKEND,
    device: Annotated[str, typer.Option(help="transformers: torch device (auto: the GPU when there is one).")] = D.TEXT_DEVICE,
    dtype: Annotated[str, typer.Option(help="transformers/vllm: auto, bfloat16, float16, float32.")] = D.MODEL_DTYPE,
    prompt_format: Annotated[
        PromptFormat, typer.Option(help="auto: ChatML for MPT and template-less tokenizers, else the tokenizer's chat template.")
    ] = PromptFormat(D.DIALOGUE_PROMPT_FORMAT),
    tokenizer: Annotated[
        str | None, typer.Option(help="openai: a local copy of the served model's tokenizer, for its chat template.")
    ] = None,
    trust_remote_code: Annotated[
        bool, typer.Option(help="transformers/vllm: run the model repository's own Python code (only if you trust it).")
    ] = False,
    concurrency: Annotated[int, typer.Option(min=1, help="openai: requests in flight.")] = D.OPENAI_CONCURRENCY,
    timeout: Annotated[float, typer.Option(help="openai: seconds per request.")] = D.OPENAI_TIMEOUT_S,
    vllm_extras: Annotated[bool, typer.Option(
        help="openai: send vLLM's top_k and skip_special_tokens=false (dropped after one refusal by the server).")
    ] = D.OPENAI_VLLM_EXTRAS,
    tensor_parallel_size: Annotated[int, typer.Option(min=1, help="vllm: GPUs per model.")] = D.VLLM_TENSOR_PARALLEL,
    max_model_len: Annotated[int, typer.Option(help="vllm: context length.")] = D.VLLM_MAX_MODEL_LEN,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = _GENERATION.max_new_tokens,
    temperature: Annotated[float, typer.Option(min=0.0)] = _GENERATION.temperature,
    top_p: Annotated[float, typer.Option(min=0.0, max=1.0)] = _GENERATION.top_p,
    top_k: Annotated[int, typer.Option(min=0)] = _GENERATION.top_k,
    seed: Annotated[int, typer.Option(help="Base seed; each retry adds one.")] = D.TEXT_SEED,
) -> None:
    """Write validated two-turn dialogues into the dialogues manifest (MUEdit reads pairs + captions)."""
    from m2ugen_data.audioset.ontology import load_ontology
    from m2ugen_data.cli_common import console, get_warehouse
    from m2ugen_data.dialogues.backend import make_backend
    from m2ugen_data.dialogues.samples import load_samples
    from m2ugen_data.dialogues.writer import write_dialogues

    wh = get_warehouse(ctx)
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k)
    opts = backend_options(
        backend,
        model=model,
        base_url=base_url,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        concurrency=concurrency,
        timeout=timeout,
        vllm_extras=vllm_extras,
        tensor_parallel_size=tensor_parallel_size,
        max_model_len=max_model_len,
        params=params,
        prompt_format=prompt_format.value,
        tokenizer=tokenizer,
        trust_remote_code=trust_remote_code,
    )
    writer_backend = make_backend(backend.value, **opts)
    samples, skipped = load_samples(wh, dataset.value, load_ontology().name, caption_backend)
    with _progress() as progress:
        task = progress.add_task(f"{dataset.value} {backend.value}", total=len(samples), info="")

        def advance(n: int, s: Any) -> None:
            info = f"ok {s.accepted} rejected {s.rejected}" + (f" {s.tokens_per_s:.0f} tok/s" if s.tokens else "")
            progress.update(task, advance=n, info=info)

        summary = write_dialogues(
            wh,
            samples,
            writer_backend,
            batch_size=batch_size,
            max_attempts=max_attempts,
            base_seed=seed,
            on_progress=advance,
            retry_rejected=retry_rejected,
        )
    row: dict[str, Any] = {
        "samples": summary.total,
        "cached": summary.cached,
        "rejected before": summary.rejected_before,
        "accepted": summary.accepted,
        "rejected": summary.rejected,
        "skipped": sum(skipped.values()),
        "seconds": summary.seconds,
    }
    if summary.tokens:
        row |= {"tokens": summary.tokens, "tokens/s": summary.tokens_per_s}
    console.print(_summary(f"dialogues {dataset.value} ({backend.value})", row))
    reasons = summary.reasons + skipped
    if reasons:
        t = Table(title="rejected or skipped, by reason")
        t.add_column("reason")
        t.add_column("samples", justify="right")
        for reason, n in reasons.most_common():
            t.add_row(reason, str(n))
        console.print(t)
