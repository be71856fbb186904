"""The MusiCNN tagger (Pons & Serra, 2019) in PyTorch, built from the variables of its TF1 checkpoint.

Why our own definition: musicnn's code needs TensorFlow 1 and numpy < 1.17. The network is small, so we
restate it here, layer for layer, and map the checkpoint's variables onto it (see ``state_dict_from_tf``).
The conversion is proved equal to the original TF graph (max |diff| <= 1e-4 on real audio) by
``tests/test_taggers.py`` against outputs recorded once with ``tools/musicnn_reference.py``.

Input: log-mel patches (batch, time, mel) as made by ``taggers.mel_patches``. Layers, in TF's order:

- front-end: batch norm of the whole input (one channel); five conv branches over the (time, mel) plane,
  each conv -> ReLU -> batch norm -> max over every mel band. Two "timbral" branches (7 x 0.4/0.7 of the
  mel bands, time padded by 3 each side, mel axis unpadded) and three "temporal" ones (128/64/32 x 1,
  TF "same" padding: (k-1)//2 frames before, the rest after). Their outputs are stacked as channels.
- mid-end: three 1-D convs over time (kernel 7, padding 3) -> ReLU -> batch norm, the 2nd and 3rd residual;
  the front-end features and the three mid-end outputs are stacked as channels ("dense" connections).
- back-end: max and mean over time, interleaved per channel as TF's flatten of (channel, [max, mean]) does,
  batch norm -> dense -> ReLU -> batch norm -> dense: one logit per tag.

Batch norm uses TF's epsilon 1e-3 and its stored moving statistics; dropout is off (inference only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

TF_BATCH_NORM_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default
N_TIMBRAL = 2
N_TEMPORAL = 3
N_MIDEND = 3


def _same_time_pad(kernel: int) -> tuple[int, int]:
    """TF 'same' padding for stride 1: the extra frame of an even kernel goes after, not before."""
    before = (kernel - 1) // 2
    return before, kernel - 1 - before


class FrozenBatchNorm(nn.Module):
    """Batch norm with fixed statistics: an inference-only network must not update them by accident."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("weight", torch.ones(channels))
        self.register_buffer("bias", torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=TF_BATCH_NORM_EPS
        )


class FrontEndBranch(nn.Module):
    """conv over (time, mel) -> ReLU -> batch norm -> max over all mel positions: (B, filters, T)."""

    def __init__(self, filters: int, time_kernel: int, mel_kernel: int) -> None:
        super().__init__()
        self.time_pad = _same_time_pad(time_kernel)
        self.conv = nn.Conv2d(1, filters, (time_kernel, mel_kernel))
        self.bn = FrozenBatchNorm(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (0, 0, *self.time_pad))
        return self.bn(F.relu(self.conv(x))).amax(dim=3)


class MidEndLayer(nn.Module):
    """1-D conv over time across all input channels (TF: a [7, channels] 2-D conv) -> ReLU -> batch norm."""

    def __init__(self, in_channels: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, filters, kernel, padding=kernel // 2)
        self.bn = FrozenBatchNorm(filters)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


@dataclass(frozen=True)
class MusiCNNConfig:
    """Layer sizes; read off the weights, so MTT/MSD (64 mid-end filters) and MSD_big (512) both fit."""

    timbral: tuple[tuple[int, int, int], ...]  # (filters, time kernel, mel kernel) per branch
    temporal: tuple[tuple[int, int, int], ...]
    midend_filters: int
    midend_kernel: int
    backend_units: int
    num_classes: int

    @property
    def frontend_channels(self) -> int:
        return sum(filters for filters, _, _ in self.timbral + self.temporal)

    @classmethod
    def from_state_dict(cls, state: Mapping[str, torch.Tensor]) -> MusiCNNConfig:
        """Sizes from tensor shapes (torch layout), so a cached state dict needs no separate config."""

        def branch(prefix: str) -> tuple[int, int, int]:
            out, _, time_k, mel_k = state[f"{prefix}.conv.weight"].shape
            return int(out), int(time_k), int(mel_k)

        mid_out, _, mid_k = state["midend.0.conv.weight"].shape
        units, _ = state["dense.weight"].shape
        classes, _ = state["out.weight"].shape
        return cls(
            timbral=tuple(branch(f"timbral.{i}") for i in range(N_TIMBRAL)),
            temporal=tuple(branch(f"temporal.{i}") for i in range(N_TEMPORAL)),
            midend_filters=int(mid_out),
            midend_kernel=int(mid_k),
            backend_units=int(units),
            num_classes=int(classes),
        )


class MusiCNN(nn.Module):
    """Log-mel patches (B, T, mel) -> tag logits (B, classes); apply a sigmoid for probabilities."""

    def __init__(self, config: MusiCNNConfig) -> None:
        super().__init__()
        self.config = config
        self.input_bn = FrozenBatchNorm(1)
        self.timbral = nn.ModuleList(FrontEndBranch(*spec) for spec in config.timbral)
        self.temporal = nn.ModuleList(FrontEndBranch(*spec) for spec in config.temporal)
        front, mid = config.frontend_channels, config.midend_filters
        self.midend = nn.ModuleList(
            MidEndLayer(front if i == 0 else mid, mid, config.midend_kernel) for i in range(N_MIDEND)
        )
        pooled = 2 * (front + N_MIDEND * mid)  # max and mean of every channel
        self.pool_bn = FrozenBatchNorm(pooled)
        self.dense = nn.Linear(pooled, config.backend_units)
        self.dense_bn = FrozenBatchNorm(config.backend_units)
        self.out = nn.Linear(config.backend_units, config.num_classes)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.input_bn(patches.unsqueeze(1))  # (B, 1, T, mel)
        front = torch.cat([branch(x) for branch in (*self.timbral, *self.temporal)], dim=1)  # (B, C, T)
        mid1 = self.midend[0](front)
        mid2 = self.midend[1](mid1) + mid1
        mid3 = self.midend[2](mid2) + mid2
        features = torch.cat([front, mid1, mid2, mid3], dim=1)
        pooled = torch.stack([features.amax(dim=2), features.mean(dim=2)], dim=2).flatten(1)
        hidden = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))
        return self.out(hidden)


# ---------------------------------------------------------------------------------------------- TF names

# (torch module, TF conv/dense layer, TF batch-norm layer) in the order musicnn's graph creates them: TF1
# auto-names layers per kind (conv2d, conv2d_1, ...), so the order is the only link between the two.
_CONV_LAYERS: tuple[tuple[str, str, str], ...] = (
    ("timbral.0", "conv2d", "batch_normalization_1"),
    ("timbral.1", "conv2d_1", "batch_normalization_2"),
    ("temporal.0", "conv2d_2", "batch_normalization_3"),
    ("temporal.1", "conv2d_3", "batch_normalization_4"),
    ("temporal.2", "conv2d_4", "batch_normalization_5"),
    ("midend.0", "conv2d_5", "batch_normalization_6"),
    ("midend.1", "conv2d_6", "batch_normalization_7"),
    ("midend.2", "conv2d_7", "batch_normalization_8"),
)
_BATCH_NORMS: tuple[tuple[str, str], ...] = (
    ("input_bn", "batch_normalization"),
    ("pool_bn", "batch_normalization_9"),
    ("dense_bn", "batch_normalization_10"),
    *((f"{module}.bn", bn) for module, _, bn in _CONV_LAYERS),
)
_DENSE_LAYERS: tuple[tuple[str, str], ...] = (("dense", "dense"), ("out", "dense_1"))
_BN_FIELDS = (
    ("weight", "gamma"),
    ("bias", "beta"),
    ("running_mean", "moving_mean"),
    ("running_var", "moving_variance"),
)


def tf_variable_names() -> list[str]:
    """The checkpoint variables the network uses (not the optimizer's slots or counters)."""
    names = [f"{bn}/{tf_field}" for _, bn in _BATCH_NORMS for _, tf_field in _BN_FIELDS]
    names += [f"{layer}/{part}" for _, layer, _ in _CONV_LAYERS for part in ("kernel", "bias")]
    names += [f"{layer}/{part}" for _, layer in _DENSE_LAYERS for part in ("kernel", "bias")]
    return names


def _conv_weight(module: str, kernel: np.ndarray) -> np.ndarray:
    """TF conv2d kernels are (height, width, in, out); torch wants (out, in, ...).

    Front-end convs see one input channel: (time, mel, 1, out) -> (out, 1, time, mel). Mid-end convs are TF
    2-D convs whose kernel spans every feature ("width") of a one-channel map, i.e. 1-D convs over time
    with the features as channels: (time, features, 1, out) -> (out, features, time).
    """
    if module.startswith("midend"):
        return kernel[:, :, 0, :].transpose(2, 1, 0)
    return kernel.transpose(3, 2, 0, 1)


def state_dict_from_tf(variables: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Map checkpoint variables (names from ``tf_variable_names``) to a ``MusiCNN`` state dict."""
    state: dict[str, np.ndarray] = {}
    for module, bn in _BATCH_NORMS:
        for field, tf_field in _BN_FIELDS:
            state[f"{module}.{field}"] = variables[f"{bn}/{tf_field}"]
    for module, layer, _ in _CONV_LAYERS:
        state[f"{module}.conv.weight"] = _conv_weight(module, variables[f"{layer}/kernel"])
        state[f"{module}.conv.bias"] = variables[f"{layer}/bias"]
    for module, layer in _DENSE_LAYERS:
        state[f"{module}.weight"] = variables[f"{layer}/kernel"].T
        state[f"{module}.bias"] = variables[f"{layer}/bias"]
    return {key: torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)) for key, value in state.items()}


def build_musicnn(state: Mapping[str, torch.Tensor]) -> MusiCNN:
    """An inference-ready network from a state dict: sizes from its shapes, strict load, no gradients."""
    net = MusiCNN(MusiCNNConfig.from_state_dict(state))
    net.load_state_dict(dict(state), strict=True)
    net.eval()
    net.requires_grad_(False)
    return net
