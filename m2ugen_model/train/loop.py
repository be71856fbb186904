"""The training loop: one function from a config and a model bundle to trained weights and checkpoints.

Runs unchanged on one CPU process, one GPU, or many processes under torchrun (DDP, or FSDP2 with
``fsdp=True``). Everything that decides the numbers (data order, RNGs, optimizer state) is either derived
from the config or saved in the checkpoint, which is what makes ``resume`` continue exactly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from m2ugen_model.train.bundle import Bundle
from m2ugen_model.train.checkpointing import (
    carried_weights,
    latest_checkpoint,
    load_checkpoint,
    load_weights,
    read_weights,
    save_checkpoint,
)
from m2ugen_model.train.collate import MODALITIES
from m2ugen_model.train.config import TrainConfig
from m2ugen_model.train.data import (
    Position,
    ShardStream,
    SkipTally,
    Source,
    StreamSpec,
    discover_shards,
    make_loader,
    stage_mixture,
)
from m2ugen_model.train.errors import TrainError
from m2ugen_model.train.stopping import StopRequest

log = logging.getLogger("m2ugen.train")


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """torchrun sets RANK/WORLD_SIZE/LOCAL_RANK; NCCL on GPUs, gloo on CPUs. Plain ``python`` = one process."""
    cuda = torch.cuda.is_available()
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if cuda:
        torch.cuda.set_device(local)
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Dist(rank, world, local, device)


def lr_lambda(cfg: TrainConfig):
    """Linear warmup to ``lr``, then cosine down to ``min_lr_ratio * lr`` at ``max_steps``."""

    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / (cfg.warmup + 1)
        span = max(1, cfg.max_steps - cfg.warmup)
        progress = min(1.0, (step - cfg.warmup) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def make_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.AdamW:
    """No weight decay on 1-D tensors (norms, biases, gates), as in LLaMA-Adapter/M2UGen."""
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.lr, betas=cfg.betas)


def build_sources(cfg: TrainConfig, shards: list[str] | None = None) -> list[Source]:
    found = discover_shards(shards if shards is not None else cfg.shards, cfg.extra_shards)
    extra_names = tuple(e.split("=", 1)[0] for e in cfg.extra_shards if "=" in e.split("://", 1)[0])
    return stage_mixture(cfg.stage, found, cfg.mixture or None, extra_names)


def stream_spec(cfg: TrainConfig, bundle: Bundle, d: Dist, **over: Any) -> StreamSpec:
    media = bundle.media.__class__(**{**bundle.media.__dict__, "audio_seconds": cfg.audio_seconds,
                                      "video_frames": cfg.video_frames})
    kw = dict(stage=cfg.stage, batch_size=cfg.batch_size, max_len=cfg.max_len, truncate=cfg.truncate, media=media,
              seed=cfg.seed, rank=d.rank, world=d.world, num_workers=cfg.num_workers,
              shuffle_buffer=cfg.shuffle_buffer, resample=cfg.resample, pool_batches=cfg.bucket_batches)
    return StreamSpec(**{**kw, **over})


def model_inputs(batch: dict[str, Any], bundle: Bundle, device: torch.device) -> dict[str, Any]:
    """Device tensors for ``M2UGen.forward``: encoder features per modality (precomputed or encoded now by the
    frozen encoder) scattered into full-batch tensors; rows without the modality stay zero."""
    n = batch["input_ids"].shape[0]
    out: dict[str, Any] = {k: batch[k].to(device, non_blocking=True) for k in ("input_ids", "attention_mask", "labels")}
    for m in MODALITIES:
        parts = []
        if f"{m}_feats" in batch:
            rows, feats = batch[f"{m}_feats"]
            parts.append((rows, feats.to(device)))
        if f"{m}_media" in batch:
            rows, media = batch[f"{m}_media"]
            if bundle.encode is None:
                raise TrainError(f"{m} samples without precomputed features and no {m} encoder loaded")
            with torch.no_grad():
                parts.append((rows, bundle.encode(m, media.to(device))))
        _scatter(out, f"{m}_feats", parts, n, f"{m}_mask")
    parts = []
    if "target_embeds" in batch:
        rows, emb = batch["target_embeds"]
        parts.append((rows, emb.to(device)))
    if "target_captions" in batch and bundle.encode_targets is not None:
        rows, captions = batch["target_captions"]
        with torch.no_grad():
            parts.append((rows, bundle.encode_targets(captions).to(device)))
    _scatter(out, "target_embeds", parts, n, "target_mask")
    return {k: v for k, v in out.items() if k in bundle.forward_kwargs}


def _scatter(out: dict[str, Any], name: str, parts: list[tuple[list[int], torch.Tensor]], n: int, mask_name: str) -> None:
    if not parts:
        return
    ref = parts[0][1]
    full = torch.zeros((n, *ref.shape[1:]), dtype=ref.dtype, device=ref.device)
    mask = torch.zeros(n, dtype=torch.bool, device=ref.device)
    for rows, t in parts:
        full[rows] = t.to(ref.dtype)
        mask[rows] = True
    out[name], out[mask_name] = full, mask


@dataclass
class TrainResult:
    step: int
    losses: list[float]
    ce: list[float]
    mse: list[float]
    skips: dict[str, int]
    checkpoint: Path | None
    eval_losses: list[tuple[int, float]] = field(default_factory=list)
    stopped_by: str | None = None  # the signal that ended the run before max_steps


class MetricLog:
    """JSONL metrics on rank 0 plus the optional TensorBoard / W&B writer (imported only when chosen)."""

    def __init__(self, cfg: TrainConfig, d: Dist, start_step: int = 0) -> None:
        self.path = Path(cfg.out) / "logs"
        self.path.mkdir(parents=True, exist_ok=True)
        self.main = d.is_main
        # sample keys are logged under the step they are for (0-based), metrics after it (1-based)
        self.samples = _open_log(self.path / f"samples_rank{d.rank}.jsonl", start_step)
        self.metrics = _open_log(self.path / "metrics.jsonl", start_step + 1) if self.main else None
        self.writer: Any = None
        if self.main and cfg.logger == "tensorboard":
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise TrainError("--logger tensorboard needs the tensorboard package (pip install tensorboard)") from exc
            self.writer = SummaryWriter(str(self.path / "tensorboard"))
        elif self.main and cfg.logger == "wandb":
            try:
                import wandb
            except ImportError as exc:
                raise TrainError("--logger wandb needs the wandb package (pip install wandb)") from exc
            self.writer = wandb.init(project="m2ugen", dir=str(self.path), config=cfg.model_dump())

    def keys(self, step: int, keys: list[str]) -> None:
        self.samples.write(json.dumps({"step": step, "keys": keys}) + "\n")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.main:
            return
        self.metrics.write(json.dumps({"step": step, **values}) + "\n")
        self.metrics.flush()
        if self.writer is None:
            return
        if hasattr(self.writer, "add_scalar"):
            for k, v in values.items():
                self.writer.add_scalar(k, v, step)
        else:
            self.writer.log(values, step=step)

    def close(self) -> None:
        self.samples.close()
        if self.metrics:
            self.metrics.close()
        if self.writer is not None:
            (self.writer.close if hasattr(self.writer, "close") else self.writer.finish)()


def _open_log(path: Path, first_replayed: int):
    """Open a JSONL log for appending; lines of steps from ``first_replayed`` on are dropped first.

    Those steps were logged by a run that was stopped or killed after its last checkpoint; the resumed run
    replays them, and each step must appear once. A fresh run (0) starts an empty log.
    """
    if path.is_file():
        kept = [line for line in path.read_text().splitlines(keepends=True)
                if (step := _logged_step(line)) is not None and step < first_replayed]
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, path)
    return open(path, "a")


def _logged_step(line: str) -> int | None:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return None  # a line cut short by a kill


def wrap(model: torch.nn.Module, bundle: Bundle, cfg: TrainConfig, d: Dist) -> torch.nn.Module:
    if d.world > 1 and cfg.fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if d.device.type == "cuda" else MixedPrecisionPolicy()
        for block in bundle.blocks():
            fully_shard(block, mp_policy=mp)
        model = fully_shard(model, mp_policy=mp)
    elif d.world > 1:
        # Batches differ in modality, so some adapters get no gradient on some steps.
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[d.local_rank] if d.device.type == "cuda" else None, find_unused_parameters=True)
    if cfg.compile:
        model = torch.compile(model)
    return model


def _sync_context(model: torch.nn.Module, last: bool, cfg: TrainConfig):
    """Skip the gradient all-reduce on all but the last micro-batch of an accumulation."""
    if last:
        return contextlib.nullcontext()
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.no_sync()
    if cfg.fsdp and hasattr(model, "set_requires_gradient_sync"):
        model.set_requires_gradient_sync(False)
    return contextlib.nullcontext()


def _mean(values: list[float], d: Dist, device: torch.device) -> list[float]:
    t = torch.tensor(values, dtype=torch.float64, device=device)
    if d.world > 1:
        dist.all_reduce(t)
        t /= d.world
    return t.tolist()


def evaluate(model: torch.nn.Module, bundle: Bundle, cfg: TrainConfig, d: Dist, sources: list[Source]) -> float:
    """Mean loss over the first ``eval_batches`` batches of a fixed (seeded, worker-less) held-out stream."""
    spec = stream_spec(cfg, bundle, d, num_workers=0, seed=cfg.seed + 1, resample=True)
    model.eval()
    total = []
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        it = iter(ShardStream(sources, spec, bundle.tokenizer))
        for _ in range(cfg.eval_batches):
            with _autocast(d):
                total.append(float(model(**model_inputs(next(it), bundle, d.device))["loss"]))
    model.train()
    return _mean([sum(total) / len(total)], d, d.device)[0]


def _autocast(d: Dist):
    return torch.autocast("cuda", dtype=torch.bfloat16) if d.device.type == "cuda" else contextlib.nullcontext()


def _progress(cfg: TrainConfig, d: Dist, start: int):
    if not (cfg.progress and d.is_main):
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                   TimeRemainingColumn(), transient=False)
    bar.start()
    bar.add_task("train", total=cfg.max_steps, completed=start, info="")
    return bar


def schedule(optimizer: torch.optim.Optimizer, cfg: TrainConfig, step: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """The learning-rate schedule (``lr_lambda``) positioned at ``step``: the optimizer's rates are set for the
    step about to run. A resumed run gets its schedule from its own config, not the checkpoint (``max_steps``
    may be raised to extend a run); with the config unchanged the rates are the ones the run had."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg), last_epoch=step - 1)


@dataclass
class _Run:
    """What a training run carries from step to step."""

    model: torch.nn.Module  # wrapped (DDP/FSDP/compiled) as configured
    params: list[torch.nn.Parameter]  # the trained ones
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    carried: dict[str, torch.Tensor]  # frozen tensors inherited from an earlier stage, saved with each checkpoint
    step: int = 0
    position: Position = field(default_factory=Position)


def _start(cfg: TrainConfig, bundle: Bundle, d: Dist) -> _Run:
    """The model set for the stage (gradient checkpointing, ``init_from`` weights), wrapped, with its optimizer
    and schedule; from the latest checkpoint under ``cfg.out`` when resuming."""
    bundle.set_stage(cfg.stage)
    if cfg.grad_checkpointing:
        if bundle.enable_grad_checkpointing is None:
            raise TrainError("this model has no gradient checkpointing switch")
        bundle.enable_grad_checkpointing()
    model = bundle.model.to(d.device)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}  # names before any DDP/FSDP wrapper
    carried: dict[str, torch.Tensor] = {}
    if cfg.init_from:
        loaded = load_weights(model, Path(cfg.init_from))
        carried = carried_weights(loaded, trained)
        log.info("initialised %d tensors from %s (%d frozen here, carried into this run's checkpoints)",
                 len(loaded), cfg.init_from, len(carried))
    model = wrap(model, bundle, cfg, d)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg)
    scheduler = schedule(optimizer, cfg)  # also gives each param group its initial_lr, which a checkpoint holds
    if not cfg.resume:
        return _Run(model, params, optimizer, scheduler, carried)
    ckpt = latest_checkpoint(Path(cfg.out))
    if ckpt is None:
        raise TrainError(f"--resume: no checkpoint under {cfg.out}/checkpoints")
    step, state = load_checkpoint(ckpt, model, optimizer)
    carried = carried or carried_weights(read_weights(ckpt), trained)  # resumed without --init-from
    log.info("resumed from %s at step %d", ckpt, step)
    return _Run(model, params, optimizer, schedule(optimizer, cfg, step), carried, step,
                Position.from_state(state["position"]))


@dataclass
class _StepStats:
    """One optimizer step's numbers: mean losses over its micro-batches, tokens and samples seen."""

    losses: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])  # loss, ce_loss, mse_loss
    tokens: int = 0
    samples: int = 0


def _accumulate(run: _Run, batches: Any, bundle: Bundle, cfg: TrainConfig, d: Dist, tally: SkipTally,
                logger: MetricLog) -> _StepStats:
    """Forward and backward over ``grad_accum`` micro-batches (gradients synchronised on the last one only),
    each batch's position and sample keys recorded so a resume replays exactly."""
    stats = _StepStats()
    for micro in range(cfg.grad_accum):
        batch = next(batches)
        run.position.advance(batch["meta"])
        tally.update(batch)
        logger.keys(run.step, batch["keys"])
        inputs = model_inputs(batch, bundle, d.device)
        with _sync_context(run.model, micro == cfg.grad_accum - 1, cfg), _autocast(d):
            out = run.model(**inputs)
            (out["loss"] / cfg.grad_accum).backward()
        for i, k in enumerate(("loss", "ce_loss", "mse_loss")):
            v = out.get(k)
            stats.losses[i] += float(v.detach()) / cfg.grad_accum if v is not None else 0.0
        stats.tokens += int(batch["attention_mask"].sum())
        stats.samples += batch["input_ids"].shape[0]
    if cfg.fsdp and hasattr(run.model, "set_requires_gradient_sync"):
        run.model.set_requires_gradient_sync(True)
    return stats


def _optimizer_step(run: _Run, cfg: TrainConfig) -> torch.Tensor | None:
    """Clip, step the optimizer and the schedule, clear the gradients; returns the gradient norm (if clipped)."""
    grad_norm = torch.nn.utils.clip_grad_norm_(run.params, cfg.clip_grad) if cfg.clip_grad else None
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    run.step += 1
    return grad_norm


def _log_step(run: _Run, stats: _StepStats, means: list[float], grad_norm: torch.Tensor | None, seconds: float,
              d: Dist, logger: MetricLog, bar: Any) -> None:
    """The step's metrics to the logs (and the progress bar)."""
    loss, ce, mse = means
    values = {"loss": loss, "ce_loss": ce, "mse_loss": mse, "lr": run.scheduler.get_last_lr()[0],
              "tokens_per_s": stats.tokens * d.world / seconds, "samples_per_s": stats.samples * d.world / seconds,
              "grad_norm": float(grad_norm) if grad_norm is not None else 0.0}
    if d.device.type == "cuda":
        values["gpu_mem_gib"] = torch.cuda.max_memory_allocated(d.device) / 2**30
    logger.scalars(run.step, values)
    if bar is not None:
        bar.update(bar.task_ids[0], completed=run.step,
                   info=f"loss {loss:.4f} ce {ce:.4f} mse {mse:.4f} lr {values['lr']:.2e}")


def _checkpoint(run: _Run, cfg: TrainConfig) -> Path:
    return save_checkpoint(Path(cfg.out), run.step, run.model, run.optimizer, run.scheduler,
                           {"position": run.position.state_dict()}, cfg.model_dump(mode="json"), run.carried)


def train(cfg: TrainConfig, bundle: Bundle, d: Dist | None = None) -> TrainResult:
    """Train ``cfg.max_steps`` optimizer steps (resuming first if asked); returns per-step losses."""
    d = d or init_distributed()
    torch.manual_seed(cfg.seed)
    sources = build_sources(cfg)
    eval_sources = build_sources(cfg, cfg.eval_shards) if cfg.eval_shards and cfg.eval_every else None
    run = _start(cfg, bundle, d)
    stream = ShardStream(sources, stream_spec(cfg, bundle, d), bundle.tokenizer, _aud_ids(bundle), run.position)
    with torch.random.fork_rng(devices=[]):  # creating workers draws from torch's RNG; keep the run's sequence
        batches = iter(make_loader(stream))
    logger, tally, bar = MetricLog(cfg, d, run.step), SkipTally(), _progress(cfg, d, run.step)
    result = TrainResult(run.step, [], [], [], {}, None)
    stop = StopRequest().install()
    try:
        run.model.train()
        while run.step < cfg.max_steps:
            t0 = time.perf_counter()
            stats = _accumulate(run, batches, bundle, cfg, d, tally, logger)
            grad_norm = _optimizer_step(run, cfg)
            seconds = time.perf_counter() - t0
            means = _mean(stats.losses, d, d.device)
            result.losses.append(means[0]), result.ce.append(means[1]), result.mse.append(means[2])
            if run.step % cfg.log_every == 0 or run.step == cfg.max_steps:
                _log_step(run, stats, means, grad_norm, seconds, d, logger, bar)
            if eval_sources and run.step % cfg.eval_every == 0:
                ev = evaluate(run.model, bundle, cfg, d, eval_sources)
                result.eval_losses.append((run.step, ev))
                logger.scalars(run.step, {"eval_loss": ev})
            stopping = stop.requested(d.device) and run.step < cfg.max_steps  # collective: every rank, every step
            if (cfg.save_every and run.step % cfg.save_every == 0) or run.step == cfg.max_steps or stopping:
                result.checkpoint = _checkpoint(run, cfg)
            if stopping:
                result.stopped_by = stop.name
                if d.is_main:
                    log.warning("stopped by %s after step %d of %d; checkpoint %s; to continue, run the same "
                                "command with --resume", stop.name, run.step, cfg.max_steps, result.checkpoint)
                break
    finally:
        stop.uninstall()
        if bar is not None:
            bar.stop()
        logger.close()
    result.step, result.skips = run.step, tally.total()
    if any(result.skips.values()) and d.is_main:
        log.warning("skipped inputs: %s", result.skips)
    return result


def _aud_ids(bundle: Bundle) -> list[int] | None:
    from m2ugen_model.train.collate import aud_token_ids

    try:
        return aud_token_ids(bundle.tokenizer)
    except ValueError:
        return None
