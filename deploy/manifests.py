"""Kubernetes manifests for edge-serve on Jetson nodes, from the plain-YAML base in ``k8s/``.

The base (a DaemonSet or a Deployment, a Service, a PodDisruptionBudget, optionally a Prometheus
Operator ServiceMonitor) is valid as it is and is what ``kubectl apply -k deploy/k8s/daemonset``
applies; :func:`render_k8s` loads the same files and sets what depends on the module and the
bundle: memory from the planner, node selector, image, edge-serve's flags, bundle volume.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from edge_sdk._optional import require
from edge_sdk.deploy.sizing import DeployedModel, PodSizing, mebibytes
from edge_sdk.errors import DeployError

__all__ = ["L4T_LABEL", "MODULE_LABEL", "WORKLOADS", "K8sOptions", "l4t_selector", "render_k8s"]

WORKLOADS = ("daemonset", "deployment")
MODULE_LABEL = "edge-sdk/module"
L4T_LABEL = "edge-sdk/l4t"
INSTANCE_LABEL = "app.kubernetes.io/instance"
BUNDLE_MOUNT = "/bundle"
_L4T = re.compile(r"^r?(\d+)\.(\d+)(?:\.(\d+))?$")
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$")


@dataclass(frozen=True)
class K8sOptions:
    """What the rendered manifests hold besides the plan (each one an ``edge-deploy k8s`` flag)."""

    workload: str = "daemonset"
    name: str = "edge-serve"
    namespace: str | None = None
    l4t: str | None = "r36.4.0"  # image tag and node selector; None: no L4T selector
    image: str | None = None  # None: edge-serve:l4t-<l4t>
    bundle_host_path: str | None = None  # None (and no PVC): /var/lib/edge-sdk/bundles/<name>
    bundle_pvc: str | None = None
    bundle_sub_path: str | None = None  # the bundle's folder inside the PVC
    cache_host_path: str | None = None  # None: an emptyDir
    replicas: int = 1
    backend: str = "auto"
    power_sensor: str = "auto"
    port: int = 8000
    drain_timeout: float = 30.0
    api_key_secret: str = "edge-serve-api-key"
    cpu_request: str = "1"
    video_gid: int = 44
    service_monitor: bool = False


def l4t_selector(release: str) -> str:
    """The node label value for an L4T release: ``r36.4.0`` / ``36.4.3`` -> ``r36.4``."""
    match = _L4T.match(release.strip())
    if match is None:
        raise DeployError(
            f"--l4t takes an L4T release such as r36.4.0 (the host's: head -1 "
            f"/etc/nv_tegra_release), or 'none'; got {release!r}"
        )
    return f"r{match.group(1)}.{match.group(2)}"


def _template(*parts: str) -> dict[str, Any]:
    yaml = require("yaml", "edge-deploy k8s")
    text = resources.files("edge_sdk.deploy").joinpath("k8s", *parts).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict), parts
    return data


def _set_instance(node: Any, name: str) -> None:
    """Every ``app.kubernetes.io/instance`` label and selector -> ``name``."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == INSTANCE_LABEL:
                node[key] = name
            else:
                _set_instance(value, name)
    elif isinstance(node, list):
        for item in node:
            _set_instance(item, name)


def _check(options: K8sOptions) -> None:
    if options.workload not in WORKLOADS:
        raise DeployError(
            f"--workload must be one of {', '.join(WORKLOADS)}, got {options.workload!r}"
        )
    if not _NAME.match(options.name):
        raise DeployError(
            f"--name {options.name!r} must be a DNS label: lower-case letters, "
            "digits and '-', at most 52 characters"
        )
    if options.bundle_pvc and options.bundle_host_path:
        raise DeployError("give --bundle-host-path or --bundle-pvc, not both")
    if options.bundle_sub_path and not options.bundle_pvc:
        raise DeployError("--bundle-sub-path applies to --bundle-pvc only")
    if options.replicas < 1:
        raise DeployError(f"--replicas must be at least 1, got {options.replicas}")
    if options.replicas != 1 and options.workload != "deployment":
        raise DeployError(
            "--replicas applies to --workload deployment (a DaemonSet runs one "
            "pod per matching node)"
        )
    if options.l4t is None and options.image is None:
        raise DeployError("--l4t none needs --image (the default image is named by its L4T tag)")
    if not 1 <= options.port <= 65535:
        raise DeployError(f"--port must be in 1..65535, got {options.port}")
    if options.drain_timeout < 0:
        raise DeployError(f"--drain-timeout must be at least 0, got {options.drain_timeout}")


def _args(sizing: PodSizing, options: K8sOptions) -> list[str]:
    return [
        BUNDLE_MOUNT,
        "--host",
        "0.0.0.0",
        "--port",
        str(options.port),
        "--slots",
        str(sizing.slots),
        "--max-context",
        str(sizing.max_context),
        "--backend",
        options.backend,
        "--power-sensor",
        options.power_sensor,
        "--drain-timeout",
        f"{options.drain_timeout:g}",
    ]


def _volumes(
    model: DeployedModel, sizing: PodSizing, options: K8sOptions
) -> tuple[list[dict[str, Any]], str | None]:
    if options.bundle_pvc:
        bundle: dict[str, Any] = {
            "name": "bundle",
            "persistentVolumeClaim": {"claimName": options.bundle_pvc, "readOnly": True},
        }
        sub_path = options.bundle_sub_path
    else:
        path = options.bundle_host_path or f"/var/lib/edge-sdk/bundles/{model.bundle_name}"
        bundle = {"name": "bundle", "hostPath": {"path": path, "type": "Directory"}}
        sub_path = None
    if options.cache_host_path:
        cache: dict[str, Any] = {
            "name": "cache",
            "hostPath": {"path": options.cache_host_path, "type": "DirectoryOrCreate"},
        }
    else:
        cache = {"name": "cache", "emptyDir": {"sizeLimit": mebibytes(sizing.cache_size)}}
    return [bundle, cache, {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}], sub_path


def _pod(pod: dict[str, Any], model: DeployedModel, sizing: PodSizing, options: K8sOptions) -> None:
    meta = pod["metadata"]
    meta["annotations"]["prometheus.io/port"] = str(options.port)
    meta["annotations"]["edge-sdk/memory-plan"] = sizing.breakdown()
    if model.manifest_sha256:  # a re-exported bundle changes the template: a rolling update
        meta["annotations"]["edge-sdk/bundle-manifest-sha256"] = model.manifest_sha256
    spec = pod["spec"]
    selector = {"kubernetes.io/arch": "arm64", MODULE_LABEL: sizing.device}
    if options.l4t:
        selector[L4T_LABEL] = l4t_selector(options.l4t)
    spec["nodeSelector"] = selector
    spec["terminationGracePeriodSeconds"] = math.ceil(options.drain_timeout) + 15
    spec["securityContext"]["supplementalGroups"] = [options.video_gid]
    spec["volumes"], sub_path = _volumes(model, sizing, options)
    (container,) = spec["containers"]
    container["image"] = options.image or f"edge-serve:l4t-{options.l4t}"
    container["args"] = _args(sizing, options)
    container["env"][0]["valueFrom"]["secretKeyRef"]["name"] = options.api_key_secret
    container["ports"][0]["containerPort"] = options.port
    resources_ = container["resources"]
    resources_["requests"] = {
        "cpu": options.cpu_request,
        "memory": mebibytes(sizing.memory_request),
    }
    resources_["limits"]["memory"] = mebibytes(sizing.memory_limit)
    if sub_path:
        container["volumeMounts"][0]["subPath"] = sub_path


def render_k8s(
    model: DeployedModel, sizing: PodSizing, options: K8sOptions
) -> list[dict[str, Any]]:
    """The manifests: the workload, its Service, its PodDisruptionBudget (+ ServiceMonitor)."""
    _check(options)
    workload = _template(options.workload, f"{options.workload}.yaml")
    documents = [workload, _template("base", "service.yaml"), _template("base", "pdb.yaml")]
    if options.service_monitor:
        documents.append(_template("components", "service-monitor", "servicemonitor.yaml"))
    for document in documents:
        document["metadata"]["name"] = options.name
        if options.namespace:
            document["metadata"]["namespace"] = options.namespace
        _set_instance(document, options.name)
    if options.workload == "deployment":
        workload["spec"]["replicas"] = options.replicas
    _pod(workload["spec"]["template"], model, sizing, options)
    documents[1]["spec"]["ports"][0]["port"] = options.port
    return documents
