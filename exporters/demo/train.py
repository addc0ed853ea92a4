"""Train the demo model: ``python -m edge_sdk.exporters.demo.train [--steps N] [-o model.pt]``.

Generates the story corpus (:mod:`.corpus`), trains a byte-level BPE tokenizer on it, trains a
small Llama-family model on CPU, and writes it as an edge-sdk ``model.pt`` (weights stored in
float16 to keep the file small) plus the held-out and calibration texts the exporter uses.
Deterministic for a given seed and thread count.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from edge_sdk.config import ModelConfig
from edge_sdk.exporters.checkpoint import save_checkpoint
from edge_sdk.exporters.demo.corpus import END_OF_TEXT, generate_stories
from edge_sdk.exporters.model import LiteForCausalLM

DEMO_DIR = Path(__file__).resolve().parent
DATA_DIR = DEMO_DIR.parent / "data"
VOCAB_SIZE = 2048
TRAIN_SEED, HELDOUT_SEED, CALIBRATION_SEED = 1, 2, 3


# name -> (hidden, layers, heads, kv heads, intermediate): "demo" is the packaged model (~2 M
# parameters); "small" (13.8 M) is what benchmarks/bench_quant.py trains as its larger model;
# "medium" (26.7 M, "small" twice as deep) is the target the demo drafts for in
# benchmarks/bench_speculative.py (benchmarks/speculative_pair.py).
SIZES = {
    "demo": (192, 4, 6, 2, 512),
    "small": (384, 6, 6, 2, 1536),
    "medium": (384, 12, 6, 2, 1536),
}


def demo_config(eos_id: int, size: str = "demo", family: str = "llama") -> ModelConfig:
    """The model's shape: tied embeddings, GQA (see :data:`SIZES`); ``family`` "llama" (the
    demo) or any family :class:`LiteForCausalLM` computes whole (e.g. "qwen3": q/k norms)."""
    hidden, layers, heads, kv_heads, intermediate = SIZES[size]
    return ModelConfig(
        architecture=family,
        vocab_size=VOCAB_SIZE,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        intermediate_size=intermediate,
        rope_theta=10000.0,
        rms_norm_eps=1e-5,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        eos_token_ids=(eos_id,),
    )


def train_tokenizer(texts: list[str]) -> str:
    """A byte-level BPE tokenizer (JSON text) with ``<|endoftext|>`` as id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[END_OF_TEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return str(tok.to_str())


def encode_corpus(tokenizer_json: str, texts: list[str]) -> np.ndarray:
    """All stories as one id stream, each followed by ``<|endoftext|>``."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json)
    eos = tok.token_to_id(END_OF_TEXT)
    assert eos is not None, "the tokenizer lacks <|endoftext|>"
    ids: list[int] = []
    for encoding in tok.encode_batch(texts):
        ids.extend(encoding.ids)
        ids.append(eos)
    return np.asarray(ids, dtype=np.int64)


def train(steps: int, batch: int, seq_len: int, seed: int, out: Path, size: str = "demo") -> None:
    """Run the whole recipe and write ``out`` plus the evaluation texts."""
    torch.manual_seed(seed)
    started = time.perf_counter()
    stories = generate_stories(12000, TRAIN_SEED)
    tokenizer_json = train_tokenizer(stories)
    data = torch.from_numpy(encode_corpus(tokenizer_json, stories))
    eos_id = int(data[-1])
    config = demo_config(eos_id, size)
    print(f"corpus {len(data):,} tokens, model {config.parameter_count():,} parameters", flush=True)
    model = train_model(config, data, steps, batch, seq_len, seed, started)
    save_checkpoint(
        model,
        tokenizer_json,
        out,
        dtype=torch.float16,
        metadata={
            "name": "edge-sdk-demo" if size == "demo" else f"edge-sdk-{size}",
            "trained_steps": steps,
            "corpus": "edge_sdk.exporters.demo.corpus (generated stories)",
        },
    )
    if size == "demo":
        write_texts()
    print(
        f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - started:.0f} s"
    )


def train_model(
    config: ModelConfig,
    data: torch.Tensor,
    steps: int,
    batch: int,
    seq_len: int,
    seed: int,
    started: float | None = None,
) -> LiteForCausalLM:
    """A model of ``config`` trained on the token ids ``data`` (see :func:`fit`), in eval mode;
    progress every 50 steps when ``started`` (a perf_counter time) is given."""
    torch.manual_seed(seed)
    model = LiteForCausalLM(config)
    _init_weights(model)
    fit(model, lambda ids: model(ids)[0], data, steps, batch, seq_len, seed, started)
    return model.eval()


def fit(
    model: torch.nn.Module,
    logits_of: Callable[[torch.Tensor], torch.Tensor],
    data: torch.Tensor,
    steps: int,
    batch: int,
    seq_len: int,
    seed: int,
    started: float | None = None,
) -> None:
    """Train ``model`` (``logits_of(ids [B, S])`` -> [B, S, V]) on random windows of ``data``:
    AdamW, warm-up then cosine; any causal LM, e.g. a transformers one."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        lr = (
            3e-3
            * min(1.0, (step + 1) / 50)
            * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        )
        for group in optimizer.param_groups:
            group["lr"] = lr
        starts = torch.randint(0, len(data) - seq_len - 1, (batch,), generator=generator)
        window = torch.stack([data[s : s + seq_len + 1] for s in starts.tolist()])
        logits = logits_of(window[:, :-1])
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # untyped in torch
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if started is not None and (step % 50 == 0 or step == steps - 1):
            print(
                f"step {step:5d}  loss {loss.item():.3f}  lr {lr:.2e}  "
                f"{time.perf_counter() - started:.0f} s",
                flush=True,
            )
    model.eval()


def write_texts() -> None:
    """Held-out and calibration texts: stories from seeds the training never saw."""
    DATA_DIR.mkdir(exist_ok=True)
    (DATA_DIR / "heldout.txt").write_text("\n\n".join(generate_stories(60, HELDOUT_SEED)) + "\n")
    (DATA_DIR / "calibration.txt").write_text(
        "\n\n".join(generate_stories(60, CALIBRATION_SEED)) + "\n"
    )


def _init_weights(model: LiteForCausalLM) -> None:
    for name, param in model.named_parameters():
        if param.dim() == 2:
            std = (
                0.02 / math.sqrt(2 * model.config.num_layers)
                if name.endswith(("o_proj.weight", "down_proj.weight"))
                else 0.02
            )
            torch.nn.init.normal_(param, std=std)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=1500, help="optimizer steps (default 1500)")
    parser.add_argument("--batch", type=int, default=32, help="sequences per step (default 32)")
    parser.add_argument(
        "--seq-len", type=int, default=128, help="tokens per sequence (default 128)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=DEMO_DIR / "model.pt",
        help="where to write the checkpoint (default: the packaged demo model)",
    )
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="demo",
        help="model shape: demo (~2 M parameters, default), small (13.8 M) or medium (26.7 M)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    train(args.steps, args.batch, args.seq_len, args.seed, args.output, args.size)


if __name__ == "__main__":
    main()
