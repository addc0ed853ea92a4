"""On-device TensorRT suite (Jetson / CUDA GPU with TensorRT): ``pytest -m "tensorrt or cuda"``.

Builds FP16 and INT8 engines of the demo bundle, compares greedy tokens with onnxruntime's CPU
backend, prints decode tokens/s for ORT CPU, ORT TensorRT EP and native TensorRT, and checks that
a second build reuses the timing cache and is faster. Skips with a reason elsewhere.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = [pytest.mark.tensorrt, pytest.mark.cuda, pytest.mark.slow]

PROMPT = "Once upon a time"


def _engine_bundle(source: Path, tmp: Path, name: str, fp16: bool, cache: Path) -> Path:
    from edge_sdk.exporters.tensorrt.build import EngineOptions, build_engine

    target = tmp / name
    shutil.copytree(source, target)
    build_engine(target, EngineOptions(fp16=fp16, timing_cache=cache, max_seq_len=256))
    return target


def _greedy(bundle: Path, backend: str, tokens: int = 32) -> tuple[list[int], float]:
    from edge_sdk.runtime import load

    gen = load(bundle, backend=backend)
    result = gen.generate(PROMPT, max_new_tokens=tokens, temperature=0.0)
    return list(result.token_ids), float(result.stats.decode_tokens_per_s)


def _top1(bundle: Path, backend: str, ids: list[int]) -> list[int]:
    from edge_sdk.bundle import load_bundle
    from edge_sdk.runtime import BackendOptions, create_backend

    with create_backend(backend, load_bundle(bundle), BackendOptions()) as b:
        b.allocate(len(ids) + 1)
        return [int(np.argmax(b.forward(np.array([t])))) for t in ids]


def test_fp16_engine_matches_ort_cpu_and_speeds(demo_bundle_fp32: Path, tmp_path: Path) -> None:
    cache = tmp_path / "timing.cache"
    start = time.perf_counter()
    first = _engine_bundle(demo_bundle_fp32, tmp_path, "fp16-a", True, cache)
    first_s = time.perf_counter() - start
    start = time.perf_counter()
    second = _engine_bundle(demo_bundle_fp32, tmp_path, "fp16-b", True, cache)
    second_s = time.perf_counter() - start
    from edge_sdk.bundle import load_bundle

    assert load_bundle(second).manifest["engines"][0]["timing_cache_reused"] is True
    print(f"\nbuild: first {first_s:.1f} s, with timing cache {second_s:.1f} s")
    assert second_s < first_s
    cpu, cpu_tps = _greedy(first, "ort-cpu")
    native, trt_tps = _greedy(first, "tensorrt")
    assert native == cpu
    try:
        _, ep_tps = _greedy(first, "ort-tensorrt")
    except Exception as exc:  # noqa: BLE001 - the EP needs onnxruntime-gpu with TensorRT
        ep_tps, reason = float("nan"), exc
        print(f"ort-tensorrt unavailable: {reason}")
    print(f"decode tok/s: ort-cpu {cpu_tps:.1f}, ort-tensorrt {ep_tps:.1f}, tensorrt {trt_tps:.1f}")


def test_int8_engine_top1_agreement(demo_bundle_int8_per_channel: Path, tmp_path: Path) -> None:
    bundle = _engine_bundle(
        demo_bundle_int8_per_channel, tmp_path, "int8", True, tmp_path / "timing.cache"
    )
    ids, _ = _greedy(bundle, "ort-cpu", 64)
    cpu, native = _top1(bundle, "ort-cpu", ids), _top1(bundle, "tensorrt", ids)
    agreement = float(np.mean(np.array(cpu) == np.array(native)))
    print(f"\nint8 top-1 agreement TensorRT vs ORT CPU: {agreement:.3f}")
    assert agreement >= 0.95
