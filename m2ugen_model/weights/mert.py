"""MERT-v1 loaded into transformers' own ``HubertModel``: no hub code is imported or executed.

m-a-p publishes MERT-v1-95M/330M as hub code (``config.json`` with ``model_type: "mert_model"`` and an
``auto_map`` to ``configuration_MERT.MERTConfig`` / ``modeling_MERT.MERTModel``). Read as published,
``MERTModel`` is HuBERT with three changes: a feature projection that can append CQT features
(``feature_extractor_cqt``), a deep-norm encoder (``deepnorm``, with ``attention_relax`` inside it), and
its own ``forward``. With ``feature_extractor_cqt`` and ``deepnorm`` both false (both released MERT-v1
checkpoints), the feature projection is HuBERT's (LayerNorm + Linear on the last conv channels), the
encoder is transformers' ``HubertEncoderStableLayerNorm`` / ``HubertEncoder`` chosen by
``do_stable_layer_norm`` as in HuBERT, and the forward is HuBERT's. The parameter names are HuBERT's, with
the positional convolution's weight norm stored the pre-parametrization way (``weight_g``/``weight_v``).

So the config maps field by field onto ``HubertConfig`` and the state dict loads into ``HubertModel`` with
two renames. Going through transformers' own class also means its forward collects ``hidden_states``
(the hub ``MERTModel.forward`` overrides the method that does so in transformers 5 and returns None).

One more difference, measured against a re-derivation of the published forward (tests/support/mert_reference.py):
for the pre-norm encoder (``do_stable_layer_norm: true``, MERT-v1-330M) transformers 5 returns the last
layer's output *before* the encoder's final LayerNorm as the last hidden state, where the transformers 4
encoder MERT was published and used with (MU-LLaMA, M2UGen) returned it *after*. ``hidden_states`` below
gives the published 25 states: the last one is ``last_hidden_state``, which is the normed output in both.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch

from .files import WeightFileError, hf_weight_files, read_tensors
from .files import read_config as read_json_config

# Config switches of the hub code that change the computation; HubertModel has no equivalent.
_NEEDS_HUB_CODE = {"feature_extractor_cqt": "CQT input features", "deepnorm": "the deep-norm encoder"}
_LEGACY_WEIGHT_NORM = {".weight_g": ".parametrizations.weight.original0",
                       ".weight_v": ".parametrizations.weight.original1"}
# Prefixes a MERT state dict can carry when saved from a wrapper (MERTModel.base_model_prefix and HuBERT's).
_PREFIXES = ("mert_model.", "hubert.")


class MertLayoutError(ValueError):
    """A MERT directory that cannot be run without its hub code, or is not MERT at all."""


def read_config(mert_dir: Path) -> dict[str, Any]:
    try:
        return read_json_config(mert_dir, "the m-a-p/MERT-v1-330M directory")
    except WeightFileError as exc:
        raise MertLayoutError(str(exc)) from None


def hubert_config(config: dict[str, Any], where: Path):
    """The ``HubertConfig`` that computes what MERT's published forward computes, or a one-line refusal."""
    from transformers import HubertConfig

    kind = config.get("model_type")
    if kind not in ("mert_model", "hubert"):
        raise MertLayoutError(f"{where}/config.json: model_type {kind!r} is not MERT (mert_model) or HuBERT; "
                              "give --mert-dir the m-a-p/MERT-v1-330M directory")
    needs = [what for key, what in _NEEDS_HUB_CODE.items() if config.get(key)]
    if needs:
        raise MertLayoutError(f"{where}: this MERT uses {' and '.join(needs)}, which only its hub code "
                              "(modeling_MERT.py) computes; m2ugen runs MERT configs that map onto transformers' "
                              "HubertModel (MERT-v1-95M/330M) and does not execute hub code")
    known = set(inspect.signature(HubertConfig.__init__).parameters) - {"self", "architectures", "transformers_version",
                                                                         "dtype", "return_dict", "output_hidden_states"}
    return HubertConfig(**{k: v for k, v in config.items() if k in known})


def rename(key: str) -> str:
    for prefix in _PREFIXES:
        if key.startswith(prefix):
            key = key[len(prefix):]
    for old, new in _LEGACY_WEIGHT_NORM.items():
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def check_state(expected: dict[str, tuple[int, ...]], got: dict[str, tuple[int, ...]], where: Path) -> None:
    """One line for the first way a state dict differs from the model: missing, unexpected or resized."""
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    wrong = sorted(k for k in set(expected) & set(got) if tuple(expected[k]) != tuple(got[k]))
    if missing:
        raise MertLayoutError(f"{where}: {len(missing)} MERT weights missing, e.g. {missing[0]} (a different model, "
                              "or config.json does not match the weights)")
    if unexpected:
        raise MertLayoutError(f"{where}: {len(unexpected)} weights MERT does not have, e.g. {unexpected[0]}")
    if wrong:
        raise MertLayoutError(f"{where}: {wrong[0]} is {tuple(got[wrong[0]])}, config.json implies "
                              f"{tuple(expected[wrong[0]])}")


def hidden_states(model, input_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """The embeddings and every layer's output as MERT's published forward returns them (module docstring)."""
    out = model(input_values, output_hidden_states=True)
    return tuple(out.hidden_states[:-1]) + (out.last_hidden_state,)


def load_mert_model(mert_dir: str | Path):
    """``HubertModel`` with MERT's weights, eval mode, frozen."""
    from transformers import HubertModel

    d = Path(mert_dir)
    cfg = hubert_config(read_config(d), d)
    with torch.device("meta"):
        model = HubertModel(cfg)
    try:
        state = {rename(k): v for k, v in read_tensors(hf_weight_files(d)).items()}
    except WeightFileError as exc:
        raise MertLayoutError(str(exc)) from None
    check_state({k: tuple(v.shape) for k, v in model.state_dict().items()},
                {k: tuple(v.shape) for k, v in state.items()}, d)
    model.load_state_dict(state, strict=True, assign=True)  # the meta tensors take the file's tensors
    return model.eval().requires_grad_(False)
