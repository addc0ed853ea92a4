"""QuantConfig validation and the CLI flags that map onto it."""

from __future__ import annotations

import pytest

from edge_sdk.errors import ConfigError
from edge_sdk.exporters import QuantConfig
from edge_sdk.exporters.cli import build_parser, main, quant_config
from edge_sdk.exporters.quantize.config import INT4_DEFAULT


def test_the_guide_example_works() -> None:
    config = QuantConfig(method="GPTQ", bits=4, group_size=128, act_scale=True)
    assert config.method == "gptq" and config.precision == "int4" and config.bits == 4
    assert config.label == "int4-gptq-g128+act_scale" and config.quantize_embedding is True
    assert config.lm_head_bits == 8  # an int8 LM head: as accurate as a float one (SmolLM2)
    assert QuantConfig().precision == "int8" and QuantConfig().quantize_embedding is True


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="awq"), "method must be one of"),
        (dict(method="gptq", bits=8), "4-bit"),
        (dict(method="int8", bits=4), "rtn"),
        (dict(method="rtn", group_size=100), "power of two"),
        (dict(method="rtn", group_size=8), "power of two"),
        (dict(method="fp16", group_size=64), "group_size applies to"),
        (dict(method="int8", group_size=48), "power of two >= 16 .* or 0"),
        (dict(method="rtn", group_size=0), "power of two"),
        (dict(method="fp32", smoothquant_alpha=0.3), "smoothquant_alpha applies to"),
        (dict(method="int8", act_scale=True), "act_scale applies to"),
        (dict(method="rtn", gptq_act_order=True), "gptq_act_order applies to"),
        (dict(method="rtn", calib_method="entropy"), "calib_method applies to"),
        (dict(method="w8a8", calib_method="kl"), "calib_method must be"),
        (dict(method="w8a8", smoothquant_alpha=1.5), "smoothquant_alpha must be"),
        (dict(method="fp32", quantize_embedding=True), "quantize_embedding applies"),
        (dict(method="w8a8", exclude="lm_head"), "tuple"),
        (dict(method="int8", embedding_bits=4), "embedding_bits applies to"),
        (dict(method="rtn", embedding_bits=2), "embedding_bits must be 4 or 8"),
        (dict(method="rtn", embedding_bits=4, embedding_group_size=24), "power of two"),
        (dict(method="rtn", embedding_bits=4, quantize_embedding=False), "needs quantize_emb"),
    ],
)
def test_invalid_configs_raise(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        QuantConfig(**kwargs)  # type: ignore[arg-type]


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        QuantConfig().method = "fp32"  # type: ignore[misc]


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--int8"], QuantConfig()),
        (["--int8"], QuantConfig(method="int8", group_size=64, smoothquant_alpha=0.5)),
        (
            ["--int8", "--group-size", "0", "--no-smoothquant"],
            QuantConfig(method="int8", group_size=0, smoothquant_alpha=None),
        ),
        (["--int8", "--trt"], QuantConfig()),  # model.onnx is TensorRT's form anyway
        (["--int8", "--trt", "--group-size", "32"], QuantConfig(group_size=32)),
        (
            ["--int8", "--group-size", "32", "--smoothquant-alpha", "0.7"],
            QuantConfig(method="int8", group_size=32, smoothquant_alpha=0.7),
        ),
        (["--int4"], QuantConfig.from_precision("int4")),
        (["--int4"], QuantConfig(**INT4_DEFAULT)),
        (
            ["--int4", "--group-size", "32", "--int8-layers", "none"],
            QuantConfig(**{**INT4_DEFAULT, "group_size": 32, "int8_layers": ()}),
        ),
        (["--int4", "--method", "rtn"], QuantConfig(method="rtn")),
        (
            ["--int4", "--embedding-bits", "4", "--embedding-group-size", "64"],
            QuantConfig(**{**INT4_DEFAULT, "embedding_bits": 4, "embedding_group_size": 64}),
        ),
        (
            ["--int4", "--method", "rtn", "--int8-layers", "0,1,-1", "--int8-matmuls", "down_proj"],
            QuantConfig(method="rtn", int8_layers=(0, 1, -1), int8_matmuls=("down_proj",)),
        ),
        (
            ["--int4", "--method", "gptq", "--group-size", "64", "--act-scale"],
            QuantConfig(method="GPTQ", bits=4, group_size=64, act_scale=True),
        ),
        (
            ["--int4", "--method", "gptq", "--act-order"],
            QuantConfig(method="gptq", bits=4, gptq_act_order=True),
        ),
        (
            [
                "--w8a8",
                "--calib-method",
                "entropy",
                "--smoothquant-alpha",
                "0.7",
                "--exclude",
                "lm_head",
            ],
            QuantConfig(
                method="w8a8", calib_method="entropy", smoothquant_alpha=0.7, exclude=("lm_head",)
            ),
        ),
        (["--w8a8", "--no-smoothquant"], QuantConfig(method="w8a8", smoothquant_alpha=None)),
        (["--fp16"], QuantConfig(method="fp16")),
        (
            ["--int4", "--quantize-embedding"],
            QuantConfig(**INT4_DEFAULT, quantize_embedding=True),
        ),
        (["--int8", "--no-quantize-embedding"], QuantConfig(quantize_embedding=False)),
    ],
)
def test_flags_map_onto_the_config(argv: list[str], expected: QuantConfig) -> None:
    assert quant_config(build_parser().parse_args(["model.pt", *argv])) == expected


@pytest.mark.parametrize(
    "argv",
    [
        ["--fp16", "--group-size", "64"],
        ["--int4", "--calib-method", "entropy"],
        ["--fp16", "--act-scale"],
        ["--int4", "--method", "rtn", "--act-order"],  # round to nearest has no column order
        ["--int4", "--int8-layers", "first"],
        ["--int4", "--int8-matmuls", "v_proj"],  # q/k/v share one fused MatMul
        ["--int8", "--int8-layers", "0"],
        ["--int8", "--act-order"],
        ["--int8", "--exclude", "lm_head"],
        ["--int4", "--group-size", "100"],
        ["--fp32", "--quantize-embedding"],
        ["--int8", "--int4"],
        ["--w8a8", "--no-smoothquant", "--smoothquant-alpha", "0.5"],
    ],
)
def test_invalid_flag_combinations_exit_2(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["model.pt", *argv])
    assert exc.value.code == 2
    assert "edge-export: error:" in capsys.readouterr().err
