"""The runtime against the exporter's PyTorch reference model (fp32 demo bundle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_sdk.runtime import Generator

torch = pytest.importorskip("torch")

PROMPT = "Once upon a time, there was a little"


@pytest.fixture(scope="module")
def reference(demo_checkpoint: Path):  # type: ignore[no-untyped-def]
    from edge_sdk.exporters import load_checkpoint

    return load_checkpoint(demo_checkpoint).model.eval()


def _reference_greedy(model, prompt: list[int], steps: int) -> list[int]:  # type: ignore[no-untyped-def]
    out: list[int] = []
    with torch.no_grad():
        logits, past = model(torch.tensor([prompt]))
        for _ in range(steps):
            token = int(torch.argmax(logits[0, -1]))
            out.append(token)
            logits, past = model(torch.tensor([[token]]), past_key_values=past)
    return out


def test_greedy_tokens_equal_reference_for_64_tokens(gen_fp32: Generator, reference) -> None:  # type: ignore[no-untyped-def]
    prompt = gen_fp32.encode(PROMPT)
    result = gen_fp32.generate(prompt, max_new_tokens=80, ignore_eos=True)
    expected = _reference_greedy(reference, prompt, 80)
    assert len(result.token_ids) == 80
    assert result.token_ids == expected


def test_decode_logits_with_and_without_past_match_reference(
    gen_fp32: Generator, reference
) -> None:  # type: ignore[no-untyped-def]
    prompt = gen_fp32.encode(PROMPT)
    backend = gen_fp32.backend
    backend.allocate(gen_fp32.max_context)
    with torch.no_grad():
        ref_logits, ref_past = reference(torch.tensor([prompt]))
    logits = backend.forward(np.asarray(prompt))  # no past: the first step
    np.testing.assert_allclose(logits, ref_logits[0, -1].numpy(), atol=1e-4, rtol=0)
    sequence = list(prompt)
    for _ in range(6):  # batch-1 decode steps on top of a past
        token = int(np.argmax(logits))
        sequence.append(token)
        with torch.no_grad():
            ref_logits, ref_past = reference(torch.tensor([[token]]), past_key_values=ref_past)
            full, _ = reference(torch.tensor([sequence]))  # the same position, without a past
        logits = backend.forward(np.asarray([token]))
        np.testing.assert_allclose(logits, ref_logits[0, -1].numpy(), atol=1e-4, rtol=0)
        np.testing.assert_allclose(logits, full[0, -1].numpy(), atol=1e-4, rtol=0)
    assert backend.cache_length == len(sequence)
