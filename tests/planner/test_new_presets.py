"""The Qwen3, Qwen3.5 and Gemma 3 presets: their shapes, parameter counts and fits."""

from __future__ import annotations

import pytest

from edge_sdk.config import ModelConfig
from edge_sdk.planner import DEVICES, PRESETS, get_preset, plan, weight_bytes, weight_format

NEW = [name for name in PRESETS if name.startswith(("qwen3-", "qwen3.5-", "gemma-3-"))]
ORINS = [name for name in DEVICES if "orin" in name]


def test_the_nine_new_presets_and_their_layer_patterns() -> None:
    assert NEW == [
        "qwen3-0.6b",
        "qwen3-1.7b",
        "qwen3-4b",
        "qwen3.5-0.8b",
        "qwen3.5-2b",
        "qwen3.5-4b",
        "gemma-3-270m",
        "gemma-3-1b",
        "gemma-3-4b",
    ]
    q35 = get_preset("qwen3.5-0.8b")  # three Gated DeltaNet layers, then one gated attention
    assert q35.layer_types[:4] == ("linear_attention",) * 3 + ("full_attention",)
    assert q35.attention_layers == (3, 7, 11, 15, 19, 23)
    assert q35.rotary_dim == 64 and q35.linear_attention is not None
    assert q35.linear_attention.state_values() == 3 * 6144 + 16 * 128 * 128
    assert get_preset("qwen3.5-4b").linear_attention.num_value_heads == 32  # type: ignore[union-attr]
    gemma = get_preset("gemma-3-1b")  # five sliding layers (window 512), then a global one
    assert [i for i in range(26) if gemma.layer_window(i) is None] == [5, 11, 17, 23]
    assert gemma.local_rope(0) and not gemma.local_rope(5) and gemma.attention_scale == 1 / 16
    big = get_preset("gemma-3-4b")
    assert big.sliding_window == 1024 and big.rope_scaling is not None
    assert (big.rope_scaling.kind, big.rope_scaling.factor) == ("linear", 8.0)
    assert {get_preset(n).architecture for n in NEW} == {"qwen3", "qwen3_5", "gemma3"}


# Parameter counts, every embedding tied (counted once). Each equals, to the parameter, the count
# of transformers' own model built from the same hyper-parameters (test below). Against the
# published sizes: Qwen3 model cards give 0.6B / 1.7B / 4.0B total and 0.44B / 1.4B / 3.6B
# without embeddings: exact to the digits given. Qwen3.5 and Gemma 3 4B checkpoints are
# vision-language models whose names count the vision tower (and Qwen3.5's multi-token-prediction
# layer) too: the text decoders planned here are 0.75B for "0.8B", 1.88B for "2B", 4.21B for
# "4B" (Qwen3.5) and 3.88B for Gemma 3 "4B". Gemma 3 270M and 1B are text-only: 268M, 1.00B.
@pytest.mark.parametrize(
    ("name", "total", "without_embeddings"),
    [
        ("qwen3-0.6b", 596_049_920, 440_467_456),
        ("qwen3-1.7b", 1_720_574_976, 1_409_410_048),
        ("qwen3-4b", 4_022_468_096, 3_633_511_936),
        ("qwen3.5-0.8b", 752_393_024, 498_113_344),
        ("qwen3.5-2b", 1_881_825_088, 1_373_265_728),
        ("qwen3.5-4b", 4_205_751_296, 3_570_052_096),
        ("gemma-3-270m", 268_098_176, 100_326_016),
        ("gemma-3-1b", 999_885_952, 697_896_064),
        ("gemma-3-4b", 3_880_263_168, 3_209_010_688),
    ],
)
def test_parameter_counts(name: str, total: int, without_embeddings: int) -> None:
    config = get_preset(name)
    assert config.parameter_count() == total
    assert config.parameter_count(include_embeddings=False) == without_embeddings


@pytest.mark.parametrize("name", NEW)
def test_parameter_count_equals_transformers(name: str) -> None:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    config = get_preset(name)
    cls_name, hf = _hf_text_config(transformers, config)
    with torch.device("meta"):  # shapes only: no memory, no weights
        model = getattr(transformers, cls_name)(hf)
    unique = {id(p): p.numel() for p in model.parameters()}  # the tied head once
    assert sum(unique.values()) == config.parameter_count()


def _hf_text_config(transformers: object, c: ModelConfig) -> tuple[str, object]:
    shape = {
        "vocab_size": c.vocab_size,
        "hidden_size": c.hidden_size,
        "num_hidden_layers": c.num_layers,
        "num_attention_heads": c.num_heads,
        "num_key_value_heads": c.num_kv_heads,
        "head_dim": c.head_dim,
        "intermediate_size": c.intermediate_size,
        "tie_word_embeddings": c.tie_word_embeddings,
    }
    if c.architecture == "qwen3":
        return "Qwen3ForCausalLM", transformers.Qwen3Config(**shape)  # type: ignore[attr-defined]
    if c.architecture == "gemma3":
        hf = transformers.Gemma3TextConfig(  # type: ignore[attr-defined]
            **shape, layer_types=list(c.layer_types), sliding_window=c.sliding_window
        )
        return "Gemma3ForCausalLM", hf
    if not hasattr(transformers, "Qwen3_5TextConfig"):
        pytest.skip("this transformers has no Qwen3.5 (5.x has)")
    la = c.linear_attention
    assert la is not None
    hf = transformers.Qwen3_5TextConfig(  # type: ignore[attr-defined]
        **shape,
        layer_types=list(c.layer_types),
        linear_num_key_heads=la.num_key_heads,
        linear_num_value_heads=la.num_value_heads,
        linear_key_head_dim=la.key_head_dim,
        linear_value_head_dim=la.value_head_dim,
        linear_conv_kernel_dim=la.conv_kernel,
    )
    return "Qwen3_5ForCausalLM", hf


@pytest.mark.parametrize("name", list(PRESETS))
def test_matrices_and_float_parts_add_up_to_every_parameter(name: str) -> None:
    """fp32 stores every parameter once in 4 bytes: the per-layer matrices (each layer type's
    own) plus norms, q/k norms, biases, convs and gates are the whole model."""
    config = get_preset(name)
    assert weight_bytes(config, weight_format("fp32")).stored == 4 * config.parameter_count()


@pytest.mark.parametrize("device", ORINS)
def test_gemma_3_270m_fits_every_orin(device: str) -> None:
    assert plan(get_preset("gemma-3-270m"), device, precision="int4").memory.fits  # context 4096
    # int8 (fp32 activations) at 2048: the logits of every prompt position over a 262k
    # vocabulary are what fills small modules (1024 x 262144 x 4 bytes = 1.07 GB)
    assert plan(get_preset("gemma-3-270m"), device, precision="int8", context=2048).memory.fits


@pytest.mark.parametrize("name", ["qwen3-4b", "qwen3.5-4b", "gemma-3-4b"])
def test_4b_models_need_int4_on_an_8gb_module_and_miss_the_4gb(name: str) -> None:
    config = get_preset(name)
    assert not plan(config, "orin-nano-8gb", precision="int8").memory.fits
    assert plan(config, "orin-nano-8gb", precision="int4").memory.fits
    assert plan(config, "orin-nx-16gb", precision="int8").memory.fits
    assert not plan(config, "orin-nano-4gb", precision="int4").memory.fits


@pytest.mark.parametrize(
    ("name", "context"),
    [("qwen3-0.6b", None), ("qwen3-1.7b", 2048), ("qwen3.5-0.8b", None), ("qwen3.5-2b", None)],
)
def test_small_qwen_int8_fits_an_8gb_module_not_a_4gb(name: str, context: int | None) -> None:
    # Qwen3-1.7B int8 misses the 8 GB module by about 1 MB at 4096 tokens: 2048 fit
    config = get_preset(name)
    fits = plan(
        config, "orin-nano-8gb", precision="int8", **({"context": context} if context else {})
    )
    assert fits.memory.fits
    assert not plan(config, "orin-nano-4gb", precision="int8").memory.fits
