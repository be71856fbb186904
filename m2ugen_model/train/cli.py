"""``m2ugen-train``: train one M2UGen stage on the pipeline's WebDataset shards (one process or torchrun).

    m2ugen-train --shards warehouse/      # a CPU smoke run of the tiny preset (train/first_run.py)
    m2ugen-train --shards warehouse/ --stage 1 --preset tiny --weights-dir /tmp/tiny --max-steps 20
    torchrun --nproc_per_node 8 -m m2ugen_model.train.cli --shards warehouse/ --stage 3 --preset 7b \\
        --llama-dir ... --mert-dir ... --vit-dir ... --vivit-dir ... --decoder-dir ... --fsdp

A config file (``--config run.yaml``) gives defaults; flags given on the command line win. Without
``--stage`` the stage is the first one the shards have data for.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from m2ugen_model.train.config import TrainConfig, given_settings, validate_config
from m2ugen_model.train import first_run
from m2ugen_model.train.errors import TrainError

app = typer.Typer(add_completion=False, help=__doc__)
console = Console(stderr=True)

Opt = typer.Option


@app.command()
def train_command(
    shards: Annotated[Optional[list[str]], Opt("--shards", help="warehouse dir, shards dir, or shard URLs/brace patterns")] = None,
    stage: Annotated[Optional[int], Opt(help="1: X-to-text, 2: text-to-music, 3: instructions")] = None,
    preset: Annotated[Optional[str], Opt(help="tiny or 7b")] = None,
    extra_shards: Annotated[Optional[list[str]], Opt("--extra-shards", help="NAME=URL extra instruction shards")] = None,
    mix: Annotated[Optional[list[str]], Opt("--mix", help="dataset weight, e.g. --mix muedit=2")] = None,
    eval_shards: Annotated[Optional[list[str]], Opt("--eval-shards", help="held-out shards for periodic eval")] = None,
    weights_dir: Annotated[Optional[str], Opt(help="tiny: where its weights are written/read; 7b: a preset dir")] = None,
    llama_dir: Annotated[Optional[str], Opt()] = None,
    mert_dir: Annotated[Optional[str], Opt()] = None,
    vit_dir: Annotated[Optional[str], Opt()] = None,
    vivit_dir: Annotated[Optional[str], Opt()] = None,
    decoder_dir: Annotated[Optional[str], Opt()] = None,
    max_steps: Annotated[Optional[int], Opt()] = None,
    batch_size: Annotated[Optional[int], Opt()] = None,
    grad_accum: Annotated[Optional[int], Opt()] = None,
    lr: Annotated[Optional[float], Opt()] = None,
    warmup: Annotated[Optional[int], Opt()] = None,
    max_len: Annotated[Optional[int], Opt(help="context length; longer texts are skipped unless --truncate")] = None,
    truncate: Annotated[Optional[bool], Opt("--truncate/--skip-long")] = None,
    num_workers: Annotated[Optional[int], Opt()] = None,
    seed: Annotated[Optional[int], Opt()] = None,
    eval_every: Annotated[Optional[int], Opt()] = None,
    save_every: Annotated[Optional[int], Opt()] = None,
    out: Annotated[Optional[str], Opt()] = None,
    resume: Annotated[Optional[bool], Opt("--resume", help="continue from OUT/checkpoints/latest")] = None,
    init_from: Annotated[Optional[str], Opt(help="previous stage's checkpoint dir (weights only)")] = None,
    config: Annotated[Optional[Path], Opt("--config", help="YAML/JSON/TOML file of these settings")] = None,
    compile: Annotated[Optional[bool], Opt("--compile", help="torch.compile the model")] = None,
    grad_checkpointing: Annotated[Optional[bool], Opt("--grad-checkpointing")] = None,
    fsdp: Annotated[Optional[bool], Opt("--fsdp", help="FSDP2 instead of DDP under torchrun")] = None,
    resample: Annotated[Optional[bool], Opt("--resample/--epochs")] = None,
    logger: Annotated[Optional[str], Opt(help="none, tensorboard or wandb")] = None,
    progress: Annotated[Optional[bool], Opt("--progress/--no-progress")] = None,
    dry_run: Annotated[bool, Opt("--dry-run", help="print mixture, parameter counts, first batch; no training")] = False,
    check: Annotated[bool, Opt("--check", help="check the weights, checkpoints and libraries this run loads (no GPU "
                                               "needed, seconds), print what is missing and exit")] = False,
) -> None:
    """Train one stage of M2UGen on WebDataset shards."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        mixture = dict(_weight(m) for m in mix) if mix else None
        overrides = dict(shards=shards, stage=stage, preset=preset, extra_shards=extra_shards, mixture=mixture,
                         eval_shards=eval_shards, weights_dir=weights_dir, llama_dir=llama_dir, mert_dir=mert_dir,
                         vit_dir=vit_dir, vivit_dir=vivit_dir, decoder_dir=decoder_dir, max_steps=max_steps,
                         batch_size=batch_size, grad_accum=grad_accum, lr=lr, warmup=warmup, max_len=max_len,
                         truncate=truncate, num_workers=num_workers, seed=seed, eval_every=eval_every,
                         save_every=save_every, out=out, resume=resume, init_from=init_from, compile=compile,
                         grad_checkpointing=grad_checkpointing, fsdp=fsdp, resample=resample, logger=logger,
                         progress=progress, dry_run=dry_run or None)
        from m2ugen_model.train.data import discover_shards

        values = given_settings(config, overrides)
        if not values.get("shards"):
            raise TrainError("no --shards given (a warehouse dir, its shards/ dir, or shard URLs)")
        given = validate_config(values)
        filled = first_run.fill_defaults(values, discover_shards(given.shards, given.extra_shards))
        cfg = validate_config({**values, **filled})
        if check:
            raise typer.Exit(print_preflight(cfg))
        run(cfg, filled)
    except TrainError as exc:
        console.print(f"[red]error:[/red] {_one_line(exc)}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _weight(entry: str) -> tuple[str, float]:
    name, _, w = entry.partition("=")
    try:
        return name, float(w)
    except ValueError:
        raise TrainError(f"--mix {entry!r}: expected NAME=WEIGHT") from None


def _one_line(exc: Exception) -> str:
    """DataLoader workers re-raise with the worker traceback in the message; keep the original last line."""
    lines = [ln for ln in str(exc).splitlines() if ln.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught"):
        return lines[-1].split(": ", 1)[-1]
    return lines[0] if lines else type(exc).__name__


def preflight_plan(cfg: TrainConfig):
    """What this run loads, for the preflight (preflight/plan.py): the LLaMA, the encoders its data needs (none
    for stage 2, which reads captions), the decoder for stages 2 and 3, the --init-from checkpoint."""
    from m2ugen_model.presets import PRESET_FILE
    from m2ugen_model.preflight.plan import plan_from_options

    datasets = [s.name for s in _sources(cfg)]
    needed = first_run.needed_weights(cfg.stage, datasets)
    paths = {k: getattr(cfg, k) for k in first_run.WEIGHT_DIRS if k in needed}
    weights_dir = cfg.weights_dir if cfg.weights_dir and (Path(cfg.weights_dir) / PRESET_FILE).is_file() else None
    init = None
    if cfg.init_from:
        init = str(Path(cfg.init_from) / "trainable.safetensors") if Path(cfg.init_from).is_dir() else cfg.init_from
    return plan_from_options(cfg.preset, weights_dir, paths, checkpoint=init, encoders=cfg.stage != 2,
                             decoder=cfg.stage > 1, device="auto")


def _sources(cfg: TrainConfig):
    from m2ugen_model.train.loop import build_sources

    return build_sources(cfg)


def print_preflight(cfg: TrainConfig) -> int:
    """``--check``: one table of what is missing; the exit code says whether anything blocks."""
    from m2ugen_model.preflight import plan as preflight
    from m2ugen_model.preflight.findings import exit_code, render

    plan = preflight_plan(cfg)
    findings, checked = (([plan], ["preset"]) if not isinstance(plan, preflight.Plan) else preflight.run(plan))
    render(findings, checked, Console())
    return exit_code(findings)


def check_before_loading(cfg: TrainConfig) -> None:
    """The same checks before a real run loads anything: the first blocking problem is one line."""
    from m2ugen_model.preflight import plan as preflight

    plan = preflight_plan(cfg)
    line = plan.line() if not isinstance(plan, preflight.Plan) else preflight.blocking_line(plan, "m2ugen-train ... --check")
    if line:
        raise TrainError(line)


def run(cfg: TrainConfig, filled: dict | None = None) -> None:
    """Train ``cfg``; ``filled`` are the settings chosen for the user (first_run.fill_defaults), reported."""
    from m2ugen_model.train.model_bridge import from_preset
    from m2ugen_model.train.loop import build_sources, init_distributed, train

    filled = filled or {}
    datasets = [s.name for s in build_sources(cfg)]  # fail on missing shards before spending time on the model
    missing = first_run.missing_weights(cfg, datasets)
    if missing:
        raise TrainError(f"--preset {cfg.preset} stage {cfg.stage} needs weight directories: {', '.join(missing)}")
    if cfg.preset != "tiny" or (cfg.weights_dir and Path(cfg.weights_dir).is_dir()):
        check_before_loading(cfg)  # a smoke run's tiny weights are written below, then used as they are
    d = init_distributed()
    if cfg.preset == "tiny" and cfg.weights_dir:
        written = first_run.ensure_tiny_weights(Path(cfg.weights_dir))
        if d.is_main and "weights_dir" in filled:
            console.print(f"tiny preset: random weights {'written to' if written else 'from'} {cfg.weights_dir} "
                          f"(${first_run.CACHE_ENV} moves the cache)", highlight=False)
    if d.is_main and filled:
        console.print(_what_was_chosen(cfg, filled, datasets, d.device), highlight=False)
    paths = {"llama_dir": cfg.llama_dir, "mert_dir": cfg.mert_dir, "vit_dir": cfg.vit_dir,
             "vivit_dir": cfg.vivit_dir, "decoder_dir": cfg.decoder_dir}
    bundle = from_preset(cfg.preset, cfg.weights_dir, paths, d.device, cfg.stage)
    if cfg.dry_run:
        dry_run(cfg, bundle, d)
        return
    result = train(cfg, bundle, d)
    if d.is_main:
        console.print(f"trained to step {result.step}; final loss {result.losses[-1]:.4f}" if result.losses
                      else f"nothing to do: already at step {result.step}")
        if result.skips:
            console.print(f"skipped inputs: {result.skips}")
        if result.checkpoint:
            console.print(f"checkpoint: {result.checkpoint}")
        if "weights_dir" in filled:
            console.print(f"that was a smoke run; a real stage-{cfg.stage} run on 8 GPUs:\n  "
                          f"{first_run.real_run_command(cfg)}", highlight=False, soft_wrap=True)


def _what_was_chosen(cfg: TrainConfig, filled: dict, datasets: list[str], device) -> str:
    kind = "smoke run of the tiny preset" if "weights_dir" in filled else f"{cfg.preset} run"
    chosen = ", ".join(f"{k}={v}" for k, v in filled.items() if k != "weights_dir")
    return (f"{kind}: stage {cfg.stage} on {', '.join(datasets)}, {cfg.max_steps} steps on {device}, "
            f"checkpoints in {cfg.out} (chosen for you: {chosen}; flags override)")


def dry_run(cfg: TrainConfig, bundle, d) -> None:
    """What a run would read and train, without training: mixture, parameter counts, first batch shapes."""
    from m2ugen_model.train.data import ShardStream, describe
    from m2ugen_model.train.loop import build_sources, model_inputs, stream_spec

    sources = build_sources(cfg)
    out = Console()
    table = Table(title=f"stage {cfg.stage} data mixture")
    for col in ("dataset", "share", "shards"):
        table.add_column(col)
    for name, share, n in describe(sources):
        table.add_row(name, f"{share:.2f}", str(n))
    out.print(table)
    params = bundle.set_stage(cfg.stage)
    total = sum(p.numel() for p in bundle.model.parameters())
    trainable = sum(p.numel() for p in params)
    out.print(f"parameters: total {total:,}  trainable {trainable:,} ({100 * trainable / total:.2f}%)")
    batch = next(iter(ShardStream(sources, stream_spec(cfg, bundle, d, num_workers=0), bundle.tokenizer)))
    shapes = Table(title="first batch")
    shapes.add_column("input")
    shapes.add_column("shape")
    shapes.add_column("dtype")
    for k, v in model_inputs(batch, bundle, d.device).items():
        shapes.add_row(k, str(tuple(v.shape)), str(v.dtype).replace("torch.", ""))
    out.print(shapes)
    out.print(f"keys: {', '.join(batch['keys'])}")


def main() -> None:
    app(prog_name="m2ugen-train")


if __name__ == "__main__":
    sys.exit(main())
