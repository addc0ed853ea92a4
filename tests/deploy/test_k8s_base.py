"""deploy/k8s as plain YAML: every manifest is valid as it is, the kustomizations hold together."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from .schemas import validate

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
MANIFESTS = sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")
KUSTOMIZATIONS = sorted(K8S.rglob("kustomization.yaml"))


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(K8S)))
def test_every_manifest_is_valid_as_it_is(path: Path) -> None:
    validate(_load(path))


@pytest.mark.parametrize("path", KUSTOMIZATIONS, ids=lambda p: str(p.relative_to(K8S)))
def test_kustomizations_name_what_exists(path: Path) -> None:
    data = _load(path)
    assert data["apiVersion"].startswith("kustomize.config.k8s.io/")
    assert data["kind"] in ("Kustomization", "Component")
    entries = [*data.get("resources", []), *data.get("components", [])]
    for entry in entries:
        target = (path.parent / entry).resolve()
        assert target.is_file() or (target / "kustomization.yaml").is_file(), entry
    for patch in data.get("patches", []):
        assert patch["target"]["name"] == "edge-serve"
        assert yaml.safe_load(patch["patch"])  # a JSON 6902 patch, as YAML


def test_every_manifest_belongs_to_a_kustomization() -> None:
    listed = {
        (k.parent / entry).resolve()
        for k in KUSTOMIZATIONS
        for entry in _load(k).get("resources", [])
    }
    loose = [p for p in MANIFESTS if p not in listed and p.parent.name != "cluster"]
    assert loose == []


def test_the_deployment_runs_the_daemonsets_pod_with_a_gpu() -> None:
    daemonset = _load(K8S / "daemonset" / "daemonset.yaml")["spec"]["template"]
    deployment = _load(K8S / "deployment" / "deployment.yaml")["spec"]["template"]
    expected = copy.deepcopy(daemonset)
    expected["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] = 1
    assert deployment == expected


def test_the_example_image_matches_its_l4t_selector() -> None:
    pod = _load(K8S / "daemonset" / "daemonset.yaml")["spec"]["template"]["spec"]
    image = pod["containers"][0]["image"]
    assert image.endswith(":l4t-r36.4.0") and pod["nodeSelector"]["edge-sdk/l4t"] == "r36.4"
