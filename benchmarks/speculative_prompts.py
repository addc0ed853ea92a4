"""The prompts of ``bench_speculative.py``: three copy-heavy tasks and one free generation.

Each :class:`BenchPrompt` has an instruction (sent through the bundle's chat template when it has
one, e.g. SmolLM2-Instruct) and a plain text (sent as it is to a base model: the story pair, a
random model). The copy-heavy answers repeat long spans of their prompt, which is what prompt
lookup drafts from; free generation has little to copy.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROMPTS", "BenchPrompt"]


@dataclass(frozen=True)
class BenchPrompt:
    """One task: ``kind`` names it in the table; ``copy_heavy`` says which group it is in."""

    kind: str
    instruction: str
    plain: str
    copy_heavy: bool


_CODE = '''def moving_average(values, window):
    """The mean of each run of `window` consecutive values."""
    if window <= 0:
        raise ValueError("window must be positive")
    if window > len(values):
        return []
    averages = []
    total = sum(values[:window])
    averages.append(total / window)
    for index in range(window, len(values)):
        total += values[index] - values[index - window]
        averages.append(total / window)
    return averages
'''

_PASSAGE = (
    "The lighthouse on Gull Point was built in 1871 from granite cut on the island itself. "
    "Its first keeper, Ada Marsh, kept a logbook for thirty-two years, recording every ship "
    "that passed and every storm that struck the coast. In the winter of 1888 a storm broke "
    "the lantern glass, and Ada kept the lamp burning behind a wall of wet sailcloth for three "
    "nights until the supply boat arrived. The light was automated in 1962, and the keeper's "
    "house became a small museum. Visitors can still read the logbook, which ends with the "
    "words: the light is lit, the sea is calm, and all the boats are home."
)

_RECORD = """{
  "id": 40213,
  "name": "Clara Jensen",
  "email": "clara.jensen@example.org",
  "address": {"street": "Nørregade 14", "city": "Aarhus", "postcode": "8000", "country": "DK"},
  "plan": "family",
  "orders": [
    {"order": "A-1187", "date": "2024-11-03", "items": 3, "total": 58.40, "status": "delivered"},
    {"order": "A-1509", "date": "2025-03-07", "items": 5, "total": 104.10, "status": "shipped"}
  ]
}"""

PROMPTS: tuple[BenchPrompt, ...] = (
    BenchPrompt(
        "code-edit",
        "Rewrite this Python code with the function moving_average renamed to rolling_mean. "
        f"Reply with only the code.\n\n```python\n{_CODE}```",
        f"{_CODE}\n\n# The same code, with moving_average renamed to rolling_mean:\n\n"
        "def rolling_mean(values, window):\n",
        copy_heavy=True,
    ),
    BenchPrompt(
        "quote",
        f"Passage:\n{_PASSAGE}\n\nAnswer only with sentences quoted word for word from the "
        "passage: what happened in the winter of 1888, and how does the logbook end?",
        f"Passage:\n{_PASSAGE}\n\nThe same passage, quoted word for word:\nThe lighthouse",
        copy_heavy=True,
    ),
    BenchPrompt(
        "json",
        f"Here is a customer record:\n{_RECORD}\n\nSummarize it back into JSON: return the same "
        "record with only the fields id, name, email, address and orders, values unchanged.",
        f"Record:\n{_RECORD}\n\nThe same record with id, name, email, address and orders:\n{{",
        copy_heavy=True,
    ),
    BenchPrompt(
        "free",
        "Write a short story about a girl named Mia who finds a lost dog in the park.",
        "Once upon a time, there was a girl named Mia. One day, Mia went to the park",
        copy_heavy=False,
    ),
)
