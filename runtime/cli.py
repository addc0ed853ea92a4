"""``edge-run``: stream text from a bundle.

    edge-run demo-int8 "Once upon a time" -n 64 --stats
    echo "Once upon a time" | edge-run demo-int8 --json
    edge-run demo-int8 --chat [--system TEXT] [--no-template]
    edge-run qwen3-int8 --chat --chat-template-kwargs '{"enable_thinking": false}'
    edge-run smollm2-int8 --chat --json-schema command.schema.json     # structured output

Text goes to stdout as it is generated; statistics to stderr (``--stats``); ``--json`` prints
one object (``text``, ``token_ids``, ``stop_reason``, ``stats``; ``reasoning`` when split)
instead, one per turn with ``--chat``. A thinking model's reasoning (its ``<think>`` block) goes
to stderr, dimmed on a terminal, and its answer to stdout. Exit 0 on success, 1 for an error
the user can fix, 2 for bad usage, 130 on Ctrl-C.

Input is read as UTF-8 (the prompt, ``--chat`` lines, ``--system``, ``--stop``): bytes that are
not UTF-8 are replaced by U+FFFD and one warning line on stderr says so; the rest runs as usual.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge_sdk.cli_support import EXIT_OK, add_common_flags, run_command
from edge_sdk.errors import ContextFullError, GenerationError
from edge_sdk.runtime.backend import AUTO_ORDER, BACKENDS
from edge_sdk.runtime.constraints import ResponseFormat
from edge_sdk.runtime.generator import (
    DEFAULT_MAX_NEW_TOKENS,
    Conversation,
    Generator,
    Stream,
    load,
)
from edge_sdk.runtime.options import GenerationOptions
from edge_sdk.runtime.reasoning import REASONING_FORMATS, reasoning_choice
from edge_sdk.runtime.sequence import GenerationResult
from edge_sdk.runtime.speculative import MAX_DRAFT_TOKENS, SpeculativeOptions
from edge_sdk.runtime.text_input import Utf8Input, tolerant_stdin

__all__ = ["add_chat_flags", "add_runtime_flags", "build_parser", "main", "template_kwargs_arg"]

DIM, RESET = "\033[2m", "\033[0m"


def build_parser() -> argparse.ArgumentParser:
    """The ``edge-run`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="edge-run",
        description="Stream text from an edge-sdk bundle (made by edge-export).",
        epilog="Stop reasons: eos, stop (a --stop string), max_new_tokens, length (the context "
        "is full), cancelled. Input (prompt, --chat lines, --system, --stop) is read as UTF-8: "
        "bytes that are not UTF-8 become U+FFFD, with one warning line on stderr.",
    )
    parser.add_argument("bundle", help="bundle directory")
    parser.add_argument(
        "prompt", nargs="?", help="text to continue; read from stdin when not given"
    )
    gen = parser.add_argument_group("generation")
    gen.add_argument(
        "-n",
        "--max-new-tokens",
        type=int,
        default=DEFAULT_MAX_NEW_TOKENS,
        help=f"most tokens to generate (default {DEFAULT_MAX_NEW_TOKENS})",
    )
    gen.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature; 0 (default) is greedy"
    )
    gen.add_argument(
        "--top-k",
        type=int,
        default=0,
        help="sample among the k most likely tokens (0, default: all)",
    )
    gen.add_argument(
        "--top-p",
        type=float,
        default=1.0,
        help="sample among the most likely tokens reaching this probability (default 1.0: all)",
    )
    gen.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.0,
        help="> 1 makes tokens already in the context less likely (default 1.0)",
    )
    gen.add_argument("--seed", type=int, default=None, help="random seed (same seed, same text)")
    gen.add_argument(
        "--stop",
        action="append",
        default=[],
        metavar="TEXT",
        help="stop before this text (not printed); repeat for several",
    )
    gen.add_argument(
        "--ignore-eos", action="store_true", help="keep generating past end-of-sequence tokens"
    )
    add_speculative_flags(gen)
    shape = gen.add_mutually_exclusive_group()
    shape.add_argument(
        "--json-schema",
        metavar="FILE",
        help="constrain the output to JSON that validates against the JSON schema in FILE "
        "(structured output: needs the 'structured' extra)",
    )
    shape.add_argument(
        "--json-object", action="store_true", help="constrain the output to a JSON object"
    )
    run = add_runtime_flags(parser, "positions the KV cache holds, prompt and output together")
    run.add_argument(
        "--standard-graph",
        action="store_true",
        help="on ort-cpu, run the standard model.onnx even when the bundle has the faster "
        "onnxruntime graph (model.ort.onnx)",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--stats",
        action="store_true",
        help="print statistics (tokens, TTFT, tok/s, latencies) on stderr",
    )
    out.add_argument(
        "--chat",
        action="store_true",
        help="interactive: each line read is a user message, laid out by the "
        "bundle's chat template (a plain 'role: content' fallback when it has "
        "none); the conversation stays in the KV cache between turns. Type "
        "/reset for a new conversation, /exit (or Ctrl-D) to end. When the "
        "conversation outgrows the context, a terminal is asked whether to "
        "start a new one (Enter: yes); piped input starts one and says so on "
        "stderr; the new one keeps --system and gets the message again",
    )
    out.add_argument(
        "--system",
        default=None,
        metavar="TEXT",
        help="with --chat: a system message that starts the conversation",
    )
    out.add_argument(
        "--no-template",
        action="store_true",
        help="with --chat: feed each line as it is (plus a newline), no template",
    )
    out.add_argument(
        "--hide-reasoning",
        action="store_true",
        help="with --chat: do not print a thinking model's reasoning (by default it goes to "
        "stderr, dimmed on a terminal)",
    )
    add_chat_flags(parser, "with --chat: ")
    add_common_flags(parser)
    return parser


def template_kwargs_arg(text: str) -> dict[str, Any]:
    """``--chat-template-kwargs``: a JSON object (argparse reports anything else, exit 2)."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"not JSON ({exc}): give an object such as '{{\"enable_thinking\": false}}'"
        ) from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"must be a JSON object such as '{{\"enable_thinking\": false}}', got {text}"
        )
    return value


def add_chat_flags(parser: argparse.ArgumentParser, prefix: str = "") -> argparse._ArgumentGroup:
    """The chat flags of ``edge-run`` and ``edge-serve`` (llama-server's names):
    ``--chat-template-kwargs`` and ``--reasoning-format``; ``prefix`` starts their help."""
    chat = parser.add_argument_group("chat")
    chat.add_argument(
        "--chat-template-kwargs",
        type=template_kwargs_arg,
        default=None,
        metavar="JSON",
        help=f"{prefix}extra chat template variables, a JSON object: "
        "'{\"enable_thinking\": false}' turns Qwen3's thinking off",
    )
    chat.add_argument(
        "--reasoning-format",
        choices=REASONING_FORMATS,
        default="auto",
        help=f"{prefix}auto (default): split a <think> block from the answer when the chat "
        "template is a thinking model's; deepseek: always split; none: leave the text as the "
        "model wrote it, tags included",
    )
    return chat


def add_runtime_flags(parser: argparse.ArgumentParser, context: str) -> argparse._ArgumentGroup:
    """The ``runtime`` flags every command that loads a bundle takes (``--backend``,
    ``--threads``, ``--max-context``, ``--no-verify``); ``context`` says what the context holds."""
    run = parser.add_argument_group("runtime")
    run.add_argument(
        "--backend",
        default="auto",
        choices=["auto", *BACKENDS],
        help=f"auto (default) tries {', '.join(AUTO_ORDER)} in that order",
    )
    run.add_argument(
        "--threads", type=int, default=None, help="CPU threads (default: one per physical core)"
    )
    run.add_argument(
        "--max-context",
        type=int,
        default=None,
        help=f"{context} (default: the bundle's max_sequence_length)",
    )
    run.add_argument(
        "--no-verify",
        action="store_true",
        help="skip checking the bundle files' SHA-256 (faster start)",
    )
    return run


def add_speculative_flags(group: argparse._ArgumentGroup) -> None:
    """``--speculative`` and ``--draft-max`` (edge-run and edge-serve)."""
    group.add_argument(
        "--speculative",
        metavar="METHOD",
        default=None,
        help="speculative decoding, same output: 'ngram' (prompt lookup: copies continuations "
        "of earlier text; no extra model) or 'draft:PATH' (a smaller bundle with the same "
        "tokenizer drafts); needs the ort-cpu backend",
    )
    group.add_argument(
        "--draft-max",
        type=int,
        default=8,
        metavar="K",
        help=f"with --speculative: the most tokens drafted per step, 1 to {MAX_DRAFT_TOKENS} "
        "(default 8; the length adapts to the acceptance below it)",
    )


def speculative_arg(args: argparse.Namespace) -> SpeculativeOptions | None:
    """The speculative options of ``--speculative`` and ``--draft-max`` (checked)."""
    if args.speculative is None:
        return None
    return SpeculativeOptions.parse(args.speculative, k_max=args.draft_max)


def _options(args: argparse.Namespace) -> GenerationOptions:
    """The generation flags, checked (a bad value is a one-line error before loading)."""
    return GenerationOptions(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        repetition_penalty=args.repetition_penalty,
        seed=args.seed,
        stop=args.stop,
        ignore_eos=args.ignore_eos,
        response_format=_response_format(args),
        speculative=speculative_arg(args),
    )


def _response_format(args: argparse.Namespace) -> ResponseFormat | None:
    if args.json_object:
        return ResponseFormat.json_object()
    if args.json_schema is None:
        return None
    try:
        schema = json.loads(Path(args.json_schema).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GenerationError(f"--json-schema {args.json_schema}: cannot read it: {exc}") from exc
    if not isinstance(schema, dict):
        raise GenerationError(f"--json-schema {args.json_schema}: not a JSON object")
    return ResponseFormat.json_schema(schema)


# an indented list of integers; JSON strings never hold a raw newline, so text cannot match
_ID_LIST = re.compile(r"\[\n\s*-?\d+(?:,\n\s*-?\d+)*\n\s*\]")


def _one_line(match: re.Match[str]) -> str:
    return "[" + ", ".join(re.findall(r"-?\d+", match[0])) + "]"


def _emit(stream: Stream, args: argparse.Namespace) -> GenerationResult:
    thinking = False  # reasoning was printed and the answer has not begun
    for event in stream:
        if args.json:
            continue
        if event.reasoning and not args.hide_reasoning:
            _print_reasoning(event.reasoning)
            thinking = True
        if event.text:
            if thinking:
                _print_reasoning("\n")
                thinking = False
            sys.stdout.write(event.text)
            sys.stdout.flush()
    result = stream.result
    assert result is not None
    if args.json:
        body = {
            "text": result.text,
            "token_ids": result.token_ids,
            "stop_reason": result.stop_reason,
            "stats": result.stats.to_dict(),
        }
        if result.reasoning is not None:
            body["reasoning"] = result.reasoning
        # indented as every --json, but a list of ids on one line (not one id per line)
        sys.stdout.write(_ID_LIST.sub(_one_line, json.dumps(body, indent=2, default=str)) + "\n")
        sys.stdout.flush()
    else:
        if thinking:
            _print_reasoning("\n")
        sys.stdout.write("\n")
        sys.stdout.flush()
    if args.stats:
        print(result.stats.summary(), file=sys.stderr)
    return result


def _print_reasoning(text: str) -> None:
    """Reasoning on stderr, dimmed on a terminal: told apart from the answer on stdout."""
    sys.stderr.write(f"{DIM}{text}{RESET}" if sys.stderr.isatty() else text)
    sys.stderr.flush()


def _chat(
    generator: Generator, args: argparse.Namespace, options: GenerationOptions, utf8: Utf8Input
) -> int:
    """The ``--chat`` loop. When the conversation no longer fits the context, a terminal is
    asked whether to start a new one; piped input starts one and says so on stderr. Either way
    the new conversation keeps the system message and gets the message that did not fit."""
    templated = not args.no_template
    if templated and generator.chat_template.is_plain:
        print(
            "edge-run: this bundle has no chat template; using the plain fallback "
            "('user: ...' / 'assistant:' lines)",
            file=sys.stderr,
        )

    def new_conversation() -> Conversation:
        return generator.chat(
            args.system,
            template=templated,
            template_kwargs=args.chat_template_kwargs,
            reasoning=reasoning_choice(args.reasoning_format),
        )

    conversation = new_conversation()
    fresh = True  # nothing to drop: starting over cannot make a message fit
    interactive = sys.stdin.isatty()
    turns = [args.prompt] if args.prompt else []
    while True:
        if turns:
            line = turns.pop()
        else:
            if interactive:
                print("> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line:
                return EXIT_OK
            line = utf8(line.rstrip("\n"), "a --chat line")
            if not line.strip():
                continue
        if line.strip() == "/exit":
            return EXIT_OK
        if line.strip() == "/reset":
            conversation, fresh = new_conversation(), True
            print("edge-run: new conversation", file=sys.stderr)
            continue
        try:
            stream = conversation.send(line if templated else line + "\n", options=options)
            result = _emit(stream, args)
        except ContextFullError as exc:
            if fresh or not _start_over(exc, interactive, kept=args.system is not None):
                if not interactive:
                    raise
                print(
                    f"edge-run: {exc}"
                    if fresh
                    else "edge-run: type /reset to start over, /exit to end",
                    file=sys.stderr,
                )
                continue
            conversation, fresh = new_conversation(), True
            turns.append(line)
            continue
        fresh = False
        if result.stop_reason == "length":
            print(
                f"edge-run: the context is full ({result.stats.context_tokens} of "
                f"{generator.max_context} tokens): the reply was cut short",
                file=sys.stderr,
            )


def _start_over(exc: ContextFullError, interactive: bool, kept: bool) -> bool:
    """Whether to start a new conversation after ``exc``: a terminal is asked (Enter is yes);
    piped input always starts one, said on stderr."""
    full = (
        f"edge-run: context full (the conversation needs {exc.needed} tokens, the context "
        f"holds {exc.limit})"
    )
    if not interactive:
        print(
            f"{full}: started a new conversation{' (system message kept)' if kept else ''} "
            "and sent the message again",
            file=sys.stderr,
        )
        return True
    print(f"{full}: start a new conversation? [Y/n] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    return bool(answer) and answer.strip().lower() in ("", "y", "yes")


def _utf8_args(args: argparse.Namespace, utf8: Utf8Input) -> None:
    """The text flags of ``args`` as valid UTF-8 (argv hands undecodable bytes as surrogates)."""
    if args.prompt is not None:
        args.prompt = utf8(args.prompt, "the prompt")
    if args.system is not None:
        args.system = utf8(args.system, "--system")
    args.stop = [utf8(stop, "--stop") for stop in args.stop]


def _main(args: argparse.Namespace) -> int:
    utf8 = Utf8Input("edge-run")
    tolerant_stdin()
    _utf8_args(args, utf8)
    options = _options(args)
    prompt = args.prompt
    if prompt is None and not args.chat:
        if sys.stdin.isatty():
            print("edge-run: reading the prompt from stdin (end it with Ctrl-D)", file=sys.stderr)
        prompt = utf8(sys.stdin.read(), "the prompt")
        prompt = prompt.removesuffix("\n")
    if sys.stderr.isatty():  # a TensorRT EP's first load builds engines for minutes
        print(f"edge-run: loading {args.bundle} ({args.backend}) ...", file=sys.stderr, flush=True)
    generator = load(
        args.bundle,
        args.backend,
        threads=args.threads,
        max_context=args.max_context,
        verify=not args.no_verify,
        fused_graph=not args.standard_graph,
    )
    with generator:
        if args.chat:
            return _chat(generator, args, options, utf8)
        _emit(generator.stream(prompt, options=options), args)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-run``."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits 2 on bad usage
    chat_only = (
        args.system is not None
        or args.no_template
        or args.hide_reasoning
        or args.chat_template_kwargs is not None
        or args.reasoning_format != "auto"
    )
    if chat_only and not args.chat:
        parser.error(
            "--system, --no-template, --hide-reasoning, --chat-template-kwargs and "
            "--reasoning-format apply to --chat only"
        )
    return run_command(_main, parser, argv)


if __name__ == "__main__":
    sys.exit(main())
