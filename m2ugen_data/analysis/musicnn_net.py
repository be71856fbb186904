"""The MusiCNN tagger (Pons & Serra, 2019) as an ONNX graph for onnxruntime, built from its TF1 checkpoint.

Why our own definition: musicnn's code needs TensorFlow 1 and numpy < 1.17. The network is small, so we
restate it here, layer for layer, from the checkpoint's variables (``weights_from_tf``). The result is proved
equal to the original TF graph (max |diff| <= 1e-4 on real audio) by ``tests/pipeline/analysis/test_taggers.py`` against
outputs recorded once with ``tools/musicnn_reference.py``, on the same onnxruntime session ``tag_audio`` uses.

Why onnxruntime: the two front-end convolutions cost ~1.3 GMAC per 3 s patch, and MLAS runs them in its
blocked (NCHWc) layout near the core's peak. Measured on this project's shared 2-core AMD EPYC (Zen 4), one
thread, a 10 s clip (3 patches, MTT + MSD), interleaved runs, ratio to the previous PyTorch port in the same
run: this graph 0.54-0.60x; the PyTorch port exported as is 0.64x (half its remaining overhead was reordering
every full conv output from NCHWc back to NCHW for the max over mel); both models in one session: no gain;
the two models' same-shaped branches merged into one grouped conv: 0.68x. The same restructuring left in
PyTorch: 0.84-0.98x. An FFT front-end (mel-axis rfft, per-bin complex 7-tap products, irfft) ran 2.5x slower
and a DFT-as-GEMM one 1.3x slower than PyTorch's direct conv: ~3x fewer flops, but starved by memory traffic.
What is left is the front-end convs (~80% of the time) at roughly 70% of the core's fp32 peak.

Why the graph is written by hand: ``torch.onnx.export`` needs the ``onnx`` package (not a dependency) and its
TorchScript path is deprecated. The graph is ~60 standard ops, and the few protobuf messages an ONNX model
needs are encoded here field by field, as ``tf_checkpoint`` decodes TensorFlow's.

Input: log-mel patches (batch, time, mel) as made by ``taggers.mel_patches``; output: one logit per tag.
Layers, in TF's order:

- front-end: batch norm of the whole input (one channel); five conv branches over the (time, mel) plane,
  each conv -> ReLU -> batch norm -> max over every mel band. Two "timbral" branches (7 x 0.4/0.7 of the
  mel bands) and three "temporal" ones (128/64/32 x 1); time is zero-padded TF-"same" ((k-1)//2 frames
  before, the rest after), the mel axis is not padded. Their outputs are stacked as channels.
- mid-end: three 1-D convs over time (kernel 7, padding 3) -> ReLU -> batch norm, the 2nd and 3rd residual;
  the front-end features and the three mid-end outputs are stacked as channels ("dense" connections).
- back-end: max and mean over time, interleaved per channel as TF's flatten of (channel, [max, mean]) does,
  batch norm -> dense -> ReLU -> batch norm -> dense: one logit per tag.

Batch norm uses TF's epsilon 1e-3 and its stored moving statistics; dropout is off (inference only).

Exact restructurings (equal up to float rounding, checked by the same 1e-4 test):

- front-end max before ReLU and batch norm: both are monotone per channel, so max(bn(relu(z))) =
  bn(relu(max z)) where the batch-norm scale is >= 0; where it is negative the max becomes a min, which is
  -max(-z), so those filters (and biases) are negated and the pooled value multiplied by -1. ReLU and batch
  norm then run on (batch, filters, time) instead of every mel position.
- front-end filters padded with zero filters to a multiple of ``NCHWC_BLOCK`` and the padding sliced off
  after the pool: MLAS then keeps conv and max pool in its blocked layout and reorders only pooled values.
  Likewise the first mid-end conv's input features are zero-padded to a multiple of ``NCHWC_BLOCK``.
- back-end batch norms folded into the dense layer that follows each (an affine map into a linear one).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

TF_BATCH_NORM_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default
NCHWC_BLOCK = 16  # MLAS's channel block on AVX-512 (8 on AVX2): a multiple of it suits both
ONNX_OPSET = 17
ONNX_IR_VERSION = 8  # the IR that opset 17 came with; onnxruntime >= 1.14 reads it
INPUT_NAME = "patches"
OUTPUT_NAME = "logits"


# ---------------------------------------------------------------------------------------------- weights


@dataclass(frozen=True)
class BatchNorm:
    """TF batch-norm variables; ``scale_shift`` gives the inference-time affine map."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    variance: np.ndarray

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, b) with bn(x) = a * x + b, in float64 so that folding it elsewhere adds no rounding of its own."""
        scale = self.gamma.astype(np.float64) / np.sqrt(self.variance.astype(np.float64) + TF_BATCH_NORM_EPS)
        return scale, self.beta - self.mean.astype(np.float64) * scale


@dataclass(frozen=True)
class ConvLayer:
    """Conv kernel in ONNX layout (out, in, time, width), its bias, and the batch norm after its ReLU."""

    kernel: np.ndarray
    bias: np.ndarray
    bn: BatchNorm


@dataclass(frozen=True)
class Dense:
    """Dense layer as ONNX Gemm with transB: weight (out, in)."""

    weight: np.ndarray
    bias: np.ndarray


@dataclass(frozen=True)
class MusiCNNWeights:
    """Every variable the network uses; sizes are read off the arrays, so MTT/MSD (64 mid-end filters) and
    MSD_big (512) both fit."""

    input_bn: BatchNorm
    timbral: tuple[ConvLayer, ...]
    temporal: tuple[ConvLayer, ...]
    midend: tuple[ConvLayer, ...]
    pool_bn: BatchNorm
    dense: Dense
    dense_bn: BatchNorm
    out: Dense

    @property
    def num_classes(self) -> int:
        return int(self.out.weight.shape[0])


# ---------------------------------------------------------------------------------------------- TF names

# (TF conv layer, TF batch-norm layer) per branch, in the order musicnn's graph creates them: TF1 auto-names
# layers per kind (conv2d, conv2d_1, ...), so the order is the only link between the two.
_TIMBRAL = (("conv2d", "batch_normalization_1"), ("conv2d_1", "batch_normalization_2"))
_TEMPORAL = (("conv2d_2", "batch_normalization_3"), ("conv2d_3", "batch_normalization_4"),
             ("conv2d_4", "batch_normalization_5"))  # fmt: skip
_MIDEND = (("conv2d_5", "batch_normalization_6"), ("conv2d_6", "batch_normalization_7"),
           ("conv2d_7", "batch_normalization_8"))  # fmt: skip
_INPUT_BN, _POOL_BN, _DENSE_BN = "batch_normalization", "batch_normalization_9", "batch_normalization_10"
_DENSE, _OUT = "dense", "dense_1"
_BN_FIELDS = ("gamma", "beta", "moving_mean", "moving_variance")


def tf_variable_names() -> list[str]:
    """The checkpoint variables the network uses (not the optimizer's slots or counters)."""
    convs = (*_TIMBRAL, *_TEMPORAL, *_MIDEND)
    bns = (_INPUT_BN, _POOL_BN, _DENSE_BN, *(bn for _, bn in convs))
    names = [f"{bn}/{field}" for bn in bns for field in _BN_FIELDS]
    layers = (*(conv for conv, _ in convs), _DENSE, _OUT)
    names += [f"{layer}/{part}" for layer in layers for part in ("kernel", "bias")]
    return names


def weights_from_tf(variables: Mapping[str, np.ndarray]) -> MusiCNNWeights:
    """Map checkpoint variables (names from ``tf_variable_names``) to the network's layers.

    TF conv2d kernels are (height, width, in, out), ONNX wants (out, in, height, width). Front-end convs see
    one input channel: (time, mel, 1, out) -> (out, 1, time, mel). Mid-end convs are TF 2-D convs whose kernel
    spans every feature ("width") of a one-channel map, i.e. 1-D convs over time with the features as
    channels: (time, features, 1, out) -> (out, features, time, 1) on a (batch, features, time, 1) map.
    """

    def f32(name: str) -> np.ndarray:
        return np.ascontiguousarray(variables[name], dtype=np.float32)

    def bn(name: str) -> BatchNorm:
        return BatchNorm(*(f32(f"{name}/{field}") for field in _BN_FIELDS))

    def conv(layer: str, norm: str, axes: tuple[int, ...]) -> ConvLayer:
        kernel = np.ascontiguousarray(f32(f"{layer}/kernel").transpose(axes))
        return ConvLayer(kernel, f32(f"{layer}/bias"), bn(norm))

    def dense(layer: str) -> Dense:
        return Dense(np.ascontiguousarray(f32(f"{layer}/kernel").T), f32(f"{layer}/bias"))

    front, mid = (3, 2, 0, 1), (3, 1, 0, 2)
    return MusiCNNWeights(
        input_bn=bn(_INPUT_BN),
        timbral=tuple(conv(layer, norm, front) for layer, norm in _TIMBRAL),
        temporal=tuple(conv(layer, norm, front) for layer, norm in _TEMPORAL),
        midend=tuple(conv(layer, norm, mid) for layer, norm in _MIDEND),
        pool_bn=bn(_POOL_BN),
        dense=dense(_DENSE),
        dense_bn=bn(_DENSE_BN),
        out=dense(_OUT),
    )


# ---------------------------------------------------------------------------------------------- protobuf

# Field numbers and enums of onnx/onnx.proto (proto2) that the graph below uses.
_FLOAT, _INT64 = 1, 7  # TensorProto.DataType
_ATTR_FLOAT, _ATTR_INT, _ATTR_INTS = 1, 2, 7  # AttributeProto.AttributeType


def _varint(value: int) -> bytes:
    """Base-128 varint; negative int64 as its 10-byte two's complement, as protobuf encodes them."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def _len(field: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def _attribute(name: str, value: int | float | Sequence[int]) -> bytes:
    """AttributeProto: name 1, f 2 (fixed32), i 3, ints 8, type 20."""
    if isinstance(value, float):
        body = _varint(2 << 3 | 5) + struct.pack("<f", value) + _int(20, _ATTR_FLOAT)
    elif isinstance(value, int):
        body = _int(3, value) + _int(20, _ATTR_INT)
    else:
        body = b"".join(_int(8, v) for v in value) + _int(20, _ATTR_INTS)
    return _len(1, name) + body


def _tensor(name: str, array: np.ndarray) -> bytes:
    """TensorProto: dims 1, data_type 2, name 8, raw_data 9 (little-endian)."""
    code = {np.dtype(np.float32): _FLOAT, np.dtype(np.int64): _INT64}[array.dtype]
    dims = b"".join(_int(1, d) for d in array.shape)
    raw = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return dims + _int(2, code) + _len(8, name) + _len(9, raw)


def _value_info(name: str, dims: Sequence[int | str]) -> bytes:
    """ValueInfoProto(name 1, type 2) -> TypeProto(tensor_type 1) -> (elem_type 1, shape 2) -> dim 1 ->
    (dim_value 1 | dim_param 2): a float tensor with fixed and named dimensions."""
    shape = b"".join(_len(1, _len(2, d) if isinstance(d, str) else _int(1, d)) for d in dims)
    return _len(1, name) + _len(2, _len(1, _int(1, _FLOAT) + _len(2, shape)))


class _Graph:
    """Collects nodes and initializers; each ``op`` returns the name of its (single) output."""

    def __init__(self) -> None:
        self.nodes: list[bytes] = []
        self.initializers: list[bytes] = []
        self._count = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array: np.ndarray, hint: str = "const") -> str:
        name = self._name(hint)
        self.initializers.append(_tensor(name, array))
        return name

    def weight(self, array: np.ndarray, hint: str) -> str:
        """A float32 initializer; folded values arrive in float64 and are rounded once, here."""
        return self.const(np.asarray(array, dtype=np.float32), hint)

    def op(
        self, op_type: str, *inputs: str, output: str | None = None, **attributes: int | float | Sequence[int]
    ) -> str:
        """NodeProto: input 1, output 2, name 3, op_type 4, attribute 5. ``output`` names a graph output."""
        output = output or self._name(op_type.lower())
        node = b"".join(_len(1, i) for i in inputs) + _len(2, output) + _len(3, output) + _len(4, op_type)
        node += b"".join(_len(5, _attribute(k, v)) for k, v in attributes.items())
        self.nodes.append(node)
        return output

    def model(self, inputs: bytes, outputs: bytes) -> bytes:
        """ModelProto: ir_version 1, producer_name 2, graph 7 (node 1, name 2, initializer 5, input 11,
        output 12), opset_import 8 (domain 1, version 2)."""
        graph = b"".join(_len(1, n) for n in self.nodes) + _len(2, "musicnn")
        graph += b"".join(_len(5, t) for t in self.initializers) + _len(11, inputs) + _len(12, outputs)
        opset = _len(1, "") + _int(2, ONNX_OPSET)
        return _int(1, ONNX_IR_VERSION) + _len(2, "m2ugen") + _len(7, graph) + _len(8, opset)


# ---------------------------------------------------------------------------------------------- graph


def _same_time_pad(kernel: int) -> tuple[int, int]:
    """TF 'same' padding for stride 1: the extra frame of an even kernel goes after, not before."""
    before = (kernel - 1) // 2
    return before, kernel - 1 - before


def _batch_norm(g: _Graph, x: str, bn: BatchNorm) -> str:
    parts = (bn.gamma, bn.beta, bn.mean, bn.variance)
    return g.op("BatchNormalization", x, *(g.weight(p, "bn") for p in parts), epsilon=TF_BATCH_NORM_EPS)


def _front_branch(g: _Graph, x: str, layer: ConvLayer, n_mels: int) -> str:
    """conv -> max over mel -> ReLU -> batch norm, restructured as the module docstring says:
    (batch, 1, time, mel) -> (batch, filters, time, 1)."""
    filters, _, time_k, mel_k = layer.kernel.shape
    sign = np.where(layer.bn.gamma < 0, -1.0, 1.0).astype(np.float32)
    padded = -(-filters // NCHWC_BLOCK) * NCHWC_BLOCK
    kernel = np.zeros((padded, *layer.kernel.shape[1:]), np.float32)
    kernel[:filters] = layer.kernel * sign[:, None, None, None]
    bias = np.zeros(padded, np.float32)
    bias[:filters] = layer.bias * sign
    before, after = _same_time_pad(time_k)
    z = g.op("Conv", x, g.weight(kernel, "kernel"), g.weight(bias, "bias"), pads=(before, 0, after, 0))
    z = g.op("MaxPool", z, kernel_shape=(1, n_mels - mel_k + 1))
    z = g.op("Slice", z, *(g.const(np.array([v], np.int64)) for v in (0, filters, 1)))  # starts, ends, axes
    z = g.op("Relu", g.op("Mul", z, g.weight(sign[:, None, None], "sign")))
    return _batch_norm(g, z, layer.bn)


def _midend_layer(g: _Graph, x: str, layer: ConvLayer) -> str:
    """conv over time -> ReLU -> batch norm on (batch, features, time, 1). Input features are zero-padded to a
    multiple of ``NCHWC_BLOCK`` (561 front-end features -> 576), with zero kernel columns to match: MLAS then
    runs the conv in its blocked layout (measured: the whole graph 5-7% faster)."""
    filters, features, time_k, _ = layer.kernel.shape
    padded = -(-features // NCHWC_BLOCK) * NCHWC_BLOCK
    kernel = np.zeros((filters, padded, time_k, 1), np.float32)
    kernel[:, :features] = layer.kernel
    if padded != features:
        x = g.op("Pad", x, g.const(np.array([0, 0, 0, 0, 0, padded - features, 0, 0], np.int64)))
    before, after = _same_time_pad(time_k)
    z = g.op("Conv", x, g.weight(kernel, "kernel"), g.weight(layer.bias, "bias"), pads=(before, 0, after, 0))
    return _batch_norm(g, g.op("Relu", z), layer.bn)


def _dense_after_bn(g: _Graph, x: str, bn: BatchNorm, dense: Dense, output: str | None = None) -> str:
    """dense(bn(x)) as one Gemm: W (a x + b) + c = (W diag a) x + (W b + c)."""
    scale, shift = bn.scale_shift()
    weight = dense.weight.astype(np.float64)
    folded_w, folded_b = weight * scale[None, :], weight @ shift + dense.bias
    return g.op("Gemm", x, g.weight(folded_w, "dense"), g.weight(folded_b, "dense_bias"), output=output, transB=1)


def onnx_model(weights: MusiCNNWeights, n_mels: int) -> bytes:
    """The serialized ONNX model: input ``patches`` (batch, time, n_mels) float32, output ``logits``
    (batch, classes). Any number of frames works (the back-end pools over time); musicnn uses 187."""
    g = _Graph()
    x = g.op("Unsqueeze", INPUT_NAME, g.const(np.array([1], np.int64)))  # (B, 1, T, mel)
    x = _batch_norm(g, x, weights.input_bn)
    front = g.op("Concat", *(_front_branch(g, x, b, n_mels) for b in (*weights.timbral, *weights.temporal)), axis=1)
    mids = [_midend_layer(g, front, weights.midend[0])]
    for layer in weights.midend[1:]:
        mids.append(g.op("Add", _midend_layer(g, mids[-1], layer), mids[-1]))
    features = g.op("Concat", front, *mids, axis=1)  # (B, C, T, 1)
    pooled = g.op("Concat", g.op("GlobalMaxPool", features), g.op("GlobalAveragePool", features), axis=2)
    pooled = g.op("Flatten", pooled, axis=1)  # (B, C * 2): per channel max then mean, as TF's flatten
    hidden = g.op("Relu", _dense_after_bn(g, pooled, weights.pool_bn, weights.dense))
    _dense_after_bn(g, hidden, weights.dense_bn, weights.out, output=OUTPUT_NAME)
    inputs = _value_info(INPUT_NAME, ("batch", "time", n_mels))
    return g.model(inputs, _value_info(OUTPUT_NAME, ("batch", weights.num_classes)))
