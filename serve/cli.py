"""``edge-serve``: an OpenAI-compatible HTTP server over a bundle, on the device.

    edge-serve demo-int8                                   # http://127.0.0.1:8000/v1
    edge-serve demo-int8 --slots 8 --power-sensor ina3221
    EDGE_SERVE_API_KEY=secret edge-serve demo-int8 --host 0.0.0.0

The socket opens first and the model loads behind it (``GET /health`` answers 503 until it is
ready). SIGTERM or Ctrl-C drains: new requests get 503, running ones finish (at most
``--drain-timeout`` seconds, then they are cancelled), exit 0 (130 after Ctrl-C); a second
signal stops at once. Exit 1 for an error you can fix (one line; ``--debug`` for the
traceback), 2 for bad usage.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edge_sdk._optional import require
from edge_sdk.cli_support import EXIT_INTERRUPTED, EXIT_OK, add_common_flags, run_command
from edge_sdk.errors import EdgeError
from edge_sdk.power.sensors import PowerSensor

__all__ = ["build_parser", "main", "served_model_id"]

LOG = logging.getLogger("edge_sdk.serve")
API_KEY_ENV = "EDGE_SERVE_API_KEY"
_LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_TYPEABLE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")


def build_parser() -> argparse.ArgumentParser:
    """The ``edge-serve`` argument parser."""
    from edge_sdk.runtime.cli import add_chat_flags, add_runtime_flags, add_speculative_flags

    parser = argparse.ArgumentParser(
        prog="edge-serve",
        description="Serve an edge-sdk bundle with the OpenAI API (/v1/chat/completions, "
        "/v1/completions, /v1/models), /health and /metrics.",
        epilog="Binding to anything but a loopback address needs an API key. Details: "
        "serve/README.md.",
    )
    parser.add_argument("bundle", help="bundle directory (made by edge-export)")
    net = parser.add_argument_group("network")
    net.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    net.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: any free)")
    net.add_argument(
        "--api-key",
        default=None,
        help=f"clients must send 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}"
        "; required to listen on a non-loopback address)",
    )
    net.add_argument(
        "--model-id",
        "--model-name",
        dest="model_name",
        default=None,
        metavar="ID",
        help="the model id in /v1/models and responses (default: the bundle's model name "
        "when it is one word a client can type, otherwise the bundle folder's name)",
    )
    net.add_argument(
        "--max-connections",
        type=int,
        default=256,
        metavar="N",
        help="connections open at once (default 256, lowered to fit the open-file limit, "
        "ulimit -n); past it, a new connection closes the one that has waited longest for "
        "its request headers",
    )
    net.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds a connection has to send its request headers, from opening or from "
        "its previous response; then it is closed (default 10)",
    )
    net.add_argument(
        "--body-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds a request body has to arrive once its headers have; then 408 and the "
        "connection is closed (default 60)",
    )
    sched = parser.add_argument_group("scheduling")
    sched.add_argument(
        "--slots",
        type=int,
        default=4,
        help="requests decoded together (each holds a KV cache; default 4)",
    )
    sched.add_argument(
        "--max-queue",
        type=int,
        default=64,
        help="requests that may wait for a slot; more get 429 (default 64)",
    )
    sched.add_argument(
        "--no-prefix-cache",
        action="store_true",
        help="prefill every prompt in full (default: a request reuses the KV-cache positions "
        "a free slot holds for its prompt's first tokens, e.g. the earlier turns of a chat)",
    )
    sched.add_argument(
        "--prefix-cache-mb",
        type=float,
        default=0.0,
        metavar="MB",
        help="host memory for prompt prefixes evicted from the slots (LRU), copied back when a "
        "later prompt shares them: for more conversations than slots (default 0: none; the "
        "fused CPU graph of attention-only models)",
    )
    sched.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="on SIGTERM, seconds running requests may take to finish before "
        "they are cancelled (default 30)",
    )
    add_speculative_flags(sched)
    run = add_runtime_flags(parser, "positions per slot, prompt and completion together")
    run.add_argument(
        "--power-sensor",
        default="auto",
        metavar="auto|none|SPEC",
        help="energy per request: auto (default: a sensor if one is found), none, "
        "or a sensor as edge-power takes it (ina3221, jtop, nvml[:GPU], rapl, "
        "replay:FILE)",
    )
    chat = add_chat_flags(parser, "/v1/chat/completions: ")
    chat.add_argument(
        "--chat-template",
        default=None,
        metavar="FILE|chatml-tools",
        help="render chats with this Jinja template instead of the bundle's (as llama-server's "
        "--chat-template-file); 'chatml-tools' is the ChatML template with Hermes-style "
        "<tool_call> tool calls shipped with edge-sdk, for ChatML models whose own template "
        "has no tool support (SmolLM2). Needed for 'tools' when the bundle's template does not "
        "render them",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--log-level",
        default="info",
        choices=_LOG_LEVELS,
        help="server log level on stderr (default info)",
    )
    out.add_argument("--no-access-log", action="store_true", help="do not log each request")
    add_common_flags(parser)  # --json: 'listening' and 'ready' events as JSON lines on stdout
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def _check_usage(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str | None:
    """The API key to use; exits 2 (argparse) for values that cannot work."""
    key = args.api_key or os.environ.get(API_KEY_ENV) or None
    if not _is_loopback(args.host) and key is None:
        parser.error(
            f"--host {args.host} serves the model to the network: give --api-key KEY "
            f"(or set {API_KEY_ENV}) so only clients with the key can use it, or listen "
            "on 127.0.0.1"
        )
    for name, value, low in (
        ("--slots", args.slots, 1),
        ("--max-queue", args.max_queue, 0),
        ("--port", args.port, 0),
        ("--drain-timeout", args.drain_timeout, 0),
        ("--max-connections", args.max_connections, 1),
        ("--prefix-cache-mb", args.prefix_cache_mb, 0),
    ):
        if value < low:
            parser.error(f"{name} must be at least {low}, got {value}")
    for name, value in (
        ("--header-timeout", args.header_timeout),
        ("--body-timeout", args.body_timeout),
    ):
        if not value > 0 or value == float("inf"):
            parser.error(f"{name} must be a positive number of seconds, got {value}")
    if args.port > 65535:
        parser.error(f"--port must be at most 65535, got {args.port}")
    return key


def served_model_id(model_name: object, bundle_dir: Path) -> str:
    """The model id clients send: the bundle's model name when it is one word they can type
    (``SmolLM2-135M-Instruct``), otherwise the bundle folder's name, slugged (a GGUF's
    ``general.name`` such as ``Smollm2 135M 8k Lc100K Mix1 Ep2`` is not)."""
    if isinstance(model_name, str) and _TYPEABLE.fullmatch(model_name):
        return model_name
    folder = bundle_dir.resolve().name
    return re.sub(r"[^A-Za-z0-9._-]+", "-", folder).strip("-.") or "model"


def _power_opener(spec: str) -> Callable[[], PowerSensor | None]:
    from edge_sdk.power.sensors import open_sensor, probe_sensors

    def open_power() -> PowerSensor | None:
        if spec == "none":
            return None
        if spec != "auto":
            return open_sensor(spec)
        sensor, reasons = probe_sensors()
        if sensor is None:
            LOG.info(
                "no power sensor found (tried %s; 'edge-power status' says why): usage "
                "carries no energy",
                ", ".join(reasons),
            )
            LOG.debug("power sensors: %s", "; ".join(f"{k}: {v}" for k, v in reasons.items()))
        return sensor

    return open_power


def _announce(args: argparse.Namespace, event: str, text: str, **fields: Any) -> None:
    if args.json:
        sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
        sys.stdout.flush()
    else:
        print(f"edge-serve: {text}", file=sys.stderr, flush=True)


def _main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    for module in ("starlette", "uvicorn", "prometheus_client"):
        require(module, "edge-serve")
    api_key = _check_usage(args, parser)

    from edge_sdk.bundle import load_bundle
    from edge_sdk.runtime import load
    from edge_sdk.runtime.cli import speculative_arg
    from edge_sdk.runtime.engine import Engine
    from edge_sdk.serve.connections import ConnectionLimits, connection_budget
    from edge_sdk.serve.server import EdgeServer, bind
    from edge_sdk.serve.state import ServerState, ServeSettings

    bundle = load_bundle(args.bundle, verify=False)  # a wrong path fails here, before binding
    speculative = speculative_arg(args)  # so does a bad --speculative
    template = None
    if args.chat_template is not None:
        from edge_sdk.chat_template import ChatTemplate

        template = ChatTemplate.from_file(args.chat_template, bundle.chat_template.special_tokens)
    name = args.model_name or served_model_id(bundle.manifest["model"].get("name"), bundle.path)
    max_connections, file_limit = connection_budget(args.max_connections)
    if max_connections < args.max_connections:
        LOG.warning(
            "--max-connections lowered from %d to %d to fit the open-file limit (ulimit -n %d)",
            args.max_connections,
            max_connections,
            file_limit,
        )

    def load_engine() -> Engine:
        generator = load(
            args.bundle,
            args.backend,
            threads=args.threads,
            max_context=args.max_context,
            verify=not args.no_verify,
        )
        try:
            return Engine(
                generator,
                slots=args.slots,
                max_queue=args.max_queue,
                prefix_cache=not args.no_prefix_cache,
                prefix_store_bytes=int(args.prefix_cache_mb * 2**20),
                speculative=speculative,
            )
        except BaseException:
            generator.close()
            raise

    state = ServerState(
        ServeSettings(
            name,
            api_key,
            args.drain_timeout,
            body_timeout_s=args.body_timeout,
            reasoning_format=args.reasoning_format,
            chat_template_kwargs=args.chat_template_kwargs or {},
            chat_template=template,
        ),
        load_engine,
        _power_opener(args.power_sensor),
    )
    try:
        sock = bind(args.host, args.port)
    except OSError as exc:
        raise EdgeError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc} "
            "(another server on that port? pick one with --port)"
        ) from exc
    host, port = sock.getsockname()[:2]
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    _announce(
        args,
        "listening",
        f"serving {name} on {url}/v1 (loading the model ...)",
        url=url,
        model=name,
    )

    def ready(st: ServerState) -> None:
        engine = st.engine
        assert engine is not None
        power = st.sensor.describe() if st.sensor else "none"
        _announce(
            args,
            "ready",
            f"ready: {engine.slots} slots "
            f"({'batched decode' if engine.batched else 'one slot at a time'}), context "
            f"{engine.max_context}, prompt cache {'on' if engine.prefix_cache else 'off'}, "
            f"power sensor: {power}",
            url=url,
            model=name,
            slots=engine.slots,
            batched=engine.batched,
            max_context=engine.max_context,
            prefix_cache=engine.prefix_cache,
            power_sensor=None if st.sensor is None else power,
        )

    state.on_ready = ready
    server = EdgeServer(
        state,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        limits=ConnectionLimits(max_connections, args.header_timeout),
    )
    server.run(sockets=[sock])
    if state.load_error is not None:
        raise state.load_error
    return EXIT_INTERRUPTED if server.exit_signal == signal.SIGINT else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-serve``."""
    parser = build_parser()
    return run_command(lambda args: _main(args, parser), parser, argv)


if __name__ == "__main__":
    sys.exit(main())
