"""What the TensorRT ONNX parser accepts, per TensorRT version: a data table for the check.

Source: the public onnx-tensorrt operator support matrix, ``docs/operators.md`` in
https://github.com/onnx/onnx-tensorrt (read 2025):

- TensorRT 8.6 (JetPack 6.0 ships 8.6.2): the 8.4/8.5 matrix ("supports operators up to
  Opset 17"; data types FLOAT32, FLOAT16, INT8, BOOL, limited INT32/INT64/DOUBLE, INT64 cast down
  to INT32) plus the 8.5 changelog additions (RandomNormal, RandomUniform,
  MeanVarianceNormalization, RoiAlign, Mod, Trilu, GridSample, NonZero, NonMaxSuppression, UINT8
  network I/O) and LayerNormalization (8.6). ``DequantizeLinear`` INT8 only, ``x_zero_point``
  must be zero; ``QuantizeLinear`` ``y_zero_point`` must be 0. No block-wise quantization.
- TensorRT 10.x (JetPack 6.1/6.2 ship 10.3): the 10.x matrix ("opset 9 to opset 20" for 10.0,
  later 10.x up to 24; tabulated here as 21, the opset of block-wise INT4); data types DOUBLE
  (cast down), FLOAT32, FLOAT16, BFLOAT16, INT32, INT64, FP8, INT8, INT4, UINT8 (network I/O
  only), BOOL). INT8/INT4/FP8 are *quantized types*: they
  exist only between QuantizeLinear and DequantizeLinear, so ``Gather``, ``Cast`` or
  ``Transpose`` of an int8 tensor are not in their supported-type lists. Block-wise
  DequantizeLinear (opset 21 ``block_size``) is accepted for INT4 weights.

Only the operator *names* and the type/quantization facts the check needs are tabulated here.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TARGET", "TARGETS", "TrtTarget", "get_target"]

DEFAULT_TARGET = "10"  # the TensorRT a check is for unless told: JetPack 6.1/6.2 ship 10.3

# Operators with "Y" in the 8.4/8.5 matrix (standard ONNX domain).
_OPS_8 = frozenset(
    [
        "Abs",
        "Acos",
        "Acosh",
        "Add",
        "And",
        "ArgMax",
        "ArgMin",
        "Asin",
        "Asinh",
        "Atan",
        "Atanh",
        "AveragePool",
        "BatchNormalization",
        "Cast",
        "Ceil",
        "Celu",
        "Clip",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Cos",
        "Cosh",
        "CumSum",
        "DepthToSpace",
        "DequantizeLinear",
        "Div",
        "Dropout",
        "Einsum",
        "Elu",
        "Equal",
        "Erf",
        "Exp",
        "Expand",
        "EyeLike",
        "Flatten",
        "Floor",
        "Gather",
        "GatherElements",
        "GatherND",
        "Gemm",
        "GlobalAveragePool",
        "GlobalLpPool",
        "GlobalMaxPool",
        "Greater",
        "GreaterOrEqual",
        "GRU",
        "HardSigmoid",
        "HardSwish",
        "Identity",
        "If",
        "ImageScaler",
        "InstanceNormalization",
        "IsNaN",
        "LeakyRelu",
        "Less",
        "LessOrEqual",
        "Log",
        "LogSoftmax",
        "Loop",
        "LRN",
        "LSTM",
        "LpNormalization",
        "LpPool",
        "MatMul",
        "Max",
        "MaxPool",
        "Mean",
        "Min",
        "Mul",
        "Neg",
        "NonMaxSuppression",
        "Not",
        "Or",
        "Pad",
        "ParametricSoftplus",
        "Pow",
        "PRelu",
        "QuantizeLinear",
        "RandomUniform",
        "RandomUniformLike",
        "Range",
        "ReduceL1",
        "ReduceL2",
        "ReduceLogSum",
        "ReduceLogSumExp",
        "ReduceMax",
        "ReduceMean",
        "ReduceMin",
        "ReduceProd",
        "ReduceSum",
        "ReduceSumSquare",
        "Relu",
        "Reshape",
        "Resize",
        "ReverseSequence",
        "RNN",
        "Round",
        "ScaledTanh",
        "Scan",
        "Scatter",
        "ScatterElements",
        "ScatterND",
        "Selu",
        "Shape",
        "Shrink",
        "Sigmoid",
        "Sign",
        "Sin",
        "Sinh",
        "Size",
        "Slice",
        "Softmax",
        "Softplus",
        "Softsign",
        "SpaceToDepth",
        "Split",
        "Sqrt",
        "Squeeze",
        "Sub",
        "Sum",
        "Tan",
        "Tanh",
        "ThresholdedRelu",
        "Tile",
        "TopK",
        "Transpose",
        "Unsqueeze",
        "Upsample",
        "Where",
        "Xor",
    ]
)
_ADDED_8_5_8_6 = frozenset(
    [
        "RandomNormal",
        "RandomNormalLike",
        "MeanVarianceNormalization",
        "RoiAlign",
        "Mod",
        "Trilu",
        "GridSample",
        "NonZero",
        "LayerNormalization",
    ]
)
# Operators with "Y" in the 10.x matrix that 8.x lacks.
_ADDED_10 = frozenset(
    [
        "BlackmanWindow",
        "CastLike",
        "DeformConv",
        "GroupNormalization",
        "Gelu",
        "HammingWindow",
        "HannWindow",
        "Hardmax",
        "IsInf",
        "Mish",
        "OneHot",
        "Reciprocal",
        "STFT",
    ]
)

# ONNX TensorProto element types by number (onnx.TensorProto.DataType).
FLOAT, UINT8, INT8, UINT16, INT16, INT32, INT64, STRING, BOOL = 1, 2, 3, 4, 5, 6, 7, 8, 9
FLOAT16, DOUBLE, UINT32, UINT64, COMPLEX64, COMPLEX128, BFLOAT16 = 10, 11, 12, 13, 14, 15, 16
FLOAT8 = frozenset({17, 18, 19, 20})
UINT4, INT4 = 21, 22


@dataclass(frozen=True)
class TrtTarget:
    """What one TensorRT version's ONNX parser accepts."""

    version: str
    max_opset: int
    ops: frozenset[str]
    #: element types a tensor may have anywhere in the graph
    types: frozenset[int]
    #: element types accepted only as network inputs/outputs
    io_only_types: frozenset[int]
    #: int8 tensors may flow through ordinary ops (8.x lists INT8 for Gather, Cast, Transpose...)
    int8_outside_qdq: bool
    #: quantized element types DequantizeLinear accepts
    dq_types: frozenset[int]
    #: DequantizeLinear with ``block_size`` (opset 21) for these element types
    block_types: frozenset[int]
    #: int64 is computed natively (10.x) rather than cast down to int32 (8.x)
    native_int64: bool


TARGETS: dict[str, TrtTarget] = {
    "8.6": TrtTarget(
        version="8.6",
        max_opset=17,
        ops=_OPS_8 | _ADDED_8_5_8_6,
        types=frozenset({FLOAT, FLOAT16, INT8, INT32, INT64, BOOL, DOUBLE}),
        io_only_types=frozenset({UINT8}),
        int8_outside_qdq=True,
        dq_types=frozenset({INT8}),
        block_types=frozenset(),
        native_int64=False,
    ),
    "10": TrtTarget(
        version="10",
        max_opset=21,
        ops=_OPS_8 | _ADDED_8_5_8_6 | _ADDED_10,
        types=frozenset(
            {FLOAT, FLOAT16, BFLOAT16, INT8, INT4, INT32, INT64, BOOL, DOUBLE} | FLOAT8
        ),
        io_only_types=frozenset({UINT8}),
        int8_outside_qdq=False,
        dq_types=frozenset({INT8, INT4} | FLOAT8),
        block_types=frozenset({INT4}),
        native_int64=True,
    ),
}


def get_target(version: str) -> TrtTarget:
    """The table for ``version`` ("8.6", "10", or a full version such as "10.3.0")."""
    key = version.strip()
    if key in TARGETS:
        return TARGETS[key]
    major = key.split(".")[0]
    if major == "10":
        return TARGETS["10"]
    if key.startswith(("8.6", "8.5")):
        return TARGETS["8.6"]
    from edge_sdk.errors import ConfigError

    raise ConfigError(f"unknown TensorRT version {version!r}; choose one of: {', '.join(TARGETS)}")
