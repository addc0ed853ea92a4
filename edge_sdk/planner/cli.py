"""``edge-plan``: will a model fit on a Jetson module, how fast can it be, what does it cost."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from edge_sdk.cli_support import EXIT_OK, add_common_flags, print_json, run_command
from edge_sdk.errors import ConfigError
from edge_sdk.planner.catalog import DEVICES, Device, get_device
from edge_sdk.planner.cost import DEFAULT_ELECTRICITY_PRICE, read_tokens_per_joule
from edge_sdk.planner.inputs import ModelSource, resolve_model
from edge_sdk.planner.memory import DEFAULT_HEADROOM
from edge_sdk.planner.nvpmodel_conf import device_with_conf
from edge_sdk.planner.plan import DEFAULT_CONTEXT, CostInputs, Plan, plan
from edge_sdk.planner.precision import DTYPE_BYTES, PRECISIONS
from edge_sdk.planner.presets import PRESETS
from edge_sdk.planner.report import format_comparison, format_plan

__all__ = ["build_parser", "main"]

_COMPARED_PRECISIONS = ("fp32", "fp16", "int8", "int4")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-plan",
        description="Estimate whether a model fits on a device, its time to first token and decode "
        "speed bounds, and its energy and cost, before exporting anything.",
        epilog=f"Devices: {', '.join(DEVICES)}. Presets: {', '.join(PRESETS)}.",
    )
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a bundle directory, a Hugging Face config.json (or a folder with one), "
        "the SDK's model.pt, a llama.cpp .gguf file (its metadata is read), or a preset name",
    )
    parser.add_argument(
        "--device", help="device name (see the list below); required unless --compare devices"
    )
    parser.add_argument(
        "--mode",
        help="power mode by name or wattage, e.g. 15W or MAXN (default: the device's default mode)",
    )
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="weight precision (default: a bundle's own precision, else int8)",
    )
    parser.add_argument(
        "--group-size",
        type=int,
        default=None,
        help="input values per scale: int4 (default 32, as edge-export --int4), int8 "
        "(default 64, as "
        "edge-export; 0: one scale per output channel)",
    )
    parser.add_argument(
        "--keep-embedding",
        action="store_true",
        help="keep the embedding table in float instead of quantizing it",
    )
    parser.add_argument(
        "--context",
        type=int,
        default=None,
        help=f"tokens per sequence, prompt + generated (default {DEFAULT_CONTEXT}, "
        "or the model's limit when lower: a bundle's max_sequence_length, "
        "else max_position_embeddings); above that limit is an error",
    )
    parser.add_argument(
        "--prompt",
        type=int,
        help="prompt tokens for the time to first token (default: half the context)",
    )
    parser.add_argument(
        "--batch", type=int, default=1, help="sequences decoded together (default 1)"
    )
    parser.add_argument(
        "--kv-dtype",
        choices=sorted(DTYPE_BYTES),
        help="KV cache dtype (default: the precision's activation dtype; fp32 for "
        "the SDK's int8 bundles); a linear-attention state stays fp32",
    )
    parser.add_argument(
        "--headroom",
        type=float,
        default=DEFAULT_HEADROOM,
        help=f"fraction of usable memory kept free (default {DEFAULT_HEADROOM})",
    )
    parser.add_argument(
        "--reserved-gb",
        type=float,
        help="memory the OS and CUDA context keep, GB (default: 1.5 on Jetson, "
        "0.5 on a discrete GPU)",
    )
    parser.add_argument(
        "--nvpmodel-conf",
        metavar="FILE",
        help="take the device's power modes and clock caps from this nvpmodel "
        "configuration file (e.g. /etc/nvpmodel.conf)",
    )
    parser.add_argument(
        "--compare",
        metavar="WHAT",
        help="'devices', 'precisions', or a comma list of device or precision names",
    )
    parser.add_argument(
        "--efficiency",
        metavar="FILE",
        help="measured efficiency summary (JSON with tokens_per_joule) from edge-power",
    )
    parser.add_argument(
        "--electricity-price",
        type=float,
        default=DEFAULT_ELECTRICITY_PRICE,
        help=f"price per kWh (default {DEFAULT_ELECTRICITY_PRICE})",
    )
    parser.add_argument("--years", type=float, default=3.0, help="TCO period in years (default 3)")
    parser.add_argument(
        "--utilisation",
        type=float,
        default=0.5,
        help="fraction of the time the device decodes (default 0.5)",
    )
    parser.add_argument(
        "--hardware-price",
        type=float,
        help="hardware price for the TCO (default: the catalog's list price)",
    )
    parser.add_argument(
        "--power-draw", type=float, help="power while decoding, W (default: the mode's budget)"
    )
    parser.add_argument(
        "--idle-power", type=float, default=0.0, help="power while idle, W (default 0)"
    )
    add_common_flags(parser)
    return parser


def _compare_targets(what: str) -> tuple[str, list[str]]:
    key = what.strip().lower()
    if key == "devices":
        return "device", list(DEVICES)
    if key == "precisions":
        return "precision", list(_COMPARED_PRECISIONS)
    items = [item.strip().lower() for item in what.split(",") if item.strip()]
    if items and all(item in DEVICES for item in items):
        return "device", items
    if items and all(item in PRECISIONS for item in items):
        return "precision", items
    raise ConfigError(
        f"--compare takes 'devices', 'precisions' or a comma list of devices "
        f"({', '.join(DEVICES)}) or of precisions ({', '.join(PRECISIONS)}); got {what!r}"
    )


def _device(name: str, args: argparse.Namespace) -> Device:
    device = get_device(name)
    if args.reserved_gb is not None:
        device = device.with_reserved(int(args.reserved_gb * 1e9))
    return device


def _plan(
    source: ModelSource,
    device: Device,
    precision: str,
    mode: str | None,
    args: argparse.Namespace,
    costs: CostInputs,
) -> Plan:
    group = args.group_size
    if group is None and precision == source.precision:
        group = source.group_size  # the bundle's own
    measured = source.bundle_model_bytes if precision == source.precision else None
    return plan(
        source.config,
        device,
        model_name=source.name,
        mode=mode,
        precision=precision,
        group_size=group,
        context=args.context,
        batch=args.batch,
        prompt=args.prompt,
        kv_dtype=args.kv_dtype,
        quantize_embedding=not args.keep_embedding,
        headroom=args.headroom,
        costs=costs,
        bundle_model_bytes=measured,
        context_limit=source.context_limit,
        context_limit_source=source.context_limit_source,
    )


def _run(args: argparse.Namespace) -> int:
    by, targets = _compare_targets(args.compare) if args.compare else ("", [])
    if by != "device" and not args.device:
        raise ConfigError(f"--device is required (valid devices: {', '.join(DEVICES)})")
    if args.compare and (args.efficiency or args.nvpmodel_conf) and by == "device":
        raise ConfigError(
            "--efficiency and --nvpmodel-conf describe one device; drop --compare devices"
        )
    source = resolve_model(args.model)
    precision = (
        args.precision or (source.precision if source.precision in PRECISIONS else None) or "int8"
    )
    costs = CostInputs(
        electricity_price=args.electricity_price,
        years=args.years,
        utilisation=args.utilisation,
        hardware_price=args.hardware_price,
        power_w=args.power_draw,
        idle_power_w=args.idle_power,
        tokens_per_joule=read_tokens_per_joule(args.efficiency) if args.efficiency else None,
        efficiency_source=args.efficiency or "",
    )
    if not by:
        device = _device(args.device, args)
        if args.nvpmodel_conf:
            device = device_with_conf(device, args.nvpmodel_conf)
        result = _plan(source, device, precision, args.mode, args, costs)
        if args.json:
            print_json(result.to_dict())
        else:
            print(format_plan(result))
        return EXIT_OK
    plans: list[Plan] = []
    notes: list[str] = []
    if by == "device":
        for name in targets:
            device = _device(name, args)
            try:
                mode = device.mode(args.mode).name if args.mode else None
            except ConfigError:
                notes.append(
                    f"{name} has no {args.mode} mode (modes: "
                    f"{', '.join(m.name for m in device.modes)}); left out"
                )
                continue
            plans.append(_plan(source, device, precision, mode, args, costs))
    else:
        device = _device(args.device, args)
        if args.nvpmodel_conf:
            device = device_with_conf(device, args.nvpmodel_conf)
        plans = [_plan(source, device, name, args.mode, args, costs) for name in targets]
    if not plans:
        raise ConfigError(f"no device has a {args.mode} mode")
    if args.json:
        print_json({"compare": by, "plans": [p.to_dict() for p in plans], "notes": notes})
    else:
        print(format_comparison(plans, by, notes))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-plan``."""
    parser = build_parser()
    return run_command(_run, parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
