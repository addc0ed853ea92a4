"""benchmarks/bench_ktoken.py on the demo bundle, its smallest path: the k-token table, its
ratios and the host record (CPU, ISA flags, onnxruntime version) the README's figures cite."""

from __future__ import annotations

import json
from pathlib import Path

import bench_ktoken
import onnxruntime as ort
import pytest


def test_k_token_table_on_the_demo(
    demo_bundle_int8: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ktoken.json"
    argv = [f"demo={demo_bundle_int8}", "--ks", "1,4", "--repeats", "2", "--threads", "1"]
    argv += ["--spin", "on,off", "--variant", "session.dynamic_block_base=1", "--profile", "2"]
    argv += ["--all-logits"]
    assert bench_ktoken.main([*argv, "--settle", "0", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["host"]["onnxruntime"] == ort.__version__
    assert {"avx512_vnni", "asimddp", "i8mm"} <= set(report["host"]["isa"])
    rows = report["rows"]
    variant = {"session.dynamic_block_base": "1"}
    assert [(row["spin"], row["variant"]) for row in rows] == [
        (True, {}),
        (True, variant),
        (False, {}),
        (False, variant),
    ]
    for row in rows:
        assert row["threads"] == 1 and row["precision"] == "int8-g64" and row["logits"] == "all"
        assert "model.ort.onnx" in row["graph"]
        assert all(len(times) == 2 for times in row["samples_ms"].values())
        assert row["ratio_to_k1"]["1"] == 1.0
        ms = row["median_ms"]
        assert row["ratio_to_k1"]["4"] == pytest.approx(ms["4"] / ms["1"])
        ops = row["profile_ms"]  # the fused graph's quantized matmuls, timed per k
        assert 0 < ops["MatMulNBits"]["1"] <= ops["total"]["1"]
        assert 0 < ops["GroupQueryAttention"]["4"] <= ops["total"]["4"]
    printed = capsys.readouterr().out
    assert "onnxruntime " + ort.__version__ in printed
    assert "| demo | int8-g64 | 1 | off | bundle | - |" in printed
    assert "| demo | int8-g64 | 1 | on | bundle | session.dynamic_block_base=1 |" in printed


def test_isa_flags_from_x86_and_arm_cpuinfo(tmp_path: Path) -> None:
    from host import host_info, host_line

    x86 = tmp_path / "x86"
    x86.write_text("model name\t: Some CPU\nflags\t\t: fpu avx2 avx_vnni amx_tile amx_int8\n")
    host = host_info(x86, tmp_path / "none", tmp_path / "none")
    isa = host["isa"]
    assert isa["avx2"] and isa["avx_vnni"] and isa["amx"]
    assert not isa["avx512f"] and not isa["avx512_vnni"] and not isa["asimddp"]
    assert "Some CPU" in host_line(host) and "avx_vnni" in host_line(host)
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm aes asimddp\n")
    board = tmp_path / "model"
    board.write_text("NVIDIA Jetson Orin Nano Developer Kit\x00")
    host = host_info(arm, tmp_path / "none", board)
    isa = host["isa"]
    assert isa["asimd"] and isa["asimddp"] and not isa["i8mm"] and not isa["avx2"]
    assert host["cpu"] == "NVIDIA Jetson Orin Nano Developer Kit"


def test_bad_arguments_exit_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit, match="not a bundle"):
        bench_ktoken.main([str(tmp_path)])
    for bad in (["--ks", "2,4"], ["--spin", "maybe"], ["--variant", "no-equals-sign"]):
        with pytest.raises(SystemExit):
            bench_ktoken.main([str(tmp_path), *bad])
    errors = capsys.readouterr().err
    assert "--ks must start with 1" in errors and "--spin takes on, off" in errors
    assert "give KEY=VALUE" in errors
