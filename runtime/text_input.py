"""Text a command reads from argv or stdin, made valid UTF-8 before it reaches the tokenizer.

Python hands bytes that are not UTF-8 over as lone surrogates (``'\\udcff'``: argv always, stdin
under a C locale or after :func:`tolerant_stdin`), which the tokenizer refuses with a
``TypeError``. The CLIs decode with replacement instead: each undecodable byte becomes U+FFFD
and one warning line on stderr says where it was.
"""

from __future__ import annotations

import io
import sys
from typing import TextIO

__all__ = ["Utf8Input", "tolerant_stdin"]


def tolerant_stdin() -> None:
    """Let ``sys.stdin`` pass bytes that are not UTF-8 through as surrogates (instead of raising
    ``UnicodeDecodeError`` mid-read), so :class:`Utf8Input` can replace them."""
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="surrogateescape")


class Utf8Input:
    """Replaces undecodable input bytes with U+FFFD and warns once (per command run) on stderr."""

    def __init__(self, prog: str, stream: TextIO | None = None) -> None:
        self.prog = prog
        self.stream = stream
        self.warned = False

    def __call__(self, text: str, where: str) -> str:
        """``text`` with every undecodable byte replaced; ``where`` names it in the warning."""
        if not any("\ud800" <= char <= "\udfff" for char in text):
            return text
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate no byte maps to (a Python caller's own string)
            raw = text.encode("utf-8", "surrogatepass")
        fixed = raw.decode("utf-8", "replace")
        if not self.warned:
            self.warned = True
            print(
                f"{self.prog}: warning: {where} is not valid UTF-8; each undecodable byte was "
                "replaced by U+FFFD",
                file=self.stream or sys.stderr,
            )
        return fixed
