"""The commands in an install without the ``export`` extra (``edge-sdk-orin[cpu]``: no torch).

Each runs as a real subprocess in which ``torch`` (and, where said, ``onnx``) cannot be imported:
a ``sitecustomize`` on ``PYTHONPATH`` puts a finder first on ``sys.meta_path`` that refuses them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk._optional import DISTRIBUTION
from edge_sdk.exporters.tensorrt.compat import check_path

_BLOCKER = """
import os, sys
from importlib.abc import MetaPathFinder

_BLOCKED = frozenset(os.environ["EDGE_SDK_TEST_UNIMPORTABLE"].split(","))


class _Unimportable(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Unimportable())
"""

_COMMANDS = {
    "edge-export": "edge_sdk.exporters.cli",
    "edge-engine": "edge_sdk.exporters.tensorrt.cli",
    "edge-run": "edge_sdk.runtime.cli",
    "edge-cache": "edge_sdk.runtime.cache_cli",
    "edge-plan": "edge_sdk.planner.cli",
    "edge-power": "edge_sdk.power.cli",
    "edge-serve": "edge_sdk.serve.cli",
}


@pytest.fixture(scope="module")
def blocker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("unimportable")
    (folder / "sitecustomize.py").write_text(_BLOCKER)
    return folder


def _run(
    blocker_dir: Path, command: str, *args: str, unimportable: str = "torch"
) -> subprocess.CompletedProcess[str]:
    """``command`` as installed (its console script), else ``python -m`` its module."""
    script = Path(sys.executable).with_name(command)
    argv = [str(script)] if script.is_file() else [sys.executable, "-m", _COMMANDS[command]]
    path = os.pathsep.join([str(blocker_dir), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env = {**os.environ, "PYTHONPATH": path, "EDGE_SDK_TEST_UNIMPORTABLE": unimportable}
    return subprocess.run(
        [*argv, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def test_the_blocker_blocks(blocker_dir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(blocker_dir), "EDGE_SDK_TEST_UNIMPORTABLE": "torch"}
    done = subprocess.run(
        [sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 1 and "No module named 'torch'" in done.stderr


@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_every_help_works_without_torch(blocker_dir: Path, command: str) -> None:
    done = _run(blocker_dir, command, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: {command}") and "--help" in done.stdout
    assert done.stderr == ""


def test_export_help_is_complete_without_torch(blocker_dir: Path) -> None:
    done = _run(blocker_dir, "edge-export", "--help")
    for text in (
        "--int8",
        "--int4",
        "--trt",
        "--max-seq-len",
        "examples:",
        "accuracy gate",
        "Exit codes",
    ):
        assert text in done.stdout


def test_export_without_torch_names_the_extra(
    blocker_dir: Path, demo_checkpoint: Path, tmp_path: Path
) -> None:
    done = _run(
        blocker_dir, "edge-export", str(demo_checkpoint), "--int8", "-o", str(tmp_path / "bundle")
    )
    assert done.returncode == 1
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(
        "edge-export: error: edge-export needs the Python package 'torch'"
    )
    assert f"pip install '{DISTRIBUTION}[export]'" in done.stderr
    assert not (tmp_path / "bundle").exists()


def test_export_bad_usage_is_still_exit_2_without_torch(blocker_dir: Path) -> None:
    done = _run(blocker_dir, "edge-export", "model.pt", "--int8", "--method", "gptq")
    assert done.returncode == 2 and "--method" in done.stderr


def test_engine_check_without_torch_matches_the_check_with_it(
    blocker_dir: Path, demo_bundle_int8_per_channel: Path
) -> None:
    done = _run(blocker_dir, "edge-engine", "--check", str(demo_bundle_int8_per_channel), "--json")
    assert done.returncode == 0, done.stderr
    expected = json.loads(json.dumps(check_path(demo_bundle_int8_per_channel, "10").to_dict()))
    assert json.loads(done.stdout) == expected


def test_engine_check_failing_graph_exits_1_without_torch(
    blocker_dir: Path, demo_bundle_int8: Path
) -> None:
    fused = demo_bundle_int8 / "model.ort.onnx"  # contrib ops: TensorRT takes none of them
    done = _run(blocker_dir, "edge-engine", "--check", str(fused))
    assert done.returncode == 1 and "error" in done.stdout.lower(), done.stdout + done.stderr


@pytest.mark.parametrize("args", [["--check"], []])
def test_engine_without_onnx_names_the_extra(
    blocker_dir: Path, demo_bundle_fp32: Path, args: list[str]
) -> None:
    done = _run(blocker_dir, "edge-engine", *args, str(demo_bundle_fp32), unimportable="torch,onnx")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "needs the Python package 'onnx'" in done.stderr
    assert f"pip install '{DISTRIBUTION}[engine]'" in done.stderr


def test_exporters_api_without_torch_names_the_extra(blocker_dir: Path) -> None:
    code = (
        "from edge_sdk.errors import BackendUnavailableError\n"
        "try:\n    from edge_sdk.exporters import export\n"
        "except BackendUnavailableError as exc:\n    print(exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(blocker_dir), "EDGE_SDK_TEST_UNIMPORTABLE": "torch"}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("edge_sdk.exporters.export needs the Python package 'torch'")
    assert f"pip install '{DISTRIBUTION}[export]'" in done.stdout
