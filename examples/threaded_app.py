"""Generation in a worker thread, tokens handed to a UI- or ROS-style callback, with cancellation.

    python examples/threaded_app.py BUNDLE "Once upon a time" [--cancel-after 20]

A device application keeps its main loop (a UI event loop, a ROS executor) free: a worker
thread runs the model and posts each piece of text to a callback; the main thread can cancel at
any time (a button, a new voice command, a ROS message) and start again on the same generator.
Uses only the public API (edge_sdk.runtime).
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

from edge_sdk.runtime import GenerationResult, Generator, Stream, TokenEvent, load


class TextWorker:
    """Runs one generation at a time in a background thread; ``on_text`` gets every piece."""

    def __init__(self, generator: Generator, on_text: Callable[[str], None]) -> None:
        self.generator = generator
        self.on_text = on_text
        self.done: queue.Queue[GenerationResult] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stream: Stream | None = None

    def start(self, prompt: str, **options: Any) -> None:
        """Begin generating (cancels a generation still running)."""
        self.cancel()
        # Made here, in the caller's thread, so that cancel() can always reach it.
        stream = self._stream = self.generator.stream(prompt, **options)

        def forward(event: TokenEvent) -> None:
            if event.text:
                self.on_text(event.text)  # e.g. publish a std_msgs/String, or post to the UI

        self._thread = threading.Thread(
            target=lambda: self.done.put(stream.run(forward)), name="edge-sdk-generate", daemon=True
        )
        self._thread.start()

    def cancel(self) -> None:
        """Stop the running generation at its next token and wait for the thread."""
        if self._stream is not None:
            self._stream.cancel()
        if self._thread is not None:
            self._thread.join()
        self._thread = self._stream = None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", help="bundle directory (made by edge-export)")
    parser.add_argument("prompt", nargs="?", default="Once upon a time")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument(
        "--cancel-after",
        type=int,
        default=0,
        help="cancel from the main thread after this many pieces (0: never)",
    )
    args = parser.parse_args()

    received: queue.Queue[str] = queue.Queue()  # the UI thread's inbox
    with load(args.bundle) as generator:
        worker = TextWorker(generator, received.put)
        worker.start(args.prompt, max_new_tokens=args.max_new_tokens)
        pieces = 0
        while True:  # the application's main loop
            try:
                text = received.get(timeout=0.05)
            except queue.Empty:
                if not worker.done.empty():
                    break
                continue
            print(text, end="", flush=True)
            pieces += 1
            if args.cancel_after and pieces == args.cancel_after:
                worker.cancel()
                break
        result = worker.done.get()
        while not received.empty():  # pieces posted before the worker saw the cancel
            print(received.get(), end="")
        print(
            f"\n[{result.stop_reason}: {result.stats.new_tokens} tokens, "
            f"{result.stats.decode_tokens_per_s:.0f} tok/s]",
            file=sys.stderr,
        )
        # the generator is free again at once
        again = generator.generate(args.prompt, max_new_tokens=8)
        print(f"[reused: {again.stats.new_tokens} tokens]", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
