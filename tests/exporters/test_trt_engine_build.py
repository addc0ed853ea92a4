"""Engine build around TensorRT: profiles, workspace per module, manifest record, atomic update."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from edge_sdk.board import detect_module, module_name
from edge_sdk.bundle import load_bundle
from edge_sdk.bundle_update import update_bundle
from edge_sdk.errors import BundleError, ConfigError, ExportError
from edge_sdk.exporters.tensorrt.build import (
    EngineOptions,
    add_engine_record,
    engine_file_name,
    engine_record,
    plan_workspace,
    resolve_int8,
    trt_major,
)
from edge_sdk.exporters.tensorrt.profiles import MIN_WORKSPACE, MiB, engine_profiles, workspace_plan
from edge_sdk.planner import get_device, get_preset


def test_profiles_cover_prefill_and_decode(demo_bundle_fp32: Path) -> None:
    bundle = load_bundle(demo_bundle_fp32)
    prefill, decode = engine_profiles(bundle.graph["inputs"], 512)
    assert prefill.shapes["input_ids"] == ((1, 1), (1, 128), (1, 256))
    assert prefill.shapes["past_key_values.0.key"][0][2] == 0
    assert prefill.shapes["past_key_values.0.key"][2][2] == 511
    assert decode.shapes["input_ids"] == ((1, 1), (1, 1), (1, 1))
    assert decode.shapes["attention_mask"][2] == (1, 512)
    kv_heads = bundle.config.num_kv_heads
    assert decode.shapes["past_key_values.0.value"][1] == (1, kv_heads, 256, bundle.config.head_dim)


def test_workspace_shrinks_on_small_modules_and_refuses_when_it_cannot_fit() -> None:
    config = get_preset("llama-3.2-1b")
    nano = workspace_plan(config, get_device("orin-nano-8gb"), "int8", 2048)
    agx = workspace_plan(config, get_device("agx-orin-64gb"), "int8", 2048)
    assert MIN_WORKSPACE <= nano.workspace_bytes < agx.workspace_bytes
    assert agx.workspace_bytes == 4096 * MiB
    with pytest.raises(ConfigError, match="does not fit"):
        workspace_plan(get_preset("llama-3.2-3b"), get_device("orin-nano-8gb"), "fp32", 2048)
    with pytest.raises(ConfigError, match="--workspace-mb"):
        workspace_plan(config, get_device("orin-nano-8gb"), "int8", 2048, requested_mb=100_000)
    assert (
        workspace_plan(config, get_device("orin-nano-8gb"), "int8", 2048, 512).workspace_bytes
        == 512 * MiB
    )


@pytest.mark.parametrize(
    ("model", "mem_gib", "name"),
    [
        ("NVIDIA Jetson Orin Nano Developer Kit", 7.4, "orin-nano-8gb"),
        (
            "NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super",
            7.4,
            "orin-nano-super",
        ),
        ("NVIDIA Jetson Orin Nano 4GB", 3.3, "orin-nano-4gb"),
        ("NVIDIA Jetson Orin NX Engineering Reference Developer Kit", 15.3, "orin-nx-16gb"),
        ("NVIDIA Jetson AGX Orin Developer Kit", 29.8, "agx-orin-32gb"),
        ("NVIDIA Jetson AGX Orin Developer Kit", 61.3, "agx-orin-64gb"),
        ("Raspberry Pi 5", 8.0, None),
    ],
)
def test_module_from_device_tree(model: str, mem_gib: float, name: str | None) -> None:
    assert module_name(model, int(mem_gib * 2**30)) == name


def test_detect_module_reads_a_fake_board(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, demo_bundle_fp32: Path
) -> None:
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"NVIDIA Jetson Orin Nano Developer Kit\x00")
    (tmp_path / "proc/meminfo").write_text("MemTotal:        7802076 kB\nMemFree: 1 kB\n")
    monkeypatch.setenv("EDGE_SDK_SYSFS_ROOT", str(tmp_path))
    assert detect_module() == "orin-nano-8gb"
    plan = plan_workspace(load_bundle(demo_bundle_fp32), EngineOptions(), 256)
    assert plan is not None and plan.device == "orin-nano-8gb"
    monkeypatch.setenv("EDGE_SDK_SYSFS_ROOT", str(tmp_path / "nothing"))
    assert detect_module() is None
    assert plan_workspace(load_bundle(demo_bundle_fp32), EngineOptions(), 256) is None


def test_flags_and_names() -> None:
    assert trt_major("10.3.0.30") == 10 and trt_major("8.6.2") == 8
    assert engine_file_name("int8", fp16=True, int8=True) == "model.int8.engine"
    assert engine_file_name("fp32", fp16=True, int8=False) == "model.fp16.engine"
    assert resolve_int8(EngineOptions(), "int8") is True
    assert (
        resolve_int8(EngineOptions(), "w8a8") is True
    )  # static activation Q/DQ: TensorRT INT8's own form
    assert resolve_int8(EngineOptions(), "int4") is False  # weight-only: DQ into float GEMMs
    assert engine_file_name("w8a8", fp16=True, int8=True) == "model.w8a8.engine"
    assert engine_file_name("int4", fp16=True, int8=False) == "model.int4.engine"
    assert resolve_int8(EngineOptions(int8=False), "int8") is False
    with pytest.raises(ExportError, match="int8 or w8a8 bundle"):
        resolve_int8(EngineOptions(int8=True), "fp32")


def _record(demo: Path, file: str = "model.fp16.engine") -> dict:
    bundle = load_bundle(demo)
    gpu = {"name": "Orin", "compute_capability": "8.7", "module": "orin-nano-8gb"}
    return engine_record(
        file,
        "10.3.0",
        gpu,
        True,
        False,
        engine_profiles(bundle.graph["inputs"], 256),
        512 * MiB,
        EngineOptions(fp16=True),
        256,
        12.3,
        False,
    )


def test_engine_added_atomically_with_hashes(demo_bundle_fp32: Path, tmp_path: Path) -> None:
    import shutil

    work = tmp_path / "bundle"
    shutil.copytree(demo_bundle_fp32, work)
    engine = tmp_path / "e.bin"
    engine.write_bytes(b"serialized engine bytes")
    record = _record(work)
    updated = update_bundle(work, lambda m: add_engine_record(m, record), {record["file"]: engine})
    again = load_bundle(work)  # verifies every hash
    assert again.manifest["engines"] == [record] == updated.manifest["engines"]
    assert again.manifest["files"]["model.fp16.engine"]["size"] == len(b"serialized engine bytes")
    assert again.manifest["environment"]["tensorrt"] == "10.3.0"
    # a second build replaces the entry for the same file
    update_bundle(
        work,
        lambda m: add_engine_record(m, dict(record, build_seconds=1.0)),
        {record["file"]: engine},
    )
    assert [e["build_seconds"] for e in load_bundle(work).manifest["engines"]] == [1.0]
    # a failure while updating leaves the bundle as it was
    before = (work / "manifest.json").read_text()

    def boom(manifest: dict) -> dict:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        update_bundle(work, boom, {"model.int8.engine": engine})
    assert (work / "manifest.json").read_text() == before
    assert not (work / "model.int8.engine").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".bundle")] == []
    with pytest.raises(BundleError):
        update_bundle(work, None, {"../escape": engine})
    json.loads(before)
    assert os.stat(work / "model.onnx").st_nlink >= 1
