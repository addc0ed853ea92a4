"""Serve the demo bundle with ``edge-serve`` and query it with the ``openai`` client.

    python examples/serve_and_query.py [--bundle DIR] [--slots N]

Exports the demo model to INT8 into DIR first when DIR holds no bundle (as quickstart.py does),
starts ``edge-serve DIR`` as its own process (the way a device runs it: one server that every
app talks to over HTTP), waits until ``/health`` says it is ready, asks for a chat completion,
streams a text completion, runs two requests at once, and stops the server with SIGTERM (it
drains and exits 0). Needs ``pip install 'edge-sdk-orin[cpu,export,serve]' openai``.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from edge_sdk.cli_support import Progress
from edge_sdk.exporters import demo_checkpoint_path, export


def wait_ready(url: str, timeout: float = 120.0) -> dict[str, object]:
    """Poll ``GET /health`` until it answers 200 (503 while the model loads)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                return dict(json.load(response))
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bundle", type=Path, default=Path("demo-bundle"), help="bundle directory")
    parser.add_argument("--slots", type=int, default=4, help="requests decoded together")
    args = parser.parse_args()

    if not (args.bundle / "manifest.json").is_file():
        print(f"Exporting the demo model to INT8 -> {args.bundle}", flush=True)
        export(demo_checkpoint_path(), args.bundle, "int8", progress=Progress())

    # port 0: any free port; --json prints {"event": "listening", "url": ...} on stdout
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_sdk.serve.cli",
            str(args.bundle),
            "--port",
            "0",
            "--slots",
            str(args.slots),
            "--json",
            "--no-access-log",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = json.loads(server.stdout.readline())["url"]
        health = wait_ready(url)
        print(
            f"edge-serve at {url}: {health['model']}, {health['slots']} slots, "
            f"context {health['max_context']}"
        )
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="none")  # no key on 127.0.0.1
        model = client.models.list().data[0].id

        chat = client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "Tell me a story."}],
            max_tokens=40,
            temperature=0,
        )
        print(f"\nchat: {chat.choices[0].message.content!r} ({chat.choices[0].finish_reason})")
        print(f"usage: {chat.usage.model_dump() if chat.usage else None}")

        print("\nstream: Once upon a time", end="", flush=True)
        for chunk in client.completions.create(
            model=model, prompt="Once upon a time", max_tokens=40, temperature=0, stream=True
        ):
            print(chunk.choices[0].text, end="", flush=True)
        print()

        prompts = ["The little dog", "Mia and her mom"]
        with ThreadPoolExecutor(len(prompts)) as pool:  # both run in the engine at once
            replies = list(
                pool.map(
                    lambda p: client.completions.create(
                        model=model, prompt=p, max_tokens=24, temperature=0
                    ),
                    prompts,
                )
            )
        for prompt, reply in zip(prompts, replies, strict=True):
            print(f"\n{prompt}{reply.choices[0].text}")
    finally:
        server.send_signal(signal.SIGTERM)  # drains: running requests finish, then exit 0
        code = server.wait(timeout=60)
    print(f"\nedge-serve stopped (exit {code})")
    return code


if __name__ == "__main__":
    sys.exit(main())
