"""The model.pt format: round trip, safe loading, metadata without torch."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from edge_sdk import UnsupportedModelError
from edge_sdk.checkpoint import read_checkpoint_config, read_checkpoint_metadata
from edge_sdk.exporters import load_checkpoint, load_model, save_checkpoint


def test_round_trip_keeps_weights_and_tokenizer(demo_checkpoint: Path, tmp_path: Path) -> None:
    loaded = load_checkpoint(demo_checkpoint)
    path = save_checkpoint(loaded.model, loaded.tokenizer_json, tmp_path / "copy.pt")
    again = load_checkpoint(path)
    assert again.config == loaded.config and again.tokenizer_json == loaded.tokenizer_json
    for (name, a), (_, b) in zip(
        loaded.model.state_dict().items(), again.model.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_metadata_is_read_without_building_tensors(demo_checkpoint: Path) -> None:
    meta = read_checkpoint_metadata(demo_checkpoint)
    assert meta["metadata"]["name"] == "edge-sdk-demo"
    assert read_checkpoint_config(demo_checkpoint).vocab_size == 2048


class Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this must never run",))


def test_a_pickled_module_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), path)
    with pytest.raises(UnsupportedModelError, match="never unpickled"):
        load_model(path)
    evil = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, evil)
    with pytest.raises(UnsupportedModelError):
        load_model(evil)
    with pytest.raises(UnsupportedModelError):
        read_checkpoint_metadata(evil)
    assert "never run" not in capsys.readouterr().out


def test_other_files_are_refused(tmp_path: Path) -> None:
    state_dict_only = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, state_dict_only)
    with pytest.raises(UnsupportedModelError, match="not an edge-sdk checkpoint"):
        load_model(state_dict_only)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(UnsupportedModelError, match="Accepted"):
        load_model(junk)
    text = tmp_path / "model.txt"
    text.write_text("hello")
    with pytest.raises(UnsupportedModelError, match="not a model"):
        load_model(text)
