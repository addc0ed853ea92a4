"""The READMEs' edge-plan examples are true: every fenced block of the planner README that opens
with a ``$ edge-plan ...`` line shows exactly what that command prints (the demo bundle is the
session's int8 export, as ``edge-export exporters/demo/model.pt --int8 -o demo-int8`` writes
it), and the main README's ``edge-plan`` lines run.

After a change to the planner's output, regenerate the planner README's blocks from the real
commands with ``EDGE_PLAN_README_UPDATE=1 pytest tests/planner/test_readme.py``.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from edge_sdk.planner.cli import main

ROOT = Path(__file__).resolve().parents[2]
PLANNER_README = ROOT / "edge_sdk" / "planner" / "README.md"
EXAMPLE = re.compile(r"^```\n\$ (edge-plan [^\n]*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
UPDATE = os.environ.get("EDGE_PLAN_README_UPDATE") == "1"


@pytest.fixture
def in_bundle_folder(
    demo_bundle_int8: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder holding the demo int8 bundle as ``demo-int8`` and ``my-bundle``."""
    for name in ("demo-int8", "my-bundle"):
        (tmp_path / name).symlink_to(demo_bundle_int8, target_is_directory=True)
    monkeypatch.chdir(tmp_path)


def _printed(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    code = main(shlex.split(command)[1:])
    out, err = capsys.readouterr()
    assert code == 0, f"{command}: exit {code}: {err}"
    return out


@pytest.mark.usefixtures("in_bundle_folder")
def test_planner_readme_shows_what_each_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    text = PLANNER_README.read_text(encoding="utf-8")
    examples = list(EXAMPLE.finditer(text))
    assert len(examples) >= 4 and any("demo-int8" in m.group(1) for m in examples)
    if UPDATE:
        for match in reversed(examples):
            printed = _printed(match.group(1), capsys)
            text = text[: match.start(2)] + printed + text[match.end(2) :]
        PLANNER_README.write_text(text, encoding="utf-8")
        return
    for match in examples:
        assert _printed(match.group(1), capsys) == match.group(2), (
            f"the planner README's output of `{match.group(1)}` is stale: regenerate it with "
            "EDGE_PLAN_README_UPDATE=1 pytest tests/planner/test_readme.py"
        )


@pytest.mark.usefixtures("in_bundle_folder")
def test_main_readme_edge_plan_lines_run(capsys: pytest.CaptureFixture[str]) -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [
        line.split("#")[0].strip() for line in text.splitlines() if line.startswith("edge-plan ")
    ]
    assert commands
    for command in commands:
        assert _printed(command, capsys).strip()
