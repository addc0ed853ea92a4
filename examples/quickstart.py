"""Quickstart: export the demo model to INT8, stream a continuation, print speed and power.

    python examples/quickstart.py [--prompt TEXT] [--tokens N] [--output DIR]

Uses only the public API: the exporter writes a verified bundle, the runtime streams tokens
from it, and the power module measures energy when this machine has a power sensor (INA3221 on a
Jetson, NVML on an NVIDIA GPU, RAPL as root); elsewhere it says why there are no watts.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_sdk.cli_support import Progress
from edge_sdk.exporters import demo_checkpoint_path, export
from edge_sdk.power import EfficiencyLog, PowerSampler, probe_sensors
from edge_sdk.runtime import load


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompt", default="Once upon a time, there was a little girl named Mia.")
    parser.add_argument(
        "--tokens", type=int, default=120, help="new tokens to generate (default 120)"
    )
    parser.add_argument("--output", type=Path, default=Path("demo-bundle"), help="bundle directory")
    args = parser.parse_args()

    print(
        f"1. Export {demo_checkpoint_path().name} (the demo model) to INT8 -> {args.output}",
        flush=True,
    )
    result = export(demo_checkpoint_path(), args.output, "int8", progress=Progress())
    acc = result.accuracy
    assert acc is not None
    print(
        f"   {result.onnx_bytes / 1e6:.2f} MB ({result.onnx_bytes / result.float_weight_bytes:.2f} "
        "x float32), "
        f"top-1 agreement with float {acc.top1_agreement:.3f}, perplexity "
        f"x{acc.perplexity_ratio:.3f}\n"
    )

    generator = load(args.output)
    sensor, why_not = probe_sensors()
    log = EfficiencyLog()
    sampler = PowerSampler(sensor, on_sample=log.add_sample) if sensor else None
    print("2. Generate (greedy):\n", flush=True)
    print(args.prompt, end="", flush=True)
    if sampler:
        sampler.start()
    log.start()
    stream = generator.stream(args.prompt, max_new_tokens=args.tokens)
    for event in stream:
        log.token(text=event.text, token_id=event.token_id)
        print(event.text, end="", flush=True)
    log.stop()
    if sampler:
        sampler.stop()
    assert stream.result is not None
    print(f"\n\n3. Speed: {stream.result.stats.summary()}")
    if sensor:
        run = log.summary().run
        print(
            f"   Power ({sensor.describe()}): {run.avg_w:.2f} W average, {run.energy_j:.2f} J, "
            f"{run.tokens_per_joule:.1f} tokens/s per watt"
        )
    else:
        print(
            f"   Power: no power sensor on this machine (tried {', '.join(why_not)}); "
            "on a Jetson the INA3221 rails give watts and tokens/s per watt"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
