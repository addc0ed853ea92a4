"""A small reader of deploy/container/Dockerfile: its stages and their instructions."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "container" / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (KEYWORD, arguments)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]


def instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: continuations joined, comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            result.append((keyword.upper(), rest.strip()))
            pending = ""
    return result


def stages(text: str | None = None) -> dict[str, Stage]:
    """The stages by name (``FROM base AS name``)."""
    found: dict[str, Stage] = {}
    current: Stage | None = None
    for keyword, args in instructions(DOCKERFILE.read_text() if text is None else text):
        if keyword == "FROM":
            base, _, name = args.partition(" AS ")
            current = Stage(base.strip(), name.strip())
            found[current.name] = current
        elif current is not None:
            current.instructions.append((keyword, args))
    return found


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form ``CMD`` / ``ENTRYPOINT`` / ``HEALTHCHECK ... CMD``."""
    value = json.loads(args[args.index("[") :])
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value
