"""Device catalog, nvpmodel conf derating, presets and MODEL resolution."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from edge_sdk.bundle import BundleWriter
from edge_sdk.config import ModelConfig
from edge_sdk.errors import ConfigError
from edge_sdk.planner import (
    DEVICES,
    PRESETS,
    device_with_conf,
    get_device,
    get_preset,
    resolve_model,
)

JETSONS = [
    "orin-nano-4gb",
    "orin-nano-8gb",
    "orin-nano-super",
    "orin-nx-8gb",
    "orin-nx-16gb",
    "agx-orin-32gb",
    "agx-orin-64gb",
]

# Irregular spacing on purpose, as in shipped files.
CONF = """
# Orin Nano 8GB (Super) excerpt
<PARAM TYPE=CLOCK NAME=EMC >
MAX_FREQ /sys/kernel/nvpmodel_emc_cap/emc_iso_cap
< POWER_MODEL ID=0 NAME=15W >
TPC_POWER_GATING TPC_PG_MASK 240
GPU MAX_FREQ   612000000
EMC MAX_FREQ 2133000000
<POWER_MODEL ID=1 NAME=25W>
GPU MAX_FREQ 918000000   # capped
EMC MAX_FREQ 3199000000
< POWER_MODEL ID=2 NAME=MAXN_SUPER >
TPC_POWER_GATING TPC_PG_MASK 252
GPU MAX_FREQ -1
EMC MAX_FREQ 0
<  PM_CONFIG DEFAULT=1 >
"""


def test_catalog_has_the_seven_orin_modules_and_comparison_gpus() -> None:
    assert [name for name in DEVICES if DEVICES[name].jetson] == JETSONS
    assert {"t4", "a100-40gb", "h100"} <= set(DEVICES)
    assert get_device("orin-nano-8gb").bandwidth_bytes_s == 68e9
    assert get_device("agx-orin-64gb").int8_ops_s == pytest.approx(85.2e12, rel=0.01)  # 170 sparse
    with pytest.raises(ConfigError, match="valid devices: orin-nano-4gb"):
        get_device("xavier-nx")


def test_modes_resolve_by_wattage_and_name() -> None:
    assert get_device("agx-orin-64gb").mode("15W").name == "MODE_15W"
    assert get_device("orin-nx-16gb").mode(None).name == "15W"
    assert get_device("orin-nano-super").mode("maxn_super").name == "MAXN_SUPER"
    with pytest.raises(ConfigError, match="modes: 15W, 7W"):
        get_device("orin-nano-8gb").mode("40W")


def test_nvpmodel_conf_sets_modes_caps_and_default(tmp_path: Path) -> None:
    path = tmp_path / "nvpmodel.conf"
    path.write_text(CONF, encoding="utf-8")
    device = device_with_conf(get_device("orin-nano-super"), path)
    assert [m.name for m in device.modes] == ["15W", "25W", "MAXN_SUPER"]
    assert device.default_mode == "25W"
    low, mid, top = device.modes
    assert device.bandwidth_scale(low) == pytest.approx(2133 / 3199)
    assert device.compute_scale(low) == pytest.approx(612 / 1020)
    assert device.bandwidth_scale(top) == 1.0  # 0 and -1: no cap
    assert device.compute_scale(top) == pytest.approx(0.5)  # 2 of 4 TPCs powered
    assert mid.budget_w == 25 and top.budget_w == max(
        m.budget_w for m in get_device("orin-nano-super").modes
    )


def test_nvpmodel_conf_errors(tmp_path: Path) -> None:
    path = tmp_path / "bad.conf"
    path.write_text("< POWER_MODEL ID=0 NAME=15W >\nGPU MAX_FREQ 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="PM_CONFIG"):
        device_with_conf(get_device("orin-nano-8gb"), path)
    with pytest.raises(ConfigError, match="cannot read"):
        device_with_conf(get_device("orin-nano-8gb"), tmp_path / "missing.conf")


# Official parameter counts (incl. embeddings, tied counted once).
@pytest.mark.parametrize(
    ("name", "billions"),
    [
        ("tinyllama-1.1b", 1.100),
        ("llama-3.2-1b", 1.236),
        ("llama-3.2-3b", 3.213),
        ("qwen2.5-0.5b", 0.494),
        ("qwen2.5-1.5b", 1.544),
        ("deepseek-r1-distill-qwen-1.5b", 1.777),
        ("smollm2-135m", 0.1345),
        ("smollm2-360m", 0.362),
        ("llama-2-7b", 6.738),
        ("qwen2.5-7b", 7.616),
    ],
)
def test_preset_parameter_counts(name: str, billions: float) -> None:
    assert get_preset(name).parameter_count() / 1e9 == pytest.approx(billions, rel=0.002)


def test_resolve_preset_hf_file_and_folder(hf_config_file: Path) -> None:
    assert resolve_model("Qwen2.5-1.5B").kind == "preset"
    for arg in (hf_config_file, hf_config_file.parent):
        source = resolve_model(str(arg))
        assert source.kind == "hf-config" and source.config.vocab_size == 100


def test_resolve_bundle(tmp_path: Path, tiny_config: ModelConfig) -> None:
    with BundleWriter(tmp_path / "b") as writer:
        (writer.dir / "model.onnx").write_bytes(b"x" * 1000)
        (writer.dir / "model.onnx.data").write_bytes(b"y" * 5000)
        (writer.dir / "tokenizer.json").write_text("{}", encoding="utf-8")
        writer.commit(
            {
                "model": {"config": tiny_config.to_dict()},
                "graph": {"file": "model.onnx", "max_sequence_length": 64},
                "tokenizer": {"file": "tokenizer.json"},
                "precision": {"name": "int8"},
            }
        )
    for arg in (tmp_path / "b", tmp_path / "b" / "manifest.json"):
        source = resolve_model(str(arg))
        assert source.kind == "bundle" and source.precision == "int8"
        assert source.bundle_model_bytes == 6000 and source.config == tiny_config


def test_resolve_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=re.escape("valid presets: tinyllama-1.1b")):
        resolve_model("gpt-5")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_model(str(tmp_path / "nope" / "config.json"))
    broken = tmp_path / "config.json"
    broken.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="cannot read"):
        resolve_model(str(broken))
    assert len(PRESETS) >= 10


@pytest.mark.skipif(
    importlib.util.find_spec("edge_sdk.checkpoint") is None,
    reason="edge_sdk.checkpoint is not there yet",
)
def test_resolve_checkpoint(tmp_path: Path, tiny_config: ModelConfig) -> None:
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save(
        {
            "format": "edge-sdk-checkpoint",
            "format_version": 1,
            "config": tiny_config.to_dict(),
            "tokenizer": json.dumps({}),
            "state_dict": {},
            "metadata": {"name": "tiny"},
        },
        path,
    )
    source = resolve_model(str(path))
    assert source.kind == "checkpoint" and source.config == tiny_config
