"""Which parameters each training stage updates.

Parameters fall into named groups (by name, see GROUPS). The default per stage follows the paper:

- stage 1 (encoder side, X-to-text captions): "understanding" = the adapters, the prefix queries and
  the per-head adapter gates;
- stage 2 (decoder side, text-to-music alignment): "generation" = the output projector and the [AUD]
  embedding and output rows;
- stage 3 (instruction tuning): both, plus "llm_peft" = LoRA, bias and norm parameters of the LLM.

The released code differs: every stage also trains the LLM's norms, biases and LoRA and the whole
token-embedding table, stage 1 also the projector, stage 3 not the adapters; and its name filters miss
the `gate` parameters, so zero-initialised gates would never open. RELEASED_STAGE_GROUPS mirrors it
(plus the gates); pass it (or any mapping) as `groups`, or set `config.stage_groups`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import nn

GROUPS: dict[str, Callable[[str], bool]] = {
    "understanding": lambda n: n.startswith(("adapters.", "prefix_query.")) or n.endswith(".attention.gate"),
    "generation": lambda n: n.startswith(("projector.", "llm.aud_embeddings.", "llm.aud_output.")),
    "llm_peft": lambda n: n.startswith("llm.") and (
        ".lora_" in n or n.endswith(".bias") or "norm." in n
    ),
    "embeddings": lambda n: n.startswith(("llm.tok_embeddings.", "llm.aud_embeddings.")),
}

DEFAULT_STAGE_GROUPS: dict[int, tuple[str, ...]] = {
    1: ("understanding",),
    2: ("generation",),
    3: ("understanding", "generation", "llm_peft"),
}

RELEASED_STAGE_GROUPS: dict[int, tuple[str, ...]] = {
    1: ("understanding", "generation", "llm_peft", "embeddings"),
    2: ("generation", "llm_peft", "embeddings", "prefix"),
    3: ("llm_peft", "embeddings", "prefix"),
}
GROUPS["prefix"] = lambda n: n.startswith("prefix_query.")


def stage_groups(model: nn.Module, stage: int,
                 groups: Mapping[int, tuple[str, ...]] | None = None) -> tuple[str, ...]:
    table = groups or getattr(getattr(model, "cfg", None), "stage_groups", None) or DEFAULT_STAGE_GROUPS
    if stage not in table:
        raise ValueError(f"unknown stage {stage}; known: {sorted(table)}")
    unknown = set(table[stage]) - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown parameter groups {sorted(unknown)}; known: {sorted(GROUPS)}")
    return tuple(table[stage])


def trainable_parameters(model: nn.Module, stage: int,
                         groups: Mapping[int, tuple[str, ...]] | None = None) -> dict[str, nn.Parameter]:
    """Name -> parameter for the parameters that `stage` trains."""
    selected = [GROUPS[g] for g in stage_groups(model, stage, groups)]
    return {n: p for n, p in model.named_parameters() if any(f(n) for f in selected)}


def set_stage(model: nn.Module, stage: int,
              groups: Mapping[int, tuple[str, ...]] | None = None) -> list[str]:
    """Freeze everything, then unfreeze the stage's parameters; returns their names."""
    train = trainable_parameters(model, stage, groups)
    for n, p in model.named_parameters():
        p.requires_grad_(n in train)
    return sorted(train)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable}
