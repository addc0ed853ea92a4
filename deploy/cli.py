"""``edge-deploy``: Kubernetes manifests for edge-serve on a fleet of Jetsons, sized by the planner.

    edge-deploy k8s my-bundle --device orin-nano-8gb -o manifests/   # then: kubectl apply -f
    edge-deploy k8s qwen2.5-0.5b --device agx-orin-64gb --slots 8 --workload deployment
    edge-deploy node-labels            # on a Jetson: kubectl label node NODE $(edge-deploy ...)

Manifests go to stdout (a YAML stream) or, with ``-o DIR``, one file per object; the sizing
summary goes to stderr. Exit 1 for an error you can fix (it does not fit, ...), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_sdk.cli_support import EXIT_OK, add_common_flags, print_json, run_command
from edge_sdk.deploy.manifests import WORKLOADS, K8sOptions, render_k8s
from edge_sdk.deploy.node_labels import node_labels
from edge_sdk.deploy.output import dump_yaml, write_manifests
from edge_sdk.deploy.sizing import DEFAULT_MEMORY_MARGIN, describe_model, size_pod
from edge_sdk.planner.catalog import DEVICES
from edge_sdk.planner.precision import PRECISIONS

__all__ = ["build_parser", "main"]

_JETSONS = [name for name, device in DEVICES.items() if device.jetson]
_BACKENDS = ("auto", "ort-tensorrt", "ort-cuda", "ort-cpu", "tensorrt")


def _add_k8s(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    k8s = commands.add_parser(
        "k8s",
        help="render the DaemonSet (or Deployment), Service and PodDisruptionBudget",
        description="Render edge-serve's Kubernetes manifests for one Jetson module and bundle, "
        "with the memory request the planner gives for the slots and context served.",
        epilog=f"Modules: {', '.join(_JETSONS)}. Details: deploy/README.md.",
    )
    k8s.add_argument(
        "model",
        metavar="MODEL",
        help="the bundle directory (its manifest gives config, precision and "
        "context), a Hugging Face config.json, model.pt, a .gguf file, or an edge-plan preset",
    )
    k8s.add_argument(
        "--device",
        required=True,
        choices=_JETSONS,
        metavar="MODULE",
        help="the Jetson module of the nodes (the planner's catalog name)",
    )
    work = k8s.add_argument_group("workload")
    work.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="daemonset",
        help="daemonset (default): one pod on every node with the module's label; "
        "deployment: --replicas pods, each requesting nvidia.com/gpu: 1",
    )
    work.add_argument(
        "--replicas", metavar="N", type=int, default=1, help="pods of a deployment (default 1)"
    )
    work.add_argument(
        "--name",
        default="edge-serve",
        help="name of every object and its app.kubernetes.io/instance label (default edge-serve)",
    )
    work.add_argument(
        "--namespace", metavar="NS", help="metadata.namespace (default: none, kubectl's current)"
    )
    work.add_argument(
        "--l4t",
        default="r36.4.0",
        metavar="RELEASE|none",
        help="the image's L4T release: the default image tag and the edge-sdk/l4t "
        "node selector r<major>.<minor> (default r36.4.0); none: no selector "
        "(then give --image)",
    )
    work.add_argument("--image", help="container image (default: edge-serve:l4t-<RELEASE>)")
    work.add_argument(
        "--service-monitor",
        action="store_true",
        help="add a Prometheus Operator ServiceMonitor (needs its CRDs); without "
        "it the pods carry prometheus.io/scrape annotations",
    )
    vol = k8s.add_argument_group("bundle and cache")
    vol.add_argument(
        "--bundle-host-path",
        metavar="DIR",
        help="the bundle's folder on every node, mounted read-only at /bundle "
        "(default /var/lib/edge-sdk/bundles/<bundle name>)",
    )
    vol.add_argument(
        "--bundle-name",
        metavar="NAME",
        help="the bundle's name in the default host path (default: MODEL's folder or preset name)",
    )
    vol.add_argument(
        "--bundle-pvc",
        metavar="CLAIM",
        help="mount the bundle from this PersistentVolumeClaim, read-only, instead",
    )
    vol.add_argument(
        "--bundle-sub-path",
        metavar="DIR",
        help="the bundle's folder inside the claim (default: the claim's root)",
    )
    vol.add_argument(
        "--cache-host-path",
        metavar="DIR",
        help="keep the runtime cache (TensorRT engines, optimized graphs) in this "
        "node folder across restarts (default: an emptyDir sized from the "
        "weights)",
    )
    serve = k8s.add_argument_group("edge-serve")
    serve.add_argument(
        "--slots",
        metavar="N",
        type=int,
        default=4,
        help="requests decoded together; each holds a KV cache (default 4)",
    )
    serve.add_argument(
        "--max-context",
        metavar="N",
        type=int,
        help="positions per slot (default: the bundle's max_sequence_length; "
        "4096 for a preset or config)",
    )
    serve.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="weights' precision for a preset or config (default int8; a bundle has its own)",
    )
    serve.add_argument(
        "--backend",
        choices=_BACKENDS,
        default="auto",
        help="edge-serve --backend (default auto; pin ort-cuda or tensorrt to fail "
        "instead of running on the CPU when the GPU is not usable)",
    )
    serve.add_argument(
        "--power-sensor",
        default="auto",
        metavar="auto|none|SPEC",
        help="edge-serve --power-sensor (default auto: the INA3221 rails through "
        "the read-only /sys, no privileges)",
    )
    serve.add_argument(
        "--port",
        metavar="PORT",
        type=int,
        default=8000,
        help="container and Service port (default 8000)",
    )
    serve.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="edge-serve --drain-timeout; the pod's grace period is 15 s more (default 30)",
    )
    serve.add_argument(
        "--api-key-secret",
        default="edge-serve-api-key",
        metavar="SECRET",
        help="Secret whose key 'api-key' becomes EDGE_SERVE_API_KEY (default edge-serve-api-key)",
    )
    res = k8s.add_argument_group("resources")
    res.add_argument(
        "--memory-margin",
        metavar="F",
        type=float,
        default=DEFAULT_MEMORY_MARGIN,
        help=f"memory limit = request x (1 + margin) (default {DEFAULT_MEMORY_MARGIN})",
    )
    res.add_argument(
        "--cpu-request", metavar="CPU", default="1", help="CPU request (default 1; no CPU limit)"
    )
    res.add_argument(
        "--video-gid",
        metavar="GID",
        type=int,
        default=44,
        help="the host's video group id, a supplemental group of the pod: it owns "
        "the GPU device nodes (default 44, as on JetPack)",
    )
    out = k8s.add_argument_group("output")
    out.add_argument(
        "-o",
        "--output",
        metavar="DIR",
        help="write one YAML file per object to DIR (default: the stream on stdout)",
    )
    out.add_argument(
        "--force", action="store_true", help="replace DIR if it holds a previous rendering"
    )
    add_common_flags(k8s)


def build_parser() -> argparse.ArgumentParser:
    """The ``edge-deploy`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="edge-deploy",
        description="Deploy edge-serve on a fleet of Jetsons: Kubernetes (k3s) manifests sized "
        "by the planner, and the node labels they select on.",
        epilog="The container image: deploy/container/Dockerfile. Details: deploy/README.md.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_k8s(commands)
    labels = commands.add_parser(
        "node-labels",
        help="print this Jetson's edge-sdk/module and edge-sdk/l4t labels",
        description="Print the labels the manifests select on, read from this board: "
        "kubectl label node NODE $(edge-deploy node-labels)",
    )
    add_common_flags(labels)
    return parser


def _k8s(args: argparse.Namespace) -> int:
    model = describe_model(args.model, args.bundle_name)
    sizing = size_pod(
        model,
        args.device,
        slots=args.slots,
        max_context=args.max_context,
        precision=args.precision,
        memory_margin=args.memory_margin,
    )
    options = K8sOptions(
        workload=args.workload,
        name=args.name,
        namespace=args.namespace,
        l4t=None if args.l4t.lower() == "none" else args.l4t,
        image=args.image,
        bundle_host_path=args.bundle_host_path,
        bundle_pvc=args.bundle_pvc,
        bundle_sub_path=args.bundle_sub_path,
        cache_host_path=args.cache_host_path,
        replicas=args.replicas,
        backend=args.backend,
        power_sensor=args.power_sensor,
        port=args.port,
        drain_timeout=args.drain_timeout,
        api_key_secret=args.api_key_secret,
        cpu_request=args.cpu_request,
        video_gid=args.video_gid,
        service_monitor=args.service_monitor,
    )
    documents = render_k8s(model, sizing, options)
    header = (
        f"edge-deploy k8s: {sizing.model} on {sizing.device}, {sizing.slots} slots x "
        f"{sizing.max_context} positions\nplanner: {sizing.breakdown()}"
    )
    written = (
        write_manifests(documents, Path(args.output), header, args.force) if args.output else []
    )
    if args.json:
        print_json(
            {
                "sizing": sizing.to_dict(),
                "manifests": documents,
                "written": [str(p) for p in written],
            }
        )
    elif not written:
        sys.stdout.write(dump_yaml(documents, header))
    request = sizing.to_dict()
    print(
        f"edge-deploy: {sizing.model} on {sizing.device}: memory request "
        f"{request['memory_request']}, limit {request['memory_limit']} ({sizing.breakdown()})"
        + (f"; wrote {len(written)} files to {args.output}" if written else ""),
        file=sys.stderr,
    )
    return EXIT_OK


def _node_labels(args: argparse.Namespace) -> int:
    labels = node_labels()
    if args.json:
        print(json.dumps(labels))
    else:
        print(" ".join(f"{key}={value}" for key, value in labels.items()))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``edge-deploy``."""
    parser = build_parser()
    return run_command(lambda a: _k8s(a) if a.command == "k8s" else _node_labels(a), parser, argv)


if __name__ == "__main__":
    sys.exit(main())
