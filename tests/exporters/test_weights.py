"""Weight sources read real files made here: safetensors (f32, f16, bf16; truncated, corrupt),
GGUF (against the model that was written; truncated), state dicts; and the checks before export."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_sdk import ConfigError, ExportError, UnsupportedModelError
from edge_sdk.exporters import load_checkpoint, load_model
from edge_sdk.exporters.model import LiteForCausalLM
from edge_sdk.exporters.sources import ModelSource, check_free_space, check_weights, open_model
from edge_sdk.exporters.weights import SafetensorsWeights, StateDictWeights, WeightSource

safetensors_torch = pytest.importorskip("safetensors.torch")
safetensors_numpy = pytest.importorskip("safetensors.numpy")


@pytest.fixture(scope="module")
def tokenizer_json(demo_checkpoint: Path) -> str:
    from edge_sdk.checkpoint import read_checkpoint_metadata

    return str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])


def _tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator)

    return {  # each over 100 bytes: cutting 100 from the file cuts into the last tensor alone
        "a.f32": normal(6, 10),
        "b.f16": normal(8, 16).half(),
        "c.bf16": (normal(64, 2) * 1e3).bfloat16(),
        "d.vector": normal(70).bfloat16(),
        "e.empty": torch.zeros(0, 4),
    }


def _last_tensor(path: Path) -> str:
    """The tensor whose bytes end the file (read from the header)."""
    (length,) = struct.unpack("<Q", path.read_bytes()[:8])
    header = json.loads(path.read_bytes()[8 : 8 + length])
    header.pop("__metadata__", None)
    return max(header, key=lambda name: header[name]["data_offsets"][1])


def _cut(path: Path, count: int = 100) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:-count])
    return path


# -- safetensors --------------------------------------------------------------------------------


def test_safetensors_values_equal_the_library(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    safetensors_torch.save_file(_tensors(), str(path))
    expected = safetensors_torch.load_file(str(path))
    weights: WeightSource = SafetensorsWeights([path])
    assert weights.names() == frozenset(expected)
    for name, tensor in expected.items():
        values = weights.get(name)
        assert weights.shape(name) == tuple(tensor.shape) == values.shape, name
        assert values.dtype == np.float32 and values.flags.c_contiguous and values.flags.writeable
        np.testing.assert_array_equal(values, tensor.float().numpy(), err_msg=name)
    first = weights.get("a.f32")
    first[:] = 0  # a fresh array: the next read is unchanged
    np.testing.assert_array_equal(weights.get("a.f32"), expected["a.f32"].numpy())
    weights.close()
    assert first.sum() == 0  # arrays read before close stay valid


def test_numpy_files_and_shards(tmp_path: Path) -> None:
    first = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    second = {"y": np.linspace(-1, 1, 8).astype(np.float16), "z": np.ones(2, np.float64)}
    safetensors_numpy.save_file(first, str(tmp_path / "model-00001.safetensors"))
    safetensors_numpy.save_file(second, str(tmp_path / "model-00002.safetensors"))
    weights = SafetensorsWeights(sorted(tmp_path.glob("*.safetensors")))
    assert weights.names() == {"x", "y", "z"}
    for name, array in {**first, **second}.items():
        np.testing.assert_array_equal(weights.get(name), array.astype(np.float32))
    weights.close()
    safetensors_numpy.save_file(first, str(tmp_path / "copy.safetensors"))
    with pytest.raises(UnsupportedModelError, match="tensor x is stored twice"):
        SafetensorsWeights(sorted(tmp_path.glob("*.safetensors")))


def test_tied_head_is_not_listed(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    head = {"lm_head.weight": torch.ones(2, 2), "model.embed_tokens.weight": torch.ones(2, 2)}
    safetensors_torch.save_file(head, str(path))
    assert "lm_head.weight" in SafetensorsWeights([path]).names()
    tied = SafetensorsWeights([path], tie_word_embeddings=True)
    assert tied.names() == {"model.embed_tokens.weight"}
    state = StateDictWeights(head, tie_word_embeddings=True)
    assert state.names() == {"model.embed_tokens.weight"}


def test_truncated_safetensors_names_the_last_tensor(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    safetensors_torch.save_file(_tensors(), str(path))
    last = _last_tensor(path)
    size = path.stat().st_size
    _cut(path)
    message = (
        f"tensor {last} runs past the end of {path} (needs {size} bytes, the file has "
        f"{size - 100}): the download is incomplete; download it again"
    )
    with pytest.raises(UnsupportedModelError, match=re.escape(message)):
        SafetensorsWeights([path])


@pytest.mark.parametrize(
    "content, message",
    [
        (struct.pack("<Q", 5) + b"{oops", "its header is not JSON"),
        (struct.pack("<Q", 1000) + b"{}", "the safetensors header says it is 1000 bytes"),
        (b"abc", "too short to be a safetensors file"),
        (struct.pack("<Q", 2) + b"[]", "header is not a JSON object"),
    ],
)
def test_corrupt_safetensors_is_one_clear_error(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(UnsupportedModelError, match=re.escape(message)) as error:
        SafetensorsWeights([path])
    assert str(path) in str(error.value) and "\n" not in str(error.value)


# -- open_model -----------------------------------------------------------------------------------


def test_hf_folder_opens_lazily_and_equals_load_model(tmp_path: Path, tokenizer_json: str) -> None:
    from tests.exporters.hf_models import make_hf_folder

    make_hf_folder("qwen2", tmp_path, tokenizer_json, vocab_size=2048)
    loaded = load_model(tmp_path)
    source = open_model(tmp_path / "config.json")
    assert source.config == loaded.config and source.tokenizer_json == loaded.tokenizer_json
    assert (source.source, source.name) == (str(tmp_path), tmp_path.name)
    state = loaded.model.state_dict()
    assert source.weights.names() == set(state) - {"lm_head.weight"}  # qwen2 ties its head
    for name in source.weights.names():
        np.testing.assert_array_equal(source.weights.get(name), state[name].numpy(), name)
    source.close()


def test_truncated_hf_folder_names_the_tensor_and_file(tmp_path: Path, tokenizer_json: str) -> None:
    from tests.exporters.hf_models import make_hf_folder

    make_hf_folder("llama", tmp_path, tokenizer_json, vocab_size=2048)
    path = tmp_path / "model.safetensors"
    last = _last_tensor(path)
    _cut(path)
    with pytest.raises(UnsupportedModelError) as error:
        open_model(tmp_path)
    text = str(error.value)
    assert f"tensor {last} runs past the end of {path}" in text and "\n" not in text
    with pytest.raises(UnsupportedModelError, match=re.escape(f"tensor {last}")):
        load_model(tmp_path)


def test_gguf_weights_equal_the_model_written(tmp_path: Path, tokenizer_json: str) -> None:
    pytest.importorskip("gguf")
    from tests.exporters.gguf_files import tiny_hf_model, write_gguf

    original = tiny_hf_model("llama", rope_scaling=True)  # q/k permuted, rope_freqs stored
    path = write_gguf(tmp_path / "tiny.gguf", original, "llama", tokenizer_json)
    source = open_model(path)
    state = original.state_dict()
    assert source.weights.names() == set(state)  # no rope_freqs.weight: it feeds the config
    assert source.config.rope_scaling is not None and source.config.rope_scaling.kind == "llama3"
    for name in sorted(state):
        values = source.weights.get(name)
        assert source.weights.shape(name) == values.shape and values.dtype == np.float32
        np.testing.assert_array_equal(values, state[name].numpy(), name)
    loaded = load_model(path).model.state_dict()  # the full load reads the same values
    for name in source.weights.names():
        np.testing.assert_array_equal(source.weights.get(name), loaded[name].numpy(), name)
    source.close()


def test_quantized_gguf_equals_full_load(tmp_path: Path, tokenizer_json: str) -> None:
    pytest.importorskip("gguf")
    from tests.exporters.gguf_files import tiny_hf_model, write_gguf

    original = tiny_hf_model("qwen2")
    path = write_gguf(tmp_path / "tiny.gguf", original, "qwen2", tokenizer_json, "mixed")
    source = open_model(path)
    loaded = load_model(path)
    assert source.config == loaded.config and source.chat_template == loaded.chat_template
    state = loaded.model.state_dict()
    assert source.weights.names() == set(state) - {"lm_head.weight"}
    for name in source.weights.names():
        np.testing.assert_array_equal(source.weights.get(name), state[name].numpy(), name)


def test_truncated_gguf_names_the_tensor(tmp_path: Path, tokenizer_json: str) -> None:
    gguf = pytest.importorskip("gguf")
    from tests.exporters.gguf_files import tiny_hf_model, write_gguf

    path = write_gguf(tmp_path / "tiny.gguf", tiny_hf_model("llama"), "llama", tokenizer_json)
    last = max(gguf.GGUFReader(str(path)).tensors, key=lambda t: t.data_offset).name
    size = path.stat().st_size
    _cut(path)
    with pytest.raises(UnsupportedModelError) as error:
        open_model(path)
    text = str(error.value)
    assert text.startswith(f"tensor {last} runs past the end of {path} (needs ")
    assert f"the file has {size - 100}): the file is truncated" in text and "\n" not in text


def test_checkpoint_opens_memory_mapped(demo_checkpoint: Path) -> None:
    source = open_model(demo_checkpoint)
    loaded = load_checkpoint(demo_checkpoint)
    assert source.config == loaded.config and source.name == loaded.name
    state = loaded.model.state_dict()
    tied = {"lm_head.weight"} if source.config.tie_word_embeddings else set()
    assert source.weights.names() == set(state) - tied
    for name in source.weights.names():
        np.testing.assert_array_equal(source.weights.get(name), state[name].numpy(), name)


def test_from_loaded_reads_copies(demo_checkpoint: Path) -> None:
    loaded = load_checkpoint(demo_checkpoint)
    source = ModelSource.from_loaded(loaded)
    name = "model.embed_tokens.weight"
    values = source.weights.get(name)
    values[:] = 0
    assert float(loaded.model.state_dict()[name].abs().sum()) > 0
    assert ("lm_head.weight" in source.weights.names()) != loaded.config.tie_word_embeddings
    half = StateDictWeights({"w": torch.ones(2, 3).bfloat16().t()})
    assert half.get("w").dtype == np.float32 and half.get("w").flags.c_contiguous


def test_open_model_refuses_what_load_model_refuses(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist\. Give"):
        open_model(tmp_path / "missing.pt")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedModelError, match="not a model this SDK reads"):
        open_model(tmp_path / "notes.txt")
    with pytest.raises(ConfigError, match="applies to a Hugging Face hub id"):
        open_model(tmp_path, revision="main")


# -- checks before an export ----------------------------------------------------------------------


@pytest.fixture
def expected(demo_checkpoint: Path) -> tuple[ModelSource, dict[str, tuple[int, ...]]]:
    source = open_model(demo_checkpoint)
    model = LiteForCausalLM(source.config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if source.config.tie_word_embeddings:
        shapes.pop("lm_head.weight")
    return source, shapes


def _replaced(source: ModelSource, changes: dict[str, torch.Tensor | None]) -> StateDictWeights:
    """The source's weights with ``changes`` (a tensor to put, ``None`` to remove)."""
    state = {name: torch.from_numpy(source.weights.get(name)) for name in source.weights.names()}
    for name, value in changes.items():
        if value is None:
            del state[name]
        else:
            state[name] = value
    return StateDictWeights(state)


def test_check_weights(expected: tuple[ModelSource, dict[str, tuple[int, ...]]]) -> None:
    source, shapes = expected
    config = source.config
    check_weights(config, source.weights, shapes, "demo")
    inv_freq = "model.layers.0.self_attn.rotary_emb.inv_freq"
    check_weights(config, _replaced(source, {inv_freq: torch.ones(4)}), shapes, "demo")
    norm = "model.layers.1.post_attention_layernorm.weight"
    with pytest.raises(ExportError, match=re.escape(f"{norm}: missing in FOLDER")):
        check_weights(config, _replaced(source, {norm: None}), shapes, "FOLDER")
    extra = _replaced(source, {"model.extra.weight": torch.ones(1)})
    with pytest.raises(ExportError, match=re.escape("model.extra.weight: unexpected in FOLDER")):
        check_weights(config, extra, shapes, "FOLDER")
    q = "model.layers.0.self_attn.q_proj.weight"
    need = ", ".join(str(n) for n in shapes[q])
    with pytest.raises(ExportError) as error:
        check_weights(config, _replaced(source, {q: torch.ones(3, 5)}), shapes, "F")
    assert str(error.value) == f"{q} in F has shape (3, 5), the config needs ({need})"


def test_check_free_space(tmp_path: Path) -> None:
    folder = tmp_path / "not" / "yet" / "made"
    check_free_space(folder, 1, "the bundle")
    with pytest.raises(ExportError) as error:
        check_free_space(folder, 10**18, "the bundle")
    text = str(error.value)
    assert text.startswith(f"not enough free space in {folder} for the bundle: needs about 1")
    assert f"({10**18} bytes)" in text and " free; " in text and "\n" not in text
