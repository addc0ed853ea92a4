"""benchmarks/random_models.py and bench_export.py: the streamed safetensors writer, the child
process measurement and the table. No real export runs here (that is the benchmark's job)."""

from __future__ import annotations

import json
import struct
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import bench_export
import pytest
import random_models

from edge_sdk import ModelConfig

ROOT = Path(__file__).resolve().parents[2]


TINY_QWEN2: dict[str, Any] = {
    **random_models.SHAPES["qwen2.5-0.5b"],
    "hidden_size": 64,
    "intermediate_size": 96,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 3,
    "vocab_size": 2048,
    "max_position_embeddings": 256,
}
TINY_LLAMA: dict[str, Any] = {  # untied: an lm_head of its own; llama3 rope scaling
    **random_models.SHAPES["llama-3.2-1b"],
    "hidden_size": 64,
    "head_dim": 16,
    "intermediate_size": 128,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "num_hidden_layers": 2,
    "vocab_size": 3000,
    "tie_word_embeddings": False,
}


def test_real_shapes_have_their_parameter_counts() -> None:
    counts = {
        name: sum(
            int(torch_numel(shape))
            for _, shape, _ in random_models.tensor_specs(random_models.hf_config(name))
        )
        for name in random_models.SHAPES
    }
    assert 0.49e9 < counts["qwen2.5-0.5b"] < 0.50e9  # 494 M
    assert 1.23e9 < counts["llama-3.2-1b"] < 1.24e9  # 1.236 B
    assert 1.54e9 < counts["qwen2.5-1.5b"] < 1.55e9  # 1.544 B
    for name in ("qwen3-0.6b", "qwen3.5-0.8b", "qwen3-as-qwen3.5-0.8b"):  # as the SDK counts
        config = ModelConfig.from_hf_dict(random_models.hf_config(name))
        assert counts[name] == config.parameter_count(), name


def test_a_cut_hybrid_model_keeps_one_layer_type_per_layer() -> None:
    """--layers N cuts Qwen3.5's layer_types with its layers, so the cut config loads."""
    config = random_models.hf_config("qwen3.5-0.8b", num_layers=8)
    assert len(config["layer_types"]) == 8
    assert ModelConfig.from_hf_dict(config).num_layers == 8


def torch_numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


@pytest.mark.parametrize(("shape", "dtype"), [(TINY_QWEN2, "bfloat16"), (TINY_LLAMA, "float16")])
def test_streamed_file_reads_back_tensor_by_tensor(
    tmp_path: Path, shape: dict[str, Any], dtype: str
) -> None:
    import torch
    from safetensors import safe_open

    folder = random_models.write_random_hf_folder(tmp_path / "m", shape, num_layers=2, dtype=dtype)
    config = json.loads((folder / "config.json").read_text())
    assert config["num_hidden_layers"] == 2 and config["torch_dtype"] == dtype
    assert json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    specs = random_models.tensor_specs(config)
    names = {name for name, _, _ in specs}
    qwen = "Qwen2ForCausalLM" in shape["architectures"]
    assert ("model.layers.1.self_attn.q_proj.bias" in names) == qwen
    assert ("lm_head.weight" in names) == (not shape["tie_word_embeddings"])
    assert "model.layers.2.mlp.up_proj.weight" not in names

    path = folder / "model.safetensors"
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    itemsize = 4 if dtype == "float32" else 2
    data = sum(torch_numel(s) for _, s, _ in specs) * itemsize
    assert length % 8 == 0 and len(raw) == 8 + length + data
    assert [n for n in header if n != "__metadata__"] == [n for n, _, _ in specs]
    torch_dtype = getattr(torch, dtype)
    with safe_open(str(path), "pt") as handle:
        assert set(handle.keys()) == names
        for name, tensor_shape, kind in specs:
            tensor = handle.get_tensor(name)
            assert tensor.dtype == torch_dtype and tuple(tensor.shape) == tensor_shape
            if kind == "norm":
                assert bool((tensor == 1).all())
            elif kind == "weight" and tensor.numel() > 1000:
                assert 0.015 < float(tensor.float().std()) < 0.025
            else:
                assert 0 < float(tensor.float().abs().max()) < 0.1


def test_transformers_loads_the_folder(tmp_path: Path) -> None:
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    for shape in (TINY_QWEN2, TINY_LLAMA):
        folder = random_models.write_random_hf_folder(tmp_path / shape["model_type"], shape)
        model, info = AutoModelForCausalLM.from_pretrained(
            folder, output_loading_info=True, dtype=torch.float32
        )
        assert not info["missing_keys"] and not info["unexpected_keys"], info
        with safe_open(str(folder / "model.safetensors"), "pt") as handle:
            expected = handle.get_tensor("model.layers.0.self_attn.k_proj.weight").float()
        assert torch.equal(model.model.layers[0].self_attn.k_proj.weight.detach(), expected)
        logits = model(torch.tensor([[1, 2, 3]])).logits
        assert logits.shape == (1, 3, shape["vocab_size"]) and bool(torch.isfinite(logits).all())


def test_writer_memory_is_one_block_not_the_file(tmp_path: Path) -> None:
    shape = {**TINY_LLAMA, "vocab_size": 32768, "hidden_size": 2048, "head_dim": 64}
    shape.update(num_attention_heads=32, num_key_value_heads=8, num_hidden_layers=1)
    script = textwrap.dedent(
        f"""
        import json, resource, sys
        from pathlib import Path
        sys.path.insert(0, {str(ROOT / "benchmarks")!r})
        import random_models
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
        random_models.write_random_hf_folder(Path({str(tmp_path)!r}), json.loads(sys.argv[1]))
        """
    )
    run = bench_export.measure([sys.executable, "-c", script, json.dumps(shape)], timeout_s=60)
    assert run.returncode == 0, run.stderr
    file_bytes = (tmp_path / "model.safetensors").stat().st_size
    assert file_bytes > 280e6  # two 32768 x 2048 bf16 tables and one layer
    assert run.peak_rss_bytes is not None
    growth = run.peak_rss_bytes - int(run.stdout.split()[0])
    assert growth < 100e6, f"writer grew by {growth / 1e6:.0f} MB for a {file_bytes / 1e6} MB file"


def test_measure_reports_the_child_peak_rss_and_exit() -> None:
    run = bench_export.measure([sys.executable, "-c", "x = bytearray(200_000_000)"])
    assert run.returncode == 0 and not run.timed_out
    assert run.peak_rss_bytes is not None and 200e6 < run.peak_rss_bytes < 260e6
    failed = bench_export.measure(
        [sys.executable, "-c", "import sys; print('progress', file=sys.stderr); sys.exit('bad')"]
    )
    assert failed.returncode == 1 and failed.last_stderr_line == "bad"


def test_measure_timeout_kills_the_process_group() -> None:
    # The child starts a grandchild that would outlive it: the whole group must go.
    code = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "print(p.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    run = bench_export.measure([sys.executable, "-c", code], timeout_s=1.5)
    assert run.timed_out and run.returncode == -15 and run.wall_s < 10
    assert run.peak_rss_bytes is not None and run.peak_rss_bytes < 100e6
    grandchild = int(run.stdout.split()[0])
    for _ in range(50):
        status = Path(f"/proc/{grandchild}/stat")
        if not status.exists() or status.read_text().split()[2] == "Z":
            break
        time.sleep(0.1)
    else:
        pytest.fail("the grandchild survived the timeout")


def test_table_targets_ratios_and_host(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "model name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f amx_tile amx_int8\n"
        "model name\t: Test CPU 9000\nflags\t\t: fpu avx2 avx512f amx_tile amx_int8\n"
    )
    host = bench_export.host_info(cpuinfo, tmp_path / "missing")
    assert host["cpu"] == "Test CPU 9000"
    isa = host["isa"]
    assert isa["avx2"] and isa["avx512f"] and isa["amx"]
    assert not isa["avx512_vnni"] and not isa["avx512_bf16"] and not isa["asimddp"]
    gb = int(1e9)
    assert bench_export.target_ok("int8", 2 * gb, int(0.6e9))
    assert not bench_export.target_ok("int4", 2 * gb, int(0.4e9))
    assert bench_export.target_ok("gptq", 2 * gb, int(0.4e9))
    assert bench_export.target_ok("gptq", None, None) is None
    rows = [
        {"shape": "s/2l", "method": "int8", "exporter": "new", "status": "ok", "wall_s": 10.0}
        | {"peak_rss_bytes": 2 * gb, "bundle_bytes": gb, "target_ok": True},
        {"shape": "s/2l", "method": "int8", "exporter": "old", "status": "ok", "wall_s": 40.0}
        | {"peak_rss_bytes": 8 * gb, "bundle_bytes": gb, "target_ok": False},
        bench_export._skipped("s/2l", "int4", "old", "needs ~14.0 GB RAM"),
    ]
    assert bench_export.ratios(rows) == [
        {"shape": "s/2l", "method": "int8", "wall": 0.25, "peak_rss": 0.25}
    ]
    table = bench_export.format_table(rows, host)
    assert "Test CPU 9000" in table and "avx2 avx512f amx" in table
    assert "MISS" in table and "skipped: needs ~14.0 GB RAM" in table
    assert "new/old s/2l int8: wall 0.25x, peak RSS 0.25x" in table


def test_old_exporter_is_skipped_where_it_cannot_run() -> None:
    big = random_models.hf_config("qwen2.5-1.5b")
    assert "protobuf" in (bench_export.old_skip_reason(big, 10**12) or "")
    small = random_models.hf_config("qwen2.5-0.5b", 2)
    assert bench_export.old_skip_reason(small, 10**12) is None
    assert "GB RAM" in (bench_export.old_skip_reason(small, 10**9) or "")
