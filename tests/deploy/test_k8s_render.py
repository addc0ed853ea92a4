"""edge-deploy k8s: the rendered manifests validate offline and carry the planner's memory."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from edge_sdk.deploy import K8sOptions, describe_model, render_k8s, size_pod
from edge_sdk.deploy.sizing import PREFILL_CHUNK
from edge_sdk.errors import DeployError
from edge_sdk.planner import get_device, get_preset
from edge_sdk.planner.memory import (
    KV_BUFFERS,
    kv_cache_bytes,
    prefill_workspace_bytes,
    runtime_overhead_bytes,
    weight_bytes,
)
from edge_sdk.planner.precision import weight_format
from edge_sdk.serve.cli import build_parser as serve_parser

from .schemas import validate

# (module, preset, slots, context): a model each module serves, as a user would size it
FLEET = [
    ("orin-nano-8gb", "qwen2.5-0.5b", 4, 2048),
    ("orin-nx-16gb", "qwen2.5-1.5b", 4, 4096),
    ("agx-orin-64gb", "llama-3.2-3b", 8, 4096),
]


def _planner_bytes(preset: str, slots: int, context: int) -> int:
    """The planner's parts, composed as edge-serve holds them (one prefill chunk at a time)."""
    config, fmt = get_preset(preset), weight_format("int8")
    weights = weight_bytes(config, fmt).total
    kv = KV_BUFFERS * kv_cache_bytes(config, context, slots, fmt.activation_dtype)
    workspace = prefill_workspace_bytes(
        config, min(PREFILL_CHUNK, context), 1, fmt.activation_dtype
    )
    return weights + kv + workspace + runtime_overhead_bytes(weights, kv)


def _render(
    model: str, device: str, slots: int = 4, context: int | None = None, **options: Any
) -> list[dict[str, Any]]:
    deployed = describe_model(model)
    sizing = size_pod(deployed, device, slots=slots, max_context=context)
    return render_k8s(deployed, sizing, K8sOptions(**options))


def _kinds(documents: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in documents}


def _container(documents: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = documents[0]["spec"]["template"]["spec"]["containers"]
    return container


def _mib(quantity: str) -> int:
    assert quantity.endswith("Mi"), quantity
    return int(quantity[:-2])


@pytest.mark.parametrize(("device", "preset", "slots", "context"), FLEET)
@pytest.mark.parametrize("workload", ["daemonset", "deployment"])
def test_the_fleet_renders_valid_manifests_with_the_planners_memory(
    device: str, preset: str, slots: int, context: int, workload: str
) -> None:
    documents = _render(
        preset, device, slots, context, workload=workload, service_monitor=True, namespace="llm"
    )
    for document in documents:
        validate(document)
    assert [d["kind"] for d in documents] == [
        "DaemonSet" if workload == "daemonset" else "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
    ]
    container = _container(documents)
    request = _mib(container["resources"]["requests"]["memory"])
    assert request == math.ceil(_planner_bytes(preset, slots, context) / 2**20)
    limit = _mib(container["resources"]["limits"]["memory"])
    board = get_device(device)
    assert request < limit <= math.ceil((board.memory_bytes - board.reserved_bytes) / 2**20)
    spec = documents[0]["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {
        "kubernetes.io/arch": "arm64",
        "edge-sdk/module": device,
        "edge-sdk/l4t": "r36.4",
    }
    assert spec["runtimeClassName"] == "nvidia"
    gpu = container["resources"]["limits"].get("nvidia.com/gpu")
    assert gpu == (1 if workload == "deployment" else None)


def test_the_servers_flags_are_edge_serves_own(demo_bundle_int8: Path) -> None:
    documents = _render(
        str(demo_bundle_int8),
        "orin-nano-8gb",
        slots=3,
        context=128,
        backend="ort-cuda",
        port=8080,
        drain_timeout=12,
    )
    container = _container(documents)
    args = serve_parser().parse_args(container["args"])  # exits 2 on a flag it does not take
    assert (args.bundle, args.host, args.port) == ("/bundle", "0.0.0.0", 8080)
    assert (args.slots, args.max_context, args.backend, args.drain_timeout) == (
        3,
        128,
        "ort-cuda",
        12,
    )
    assert container["ports"][0]["containerPort"] == 8080
    pod = documents[0]["spec"]["template"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > args.drain_timeout
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
    service = _kinds(documents)["Service"]
    assert service["spec"]["ports"][0] == {
        "name": "http",
        "port": 8080,
        "targetPort": "http",
        "protocol": "TCP",
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["EDGE_SERVE_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "edge-serve-api-key"


def test_probes_selectors_and_ports_agree(demo_bundle_int8: Path) -> None:
    documents = _kinds(
        _render(str(demo_bundle_int8), "orin-nx-16gb", name="demo", service_monitor=True)
    )
    pod = documents["DaemonSet"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "demo"
    for selector in (
        documents["DaemonSet"]["spec"]["selector"]["matchLabels"],
        documents["Service"]["spec"]["selector"],
        documents["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    assert (
        documents["ServiceMonitor"]["spec"]["selector"]["matchLabels"].items()
        <= documents["Service"]["metadata"]["labels"].items()
    )
    (container,) = pod["spec"]["containers"]
    ports = {p["name"] for p in container["ports"]}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["path"] == "/health"
        assert container[probe]["httpGet"]["port"] in ports
    assert documents["ServiceMonitor"]["spec"]["endpoints"][0]["port"] in ports
    assert all(d["metadata"]["name"] == "demo" for d in documents.values())


def test_the_bundle_is_mounted_read_only_from_a_host_path_or_a_claim(
    demo_bundle_int8: Path,
) -> None:
    documents = _render(str(demo_bundle_int8), "orin-nano-8gb")
    container = _container(documents)
    volumes = {v["name"]: v for v in documents[0]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["bundle"]["hostPath"] == {
        "path": f"/var/lib/edge-sdk/bundles/{demo_bundle_int8.name}",
        "type": "Directory",
    }
    assert container["volumeMounts"][0] == {
        "name": "bundle",
        "mountPath": "/bundle",
        "readOnly": True,
    }
    claim = _render(
        str(demo_bundle_int8),
        "orin-nano-8gb",
        bundle_pvc="bundles",
        bundle_sub_path="demo/v2",
        cache_host_path="/var/cache/edge-sdk",
    )
    for document in claim:
        validate(document)
    volumes = {v["name"]: v for v in claim[0]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["bundle"]["persistentVolumeClaim"] == {"claimName": "bundles", "readOnly": True}
    assert volumes["cache"]["hostPath"]["path"] == "/var/cache/edge-sdk"
    mount = _container(claim)["volumeMounts"][0]
    assert (mount["subPath"], mount["readOnly"]) == ("demo/v2", True)


def test_a_new_bundle_changes_the_pod_template(
    demo_bundle_int8: Path, demo_bundle_fp32: Path
) -> None:
    def template(bundle: Path) -> dict[str, Any]:
        pod = _render(str(bundle), "orin-nano-8gb", bundle_host_path="/srv/current")
        return pod[0]["spec"]["template"]

    int8, fp32 = template(demo_bundle_int8), template(demo_bundle_fp32)
    key = "edge-sdk/bundle-manifest-sha256"
    assert int8["metadata"]["annotations"][key] != fp32["metadata"]["annotations"][key]
    assert (
        int8["metadata"]["annotations"][key]
        == template(demo_bundle_int8)["metadata"]["annotations"][key]
    )


def test_the_context_defaults_to_the_bundles_and_cannot_exceed_it(demo_bundle_int8: Path) -> None:
    deployed = describe_model(str(demo_bundle_int8))
    assert deployed.max_sequence_length
    assert size_pod(deployed, "orin-nano-8gb", slots=2).max_context == deployed.max_sequence_length
    with pytest.raises(DeployError, match=r"max_sequence_length|maximum"):
        size_pod(deployed, "orin-nano-8gb", slots=2, max_context=deployed.max_sequence_length + 1)


def test_what_does_not_fit_is_refused_with_what_would() -> None:
    deployed = describe_model("llama-3.2-3b")
    with pytest.raises(DeployError, match=r"at most \d+ slots fit; with 8 slots at most \d+"):
        size_pod(deployed, "orin-nano-8gb", slots=8, max_context=4096)
    assert size_pod(deployed, "agx-orin-64gb", slots=8, max_context=4096).memory.fits


def test_the_validator_refuses_a_broken_manifest() -> None:
    documents = _render("qwen2.5-0.5b", "orin-nano-8gb", context=1024, service_monitor=True)
    broken = copy.deepcopy(documents[0])
    broken["spec"]["template"]["spec"]["containers"][0]["resource"] = {}  # a typo
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)
    wrong = copy.deepcopy(documents[0])
    wrong["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "45"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(wrong)
    monitor = copy.deepcopy(documents[-1])
    monitor["spec"]["endpoints"][0]["interval"] = "15 seconds"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bundle_pvc": "a", "bundle_host_path": "/b"}, "not both"),
        ({"bundle_sub_path": "x"}, "--bundle-pvc only"),
        ({"replicas": 3}, "--workload deployment"),
        ({"name": "Edge_Serve"}, "DNS label"),
        ({"l4t": "36"}, "L4T release"),
        ({"l4t": None}, "needs --image"),
    ],
)
def test_conflicting_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(DeployError, match=message):
        _render("qwen2.5-0.5b", "orin-nano-8gb", context=1024, **options)


def test_without_an_l4t_selector_the_image_is_the_users() -> None:
    documents = _render(
        "qwen2.5-0.5b", "orin-nano-8gb", context=1024, l4t=None, image="registry.local/edge-serve:1"
    )
    assert "edge-sdk/l4t" not in documents[0]["spec"]["template"]["spec"]["nodeSelector"]
    assert _container(documents)["image"] == "registry.local/edge-serve:1"
