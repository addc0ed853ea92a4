"""A streaming chat loop on a bundle: each line you type is a turn; replies stream as they come.

    python examples/chat.py BUNDLE [--max-new-tokens 64]

Each line is a user message laid out by the bundle's chat template (a plain "role: content"
fallback for models without one). The conversation stays in the model's KV cache, so each turn
only runs the new text; a thinking model's reasoning (its <think> block) streams to stderr,
its answer to stdout. Uses only the public API (edge_sdk.runtime). End with Ctrl-D (or an
empty line).
"""

from __future__ import annotations

import argparse
import sys

from edge_sdk import EdgeError
from edge_sdk.runtime import load


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="bundle directory (made by edge-export)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="longest reply")
    parser.add_argument("--temperature", type=float, default=0.7, help="0 is greedy")
    parser.add_argument("--seed", type=int, default=None, help="repeatable replies")
    args = parser.parse_args()

    try:
        generator = load(args.bundle)
    except EdgeError as exc:
        print(f"chat: {exc}", file=sys.stderr)
        return 1
    with generator:
        conversation = generator.chat()
        while True:
            print("you> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line.strip():
                return 0
            print("bot> ", end="", flush=True)
            try:
                stream = conversation.send(
                    line.rstrip("\n"),
                    max_new_tokens=args.max_new_tokens,
                    temperature=args.temperature,
                    seed=args.seed,
                )
                for event in stream:  # a thinking model's reasoning goes to stderr
                    print(event.reasoning, end="", file=sys.stderr, flush=True)
                    print(event.text, end="", flush=True)
            except EdgeError as exc:  # e.g. the conversation no longer fits the context
                print(f"\nchat: {exc}", file=sys.stderr)
                return 1
            print()
            stats = stream.result.stats if stream.result else None
            print(
                f"[{stats.new_tokens} tokens, {stats.decode_tokens_per_s:.0f} tok/s, "
                f"context {stats.context_tokens}]"
                if stats
                else "",
                file=sys.stderr,
            )


if __name__ == "__main__":
    sys.exit(main())
