"""Will TensorRT take this ONNX graph? A check that runs anywhere (onnx only, no TensorRT).

::

    report = check_path("demo-int8", target="10")     # a bundle directory or an .onnx file
    print(report.format())                            # each offending node and what to change
    report.ok                                         # False when TensorRT would refuse it

Checked against the tables of :mod:`edge_sdk.exporters.tensorrt.ops` (from onnx-tensorrt's operator
matrix): every op has an importer in the target version; QDQ is in TensorRT's explicit-quantization
form (int8 symmetric, zero point 0 or absent, build-time scales, per-channel only on weights and
along a MatMul weight's output channel, activations per-tensor, block-wise only for int4 on 10.x);
no element type TensorRT rejects (quantized types outside Q/DQ on 10.x, uint8 inside the graph,
strings, complex); every dynamic dimension covered by the optimization profiles
(:mod:`edge_sdk.exporters.tensorrt.profiles`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import onnx

from edge_sdk.config import DEFAULT_MAX_SEQ_LEN
from edge_sdk.errors import BundleError, ConfigError
from edge_sdk.exporters.tensorrt import ops as T
from edge_sdk.exporters.tensorrt.ops import DEFAULT_TARGET
from edge_sdk.exporters.tensorrt.profiles import Profile, engine_profiles
from edge_sdk.exporters.tensorrt.qdq import QdqContext, check_qdq
from edge_sdk.exporters.tensorrt.rewrite import rewrite_for_tensorrt

__all__ = ["DEFAULT_TARGET", "CompatReport", "Finding", "check_model", "check_path"]

_TYPE_NAMES = {v: k.lower() for k, v in onnx.TensorProto.DataType.items()}
_QDQ = ("QuantizeLinear", "DequantizeLinear")
_QUANTIZED = frozenset({T.INT8, T.INT4, T.UINT8, T.UINT4})
_OP_FIXES = {
    "MatMulNBits": "use the standard-op graph (DequantizeLinear -> MatMul), not the ORT-only one",
    "Reciprocal": "write it as Div(1, x)",
    "IsInf": "compare Abs(x) with +inf (Equal) instead",
    "HardSwish": "write it as x * HardSigmoid(x, alpha=1/6)",
}


@dataclass(frozen=True)
class Finding:
    """One problem: where (node or tensor), what, and what to change."""

    severity: str  # "error" (TensorRT refuses the graph) or "warning" (builds, with a caveat)
    node: str
    op: str
    problem: str
    fix: str

    def format(self) -> str:
        """One readable line."""
        where = f"{self.op} node {self.node!r}" if self.op else f"{self.node!r}"
        return f"{self.severity}: {where}: {self.problem}. Fix: {self.fix}"


@dataclass(frozen=True)
class CompatReport:
    """The result of :func:`check_model` for one TensorRT version."""

    source: str
    target: str
    opset: int
    nodes: int
    findings: tuple[Finding, ...] = field(default_factory=tuple)

    @property
    def errors(self) -> list[Finding]:
        """Findings that make TensorRT refuse the graph."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        """Findings that let it build, with a caveat."""
        return [f for f in self.findings if f.severity != "error"]

    @property
    def ok(self) -> bool:
        """True when nothing would make TensorRT refuse the graph."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``edge-engine --check --json``)."""
        return {
            "source": self.source,
            "tensorrt": self.target,
            "opset": self.opset,
            "nodes": self.nodes,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [asdict(f) for f in self.findings],
        }

    def format(self) -> str:
        """The report as text: a verdict line, then one line per finding."""
        verdict = "PASS" if self.ok else "FAIL"
        head = (
            f"TensorRT {self.target} compatibility of {self.source} (opset {self.opset}, "
            f"{self.nodes} nodes): {verdict}, {len(self.errors)} errors, "
            f"{len(self.warnings)} warnings"
        )
        return "\n".join([head, *("  " + f.format() for f in self.findings)])


def _elem_types(model: onnx.ModelProto) -> dict[str, int]:
    graph = model.graph
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False).graph
    except Exception:  # noqa: BLE001 - inference is a help, not a requirement
        inferred = graph
    types: dict[str, int] = {}
    for info in [*inferred.value_info, *graph.input, *graph.output]:
        if info.type.HasField("tensor_type"):
            types[info.name] = info.type.tensor_type.elem_type
    for init in graph.initializer:
        types[init.name] = init.data_type
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    types[node.output[0]] = attr.t.data_type
    return types


def _constants(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    consts = {init.name: init for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    consts[node.output[0]] = attr.t
    return consts


def _input_specs(model: onnx.ModelProto) -> list[dict[str, Any]]:
    inits = {i.name for i in model.graph.initializer}
    specs = []
    for info in model.graph.input:
        if info.name in inits:
            continue
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in info.type.tensor_type.shape.dim
        ]
        specs.append({"name": info.name, "shape": dims})
    return specs


def _check_profiles(
    specs: Sequence[dict[str, Any]], profiles: Sequence[Profile] | None, max_seq_len: int
) -> list[Finding]:
    if profiles is None:
        try:
            profiles = engine_profiles(specs, max_seq_len)
        except ConfigError as exc:
            return [
                Finding(
                    "error",
                    "(profiles)",
                    "",
                    str(exc),
                    "name the dynamic dimensions batch, sequence, past_sequence and "
                    "total_sequence as the exporter does, or give profiles for them",
                )
            ]
    findings: list[Finding] = []
    for spec in specs:
        dynamic = [d for d in spec["shape"] if not isinstance(d, int) or d <= 0]
        if not dynamic:
            continue
        for profile in profiles:
            shapes = profile.shapes.get(spec["name"])
            if shapes is None or any(len(s) != len(spec["shape"]) for s in shapes):
                findings.append(
                    Finding(
                        "error",
                        spec["name"],
                        "",
                        f"the dynamic dimensions {dynamic} of this input are not covered by the "
                        f"{profile.name} profile",
                        "add min/opt/max shapes of the input's rank to it",
                    )
                )
                continue
            low, opt, high = shapes
            for i, dim in enumerate(spec["shape"]):
                static = isinstance(dim, int) and dim > 0
                if static and not low[i] == opt[i] == high[i] == dim:
                    findings.append(
                        Finding(
                            "error",
                            spec["name"],
                            "",
                            f"{profile.name} profile gives dim {i} a range, the graph fixes it at "
                            f"{dim}",
                            "make the profile match the graph",
                        )
                    )
                elif not low[i] <= opt[i] <= high[i]:
                    findings.append(
                        Finding(
                            "error",
                            spec["name"],
                            "",
                            f"{profile.name} profile dim {i}: min {low[i]} <= opt {opt[i]} <= max "
                            f"{high[i]} fails",
                            "order the profile's shapes",
                        )
                    )
    return findings


def _check_types(
    model: onnx.ModelProto, types: dict[str, int], target: T.TrtTarget
) -> list[Finding]:
    findings: list[Finding] = []
    io = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    narrowed: list[str] = []
    for name, elem in sorted(types.items()):
        label = _TYPE_NAMES.get(elem, str(elem))
        if elem == T.INT64 and not target.native_int64 and name in io:
            narrowed.append(name)
        elif elem == T.DOUBLE:
            findings.append(
                Finding(
                    "warning",
                    name,
                    "",
                    "a double tensor; TensorRT casts it to float32, clamping to +-FLT_MAX",
                    "export it as float32",
                )
            )
        elif elem in target.io_only_types and name not in io:
            findings.append(
                Finding(
                    "error",
                    name,
                    "",
                    f"a {label} tensor inside the graph; TensorRT "
                    f"{target.version} takes {label} only as a network input or output",
                    "use int8 with zero point 0 (symmetric) or a float type",
                )
            )
        elif elem not in target.types and elem not in target.io_only_types:
            findings.append(
                Finding(
                    "error",
                    name,
                    "",
                    f"element type {label} is not a TensorRT {target.version} type",
                    "use float32, float16, int32, int64 or bool",
                )
            )
    if narrowed:
        findings.append(
            Finding(
                "warning",
                ", ".join(narrowed),
                "",
                "int64 network inputs/outputs: "
                "TensorRT 8.6 casts them to int32, so the engine's tensors are int32",
                "none needed: the tensorrt backend feeds each tensor the dtype the engine reports",
            )
        )
    return findings


def _check_quantized_flow(
    model: onnx.ModelProto, types: dict[str, int], consts: dict[str, Any], target: T.TrtTarget
) -> list[Finding]:
    """Quantized tensors consumed by ops other than Q/DQ (10.x accepts them only inside Q/DQ)."""
    if target.int8_outside_qdq:
        return []
    findings: list[Finding] = []
    covered: set[str] = set()
    for node in model.graph.node:
        if node.op_type in _QDQ or node.op_type == "Constant":
            continue
        bad = [n for n in node.input if n and types.get(n) in _QUANTIZED]
        if not bad or all(n in covered for n in bad):
            covered.update(node.output if bad else ())
            continue
        covered.update(node.output)
        table = bad[0]
        label = _TYPE_NAMES.get(types[table], "")
        if node.op_type == "Gather" and table in consts:
            fix = (
                f"dequantize the table before gathering: DequantizeLinear({table}, per-row "
                "scales, axis=0) -> Gather; one such DequantizeLinear can also feed a tied LM "
                "head through Transpose"
            )
        elif node.op_type == "Transpose" and table in consts:
            fix = (
                f"dequantize first, then transpose: DequantizeLinear({table}, scales, axis=0) "
                "-> Transpose (same scales, per row of the stored table)"
            )
        else:
            fix = "move the op after the DequantizeLinear so that it sees a float tensor"
        findings.append(
            Finding(
                "error",
                node.name or node.output[0],
                node.op_type,
                f"consumes the {label} tensor {table}; TensorRT {target.version} treats {label} as "
                "a quantized type that exists only between QuantizeLinear and DequantizeLinear",
                fix,
            )
        )
    return findings


def check_model(
    model: onnx.ModelProto,
    target: str = DEFAULT_TARGET,
    profiles: Sequence[Profile] | None = None,
    max_seq_len: int = DEFAULT_MAX_SEQ_LEN,
    source: str = "<model>",
    base_dir: str | os.PathLike[str] = "",
    rewrite: bool = False,
) -> CompatReport:
    """Check ``model`` for TensorRT ``target`` ("8.6" or "10"); see the module docstring.

    ``profiles`` default to :func:`~edge_sdk.exporters.tensorrt.profiles.engine_profiles` for
    ``max_seq_len``; ``base_dir`` is where external tensor data lives. ``rewrite``: check the graph
    as ``edge-engine`` parses it, after
    :func:`~edge_sdk.exporters.tensorrt.rewrite.rewrite_for_tensorrt` (each rewrite is listed as a
    warning).
    """
    trt = T.get_target(target)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    findings: list[Finding] = []
    if rewrite:
        model, changes = rewrite_for_tensorrt(model)
        findings += [
            Finding(
                "warning",
                c.node,
                "",
                "an int8 table read outside Q/DQ, which TensorRT 10 "
                f"refuses; edge-engine builds from a rewritten copy ({c.change})",
                "none for edge-engine; exporters should write this form directly",
            )
            for c in changes
        ]
    if opset > trt.max_opset:
        findings.append(
            Finding(
                "warning",
                "(graph)",
                "",
                f"opset {opset} is above the {trt.max_opset} "
                f"TensorRT {trt.version}'s parser documents",
                f"export at opset <= {trt.max_opset} if the parser refuses a node",
            )
        )
    types = _elem_types(model)
    consts = _constants(model)
    qctx = QdqContext(model, types, consts, trt, str(base_dir))
    for node in model.graph.node:
        name = node.name or (node.output[0] if node.output else node.op_type)
        if node.domain not in ("", "ai.onnx"):
            findings.append(
                Finding(
                    "error",
                    name,
                    f"{node.domain}.{node.op_type}",
                    f"TensorRT's ONNX parser has no importer for domain {node.domain}",
                    _OP_FIXES.get(node.op_type, "use standard ONNX ops or a TensorRT plugin"),
                )
            )
        elif node.op_type not in trt.ops:
            findings.append(
                Finding(
                    "error",
                    name,
                    node.op_type,
                    f"TensorRT {trt.version} has no importer for {node.op_type}",
                    _OP_FIXES.get(
                        node.op_type,
                        "rewrite it with supported ops or register a TensorRT plugin for it",
                    ),
                )
            )
        elif node.op_type in _QDQ:
            findings.extend(Finding(*f) for f in check_qdq(node, name, qctx))
    findings += _check_quantized_flow(model, types, consts, trt)
    findings += _check_types(model, types, trt)
    findings += _check_profiles(_input_specs(model), profiles, max_seq_len)
    return CompatReport(source, trt.version, opset, len(model.graph.node), tuple(findings))


def check_path(
    path: str | os.PathLike[str],
    target: str = DEFAULT_TARGET,
    max_seq_len: int | None = None,
    rewrite: bool = True,
) -> CompatReport:
    """Check a bundle directory (its graph, with its manifest's shapes) or an ``.onnx`` file.

    By default the graph is checked as ``edge-engine`` parses it (``rewrite``, see
    :func:`check_model`); ``rewrite=False`` checks the file exactly as it is.
    """
    root = Path(path)
    profiles: list[Profile] | None = None
    if root.is_dir():
        try:
            manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
            graph = manifest["graph"]
            onnx_path = root / graph["file"]
            longest = int(max_seq_len or graph["max_sequence_length"])
            profiles = engine_profiles(graph["inputs"], longest)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BundleError(
                f"{root} is not a readable edge-sdk bundle ({exc}); pass an .onnx file "
                "or export the bundle again"
            ) from exc
    else:
        onnx_path, longest = root, int(max_seq_len or DEFAULT_MAX_SEQ_LEN)
    try:
        model = onnx.load(str(onnx_path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError, ValidationError, OSError
        raise BundleError(f"cannot read the ONNX graph {onnx_path}: {exc}") from exc
    report = check_model(model, target, profiles, longest, str(path), onnx_path.parent, rewrite)
    missed = missed_gate(root) if root.is_dir() else None
    if missed is None:
        return report
    return replace(report, findings=(*report.findings, missed))


def missed_gate(bundle: Path) -> Finding | None:
    """A warning when the bundle's ``model.onnx`` (TensorRT's graph) missed its accuracy gate at
    export and was kept for the CPU's fused graph; None when it passed or the record is absent."""
    try:
        manifest = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        gate = str(manifest["accuracy"]["quantized_vs_float"]["gate"])
        graph = str(manifest["graph"]["file"])
        precision = str(manifest.get("precision", {}).get("weights", ""))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if not gate.startswith("missed"):
        return None
    other = "--int4 or --fp16" if "int8" in precision else "--fp16"
    return Finding(
        "warning",
        graph,
        "",
        f"this graph missed its accuracy gate at export ({gate}); an engine built from it "
        "is less accurate than the bundle's CPU graph",
        f"for TensorRT, export the model again with {other}",
    )
