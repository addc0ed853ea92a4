"""Multi-turn chat through ``edge-serve``: time to first token per turn, prompt cache on and off.

    python benchmarks/bench_serve.py --multi-turn [--system-tokens 1000] [--turns 5] [--repeats 3]

A conversation is a system prompt of ``--system-tokens`` tokens (words of ``WORDS``, a distinct
one per repeat, so that no repeat's first turn finds the previous one's in the cache) and
``--turns`` user messages of ``--user-words`` words (``--conversations`` of them take turns, as
one client: more conversations than slots evict each other's prefixes, which
``--prefix-cache-mb`` keeps in host memory); each turn streams ``/v1/chat/completions``
(greedy, ``--tokens`` tokens, end-of-sequence ignored) and the next turn sends the whole
conversation again, the replies included, as a chat client does. TTFT = request sent -> first
content chunk. Two ``edge-serve`` processes on the same bundle, one with ``--no-prefix-cache``
(the same-run baseline), serve the same conversations interleaved, one client at a time.
Reported per turn: median TTFT with and without the cache, their ratio, the cached and prompt
tokens the server's ``usage`` reported; and the median ratio over turns 2 to 5.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from edge_sdk.errors import EdgeError
from edge_sdk.tokenizer import Tokenizer

Turn = dict[str, float]  # ttft_s, prompt_tokens, cached_tokens


def system_prompt(tokenizer: Tokenizer, words: list[str], tokens: int, seed: int) -> str:
    """Random words from ``words`` until the text is ``tokens`` tokens long (or one over)."""
    rng = np.random.default_rng(seed)
    text = " ".join(rng.choice(words, 16))
    while len(tokenizer.encode(text, add_special_tokens=False)) < tokens:
        text += " " + " ".join(rng.choice(words, 16))
    return text


def chat_turn(
    client: httpx.Client, messages: list[dict[str, str]], tokens: int
) -> tuple[Turn, str]:
    """One streamed chat turn; its TTFT and usage, and the reply's text."""
    body = {
        "model": "m",
        "messages": messages,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "ignore_eos": True,
        "stream_options": {"include_usage": True},
    }
    sent = time.perf_counter()
    first: float | None = None
    text, usage = [], None
    with client.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            choices = chunk.get("choices") or []
            piece = choices[0].get("delta", {}).get("content") if choices else None
            if piece:
                first = first or time.perf_counter()
                text.append(piece)
            usage = chunk.get("usage") or usage
    if first is None or usage is None:
        raise EdgeError("the server streamed no text or no usage for a chat turn")
    details = usage.get("prompt_tokens_details") or {}
    turn = {
        "ttft_s": first - sent,
        "prompt_tokens": float(usage["prompt_tokens"]),
        "cached_tokens": float(details.get("cached_tokens", 0)),
    }
    return turn, "".join(text)


def conversations(
    url: str, systems: list[str], users: list[list[str]], tokens: int
) -> list[list[Turn]]:
    """Conversations (a system prompt and user messages each) against the server at ``url``,
    taking turns as one client: the first turn of each, then the second of each, ..."""
    chats = [[{"role": "system", "content": system}] for system in systems]
    turns: list[list[Turn]] = [[] for _ in systems]
    with httpx.Client(base_url=url, timeout=600) as client:
        for t in range(len(users[0])):
            for c, messages in enumerate(chats):
                messages.append({"role": "user", "content": users[c][t]})
                turn, reply = chat_turn(client, messages, tokens)
                messages.append({"role": "assistant", "content": reply})
                turns[c].append(turn)
    return turns


def run(
    bundle: Path,
    words: list[str],
    serve: Callable[[list[str]], Any],
    *,
    system_tokens: int,
    turns: int,
    user_words: int,
    tokens: int,
    repeats: int,
    log: Callable[[str], None],
    chats: int = 1,
    cache_flags: Sequence[str] = (),
) -> dict[str, Any]:
    """The multi-turn report: ``serve(extra_flags)`` is a context manager yielding a URL;
    ``chats`` conversations take turns; ``cache_flags``: more flags for the cached server."""
    tokenizer = Tokenizer(bundle / "tokenizer.json")
    rng = np.random.default_rng(1)
    runs: dict[str, list[list[Turn]]] = {"cache": [], "no_cache": []}
    with serve(list(cache_flags)) as cached_url, serve(["--no-prefix-cache"]) as plain_url:
        urls = {"cache": cached_url, "no_cache": plain_url}
        for url in urls.values():  # warm-up: a short conversation of its own
            conversations(url, ["Hello."], [["hi"]], 4)
        for repeat in range(repeats):
            systems = [
                system_prompt(tokenizer, words, system_tokens, seed=100 + repeat * chats + c)
                for c in range(chats)
            ]
            users = [
                [" ".join(rng.choice(words, user_words)) for _ in range(turns)]
                for _ in range(chats)
            ]
            for name, url in urls.items():
                runs[name] += conversations(url, systems, users, tokens)
            log(f"multi-turn: repeat {repeat + 1} of {repeats} done")
    per_turn = []
    for t in range(turns):
        on = statistics.median(r[t]["ttft_s"] for r in runs["cache"])
        off = statistics.median(r[t]["ttft_s"] for r in runs["no_cache"])
        per_turn.append(
            {
                "turn": t + 1,
                "ttft_cache_s": on,
                "ttft_no_cache_s": off,
                "speedup": off / on,
                "prompt_tokens": statistics.median(r[t]["prompt_tokens"] for r in runs["cache"]),
                "cached_tokens": statistics.median(r[t]["cached_tokens"] for r in runs["cache"]),
            }
        )
    later = [row["speedup"] for row in per_turn[1:]]
    return {
        "system_tokens": system_tokens,
        "turns": turns,
        "tokens_per_reply": tokens,
        "repeats": repeats,
        "conversations": chats,
        "cache_flags": list(cache_flags),
        "per_turn": per_turn,
        "speedup_turns_2_on_median": statistics.median(later) if later else None,
        "speedup_turns_2_on_min": min(later) if later else None,
        "runs": runs,
    }


def print_report(report: dict[str, Any], title: str) -> None:
    print(f"\n{title}")
    print(
        f"{'turn':>4s} {'prompt':>7s} {'cached':>7s} {'TTFT cache':>11s} {'no cache':>9s} "
        f"{'speedup':>8s}"
    )
    for row in report["per_turn"]:
        print(
            f"{row['turn']:4d} {row['prompt_tokens']:7.0f} {row['cached_tokens']:7.0f} "
            f"{row['ttft_cache_s'] * 1e3:9.0f}ms {row['ttft_no_cache_s'] * 1e3:7.0f}ms "
            f"{row['speedup']:7.1f}x"
        )
    median = report["speedup_turns_2_on_median"]
    if median is not None:
        print(
            f"turns 2-{report['turns']}: TTFT {median:.1f}x lower with the cache "
            f"(median; min {report['speedup_turns_2_on_min']:.1f}x)"
        )
