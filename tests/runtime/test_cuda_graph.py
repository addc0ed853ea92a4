"""``ort-cuda`` on the CUDA fused graph (``model.cuda.onnx``): its typed manifest entry, its code
path run on the CPU EP (fp16 graph, OrtValue cache buffers, the same bindings and slots:
:mod:`tests.runtime.cuda_path`), its fallbacks; the same on a GPU behind ``-m cuda``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge_sdk.bundle import load_bundle
from edge_sdk.errors import BundleError
from edge_sdk.manifest import Manifest
from edge_sdk.runtime import Engine, Generator, load
from edge_sdk.runtime.backend import BackendOptions
from edge_sdk.runtime.ort_backend import OrtCudaBackend, OrtTensorrtBackend
from tests.runtime.cuda_path import cuda_path_generator, with_cuda_graph

PROMPTS = ["Once upon a time", "The dog ran to the", "Tom", "Mia had a pink ball. One day", "Ben"]


@pytest.fixture(scope="module")
def cuda_bundle(demo_bundle_int8: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo int8 bundle with its CUDA graph (``edge-export --cuda-graph``'s step)."""
    return with_cuda_graph(demo_bundle_int8, tmp_path_factory.mktemp("cuda") / "demo-int8")


@pytest.fixture(scope="module")
def cuda_path(cuda_bundle: Path) -> Iterator[Generator]:
    with cuda_path_generator(cuda_bundle) as generator:
        yield generator


def test_the_manifest_types_the_cuda_graph(cuda_bundle: Path, demo_bundle_int8: Path) -> None:
    bundle = load_bundle(cuda_bundle)
    entry = bundle.spec.cuda_graph
    assert entry is not None and entry.file == "model.cuda.onnx"
    assert entry.dtype is not None and entry.dtype.startswith("float16")
    assert entry.cpu_check is not None and entry.cpu_check["top1_agreement"] >= 0.99
    assert bundle.spec.fused_graph is not None
    assert entry.names(4) == bundle.spec.fused_graph.names(4)
    assert Manifest.from_dict(bundle.manifest).to_dict() == bundle.manifest
    assert load_bundle(demo_bundle_int8).spec.cuda_graph is None  # older bundles load


def test_a_wrong_cuda_graph_field_is_named(cuda_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(cuda_bundle, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["onnxruntime"]["cuda_graph"]["file"] = 3
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=r"onnxruntime\.cuda_graph\.file must be a string"):
        load_bundle(copy, verify=False).spec  # noqa: B018 - validates every record


def test_cuda_path_greedy_equals_a_plain_session_of_the_fp16_graph(
    cuda_path: Generator, cuda_bundle: Path
) -> None:
    """The backend's path (OrtValue buffers bound once, fp16 cache) against a plain session of
    the same graph fed token by token."""
    from edge_sdk.exporters.fused_graph_check import FusedSession

    backend = cuda_path.backend
    assert isinstance(backend, OrtCudaBackend) and backend.fused
    assert backend.graph_path.name == "model.cuda.onnx"
    prompt = cuda_path.encode(PROMPTS[0])
    got = cuda_path.generate(prompt, max_new_tokens=24, ignore_eos=True).token_ids
    config = dict(cuda_path.bundle.manifest["onnxruntime"].get("session_config", {}))
    plain = FusedSession(cuda_bundle / "model.cuda.onnx", cuda_path.bundle.config, 64, config)
    logits, want = plain.run(prompt), []
    for _ in range(24):
        want.append(int(logits.argmax()))
        logits = plain.run([want[-1]])
    assert got == want
    assert backend.cache is not None
    owners = [owner for pair in backend.cache._owners for owner, _ in pair]
    assert {o.owner.device_name() for o in owners} == {"cpu"}  # OrtValues (cuda on a GPU)
    assert {o.dtype for o in owners} == {np.dtype(np.float16)}


def test_cuda_path_batched_greedy_equals_single_requests(cuda_path: Generator) -> None:
    want = [cuda_path.generate(p, max_new_tokens=12 + 3 * i) for i, p in enumerate(PROMPTS)]
    with Engine(cuda_path, slots=3) as engine:
        assert engine.batched and engine.slots == 3
        requests = [engine.submit(p, max_new_tokens=12 + 3 * i) for i, p in enumerate(PROMPTS)]
        got = [r.wait(timeout=60) for r in requests]
    assert [g.token_ids for g in got] == [w.token_ids for w in want]


def test_cuda_path_rows_copy_out_and_in(cuda_path: Generator) -> None:
    """The prompt cache's host store: a row's fp16 positions copied to the host and into
    another row decode exactly as the original (byte copies at OrtValue offsets)."""
    model = cuda_path.backend.slot_model(2, 64)
    assert model is not None
    ids = cuda_path.encode(PROMPTS[3])
    model.prefill(0, ids)
    tensors = model.copy_out(0)
    assert tensors is not None and tensors[0].dtype == np.float16
    assert tensors[0].shape[1] == len(ids)
    assert model.copy_in(1, tensors, len(ids))
    logits = model.decode([0, 1], [7, 7])
    np.testing.assert_array_equal(logits[0], logits[1])
    model.close()


def test_speculation_runs_on_the_cuda_graph(cuda_path: Generator, cuda_bundle: Path) -> None:
    """Cutting rejected drafts from the shared buffer is only a length: allowed on the CUDA graph;
    the GPU's standard graph (no device copy of its ping-pong cache) still refuses."""
    assert cuda_path.backend.speculation_problem() is None
    prompt = "Once upon a time, there was a little girl. Once upon a time, there was"
    plain = cuda_path.generate(prompt, max_new_tokens=20, ignore_eos=True)
    drafted = cuda_path.generate(prompt, max_new_tokens=20, ignore_eos=True, speculative="ngram")
    assert drafted.token_ids == plain.token_ids
    standard = OrtCudaBackend(load_bundle(cuda_bundle), BackendOptions(fused_graph=False))
    problem = standard.speculation_problem()
    assert problem is not None and "standard graph" in problem


def test_a_bundle_without_the_cuda_graph_runs_one_slot_with_a_warning(
    demo_bundle_int8: Path,
) -> None:
    with pytest.warns(RuntimeWarning, match="no CUDA graph.*--cuda-graph"):
        generator = cuda_path_generator(demo_bundle_int8)
    with generator:
        assert not generator.backend.fused  # type: ignore[attr-defined]
        assert generator.backend.slot_model(2, 64) is None
        with Engine(generator, slots=2) as engine:
            assert not engine.batched
        result = generator.generate(PROMPTS[0], max_new_tokens=8, ignore_eos=True)
        assert result.stats.backend.endswith("model.onnx") and result.stats.new_tokens == 8


def test_a_cuda_graph_that_does_not_load_falls_back(cuda_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(cuda_bundle, copy)
    (copy / "model.cuda.onnx").write_bytes(b"not an onnx graph")
    with pytest.warns(RuntimeWarning, match="one slot on the GPU"):
        generator = cuda_path_generator(copy)
    with generator:
        backend = generator.backend
        assert not backend.fused and "model.cuda.onnx" in backend.fused_fallback  # type: ignore[attr-defined]


def test_a_gpu_row_copy_without_a_usable_gpu_says_so_in_one_line() -> None:
    """No CUDA runtime library, or one without a driver (this machine): one EdgeError naming
    the way out; with a GPU, cudaMemcpyDefault copies host to host too."""
    from edge_sdk.errors import EdgeError
    from edge_sdk.runtime.ort_buffers import Place

    source, target = np.arange(4, dtype=np.float16), np.zeros(4, np.float16)
    try:
        Place("cuda", ort_values=True).copy(target.ctypes.data, source.ctypes.data, 8)
    except EdgeError as exc:
        assert "\n" not in str(exc) and "ort-cpu" in str(exc)
    else:
        np.testing.assert_array_equal(target, source)


def test_the_tensorrt_ep_keeps_the_standard_graph(cuda_bundle: Path) -> None:
    backend = OrtTensorrtBackend(load_bundle(cuda_bundle), BackendOptions())
    assert backend.fused_graph_record() is None and not backend.fused


# -- on a GPU ----------------------------------------------------------------------------------


@pytest.fixture
def ort_cuda() -> None:
    """Skip where onnxruntime has no CUDA EP (a GPU with the CPU-only wheel)."""
    from edge_sdk.runtime import available_backends

    if "ort-cuda" not in available_backends():
        pytest.skip("onnxruntime here has no CUDA EP (pip install 'edge-sdk-orin[gpu]')")


def _greedy(bundle: Path, backend: str, prompt: str, steps: int) -> list[int]:
    with load(bundle, backend) as generator:
        return generator.generate(prompt, max_new_tokens=steps, ignore_eos=True).token_ids


@pytest.mark.cuda
@pytest.mark.usefixtures("ort_cuda")
def test_cuda_greedy_equals_the_cpu_graph(cuda_bundle: Path) -> None:
    """ort-cuda on model.cuda.onnx: its first 16 greedy tokens are ort-cpu's (model.ort.onnx)."""
    with load(cuda_bundle, "ort-cuda") as generator:
        assert generator.backend.fused  # type: ignore[attr-defined]
        got = generator.generate(PROMPTS[3], max_new_tokens=16, ignore_eos=True).token_ids
    assert got == _greedy(cuda_bundle, "ort-cpu", PROMPTS[3], 16)


@pytest.mark.cuda
@pytest.mark.usefixtures("ort_cuda")
def test_cuda_greedy_equals_the_cpu_graph_smollm2(smollm2_int8: Path, tmp_path: Path) -> None:
    bundle = with_cuda_graph(smollm2_int8, tmp_path / "smollm2")
    prompt = "The history of the printing press begins"
    assert _greedy(bundle, "ort-cuda", prompt, 16) == _greedy(bundle, "ort-cpu", prompt, 16)


@pytest.mark.cuda
@pytest.mark.usefixtures("ort_cuda")
def test_cuda_batched_equals_single_and_the_cache_stays_on_the_device(cuda_bundle: Path) -> None:
    with load(cuda_bundle, "ort-cuda") as generator:
        want = [generator.generate(p, max_new_tokens=12).token_ids for p in PROMPTS]
        model = generator.backend.slot_model(2, 64)
        assert model is not None
        model.prefill(0, generator.encode(PROMPTS[0]))
        model.prefill(1, generator.encode(PROMPTS[1]))
        model.decode([0, 1], [5, 9])
        devices = [o.device_name() for o in model._decode_bind.get_outputs()]  # type: ignore[attr-defined]
        assert devices.count("cpu") == 1  # the logits rows; every present tensor on the GPU
        assert devices.count("cuda") == len(devices) - 1
        tensors = model.copy_out(0)  # cudaMemcpy to the host and back
        assert tensors is not None and model.copy_in(1, tensors, model.lengths[0])
        model.close()
        with Engine(generator, slots=3) as engine:
            assert engine.batched
            requests = [engine.submit(p, max_new_tokens=12) for p in PROMPTS]
            got = [r.wait(timeout=120).token_ids for r in requests]
    assert got == want
