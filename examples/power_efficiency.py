"""Generate under the board's 15W power mode and write a tokens/s-per-watt log.

A device application using only the public API. On a Jetson::

    sudo python examples/power_efficiency.py demo-bundle --mode 15W --log run.jsonl

Anywhere else, replay a power trace instead of the INA3221 sensors (the packaged sample trace, or
a recorded log: replay:FILE; the mode change is skipped when there is no nvpmodel)::

    python examples/power_efficiency.py demo-bundle --sensor replay:sample
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys

from edge_sdk import EdgeError
from edge_sdk.power import EfficiencyLog, NvpModel, PowerSampler, open_sensor, power_mode
from edge_sdk.runtime import load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle", help="a bundle directory made by edge-export")
    parser.add_argument("--mode", default="15W", help="power mode (budget, name or id)")
    parser.add_argument(
        "--sensor", default="auto", help="auto, ina3221, ..., replay:FILE, replay:sample"
    )
    parser.add_argument("--tokens", type=int, default=64, help="tokens to generate")
    parser.add_argument("--prompt", default="The Jetson Orin is")
    parser.add_argument("--log", default="power_efficiency.jsonl", help="JSONL log to write")
    parser.add_argument("--summary", help="also write the summary as JSON here")
    args = parser.parse_args()

    try:
        generator = load(args.bundle)
        has_modes = NvpModel().program is not None
        mode = power_mode(args.mode) if has_modes else contextlib.nullcontext()
        if not has_modes:
            print("no nvpmodel here: running in the current power state", file=sys.stderr)
        with mode, open_sensor(args.sensor) as sensor:
            log = EfficiencyLog(args.log)
            with PowerSampler(sensor, on_sample=log.add_sample):
                stream = generator.stream(args.prompt, max_new_tokens=args.tokens)
                log.start(prompt_tokens=len(stream.prompt_ids))
                for event in stream:
                    log.token(text=event.text, token_id=event.token_id)
                log.stop()
            summary = log.write_summary(
                args.summary, info={"mode": args.mode, "sensor": sensor.describe()}
            )
            log.close()
    except EdgeError as exc:
        print(f"power_efficiency: error: {exc}", file=sys.stderr)
        return 1
    run = summary.run
    print(
        json.dumps(
            {
                "tokens": run.tokens,
                "tokens_per_s": run.tokens_per_s,
                "avg_w": run.avg_w,
                "joules": run.energy_j,
                "tokens_per_s_per_w": run.tokens_per_joule,
                "mj_per_token": run.mj_per_token,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
