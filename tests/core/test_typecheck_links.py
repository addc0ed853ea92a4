"""mypy resolves the mapped packages through .typecheck/edge_sdk: one link per package-dir entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINKS = ROOT / ".typecheck" / "edge_sdk"


def _config() -> dict[str, Any]:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return config


def _mapped_folders() -> dict[str, str]:
    config = _config()
    package_dir: dict[str, str] = config["tool"]["setuptools"]["package-dir"]
    return {
        name.removeprefix("edge_sdk."): folder
        for name, folder in package_dir.items()
        if name != "edge_sdk"
    }


def test_every_mapped_folder_has_a_link_to_it() -> None:
    mapped = _mapped_folders()
    assert mapped, "pyproject.toml maps no folder into edge_sdk"
    for name, folder in mapped.items():
        link = LINKS / name
        assert link.is_symlink(), f"add the link: ln -s ../../{folder} .typecheck/edge_sdk/{name}"
        assert link.resolve() == (ROOT / folder).resolve()


def test_no_stale_links() -> None:
    assert {p.name for p in LINKS.iterdir()} == set(_mapped_folders())


def test_mypy_reads_the_links() -> None:
    mypy = _config()["tool"]["mypy"]
    assert mypy["mypy_path"] == ".typecheck"
    assert mypy["strict"] is True
    assert {f"edge_sdk.{name}" for name in _mapped_folders()} <= set(mypy["packages"])
