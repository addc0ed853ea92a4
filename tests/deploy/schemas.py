"""Offline validation of manifests: Kubernetes' own schemas (kubernetes-validate, strict) at a
pinned version, and the vendored subset schema of the Prometheus Operator's ServiceMonitor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate

#: k3s releases for JetPack 6 era boards run 1.29-1.33; validate against the middle of that.
K8S_VERSION = "1.31.0"
_SERVICE_MONITOR = json.loads((Path(__file__).parent / "servicemonitor.schema.json").read_text())


def validate(document: dict[str, Any]) -> None:
    """Raise unless ``document`` is valid (unknown fields included) for its kind."""
    if document.get("apiVersion") == "monitoring.coreos.com/v1":
        jsonschema.validate(document, _SERVICE_MONITOR)
    else:
        kubernetes_validate.validate(document, K8S_VERSION, strict=True)
