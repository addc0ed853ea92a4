"""A checkpoint with NaN or infinite weights is refused naming the tensor and saying the input
is broken, in both export flows, instead of a parity failure blamed on the exporter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edge_sdk.errors import ExportError
from edge_sdk.exporters import export, load_checkpoint, save_checkpoint
from edge_sdk.exporters.weights.finite import check_finite

TENSOR = "model.layers.1.mlp.down_proj.weight"


@pytest.fixture(scope="module")
def broken_checkpoint(demo_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    loaded = load_checkpoint(demo_checkpoint)
    with torch.no_grad():
        weight = loaded.model.state_dict()[TENSOR]
        weight[3, 5] = float("nan")
        weight[0, :2] = float("inf")
    return save_checkpoint(
        loaded.model, loaded.tokenizer_json, tmp_path_factory.mktemp("broken") / "model.pt"
    )


@pytest.mark.parametrize("precision", ["fp32", "fp16"])  # the streamed and the traced flow
def test_nan_and_infinite_weights_name_the_tensor_and_blame_the_input(
    broken_checkpoint: Path, tmp_path: Path, precision: str
) -> None:
    with pytest.raises(ExportError) as error:
        export(broken_checkpoint, tmp_path / "out", precision)  # type: ignore[arg-type]
    text = str(error.value)
    assert text.startswith(f"{TENSOR} in {broken_checkpoint} holds 1 NaN, 2 infinite values")
    assert "the input checkpoint is broken" in text and "bug in the exporter" not in text
    assert not (tmp_path / "out").exists()


def test_check_finite_passes_finite_values_without_a_copy() -> None:
    values = np.full((3, 4), 3.0e38, np.float32)  # large, finite: no false alarm
    check_finite("w", values, "here")
    values[1, 1] = -np.inf
    with pytest.raises(ExportError, match=r"^w in here holds 1 infinite value \(of 12\)"):
        check_finite("w", values, "here")
