"""Stop strings: found even when they span several tokens, and never emitted.

:class:`StopMatcher` sits between the incremental decoder and the caller. It holds back the
shortest tail of the text that could still be the start of a stop string, releases it once it
cannot be, and cuts the text just before a stop string when one completes.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["StopMatcher"]


class StopMatcher:
    """Filter streamed text pieces against ``stops``."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._held = ""
        self.matched: str | None = None

    def push(self, piece: str) -> str:
        """Add a piece of text; return what can safely be emitted. Sets :attr:`matched`."""
        if not self.stops:
            return piece
        text = self._held + piece
        first = -1
        for stop in self.stops:
            at = text.find(stop)
            if at >= 0 and (first < 0 or at < first):
                first, self.matched = at, stop
        if first >= 0:
            self._held = ""
            return text[:first]
        keep = self._partial_tail(text)
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """Release the held text at the end of generation (no stop string completed)."""
        text, self._held = self._held, ""
        return text

    def _partial_tail(self, text: str) -> int:
        """Length of the longest tail of ``text`` that is a proper prefix of some stop string."""
        best = 0
        for stop in self.stops:
            for size in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:size]):
                    best = size
                    break
        return best
