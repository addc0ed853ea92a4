"""Qwen3.5's Gated DeltaNet token mixer in standard ONNX ops (opset 18 or 21): the causal conv
with its window, and the gated delta rule over S new tokens from a recurrent state.

Per value head (B x Hv of them, independent), with state S [Dk, Dv] and for each token t a
query q_t and key k_t (L2-normalized; q_t also times Dk^-1/2), value v_t, beta_t in (0, 1) and
log-decay g_t <= 0, the recurrent step (decode, S = 1) is

    S'  = exp(g_t) S
    u_t = beta_t (v_t - S'^T k_t)          the delta: what S' does not yet predict
    S_t = S' + k_t u_t^T,   o_t = S_t^T q_t

Prefill splits the tokens into chunks of C (64; the last one padded with k = v = q = 0,
beta = g = 0, which leaves the state alone). Within a chunk, with G_t = g_1 + ... + g_t and the
decay matrix D_ij = exp(G_i - G_j) for j <= i (0 above the diagonal), unrolling the step gives

    S_t = exp(G_t) S_0 + sum_{j<=t} exp(G_t - G_j) k_j u_j^T, hence
    (I + A) U = diag(beta) V - diag(beta exp(G)) K S_0,   A_ij = beta_i k_i.k_j D_ij (j < i)

so, with T = (I + A)^-1:  U = T diag(beta) V - T diag(beta exp(G)) K S_0 =: U' - W S_0, and

    O   = diag(exp(G)) Q S_0 + (Q K^T * D) U
    S_C = exp(G_C) S_0 + (diag(exp(G_C - G)) K)^T U

T, U', W, the intra-chunk scores and the decayed q/k depend on the chunk alone: they are
computed for every chunk at once (MatMuls over [B, Hv, N, C, .]). Only the state passes from
chunk to chunk, in a ``Scan`` over the N chunks (per chunk: 4 MatMuls of C x Dk x Dv). Every
exponent is <= 0 (D is masked with -inf above the diagonal before ``Exp``), nothing overflows.

T: ONNX has no triangular solve. I + A is unit lower triangular, and its inverse is built by
blocks in log2(C) parallel levels (recursive triangular inversion): the inverses of the diagonal
blocks of size b give those of size 2b by

    [[L11, 0], [L21, L22]]^-1 = [[L11^-1, 0], [-L22^-1 L21 L11^-1, L22^-1]]

with L21 the block of A below the pair's diagonal blocks (A itself is one MatMul per chunk);
per level, batched MatMuls of b x b blocks, log2(C) = 6 levels for C = 64. This is exact (the
algebra of a substitution, errors of the order of a triangular solve's), unlike the Neumann
product (I - A)(I + A^2)(I + A^4)..., as short but summing powers of A whose entries grow like
binomial coefficients when keys repeat (beta ~ 1, little decay): for 64 nearly equal keys it
is off by 1e10 in float32, the blocks by 1e-6.

The conv: per channel c, y_t = silu(sum_j w[c, 0, j] x[t - K + 1 + j]) over the window of the
last K-1 inputs followed by the S new ones (one depthwise ``Conv``, ``group`` = Ch); the new
window is the last K-1 positions of that concatenation.

Shapes: B batch, S new tokens, N = ceil(S / C) chunks, Hk/Hv key/value heads (each key head
serves Hv/Hk consecutive value heads), Dk/Dv their widths, Ch conv channels (q, k, v), K the
conv kernel. Recurrent state [B, Hv, Dk, Dv], conv state [B, Ch, K-1] (Hugging Face's layouts).
``delta_rule`` switches with an ``If`` on S: the step when S = 1, the chunked form otherwise,
in chunks of 8 (:data:`SHORT_CHUNK`) for S <= 8 (a speculative verify call: padding 2-8 tokens to
a chunk of 64 made it cost ~2.5x a one-token call), of 64 beyond.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edge_sdk.config import LinearAttention, ModelConfig
from edge_sdk.exporters.stream.onnx_builder import GraphBuilder
from edge_sdk.exporters.stream.ops import linear, rms_norm, swiglu

if TYPE_CHECKING:  # families import this module: no import of them at run time
    from edge_sdk.exporters.families.base import LayerTensors

__all__ = [
    "CHUNK",
    "L2_EPS",
    "SHORT_CHUNK",
    "RuleInputs",
    "causal_conv",
    "delta_rule",
    "delta_rule_chunked",
    "delta_rule_step",
    "gated_delta_net",
]

CHUNK = 64  # tokens per chunk of the prefill form
SHORT_CHUNK = 8  # tokens per chunk when a call has 2..8 (a speculative verify call)
L2_EPS = 1e-6  # q and k are divided by sqrt(sum(x^2) + L2_EPS), as in Hugging Face's l2norm
_LAST = np.iinfo(np.int64).max


@dataclass(frozen=True)
class RuleInputs:
    """The gated delta rule's inputs (tensor names) and widths: q, k [B, H, S, Dk]
    (L2-normalized, q times Dk^-1/2, repeated to the value heads), v [B, H, S, Dv], log-decay
    ``decay`` and ``beta`` [B, H, S], ``state`` [B, H, Dk, Dv]; ``dims`` (Dk, Dv)."""

    q: str
    k: str
    v: str
    decay: str
    beta: str
    state: str
    dims: tuple[int, int]


class _Nodes:
    """Nodes named ``prefix.suffix`` in a graph, or in a subgraph of their own (``g`` None).
    Constants are ``Constant`` nodes: a subgraph needs no initializer, and nothing here writes
    to the graph's external data file."""

    def __init__(self, prefix: str, g: GraphBuilder | None = None) -> None:
        self.prefix = prefix
        self.g = g if g is not None else GraphBuilder(Path(prefix), prefix)  # its nodes only

    def __call__(
        self,
        op_type: str,
        inputs: list[str],
        suffix: str,
        outputs: list[str] | None = None,
        **attrs: Any,
    ) -> str:
        return self.g.op(op_type, inputs, f"{self.prefix}.{suffix}", outputs, **attrs)

    def const(self, suffix: str, value: np.ndarray) -> str:
        return self("Constant", [], suffix, value=numpy_helper.from_array(value))

    def ints(self, suffix: str, values: list[int]) -> str:
        return self.const(suffix, np.array(values, np.int64))

    def floats(self, suffix: str, value: float) -> str:
        return self.const(suffix, np.array(value, np.float32))

    def graph(self, outputs: list[str], inputs: tuple[str, ...] = ()) -> onnx.GraphProto:
        """These nodes as a subgraph (float tensors in and out, shapes left to inference)."""

        def info(name: str) -> onnx.ValueInfoProto:
            return helper.make_tensor_value_info(name, TensorProto.FLOAT, None)

        return helper.make_graph(
            self.g.nodes, self.prefix, [info(x) for x in inputs], [info(x) for x in outputs]
        )


def _new_tokens(n: _Nodes, v: str) -> str:
    """S of ``v`` [B, H, S, Dv] as a 1-element int64 tensor."""
    shape = n("Shape", [v], "v_shape")
    return n("Slice", [shape, n.ints("s_start", [2]), n.ints("s_end", [3])], "new_tokens")


def causal_conv(
    g: GraphBuilder, x: str, state: str, weight: np.ndarray, new_state: str, name: str
) -> str:
    """silu of the depthwise causal conv of ``x`` [B, S, Ch] after the window ``state``
    [B, Ch, K-1] (``weight`` [Ch, 1, K]); writes the last K-1 positions as ``new_state``."""
    n = _Nodes(name, g)
    channels, _, kernel = weight.shape
    full = n("Concat", [state, n("Transpose", [x], "channels", perm=[0, 2, 1])], "full", axis=2)
    w = g.const(f"{name}.weight", weight.astype(np.float32))
    out = n("Conv", [full, w], "out", group=channels, kernel_shape=[kernel])  # [B, Ch, S]
    one, two = n.ints("one", [1]), n.ints("two", [2])
    new_tokens = n("Slice", [n("Shape", [x], "shape"), one, two], "new_tokens")
    g.op("Slice", [full, new_tokens, n.ints("end", [_LAST]), two], outputs=[new_state])
    silu = n("Mul", [out, n("Sigmoid", [out], "sigmoid")], "silu")
    return n("Transpose", [silu], "tokens", perm=[0, 2, 1])


def _step(n: _Nodes, x: RuleInputs) -> list[str]:
    """The recurrent step of one token: [o [B, H, 1, Dv], new state]."""
    last = n.ints("last", [-1])
    factor = n("Unsqueeze", [n("Exp", [x.decay], "exp"), last], "factor")  # [B, H, 1, 1]
    kept = n("Mul", [x.state, factor], "kept")
    error = n("Sub", [x.v, n("MatMul", [x.k, kept], "predicted")], "error")  # [B, H, 1, Dv]
    delta = n("Mul", [error, n("Unsqueeze", [x.beta, last], "beta")], "delta")
    k_column = n("Transpose", [x.k], "k_column", perm=[0, 1, 3, 2])
    new = n("Add", [kept, n("MatMul", [k_column, delta], "write")], "state")
    return [n("MatMul", [x.q, new], "o"), new]


def _unit_lower_inverse(n: _Nodes, a: str, chunk: int) -> str:
    """(I + A)^-1 [B, H, N, C, C] of a strictly lower triangular ``a``, by diagonal blocks of 1,
    2, 4 ... C (each level reads the blocks of ``a`` just below the diagonal blocks)."""
    last = n.ints("inv_last", [-1])
    shape = n("Shape", [a], "a_shape")
    lead = n("Slice", [shape, n.ints("zero", [0]), n.ints("four", [4])], "lead")  # B, H, N, C
    ones = n("Concat", [lead, n.ints("unit", [1, 1])], "ones", axis=0)
    one = numpy_helper.from_array(np.ones(1, np.float32))
    blocks = n("ConstantOfShape", [ones], "inverse_1", value=one)  # [B, H, N, C, 1, 1]
    first = n.const("first", np.array(0, np.int64))
    second = n.const("second", np.array(1, np.int64))
    b = 1
    while b < chunk:
        m, p = chunk // (2 * b), f"level{b}"
        grid = n("Reshape", [a, n.ints(f"{p}.grid", [0, 0, 0, m, 2, b, m, 2, b])], f"{p}.a")
        lower_rows = n("Gather", [grid, second], f"{p}.rows", axis=4)  # [B, H, N, m, b, m, 2, b]
        pairs = n("Gather", [lower_rows, first], f"{p}.cols", axis=6)  # [B, H, N, m, b, m, b]
        own = n.const(f"{p}.own", np.eye(m, dtype=np.float32).reshape(m, 1, m, 1))
        own_pair = n("Mul", [pairs, own], f"{p}.own_pair")  # row block p, column block p only
        l21 = n("ReduceSum", [own_pair, n.ints(f"{p}.axis", [5])], f"{p}.l21", keepdims=0)
        split = n.ints(f"{p}.pairs", [0, 0, 0, m, 2, b, b])
        halves = n("Reshape", [blocks, split], f"{p}.halves")  # [B, H, N, m, 2, b, b]
        inv0 = n("Gather", [halves, first], f"{p}.inv0", axis=4)
        inv1 = n("Gather", [halves, second], f"{p}.inv1", axis=4)
        corner = n("MatMul", [n("MatMul", [inv1, l21], f"{p}.left"), inv0], f"{p}.corner")
        lower = n("Concat", [n("Neg", [corner], f"{p}.neg"), inv1], f"{p}.lower", axis=-1)
        upper = n("Pad", [inv0, n.ints(f"{p}.pads", [0, b]), "", last], f"{p}.upper")
        blocks = n("Concat", [upper, lower], f"inverse_{2 * b}", axis=-2)  # [B, H, N, m, 2b, 2b]
        b *= 2
    return n("Reshape", [blocks, n.ints("inverse_shape", [0, 0, 0, chunk, chunk])], "inverse")


def _scan_body(prefix: str) -> onnx.GraphProto:
    """One chunk from the state before it: (state, u, w, q_in, attn, k_out, carry) ->
    (state after it, o [B, H, C, Dv])."""
    n = _Nodes(prefix)
    names = ("state_in", "u", "w", "q_in", "attn", "k_out", "carry")
    state, u, w, q_in, attn, k_out, carry = (f"{prefix}.{x}" for x in names)
    new_v = n("Sub", [u, n("MatMul", [w, state], "predicted")], "new_v")  # [B, H, C, Dv]
    o = n("Add", [n("MatMul", [q_in, state], "read"), n("MatMul", [attn, new_v], "intra")], "o")
    k_columns = n("Transpose", [k_out], "k_columns", perm=[0, 1, 3, 2])
    kept = n("Mul", [state, carry], "kept")
    new = n("Add", [kept, n("MatMul", [k_columns, new_v], "write")], "state_out")
    return n.graph([new, o], (state, u, w, q_in, attn, k_out, carry))


def _chunked(n: _Nodes, x: RuleInputs, chunk: int) -> list[str]:
    """The chunked form over S tokens: [o [B, H, S, Dv], new state]."""
    if chunk < 1 or chunk & (chunk - 1):
        raise ValueError(f"the chunk size must be a power of two, got {chunk}")
    axis2, last, before_last = n.ints("axis2", [2]), n.ints("last", [-1]), n.ints("before", [-2])
    new_tokens, size = _new_tokens(n, x.v), n.ints("size", [chunk])
    short = n("Sub", [size, n("Mod", [new_tokens, size], "rest")], "short")
    pads = n("Concat", [n.ints("none", [0]), n("Mod", [short, size], "pad")], "pads", axis=0)

    def chunks(tensor: str, tag: str, width: list[int]) -> str:  # [B, H, N, C, *width]
        padded = n("Pad", [tensor, pads, "", axis2], f"{tag}_padded")
        shape = n.ints(f"{tag}_chunked", [0, 0, -1, chunk, *width])
        return n("Reshape", [padded, shape], f"{tag}_chunks")

    dk, dv = x.dims
    qc, kc, vc = chunks(x.q, "q", [dk]), chunks(x.k, "k", [dk]), chunks(x.v, "v", [dv])
    cum = n("CumSum", [chunks(x.decay, "g", []), n.const("axis", np.array(-1, np.int64))], "cum")
    rows, cols = n("Unsqueeze", [cum, last], "rows"), n("Unsqueeze", [cum, before_last], "cols")
    gap = n("Sub", [rows, cols], "gap")  # G_i - G_j [B, H, N, C, C]
    causal = n.const("causal", np.tril(np.ones((chunk, chunk), bool)))
    masked = n("Where", [causal, gap, n.floats("minus_inf", -np.inf)], "masked")
    decays = n("Exp", [masked], "decays")  # D [B, H, N, C, C]
    beta_column = n("Unsqueeze", [chunks(x.beta, "beta", []), last], "beta_column")
    kb, vb = n("Mul", [kc, beta_column], "k_beta"), n("Mul", [vc, beta_column], "v_beta")
    k_rows = n("Transpose", [kc], "k_rows", perm=[0, 1, 2, 4, 3])
    attn = n("Mul", [n("MatMul", [qc, k_rows], "scores"), decays], "attn")
    a = n("Mul", [n("MatMul", [kb, k_rows], "k_beta_scores"), decays], "a")  # tril(-1) read
    inverse = _unit_lower_inverse(n, a, chunk)
    grown = n("Unsqueeze", [n("Exp", [cum], "exp_cum"), last], "exp_cum_column")
    u = n("MatMul", [inverse, vb], "u")
    w = n("MatMul", [inverse, n("Mul", [kb, grown], "k_beta_decayed")], "w")
    q_in = n("Mul", [qc, grown], "q_in")
    end = n("Slice", [cum, last, n.ints("to_last", [_LAST]), last], "chunk_log_decay")
    to_end = n("Exp", [n("Sub", [end, cum], "log_to_end")], "to_end")  # [B, H, N, C]
    k_out = n("Mul", [kc, n("Unsqueeze", [to_end, last], "to_end_column")], "k_out")
    carry = n("Unsqueeze", [n("Exp", [end], "chunk_decay"), last], "carry")  # [B, H, N, 1, 1]
    final, o = f"{n.prefix}.state", f"{n.prefix}.o_chunks"
    n(
        "Scan",
        [x.state, u, w, q_in, attn, k_out, carry],
        "scan",
        outputs=[final, o],
        body=_scan_body(f"{n.prefix}.scan"),
        num_scan_inputs=6,
        scan_input_axes=[2] * 6,
        scan_output_axes=[2],
    )
    flat = n("Reshape", [o, n.ints("o_shape", [0, 0, -1, dv])], "o_padded")
    return [n("Slice", [flat, n.ints("start", [0]), new_tokens, axis2], "o"), final]


def delta_rule_step(g: GraphBuilder, x: RuleInputs, name: str) -> tuple[str, str]:
    """The recurrent step of one token (S = 1): (o [B, H, 1, Dv], new state)."""
    o, new = _step(_Nodes(name, g), x)
    return o, new


def delta_rule_chunked(
    g: GraphBuilder, x: RuleInputs, name: str, chunk: int = CHUNK
) -> tuple[str, str]:
    """The chunked form over any S >= 1: (o [B, H, S, Dv], new state)."""
    o, new = _chunked(_Nodes(name, g), x, chunk)
    return o, new


def _several(name: str, x: RuleInputs, chunk: int) -> onnx.GraphProto:
    """The chunked form as a subgraph: with chunks of :data:`SHORT_CHUNK` when S is at most that
    (a speculative verify call of a few tokens: a chunk of 64 would pad them to 64, ~15x the
    cost), of ``chunk`` otherwise."""
    if chunk <= SHORT_CHUNK:
        chunked = _Nodes(f"{name}.chunked")
        return chunked.graph(_chunked(chunked, x, chunk))
    n = _Nodes(f"{name}.several")
    few = n("LessOrEqual", [_new_tokens(n, x.v), n.ints("short", [SHORT_CHUNK])], "few")
    short, long = _Nodes(f"{name}.short"), _Nodes(f"{name}.chunked")
    outputs = [f"{n.prefix}.o", f"{n.prefix}.state"]
    n(
        "If",
        [few],
        "pick",
        outputs=outputs,
        then_branch=short.graph(_chunked(short, x, SHORT_CHUNK)),
        else_branch=long.graph(_chunked(long, x, chunk)),
    )
    return n.graph(outputs)


def delta_rule(
    g: GraphBuilder, x: RuleInputs, outputs: tuple[str, str], name: str, chunk: int = CHUNK
) -> None:
    """The gated delta rule over S new tokens, written as ``outputs`` (o [B, H, S, Dv], new state
    [B, H, Dk, Dv]): an ``If`` running the recurrent step when S = 1, the chunked form otherwise
    (chunks of :data:`SHORT_CHUNK` up to that many tokens, of ``chunk`` beyond)."""
    n = _Nodes(name, g)
    single = n("Equal", [_new_tokens(n, x.v), n.ints("one", [1])], "single")
    step = _Nodes(f"{name}.step")
    g.op(
        "If",
        [single],
        outputs=list(outputs),
        then_branch=step.graph(_step(step, x)),
        else_branch=_several(name, x, chunk),
    )


def _value_heads(n: _Nodes, x: str, shapes: LinearAttention, tag: str) -> str:
    """[B, S, Hk Dk] -> [B, Hv, S, Dk]: each head L2-normalized, then repeated for the Hv / Hk
    value heads it serves."""
    hk, hv, dk = shapes.num_key_heads, shapes.num_value_heads, shapes.key_head_dim
    heads = n("Reshape", [x, n.ints(f"{tag}_heads", [0, 0, hk, 1, dk])], f"{tag}_split")
    axes = n.ints(f"{tag}_axes", [-1])
    total = n("ReduceSum", [n("Mul", [heads, heads], f"{tag}_square"), axes], f"{tag}_sum")
    shifted = n("Add", [total, n.floats(f"{tag}_eps", L2_EPS)], f"{tag}_shifted")
    unit = n("Div", [heads, n("Sqrt", [shifted], f"{tag}_norm")], f"{tag}_unit")
    if hv != hk:
        unit = n("Expand", [unit, n.ints(f"{tag}_repeat", [1, 1, 1, hv // hk, 1])], f"{tag}_rep")
    merged = n("Reshape", [unit, n.ints(f"{tag}_value_heads", [0, 0, hv, dk])], f"{tag}_merged")
    return n("Transpose", [merged], f"{tag}_heads_first", perm=[0, 2, 1, 3])


def gated_delta_net(
    g: GraphBuilder,
    config: ModelConfig,
    h: str,
    t: LayerTensors,
    state: tuple[str, str],
    new_state: tuple[str, str],
    chunk: int = CHUNK,
) -> str:
    """The ``linear_attn`` mixer of layer ``t.index`` on the normed hidden state ``h`` [B, S, E];
    its output [B, S, E]. ``state`` (conv [B, Ch, K-1], recurrent [B, Hv, Dk, Dv]) is read,
    ``new_state`` written. ``t.matmuls``: in_proj_qkv, in_proj_z, in_proj_b, in_proj_a,
    out_proj; ``t.vectors``: ``linear_attn.`` conv1d.weight [Ch, 1, K], dt_bias, A_log and
    norm.weight."""
    shapes = config.linear_attention
    if shapes is None:
        raise ValueError("a Gated DeltaNet layer needs config.linear_attention")
    hk, hv = shapes.num_key_heads, shapes.num_value_heads
    dk, dv = shapes.key_head_dim, shapes.value_head_dim
    p = f"model.layers.{t.index}.linear_attn"
    vectors = {k.removeprefix("linear_attn."): v for k, v in t.vectors.items()}
    n = _Nodes(p, g)
    names = ("in_proj_qkv", "in_proj_z", "in_proj_b", "in_proj_a")
    qkv, z, b, a = (linear(g, h, t.matmuls[x], None, f"{p}.{x}") for x in names)
    conv = vectors["conv1d.weight"]
    mixed = causal_conv(g, qkv, state[0], conv, new_state[0], f"{p}.conv1d")
    q, k, v = f"{p}.q", f"{p}.k", f"{p}.v"
    g.op("Split", [mixed, n.ints("sizes", [hk * dk, hk * dk, hv * dv])], outputs=[q, k, v], axis=-1)
    q = n("Mul", [_value_heads(n, q, shapes, "q"), n.floats("q_scale", dk**-0.5)], "q_scaled")
    v = n("Reshape", [v, n.ints("v_heads", [0, 0, hv, dv])], "v_split")
    v = n("Transpose", [v], "v_heads_first", perm=[0, 2, 1, 3])
    beta = n("Transpose", [n("Sigmoid", [b], "beta_tokens")], "beta", perm=[0, 2, 1])
    dt = n("Add", [a, g.const(f"{p}.dt_bias", vectors["dt_bias"].astype(np.float32))], "dt")
    minus_a = g.const(f"{p}.minus_a", -np.exp(vectors["A_log"].astype(np.float32)))
    decay = n("Mul", [n("Softplus", [dt], "rate"), minus_a], "decay_tokens")
    decay = n("Transpose", [decay], "decay", perm=[0, 2, 1])  # [B, Hv, S]
    k = _value_heads(n, k, shapes, "k")
    core = f"{p}.core"
    rule = RuleInputs(q, k, v, decay, beta, state[1], (dk, dv))
    delta_rule(g, rule, (core, new_state[1]), f"{p}.rule", chunk)
    o = n("Transpose", [core], "core_tokens", perm=[0, 2, 1, 3])  # [B, S, Hv, Dv]
    normed = rms_norm(g, o, vectors["norm.weight"], float(config.rms_norm_eps), f"{p}.norm")
    z = n("Reshape", [z, n.ints("z_heads", [0, 0, hv, dv])], "z_split")
    gated = swiglu(g, z, normed, f"{p}.gate")  # silu(z) * norm(o)
    gated = n("Reshape", [gated, n.ints("merged_shape", [0, 0, -1])], "merged")
    return linear(g, gated, t.matmuls["out_proj"], None, f"{p}.out_proj")
