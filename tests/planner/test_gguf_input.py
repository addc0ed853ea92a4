"""``edge-plan`` and ``edge-deploy`` read a GGUF file's header (no torch, no ``gguf`` package):
the config is the one the exporter reads from the same file, for every GGUF family; a file that
is not GGUF is one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_sdk.deploy.cli import main as deploy_main
from edge_sdk.errors import UnsupportedModelError
from edge_sdk.gguf_header import read_gguf_header
from edge_sdk.planner import resolve_model
from edge_sdk.planner.cli import main as plan_main

pytest.importorskip("gguf")  # to write the files and read them as the exporter does
pytest.importorskip("transformers")

from tests.exporters.gguf_files import tiny_hf_model, write_gguf


@pytest.fixture(scope="module")
def tokenizer_json(demo_checkpoint: Path) -> str:
    from edge_sdk.checkpoint import read_checkpoint_metadata

    return str(read_checkpoint_metadata(demo_checkpoint)["tokenizer"])


@pytest.fixture(scope="module")
def llama_gguf(tmp_path_factory: pytest.TempPathFactory, tokenizer_json: str) -> Path:
    folder = tmp_path_factory.mktemp("gguf")
    return write_gguf(folder / "tiny-llama.gguf", tiny_hf_model("llama"), "llama", tokenizer_json)


@pytest.mark.parametrize(
    ("family", "rope_scaling"),
    [("llama", True), ("llama", False), ("qwen2", False), ("qwen3", False), ("gemma3", False)],
)
def test_the_planner_reads_the_config_the_exporter_reads(
    family: str, rope_scaling: bool, tmp_path: Path, tokenizer_json: str
) -> None:
    from edge_sdk.exporters.gguf.model import open_gguf

    model = tiny_hf_model(family, rope_scaling=rope_scaling)
    path = write_gguf(tmp_path / f"{family}.gguf", model, family, tokenizer_json, "mixed")
    source = resolve_model(str(path))
    assert source.kind == "gguf" and source.name == family
    opened = open_gguf(path)
    try:
        assert source.config == opened.config
    finally:
        opened.close()
    if rope_scaling:
        assert source.config.rope_scaling is not None


def test_edge_plan_reads_a_gguf_without_torch_or_gguf(llama_gguf: Path) -> None:
    script = (
        "import sys; from edge_sdk.planner.cli import main; code = main(sys.argv[1:]); "
        "assert 'torch' not in sys.modules and 'gguf' not in sys.modules, 'imported'; "
        "sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(llama_gguf), "--device", "orin-nano-8gb", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"tiny-llama"' in done.stdout and "cannot read" not in done.stderr


def test_edge_deploy_sizes_a_gguf(llama_gguf: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    code = deploy_main(
        ["k8s", str(llama_gguf), "--device", "orin-nano-8gb", "-o", str(tmp_path / "k8s")]
    )
    assert code == 0, capsys.readouterr().err
    assert "tiny-llama on orin-nano-8gb: memory request" in capsys.readouterr().err


def test_a_file_that_is_not_gguf_is_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    fake = tmp_path / "model.gguf"
    fake.write_text('{"not": "gguf"}')
    assert plan_main([str(fake), "--device", "orin-nano-8gb"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot be read as a GGUF file" in err[0], err
    fake.write_bytes(b"GGUF" + (3).to_bytes(4, "little") + (1).to_bytes(8, "little"))
    with pytest.raises(UnsupportedModelError, match="truncated or corrupt"):
        read_gguf_header(fake)
