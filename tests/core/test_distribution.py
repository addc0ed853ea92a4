"""The distribution's name (``edge-sdk`` on the package index is an unrelated project) and the
install commands the SDK prints and documents."""

from __future__ import annotations

import re
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from edge_sdk._optional import _PROVIDERS, DISTRIBUTION, pip_install

ROOT = Path(__file__).resolve().parents[2]
# pip install 'NAME[extra,extra]' (quoted or not), as a message or a document writes it
_PIP_INSTALL = re.compile(r"""pip install (?:-e )?["']?([A-Za-z0-9_.-]+)\[([\w,-]+)\]""")


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _tracked_texts() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.toml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [ROOT / name for name in listed.stdout.split()]


def test_the_distribution_is_named_as_the_sdk_says() -> None:
    project = _pyproject()
    assert project["name"] == DISTRIBUTION != "edge-sdk"
    assert metadata.distribution(DISTRIBUTION).metadata["Name"] == DISTRIBUTION  # as installed


def test_extras_that_name_the_sdk_use_its_name() -> None:
    extras = _pyproject()["optional-dependencies"]
    own = [req for reqs in extras.values() for req in reqs if req.startswith("edge-sdk")]
    assert own and all(re.fullmatch(rf"{DISTRIBUTION}\[[\w,-]+\]", req) for req in own), own
    for req in own:
        assert set(req.split("[")[1].rstrip("]").split(",")) <= set(extras)


def test_every_printed_and_documented_install_names_a_real_extra() -> None:
    extras = set(_pyproject()["optional-dependencies"])
    texts = [
        (str(path.relative_to(ROOT)), path.read_text(errors="ignore")) for path in _tracked_texts()
    ]
    texts.append(("_optional.py hints", " ".join(_PROVIDERS.values())))
    found = [
        (where, name, wanted)
        for where, text in texts
        for name, wanted in _PIP_INSTALL.findall(text)
        if name.startswith(("edge", "."))
    ]
    assert any(where == "README.md" for where, _, _ in found)
    wrong_name = [f for f in found if f[1] not in (DISTRIBUTION, ".")]
    assert not wrong_name, f"install commands with another name: {wrong_name}"
    unknown = [f for f in found if not f[2].isupper() and not set(f[2].split(",")) <= extras]
    assert not unknown, f"install commands with an extra pyproject.toml lacks: {unknown}"


def test_pip_install_hint() -> None:
    assert pip_install("cpu,serve") == f"pip install '{DISTRIBUTION}[cpu,serve]'"
