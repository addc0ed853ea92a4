"""edge-deploy as a user runs it: manifests on stdout or in a folder, node labels, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge_sdk.deploy.cli import build_parser, main

from .schemas import validate

NANO = ["--device", "orin-nano-8gb"]
TEGRA_RELEASE = (
    "# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic, EABI: aarch64, "
    "DATE: Wed Jan  8 01:49:37 UTC 2025\n"
)


def test_the_stream_on_stdout_is_valid_yaml(
    demo_bundle_int8: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["k8s", str(demo_bundle_int8), *NANO, "--slots", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("# edge-deploy k8s: ")
    documents = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in documents] == ["DaemonSet", "Service", "PodDisruptionBudget"]
    for document in documents:
        validate(document)
    assert "memory request" in err and err.count("\n") == 1


def test_a_folder_of_manifests_and_its_replacement(
    demo_bundle_int8: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "manifests"
    assert main(["k8s", str(demo_bundle_int8), *NANO, "-o", str(out), "--service-monitor"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "01-daemonset-edge-serve.yaml",
        "02-service-edge-serve.yaml",
        "03-poddisruptionbudget-edge-serve.yaml",
        "04-servicemonitor-edge-serve.yaml",
    ]
    for path in out.iterdir():
        (document,) = yaml.safe_load_all(path.read_text())
        validate(document)
    capsys.readouterr()
    assert main(["k8s", str(demo_bundle_int8), *NANO, "-o", str(out)]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["k8s", str(demo_bundle_int8), *NANO, "-o", str(out), "--force"]) == 0
    assert len(list(out.iterdir())) == 3  # the ServiceMonitor of the last rendering is gone
    (out / "notes.txt").write_text("mine")
    assert main(["k8s", str(demo_bundle_int8), *NANO, "-o", str(out), "--force"]) == 1
    assert (out / "notes.txt").read_text() == "mine"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_json_for_scripts(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "k8s",
                "qwen2.5-1.5b",
                "--device",
                "orin-nx-16gb",
                "--json",
                "--workload",
                "deployment",
                "--replicas",
                "3",
            ]
        )
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["sizing"]["device"] == "orin-nx-16gb" and data["sizing"]["max_context"] == 4096
    deployment = data["manifests"][0]
    assert deployment["kind"] == "Deployment" and deployment["spec"]["replicas"] == 3
    resources = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"]["memory"] == data["sizing"]["memory_request"]


def test_a_misfit_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["k8s", "llama-3.2-3b", *NANO, "--slots", "8"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("edge-deploy: error: llama-3.2-3b") and err.count("\n") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["k8s", "qwen2.5-0.5b", "--device", "t4"],  # not a Jetson
        ["k8s", "qwen2.5-0.5b"],  # no --device
        ["k8s", "qwen2.5-0.5b", *NANO, "--backend", "cuda"],
        [],
    ],
)
def test_bad_usage_exits_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2


def _board(root: Path, model: str, mem_kib: int, release: str | None) -> None:
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_text(model + "\x00")
    (root / "proc/meminfo").write_text(f"MemTotal:       {mem_kib} kB\nMemFree: 1 kB\n")
    if release is not None:
        (root / "etc").mkdir()
        (root / "etc/nv_tegra_release").write_text(release)


def test_node_labels_of_a_jetson(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _board(tmp_path, "NVIDIA Jetson Orin NX Engine Developer Kit", 15_600_000, TEGRA_RELEASE)
    monkeypatch.setenv("EDGE_SDK_SYSFS_ROOT", str(tmp_path))
    assert main(["node-labels"]) == 0
    assert capsys.readouterr().out == "edge-sdk/module=orin-nx-16gb edge-sdk/l4t=r36.4\n"
    assert main(["node-labels", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "edge-sdk/module": "orin-nx-16gb",
        "edge-sdk/l4t": "r36.4",
    }


@pytest.mark.parametrize(
    ("model", "release", "message"),
    [
        ("Raspberry Pi 5 Model B", TEGRA_RELEASE, "not a Jetson Orin"),
        ("NVIDIA Jetson AGX Orin Developer Kit", None, "nv_tegra_release"),
    ],
)
def test_node_labels_elsewhere(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    model: str,
    release: str | None,
    message: str,
) -> None:
    _board(tmp_path, model, 63_000_000, release)
    monkeypatch.setenv("EDGE_SDK_SYSFS_ROOT", str(tmp_path))
    assert main(["node-labels"]) == 1
    assert message in capsys.readouterr().err


def test_the_installed_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edge_sdk.deploy.cli", "k8s", "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and "--bundle-pvc" in result.stdout


def test_every_flag_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "deploy" / "README.md").read_text()
    commands = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in commands.choices.items():
        assert f"edge-deploy {name}" in readme
        flags = [s for a in parser._actions for s in a.option_strings if s.startswith("--")]
        assert [f for f in flags if f not in readme and f != "--help"] == [], name
