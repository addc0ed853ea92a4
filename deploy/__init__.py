"""A fleet of Jetsons: edge-serve's container image and its Kubernetes (k3s) manifests.

``deploy/container/Dockerfile`` builds the image (no torch; the bundle mounted read-only at
``/bundle``). ``deploy/k8s/`` holds the manifests as plain YAML (kustomize bases), and
:func:`render_k8s` (``edge-deploy k8s``) writes them for one module and bundle with the memory
the planner estimates. Depends on the core only (planner, bundle, board), plus PyYAML
(``edge-sdk-orin[deploy]``) to read and write the manifests.
"""

from __future__ import annotations

from edge_sdk.deploy.manifests import K8sOptions, l4t_selector, render_k8s
from edge_sdk.deploy.node_labels import node_labels
from edge_sdk.deploy.output import dump_yaml, write_manifests
from edge_sdk.deploy.sizing import DeployedModel, PodSizing, describe_model, size_pod

__all__ = [
    "DeployedModel",
    "K8sOptions",
    "PodSizing",
    "describe_model",
    "dump_yaml",
    "l4t_selector",
    "node_labels",
    "render_k8s",
    "size_pod",
    "write_manifests",
]
