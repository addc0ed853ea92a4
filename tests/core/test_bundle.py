"""Bundle loading, verification and atomic writing."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from edge_sdk import BundleError, BundleWriter, load_bundle


@pytest.fixture()
def bundle_copy(demo_bundle_int8: Path, tmp_path: Path) -> Path:
    target = tmp_path / "bundle"
    shutil.copytree(demo_bundle_int8, target)
    return target


def test_a_bundle_loads_and_verifies(bundle_copy: Path) -> None:
    bundle = load_bundle(bundle_copy)
    assert (
        bundle.precision == "int8"
        and bundle.onnx_path.is_file()
        and bundle.tokenizer_path.is_file()
    )


def test_a_changed_byte_is_detected(bundle_copy: Path) -> None:
    model = bundle_copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="SHA-256"):
        load_bundle(bundle_copy)
    load_bundle(bundle_copy, verify=False)  # schema only, on request


def test_a_missing_file_is_named(bundle_copy: Path) -> None:
    (bundle_copy / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match=re.escape("missing tokenizer.json")):
        load_bundle(bundle_copy)


def test_an_unknown_format_version_is_refused(bundle_copy: Path) -> None:
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["format_version"] = 99
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="format version 99"):
        load_bundle(bundle_copy)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not a bundle directory"):
        load_bundle(tmp_path / "nowhere")
    with pytest.raises(BundleError, match=re.escape("no manifest.json")):
        load_bundle(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError, match="cannot read"):
        load_bundle(tmp_path)


def test_an_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt), BundleWriter(target) as writer:
        (writer.dir / "model.onnx").write_bytes(b"partial")
        raise KeyboardInterrupt
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_an_existing_bundle_is_replaced_but_other_folders_are_refused(
    bundle_copy: Path, tmp_path: Path
) -> None:
    manifest = load_bundle(bundle_copy).manifest
    with BundleWriter(bundle_copy) as writer:
        for name in manifest["files"]:
            shutil.copy(bundle_copy / name, writer.dir / name)
        writer.commit(manifest)
    assert load_bundle(bundle_copy).manifest["files"] == manifest["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no leftovers
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match="not an edge-sdk bundle"):
        BundleWriter(precious)
    assert (precious / "notes.txt").read_text() == "mine"
