"""``m2ugen-data caption`` and ``m2ugen-data dialogue``: the text stages of the pipeline."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from m2ugen_data import defaults as D
from m2ugen_data.cli.common import console, get_warehouse, print_summary, progress
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


class ClaimAction(str, Enum):
    reject = "reject"
    drop = "drop"


_CHECK_HELP = "Check every claim against the measurements (contradicted claims reject the text)."
_UNVERIFIABLE_HELP = "Also reject a text when more than this share of its claims cannot be checked (default: no limit)."


def _policy(check_claims: bool, max_unverifiable: float | None, action: str = "reject") -> Any:
    from m2ugen_data.factcheck.policy import FactPolicy

    return FactPolicy(caption_action=action, max_unverifiable=max_unverifiable) if check_claims else None


class PromptFormat(str, Enum):
    auto = "auto"
    chatml = "chatml"
    chat_template = "chat-template"


class Dataset(str, Enum):
    muedit = "muedit"
    muimage = "muimage"
    muvideo = "muvideo"


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
    check_claims: Annotated[bool, typer.Option(help=_CHECK_HELP)] = True,
    contradicted: Annotated[ClaimAction, typer.Option(
        help="reject: the caption is rejected; drop: the sentences with a contradicted claim are dropped.")] = ClaimAction.reject,
    max_unverifiable: Annotated[float | None, typer.Option(min=0.0, max=1.0, help=_UNVERIFIABLE_HELP)] = None,
) -> None:
    """Caption analysed clips (features + segments) into the captions manifest; already-captioned clips are skipped."""
    from m2ugen_data.audioset.ontology import load_ontology
    from m2ugen_data.captions.factory import make_captioner
    from m2ugen_data.captions.inputs import caption_items
    from m2ugen_data.captions.writer import write_captions

    wh = get_warehouse(ctx)
    opts = {"model_dir": model_dir, "device": device} if backend is CaptionBackend.mu_llama else {}
    captioner = make_captioner(backend.value, **opts)
    items = caption_items(wh, load_ontology().name, pool)
    with progress() as bar:
        task = bar.add_task(f"caption {backend.value}", total=len(items))
        summary = write_captions(
            wh, captioner, items, batch_size=batch_size, on_progress=lambda n: bar.advance(task, n),
            policy=_policy(check_claims, max_unverifiable, contradicted.value),
        )
    rate = summary.written / summary.seconds if summary.seconds else 0.0
    print_summary("captions", {
        "clips": summary.total, "cached": summary.cached, "written": summary.written,
        "rejected by claims": summary.rejected, "failed": len(summary.failed), "seconds": summary.seconds,
        "captions/s": rate,
    })
    for item_id, err in list(summary.failed.items())[:20]:
        console.print(f"[red]failed[/] {item_id}: {err}", highlight=False)


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
    check_claims: Annotated[bool, typer.Option(help=_CHECK_HELP)] = True,
    max_unverifiable: Annotated[float | None, typer.Option(min=0.0, max=1.0, help=_UNVERIFIABLE_HELP)] = None,
) -> None:
    """Write validated two-turn dialogues into the dialogues manifest (MUEdit reads pairs + captions)."""
    from m2ugen_data.audioset.ontology import load_ontology
    from m2ugen_data.dialogues.factory import backend_options, make_backend
    from m2ugen_data.dialogues.samples import load_samples
    from m2ugen_data.dialogues.writer import write_dialogues

    wh = get_warehouse(ctx)
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k)
    opts = backend_options(
        backend.value,
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
    with progress("info") as bar:
        task = bar.add_task(f"{dataset.value} {backend.value}", total=len(samples), info="")

        def advance(n: int, s: Any) -> None:
            info = f"ok {s.accepted} rejected {s.rejected}" + (f" {s.tokens_per_s:.0f} tok/s" if s.tokens else "")
            bar.update(task, advance=n, info=info)

        summary = write_dialogues(
            wh,
            samples,
            writer_backend,
            batch_size=batch_size,
            max_attempts=max_attempts,
            base_seed=seed,
            on_progress=advance,
            retry_rejected=retry_rejected,
            policy=_policy(check_claims, max_unverifiable),
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
    print_summary(f"dialogues {dataset.value} ({backend.value})", row)
    reasons = summary.reasons + skipped
    if reasons:
        t = Table(title="rejected or skipped, by reason")
        t.add_column("reason")
        t.add_column("samples", justify="right")
        for reason, n in reasons.most_common():
            t.add_row(reason, str(n))
        console.print(t)
